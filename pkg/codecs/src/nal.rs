//! Codec-independent NAL unit helpers: Annex-B ↔ length-prefixed (AVCC/HVCC)
//! framing, keyframe detection and parameter-set extraction for H.264 and H.265.

use bytes::{BufMut, Bytes};
use os_av::Codec;

use crate::annexb::nal_units;
use crate::error::CodecError;
use crate::{h264, h265};

/// Length-prefix size used by everything open-streamer writes (MP4, FLV).
pub const DEFAULT_LENGTH_SIZE: u8 = 4;

fn check_length_size(length_size: u8) -> Result<(), CodecError> {
    match length_size {
        1 | 2 | 4 => Ok(()),
        other => Err(CodecError::BadLengthSize(other)),
    }
}

fn put_length(out: &mut impl BufMut, len: usize, length_size: u8) -> Result<(), CodecError> {
    let too_large = CodecError::NalTooLarge {
        len,
        size: length_size,
    };
    match length_size {
        1 => out.put_u8(u8::try_from(len).map_err(|_| too_large)?),
        2 => out.put_u16(u16::try_from(len).map_err(|_| too_large)?),
        4 => out.put_u32(u32::try_from(len).map_err(|_| too_large)?),
        other => return Err(CodecError::BadLengthSize(other)),
    }
    Ok(())
}

/// Convert an Annex-B buffer to 4-byte length-prefixed NAL units, appending to `out`.
/// Empty NAL units are skipped. Returns the number of bytes appended.
pub fn annexb_to_length_prefixed(data: &[u8], out: &mut impl BufMut) -> Result<usize, CodecError> {
    annexb_to_length_prefixed_filtered(data, DEFAULT_LENGTH_SIZE, out, |_| true)
}

/// Convert an Annex-B buffer to length-prefixed NAL units of `length_size`
/// bytes (1, 2 or 4), keeping only the NAL units for which `keep` returns
/// true. Returns the number of bytes appended.
pub fn annexb_to_length_prefixed_filtered(
    data: &[u8],
    length_size: u8,
    out: &mut impl BufMut,
    mut keep: impl FnMut(&[u8]) -> bool,
) -> Result<usize, CodecError> {
    check_length_size(length_size)?;
    let mut written = 0usize;
    for nal in nal_units(data) {
        if nal.is_empty() || !keep(nal) {
            continue;
        }
        put_length(out, nal.len(), length_size)?;
        out.put_slice(nal);
        written += usize::from(length_size) + nal.len();
    }
    Ok(written)
}

/// Size in bytes of the length-prefixed form of `data` (4-byte lengths) when
/// only NAL units accepted by `keep` are kept.
pub fn length_prefixed_size(data: &[u8], mut keep: impl FnMut(&[u8]) -> bool) -> usize {
    nal_units(data)
        .filter(|n| !n.is_empty() && keep(n))
        .map(|n| n.len() + usize::from(DEFAULT_LENGTH_SIZE))
        .sum()
}

/// Iterator over the NAL units of a length-prefixed buffer.
///
/// Yields `Err(CodecError::Truncated)` once (and then stops) if a length runs
/// past the end of the buffer.
#[derive(Debug, Clone)]
pub struct LengthPrefixedNals<'a> {
    data: &'a [u8],
    length_size: usize,
    failed: bool,
}

impl<'a> Iterator for LengthPrefixedNals<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        let Some((len_bytes, rest)) = self.data.split_at_checked(self.length_size) else {
            self.failed = true;
            return Some(Err(CodecError::Truncated));
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some((nal, rest)) = rest.split_at_checked(len) else {
            self.failed = true;
            return Some(Err(CodecError::Truncated));
        };
        self.data = rest;
        Some(Ok(nal))
    }
}

/// Iterate the NAL units of a length-prefixed (AVCC/HVCC sample) buffer.
pub fn length_prefixed_nals(
    data: &[u8],
    length_size: u8,
) -> Result<LengthPrefixedNals<'_>, CodecError> {
    check_length_size(length_size)?;
    Ok(LengthPrefixedNals {
        data,
        length_size: usize::from(length_size),
        failed: false,
    })
}

/// Convert length-prefixed NAL units to Annex-B (4-byte start codes),
/// appending to `out`. Returns the number of bytes appended.
pub fn length_prefixed_to_annexb(
    data: &[u8],
    length_size: u8,
    out: &mut impl BufMut,
) -> Result<usize, CodecError> {
    let mut written = 0usize;
    for nal in length_prefixed_nals(data, length_size)? {
        let nal = nal?;
        out.put_slice(&[0, 0, 0, 1]);
        out.put_slice(nal);
        written += 4 + nal.len();
    }
    Ok(written)
}

/// Append one NAL unit to an Annex-B buffer with a 4-byte start code.
pub fn push_annexb(out: &mut impl BufMut, nal: &[u8]) {
    out.put_slice(&[0, 0, 0, 1]);
    out.put_slice(nal);
}

