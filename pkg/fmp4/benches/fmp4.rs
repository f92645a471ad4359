//! Throughput of SPS parsing, Annex-B → AVCC conversion and fMP4 segment writing
//! on the test vectors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use os_av::{AccessUnit, Codec, TrackParams};
use os_codecs::annexb::nal_units;
use os_codecs::nal::{annexb_to_length_prefixed, extract_parameter_sets, is_keyframe};
use os_codecs::params::video_params;
use os_codecs::{h264, h265};
use os_fmp4::{SegmentOptions, TrackConfig, TrackRun, write_media_segment};

fn read_es(name: &str) -> Bytes {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/testdata/es")
        .join(name);
    Bytes::from(std::fs::read(p).unwrap())
}

fn units(es: &Bytes, codec: Codec) -> Vec<AccessUnit> {
    let aud = |n: &[u8]| match codec {
        Codec::H264 => h264::nal_type(n[0]) == h264::NAL_AUD,
        _ => h265::nal_type(n[0]) == h265::NAL_AUD,
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    for nal in nal_units(es).filter(|n| !n.is_empty()) {
        if aud(nal) || out.is_empty() {
            out.push(Vec::new());
        }
        let cur = out.last_mut().unwrap();
        cur.extend_from_slice(&[0, 0, 0, 1]);
        cur.extend_from_slice(nal);
    }
    out.into_iter()
        .enumerate()
        .map(|(i, p)| AccessUnit {
            track: 1,
            codec,
            pts: i as i64 * 3600,
            dts: i as i64 * 3600,
            keyframe: is_keyframe(codec, &p),
            discontinuity: false,
            payload: Bytes::from(p),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let h264_es = read_es("h264_high_bframes_320x240_25fps.h264");
    let h265_es = read_es("h265_main_nobframes_320x240_25fps.h265");
    let h264_sets = extract_parameter_sets(Codec::H264, &h264_es);
    let h265_sets = extract_parameter_sets(Codec::H265, &h265_es);

    c.bench_function("h264_parse_sps", |b| {
        b.iter(|| h264::parse_sps(black_box(&h264_sets.sps[0])).unwrap())
    });
    c.bench_function("h265_parse_sps", |b| {
        b.iter(|| h265::parse_sps(black_box(&h265_sets.sps[0])).unwrap())
    });

    let mut g = c.benchmark_group("annexb_to_avcc");
    g.throughput(Throughput::Bytes(h264_es.len() as u64));
    let mut out = Vec::with_capacity(h264_es.len() + 1024);
    g.bench_function("h264_2s", |b| {
        b.iter(|| {
            out.clear();
            annexb_to_length_prefixed(black_box(&h264_es), &mut out).unwrap()
        })
    });
    g.finish();

    let aus = units(&h264_es, Codec::H264);
    let params = TrackParams::Video(video_params(Codec::H264, &h264_sets).unwrap());
    let track = TrackConfig::new(1, Codec::H264, &params).unwrap();
    let mut g = c.benchmark_group("fmp4_media_segment");
    g.throughput(Throughput::Bytes(h264_es.len() as u64));
    let mut buf = BytesMut::with_capacity(h264_es.len() + 4096);
    g.bench_function("h264_50_frames", |b| {
        b.iter(|| {
            buf.clear();
            write_media_segment(
                &mut buf,
                1,
                &[TrackRun {
                    track: &track,
                    units: black_box(&aus),
                    next_dts: None,
                }],
                &SegmentOptions::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
