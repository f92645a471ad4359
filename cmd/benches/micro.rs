//! Micro figures for the suite: buffer hub delivery cost and MPEG-TS demux,
//! mux and remux throughput, the remux against `ffmpeg -c copy` on the same
//! file.
//!
//! `cargo bench -p open-streamer --bench micro` (part of `make bench`).
//! Trials: `BENCH_RUNS` (3); `BENCH_QUICK=1`: shorter hub loops and a
//! smaller file. Needs ffmpeg. (The criterion benches, `make bench-micro`,
//! cover more variants with their own output.)
//!
//! - Hub: one 1316-byte chunk written with `write_raw`, then taken by each
//!   of R readers with `try_recv`, repeated for a fixed time; ns per chunk
//!   per reader (wall clock, single thread).
//! - TS: a 1280x720 H.264 (~6 Mbit/s, GOP 2 s) + AAC clip encoded by ffmpeg,
//!   looped with `-c copy` into one file (≈ 150 MB, quick ≈ 40 MB) held in
//!   memory. Demux: 64 KiB pushes, all events pulled. Mux: every access unit
//!   of that demux into a reused buffer. Remux: both in one pass (GB of
//!   input per CPU second). Ours is timed with the thread's on-CPU time
//!   (`/proc/thread-self/schedstat`); the peer is
//!   `ffmpeg -i file -c copy -f mpegts -y /dev/null`, timed with its user +
//!   system time (bash's `times`), with the file in the page cache; that
//!   includes ffmpeg's start-up, which weighs more on the quick run's
//!   smaller file.

mod support;

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use os_bench::{Better, Figure, Goal, OURS, emit, runs};
use os_hub::{Buffer, Reader};
use os_mpegts::{Demuxer, Event, Muxer, MuxerConfig};

const HUB: &str = "Buffer hub";
const TS: &str = "MPEG-TS";
const FFMPEG: &str = "ffmpeg -c copy";

/// ns per chunk per reader with `readers` readers, for about `dur`.
fn hub_fanout(readers: usize, dur: Duration) -> f64 {
    let buf = Arc::new(Buffer::new("b", 1024));
    let mut rs: Vec<Reader> = (0..readers)
        .map(|i| buf.subscribe_raw(format!("r{i}")))
        .collect();
    let data = Bytes::from(vec![0x47u8; 1316]);
    let mut step = || {
        buf.write_raw(data.clone(), false).ok();
        for r in rs.iter_mut() {
            black_box(r.try_recv().ok());
        }
    };
    // Warm-up, then the timed loop in batches (few clock reads).
    let warm = Instant::now();
    while warm.elapsed() < dur / 5 {
        step();
    }
    let batch = (100_000 / readers).max(1);
    let mut iters = 0u64;
    let start = Instant::now();
    while start.elapsed() < dur {
        for _ in 0..batch {
            step();
        }
        iters += batch as u64;
    }
    start.elapsed().as_secs_f64() * 1e9 / (iters as f64 * readers as f64)
}

/// On-CPU time of the calling thread, seconds.
fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// Run ffmpeg with `args` under bash and return its user + system CPU
/// seconds, from bash's `times` (getrusage of the reaped child, ms
/// precision; /proc's clock ticks are too coarse for a short run).
fn ffmpeg_cpu(args: &[&str]) -> f64 {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#""$@" >/dev/null 2>&1 || echo failed; times"#)
        .arg("bash")
        .args([
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.starts_with("failed"), "ffmpeg {args:?} failed");
    // Second line of `times`: children's user and system time, "XmY.ZZZs XmY.ZZZs".
    let line = text.lines().nth(1).unwrap_or_default();
    line.split_whitespace()
        .map(|t| {
            let t = t.trim_end_matches('s');
            let (m, s) = t.split_once('m').unwrap_or(("0", t));
            m.parse::<f64>().unwrap_or(f64::NAN) * 60.0 + s.parse::<f64>().unwrap_or(f64::NAN)
        })
        .sum()
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    assert!(status.success(), "ffmpeg {args:?} failed");
}

fn make_file(dir: &Path, clip_secs: u32, loops: u32) -> Vec<u8> {
    let clip = dir.join("clip.ts");
    let clip_s = clip.to_string_lossy().into_owned();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000",
        "-t",
        &clip_secs.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        "6M",
        "-maxrate",
        "6M",
        "-bufsize",
        "6M",
        "-g",
        "50",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-f",
        "mpegts",
        &clip_s,
    ]);
    let big = dir.join("big.ts");
    ffmpeg(&[
        "-stream_loop",
        &loops.to_string(),
        "-i",
        &clip_s,
        "-c",
        "copy",
        "-f",
        "mpegts",
        &big.to_string_lossy(),
    ]);
    std::fs::read(&big).unwrap_or_else(|e| panic!("{e}"))
}