/// Whether an Annex-B access unit of `codec` is a random access point
/// (IDR for H.264, IRAP for H.265). Always true for audio codecs.
pub fn is_keyframe(codec: Codec, annexb_au: &[u8]) -> bool {
    match codec {
        Codec::H264 => h264::is_keyframe(annexb_au),
        Codec::H265 => h265::is_keyframe(annexb_au),
        Codec::Aac | Codec::Mp3 | Codec::Ac3 | Codec::Opus => true,
    }
}

/// Parameter sets found in an access unit (each without start code).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterSets {
    pub vps: Vec<Bytes>,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

impl ParameterSets {
    pub fn is_empty(&self) -> bool {
        self.vps.is_empty() && self.sps.is_empty() && self.pps.is_empty()
    }
}

/// Upper bound of parameter sets of one kind kept per access unit (guards
/// against hostile input made of thousands of tiny parameter sets).
pub const MAX_PARAMETER_SETS: usize = 32;

fn push_unique(list: &mut Vec<Bytes>, nal: Bytes) {
    if list.len() < MAX_PARAMETER_SETS && !list.contains(&nal) {
        list.push(nal);
    }
}

/// Collect the VPS/SPS/PPS NAL units of an Annex-B access unit. The returned
/// [`Bytes`] share `annexb_au`'s storage. Duplicates are dropped.
pub fn extract_parameter_sets(codec: Codec, annexb_au: &Bytes) -> ParameterSets {
    let mut sets = ParameterSets::default();
    for nal in nal_units(annexb_au) {
        let Some(&header) = nal.first() else {
            continue;
        };
        let kind = match codec {
            Codec::H264 => match h264::nal_type(header) {
                h264::NAL_SPS => 1,
                h264::NAL_PPS => 2,
                _ => 0,
            },
            Codec::H265 => match h265::nal_type(header) {
                h265::NAL_VPS => 3,
                h265::NAL_SPS => 1,
                h265::NAL_PPS => 2,
                _ => 0,
            },
            _ => 0,
        };
        let list = match kind {
            1 => &mut sets.sps,
            2 => &mut sets.pps,
            3 => &mut sets.vps,
            _ => continue,
        };
        push_unique(list, annexb_au.slice_ref(nal));
    }
    sets
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn annexb_length_prefixed_round_trip() {
        let annexb = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0, 0, 3, 1,
        ];
        let mut avcc = Vec::new();
        let n = annexb_to_length_prefixed(&annexb, &mut avcc).unwrap();
        assert_eq!(n, avcc.len());
        assert_eq!(
            avcc,
            [
                0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 5, 0x65, 0, 0, 3, 1
            ]
        );
        assert_eq!(length_prefixed_size(&annexb, |_| true), avcc.len());
        let mut back = Vec::new();
        length_prefixed_to_annexb(&avcc, 4, &mut back).unwrap();
        assert_eq!(
            back,
            [
                0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0, 0, 3, 1
            ]
        );
    }

    #[test]
    fn filtered_and_short_lengths() {
        let annexb = [0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 7];
        let mut out = Vec::new();
        annexb_to_length_prefixed_filtered(&annexb, 2, &mut out, |n| n[0] & 0x1f != 9).unwrap();
        assert_eq!(out, [0, 2, 0x65, 7]);
        let nals: Vec<_> = length_prefixed_nals(&out, 2).unwrap().collect();
        assert_eq!(nals, vec![Ok(&[0x65, 7][..])]);
        let mut out = Vec::new();
        let big = [&[0u8, 0, 1][..], &[0x65u8; 300][..]].concat();
        assert_eq!(
            annexb_to_length_prefixed_filtered(&big, 1, &mut out, |_| true),
            Err(CodecError::NalTooLarge { len: 300, size: 1 })
        );
        assert_eq!(
            annexb_to_length_prefixed_filtered(&big, 3, &mut out, |_| true),
            Err(CodecError::BadLengthSize(3))
        );
    }

    #[test]
    fn truncated_length_prefixed_is_error() {
        let mut out = Vec::new();
        assert_eq!(
            length_prefixed_to_annexb(&[0, 0, 0, 5, 1, 2], 4, &mut out),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            length_prefixed_to_annexb(&[0, 0], 4, &mut out),
            Err(CodecError::Truncated)
        );
        let v: Vec<_> = length_prefixed_nals(&[0, 0, 0, 9], 4).unwrap().collect();
        assert_eq!(v, vec![Err(CodecError::Truncated)]);
    }

    #[test]
    fn extracts_parameter_sets_without_copy() {
        let au = Bytes::from_static(&[
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x68, 3, 0,
            0, 1, 0x65, 9,
        ]);
        let sets = extract_parameter_sets(Codec::H264, &au);
        assert_eq!(sets.sps, vec![Bytes::from_static(&[0x67, 1, 2])]);
        assert_eq!(sets.pps, vec![Bytes::from_static(&[0x68, 3])]);
        assert!(sets.vps.is_empty());
        assert!(is_keyframe(Codec::H264, &au));
        assert!(is_keyframe(Codec::Aac, &[]));
    }
}
