//! The live media playlist: a sliding window over the latest segments.

use std::collections::VecDeque;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

/// One listed segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Media sequence number; the file is [`segment_name`]`(seq)`.
    pub seq: u64,
    /// Seconds, from media timestamps when known.
    pub duration: f64,
    /// Preceded by `#EXT-X-DISCONTINUITY` (source switch before it).
    pub discontinuity: bool,
    /// Wall clock at the segment's start.
    pub program_date_time: DateTime<Utc>,
}

/// File name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("seg_{seq}.ts")
}

/// Live playlist state.
///
/// Invariants: the window holds at most `window` entries with consecutive
/// sequence numbers; `#EXT-X-MEDIA-SEQUENCE` is the first one's;
/// `#EXT-X-DISCONTINUITY-SEQUENCE` counts the discontinuity tags that left
/// the window; `#EXT-X-TARGETDURATION` is at least every listed segment's
/// duration rounded to the nearest second and never decreases.
#[derive(Debug, Clone)]
pub struct Playlist {
    window: usize,
    entries: VecDeque<Entry>,
    next_seq: u64,
    discontinuity_sequence: u64,
    target: u64,
    /// Written before each segment name (empty: relative URIs).
    uri_prefix: String,
}

impl Playlist {
    /// A playlist listing `window` segments (at least 1) whose numbers start
    /// at `first_seq`, with a target duration of at least
    /// `segment_duration` (rounded up).
    pub fn new(window: usize, first_seq: u64, segment_duration: f64) -> Self {
        Self {
            window: window.max(1),
            entries: VecDeque::new(),
            next_seq: first_seq,
            discontinuity_sequence: 0,
            target: (segment_duration.ceil() as u64).max(1),
            uri_prefix: String::new(),
        }
    }

    /// Segment URIs become absolute: `{base_url}/{code}/seg_<n>.ts`
    /// (`publisher.hls.base_url`, e.g. a CDN in front of the server). An
    /// empty `base_url` keeps them relative to the playlist.
    pub fn with_base_url(mut self, base_url: &str, code: &str) -> Self {
        let base = base_url.trim().trim_end_matches('/');
        self.uri_prefix = if base.is_empty() {
            String::new()
        } else {
            format!("{base}/{code}/")
        };
        self
    }

    /// Add a segment; returns its sequence number and the entries that
    /// left the window.
    pub fn push(
        &mut self,
        duration: f64,
        discontinuity: bool,
        program_date_time: DateTime<Utc>,
    ) -> (u64, Vec<Entry>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.target = self.target.max(duration.round() as u64);
        self.entries.push_back(Entry {
            seq,
            duration,
            discontinuity,
            program_date_time,
        });
        let mut gone = Vec::new();
        while self.entries.len() > self.window {
            if let Some(e) = self.entries.pop_front() {
                if e.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                gone.push(e);
            }
        }
        (seq, gone)
    }

    /// Sequence number the next pushed segment gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn target_duration(&self) -> u64 {
        self.target
    }

    pub fn media_sequence(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |e| e.seq)
    }

    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The playlist text (version 3: decimal `EXTINF`).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(128 + 96 * self.entries.len());
        let _ = write!(
            s,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
            self.target,
            self.media_sequence(),
            self.discontinuity_sequence
        );
        for e in &self.entries {
            if e.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = write!(
                s,
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},\n{}{}\n",
                e.program_date_time
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
                e.duration,
                self.uri_prefix,
                segment_name(e.seq)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    #[test]
    fn window_slides_and_counts_discontinuities() {
        let mut p = Playlist::new(3, 100, 2.0);
        assert_eq!(p.push(2.0, false, t(0)).0, 100);
        p.push(2.0, false, t(2));
        p.push(2.0, true, t(4));
        let (seq, gone) = p.push(2.0, false, t(6));
        assert_eq!(seq, 103);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].seq, 100);
        assert_eq!(p.media_sequence(), 101);
        assert_eq!(p.discontinuity_sequence(), 0);
        p.push(2.0, false, t(8));
        p.push(2.0, false, t(10));
        assert_eq!(p.media_sequence(), 103);
        assert_eq!(p.discontinuity_sequence(), 1);
        let text = p.render();
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
    }

    #[test]
    fn target_duration_covers_rounded_durations_and_never_decreases() {
        let mut p = Playlist::new(2, 0, 2.0);
        p.push(2.4, false, t(0));
        assert_eq!(p.target_duration(), 2);
        p.push(4.6, false, t(2));
        assert_eq!(p.target_duration(), 5);
        p.push(2.0, false, t(7));
        p.push(2.0, false, t(9));
        assert_eq!(
            p.target_duration(),
            5,
            "the long segment left, the target stays"
        );
    }

    #[test]
    fn base_url_prefixes_segment_uris() {
        let mut p =
            Playlist::new(6, 7, 2.0).with_base_url("https://cdn.example.com/live/", "cam-1");
        p.push(2.0, false, t(0));
        p.push(2.0, false, t(2));
        let text = p.render();
        let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            uris,
            [
                "https://cdn.example.com/live/cam-1/seg_7.ts",
                "https://cdn.example.com/live/cam-1/seg_8.ts"
            ]
        );
        // Empty (or blank): relative URIs.
        let mut p = Playlist::new(6, 7, 2.0).with_base_url(" ", "cam-1");
        p.push(2.0, false, t(0));
        assert!(p.render().ends_with("\nseg_7.ts\n"), "{}", p.render());
    }

    #[test]
    fn renders_apple_style_tags() {
        let mut p = Playlist::new(6, 7, 2.0);
        p.push(2.0, false, t(0));
        p.push(1.96, true, t(2));
        assert_eq!(
            p.render(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:2.000,\nseg_7.ts\n\
#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n#EXTINF:1.960,\nseg_8.ts\n"
        );
    }
}
