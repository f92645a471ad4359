//! Cutting a chunked MPEG-TS stream into HLS segments (sans-IO).
//!
//! The input is a sequence of [`Input`]s: chunks of whole TS packets, each
//! flagged when it starts at an access point (keyframe) or after a source
//! switch, and notices of lost chunks. The caller supplies the clocks.
//!
//! Rules:
//! - A segment starts at an access point (a chunk that begins with a
//!   keyframe; for audio-only programs every chunk) and always begins with
//!   PAT + PMT (prepended from the cache when the chunk does not).
//! - The current segment is closed at the first access point at which its
//!   duration has reached the target: a long GOP makes a long segment, never
//!   a segment that starts mid-GOP.
//! - Durations come from media timestamps (see [`crate::peek`]); the wall
//!   clock is the fallback when a stream carries none.
//! - A source switch (`chunk.discontinuity`) closes the current segment and
//!   marks the next one as a discontinuity.
//! - A lag (chunks lost because this reader fell behind) closes the current
//!   segment so no segment has a hole inside; the next one starts at the
//!   access point the reader resumes at. It is not a timeline break.

use std::time::Instant;

use crate::peek::{Peek, PtsPeek, starts_with_pat, ts_seconds};
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// Longest duration believed from timestamps; beyond it they are broken and
/// the wall clock is used.
const MAX_TS_SPAN: f64 = 600.0;

/// One step of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Whole MPEG-TS packets.
    Chunk {
        data: Bytes,
        /// Starts with a keyframe (after any PAT/PMT); for an audio-only
        /// program, every chunk.
        access_point: bool,
        /// First chunk after a source switch (the timeline may jump).
        discontinuity: bool,
    },
    /// `lost` chunks were skipped (the reader fell behind).
    Lost { lost: u64 },
}

/// A closed segment, ready to be written.
#[derive(Debug, Clone)]
pub struct Finished {
    pub data: Vec<Bytes>,
    pub duration: f64,
    pub discontinuity: bool,
    pub program_date_time: DateTime<Utc>,
}

#[derive(Debug)]
struct Current {
    data: Vec<Bytes>,
    start_ts: Option<u64>,
    /// Last two distinct decode times seen (for the length of a segment
    /// closed without a following start).
    last_ts: Option<u64>,
    prev_ts: Option<u64>,
    start_wall: Instant,
    program_date_time: DateTime<Utc>,
    discontinuity: bool,
}

impl Current {
    fn note(&mut self, peek: Peek) {
        for ts in [peek.first, peek.last].into_iter().flatten() {
            if self.last_ts != Some(ts) {
                self.prev_ts = self.last_ts;
                self.last_ts = Some(ts);
            }
        }
    }

    /// Duration when the next segment starts at `next_ts` / `now`.
    fn duration(&self, next_ts: Option<u64>, now: Instant) -> f64 {
        let wall = now.saturating_duration_since(self.start_wall).as_secs_f64();
        let from_ts = match (self.start_ts, next_ts, self.last_ts) {
            (Some(a), Some(b), _) => ts_seconds(a, b),
            // Closed without a successor: span of what it holds plus one
            // frame interval.
            (Some(a), None, Some(last)) => {
                let frame = self
                    .prev_ts
                    .and_then(|p| ts_seconds(p, last))
                    .unwrap_or(0.0);
                ts_seconds(a, last).map(|d| d + frame)
            }
            _ => None,
        };
        match from_ts {
            Some(d) if d > 0.0 && d < MAX_TS_SPAN => d,
            _ => wall,
        }
    }

    fn finish(self, next_ts: Option<u64>, now: Instant) -> Finished {
        Finished {
            duration: self.duration(next_ts, now),
            data: self.data,
            discontinuity: self.discontinuity,
            program_date_time: self.program_date_time,
        }
    }
}

