//! Timeshift: a wall-clock window of a recording as a VOD playlist,
//! computed from the recording's playlist on every request.
//!
//! The window starts at an absolute time (`from`, RFC 3339) or `offset_sec`
//! seconds after the start of the oldest segment still listed, and lasts
//! `duration` seconds (to the end of the recording when absent). A segment
//! is listed when it overlaps the window: it ends after the start and
//! starts before the end. The output keeps each segment's own
//! `#EXT-X-PROGRAM-DATE-TIME` and its discontinuity marks (a gap inside the
//! window stays marked), numbers from the first listed segment, and ends
//! with `#EXT-X-ENDLIST`.

use chrono::{DateTime, Utc};

use crate::playlist::{MediaPlaylist, PlaylistType, seconds};

/// Longest accepted `duration` / `offset_sec`: 100 years, in seconds.
const MAX_SECONDS: f64 = 100.0 * 366.0 * 86_400.0;

/// Where the window starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// Absolute wall-clock time.
    At(DateTime<Utc>),
    /// Seconds after the start of the oldest listed segment (≥ 0).
    Offset(f64),
}

/// A requested window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: Start,
    /// Seconds (> 0); `None` = to the end.
    pub duration: Option<f64>,
}

/// Why the query parameters do not describe a window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("from must be an RFC 3339 date-time such as 2026-04-06T14:30:00Z, got {0:?}")]
    InvalidFrom(String),
    #[error("offset_sec must be a number of seconds >= 0, got {0:?}")]
    InvalidOffset(String),
    #[error("duration must be a number of seconds > 0, got {0:?}")]
    InvalidDuration(String),
    #[error("give either from or offset_sec, not both")]
    Both,
    #[error("give from (RFC 3339) or offset_sec (seconds after the recording's start)")]
    Missing,
}

/// Why a window yields no playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeshiftError {
    #[error("the recording has no dated segments")]
    NoData,
    #[error("no segment overlaps the requested window")]
    NoSegmentsInRange,
}

fn number(v: &str) -> Option<f64> {
    let v = v.trim();
    // Only plain decimal numbers: no "inf", "nan", hex or exponents.
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
    {
        return None;
    }
    v.parse::<f64>().ok().filter(|x| x.is_finite())
}

impl Window {
    /// The window of the query parameters `from`, `offset_sec`, `duration`.
    pub fn from_query(
        from: Option<&str>,
        offset_sec: Option<&str>,
        duration: Option<&str>,
    ) -> Result<Self, WindowError> {
        let start = match (from, offset_sec) {
            (Some(_), Some(_)) => return Err(WindowError::Both),
            (None, None) => return Err(WindowError::Missing),
            (Some(f), None) => DateTime::parse_from_rfc3339(f.trim())
                .map(|t| Start::At(t.with_timezone(&Utc)))
                .map_err(|_| WindowError::InvalidFrom(f.to_string()))?,
            (None, Some(o)) => match number(o) {
                Some(x) if (0.0..=MAX_SECONDS).contains(&x) => Start::Offset(x),
                _ => return Err(WindowError::InvalidOffset(o.to_string())),
            },
        };
        let duration = match duration {
            None => None,
            Some(d) => match number(d) {
                Some(x) if x > 0.0 && x <= MAX_SECONDS => Some(x),
                _ => return Err(WindowError::InvalidDuration(d.to_string())),
            },
        };
        Ok(Self { start, duration })
    }
}

