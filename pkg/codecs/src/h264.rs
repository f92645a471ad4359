//! H.264 / AVC: NAL unit types, sequence parameter set parsing and the
//! AVCDecoderConfigurationRecord (`avcC`).

use bytes::{BufMut, Bytes};

use crate::annexb::nal_units;
use crate::bits::{BitReader, remove_emulation_prevention};
use crate::error::CodecError;

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;
pub const NAL_END_OF_SEQUENCE: u8 = 10;
pub const NAL_END_OF_STREAM: u8 = 11;
pub const NAL_FILLER: u8 = 12;
pub const NAL_SPS_EXT: u8 = 13;

/// `nal_unit_type` from the first byte of a NAL unit.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// Whether a NAL unit is a parameter set (SPS, PPS or SPS extension).
pub fn is_parameter_set(nal: &[u8]) -> bool {
    matches!(
        nal.first().map(|&h| nal_type(h)),
        Some(NAL_SPS | NAL_PPS | NAL_SPS_EXT)
    )
}

/// Whether an Annex-B access unit contains an IDR slice.
pub fn is_keyframe(annexb_au: &[u8]) -> bool {
    nal_units(annexb_au).any(|n| n.first().is_some_and(|&h| nal_type(h) == NAL_IDR))
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices.
fn has_high_profile_fields(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Profiles whose avcC carries the chroma/bit-depth extension bytes.
fn has_avcc_extension(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 144)
}

/// Frame cropping rectangle in luma samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crop {
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
}

/// VUI timing information.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub num_units_in_tick: u32,
    pub time_scale: u32,
    pub fixed_frame_rate: bool,
}

/// The fields of an H.264 sequence parameter set that packagers need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// `constraint_set0..5_flag` and the two reserved bits, as one byte.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    pub chroma_format_idc: u32,
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub log2_max_frame_num: u32,
    pub pic_order_cnt_type: u32,
    pub log2_max_pic_order_cnt_lsb: u32,
    pub max_num_ref_frames: u32,
    pub frame_mbs_only: bool,
    pub pic_width_in_mbs: u32,
    pub pic_height_in_map_units: u32,
    pub crop: Crop,
    /// Displayed width after cropping.
    pub width: u32,
    /// Displayed height after cropping.
    pub height: u32,
    /// Sample aspect ratio, when signalled.
    pub sar: Option<(u16, u16)>,
    pub timing: Option<Timing>,
}

impl Sps {
    /// Frame rate as `(numerator, denominator)` when VUI timing is present
    /// (`time_scale / (2 * num_units_in_tick)`), reduced.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        let t = self.timing?;
        let den = u64::from(t.num_units_in_tick) * 2;
        reduce(u64::from(t.time_scale), den)
    }
}

