//! Sans-IO FLV tag reader: push bytes in whatever chunks arrive, pull tags out.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::tag::{
    FILE_HEADER_LEN, FlvHeader, MAX_TAG_BODY, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN, Tag, TagHeader,
};

/// Largest header data offset accepted (the header is 9 bytes; anything far
/// beyond is garbage, not an extended header).
const MAX_DATA_OFFSET: u32 = 4096;

/// Reader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Expect the 9-byte file header (and PreviousTagSize0) before the first tag.
    /// Set to `false` for a bare sequence of `tag PreviousTagSize` records.
    pub expect_header: bool,
    /// Largest tag body accepted; larger tags fail with [`Error::TagTooLarge`].
    pub max_tag_size: u32,
    /// Fail with [`Error::PreviousTagSize`] when a PreviousTagSize field is wrong.
    /// When `false` (the default, as some muxers write wrong values) mismatches
    /// are only counted, see [`FlvReader::previous_tag_size_mismatches`].
    pub strict_previous_tag_size: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            expect_header: true,
            max_tag_size: MAX_TAG_BODY,
            strict_previous_tag_size: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the file header.
    Header,
    /// Skipping the rest of an extended header.
    SkipHeader(usize),
    /// Waiting for a PreviousTagSize field that should hold this value.
    PreviousSize(u32),
    /// Waiting for a tag header.
    TagHeader,
    /// Waiting for the body of a tag whose header has been read.
    Body(TagHeader),
    /// A malformed stream was detected; every later pull repeats the error.
    Failed(Error),
}

/// Push/pull FLV reader.
///
/// ```
/// # use os_flv::{FlvReader, TagType};
/// let mut reader = FlvReader::new();
/// reader.push(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
/// // Script tag header announcing a 1-byte body at 0 ms.
/// reader.push(b"\x12\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00");
/// assert_eq!(reader.pull(), Ok(None)); // body still missing
/// reader.push(b"\x05\x00\x00\x00\x0c");
/// let tag = reader.pull().unwrap().unwrap();
/// assert_eq!(tag.tag_type, TagType::Script);
/// assert_eq!(&tag.data[..], b"\x05");
/// assert_eq!(reader.pull(), Ok(None));
/// reader.finish().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FlvReader {
    buf: BytesMut,
    state: State,
    opts: ReaderOptions,
    header: Option<FlvHeader>,
    consumed: u64,
    mismatches: u64,
}

impl Default for FlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvReader {
    /// A reader for a complete FLV stream (header first), default options.
    pub fn new() -> Self {
        Self::with_options(ReaderOptions::default())
    }

    pub fn with_options(opts: ReaderOptions) -> Self {
        Self {
            buf: BytesMut::new(),
            state: if opts.expect_header {
                State::Header
            } else {
                State::TagHeader
            },
            opts,
            header: None,
            consumed: 0,
            mismatches: 0,
        }
    }

    /// Appends input bytes. Nothing is parsed until [`FlvReader::pull`].
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Appends input held in a [`Bytes`]; when nothing is buffered and `data`
    /// is not shared, its storage is adopted without copying.
    pub fn push_bytes(&mut self, data: Bytes) {
        if self.buf.is_empty() {
            match data.try_into_mut() {
                Ok(owned) => self.buf = owned,
                Err(shared) => self.buf.extend_from_slice(&shared),
            }
        } else {
            self.buf.extend_from_slice(&data);
        }
    }

    /// The file header, once it has been read.
    pub fn header(&self) -> Option<&FlvHeader> {
        self.header.as_ref()
    }

    /// Bytes received but not yet returned as part of a tag or header.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Stream offset of the next unread byte. Right after a tag was pulled this
    /// is the end of its body, so the tag started at
    /// `position() - 11 - tag.data.len()`.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// How many PreviousTagSize fields did not match (non-strict mode).
    pub fn previous_tag_size_mismatches(&self) -> u64 {
        self.mismatches
    }

