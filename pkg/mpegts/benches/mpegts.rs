//! Throughput of the demuxer, muxer and keyframe scanner.
//!
//! Two inputs:
//! - `synthetic`: a 32 MiB stream made by our muxer with broadcast-like
//!   sizes: H.264 at ~4 Mbit/s, 25 fps, 100 kB keyframe every 2 s, ~18 kB
//!   other pictures, plus AAC at 128 kbit/s, 48 kHz (one frame per PES).
//! - `vector`: `data/testdata/h264_aac.ts` (ffmpeg, 150 kbit/s video: tiny
//!   pictures, so per-PES costs dominate) re-timestamped and repeated to 8 MiB.
//!
//! Run with `cargo bench -p os-mpegts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use os_av::{AccessUnit, Codec, Track, TrackParams};
use os_codecs::aac::AudioSpecificConfig;
use os_mpegts::{Demuxer, Event, KeyframeScanner, Muxer, MuxerConfig};

const CHUNK: usize = 64 << 10;
/// Packet-aligned ~1 MiB chunks for the scanner.
const SCAN_CHUNK: usize = 188 * 5577;

fn tracks() -> Vec<Track> {
    vec![
        Track {
            id: 0x100,
            codec: Codec::H264,
            params: None,
        },
        Track {
            id: 0x101,
            codec: Codec::Aac,
            params: Some(TrackParams::Audio(
                AudioSpecificConfig::new(2, 48_000, 2).to_audio_params(),
            )),
        },
    ]
}

/// Pseudo-random payload bytes without start codes.
fn filler(len: usize, seed: &mut u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((*seed >> 24) as u8) | 0x10
        })
        .collect()
}

/// Access units of the synthetic stream, in mux order.
fn synthetic_units(target_bytes: usize) -> Vec<AccessUnit> {
    let mut seed = 7u32;
    let mut units = Vec::new();
    let mut total = 0;
    let mut frame = 0i64;
    let mut audio_ts = 126_000i64;
    while total < target_bytes {
        let dts = 126_000 + frame * 3600;
        let key = frame % 50 == 0;
        let size = if key {
            100_000
        } else {
            15_000 + (frame as usize * 7919) % 6000
        };
        let mut payload = vec![
            0,
            0,
            0,
            1,
            0x09,
            0xF0,
            0,
            0,
            0,
            1,
            if key { 0x65 } else { 0x41 },
        ];
        payload.extend(filler(size, &mut seed));
        total += payload.len();
        units.push(AccessUnit {
            track: 0x100,
            codec: Codec::H264,
            pts: dts + 7200,
            dts,
            keyframe: key,
            discontinuity: false,
            payload: Bytes::from(payload),
        });
        while audio_ts < dts + 3600 {
            let raw = filler(340, &mut seed);
            total += raw.len();
            units.push(AccessUnit {
                track: 0x101,
                codec: Codec::Aac,
                pts: audio_ts,
                dts: audio_ts,
                keyframe: true,
                discontinuity: false,
                payload: Bytes::from(raw),
            });
            audio_ts += 1920;
        }
        frame += 1;
    }
    units
}

fn mux_all(units: &[AccessUnit]) -> Vec<u8> {
    let mut m = Muxer::with_tracks(&tracks()).unwrap();
    let mut out = Vec::new();
    for u in units {
        m.write(u, &mut out).unwrap();
    }
    out
}

/// The committed ffmpeg vector, re-timestamped and repeated.
fn vector_units(target_bytes: usize) -> Vec<AccessUnit> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/testdata/h264_aac.ts"
    );
    let data = std::fs::read(path).expect("test vector");
    let mut d = Demuxer::new();
    d.push(&data);
    d.flush();
    let mut once = Vec::new();
    while let Some(e) = d.pull() {
        if let Event::AccessUnit(au) = e {
            once.push(au);
        }
    }
    let span = 75 * 3600;
    let mut units = Vec::new();
    let mut total = 0;
    let mut round = 0;
    while total < target_bytes {
        for au in &once {
            let mut au = au.clone();
            au.pts += round * span;
            au.dts += round * span;
            total += au.payload.len() + 40;
            units.push(au);
        }
        round += 1;
    }
    units
}

