//! Fragmented MP4 (CMAF) writer, sans-IO.
//!
//! - [`TrackConfig`] describes one track (codec, timescale, sample entry) and
//!   is built from the track's [`os_av::TrackParams`].
//! - [`write_init_segment`] writes `ftyp` + `moov` for one track (DASH / CMAF
//!   style) or several.
//! - [`write_media_segment`] writes `styp` + `moof` + `mdat` from access
//!   units: Annex-B video is converted to length-prefixed samples, AAC frames
//!   are copied as they are. [`write_fragments`] is the lower-level variant
//!   taking prepared samples.
//!
//! Everything writes into a caller-supplied buffer (`Vec<u8>` or
//! `bytes::BytesMut`, see [`Output`]); nothing here does I/O.
//!
//! Timescales: 90 kHz for video (the access-unit clock), the sample rate for
//! audio.

mod boxes;
mod error;
mod init;
mod segment;

pub use boxes::Output;
pub use error::Fmp4Error;
pub use init::{SampleEntry, TrackConfig, write_init_segment};
pub use segment::{
    Fragment, FragmentInfo, SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC, Sample, SegmentInfo,
    SegmentOptions, TrackRun, write_fragments, write_media_segment,
};
