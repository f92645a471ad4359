//! H.265 / HEVC: NAL unit types, profile_tier_level and sequence parameter set
//! parsing, and the HEVCDecoderConfigurationRecord (`hvcC`).

use bytes::{BufMut, Bytes};

use crate::annexb::nal_units;
use crate::bits::{BitReader, remove_emulation_prevention};
use crate::error::CodecError;
use crate::h264::{put_nal_u16, reduce, sar_from_idc};

pub const NAL_BLA_W_LP: u8 = 16;
pub const NAL_IDR_W_RADL: u8 = 19;
pub const NAL_IDR_N_LP: u8 = 20;
pub const NAL_CRA: u8 = 21;
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;
pub const NAL_EOS: u8 = 36;
pub const NAL_EOB: u8 = 37;
pub const NAL_FILLER: u8 = 38;
pub const NAL_PREFIX_SEI: u8 = 39;
pub const NAL_SUFFIX_SEI: u8 = 40;

/// `nal_unit_type` from the first byte of a NAL unit header.
pub fn nal_type(header: u8) -> u8 {
    (header >> 1) & 0x3f
}

/// Whether a NAL unit type is an intra random access point (16..=23).
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// Whether a NAL unit is a VPS, SPS or PPS.
pub fn is_parameter_set(nal: &[u8]) -> bool {
    matches!(
        nal.first().map(|&h| nal_type(h)),
        Some(NAL_VPS | NAL_SPS | NAL_PPS)
    )
}

/// Whether an Annex-B access unit contains an IRAP picture.
pub fn is_keyframe(annexb_au: &[u8]) -> bool {
    nal_units(annexb_au).any(|n| n.first().is_some_and(|&h| is_irap(nal_type(h))))
}