fn demux_all(data: &[u8]) -> usize {
    let mut d = Demuxer::new();
    let mut n = 0;
    for chunk in data.chunks(CHUNK) {
        d.push(chunk);
        while let Some(e) = d.pull() {
            n += usize::from(matches!(e, Event::AccessUnit(_)));
            black_box(e);
        }
    }
    d.flush();
    while let Some(e) = d.pull() {
        n += usize::from(matches!(e, Event::AccessUnit(_)));
    }
    n
}

fn benches(c: &mut Criterion) {
    let inputs = [
        ("synthetic", synthetic_units(32 << 20)),
        ("vector", vector_units(8 << 20)),
    ];
    for (name, units) in &inputs {
        let ts = mux_all(units);
        let bytes = ts.len() as u64;

        let mut g = c.benchmark_group("demux");
        g.throughput(Throughput::Bytes(bytes));
        g.sample_size(20);
        g.bench_with_input(BenchmarkId::from_parameter(name), &ts, |b, ts| {
            b.iter(|| demux_all(ts))
        });
        g.finish();

        let mut g = c.benchmark_group("mux");
        g.throughput(Throughput::Bytes(bytes));
        g.sample_size(20);
        let mut out = Vec::with_capacity(ts.len() + 4096);
        g.bench_with_input(BenchmarkId::from_parameter(name), units, |b, units| {
            b.iter(|| {
                let mut m = Muxer::new(MuxerConfig::default());
                m.set_tracks(&tracks()).unwrap();
                out.clear();
                for u in units {
                    m.write(u, &mut out).unwrap();
                }
                out.len()
            })
        });
        g.finish();

        let mut g = c.benchmark_group("scan");
        g.throughput(Throughput::Bytes(bytes));
        g.sample_size(30);
        g.bench_with_input(BenchmarkId::new("known_pid", name), &ts, |b, ts| {
            let mut offsets = Vec::new();
            b.iter(|| {
                offsets.clear();
                let mut s = KeyframeScanner::with_video(0x100, Codec::H264);
                for (i, chunk) in ts.chunks(SCAN_CHUNK).enumerate() {
                    let base = offsets.len();
                    s.scan(chunk, &mut offsets);
                    for o in &mut offsets[base..] {
                        *o += i * SCAN_CHUNK;
                    }
                }
                offsets.len()
            })
        });
        // Floor for any scanner on this machine: touch one byte per packet.
        g.bench_with_input(BenchmarkId::new("touch_baseline", name), &ts, |b, ts| {
            b.iter(|| {
                ts.chunks_exact(188)
                    .fold(0u32, |acc, p| acc.wrapping_add(u32::from(p[1])))
            })
        });
        // One ~1 MiB chunk scanned as it arrives (cache resident), the
        // buffer hub / segmenter use.
        let chunk = &ts[..SCAN_CHUNK.min(ts.len() / 188 * 188)];
        g.throughput(Throughput::Bytes(chunk.len() as u64));
        g.bench_with_input(BenchmarkId::new("chunk_1MiB", name), chunk, |b, chunk| {
            let mut offsets = Vec::new();
            let mut s = KeyframeScanner::with_video(0x100, Codec::H264);
            b.iter(|| {
                offsets.clear();
                s.scan(black_box(chunk), &mut offsets);
                offsets.len()
            })
        });
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("learn_pid", name), &ts, |b, ts| {
            let mut offsets = Vec::new();
            b.iter(|| {
                offsets.clear();
                let mut s = KeyframeScanner::new();
                for chunk in ts.chunks(SCAN_CHUNK) {
                    s.scan(chunk, &mut offsets);
                }
                offsets.len()
            })
        });
        g.finish();
    }
}

criterion_group!(mpegts, benches);
criterion_main!(mpegts);
