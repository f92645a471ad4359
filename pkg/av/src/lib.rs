//! The access-unit model shared by every open-streamer media crate.
//!
//! Everything that moves media between parsers and packagers speaks in
//! [`AccessUnit`]s: one decodable frame of one track, with its timestamps on
//! the 90 kHz MPEG clock and its payload as a shared [`bytes::Bytes`].
//!
//! Payload conventions (every producer and consumer relies on them):
//!
//! | codec        | payload                                                        |
//! |--------------|----------------------------------------------------------------|
//! | H.264, H.265 | Annex-B byte stream (start codes), parameter sets in-band when the source had them |
//! | AAC          | one raw AAC frame (no ADTS header); the AudioSpecificConfig lives in [`AudioParams`] |
//! | MP3, AC-3    | one elementary-stream frame as it appears in the source          |
//! | Opus         | one Opus packet (TS control header removed)                     |
//!
//! Modules:
//! - [`time`]: clock conversion, 33-bit timestamp unwrapping and timeline rebasing.

pub mod time;

use bytes::Bytes;

/// Clock rate of every timestamp in this crate (the MPEG system clock divided by 300).
pub const CLOCK_HZ: u32 = 90_000;

/// The codecs open-streamer can carry end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
    Aac,
    Mp3,
    Ac3,
    Opus,
}

impl Codec {
    /// Whether this codec carries pictures or sound.
    pub fn kind(self) -> TrackKind {
        match self {
            Codec::H264 | Codec::H265 => TrackKind::Video,
            Codec::Aac | Codec::Mp3 | Codec::Ac3 | Codec::Opus => TrackKind::Audio,
        }
    }

    /// Lower-case short name, as used in logs, status and the API (`h264`, `aac`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Aac => "aac",
            Codec::Mp3 => "mp3",
            Codec::Ac3 => "ac3",
            Codec::Opus => "opus",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// Identifies a track within one program. For MPEG-TS sources this is the
/// elementary PID; other sources number their tracks themselves.
pub type TrackId = u16;

/// One decodable frame of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub track: TrackId,
    pub codec: Codec,
    /// Presentation timestamp, 90 kHz, unwrapped (monotonic across the 33-bit wrap).
    pub pts: i64,
    /// Decode timestamp, 90 kHz, unwrapped. Equal to `pts` when the source had none.
    pub dts: i64,
    /// A random access point: an IDR/IRAP picture for video; every audio frame is one.
    pub keyframe: bool,
    /// Set on the first unit after a break in the source (reconnect, failover, CC loss).
    pub discontinuity: bool,
    pub payload: Bytes,
}

impl AccessUnit {
    /// Composition offset (`pts - dts`) in 90 kHz ticks.
    pub fn cts(&self) -> i64 {
        self.pts - self.dts
    }
}

/// Decoder parameters of a video track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoParams {
    pub width: u32,
    pub height: u32,
    /// `profile_idc` (H.264) or `general_profile_idc` (H.265).
    pub profile: u8,
    /// H.264: `constraint_set` flags byte. H.265: `general_profile_compatibility_flags` (32 bits).
    pub compatibility: u32,
    /// `level_idc` (H.264) or `general_level_idc` (H.265).
    pub level: u8,
    /// Frame rate as a fraction, when the bitstream signals it.
    pub frame_rate: Option<(u32, u32)>,
    /// Video parameter sets (H.265 only), without start codes.
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets, without start codes.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, without start codes.
    pub pps: Vec<Bytes>,
}

/// Decoder parameters of an audio track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioParams {
    pub sample_rate: u32,
    pub channels: u8,
    /// AAC audio object type (2 = AAC-LC); 0 for other codecs.
    pub object_type: u8,
    /// AAC AudioSpecificConfig bytes; empty for other codecs.
    pub asc: Bytes,
    /// Samples per frame (1024 for AAC-LC, 1152 for MP3 layer III, 1536 for AC-3).
    pub samples_per_frame: u32,
}

/// Codec parameters of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackParams {
    Video(VideoParams),
    Audio(AudioParams),
}

/// A track as known to a demuxer or packager: identity, codec and, once seen,
/// its decoder parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: TrackId,
    pub codec: Codec,
    pub params: Option<TrackParams>,
}

/// Signal that a track's decoder parameters appeared or changed (new SPS,
/// different resolution, different AudioSpecificConfig). Packagers start a new
/// init segment / discontinuity when they see one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsChanged {
    pub track: TrackId,
    pub codec: Codec,
    pub params: TrackParams,
}
