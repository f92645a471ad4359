//! H.264 bitstream helpers on arbitrary input: SPS parsing, avcC parse/write
//! round trip, Annex-B <-> length-prefixed conversion, parameter tracking.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use os_av::{AccessUnit, Codec};
use os_codecs::annexb::nal_units;
use os_codecs::nal::{
    annexb_to_length_prefixed, extract_parameter_sets, is_keyframe, length_prefixed_nals,
    length_prefixed_to_annexb,
};
use os_codecs::params::ParamTracker;
use os_codecs::{codec_string, h264};

fuzz_target!(|data: &[u8]| {
    // SPS parser, on the input as is and with an SPS NAL header in front.
    let _ = h264::parse_sps(data);
    let mut nal = Vec::with_capacity(data.len() + 1);
    nal.push(0x67);
    nal.extend_from_slice(data);
    if let Ok(sps) = h264::parse_sps(&nal) {
        assert!(sps.width > 0 && sps.height > 0);
        let _ = sps.frame_rate();
        let _ = codec_string::avc(sps.profile_idc, sps.constraint_flags, sps.level_idc);
    }

    // avcC: whatever parses must serialize and parse back to the same record.
    if let Ok(cfg) = h264::AvcDecoderConfig::parse(data) {
        let bytes = cfg.to_vec().expect("parsed record serializes");
        let back = h264::AvcDecoderConfig::parse(&bytes).expect("serialized record parses");
        assert_eq!(back, cfg);
        assert_eq!(h264::avcc_nal_length_size(&bytes), Ok(cfg.nal_length_size));
    }

    // Annex-B -> 4-byte length prefixed -> Annex-B keeps the NAL units.
    let mut avcc = Vec::new();
    let written = annexb_to_length_prefixed(data, &mut avcc).expect("4-byte lengths fit");
    assert_eq!(written, avcc.len());
    let mut back = Vec::new();
    length_prefixed_to_annexb(&avcc, 4, &mut back).expect("own output parses");
    let a: Vec<&[u8]> = nal_units(data).filter(|n| !n.is_empty()).collect();
    let b: Vec<&[u8]> = nal_units(&back).filter(|n| !n.is_empty()).collect();
    assert_eq!(a, b);

    // Arbitrary bytes as length-prefixed data.
    for size in [1u8, 2, 4] {
        let mut out = Vec::new();
        let _ = length_prefixed_to_annexb(data, size, &mut out);
        if let Ok(it) = length_prefixed_nals(data, size) {
            for n in it {
                if n.is_err() {
                    break;
                }
            }
        }
    }

    // Parameter-set extraction and tracking on the input as an access unit.
    let payload = Bytes::copy_from_slice(data);
    let _ = is_keyframe(Codec::H264, &payload);
    let sets = extract_parameter_sets(Codec::H264, &payload);
    let _ =
        h264::AvcDecoderConfig::from_parameter_sets(&sets.sps, &sets.pps).and_then(|c| c.to_vec());
    let mut tracker = ParamTracker::new();
    let au = AccessUnit {
        track: 1,
        codec: Codec::H264,
        pts: 0,
        dts: 0,
        keyframe: false,
        discontinuity: false,
        payload,
    };
    let _ = tracker.observe(&au);
});