/// Run `pass` (returning its CPU seconds) until the total is at least
/// 0.25 s; (passes, total CPU seconds).
fn repeat(mut pass: impl FnMut() -> f64) -> (u64, f64) {
    let mut n = 0;
    let mut total = 0.0;
    while total < 0.25 && n < 1000 {
        total += pass();
        n += 1;
    }
    (n, total)
}

/// Demux `data` in 64 KiB pushes; the events (for the mux) and CPU seconds.
fn demux(data: &[u8], keep: bool) -> (Vec<Event>, f64) {
    let mut events = Vec::new();
    let t0 = thread_cpu();
    let mut d = Demuxer::new();
    for chunk in data.chunks(64 << 10) {
        d.push(chunk);
        while let Some(e) = d.pull() {
            if keep {
                events.push(e);
            } else {
                black_box(e);
            }
        }
    }
    d.flush();
    while let Some(e) = d.pull() {
        if keep {
            events.push(e);
        }
    }
    let cpu = thread_cpu() - t0;
    (events, cpu)
}

fn apply(e: &Event, muxer: &mut Option<Muxer>, out: &mut Vec<u8>) {
    match e {
        Event::ProgramChanged(p) => {
            let m = muxer.get_or_insert_with(|| Muxer::new(MuxerConfig::default()));
            m.set_tracks(&p.tracks)
                .unwrap_or_else(|e| panic!("tracks: {e}"));
        }
        Event::Params(p) => {
            if let Some(m) = muxer.as_mut() {
                m.set_params(p).unwrap_or_else(|e| panic!("params: {e}"));
            }
        }
        Event::AccessUnit(au) => {
            if let Some(m) = muxer.as_mut() {
                m.write(au, out).unwrap_or_else(|e| panic!("mux: {e}"));
            }
        }
        _ => {}
    }
}

/// Mux the demuxed events; (TS bytes out, CPU seconds).
fn mux(events: &[Event]) -> (u64, f64) {
    let mut out = Vec::with_capacity(4 << 20);
    let mut total = 0u64;
    let mut muxer = None;
    let t0 = thread_cpu();
    for e in events {
        apply(e, &mut muxer, &mut out);
        if out.len() >= 1 << 20 {
            total += out.len() as u64;
            out.clear();
        }
    }
    if let Some(m) = muxer.as_mut() {
        m.flush(&mut out).unwrap_or_else(|e| panic!("flush: {e}"));
    }
    total += out.len() as u64;
    (total, thread_cpu() - t0)
}

/// Demux and mux in one pass; CPU seconds.
fn remux(data: &[u8]) -> f64 {
    let mut out = Vec::with_capacity(4 << 20);
    let mut muxer = None;
    let t0 = thread_cpu();
    let mut d = Demuxer::new();
    for chunk in data.chunks(1 << 20) {
        d.push(chunk);
        while let Some(e) = d.pull() {
            apply(&e, &mut muxer, &mut out);
        }
        black_box(out.len());
        out.clear();
    }
    d.flush();
    while let Some(e) = d.pull() {
        apply(&e, &mut muxer, &mut out);
    }
    if let Some(m) = muxer.as_mut() {
        m.flush(&mut out).unwrap_or_else(|e| panic!("flush: {e}"));
    }
    black_box(out.len());
    thread_cpu() - t0
}