    /// Returns the next complete tag, `Ok(None)` if more input is needed, or
    /// the error that made the stream unreadable (repeated on every later call).
    pub fn pull(&mut self) -> Result<Option<Tag>> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        match self.step() {
            Ok(tag) => Ok(tag),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// Declares the end of input: fails if the header or a tag was cut short
    /// (or nothing was received). Call after `pull` returned `Ok(None)` or a
    /// tag; the final PreviousTagSize may be present, unread, or missing.
    pub fn finish(&self) -> Result<()> {
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::TagHeader if self.buf.is_empty() => Ok(()),
            State::PreviousSize(_) if self.buf.is_empty() => Ok(()),
            State::PreviousSize(expected) if self.buf.len() == PREVIOUS_TAG_SIZE_LEN => {
                let found = self
                    .buf
                    .first_chunk::<PREVIOUS_TAG_SIZE_LEN>()
                    .map_or(0, |b| u32::from_be_bytes(*b));
                if self.opts.strict_previous_tag_size && found != *expected {
                    Err(Error::PreviousTagSize {
                        expected: *expected,
                        found,
                    })
                } else {
                    Ok(())
                }
            }
            _ => Err(Error::UnexpectedEnd(self.buf.len())),
        }
    }

    fn advance(&mut self, n: usize) {
        self.buf.advance(n);
        self.consumed += n as u64;
    }

    fn step(&mut self) -> Result<Option<Tag>> {
        loop {
            match self.state.clone() {
                State::Failed(e) => return Err(e),
                State::Header => {
                    if self.buf.len() < FILE_HEADER_LEN {
                        // Reject a wrong signature as early as possible.
                        if !b"FLV".starts_with(&self.buf[..self.buf.len().min(3)]) {
                            let mut sig = [0u8; 3];
                            for (d, s) in sig.iter_mut().zip(self.buf.iter()) {
                                *d = *s;
                            }
                            return Err(Error::BadSignature(sig));
                        }
                        return Ok(None);
                    }
                    let (header, offset) = FlvHeader::parse(&self.buf)?;
                    if !(FILE_HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&offset) {
                        return Err(Error::BadDataOffset(offset));
                    }
                    self.header = Some(header);
                    self.advance(FILE_HEADER_LEN);
                    self.state = State::SkipHeader(offset as usize - FILE_HEADER_LEN);
                }
                State::SkipHeader(n) => {
                    let take = n.min(self.buf.len());
                    self.advance(take);
                    if take < n {
                        self.state = State::SkipHeader(n - take);
                        return Ok(None);
                    }
                    self.state = State::PreviousSize(0);
                }
                State::PreviousSize(expected) => {
                    let Some(b) = self.buf.first_chunk::<PREVIOUS_TAG_SIZE_LEN>() else {
                        return Ok(None);
                    };
                    let found = u32::from_be_bytes(*b);
                    if found != expected {
                        if self.opts.strict_previous_tag_size {
                            return Err(Error::PreviousTagSize { expected, found });
                        }
                        self.mismatches += 1;
                    }
                    self.advance(PREVIOUS_TAG_SIZE_LEN);
                    self.state = State::TagHeader;
                }
                State::TagHeader => {
                    if self.buf.len() < TAG_HEADER_LEN {
                        return Ok(None);
                    }
                    let header = TagHeader::parse(&self.buf)?;
                    if header.data_size > self.opts.max_tag_size {
                        return Err(Error::TagTooLarge {
                            size: header.data_size,
                            max: self.opts.max_tag_size,
                        });
                    }
                    self.state = State::Body(header);
                }
                State::Body(header) => {
                    let total = TAG_HEADER_LEN + header.data_size as usize;
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    let mut raw = self.buf.split_to(total).freeze();
                    self.consumed += total as u64;
                    raw.advance(TAG_HEADER_LEN);
                    self.state = State::PreviousSize(total as u32);
                    return Ok(Some(Tag {
                        tag_type: header.tag_type,
                        filter: header.filter,
                        timestamp: header.timestamp,
                        stream_id: header.stream_id,
                        data: raw,
                    }));
                }
            }
        }
    }
}