/// The segmenter of one stream.
#[derive(Debug)]
pub struct Segmenter {
    target: f64,
    peek: PtsPeek,
    current: Option<Current>,
    /// The next segment starts after a source switch.
    next_discontinuity: bool,
    /// Any segment was started (a discontinuity before the first one is
    /// not signalled).
    started: bool,
    lost: u64,
    lags: u64,
}

impl Segmenter {
    /// Segments of at least `target` seconds (cut at the next access point).
    pub fn new(target: f64) -> Self {
        Self {
            target: if target.is_finite() && target > 0.0 {
                target
            } else {
                2.0
            },
            peek: PtsPeek::default(),
            current: None,
            next_discontinuity: false,
            started: false,
            lost: 0,
            lags: 0,
        }
    }

    /// Chunks lost to lag, and how many lags.
    pub fn lost(&self) -> (u64, u64) {
        (self.lost, self.lags)
    }

    /// Feed one input; returns the segment it closed, if any. `now` times
    /// segments when the media carries no timestamps; `wall` becomes the
    /// program date-time of a segment this input starts.
    pub fn push(&mut self, input: Input, now: Instant, wall: DateTime<Utc>) -> Option<Finished> {
        match input {
            Input::Lost { lost } => {
                self.lost += lost;
                self.lags += 1;
                self.current.take().map(|c| c.finish(None, now))
            }
            Input::Chunk {
                data,
                access_point,
                discontinuity,
            } => self.chunk(data, access_point, discontinuity, now, wall),
        }
    }

    /// Close the segment in progress (end of input, shutdown, or a pause in
    /// the input long enough that it should not stay open). It starts at an
    /// access point, so it is a valid segment on its own.
    pub fn flush(&mut self, now: Instant) -> Option<Finished> {
        self.current.take().map(|c| c.finish(None, now))
    }

    /// Whether a segment is in progress.
    pub fn in_progress(&self) -> bool {
        self.current.is_some()
    }