fn main() {
    if !support::asked_to_bench("micro") {
        return;
    }
    let quick = support::quick();
    let trials = runs();
    let hub_dur = Duration::from_millis(if quick { 300 } else { 1000 });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (clip, loops) = if quick { (4, 12) } else { (10, 19) };
    let data = make_file(dir.path(), clip, loops);
    let file = dir.path().join("big.ts");
    let gb = data.len() as f64 / 1e9;
    println!(
        "hub: {} ms per reader count; TS: {:.0} MB file ({clip} s clip x {}), {trials} trials",
        hub_dur.as_millis(),
        data.len() as f64 / 1e6,
        loops + 1
    );

    let hub = |readers: usize| {
        let f = Figure::new(
            HUB,
            match readers {
                1 => "1 reader".to_string(),
                10_000 => "10,000 readers".to_string(),
                n => format!("{n} readers"),
            },
            "write + try_recv, per chunk per reader",
            "ns",
            Better::Lower,
        );
        if readers == 10_000 {
            f.goal(Goal::Absolute { value: 50.0 })
        } else {
            f
        }
    };
    let demux_f = Figure::new(
        TS,
        "demux (64 KiB pushes)",
        "throughput",
        "GB/s of TS per CPU s",
        Better::Higher,
    )
    .goal(Goal::Absolute { value: 1.0 });
    let mux_f = Figure::new(
        TS,
        "mux (reused buffer)",
        "throughput",
        "GB/s of TS per CPU s",
        Better::Higher,
    )
    .goal(Goal::Absolute { value: 1.0 });
    let remux_f = Figure::new(
        TS,
        "remux: demux + mux vs ffmpeg -c copy",
        "throughput",
        "GB/s of input per CPU s",
        Better::Higher,
    )
    .goal(Goal::Ratio {
        peer: FFMPEG.into(),
        ratio: 2.0,
    });

    for trial in 1..=trials {
        for readers in [1usize, 100, 10_000] {
            let ns = hub_fanout(readers, hub_dur);
            println!("  trial {trial}: hub, {readers} readers: {ns:.1} ns per chunk per reader");
            emit(&hub(readers).value(OURS, trial, ns));
        }
        let (events, cpu) = demux(&data, true);
        let units = events
            .iter()
            .filter(|e| matches!(e, Event::AccessUnit(_)))
            .count();
        assert!(units > 0, "the demuxer found no access units");
        // The first pass also allocates the kept events: time further ones,
        // repeated until they add up to a measurable CPU time.
        let (passes, cpu2) = repeat(|| demux(&data, false).1);
        let (mux_passes, mux_cpu) = repeat(|| mux(&events).1);
        let out_bytes = mux(&events).0 * mux_passes;
        drop(events);
        let (remux_passes, remux_cpu) = repeat(|| remux(&data));
        let cpu2 = cpu2 / passes as f64;
        let remux_cpu = remux_cpu / remux_passes as f64;
        let mux_cpu = mux_cpu / mux_passes as f64;
        let out_bytes = out_bytes / mux_passes;
        let ff_cpu = ffmpeg_cpu(&[
            "-i",
            &file.to_string_lossy(),
            "-c",
            "copy",
            "-f",
            "mpegts",
            "/dev/null",
        ]);
        println!(
            "  trial {trial}: {units} access units; demux {:.2} GB/s ({cpu:.3} s with events kept, {cpu2:.4} s without), mux {:.2} GB/s out ({mux_cpu:.4} s), remux {:.2} GB/s ({remux_cpu:.4} s), ffmpeg -c copy {:.2} GB/s ({ff_cpu:.2} s)",
            gb / cpu2,
            out_bytes as f64 / 1e9 / mux_cpu,
            gb / remux_cpu,
            gb / ff_cpu
        );
        emit(&demux_f.value(OURS, trial, gb / cpu2));
        emit(&mux_f.value(OURS, trial, out_bytes as f64 / 1e9 / mux_cpu));
        emit(&remux_f.value(OURS, trial, gb / remux_cpu));
        emit(&remux_f.value(FFMPEG, trial, gb / ff_cpu));
    }
}
