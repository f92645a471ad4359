//! Buffer hub: one ring of MPEG-TS chunks per buffer id, read by any number
//! of independent readers.
//!
//! - [`Hub`]: registry, `get_or_create(id, capacity)`, `remove(id)`, `stats()`.
//! - [`Buffer`]: the ring. [`Buffer::write`] is synchronous, O(1) per
//!   chunk and never waits for a reader; chunks are [`bytes::Bytes`], shared
//!   by every reader, never copied per reader. The write path cuts chunks at
//!   keyframes (zero-copy) and flags access points.
//! - [`Reader`]: `recv().await` / `try_recv()` yield [`Item`]s in sequence
//!   order. A new reader starts at the latest access point still in the ring
//!   (GOP cache), so players start fast. A reader that falls behind the ring
//!   gets [`Item::Lagged`] with the number of chunks it lost, immediately
//!   followed by the next access point.
//! - An access point, as delivered to a reader that starts there, begins with
//!   PAT + PMT and then the keyframe, so it can be decoded on its own.
//!
//! See `docs/PERFORMANCE.md` ("Buffer hub") for the measured costs and the
//! reasons behind the design.

mod access;
mod buffer;
mod hub;
mod reader;
mod stats;

use bytes::Bytes;

pub use buffer::{Buffer, DEFAULT_MAX_BYTES};
pub use hub::Hub;
pub use reader::Reader;
pub use stats::{BufferStats, ReaderStats};

/// The buffer is closed (writer side: no more writes; reader side: closed
/// and fully read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer closed")]
pub struct Closed;

/// Why [`Reader::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    #[error("no chunk ready")]
    Empty,
    #[error("buffer closed")]
    Closed,
}

/// One ring entry as a reader receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the buffer, consecutive for a reader in step.
    pub seq: u64,
    /// The MPEG-TS bytes (shared, not copied). For the first chunk after a
    /// join or a resync (`resume`), they begin with PAT + PMT.
    pub data: Bytes,
    /// Starts with a keyframe (after any PAT/PMT): a safe join point.
    pub access_point: bool,
    /// First chunk after a source switch.
    pub discontinuity: bool,
    /// First chunk this reader gets after subscribing or after a lag.
    pub resume: bool,
}

/// What a [`Reader`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Chunk(Chunk),
    /// The reader fell behind and `lost` chunks were skipped; the next item
    /// is an access point (for a [`Buffer::subscribe_raw`] reader: the
    /// oldest chunk in the ring).
    Lagged {
        lost: u64,
    },
}