    fn chunk(
        &mut self,
        data: Bytes,
        access_point: bool,
        discontinuity: bool,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<Finished> {
        let mut closed = None;
        if discontinuity {
            closed = self.current.take().map(|c| c.finish(None, now));
            if self.started {
                self.next_discontinuity = true;
            }
            self.peek.reset();
        }
        let peek = self.peek.scan(&data);
        let cut = match &self.current {
            None => access_point,
            Some(cur) => access_point && cur.duration(peek.first, now) >= self.target,
        };
        if cut {
            if let Some(cur) = self.current.take() {
                closed = Some(cur.finish(peek.first, now));
            }
            let mut parts = Vec::with_capacity(64);
            if !starts_with_pat(&data)
                && let Some(psi) = self.peek.psi()
            {
                parts.push(psi);
            }
            parts.push(data);
            let mut cur = Current {
                data: parts,
                start_ts: peek.first,
                last_ts: None,
                prev_ts: None,
                start_wall: now,
                program_date_time: wall,
                discontinuity: std::mem::take(&mut self.next_discontinuity),
            };
            cur.note(peek);
            self.current = Some(cur);
            self.started = true;
        } else if let Some(cur) = &mut self.current {
            cur.note(peek);
            cur.data.push(data);
        }
        // Chunks before the first access point cannot start a segment and
        // are dropped.
        closed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use os_mpegts::psi::{PmtEntry, build_pat, build_pmt};

    const VIDEO: u16 = 0x100;

    fn packet(pid: u16, pusi: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0xFFu8; 188];
        p[0] = 0x47;
        p[1] = (u8::from(pusi) << 6) | (pid >> 8) as u8;
        p[2] = pid as u8;
        p[3] = 0x10;
        p[4..4 + payload.len()].copy_from_slice(payload);
        p
    }

    fn psi() -> Vec<u8> {
        let mut out = Vec::new();
        let mut pat = vec![0u8];
        pat.extend(build_pat(1, 1, 0x1000, 0));
        out.extend(packet(0, true, &pat));
        let mut pmt = vec![0u8];
        pmt.extend(build_pmt(
            1,
            0,
            VIDEO,
            &[PmtEntry {
                stream_type: 0x1B,
                pid: VIDEO,
                descriptors: vec![],
            }],
        ));
        out.extend(packet(0x1000, true, &pmt));
        out
    }

    /// One video PES start with `pts` (seconds).
    fn pes(secs: f64) -> Vec<u8> {
        let pts = (secs * 90_000.0) as u64;
        let h = [
            0,
            0,
            1,
            0xE0,
            0,
            0,
            0x80,
            0x80,
            5,
            0x21 | ((pts >> 29) as u8 & 0x0E),
            (pts >> 22) as u8,
            ((pts >> 14) as u8 & 0xFE) | 1,
            (pts >> 7) as u8,
            ((pts << 1) as u8 & 0xFE) | 1,
        ];
        packet(VIDEO, true, &h)
    }

    fn chunk(data: Vec<u8>, access_point: bool, discontinuity: bool) -> Input {
        Input::Chunk {
            data: Bytes::from(data),
            access_point,
            discontinuity,
        }
    }

    fn starts_with_pat_pmt(seg: &Finished) -> bool {
        let all: Vec<u8> = seg.data.iter().flat_map(|b| b.to_vec()).collect();
        let pid = |p: &[u8]| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        starts_with_pat(&all) && all.len() >= 376 && pid(&all[188..]) == 0x1000
    }

    #[test]
    fn cuts_at_access_points_with_psi_in_front() {
        let now = Instant::now();
        let wall = Utc::now();
        let mut s = Segmenter::new(2.0);
        // Before the first access point: dropped.
        assert!(s.push(chunk(pes(0.0), false, false), now, wall).is_none());
        assert!(!s.in_progress());
        let mut first = psi();
        first.extend(pes(0.0));
        assert!(s.push(chunk(first, true, false), now, wall).is_none());
        assert!(s.push(chunk(pes(1.0), false, false), now, wall).is_none());
        // 2 s reached only at a non-access point: no cut mid-GOP.
        assert!(s.push(chunk(pes(2.0), false, false), now, wall).is_none());
        let a = s.push(chunk(pes(3.0), true, false), now, wall).unwrap();
        assert!((a.duration - 3.0).abs() < 1e-6, "{}", a.duration);
        assert!(!a.discontinuity);
        assert!(starts_with_pat_pmt(&a));
        // The next one starts with PAT + PMT although its chunk does not.
        assert!(s.push(chunk(pes(4.0), true, false), now, wall).is_none());
        let b = s.push(chunk(pes(5.0), true, false), now, wall).unwrap();
        assert!((b.duration - 2.0).abs() < 1e-6, "{}", b.duration);
        assert!(starts_with_pat_pmt(&b));
        assert_eq!(b.data.len(), 3, "PSI + two chunks");
    }

    #[test]
    fn discontinuity_closes_and_marks_the_next_segment() {
        let now = Instant::now();
        let wall = Utc::now();
        let mut s = Segmenter::new(2.0);
        let mut first = psi();
        first.extend(pes(0.0));
        s.push(chunk(first, true, false), now, wall);
        s.push(chunk(pes(0.5), false, false), now, wall);
        let mut other = psi();
        other.extend(pes(100.0));
        let a = s.push(chunk(other, true, true), now, wall).unwrap();
        assert!(!a.discontinuity);
        // Closed without a successor: its span plus one frame interval.
        assert!((a.duration - 1.0).abs() < 1e-6, "{}", a.duration);
        s.push(chunk(pes(100.5), false, false), now, wall);
        let b = s.flush(now).unwrap();
        assert!(b.discontinuity);
        assert!(s.flush(now).is_none());
        // A lost stretch closes the segment without a timeline break.
        let mut again = psi();
        again.extend(pes(101.0));
        s.push(chunk(again, true, false), now, wall);
        assert!(s.push(Input::Lost { lost: 3 }, now, wall).is_some());
        assert_eq!(s.lost(), (3, 1));
    }
}
