//! Structural checks of the writer output (no external tools needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::walker::{check_init, check_media_segment};
use os_av::{AccessUnit, AudioParams, Codec, TrackParams};
use os_codecs::params::h264_video_params;
use os_fmp4::{
    Fmp4Error, Fragment, SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC, Sample, SegmentOptions,
    TrackConfig, TrackRun, write_fragments, write_init_segment, write_media_segment,
};

// SPS/PPS of data/testdata/es/h264_main_nobframes_320x240_25fps.h264.
const SPS: &[u8] = &[
    0x67, 0x4d, 0x40, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00,
    0x00, 0x0c, 0x83, 0xc5, 0x0a, 0xa8,
];
const PPS: &[u8] = &[0x68, 0xef, 0x0f, 0xc8];

fn video_track() -> TrackConfig {
    let params = h264_video_params(&[Bytes::from_static(SPS)], &[Bytes::from_static(PPS)]).unwrap();
    TrackConfig::new(1, Codec::H264, &TrackParams::Video(params)).unwrap()
}

fn audio_params() -> TrackParams {
    TrackParams::Audio(AudioParams {
        sample_rate: 48_000,
        channels: 2,
        object_type: 2,
        asc: Bytes::from_static(&[0x11, 0x90]),
        samples_per_frame: 1024,
    })
}

fn vau(dts: i64, pts: i64, key: bool) -> AccessUnit {
    let mut p = vec![0, 0, 0, 1, 0x09, 0xf0];
    if key {
        for n in [SPS, PPS] {
            p.extend_from_slice(&[0, 0, 0, 1]);
            p.extend_from_slice(n);
        }
        p.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x80, 0x40]);
    } else {
        p.extend_from_slice(&[0, 0, 1, 0x41, 0x9a, 0x02]);
    }
    AccessUnit {
        track: 1,
        codec: Codec::H264,
        pts,
        dts,
        keyframe: key,
        discontinuity: false,
        payload: Bytes::from(p),
    }
}

fn one_run(
    track: &TrackConfig,
    units: &[AccessUnit],
    next_dts: Option<i64>,
) -> Result<Vec<u8>, Fmp4Error> {
    let mut out = Vec::new();
    write_media_segment(
        &mut out,
        9,
        &[TrackRun {
            track,
            units,
            next_dts,
        }],
        &SegmentOptions::default(),
    )?;
    Ok(out)
}

#[test]
fn init_segments_are_well_formed() {
    let v = video_track();
    let a = TrackConfig::new(2, Codec::Aac, &audio_params()).unwrap();
    let mut out = Vec::new();
    write_init_segment(&mut out, std::slice::from_ref(&v)).unwrap();
    assert_eq!(check_init(&out).unwrap(), vec![(1, *b"avc1")]);
    let mut out = Vec::new();
    write_init_segment(&mut out, &[v.clone(), a.clone()]).unwrap();
    assert_eq!(
        check_init(&out).unwrap(),
        vec![(1, *b"avc1"), (2, *b"mp4a")]
    );
    assert_eq!(v.codec_string(), "avc1.4d400d");
    assert_eq!(a.codec_string(), "mp4a.40.2");
    assert_eq!(
        write_init_segment(&mut out, &[v.clone(), v.clone()]),
        Err(Fmp4Error::InvalidTrackId(1))
    );
    assert_eq!(write_init_segment(&mut out, &[]), Err(Fmp4Error::Empty));
}

#[test]
fn media_segment_samples_and_offsets() {
    let track = video_track();
    // Decode order I P B with pts reordering.
    let units = [
        vau(0, 7200, true),
        vau(3600, 14400, false),
        vau(7200, 10800, false),
    ];
    let out = one_run(&track, &units, Some(10800)).unwrap();
    let seg = check_media_segment(&out).unwrap();
    assert_eq!(seg.sequence_number, 9);
    let t = &seg.trafs[0];
    assert_eq!(t.track_id, 1);
    assert_eq!(t.base_media_decode_time, 0);
    // AUD and parameter sets are dropped: 4 + 4 bytes for the IDR slice.
    assert_eq!(
        t.samples,
        vec![
            (3600, 8, SAMPLE_FLAGS_SYNC, 7200),
            (3600, 7, SAMPLE_FLAGS_NON_SYNC, 10800),
            (3600, 7, SAMPLE_FLAGS_NON_SYNC, 3600),
        ]
    );
    assert_eq!(seg.mdat_payload, 22);

    // In-band parameter sets kept when asked.
    let inband = video_track().with_in_band_parameter_sets(true);
    let seg = check_media_segment(&one_run(&inband, &units[..1], None).unwrap()).unwrap();
    assert_eq!(
        seg.trafs[0].samples[0].1 as usize,
        8 + 4 + SPS.len() + 4 + PPS.len()
    );
}

