//! Cutting the hub's chunk stream into HLS segments (sans-IO).
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

use bytes::Bytes;
use chrono::{DateTime, Utc};
use os_hub::{Chunk, Item};

use crate::peek::{Peek, PtsPeek, starts_with_pat, ts_seconds};

/// Longest duration believed from timestamps; beyond it they are broken and
/// the wall clock is used.
const MAX_TS_SPAN: f64 = 600.0;

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

    /// Feed one reader item; returns the segment it closed, if any.
    pub fn push(&mut self, item: Item, now: Instant, wall: DateTime<Utc>) -> Option<Finished> {
        match item {
            Item::Lagged { lost } => {
                self.lost += lost;
                self.lags += 1;
                self.current.take().map(|c| c.finish(None, now))
            }
            Item::Chunk(chunk) => self.chunk(chunk, now, wall),
        }
    }

    fn chunk(&mut self, chunk: Chunk, now: Instant, wall: DateTime<Utc>) -> Option<Finished> {
        let mut closed = None;
        if chunk.discontinuity {
            closed = self.current.take().map(|c| c.finish(None, now));
            if self.started {
                self.next_discontinuity = true;
            }
            self.peek.reset();
        }
        let peek = self.peek.scan(&chunk.data);
        let cut = match &self.current {
            None => chunk.access_point,
            Some(cur) => chunk.access_point && cur.duration(peek.first, now) >= self.target,
        };
        if cut {
            if let Some(cur) = self.current.take() {
                closed = Some(cur.finish(peek.first, now));
            }
            let mut data = Vec::with_capacity(64);
            if !starts_with_pat(&chunk.data)
                && let Some(psi) = self.peek.psi()
            {
                data.push(psi);
            }
            data.push(chunk.data);
            let mut cur = Current {
                data,
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
            cur.data.push(chunk.data);
        }
        // Chunks before the first access point cannot start a segment and
        // are dropped.
        closed
    }
}
