//! MPEG-TS demuxer, muxer and access-point scanner, sans-IO.
//!
//! - [`Demuxer`]: `push(&[u8])` any chunking, `pull() -> Option<Event>`;
//!   PAT/PMT (including mid-stream program changes), PES reassembly into
//!   [`os_av::AccessUnit`]s for H.264, H.265, AAC (ADTS), MP3, AC-3 and Opus,
//!   PCR, continuity and discontinuity events, 33-bit wrap, resync.
//! - [`Muxer`]: access units in, 188-byte packets appended to a caller buffer.
//! - [`KeyframeScanner`] / [`scan_keyframes`]: offsets of the packets that
//!   start a keyframe, without demuxing.
//! - Building blocks: [`packet`], [`pes`], [`psi`], [`crc`].

// Nested `if let` kept instead of let-chains: the workspace MSRV (1.85) predates them.
#![allow(clippy::collapsible_if, clippy::collapsible_match)]

pub mod crc;
pub mod demux;
pub mod mux;
pub mod packet;
pub mod pes;
pub mod pidmap;
pub mod psi;
pub mod scan;
pub mod splice;

mod audio;

pub use demux::{Corruption, Demuxer, DemuxerConfig, Event, Program};
pub use mux::{MuxError, Muxer, MuxerConfig, TsBuffer};
pub use packet::{PACKET_SIZE, SYNC_BYTE};
pub use pidmap::PidMap;
pub use scan::{KeyframeScanner, contains_keyframe, scan_keyframes};
pub use splice::{SpliceStats, Splicer};