#[test]
fn last_sample_duration_fallbacks() {
    let track = video_track();
    let units = [vau(1000, 1000, true), vau(4000, 4000, false)];
    let seg = check_media_segment(&one_run(&track, &units, None).unwrap()).unwrap();
    assert_eq!(seg.trafs[0].samples[1].0, 3000, "previous duration");
    assert_eq!(seg.trafs[0].base_media_decode_time, 1000);
    let seg = check_media_segment(&one_run(&track, &units[..1], None).unwrap()).unwrap();
    assert_eq!(seg.trafs[0].samples[0].0, track.default_sample_duration);
    let seg = check_media_segment(&one_run(&track, &units[..1], Some(1500)).unwrap()).unwrap();
    assert_eq!(seg.trafs[0].samples[0].0, 500);
}

#[test]
fn audio_timescale_is_sample_rate() {
    let track = TrackConfig::new(3, Codec::Aac, &audio_params()).unwrap();
    let units: Vec<AccessUnit> = (0..4)
        .map(|i| AccessUnit {
            track: 3,
            codec: Codec::Aac,
            pts: 90_000 + i * 1920,
            dts: 90_000 + i * 1920,
            keyframe: false,
            discontinuity: false,
            payload: Bytes::from(vec![0x21; 10 + i as usize]),
        })
        .collect();
    let seg = check_media_segment(&one_run(&track, &units, None).unwrap()).unwrap();
    let t = &seg.trafs[0];
    assert_eq!(t.base_media_decode_time, 48_000);
    assert!(
        t.samples
            .iter()
            .all(|s| s.0 == 1024 && s.2 == SAMPLE_FLAGS_SYNC && s.3 == 0)
    );
    assert_eq!(seg.mdat_payload, 10 + 11 + 12 + 13);
}

#[test]
fn errors_instead_of_bad_output() {
    let track = video_track();
    assert_eq!(one_run(&track, &[], None), Err(Fmp4Error::Empty));
    let back = [vau(3600, 3600, true), vau(0, 0, false)];
    assert!(matches!(
        one_run(&track, &back, None),
        Err(Fmp4Error::NonMonotonicDts { .. })
    ));
    assert!(matches!(
        one_run(&track, &[vau(-1, 0, true)], None),
        Err(Fmp4Error::TimestampOutOfRange(_))
    ));
    assert!(matches!(
        one_run(&track, &[vau(0, 1 << 40, true)], None),
        Err(Fmp4Error::TimestampOutOfRange(_))
    ));
    // Extreme timestamps error out instead of overflowing.
    let audio = TrackConfig::new(3, Codec::Aac, &audio_params()).unwrap();
    let huge = |dts: i64| AccessUnit {
        track: 3,
        codec: Codec::Aac,
        pts: i64::MAX,
        dts,
        keyframe: true,
        discontinuity: false,
        payload: Bytes::from_static(&[1, 2]),
    };
    assert!(
        one_run(
            &audio,
            &[huge(i64::MAX / 2), huge(i64::MAX)],
            Some(i64::MAX)
        )
        .is_err()
    );
    assert!(one_run(&track, &[vau(i64::MAX, i64::MIN, true)], Some(i64::MAX)).is_err());
    let mut wrong = vau(0, 0, true);
    wrong.codec = Codec::H265;
    assert!(matches!(
        one_run(&track, &[wrong], None),
        Err(Fmp4Error::CodecMismatch { .. })
    ));
    assert!(TrackConfig::new(0, Codec::Aac, &audio_params()).is_err());
    assert!(TrackConfig::new(1, Codec::H264, &audio_params()).is_err());
    assert!(TrackConfig::new(1, Codec::Opus, &audio_params()).is_err());
    let no_pps = TrackParams::Video(os_av::VideoParams {
        sps: vec![Bytes::from_static(SPS)],
        ..Default::default()
    });
    assert!(TrackConfig::new(1, Codec::H264, &no_pps).is_err());
}

#[test]
fn low_level_fragments_with_two_tracks() {
    let s1 = [
        Sample {
            duration: 10,
            size: 3,
            flags: SAMPLE_FLAGS_SYNC,
            composition_offset: 0,
        },
        Sample {
            duration: 10,
            size: 2,
            flags: SAMPLE_FLAGS_NON_SYNC,
            composition_offset: -5,
        },
    ];
    let s2 = [Sample {
        duration: 1024,
        size: 4,
        flags: SAMPLE_FLAGS_SYNC,
        composition_offset: 0,
    }];
    let frags = [
        Fragment {
            track_id: 1,
            base_media_decode_time: 5,
            samples: &s1,
            data: b"abcde",
        },
        Fragment {
            track_id: 2,
            base_media_decode_time: 1 << 40,
            samples: &s2,
            data: b"wxyz",
        },
    ];
    let mut out = bytes::BytesMut::new();
    let n = write_fragments(&mut out, 1, &frags, &SegmentOptions { styp: false }).unwrap();
    assert_eq!(n, out.len());
    let seg = check_media_segment(&out).unwrap();
    assert_eq!(seg.trafs.len(), 2);
    assert_eq!(seg.trafs[0].samples[1].3, -5);
    assert_eq!(seg.trafs[1].base_media_decode_time, 1 << 40);
    assert!(out.ends_with(b"abcdewxyz"));
    let bad = [Fragment {
        track_id: 1,
        base_media_decode_time: 0,
        samples: &s1,
        data: b"abc",
    }];
    assert!(write_fragments(&mut out, 1, &bad, &SegmentOptions::default()).is_err());
}
