//! FLV tag parse throughput on the ffmpeg vector, looped in memory.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use os_flv::{AudioTag, FlvReader, TagType, VideoTag, amf0};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../data/testdata/flv/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn bench(c: &mut Criterion) {
    let file = vector("h264_aac.flv");
    let mut group = c.benchmark_group("flv");
    group.throughput(Throughput::Bytes(file.len() as u64));

    group.bench_function("tags", |b| {
        b.iter(|| {
            let mut reader = FlvReader::new();
            reader.push(black_box(&file));
            let mut n = 0usize;
            while let Ok(Some(tag)) = reader.pull() {
                n += tag.data.len();
            }
            n
        })
    });

    group.bench_function("tags_and_bodies", |b| {
        b.iter(|| {
            let mut reader = FlvReader::new();
            reader.push(black_box(&file));
            let mut n = 0usize;
            while let Ok(Some(tag)) = reader.pull() {
                n += match tag.tag_type {
                    TagType::Video => VideoTag::parse(&tag.data).map_or(0, |v| v.data.len()),
                    TagType::Audio => AudioTag::parse(&tag.data).map_or(0, |a| a.data.len()),
                    _ => 0,
                };
            }
            n
        })
    });

    group.bench_function("tags_4k_chunks", |b| {
        b.iter(|| {
            let mut reader = FlvReader::new();
            let mut n = 0usize;
            for chunk in black_box(&file).chunks(4096) {
                reader.push(chunk);
                while let Ok(Some(tag)) = reader.pull() {
                    n += tag.data.len();
                }
            }
            n
        })
    });
    group.finish();

    let connect = Bytes::from(vector("rtmp_connect_ffmpeg.amf0"));
    let mut group = c.benchmark_group("amf0");
    group.throughput(Throughput::Bytes(connect.len() as u64));
    group.bench_function("decode_connect", |b| {
        b.iter(|| amf0::decode_all(black_box(&connect)).map(|v| v.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
