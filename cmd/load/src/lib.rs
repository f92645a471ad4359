//! Load client: many readers of one live stream in one process (tokio),
//! over RTMP, RTSP (TCP interleaved) or SRT, with per-reader accounting of
//! bytes, frames, lost frames and per-frame arrival latency.
//!
//! - [`account`]: the measurement window and what one reader records.
//! - [`ts`]: MPEG-TS continuity counters and video PES timestamps (SRT).
//! - [`rtmp`], [`rtsp`], [`srt`]: the readers.
//! - [`summary`]: the one-line JSON summary over all readers.
//!
//! Latency is measured as `arrival − media timestamp` of each video frame
//! (both in ms); the figure reported is that value minus its minimum, i.e.
//! the delay added on top of the best frame's. The sender's clock is not
//! known to the reader, so this is the delay *variation* a server adds
//! (queueing, batching, scheduling, fan-out order), not glass-to-glass
//! latency. When all readers see the same media timestamps (their minimum
//! offsets agree within [`summary::SHARED_BASELINE_MS`]) the minimum is
//! taken over all readers, so a reader that is served later than another
//! shows it; otherwise (a server that rebases timestamps per reader) each
//! reader's own minimum is used.

pub mod account;
pub mod rtmp;
pub mod rtsp;
pub mod srt;
pub mod summary;
pub mod ts;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// What every reader task shares.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Common time origin of all latency samples.
    pub epoch: Instant,
    pub window: account::Window,
    /// Nominal video frame interval, ms (RTMP loss accounting).
    pub frame_ms: f64,
    /// Fired when the window has ended: readers return what they have.
    pub stop: CancellationToken,
    /// Give up when nothing arrives for this long.
    pub idle: Duration,
}

/// Transport of the readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rtmp,
    Rtsp,
    Srt,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rtmp => "rtmp",
            Kind::Rtsp => "rtsp",
            Kind::Srt => "srt",
        }
    }
}
