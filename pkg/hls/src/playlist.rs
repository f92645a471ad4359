//! The media playlist of a recording: rendered by the recorder, parsed back
//! by the timeshift generator (and by the recorder when it resumes).
//!
//! Rendered form (version 3, decimal `EXTINF`, one
//! `#EXT-X-PROGRAM-DATE-TIME` before every segment):
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:3
//! #EXT-X-TARGETDURATION:4
//! #EXT-X-MEDIA-SEQUENCE:0
//! #EXT-X-DISCONTINUITY-SEQUENCE:0
//! #EXT-X-PLAYLIST-TYPE:EVENT
//! #EXT-X-PROGRAM-DATE-TIME:2026-04-06T14:30:00.000Z
//! #EXTINF:4.000,
//! 000000.ts
//! ```
//!
//! The parser is total: it never fails on bad input. Unknown tags are
//! skipped; a malformed `EXTINF` or date makes that value absent; an
//! `EXTINF` without its URI line, or a last line without its newline (a
//! truncated file), is not a segment. Without a
//! `#EXT-X-PROGRAM-DATE-TIME` a segment's date is the previous segment's
//! date plus its duration (not the previous date repeated).

use std::fmt::Write as _;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// `#EXT-X-PLAYLIST-TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistType {
    Event,
    Vod,
}

/// One listed segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub seq: u64,
    /// The URI line as written.
    pub uri: String,
    /// Seconds.
    pub duration: f64,
    /// Wall clock at the segment's start.
    pub program_date_time: Option<DateTime<Utc>>,
    /// Preceded by `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
}

impl Segment {
    /// Wall clock at the segment's end.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.program_date_time.map(|t| t + seconds(self.duration))
    }
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub playlist_type: Option<PlaylistType>,
    /// `#EXT-X-ENDLIST`: no segment will be added.
    pub ended: bool,
    pub segments: Vec<Segment>,
}

/// Segment file name of a recording: `%06d.ts` (more digits past 999999).
pub fn recording_segment_name(seq: u64) -> String {
    format!("{seq:06}.ts")
}

/// Whether `name` is a recording segment file name (`\d{6,20}\.ts`) and
/// its number.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".ts")?;
    if digits.len() < 6 || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = digits.parse().ok()?;
    (recording_segment_name(seq) == name).then_some(seq)
}

/// `secs` as a chrono duration (milliseconds; non-finite → 0).
pub fn seconds(secs: f64) -> Duration {
    if secs.is_finite() {
        Duration::milliseconds((secs * 1000.0).round() as i64)
    } else {
        Duration::zero()
    }
}

