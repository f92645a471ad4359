//! The crate's error type.

/// Everything that can go wrong while reading or writing FLV tags, tag bodies
/// and AMF0 values. Malformed input always yields one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file does not start with `FLV`.
    #[error("not an FLV stream: signature {0:02x?}")]
    BadSignature([u8; 3]),
    /// The header's data offset is smaller than the header or implausibly large.
    #[error("invalid FLV header data offset {0}")]
    BadDataOffset(u32),
    /// A tag announces a body larger than the configured limit.
    #[error("tag body of {size} bytes exceeds the limit of {max} bytes")]
    TagTooLarge { size: u32, max: u32 },
    /// A PreviousTagSize field does not match the tag before it (strict mode only).
    #[error("previous tag size {found} does not match the expected {expected}")]
    PreviousTagSize { expected: u32, found: u32 },
    /// A body, header or value ends before its announced length.
    #[error("{what} truncated: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// The stream ended in the middle of a header or tag.
    #[error("stream ended inside a tag ({0} bytes left over)")]
    UnexpectedEnd(usize),
    /// A tag body is empty where at least a header byte is required.
    #[error("empty {0} tag body")]
    EmptyBody(&'static str),
    /// Video frame type 0, 6 or 7.
    #[error("invalid video frame type {0}")]
    InvalidFrameType(u8),
    /// An Enhanced RTMP video packet type this crate does not handle (multitrack, ModEx, ...).
    #[error("unsupported video packet type {0}")]
    UnsupportedVideoPacketType(u8),
    /// An AVC/HEVC packet type other than 0, 1 and 2.
    #[error("invalid AVC/HEVC packet type {0}")]
    InvalidAvcPacketType(u8),
    /// An AAC packet type other than 0 and 1.
    #[error("invalid AAC packet type {0}")]
    InvalidAacPacketType(u8),
    /// An Enhanced RTMP audio packet type this crate does not handle (multitrack, ModEx, ...).
    #[error("unsupported audio packet type {0}")]
    UnsupportedAudioPacketType(u8),
    /// A value does not fit its field when encoding (tag size, composition time, string length...).
    #[error("{what} out of range: {value}")]
    OutOfRange { what: &'static str, value: i64 },
    /// The tag fields cannot be expressed in the requested syntax
    /// (e.g. a FourCC-only codec in a legacy header).
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
    /// An AMF0 type marker that is unknown or not supported (AMF3 switch, reserved markers).
    #[error("unsupported AMF0 marker 0x{0:02x}")]
    Amf0Marker(u8),
    /// AMF0 objects/arrays nested deeper than the limit.
    #[error("AMF0 nesting deeper than {0}")]
    Amf0TooDeep(usize),
    /// An object-end marker where a value was expected.
    #[error("unexpected AMF0 object end")]
    Amf0UnexpectedObjectEnd,
    /// A decoder configuration record or NAL framing is invalid.
    #[error("codec: {0}")]
    Codec(#[from] os_codecs::error::CodecError),
    /// An AudioSpecificConfig is invalid.
    #[error("AAC: {0}")]
    Aac(#[from] os_codecs::aac::AacError),
    /// The access unit's codec cannot be carried this way.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(&'static str),
    /// An RTMP command body lacks its name or transaction id.
    #[error("malformed RTMP command: {0}")]
    BadCommand(&'static str),
    /// A script tag or command does not start with a string name.
    #[error("script data does not start with a string name")]
    ScriptName,
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `data` holds at least `need` bytes.
pub(crate) fn need(data: &[u8], need: usize, what: &'static str) -> Result<()> {
    if data.len() < need {
        Err(Error::Truncated {
            what,
            need,
            have: data.len(),
        })
    } else {
        Ok(())
    }
}
