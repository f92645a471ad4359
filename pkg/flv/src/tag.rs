//! FLV file header and tag framing, and the writer side of both.
//!
//! ```text
//! file   = header(9+) PreviousTagSize0(4, = 0) { tag PreviousTagSize(4, = 11 + body size) }
//! tag    = flags/type(1) body size(3) timestamp(3) timestamp extended(1) stream id(3) body
//! ```

use bytes::{BufMut, Bytes};

use crate::error::{Error, Result};

/// Size of the fixed FLV file header (signature, version, flags, data offset).
pub const FILE_HEADER_LEN: usize = 9;
/// Size of a tag header (everything before the body).
pub const TAG_HEADER_LEN: usize = 11;
/// Size of a PreviousTagSize field.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest body a tag can describe (24-bit size field).
pub const MAX_TAG_BODY: u32 = 0x00FF_FFFF;

/// The FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// File version; 1 for every FLV in use.
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
}

impl Default for FlvHeader {
    fn default() -> Self {
        Self {
            version: 1,
            has_audio: true,
            has_video: true,
        }
    }
}

impl FlvHeader {
    /// Parses the 9-byte header; returns it with the data offset (where the
    /// first PreviousTagSize starts).
    pub fn parse(data: &[u8]) -> Result<(FlvHeader, u32)> {
        let Some(h) = data.first_chunk::<FILE_HEADER_LEN>() else {
            return Err(Error::Truncated {
                what: "FLV header",
                need: FILE_HEADER_LEN,
                have: data.len(),
            });
        };
        if &h[..3] != b"FLV" {
            return Err(Error::BadSignature([h[0], h[1], h[2]]));
        }
        let offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let header = FlvHeader {
            version: h[3],
            has_audio: h[4] & 0x04 != 0,
            has_video: h[4] & 0x01 != 0,
        };
        Ok((header, offset))
    }

    /// Writes the 9-byte header followed by PreviousTagSize0.
    pub fn write<B: BufMut>(&self, out: &mut B) {
        out.put_slice(b"FLV");
        out.put_u8(self.version);
        out.put_u8(u8::from(self.has_audio) << 2 | u8::from(self.has_video));
        out.put_u32(FILE_HEADER_LEN as u32);
        out.put_u32(0);
    }
}

/// The kind of a tag (low 5 bits of its first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagType {
    /// 8: audio tag; body parsed by [`crate::AudioTag`].
    Audio,
    /// 9: video tag; body parsed by [`crate::VideoTag`].
    Video,
    /// 18: script data (AMF0), e.g. `onMetaData`; body parsed by [`crate::ScriptData`].
    Script,
    /// Any other 5-bit value, carried through untouched.
    Other(u8),
}

impl TagType {
    pub fn from_u8(v: u8) -> TagType {
        match v & 0x1F {
            8 => TagType::Audio,
            9 => TagType::Video,
            18 => TagType::Script,
            other => TagType::Other(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            TagType::Audio => 8,
            TagType::Video => 9,
            TagType::Script => 18,
            TagType::Other(v) => v & 0x1F,
        }
    }
}

/// The fields of an 11-byte tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagHeader {
    pub tag_type: TagType,
    /// Filter bit: the body is encrypted / pre-processed.
    pub filter: bool,
    pub data_size: u32,
    /// Milliseconds, with the extended byte as bits 24..32.
    pub timestamp: u32,
    pub stream_id: u32,
}

impl TagHeader {
    /// Parses the 11-byte tag header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<TagHeader> {
        let Some(h) = data.first_chunk::<TAG_HEADER_LEN>() else {
            return Err(Error::Truncated {
                what: "tag header",
                need: TAG_HEADER_LEN,
                have: data.len(),
            });
        };
        Ok(TagHeader {
            tag_type: TagType::from_u8(h[0]),
            filter: h[0] & 0x20 != 0,
            data_size: u32::from_be_bytes([0, h[1], h[2], h[3]]),
            timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
            stream_id: u32::from_be_bytes([0, h[8], h[9], h[10]]),
        })
    }

    /// Writes the 11-byte tag header.
    pub fn write<B: BufMut>(&self, out: &mut B) -> Result<()> {
        if self.data_size > MAX_TAG_BODY {
            return Err(Error::OutOfRange {
                what: "tag body size",
                value: i64::from(self.data_size),
            });
        }
        if self.stream_id > 0x00FF_FFFF {
            return Err(Error::OutOfRange {
                what: "tag stream id",
                value: i64::from(self.stream_id),
            });
        }
        out.put_u8(u8::from(self.filter) << 5 | self.tag_type.to_u8());
        put_u24(out, self.data_size);
        put_u24(out, self.timestamp & 0x00FF_FFFF);
        out.put_u8((self.timestamp >> 24) as u8);
        put_u24(out, self.stream_id);
        Ok(())
    }
}

/// One FLV tag: header fields and its body as a shared slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub tag_type: TagType,
    pub filter: bool,
    /// Milliseconds (decode time for video), 32 bits including the extended byte.
    pub timestamp: u32,
    /// Always 0 in files; kept for completeness.
    pub stream_id: u32,
    /// The tag body: an audio/video tag body or AMF0 script data.
    pub data: Bytes,
}

impl Tag {
    /// A tag of `tag_type` at `timestamp` ms with stream id 0 and no filter.
    pub fn new(tag_type: TagType, timestamp: u32, data: Bytes) -> Tag {
        Tag {
            tag_type,
            filter: false,
            timestamp,
            stream_id: 0,
            data,
        }
    }

    /// The header this tag is written with.
    pub fn header(&self) -> Result<TagHeader> {
        let data_size = u32::try_from(self.data.len())
            .ok()
            .filter(|s| *s <= MAX_TAG_BODY)
            .ok_or(Error::OutOfRange {
                what: "tag body size",
                value: i64::try_from(self.data.len()).unwrap_or(i64::MAX),
            })?;
        Ok(TagHeader {
            tag_type: self.tag_type,
            filter: self.filter,
            data_size,
            timestamp: self.timestamp,
            stream_id: self.stream_id,
        })
    }

    /// Bytes this tag takes in a file, including its trailing PreviousTagSize.
    pub fn encoded_len(&self) -> usize {
        TAG_HEADER_LEN + self.data.len() + PREVIOUS_TAG_SIZE_LEN
    }

    /// Writes the tag header, the body and the PreviousTagSize that follows it.
    pub fn write<B: BufMut>(&self, out: &mut B) -> Result<()> {
        write_tag(out, &self.header()?, &self.data)
    }
}

/// Writes a tag from parts: header (its `data_size` is replaced by `body.len()`),
/// body, then PreviousTagSize.
pub fn write_tag<B: BufMut>(out: &mut B, header: &TagHeader, body: &[u8]) -> Result<()> {
    let size = u32::try_from(body.len())
        .ok()
        .filter(|s| *s <= MAX_TAG_BODY)
        .ok_or(Error::OutOfRange {
            what: "tag body size",
            value: i64::try_from(body.len()).unwrap_or(i64::MAX),
        })?;
    let header = TagHeader {
        data_size: size,
        ..*header
    };
    header.write(out)?;
    out.put_slice(body);
    out.put_u32(size + TAG_HEADER_LEN as u32);
    Ok(())
}

pub(crate) fn put_u24<B: BufMut>(out: &mut B, v: u32) {
    let b = v.to_be_bytes();
    out.put_slice(&b[1..]);
}
