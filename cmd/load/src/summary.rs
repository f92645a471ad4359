//! The one-line JSON summary over all readers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::account::Reader;

/// When the readers' minimum `arrival − media time` offsets agree within
/// this, they see the same timestamps and share one latency baseline.
pub const SHARED_BASELINE_MS: f64 = 1000.0;

/// Added latency over the window (see the crate docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// "all readers" (one minimum) or "per reader" (each its own), or
    /// "none" without samples.
    pub baseline: String,
    pub samples: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

/// Spread of the per-reader figures (fast readers only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerReader {
    pub bytes_min: u64,
    pub bytes_max: u64,
    pub frames_min: u64,
    pub frames_max: u64,
    pub lost_max: u64,
}

/// What `os-load` prints: counts over the fast (non-stalled) readers inside
/// the window, unless said otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub kind: String,
    pub url: String,
    /// Readers started (fast + stalled).
    pub readers: u64,
    pub stalled: u64,
    /// Readers (fast + stalled) the server accepted.
    pub connected: u64,
    /// Fast readers that received at least one video frame in the window.
    pub receiving: u64,
    pub window_s: f64,
    pub bytes: u64,
    pub frames: u64,
    /// Lost units: frames (RTMP), RTP packets (RTSP), TS packets (SRT).
    pub lost: u64,
    pub lost_unit: String,
    /// Video frames missing by their timestamps (RTMP, SRT; 0 for RTSP).
    #[serde(default)]
    pub frames_missing: u64,
    pub latency_ms: Latency,
    pub per_reader: PerReader,
    /// How readers ended, with counts ("cancelled" = still reading at the end).
    pub ends: BTreeMap<String, u64>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

/// Added latency of all readers' samples.
pub fn latency(readers: &[&Reader]) -> Latency {
    let mins: Vec<f64> = readers
        .iter()
        .filter_map(|r| r.latency.iter().copied().reduce(f64::min))
        .collect();
    let (Some(lo), Some(hi)) = (
        mins.iter().copied().reduce(f64::min),
        mins.iter().copied().reduce(f64::max),
    ) else {
        return Latency {
            baseline: "none".into(),
            ..Latency::default()
        };
    };
    let shared = hi - lo <= SHARED_BASELINE_MS;
    let mut added: Vec<f64> = Vec::new();
    for r in readers {
        let Some(own) = r.latency.iter().copied().reduce(f64::min) else {
            continue;
        };
        let base = if shared { lo } else { own };
        added.extend(r.latency.iter().map(|l| l - base));
    }
    added.sort_by(f64::total_cmp);
    Latency {
        baseline: if shared { "all readers" } else { "per reader" }.into(),
        samples: added.len() as u64,
        p50: percentile(&added, 0.5),
        p95: percentile(&added, 0.95),
        max: added.last().copied(),
    }
}

pub fn summarize(kind: &str, url: &str, window_s: f64, lost_unit: &str, all: &[Reader]) -> Summary {
    let fast: Vec<&Reader> = all.iter().filter(|r| !r.stalled).collect();
    let mut ends = BTreeMap::new();
    for r in all {
        // Group errors by their text without addresses or numbers.
        let key: String = r
            .end
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        *ends.entry(key).or_insert(0) += 1;
    }
    let fold = |f: fn(&Reader) -> u64| {
        (
            fast.iter().map(|r| f(r)).min().unwrap_or(0),
            fast.iter().map(|r| f(r)).max().unwrap_or(0),
        )
    };
    let (bytes_min, bytes_max) = fold(|r| r.bytes);
    let (frames_min, frames_max) = fold(|r| r.frames);
    Summary {
        kind: kind.into(),
        url: url.into(),
        readers: all.len() as u64,
        stalled: all.iter().filter(|r| r.stalled).count() as u64,
        connected: all.iter().filter(|r| r.connected).count() as u64,
        receiving: fast.iter().filter(|r| r.frames > 0).count() as u64,
        window_s,
        bytes: fast.iter().map(|r| r.bytes).sum(),
        frames: fast.iter().map(|r| r.frames).sum(),
        lost: fast.iter().map(|r| r.lost).sum(),
        lost_unit: lost_unit.into(),
        frames_missing: fast.iter().map(|r| r.frames_missing).sum(),
        latency_ms: latency(&fast),
        per_reader: PerReader {
            bytes_min,
            bytes_max,
            frames_min,
            frames_max,
            lost_max: fold(|r| r.lost).1,
        },
        ends,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(latency: &[f64]) -> Reader {
        Reader {
            connected: true,
            frames: latency.len() as u64,
            bytes: 100 * latency.len() as u64,
            latency: latency.to_vec(),
            end: "cancelled".into(),
            ..Reader::default()
        }
    }

    #[test]
    fn shared_timestamps_share_one_baseline() {
        // Reader b is served 30 ms later than reader a throughout.
        let a = reader(&[500.0, 505.0, 500.0, 510.0]);
        let b = reader(&[530.0, 535.0, 530.0, 540.0]);
        let l = latency(&[&a, &b]);
        assert_eq!(l.baseline, "all readers");
        assert_eq!(l.samples, 8);
        assert_eq!(l.max, Some(40.0));
        assert_eq!(l.p50, Some(30.0));
        assert_eq!(l.p95, Some(40.0));
    }

    #[test]
    fn rebased_timestamps_use_each_readers_own_baseline() {
        let a = reader(&[500.0, 505.0]);
        let b = reader(&[90_000.0, 90_020.0]);
        let l = latency(&[&a, &b]);
        assert_eq!(l.baseline, "per reader");
        assert_eq!(l.max, Some(20.0));
        assert_eq!(latency(&[]).baseline, "none");
    }

    #[test]
    fn stalled_readers_are_left_out_of_the_totals() {
        let mut slow = reader(&[1.0]);
        slow.stalled = true;
        slow.lost = 50;
        let mut fast = reader(&[1.0, 2.0]);
        fast.lost = 1;
        let idle = Reader {
            connected: false,
            end: "error: connect 127.0.0.1:1935 refused".into(),
            ..Reader::default()
        };
        let s = summarize("rtmp", "u", 5.0, "frames", &[slow, fast, idle]);
        assert_eq!(
            (s.readers, s.stalled, s.connected, s.receiving),
            (3, 1, 2, 1)
        );
        assert_eq!((s.frames, s.lost, s.bytes), (2, 1, 200));
        assert_eq!(s.per_reader.frames_min, 0);
        assert_eq!(s.per_reader.frames_max, 2);
        assert_eq!(
            s.ends.get("error: connect ###.#.#.#:#### refused"),
            Some(&1)
        );
        assert_eq!(s.ends.get("cancelled"), Some(&2));
    }
}
