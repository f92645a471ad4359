//! ISO BMFF box writing with size back-patching.

use bytes::{BufMut, BytesMut};

use crate::error::Fmp4Error;

/// A growable output buffer the writer can append to and patch.
pub trait Output: BufMut {
    /// Bytes written so far.
    fn position(&self) -> usize;
    /// Mutable view of everything written so far (for back-patching).
    fn written_mut(&mut self) -> &mut [u8];
}

impl Output for Vec<u8> {
    fn position(&self) -> usize {
        self.len()
    }

    fn written_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl Output for BytesMut {
    fn position(&self) -> usize {
        self.len()
    }

    fn written_mut(&mut self) -> &mut [u8] {
        self.as_mut()
    }
}

/// An open box: remembers where its size field is.
#[must_use = "a box must be closed with BoxStart::end"]
pub(crate) struct BoxStart {
    pos: usize,
}

impl BoxStart {
    /// Start a plain box.
    pub(crate) fn begin(out: &mut impl Output, fourcc: &[u8; 4]) -> Self {
        let pos = out.position();
        out.put_u32(0);
        out.put_slice(fourcc);
        Self { pos }
    }

    /// Start a full box (version + 24-bit flags).
    pub(crate) fn begin_full(
        out: &mut impl Output,
        fourcc: &[u8; 4],
        version: u8,
        flags: u32,
    ) -> Self {
        let b = Self::begin(out, fourcc);
        out.put_u32(u32::from(version) << 24 | (flags & 0x00ff_ffff));
        b
    }

    /// Offset of the box's first byte in the output.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// Close the box, writing its size. Returns the size.
    pub(crate) fn end(self, out: &mut impl Output) -> Result<u32, Fmp4Error> {
        let size = out.position().saturating_sub(self.pos);
        let size = u32::try_from(size).map_err(|_| Fmp4Error::TooLarge("box over 4 GiB"))?;
        patch_u32(out, self.pos, size)?;
        Ok(size)
    }
}

/// Overwrite four bytes at `pos` with a big-endian u32.
pub(crate) fn patch_u32(out: &mut impl Output, pos: usize, value: u32) -> Result<(), Fmp4Error> {
    let slot = pos
        .checked_add(4)
        .and_then(|end| out.written_mut().get_mut(pos..end))
        .ok_or(Fmp4Error::Internal("patch position outside output"))?;
    slot.copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// Write a complete box whose payload is `body`.
pub(crate) fn write_box(
    out: &mut impl Output,
    fourcc: &[u8; 4],
    body: &[u8],
) -> Result<(), Fmp4Error> {
    let b = BoxStart::begin(out, fourcc);
    out.put_slice(body);
    b.end(out).map(|_| ())
}

/// The unity transformation matrix of mvhd/tkhd.
pub(crate) fn put_unity_matrix(out: &mut impl Output) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        out.put_u32(v);
    }
}