/// Reduce a fraction; `None` when either side is zero or does not fit u32.
pub(crate) fn reduce(num: u64, den: u64) -> Option<(u32, u32)> {
    if num == 0 || den == 0 {
        return None;
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    Some((u32::try_from(num / a).ok()?, u32::try_from(den / a).ok()?))
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last: i32 = 8;
    let mut next: i32 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::OutOfRange("delta_scale"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Sample aspect ratios of `aspect_ratio_idc` 1..=16 (shared with H.265).
pub(crate) fn sar_from_idc(idc: u8) -> Option<(u16, u16)> {
    const TABLE: [(u16, u16); 16] = [
        (1, 1),
        (12, 11),
        (10, 11),
        (16, 11),
        (40, 33),
        (24, 11),
        (20, 11),
        (32, 11),
        (80, 33),
        (18, 11),
        (15, 11),
        (64, 33),
        (160, 99),
        (4, 3),
        (3, 2),
        (2, 1),
    ];
    TABLE.get(usize::from(idc).checked_sub(1)?).copied()
}

/// Parse an H.264 SPS NAL unit (including its one-byte NAL header,
/// emulation-prevention bytes still present).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, CodecError> {
    let (&header, body) = nal.split_first().ok_or(CodecError::Truncated)?;
    if nal_type(header) != NAL_SPS {
        return Err(CodecError::Invalid("not an SPS NAL unit"));
    }
    let rbsp = remove_emulation_prevention(body);
    let mut r = BitReader::new(&rbsp);
    let mut sps = Sps {
        profile_idc: r.read_u8(8)?,
        constraint_flags: r.read_u8(8)?,
        level_idc: r.read_u8(8)?,
        seq_parameter_set_id: r.read_ue_max(31, "seq_parameter_set_id")?,
        chroma_format_idc: 1,
        bit_depth_luma: 8,
        bit_depth_chroma: 8,
        ..Sps::default()
    };
    if has_high_profile_fields(sps.profile_idc) {
        sps.chroma_format_idc = r.read_ue_max(3, "chroma_format_idc")?;
        if sps.chroma_format_idc == 3 {
            sps.separate_colour_plane = r.read_flag()?;
        }
        sps.bit_depth_luma = 8 + r.read_ue_max(6, "bit_depth_luma_minus8")? as u8;
        sps.bit_depth_chroma = 8 + r.read_ue_max(6, "bit_depth_chroma_minus8")? as u8;
        let _qpprime_y_zero_transform_bypass = r.read_flag()?;
        if r.read_flag()? {
            let lists = if sps.chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    sps.log2_max_frame_num = 4 + r.read_ue_max(12, "log2_max_frame_num_minus4")?;
    sps.pic_order_cnt_type = r.read_ue_max(2, "pic_order_cnt_type")?;
    match sps.pic_order_cnt_type {
        0 => {
            sps.log2_max_pic_order_cnt_lsb =
                4 + r.read_ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_flag()?;
            let _offset_for_non_ref_pic = r.read_se()?;
            let _offset_for_top_to_bottom_field = r.read_se()?;
            let cycle = r.read_ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.read_se()?;
            }
        }
        _ => {}
    }
    sps.max_num_ref_frames = r.read_ue_max(32, "max_num_ref_frames")?;
    let _gaps_in_frame_num_allowed = r.read_flag()?;
    // Cap at 16384 macroblocks per side (262144 luma samples): far above any level limit.
    sps.pic_width_in_mbs = 1 + r.read_ue_max(16383, "pic_width_in_mbs_minus1")?;
    sps.pic_height_in_map_units = 1 + r.read_ue_max(16383, "pic_height_in_map_units_minus1")?;
    sps.frame_mbs_only = r.read_flag()?;
    if !sps.frame_mbs_only {
        let _mb_adaptive_frame_field = r.read_flag()?;
    }
    let _direct_8x8_inference = r.read_flag()?;
    if r.read_flag()? {
        sps.crop = Crop {
            left: r.read_ue()?,
            right: r.read_ue()?,
            top: r.read_ue()?,
            bottom: r.read_ue()?,
        };
    }

    let chroma_array_type = if sps.separate_colour_plane {
        0
    } else {
        sps.chroma_format_idc
    };
    let (sub_w, sub_h): (u32, u32) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let field_factor = if sps.frame_mbs_only { 1 } else { 2 };
    let crop_unit_x = sub_w;
    let crop_unit_y = sub_h * field_factor;
    let coded_w = sps.pic_width_in_mbs * 16;
    let coded_h = sps.pic_height_in_map_units * 16 * field_factor;
    let crop_w = u64::from(sps.crop.left) + u64::from(sps.crop.right);
    let crop_h = u64::from(sps.crop.top) + u64::from(sps.crop.bottom);
    sps.width = u64::from(coded_w)
        .checked_sub(crop_w * u64::from(crop_unit_x))
        .filter(|&w| w > 0)
        .ok_or(CodecError::Invalid("frame cropping exceeds picture width"))? as u32;
    sps.height = u64::from(coded_h)
        .checked_sub(crop_h * u64::from(crop_unit_y))
        .filter(|&h| h > 0)
        .ok_or(CodecError::Invalid("frame cropping exceeds picture height"))?
        as u32;

    // VUI: only the fields up to timing_info are needed. A truncated VUI
    // leaves the already-parsed geometry valid, so errors there are ignored.
    if r.read_flag().unwrap_or(false) {
        let _ = parse_vui(&mut r, &mut sps);
    }
    Ok(sps)
}

fn parse_vui(r: &mut BitReader<'_>, sps: &mut Sps) -> Result<(), CodecError> {
    if r.read_flag()? {
        let idc = r.read_u8(8)?;
        sps.sar = if idc == 255 {
            Some((r.read_u16(16)?, r.read_u16(16)?))
        } else {
            sar_from_idc(idc)
        };
    }
    if r.read_flag()? {
        let _overscan_appropriate = r.read_flag()?;
    }
    if r.read_flag()? {
        let _video_format = r.read_bits(3)?;
        let _full_range = r.read_flag()?;
        if r.read_flag()? {
            r.skip(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.read_flag()? {
        let _top = r.read_ue()?;
        let _bottom = r.read_ue()?;
    }
    if r.read_flag()? {
        let timing = Timing {
            num_units_in_tick: r.read_u32(32)?,
            time_scale: r.read_u32(32)?,
            fixed_frame_rate: r.read_flag()?,
        };
        if timing.num_units_in_tick != 0 && timing.time_scale != 0 {
            sps.timing = Some(timing);
        }
    }
    Ok(())
}

/// Chroma format and bit depths carried by the avcC extension for high profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvcHighProfileExt {
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    pub sps_ext: Vec<Bytes>,
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15), the payload of an `avcC`
/// box and of an FLV AVC sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile_idc: u8,
    pub profile_compatibility: u8,
    pub level_idc: u8,
    /// Size of the NAL length prefix in samples (1, 2 or 4).
    pub nal_length_size: u8,
    /// SPS NAL units (with NAL header, no start code).
    pub sps: Vec<Bytes>,
    /// PPS NAL units.
    pub pps: Vec<Bytes>,
    /// Present for profiles 100/110/122/144 when the record carries it.
    pub high_profile_ext: Option<AvcHighProfileExt>,
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self.data.split_first().ok_or(CodecError::Truncated)?;
        self.data = rest;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let (head, rest) = self.data.split_at_checked(n).ok_or(CodecError::Truncated)?;
        self.data = rest;
        Ok(head)
    }

    fn nal(&mut self) -> Result<Bytes, CodecError> {
        let len = usize::from(self.u16()?);
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
}

pub(crate) fn put_nal_u16(out: &mut impl BufMut, nal: &[u8]) -> Result<(), CodecError> {
    let len = u16::try_from(nal.len()).map_err(|_| CodecError::NalTooLarge {
        len: nal.len(),
        size: 2,
    })?;
    out.put_u16(len);
    out.put_slice(nal);
    Ok(())
}

impl AvcDecoderConfig {
    /// Build a record from parameter sets (NAL units without start codes).
    /// Profile and level come from the first SPS; 4-byte NAL lengths.
    pub fn from_parameter_sets(sps: &[Bytes], pps: &[Bytes]) -> Result<Self, CodecError> {
        let first = sps.first().ok_or(CodecError::MissingParameterSet("SPS"))?;
        if pps.is_empty() {
            return Err(CodecError::MissingParameterSet("PPS"));
        }
        if sps.len() > 31 {
            return Err(CodecError::OutOfRange("more than 31 SPS"));
        }
        if pps.len() > 255 {
            return Err(CodecError::OutOfRange("more than 255 PPS"));
        }
        let parsed = parse_sps(first)?;
        let high_profile_ext = has_avcc_extension(parsed.profile_idc).then(|| AvcHighProfileExt {
            chroma_format_idc: parsed.chroma_format_idc as u8,
            bit_depth_luma_minus8: parsed.bit_depth_luma - 8,
            bit_depth_chroma_minus8: parsed.bit_depth_chroma - 8,
            sps_ext: Vec::new(),
        });
        Ok(Self {
            profile_idc: parsed.profile_idc,
            profile_compatibility: parsed.constraint_flags,
            level_idc: parsed.level_idc,
            nal_length_size: 4,
            sps: sps.to_vec(),
            pps: pps.to_vec(),
            high_profile_ext,
        })
    }

    /// Parse a record. The high-profile extension is optional (many muxers omit it).
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor { data };
        let version = c.u8()?;
        if version != 1 {
            return Err(CodecError::Unsupported("avcC configurationVersion != 1"));
        }
        let profile_idc = c.u8()?;
        let profile_compatibility = c.u8()?;
        let level_idc = c.u8()?;
        let nal_length_size = (c.u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::BadLengthSize(3));
        }
        let num_sps = c.u8()? & 0x1f;
        let mut sps = Vec::with_capacity(usize::from(num_sps));
        for _ in 0..num_sps {
            sps.push(c.nal()?);
        }
        let num_pps = c.u8()?;
        let mut pps = Vec::new();
        for _ in 0..num_pps {
            pps.push(c.nal()?);
        }
        let mut high_profile_ext = None;
        if has_avcc_extension(profile_idc) && c.data.len() >= 4 {
            let mut ext = AvcHighProfileExt {
                chroma_format_idc: c.u8()? & 0x03,
                bit_depth_luma_minus8: c.u8()? & 0x07,
                bit_depth_chroma_minus8: c.u8()? & 0x07,
                sps_ext: Vec::new(),
            };
            let n = c.u8()?;
            for _ in 0..n {
                ext.sps_ext.push(c.nal()?);
            }
            high_profile_ext = Some(ext);
        }
        Ok(Self {
            profile_idc,
            profile_compatibility,
            level_idc,
            nal_length_size,
            sps,
            pps,
            high_profile_ext,
        })
    }

    /// Serialize the record (the `avcC` box payload).
    pub fn write(&self, out: &mut impl BufMut) -> Result<(), CodecError> {
        let length_bits = match self.nal_length_size {
            1 => 0,
            2 => 1,
            4 => 3,
            other => return Err(CodecError::BadLengthSize(other)),
        };
        if self.sps.len() > 31 {
            return Err(CodecError::OutOfRange("more than 31 SPS"));
        }
        let num_pps = u8::try_from(self.pps.len())
            .map_err(|_| CodecError::OutOfRange("more than 255 PPS"))?;
        out.put_u8(1);
        out.put_u8(self.profile_idc);
        out.put_u8(self.profile_compatibility);
        out.put_u8(self.level_idc);
        out.put_u8(0xfc | length_bits);
        out.put_u8(0xe0 | self.sps.len() as u8);
        for s in &self.sps {
            put_nal_u16(out, s)?;
        }
        out.put_u8(num_pps);
        for p in &self.pps {
            put_nal_u16(out, p)?;
        }
        if let Some(ext) = &self.high_profile_ext {
            let n = u8::try_from(ext.sps_ext.len())
                .map_err(|_| CodecError::OutOfRange("more than 255 SPS extensions"))?;
            out.put_u8(0xfc | (ext.chroma_format_idc & 0x03));
            out.put_u8(0xf8 | (ext.bit_depth_luma_minus8 & 0x07));
            out.put_u8(0xf8 | (ext.bit_depth_chroma_minus8 & 0x07));
            out.put_u8(n);
            for s in &ext.sps_ext {
                put_nal_u16(out, s)?;
            }
        }
        Ok(())
    }

    /// Serialize into a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>, CodecError> {
        let mut v = Vec::new();
        self.write(&mut v)?;
        Ok(v)
    }
}

/// NAL length size declared by an avcC record, read without parsing the rest.
pub fn avcc_nal_length_size(record: &[u8]) -> Result<u8, CodecError> {
    let b = *record.get(4).ok_or(CodecError::Truncated)?;
    match (b & 0x03) + 1 {
        3 => Err(CodecError::BadLengthSize(3)),
        n => Ok(n),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bits::{BitWriter, add_emulation_prevention};

    /// Build a baseline-like SPS with the given geometry and optional VUI timing.
    fn synth_sps(
        profile: u8,
        mbs_w: u32,
        mbs_h: u32,
        crop: Option<[u32; 4]>,
        fps: bool,
    ) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.write_bits(u64::from(profile), 8);
        w.write_bits(0xc0, 8);
        w.write_bits(31, 8);
        w.write_ue(0);
        if has_high_profile_fields(profile) {
            w.write_ue(1); // chroma_format_idc
            w.write_ue(0);
            w.write_ue(0);
            w.write_bit(false);
            w.write_bit(true); // seq_scaling_matrix_present
            for i in 0..8 {
                w.write_bit(i == 0 || i == 6);
                if i == 0 {
                    for _ in 0..16 {
                        w.write_se(1);
                    }
                } else if i == 6 {
                    w.write_se(-8); // next_scale = 0 → rest uses last
                }
            }
        }
        w.write_ue(0); // log2_max_frame_num_minus4
        w.write_ue(0); // poc type 0
        w.write_ue(2);
        w.write_ue(1); // max_num_ref_frames
        w.write_bit(false);
        w.write_ue(mbs_w - 1);
        w.write_ue(mbs_h - 1);
        w.write_bit(true); // frame_mbs_only
        w.write_bit(true); // direct_8x8
        match crop {
            Some(c) => {
                w.write_bit(true);
                for v in c {
                    w.write_ue(v);
                }
            }
            None => w.write_bit(false),
        }
        w.write_bit(fps);
        if fps {
            w.write_bit(true); // aspect ratio
            w.write_bits(1, 8);
            w.write_bit(false);
            w.write_bit(false);
            w.write_bit(false);
            w.write_bit(true);
            w.write_bits(1001, 32);
            w.write_bits(60_000, 32);
            w.write_bit(true);
        }
        let mut nal = vec![0x67];
        nal.extend(add_emulation_prevention(&w.finish_rbsp()));
        nal
    }

    #[test]
    fn parses_synthetic_sps_with_crop_and_timing() {
        let nal = synth_sps(100, 120, 68, Some([0, 0, 0, 4]), true);
        let sps = parse_sps(&nal).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.constraint_flags, 0xc0);
        assert_eq!(sps.level_idc, 31);
        assert_eq!(sps.sar, Some((1, 1)));
        assert_eq!(sps.frame_rate(), Some((30_000, 1001)));
        let nal = synth_sps(66, 20, 15, None, false);
        let sps = parse_sps(&nal).unwrap();
        assert_eq!((sps.width, sps.height), (320, 240));
        assert_eq!(sps.frame_rate(), None);
    }

    #[test]
    fn rejects_bad_crop_and_truncation() {
        let nal = synth_sps(66, 2, 2, Some([20, 0, 0, 0]), false);
        assert!(parse_sps(&nal).is_err());
        let nal = synth_sps(100, 20, 15, None, false);
        for len in 0..6 {
            assert!(parse_sps(&nal[..len]).is_err());
        }
        assert!(parse_sps(&[0x68, 1, 2, 3]).is_err());
    }

    #[test]
    fn avcc_round_trip() {
        let sps = Bytes::from(synth_sps(100, 20, 15, None, true));
        let pps = Bytes::from_static(&[0x68, 0xee, 0x3c, 0x80]);
        let cfg = AvcDecoderConfig::from_parameter_sets(
            std::slice::from_ref(&sps),
            std::slice::from_ref(&pps),
        )
        .unwrap();
        assert!(cfg.high_profile_ext.is_some());
        let bytes = cfg.to_vec().unwrap();
        assert_eq!(avcc_nal_length_size(&bytes), Ok(4));
        assert_eq!(AvcDecoderConfig::parse(&bytes).unwrap(), cfg);
        // Truncations never panic and error out (except the optional extension).
        for len in 0..bytes.len() - 4 {
            assert!(AvcDecoderConfig::parse(&bytes[..len]).is_err(), "len {len}");
        }
        let no_ext = AvcDecoderConfig::parse(&bytes[..bytes.len() - 4]).unwrap();
        assert_eq!(no_ext.high_profile_ext, None);
    }
}