/// The segments of `recording` overlapping `window`, as a VOD playlist.
pub fn timeshift(
    recording: &MediaPlaylist,
    window: &Window,
) -> Result<MediaPlaylist, TimeshiftError> {
    let first = recording
        .segments
        .iter()
        .find_map(|s| s.program_date_time)
        .ok_or(TimeshiftError::NoData)?;
    let start = match window.start {
        Start::At(t) => t,
        Start::Offset(x) => first + seconds(x),
    };
    let end = window.duration.map(|d| start + seconds(d));
    let segments: Vec<_> = recording
        .segments
        .iter()
        .filter(|s| match (s.program_date_time, s.end()) {
            (Some(a), Some(b)) => b > start && end.is_none_or(|e| a < e),
            _ => false,
        })
        .cloned()
        .enumerate()
        .map(|(i, mut s)| {
            if i == 0 {
                s.discontinuity = false;
            }
            s
        })
        .collect();
    if segments.is_empty() {
        return Err(TimeshiftError::NoSegmentsInRange);
    }
    let mut out = MediaPlaylist {
        target_duration: 0,
        media_sequence: segments.first().map_or(0, |s| s.seq),
        discontinuity_sequence: 0,
        playlist_type: Some(PlaylistType::Vod),
        ended: true,
        segments,
    };
    out.target_duration = out.fitting_target();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::playlist::{Segment, recording_segment_name};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    /// 0..4, 4..8, 8..12, gap, 30..34, 34..38 (seconds after t(0)).
    fn recording() -> MediaPlaylist {
        let mk = |seq: u64, at: i64, disc: bool| Segment {
            seq,
            uri: recording_segment_name(seq),
            duration: 4.0,
            program_date_time: Some(t(at)),
            discontinuity: disc,
        };
        MediaPlaylist {
            target_duration: 4,
            media_sequence: 10,
            discontinuity_sequence: 0,
            playlist_type: Some(PlaylistType::Event),
            ended: false,
            segments: vec![
                mk(10, 0, false),
                mk(11, 4, false),
                mk(12, 8, false),
                mk(13, 30, true),
                mk(14, 34, false),
            ],
        }
    }

    fn seqs(p: &MediaPlaylist) -> Vec<u64> {
        p.segments.iter().map(|s| s.seq).collect()
    }

    #[test]
    fn absolute_window_lists_overlapping_segments() {
        let w = Window {
            start: Start::At(t(5)),
            duration: Some(4.0),
        };
        let out = timeshift(&recording(), &w).unwrap();
        assert_eq!(seqs(&out), [11, 12]);
        assert_eq!(out.media_sequence, 11);
        assert!(out.ended && out.playlist_type == Some(PlaylistType::Vod));
        let text = out.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:11\n"), "{text}");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n"));
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn window_edges_are_exclusive() {
        // [4, 8) touches segment 10 only at its end and 12 only at its start.
        let w = Window {
            start: Start::At(t(4)),
            duration: Some(4.0),
        };
        assert_eq!(seqs(&timeshift(&recording(), &w).unwrap()), [11]);
    }

    #[test]
    fn offset_counts_from_the_oldest_segment_and_keeps_gaps_marked() {
        let w = Window {
            start: Start::Offset(9.0),
            duration: None,
        };
        let out = timeshift(&recording(), &w).unwrap();
        assert_eq!(seqs(&out), [12, 13, 14]);
        assert!(!out.segments[0].discontinuity);
        assert!(out.segments[1].discontinuity, "the gap stays marked");
        assert_eq!(out.render().matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        // A window starting on the discontinuity does not open with the tag.
        let w = Window {
            start: Start::Offset(31.0),
            duration: Some(1.0),
        };
        let out = timeshift(&recording(), &w).unwrap();
        assert_eq!(seqs(&out), [13]);
        assert!(!out.render().contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn empty_windows() {
        for w in [
            Window {
                start: Start::At(t(13)),
                duration: Some(10.0),
            }, // inside the gap
            Window {
                start: Start::At(t(100)),
                duration: None,
            }, // after the end
            Window {
                start: Start::At(t(-50)),
                duration: Some(10.0),
            }, // before the start
            Window {
                start: Start::Offset(38.0),
                duration: None,
            },
        ] {
            assert_eq!(
                timeshift(&recording(), &w),
                Err(TimeshiftError::NoSegmentsInRange),
                "{w:?}"
            );
        }
        let w = Window {
            start: Start::Offset(0.0),
            duration: None,
        };
        assert_eq!(
            timeshift(&MediaPlaylist::default(), &w),
            Err(TimeshiftError::NoData)
        );
    }

    #[test]
    fn query_validation() {
        use WindowError as E;
        let ok = Window::from_query(Some("2023-11-14T22:13:25Z"), None, Some("60")).unwrap();
        assert_eq!(
            ok,
            Window {
                start: Start::At(t(5)),
                duration: Some(60.0)
            }
        );
        let ok = Window::from_query(None, Some("1.5"), None).unwrap();
        assert_eq!(
            ok,
            Window {
                start: Start::Offset(1.5),
                duration: None
            }
        );
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, E);
        let cases: [Case; 12] = [
            (
                Some("yesterday"),
                None,
                None,
                E::InvalidFrom("yesterday".into()),
            ),
            (
                Some("2026-04-06 14:30:00"),
                None,
                None,
                E::InvalidFrom("2026-04-06 14:30:00".into()),
            ),
            (Some(""), None, None, E::InvalidFrom(String::new())),
            (None, Some("-1800"), None, E::InvalidOffset("-1800".into())),
            (None, Some("abc"), None, E::InvalidOffset("abc".into())),
            (None, Some("inf"), None, E::InvalidOffset("inf".into())),
            (None, Some("NaN"), None, E::InvalidOffset("NaN".into())),
            (None, Some("0"), Some("0"), E::InvalidDuration("0".into())),
            (None, Some("0"), Some("-5"), E::InvalidDuration("-5".into())),
            (
                None,
                Some("0"),
                Some("1e9999"),
                E::InvalidDuration("1e9999".into()),
            ),
            (Some("2023-11-14T22:13:25Z"), Some("5"), None, E::Both),
            (None, None, Some("10"), E::Missing),
        ];
        for (from, offset, duration, want) in cases {
            assert_eq!(Window::from_query(from, offset, duration), Err(want));
        }
    }
}
