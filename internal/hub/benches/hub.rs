//! Buffer hub costs.
//!
//! - `fanout_sync/R`: one chunk written, then taken by each of R readers
//!   with `try_recv` (the data path: slot read lock + `Bytes` clone + drop).
//!   Throughput is in chunk deliveries, so time per element = ns per chunk
//!   per reader.
//! - `fanout_async/R`: the same through `recv().await` on a 2-worker tokio
//!   runtime: R reader tasks, the writer writes bursts of 16 chunks and
//!   yields; includes wakeups and task polls.
//! - `writer/*`: `write_raw` with no reader, 1 and 10,000 stalled readers
//!   (subscribed, never reading) and with 10,000 idle readers parked in
//!   `recv` (every write wakes whichever of them are parked).
//! - `chunk_size/*`: `write` (keyframe scan + cut) plus one in-step reader,
//!   for 188-byte, 7x188 and per-access-unit chunks of a real H.264+AAC TS.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use os_hub::{Buffer, Item, Reader};

const CAP: usize = 1024;

fn chunk() -> Bytes {
    Bytes::from(vec![0x47u8; 1316])
}

fn fanout_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_sync");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    for readers in [1usize, 100, 10_000] {
        let buf = Arc::new(Buffer::new("b", CAP));
        let mut rs: Vec<Reader> = (0..readers)
            .map(|i| buf.subscribe_raw(format!("r{i}")))
            .collect();
        let data = chunk();
        g.throughput(Throughput::Elements(readers as u64));
        g.bench_function(BenchmarkId::from_parameter(readers), |b| {
            b.iter(|| {
                buf.write_raw(data.clone(), false).ok();
                for r in rs.iter_mut() {
                    black_box(r.try_recv().ok());
                }
            });
        });
    }
    g.finish();
}

fn fanout_async(c: &mut Criterion) {
    const CHUNKS: u64 = 256;
    const BURST: u64 = 16;
    let mut g = c.benchmark_group("fanout_async");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(10);
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return;
    };
    for readers in [1usize, 100, 10_000] {
        g.throughput(Throughput::Elements(readers as u64 * CHUNKS));
        g.bench_function(BenchmarkId::from_parameter(readers), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(async {
                        // Capacity holds the whole run: measures delivery, not lag.
                        let buf = Arc::new(Buffer::new("b", 4096));
                        let tasks: Vec<_> = (0..readers)
                            .map(|i| {
                                let mut r = buf.subscribe_raw(format!("r{i}"));
                                tokio::spawn(async move {
                                    let mut n = 0u64;
                                    while let Ok(item) = r.recv().await {
                                        if let Item::Chunk(_) = item {
                                            n += 1;
                                        }
                                    }
                                    n
                                })
                            })
                            .collect();
                        // Let every reader park in recv first.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let data = chunk();
                        let start = Instant::now();
                        for i in 0..CHUNKS {
                            buf.write_raw(data.clone(), false).ok();
                            if i % BURST == BURST - 1 {
                                tokio::task::yield_now().await;
                            }
                        }
                        buf.close();
                        for t in tasks {
                            let n = t.await.unwrap_or(0);
                            assert_eq!(n, CHUNKS);
                        }
                        start.elapsed()
                    });
                }
                total
            });
        });
    }
    g.finish();
}

fn writer(c: &mut Criterion) {
    let mut g = c.benchmark_group("writer");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let data = chunk();
    for stalled in [0usize, 1, 10_000] {
        let buf = Arc::new(Buffer::new("b", CAP));
        let _rs: Vec<Reader> = (0..stalled)
            .map(|i| buf.subscribe(format!("r{i}")))
            .collect();
        // Fill the ring so every measured write evicts a chunk.
        for _ in 0..CAP {
            buf.write_raw(data.clone(), true).ok();
        }
        g.bench_function(BenchmarkId::new("stalled_readers", stalled), |b| {
            b.iter(|| buf.write_raw(black_box(data.clone()), false));
        });
    }
    // 10,000 readers parked in recv(): each write wakes those parked.
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        let buf = Arc::new(Buffer::new("b", CAP));
        let tasks: Vec<_> = (0..10_000)
            .map(|i| {
                let mut r = buf.subscribe_raw(format!("r{i}"));
                rt.spawn(async move { while r.recv().await.is_ok() {} })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        g.bench_function("parked_readers/10000", |b| {
            b.iter(|| buf.write_raw(black_box(data.clone()), false));
        });
        buf.close();
        rt.block_on(async {
            for t in tasks {
                t.await.ok();
            }
        });
    }
    g.finish();
}

/// The test vector cut into pieces of `size` bytes, or at every video PES
/// start (`None`: one chunk per access unit, as an ingest that frames by AU
/// would write).
fn pieces(ts: &Bytes, size: Option<usize>) -> Vec<Bytes> {
    match size {
        Some(n) => (0..ts.len())
            .step_by(n)
            .map(|i| ts.slice(i..(i + n).min(ts.len())))
            .collect(),
        None => {
            let mut cuts = vec![0];
            for (i, pkt) in ts.chunks_exact(188).enumerate() {
                let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
                if i > 0 && pid == 0x100 && pkt[1] & 0x40 != 0 {
                    cuts.push(i * 188);
                }
            }
            cuts.push(ts.len());
            cuts.windows(2).map(|w| ts.slice(w[0]..w[1])).collect()
        }
    }
}

fn chunk_size(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/testdata/h264_aac.ts"
    );
    let Ok(file) = std::fs::read(path) else {
        return;
    };
    let ts = Bytes::from(file);
    let mut g = c.benchmark_group("chunk_size");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    g.throughput(Throughput::Bytes(ts.len() as u64));
    for (name, size) in [
        ("188", Some(188)),
        ("1316", Some(1316)),
        ("access_unit", None),
    ] {
        let ps = pieces(&ts, size);
        let buf = Arc::new(Buffer::new("b", CAP));
        let mut r = buf.subscribe_raw("r");
        g.bench_function(format!("{name} ({} chunks)", ps.len()), |b| {
            b.iter(|| {
                for p in &ps {
                    buf.write(p.clone()).ok();
                    while let Ok(item) = r.try_recv() {
                        black_box(item);
                    }
                }
            });
        });
    }
    g.finish();
}

criterion_group!(benches, fanout_sync, fanout_async, writer, chunk_size);
criterion_main!(benches);
