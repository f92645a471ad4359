//! Errors of the fMP4 writer.

use os_av::Codec;
use os_codecs::error::CodecError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fmp4Error {
    /// Building the decoder configuration record failed.
    #[error("codec configuration: {0}")]
    Codec(#[from] CodecError),
    /// The codec (or codec/params combination) cannot be packaged.
    #[error("unsupported in fMP4: {0}")]
    Unsupported(&'static str),
    /// Parameters do not match the codec, or are incomplete.
    #[error("invalid track parameters for {codec}: {reason}")]
    InvalidParams { codec: Codec, reason: &'static str },
    /// Track IDs must be non-zero and unique.
    #[error("invalid or duplicate track id {0}")]
    InvalidTrackId(u32),
    /// Decode timestamps went backwards inside a fragment.
    #[error("decode timestamps not monotonic in track {track_id}: {prev} then {next}")]
    NonMonotonicDts { track_id: u32, prev: i64, next: i64 },
    /// A timestamp cannot be represented (negative decode time, composition
    /// offset or duration beyond 32 bits).
    #[error("timestamp out of range: {0}")]
    TimestampOutOfRange(&'static str),
    /// A box, sample or segment exceeds the 32-bit size fields.
    #[error("too large: {0}")]
    TooLarge(&'static str),
    /// A fragment without samples, or a segment without fragments.
    #[error("empty fragment")]
    Empty,
    /// A sample's codec differs from its track's codec.
    #[error("access unit of codec {unit} in a {track} track")]
    CodecMismatch { unit: Codec, track: Codec },
    /// Writer bug guard (never expected).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
