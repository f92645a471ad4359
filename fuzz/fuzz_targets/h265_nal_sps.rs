//! H.265 bitstream helpers on arbitrary input: SPS and profile_tier_level
//! parsing, hvcC parse/write round trip, parameter extraction and tracking.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use os_av::{AccessUnit, Codec};
use os_codecs::bits::BitReader;
use os_codecs::nal::{extract_parameter_sets, is_keyframe};
use os_codecs::params::ParamTracker;
use os_codecs::{codec_string, h265};

fuzz_target!(|data: &[u8]| {
    let _ = h265::parse_sps(data);
    let mut nal = Vec::with_capacity(data.len() + 2);
    nal.extend_from_slice(&[0x42, 0x01]);
    nal.extend_from_slice(data);
    if let Ok(sps) = h265::parse_sps(&nal) {
        assert!(sps.width > 0 && sps.height > 0);
        let _ = sps.frame_rate();
        let _ = codec_string::hevc("hvc1", &sps.ptl);
    }
    if let Some((&n, rest)) = data.split_first() {
        let _ = h265::parse_profile_tier_level(&mut BitReader::new(rest), n & 7);
    }

    // hvcC: whatever parses must serialize and parse back to the same record.
    if let Ok(cfg) = h265::HevcDecoderConfig::parse(data) {
        let bytes = cfg.to_vec().expect("parsed record serializes");
        let back = h265::HevcDecoderConfig::parse(&bytes).expect("serialized record parses");
        assert_eq!(back, cfg);
        assert_eq!(h265::hvcc_nal_length_size(&bytes), Ok(cfg.nal_length_size));
        let _ = codec_string::hevc("hev1", &cfg.ptl);
    }

    let payload = Bytes::copy_from_slice(data);
    let _ = is_keyframe(Codec::H265, &payload);
    let sets = extract_parameter_sets(Codec::H265, &payload);
    let _ = h265::HevcDecoderConfig::from_parameter_sets(&sets.vps, &sets.sps, &sets.pps)
        .and_then(|c| c.to_vec());
    let mut tracker = ParamTracker::new();
    let au = AccessUnit {
        track: 1,
        codec: Codec::H265,
        pts: 0,
        dts: 0,
        keyframe: false,
        discontinuity: false,
        payload,
    };
    if let Ok(Some(ev)) = tracker.observe(&au) {
        let _ = codec_string::for_params(Codec::H265, &ev.params);
    }
    let _ = tracker.set_video_config_record(2, Codec::H265, data);
});
