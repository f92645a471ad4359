//! RFC 6381 `codecs` parameter strings for HLS and DASH manifests.

use std::fmt::Write as _;

use os_av::{AudioParams, Codec, TrackParams, VideoParams};

use crate::aac::AudioSpecificConfig;
use crate::h265::{self, ProfileTierLevel};

/// `avc1.PPCCLL`: profile_idc, constraint flags byte and level_idc in hex.
pub fn avc(profile_idc: u8, constraint_flags: u8, level_idc: u8) -> String {
    format!("avc1.{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}")
}

/// HEVC codec string (ISO/IEC 14496-15 annex E), e.g. `hvc1.1.6.L93.B0`.
///
/// `sample_entry` is the four-character code of the sample entry (`hvc1` when
/// parameter sets live only in the `hvcC`, `hev1` when they are also in-band).
pub fn hevc(sample_entry: &str, ptl: &ProfileTierLevel) -> String {
    let mut s = String::with_capacity(32);
    s.push_str(sample_entry);
    s.push('.');
    match ptl.profile_space {
        1 => s.push('A'),
        2 => s.push('B'),
        3 => s.push('C'),
        _ => {}
    }
    // Writing to a String cannot fail.
    let _ = write!(s, "{}", ptl.profile_idc);
    // Compatibility flags in reverse bit order, hex, no leading zeros.
    let _ = write!(s, ".{:X}", ptl.compatibility_flags.reverse_bits());
    let tier = if ptl.tier_flag { 'H' } else { 'L' };
    let _ = write!(s, ".{tier}{}", ptl.level_idc);
    let bytes = ptl.constraint_bytes();
    let keep = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    for b in bytes.iter().take(keep) {
        let _ = write!(s, ".{b:X}");
    }
    s
}

/// `mp4a.40.N` with N the MPEG-4 audio object type.
pub fn aac(object_type: u8) -> String {
    format!("mp4a.40.{object_type}")
}

/// Codec string for an H.264 track from its parameters.
pub fn for_h264(params: &VideoParams) -> String {
    avc(params.profile, params.compatibility as u8, params.level)
}

/// Codec string for an H.265 track (`hvc1` sample entry). Needs the SPS for the
/// full profile_tier_level; falls back to the summary fields otherwise.
pub fn for_h265(params: &VideoParams) -> String {
    let ptl = params
        .sps
        .first()
        .and_then(|s| h265::parse_sps(s).ok())
        .map(|s| s.ptl)
        .unwrap_or(ProfileTierLevel {
            profile_idc: params.profile,
            compatibility_flags: params.compatibility,
            level_idc: params.level,
            ..ProfileTierLevel::default()
        });
    hevc("hvc1", &ptl)
}

/// Codec string for an AAC track: the object type from the ASC when present,
/// else from [`AudioParams::object_type`].
pub fn for_aac(params: &AudioParams) -> String {
    let object_type = AudioSpecificConfig::parse(&params.asc)
        .map(|a| a.object_type)
        .unwrap_or(params.object_type);
    aac(if object_type == 0 { 2 } else { object_type })
}

/// Codec string for any track with known parameters; `None` for codecs and
/// parameter kinds without a defined string here.
pub fn for_params(codec: Codec, params: &TrackParams) -> Option<String> {
    match (codec, params) {
        (Codec::H264, TrackParams::Video(v)) => Some(for_h264(v)),
        (Codec::H265, TrackParams::Video(v)) => Some(for_h265(v)),
        (Codec::Aac, TrackParams::Audio(a)) => Some(for_aac(a)),
        (Codec::Mp3, TrackParams::Audio(_)) => Some("mp4a.40.34".to_owned()),
        (Codec::Ac3, TrackParams::Audio(_)) => Some("ac-3".to_owned()),
        (Codec::Opus, TrackParams::Audio(_)) => Some("opus".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn avc_strings() {
        assert_eq!(avc(0x64, 0x00, 0x1f), "avc1.64001f");
        assert_eq!(avc(66, 0xc0, 30), "avc1.42c01e");
    }

    #[test]
    fn hevc_strings() {
        // Main profile, level 3.1, progressive + frame-only constraint flags.
        let main = ProfileTierLevel {
            profile_space: 0,
            tier_flag: false,
            profile_idc: 1,
            compatibility_flags: 0x6000_0000,
            constraint_indicator_flags: 0xb000_0000_0000,
            level_idc: 93,
        };
        assert_eq!(hevc("hvc1", &main), "hvc1.1.6.L93.B0");
        let main10_high = ProfileTierLevel {
            profile_idc: 2,
            tier_flag: true,
            compatibility_flags: 0x2000_0000,
            constraint_indicator_flags: 0x9000_0000_0000,
            level_idc: 120,
            ..main
        };
        assert_eq!(hevc("hev1", &main10_high), "hev1.2.4.H120.90");
        let odd = ProfileTierLevel {
            profile_space: 1,
            constraint_indicator_flags: 0x0000_0100_0000,
            ..main
        };
        assert_eq!(hevc("hvc1", &odd), "hvc1.A1.6.L93.0.0.1");
        let none = ProfileTierLevel {
            constraint_indicator_flags: 0,
            ..main
        };
        assert_eq!(hevc("hvc1", &none), "hvc1.1.6.L93");
    }

    #[test]
    fn aac_strings() {
        assert_eq!(aac(2), "mp4a.40.2");
        let params = AudioParams {
            asc: Bytes::from_static(&[0x11, 0x90]), // AAC-LC 48 kHz stereo
            ..AudioParams::default()
        };
        assert_eq!(for_aac(&params), "mp4a.40.2");
        let he = AudioParams {
            object_type: 5,
            ..AudioParams::default()
        };
        assert_eq!(for_aac(&he), "mp4a.40.5");
        assert_eq!(
            for_params(Codec::Aac, &TrackParams::Audio(params)).as_deref(),
            Some("mp4a.40.2")
        );
    }
}