impl MediaPlaylist {
    /// The smallest valid target duration for the listed segments (at least 1).
    pub fn fitting_target(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.duration.round() as u64)
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// The playlist text.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(160 + 96 * self.segments.len());
        let _ = write!(
            s,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
            self.target_duration.max(self.fitting_target()),
            self.media_sequence,
            self.discontinuity_sequence
        );
        match self.playlist_type {
            Some(PlaylistType::Event) => s.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            Some(PlaylistType::Vod) => s.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
            None => {}
        }
        for seg in &self.segments {
            if seg.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(t) = seg.program_date_time {
                let _ = writeln!(
                    s,
                    "#EXT-X-PROGRAM-DATE-TIME:{}",
                    t.to_rfc3339_opts(SecondsFormat::Millis, true)
                );
            }
            let _ = write!(s, "#EXTINF:{:.3},\n{}\n", seg.duration, seg.uri);
        }
        if self.ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }

    /// Parse a media playlist (see the module notes: never fails).
    pub fn parse(text: &str) -> Self {
        let mut pl = MediaPlaylist::default();
        let mut seq_set = false;
        let mut next_seq = 0u64;
        let mut pending_duration: Option<f64> = None;
        let mut pending_pdt: Option<DateTime<Utc>> = None;
        let mut pending_disc = false;
        let mut last_end: Option<DateTime<Utc>> = None;
        // Only complete lines: a last line without its newline is a file
        // still being written (need more), not a segment.
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        for line in complete.split('\n') {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(tag) = line.strip_prefix('#') {
                if let Some(v) = tag.strip_prefix("EXT-X-TARGETDURATION:") {
                    pl.target_duration = v.trim().parse().unwrap_or(0);
                } else if let Some(v) = tag.strip_prefix("EXT-X-MEDIA-SEQUENCE:") {
                    if let Ok(n) = v.trim().parse() {
                        if !seq_set && pl.segments.is_empty() {
                            next_seq = n;
                        }
                        pl.media_sequence = n;
                        seq_set = true;
                    }
                } else if let Some(v) = tag.strip_prefix("EXT-X-DISCONTINUITY-SEQUENCE:") {
                    pl.discontinuity_sequence = v.trim().parse().unwrap_or(0);
                } else if let Some(v) = tag.strip_prefix("EXT-X-PLAYLIST-TYPE:") {
                    pl.playlist_type = match v.trim() {
                        "EVENT" => Some(PlaylistType::Event),
                        "VOD" => Some(PlaylistType::Vod),
                        _ => None,
                    };
                } else if tag == "EXT-X-ENDLIST" {
                    pl.ended = true;
                } else if tag == "EXT-X-DISCONTINUITY" {
                    pending_disc = true;
                } else if let Some(v) = tag.strip_prefix("EXT-X-PROGRAM-DATE-TIME:") {
                    pending_pdt = DateTime::parse_from_rfc3339(v.trim())
                        .ok()
                        .map(|t| t.with_timezone(&Utc));
                } else if let Some(v) = tag.strip_prefix("EXTINF:") {
                    let num = v.split(',').next().unwrap_or_default().trim();
                    pending_duration = num
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite() && *d >= 0.0);
                }
                continue;
            }
            // A URI line: one segment.
            let Some(duration) = pending_duration.take() else {
                // A URI without EXTINF is not a media segment; skip it.
                pending_pdt = None;
                pending_disc = false;
                continue;
            };
            let program_date_time = match pending_pdt.take() {
                Some(t) => Some(t),
                // Without its own date, continue the timeline (a
                // discontinuity without a date leaves it unknown).
                None if !pending_disc => last_end,
                None => None,
            };
            let seg = Segment {
                seq: next_seq,
                uri: line.to_string(),
                duration,
                program_date_time,
                discontinuity: std::mem::take(&mut pending_disc),
            };
            last_end = seg.end();
            next_seq = next_seq.saturating_add(1);
            pl.segments.push(seg);
        }
        pl
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn seg(seq: u64, at: i64, disc: bool) -> Segment {
        Segment {
            seq,
            uri: recording_segment_name(seq),
            duration: 4.0,
            program_date_time: Some(t(at)),
            discontinuity: disc,
        }
    }

    #[test]
    fn render_parse_round_trip() {
        let pl = MediaPlaylist {
            target_duration: 4,
            media_sequence: 7,
            discontinuity_sequence: 2,
            playlist_type: Some(PlaylistType::Event),
            ended: false,
            segments: vec![seg(7, 0, false), seg(8, 4, false), seg(9, 30, true)],
        };
        let text = pl.render();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{text}");
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 3);
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        assert!(!text.contains("ENDLIST"));
        let back = MediaPlaylist::parse(&text);
        assert_eq!(back, pl);
        let vod = MediaPlaylist {
            playlist_type: Some(PlaylistType::Vod),
            ended: true,
            ..pl
        };
        let text = vod.render();
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(MediaPlaylist::parse(&text), vod);
    }

    #[test]
    fn missing_dates_advance_by_duration() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:3\n\
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:4.000,\n000003.ts\n\
#EXTINF:2.500,\n000004.ts\n#EXTINF:4,\n000005.ts\n";
        let pl = MediaPlaylist::parse(text);
        let dates: Vec<_> = pl
            .segments
            .iter()
            .map(|s| s.program_date_time.unwrap())
            .collect();
        assert_eq!(dates, vec![t(0), t(4), t(4) + seconds(2.5)]);
        assert_eq!(
            pl.segments.iter().map(|s| s.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
    }

    #[test]
    fn garbage_and_truncation_never_fail() {
        let pl = MediaPlaylist::parse("#EXTM3U\n#EXTINF:abc,\nx.ts\n#EXTINF:4.0,\n");
        assert!(pl.segments.is_empty(), "{pl:?}");
        let pl = MediaPlaylist::parse("not a playlist\n\u{0}\n#EXT-X-PROGRAM-DATE-TIME:yesterday");
        assert!(pl.segments.is_empty());
        // A truncated last line still parses the segments before it.
        let full = MediaPlaylist {
            target_duration: 4,
            segments: vec![seg(0, 0, false), seg(1, 4, false)],
            ..Default::default()
        }
        .render();
        let cut = &full[..full.len() - 4];
        let pl = MediaPlaylist::parse(cut);
        assert_eq!(
            pl.segments.len(),
            1,
            "the half-written URI line is not a segment"
        );
        assert_eq!(MediaPlaylist::parse(&full).segments.len(), 2);
    }

    #[test]
    fn segment_names() {
        assert_eq!(recording_segment_name(42), "000042.ts");
        assert_eq!(recording_segment_name(1_234_567), "1234567.ts");
        assert_eq!(parse_segment_name("000042.ts"), Some(42));
        assert_eq!(parse_segment_name("1234567.ts"), Some(1_234_567));
        for bad in [
            "42.ts",
            "0000042.ts",
            "../000042.ts",
            "000042.ts.tmp",
            ".000042.ts",
            "00004a.ts",
            "index.json",
            "/etc/passwd",
            "",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad:?}");
        }
    }
}
