//! FLV tags and AMF0 values, including Enhanced RTMP FourCC video, sans-IO.
//!
//! - [`FlvReader`]: push bytes in any chunking, pull [`Tag`]s whose bodies are
//!   zero-copy [`bytes::Bytes`] slices of the input. Malformed input gives an
//!   [`Error`], never a panic; tag bodies are capped ([`ReaderOptions`]).
//! - [`FlvHeader::write`], [`Tag::write`], [`write_tag`]: the writer side,
//!   into any [`bytes::BufMut`] (`BytesMut`, `Vec<u8>`).
//! - [`VideoTag`], [`AudioTag`], [`ScriptData`]: tag body parsers and writers.
//!   RTMP audio/video/data messages carry the same bodies, so these work on
//!   RTMP message payloads too. Video covers legacy AVC (7) / HEVC (12) and
//!   Enhanced RTMP (`avc1`, `hvc1`, `av01`, `vp09`); audio covers AAC, MP3 and
//!   Enhanced RTMP FourCC audio.
//! - [`amf0`]: AMF0 values for script data and RTMP commands.
//! - [`time`]: millisecond ↔ 90 kHz conversion and 32-bit timestamp unwrapping.
//! - [`au`]: tag bodies ↔ [`os_av::AccessUnit`]s ([`au::FlvDemuxer`] for
//!   ingest; sequence header and frame builders for play / push-out).
//!
//! Payload conventions: AVC/HEVC coded frames are kept as they travel in FLV,
//! length-prefixed (AVCC) NAL units; sequence headers carry the avcC / hvcC
//! record and AAC sequence headers the AudioSpecificConfig, untouched.

pub mod amf0;
pub mod au;
pub mod audio;
pub mod error;
pub mod reader;
pub mod remux;
pub mod script;
pub mod tag;
pub mod time;
pub mod video;

pub use amf0::Amf0Value;
pub use au::{DemuxEvent, FlvDemuxer};
pub use audio::{AudioCodec, AudioPacketType, AudioTag, aac_frame, aac_sequence_header};
pub use error::{Error, Result};
pub use reader::{FlvReader, ReaderOptions};
pub use script::{Metadata, ScriptData};
pub use tag::{FlvHeader, Tag, TagHeader, TagType, write_tag};
pub use video::{
    FrameType, VideoCodec, VideoPacketType, VideoTag, avc_frame, avc_sequence_header, hevc_frame,
    hevc_sequence_header, hevc_sequence_header_legacy,
};
