//! Error type of the video bitstream helpers (bit reading, parameter sets,
//! decoder configuration records, NAL framing).

/// Why a parameter set, configuration record or NAL framing could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The data ended before the structure was complete.
    #[error("unexpected end of data")]
    Truncated,
    /// A field holds a value the specification forbids.
    #[error("invalid bitstream: {0}")]
    Invalid(&'static str),
    /// A field is larger than the specification (or a sane limit) allows.
    #[error("value out of range: {0}")]
    OutOfRange(&'static str),
    /// Valid but not handled by this implementation.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A required parameter set (SPS, PPS or VPS) is missing.
    #[error("missing parameter set: {0}")]
    MissingParameterSet(&'static str),
    /// NAL unit too large for the chosen length-prefix size.
    #[error("NAL unit of {len} bytes does not fit a {size}-byte length prefix")]
    NalTooLarge { len: usize, size: u8 },
    /// Length-prefix size other than 1, 2 or 4 bytes.
    #[error("invalid NAL length size {0}")]
    BadLengthSize(u8),
}
