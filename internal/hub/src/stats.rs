//! Stats snapshots for the status API and metrics.

use os_av::Codec;

/// Counters of one buffer at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferStats {
    pub id: String,
    /// Ring capacity in chunks.
    pub capacity: usize,
    /// Ring entries written so far (= next sequence number).
    pub chunks: u64,
    pub bytes: u64,
    /// Entries flagged as access points.
    pub access_points: u64,
    /// Chunks lost by readers that fell behind, summed over all readers
    /// (including readers that have since gone).
    pub dropped: u64,
    /// Times any reader fell behind.
    pub lag_events: u64,
    /// Video frames (PES starts) written through `Buffer::write` (not
    /// counted for `write_raw`).
    pub video_frames: u64,
    /// Video codec learned from the PMT, if any.
    pub video: Option<Codec>,
    pub closed: bool,
    /// Current readers, sorted by name.
    pub readers: Vec<ReaderStats>,
}

/// Counters of one reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderStats {
    pub name: String,
    /// Chunks delivered to the reader.
    pub delivered: u64,
    /// Chunks lost to lag.
    pub lost: u64,
    /// Times it fell behind.
    pub lag_events: u64,
    /// How many ring entries it is behind the writer (at its last read).
    pub behind: u64,
}
