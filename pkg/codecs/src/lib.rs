//! Codec bitstream helpers, sans-IO.
//!
//! Modules:
//! - [`annexb`]: start-code framing and NAL unit iteration (shared by H.264 and H.265).
//! - [`h264`], [`h265`]: NAL types, SPS parsing, decoder configuration records (avcC / hvcC).
//! - [`aac`]: ADTS headers, AudioSpecificConfig, ADTS ↔ raw conversion.
//! - [`codec_string`]: RFC 6381 codec strings for HLS and DASH manifests.
//! - [`params`]: watches access units and reports when a track's parameters appear or change.

pub mod aac;
pub mod annexb;
pub mod bits;
pub mod codec_string;
pub mod error;
pub mod h264;
pub mod h265;
pub mod nal;
pub mod params;