/// The general part of `profile_tier_level()` (sub-layer fields are parsed and skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileTierLevel {
    pub profile_space: u8,
    pub tier_flag: bool,
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[0..32]`, flag 0 in the MSB.
    pub compatibility_flags: u32,
    /// The 48 bits from `general_progressive_source_flag` on, in the low bits.
    pub constraint_indicator_flags: u64,
    pub level_idc: u8,
}

impl ProfileTierLevel {
    /// The six constraint-indicator bytes, first byte first.
    pub fn constraint_bytes(&self) -> [u8; 6] {
        let b = self.constraint_indicator_flags.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }
}

/// Parse `profile_tier_level(1, max_sub_layers_minus1)`.
pub fn parse_profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
) -> Result<ProfileTierLevel, CodecError> {
    let ptl = ProfileTierLevel {
        profile_space: r.read_u8(2)?,
        tier_flag: r.read_flag()?,
        profile_idc: r.read_u8(5)?,
        compatibility_flags: r.read_u32(32)?,
        constraint_indicator_flags: r.read_bits(48)?,
        level_idc: r.read_u8(8)?,
    };
    let n = usize::from(max_sub_layers_minus1.min(7));
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(n) {
        *p = (r.read_flag()?, r.read_flag()?);
    }
    if n > 0 {
        r.skip(2 * (8 - n))?; // reserved_zero_2bits
    }
    for &(profile_present, level_present) in present.iter().take(n) {
        if profile_present {
            r.skip(88)?;
        }
        if level_present {
            r.skip(8)?;
        }
    }
    Ok(ptl)
}

/// Conformance window offsets, in chroma units as coded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConformanceWindow {
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
}

/// The fields of an H.265 sequence parameter set that packagers need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sps {
    pub vps_id: u8,
    pub max_sub_layers_minus1: u8,
    pub temporal_id_nesting: bool,
    pub ptl: ProfileTierLevel,
    pub sps_id: u32,
    pub chroma_format_idc: u32,
    pub separate_colour_plane: bool,
    pub pic_width_in_luma_samples: u32,
    pub pic_height_in_luma_samples: u32,
    pub conformance_window: ConformanceWindow,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub log2_max_pic_order_cnt_lsb: u32,
    /// Displayed width after the conformance window.
    pub width: u32,
    /// Displayed height after the conformance window.
    pub height: u32,
    pub sar: Option<(u16, u16)>,
    pub timing: Option<Timing>,
}

impl Sps {
    /// Frame rate as `(numerator, denominator)` when VUI timing is present
    /// (`time_scale / num_units_in_tick`), reduced.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        let t = self.timing?;
        reduce(u64::from(t.time_scale), u64::from(t.num_units_in_tick))
    }
}

fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _matrix_id in (0..6).step_by(step) {
            if !r.read_flag()? {
                let _pred_matrix_id_delta =
                    r.read_ue_max(5, "scaling_list_pred_matrix_id_delta")?;
            } else {
                let coef_num = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    let _dc_coef_minus8 = r.read_se()?;
                }
                for _ in 0..coef_num {
                    let _delta_coef = r.read_se()?;
                }
            }
        }
    }
    Ok(())
}

/// Upper bound of `num_short_term_ref_pic_sets` (spec: 0..=64).
const MAX_ST_RPS: usize = 64;
/// Upper bound of pictures in one short-term RPS (spec: sps_max_dec_pic_buffering <= 16).
const MAX_RPS_PICS: u32 = 16;

/// Parse `st_ref_pic_set(idx)` as found in an SPS; returns NumDeltaPocs.
fn parse_st_ref_pic_set(
    r: &mut BitReader<'_>,
    idx: usize,
    num_delta_pocs: &[u32],
) -> Result<u32, CodecError> {
    let inter_rps_pred = idx != 0 && r.read_flag()?;
    if inter_rps_pred {
        // In an SPS delta_idx_minus1 is absent, so the reference set is idx - 1.
        let ref_pocs = *num_delta_pocs
            .get(idx.wrapping_sub(1))
            .ok_or(CodecError::Invalid("st_ref_pic_set reference"))?;
        let _delta_rps_sign = r.read_flag()?;
        let _abs_delta_rps_minus1 = r.read_ue_max(1 << 15, "abs_delta_rps_minus1")?;
        let mut count = 0u32;
        for _ in 0..=ref_pocs {
            let used_by_curr_pic = r.read_flag()?;
            let use_delta = used_by_curr_pic || r.read_flag()?;
            if use_delta {
                count += 1;
            }
        }
        if count > MAX_RPS_PICS {
            return Err(CodecError::OutOfRange("NumDeltaPocs"));
        }
        Ok(count)
    } else {
        let negative = r.read_ue_max(MAX_RPS_PICS, "num_negative_pics")?;
        let positive = r.read_ue_max(MAX_RPS_PICS, "num_positive_pics")?;
        if negative + positive > MAX_RPS_PICS {
            return Err(CodecError::OutOfRange("NumDeltaPocs"));
        }
        for _ in 0..negative + positive {
            let _delta_poc_minus1 = r.read_ue_max(1 << 15, "delta_poc_minus1")?;
            let _used_by_curr_pic = r.read_flag()?;
        }
        Ok(negative + positive)
    }
}

/// Parse an H.265 SPS NAL unit (including its two-byte NAL header,
/// emulation-prevention bytes still present).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, CodecError> {
    let header = *nal.first().ok_or(CodecError::Truncated)?;
    if nal_type(header) != NAL_SPS {
        return Err(CodecError::Invalid("not an SPS NAL unit"));
    }
    let body = nal.get(2..).ok_or(CodecError::Truncated)?;
    let rbsp = remove_emulation_prevention(body);
    let mut r = BitReader::new(&rbsp);

    let vps_id = r.read_u8(4)?;
    let max_sub_layers_minus1 = r.read_u8(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(CodecError::OutOfRange("sps_max_sub_layers_minus1"));
    }
    let temporal_id_nesting = r.read_flag()?;
    let ptl = parse_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let mut sps = Sps {
        vps_id,
        max_sub_layers_minus1,
        temporal_id_nesting,
        ptl,
        sps_id: r.read_ue_max(15, "sps_seq_parameter_set_id")?,
        chroma_format_idc: r.read_ue_max(3, "chroma_format_idc")?,
        ..Sps::default()
    };
    if sps.chroma_format_idc == 3 {
        sps.separate_colour_plane = r.read_flag()?;
    }
    // 16888 is the level 6.2 limit (sqrt(MaxLumaPs * 8)); allow some headroom.
    sps.pic_width_in_luma_samples = r.read_ue_max(65_535, "pic_width_in_luma_samples")?;
    sps.pic_height_in_luma_samples = r.read_ue_max(65_535, "pic_height_in_luma_samples")?;
    if r.read_flag()? {
        sps.conformance_window = ConformanceWindow {
            left: r.read_ue()?,
            right: r.read_ue()?,
            top: r.read_ue()?,
            bottom: r.read_ue()?,
        };
    }
    sps.bit_depth_luma = 8 + r.read_ue_max(8, "bit_depth_luma_minus8")? as u8;
    sps.bit_depth_chroma = 8 + r.read_ue_max(8, "bit_depth_chroma_minus8")? as u8;
    sps.log2_max_pic_order_cnt_lsb = 4 + r.read_ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;

    let chroma_array_type = if sps.separate_colour_plane {
        0
    } else {
        sps.chroma_format_idc
    };
    let (sub_w, sub_h): (u64, u64) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let cw = sps.conformance_window;
    sps.width = u64::from(sps.pic_width_in_luma_samples)
        .checked_sub(sub_w * (u64::from(cw.left) + u64::from(cw.right)))
        .filter(|&w| w > 0)
        .ok_or(CodecError::Invalid(
            "conformance window exceeds picture width",
        ))? as u32;
    sps.height = u64::from(sps.pic_height_in_luma_samples)
        .checked_sub(sub_h * (u64::from(cw.top) + u64::from(cw.bottom)))
        .filter(|&h| h > 0)
        .ok_or(CodecError::Invalid(
            "conformance window exceeds picture height",
        ))? as u32;

    // Everything below only matters for the VUI (SAR, frame rate). A damaged
    // tail leaves the geometry above valid, so errors there are ignored.
    let _ = parse_sps_tail(&mut r, &mut sps);
    Ok(sps)
}

fn parse_sps_tail(r: &mut BitReader<'_>, sps: &mut Sps) -> Result<(), CodecError> {
    let ordering_info_present = r.read_flag()?;
    let first = if ordering_info_present {
        0
    } else {
        sps.max_sub_layers_minus1
    };
    for _ in first..=sps.max_sub_layers_minus1 {
        let _max_dec_pic_buffering_minus1 = r.read_ue_max(15, "sps_max_dec_pic_buffering")?;
        let _max_num_reorder_pics = r.read_ue_max(15, "sps_max_num_reorder_pics")?;
        let _max_latency_increase_plus1 = r.read_ue()?;
    }
    let _log2_min_luma_coding_block_size_minus3 = r.read_ue()?;
    let _log2_diff_max_min_luma_coding_block_size = r.read_ue()?;
    let _log2_min_luma_transform_block_size_minus2 = r.read_ue()?;
    let _log2_diff_max_min_luma_transform_block_size = r.read_ue()?;
    let _max_transform_hierarchy_depth_inter = r.read_ue()?;
    let _max_transform_hierarchy_depth_intra = r.read_ue()?;
    if r.read_flag()? && r.read_flag()? {
        skip_scaling_list_data(r)?;
    }
    let _amp_enabled = r.read_flag()?;
    let _sample_adaptive_offset_enabled = r.read_flag()?;
    if r.read_flag()? {
        // pcm sample bit depths (4 + 4), block sizes, loop filter flag
        r.skip(8)?;
        let _log2_min_pcm_luma_coding_block_size_minus3 = r.read_ue()?;
        let _log2_diff_max_min_pcm_luma_coding_block_size = r.read_ue()?;
        let _pcm_loop_filter_disabled = r.read_flag()?;
    }
    let num_st_rps = r.read_ue_max(MAX_ST_RPS as u32, "num_short_term_ref_pic_sets")? as usize;
    let mut num_delta_pocs = Vec::with_capacity(num_st_rps);
    for idx in 0..num_st_rps {
        let n = parse_st_ref_pic_set(r, idx, &num_delta_pocs)?;
        num_delta_pocs.push(n);
    }
    if r.read_flag()? {
        let num_lt = r.read_ue_max(32, "num_long_term_ref_pics_sps")?;
        for _ in 0..num_lt {
            r.skip(sps.log2_max_pic_order_cnt_lsb as usize + 1)?;
        }
    }
    let _temporal_mvp_enabled = r.read_flag()?;
    let _strong_intra_smoothing_enabled = r.read_flag()?;
    if r.read_flag()? {
        parse_vui(r, sps)?;
    }
    Ok(())
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
            r.skip(24)?;
        }
    }
    if r.read_flag()? {
        let _top = r.read_ue()?;
        let _bottom = r.read_ue()?;
    }
    let _neutral_chroma_indication = r.read_flag()?;
    let _field_seq = r.read_flag()?;
    let _frame_field_info_present = r.read_flag()?;
    if r.read_flag()? {
        // default display window
        for _ in 0..4 {
            let _ = r.read_ue()?;
        }
    }
    if r.read_flag()? {
        let timing = Timing {
            num_units_in_tick: r.read_u32(32)?,
            time_scale: r.read_u32(32)?,
        };
        if timing.num_units_in_tick != 0 && timing.time_scale != 0 {
            sps.timing = Some(timing);
        }
    }
    Ok(())
}

/// One array of an hvcC record: all NAL units of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HvccArray {
    pub array_completeness: bool,
    pub nal_unit_type: u8,
    pub nalus: Vec<Bytes>,
}

/// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15), the payload of an `hvcC` box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcDecoderConfig {
    pub ptl: ProfileTierLevel,
    pub min_spatial_segmentation_idc: u16,
    pub parallelism_type: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// Average frame rate in frames per 256 seconds (0 = unspecified).
    pub avg_frame_rate: u16,
    pub constant_frame_rate: u8,
    pub num_temporal_layers: u8,
    pub temporal_id_nested: bool,
    /// Size of the NAL length prefix in samples (1, 2 or 4).
    pub nal_length_size: u8,
    pub arrays: Vec<HvccArray>,
}

/// Largest number of arrays / NAL units per array accepted when parsing.
const MAX_HVCC_NALUS: usize = 256;

impl HevcDecoderConfig {
    /// Build a record from VPS/SPS/PPS NAL units (without start codes).
    /// Profile, tier, level, chroma format and bit depths come from the first SPS;
    /// `array_completeness` is set (the sets are meant for an `hvc1` sample entry).
    pub fn from_parameter_sets(
        vps: &[Bytes],
        sps: &[Bytes],
        pps: &[Bytes],
    ) -> Result<Self, CodecError> {
        if vps.is_empty() {
            return Err(CodecError::MissingParameterSet("VPS"));
        }
        let first = sps.first().ok_or(CodecError::MissingParameterSet("SPS"))?;
        if pps.is_empty() {
            return Err(CodecError::MissingParameterSet("PPS"));
        }
        let parsed = parse_sps(first)?;
        let avg_frame_rate = parsed
            .frame_rate()
            .and_then(|(n, d)| u16::try_from(u64::from(n) * 256 / u64::from(d)).ok())
            .unwrap_or(0);
        let array = |nal_unit_type: u8, nalus: &[Bytes]| HvccArray {
            array_completeness: true,
            nal_unit_type,
            nalus: nalus.to_vec(),
        };
        Ok(Self {
            ptl: parsed.ptl,
            min_spatial_segmentation_idc: 0,
            parallelism_type: 0,
            chroma_format_idc: parsed.chroma_format_idc as u8,
            bit_depth_luma_minus8: parsed.bit_depth_luma - 8,
            bit_depth_chroma_minus8: parsed.bit_depth_chroma - 8,
            avg_frame_rate,
            constant_frame_rate: 0,
            num_temporal_layers: parsed.max_sub_layers_minus1 + 1,
            temporal_id_nested: parsed.temporal_id_nesting,
            nal_length_size: 4,
            arrays: vec![
                array(NAL_VPS, vps),
                array(NAL_SPS, sps),
                array(NAL_PPS, pps),
            ],
        })
    }

    /// NAL units of one type, across all arrays.
    pub fn nalus(&self, nal_unit_type: u8) -> impl Iterator<Item = &Bytes> {
        self.arrays
            .iter()
            .filter(move |a| a.nal_unit_type == nal_unit_type)
            .flat_map(|a| a.nalus.iter())
    }

    /// Parse a record.
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let head: &[u8; 23] = data
            .get(..23)
            .and_then(|h| h.try_into().ok())
            .ok_or(CodecError::Truncated)?;
        if head[0] != 1 {
            return Err(CodecError::Unsupported("hvcC configurationVersion != 1"));
        }
        let mut r = BitReader::new(&head[1..]);
        let ptl = ProfileTierLevel {
            profile_space: r.read_u8(2)?,
            tier_flag: r.read_flag()?,
            profile_idc: r.read_u8(5)?,
            compatibility_flags: r.read_u32(32)?,
            constraint_indicator_flags: r.read_bits(48)?,
            level_idc: r.read_u8(8)?,
        };
        r.skip(4)?;
        let min_spatial_segmentation_idc = r.read_u16(12)?;
        r.skip(6)?;
        let parallelism_type = r.read_u8(2)?;
        r.skip(6)?;
        let chroma_format_idc = r.read_u8(2)?;
        r.skip(5)?;
        let bit_depth_luma_minus8 = r.read_u8(3)?;
        r.skip(5)?;
        let bit_depth_chroma_minus8 = r.read_u8(3)?;
        let avg_frame_rate = r.read_u16(16)?;
        let constant_frame_rate = r.read_u8(2)?;
        let num_temporal_layers = r.read_u8(3)?;
        let temporal_id_nested = r.read_flag()?;
        let nal_length_size = r.read_u8(2)? + 1;
        if nal_length_size == 3 {
            return Err(CodecError::BadLengthSize(3));
        }
        let num_arrays = r.read_u8(8)?;

        let mut rest = data.get(23..).unwrap_or_default();
        let mut take = |n: usize| -> Result<&[u8], CodecError> {
            let (head, tail) = rest.split_at_checked(n).ok_or(CodecError::Truncated)?;
            rest = tail;
            Ok(head)
        };
        let mut arrays = Vec::new();
        let mut total = 0usize;
        for _ in 0..num_arrays {
            let b = *take(1)?.first().ok_or(CodecError::Truncated)?;
            let n = take(2)?;
            let count = usize::from(u16::from_be_bytes([
                *n.first().ok_or(CodecError::Truncated)?,
                *n.get(1).ok_or(CodecError::Truncated)?,
            ]));
            total += count;
            if total > MAX_HVCC_NALUS {
                return Err(CodecError::OutOfRange("too many NAL units in hvcC"));
            }
            let mut nalus = Vec::with_capacity(count);
            for _ in 0..count {
                let l = take(2)?;
                let len = usize::from(u16::from_be_bytes([
                    *l.first().ok_or(CodecError::Truncated)?,
                    *l.get(1).ok_or(CodecError::Truncated)?,
                ]));
                nalus.push(Bytes::copy_from_slice(take(len)?));
            }
            arrays.push(HvccArray {
                array_completeness: b & 0x80 != 0,
                nal_unit_type: b & 0x3f,
                nalus,
            });
        }
        Ok(Self {
            ptl,
            min_spatial_segmentation_idc,
            parallelism_type,
            chroma_format_idc,
            bit_depth_luma_minus8,
            bit_depth_chroma_minus8,
            avg_frame_rate,
            constant_frame_rate,
            num_temporal_layers,
            temporal_id_nested,
            nal_length_size,
            arrays,
        })
    }

    /// Serialize the record (the `hvcC` box payload).
    pub fn write(&self, out: &mut impl BufMut) -> Result<(), CodecError> {
        let length_bits = match self.nal_length_size {
            1 => 0,
            2 => 1,
            4 => 3,
            other => return Err(CodecError::BadLengthSize(other)),
        };
        let num_arrays = u8::try_from(self.arrays.len())
            .map_err(|_| CodecError::OutOfRange("more than 255 hvcC arrays"))?;
        let p = &self.ptl;
        out.put_u8(1);
        out.put_u8(
            (p.profile_space & 3) << 6 | u8::from(p.tier_flag) << 5 | (p.profile_idc & 0x1f),
        );
        out.put_u32(p.compatibility_flags);
        out.put_slice(&p.constraint_bytes());
        out.put_u8(p.level_idc);
        out.put_u16(0xf000 | (self.min_spatial_segmentation_idc & 0x0fff));
        out.put_u8(0xfc | (self.parallelism_type & 3));
        out.put_u8(0xfc | (self.chroma_format_idc & 3));
        out.put_u8(0xf8 | (self.bit_depth_luma_minus8 & 7));
        out.put_u8(0xf8 | (self.bit_depth_chroma_minus8 & 7));
        out.put_u16(self.avg_frame_rate);
        out.put_u8(
            (self.constant_frame_rate & 3) << 6
                | (self.num_temporal_layers & 7) << 3
                | u8::from(self.temporal_id_nested) << 2
                | length_bits,
        );
        out.put_u8(num_arrays);
        for a in &self.arrays {
            let n = u16::try_from(a.nalus.len())
                .map_err(|_| CodecError::OutOfRange("too many NAL units in hvcC array"))?;
            out.put_u8(u8::from(a.array_completeness) << 7 | (a.nal_unit_type & 0x3f));
            out.put_u16(n);
            for nal in &a.nalus {
                put_nal_u16(out, nal)?;
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

/// NAL length size declared by an hvcC record, read without parsing the rest.
pub fn hvcc_nal_length_size(record: &[u8]) -> Result<u8, CodecError> {
    let b = *record.get(21).ok_or(CodecError::Truncated)?;
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

    fn write_ptl(w: &mut BitWriter, sub_layers_minus1: u8) {
        w.write_bits(0, 2);
        w.write_bit(true); // high tier
        w.write_bits(2, 5); // Main 10
        w.write_bits(0x2000_0000, 32);
        w.write_bits(0xb000_0000_0000, 48);
        w.write_bits(153, 8);
        for _ in 0..sub_layers_minus1 {
            w.write_bit(true);
            w.write_bit(true);
        }
        if sub_layers_minus1 > 0 {
            w.write_bits(0, 2 * (8 - u32::from(sub_layers_minus1)));
        }
        for _ in 0..sub_layers_minus1 {
            w.write_bits(0x1234, 44);
            w.write_bits(0x5678, 44);
            w.write_bits(0x5a, 8);
        }
    }

    /// Synthetic SPS: 1920x1080 coded as 1920x1088 with a conformance window,
    /// two sub-layers, scaling lists, an inter-predicted RPS and 50 fps timing.
    fn synth_sps() -> Vec<u8> {
        let mut w = BitWriter::new();
        w.write_bits(0, 4);
        w.write_bits(1, 3); // max_sub_layers_minus1
        w.write_bit(true);
        write_ptl(&mut w, 1);
        w.write_ue(0);
        w.write_ue(1);
        w.write_ue(1920);
        w.write_ue(1088);
        w.write_bit(true);
        for v in [0, 0, 0, 4] {
            w.write_ue(v);
        }
        w.write_ue(2);
        w.write_ue(2);
        w.write_ue(4); // log2_max_poc_lsb_minus4
        w.write_bit(true); // ordering info for all sub-layers
        for _ in 0..2 {
            w.write_ue(4);
            w.write_ue(2);
            w.write_ue(0);
        }
        for v in [0, 3, 0, 3, 1, 1] {
            w.write_ue(v);
        }
        w.write_bit(true); // scaling_list_enabled
        w.write_bit(true); // sps_scaling_list_data_present
        for size_id in 0..4u32 {
            let step = if size_id == 3 { 3 } else { 1 };
            for m in (0..6).step_by(step) {
                if m == 0 {
                    w.write_bit(true);
                    if size_id > 1 {
                        w.write_se(8);
                    }
                    for _ in 0..64.min(1u32 << (4 + (size_id << 1))) {
                        w.write_se(1);
                    }
                } else {
                    w.write_bit(false);
                    w.write_ue(1);
                }
            }
        }
        w.write_bit(false);
        w.write_bit(true);
        w.write_bit(false); // pcm
        w.write_ue(2); // num_short_term_ref_pic_sets
        w.write_ue(2); // rps 0: 2 negative
        w.write_ue(0);
        for _ in 0..2 {
            w.write_ue(0);
            w.write_bit(true);
        }
        w.write_bit(true); // rps 1: inter predicted from rps 0 (3 entries)
        w.write_bit(false);
        w.write_ue(0);
        w.write_bit(true);
        w.write_bit(false);
        w.write_bit(false);
        w.write_bit(false);
        w.write_bit(true);
        w.write_bit(true); // long-term refs
        w.write_ue(1);
        w.write_bits(3, 8);
        w.write_bit(true); // used_by_curr_pic_lt
        w.write_bit(true); // temporal mvp
        w.write_bit(true); // strong intra smoothing
        w.write_bit(true); // vui
        w.write_bit(true);
        w.write_bits(255, 8);
        w.write_bits(4, 16);
        w.write_bits(3, 16);
        w.write_bit(false);
        w.write_bit(true);
        w.write_bits(5, 3);
        w.write_bit(false);
        w.write_bit(true);
        w.write_bits(0x010101, 24);
        w.write_bit(false);
        w.write_bit(false);
        w.write_bit(false);
        w.write_bit(false);
        w.write_bit(false);
        w.write_bit(true); // timing
        w.write_bits(1, 32);
        w.write_bits(50, 32);
        w.write_bit(false);
        w.write_bit(false);
        w.write_bit(false);
        let mut nal = vec![0x42, 0x01];
        nal.extend(add_emulation_prevention(&w.finish_rbsp()));
        nal
    }

    #[test]
    fn parses_synthetic_sps() {
        let sps = parse_sps(&synth_sps()).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.ptl.profile_idc, 2);
        assert!(sps.ptl.tier_flag);
        assert_eq!(sps.ptl.level_idc, 153);
        assert_eq!(sps.ptl.compatibility_flags, 0x2000_0000);
        assert_eq!(sps.ptl.constraint_bytes(), [0xb0, 0, 0, 0, 0, 0]);
        assert_eq!(sps.bit_depth_luma, 10);
        assert_eq!(sps.sar, Some((4, 3)));
        assert_eq!(sps.frame_rate(), Some((50, 1)));
    }

    #[test]
    fn truncated_sps_is_error_or_partial() {
        let nal = synth_sps();
        for len in 0..nal.len() {
            // Must never panic; short prefixes must fail.
            let res = parse_sps(&nal[..len]);
            if len < 20 {
                assert!(res.is_err());
            }
        }
    }

    #[test]
    fn hvcc_round_trip() {
        let vps = Bytes::from_static(&[0x40, 0x01, 0x0c, 0x01]);
        let sps = Bytes::from(synth_sps());
        let pps = Bytes::from_static(&[0x44, 0x01, 0xc1, 0x72]);
        let cfg =
            HevcDecoderConfig::from_parameter_sets(&[vps], std::slice::from_ref(&sps), &[pps])
                .unwrap();
        assert_eq!(cfg.avg_frame_rate, 50 * 256);
        assert_eq!(cfg.num_temporal_layers, 2);
        let bytes = cfg.to_vec().unwrap();
        assert_eq!(hvcc_nal_length_size(&bytes), Ok(4));
        let back = HevcDecoderConfig::parse(&bytes).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.nalus(NAL_SPS).next(), Some(&sps));
        for len in 0..bytes.len() {
            assert!(
                HevcDecoderConfig::parse(&bytes[..len]).is_err(),
                "len {len}"
            );
        }
    }
}
