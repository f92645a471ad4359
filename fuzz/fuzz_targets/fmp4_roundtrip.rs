//! fMP4 writer on access units built from arbitrary bytes: whatever is
//! written must walk back as well-formed boxes with consistent sample tables.
#![no_main]

#[path = "../../pkg/fmp4/tests/common/walker.rs"]
mod walker;

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use os_av::{AccessUnit, AudioParams, Codec, TrackParams};
use os_codecs::nal::extract_parameter_sets;
use os_codecs::params::video_params;
use os_fmp4::{
    Fragment, Sample, SegmentOptions, TrackConfig, TrackRun, write_fragments, write_init_segment,
    write_media_segment,
};

const H264_ES: &[u8] =
    include_bytes!("../../data/testdata/es/h264_main_nobframes_320x240_25fps.h264");
const H265_ES: &[u8] =
    include_bytes!("../../data/testdata/es/h265_main_nobframes_320x240_25fps.h265");

fn tracks() -> &'static [TrackConfig; 3] {
    static TRACKS: OnceLock<[TrackConfig; 3]> = OnceLock::new();
    TRACKS.get_or_init(|| {
        let video = |id: u32, codec: Codec, es: &'static [u8]| {
            let sets = extract_parameter_sets(codec, &Bytes::from_static(es));
            let params = video_params(codec, &sets).expect("vector parameter sets");
            TrackConfig::new(id, codec, &TrackParams::Video(params)).expect("video track")
        };
        let audio = TrackParams::Audio(AudioParams {
            sample_rate: 44_100,
            channels: 2,
            object_type: 2,
            asc: Bytes::from_static(&[0x12, 0x10]),
            samples_per_frame: 1024,
        });
        [
            video(1, Codec::H264, H264_ES),
            video(2, Codec::H265, H265_ES),
            TrackConfig::new(3, Codec::Aac, &audio).expect("audio track"),
        ]
    })
}

/// Split the input into access units: per unit a 6-byte header
/// (dts delta u16, cts i16, flags u8, length u8) and `length` payload bytes.
fn units(codec: Codec, mut data: &[u8], base: i64) -> Vec<AccessUnit> {
    let mut out = Vec::new();
    let mut dts = base;
    while let Some((h, rest)) = data.split_at_checked(6) {
        let delta = i64::from(u16::from_be_bytes([h[0], h[1]]));
        let cts = i64::from(i16::from_be_bytes([h[2], h[3]]));
        let flags = h[4];
        let len = usize::from(h[5]).min(rest.len());
        let (payload, rest) = rest.split_at(len);
        data = rest;
        // Bit 0: keyframe; bit 1: step backwards (exercises the error path).
        dts = if flags & 2 != 0 {
            dts - delta
        } else {
            dts + delta
        };
        out.push(AccessUnit {
            track: 1,
            codec,
            pts: dts + cts,
            dts,
            keyframe: flags & 1 != 0,
            discontinuity: false,
            payload: Bytes::copy_from_slice(payload),
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let all = tracks();
    let track = &all[usize::from(sel % 3)];
    let in_band = sel & 0x10 != 0;
    let track = track.clone().with_in_band_parameter_sets(in_band);
    let base = i64::from(sel >> 5) * 1_000_000 - 1;

    let mut init = Vec::new();
    write_init_segment(&mut init, std::slice::from_ref(&track)).expect("init segment");
    let ids = walker::check_init(&init).expect("init walks");
    assert_eq!(ids.len(), 1);

    let aus = units(track.codec, rest, base);
    let next_dts = aus.last().map(|u| u.dts + 3000);
    let mut out = Vec::new();
    let res = write_media_segment(
        &mut out,
        u32::from(sel),
        &[TrackRun {
            track: &track,
            units: &aus,
            next_dts,
        }],
        &SegmentOptions {
            styp: sel & 0x08 != 0,
        },
    );
    match res {
        Ok(info) => {
            assert_eq!(info.size, out.len());
            let seg = walker::check_media_segment(&out).expect("segment walks");
            assert_eq!(seg.sequence_number, u32::from(sel));
            let t = seg.trafs.first().expect("one traf");
            assert_eq!(t.samples.len(), aus.len());
            assert_eq!(
                t.base_media_decode_time,
                info.fragments[0].base_media_decode_time
            );
            let dur: u64 = t.samples.iter().map(|s| u64::from(s.0)).sum();
            assert_eq!(dur, info.fragments[0].duration);
            if track.codec == Codec::Aac {
                let total: usize = aus.iter().map(|u| u.payload.len()).sum();
                assert_eq!(seg.mdat_payload, total);
            }
        }
        Err(_) => {
            // Errors are fine (empty, backwards or negative timestamps), panics are not.
        }
    }

    // Low-level writer with samples sized from the input.
    let samples: Vec<Sample> = rest
        .chunks(4)
        .map(|c| Sample {
            duration: u32::from(c[0]),
            size: u32::from(*c.get(1).unwrap_or(&0) % 16),
            flags: u32::from(*c.get(2).unwrap_or(&0)) << 16,
            composition_offset: i32::from(*c.get(3).unwrap_or(&0) as i8),
        })
        .collect();
    let total: usize = samples.iter().map(|s| s.size as usize).sum();
    let payload = vec![0xabu8; total];
    let frag = Fragment {
        track_id: track.track_id,
        base_media_decode_time: u64::from(sel),
        samples: &samples,
        data: &payload,
    };
    let mut out = Vec::new();
    if write_fragments(&mut out, 1, &[frag], &SegmentOptions::default()).is_ok() {
        let seg = walker::check_media_segment(&out).expect("fragment walks");
        assert_eq!(seg.trafs[0].samples.len(), samples.len());
        assert_eq!(seg.mdat_payload, total);
    } else {
        assert!(samples.is_empty());
    }
});
