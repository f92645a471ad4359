//! Loopback RTMP fan-out benchmark: 1 publisher → N RTMP players of one
//! stream, on open-streamer and then on nginx-rtmp, in the same run.
//!
//! `cargo bench -p open-streamer --bench rtmp_fanout` (part of `make bench`).
//! Knobs: `BENCH_PLAYERS` (500), `BENCH_SECONDS` (20), `BENCH_BITRATE` (500k).
//! Needs ffmpeg; nginx with libnginx-mod-rtmp for the comparison (skipped
//! with a note when missing).
//!
//! - The publisher is `ffmpeg -re -stream_loop -1 -c copy` of a pre-encoded
//!   FLV; the players are in-process RTMP clients (rml_rtmp) in this process.
//! - CPU: the server process's user+system seconds over the window (from
//!   /proc), divided by the bytes the players received in the same window:
//!   CPU seconds per GB delivered.
//! - Lost frames: per player, video timestamp steps larger than 1.5 frame
//!   intervals inside the window, counted in frames (a fast reader must
//!   lose none).
//! - Latency: for every video frame, `arrival - timestamp` at each player;
//!   the figure is that value minus its minimum over the run (the fastest
//!   frame), p50/p95/max. It measures the delay the server adds on top of
//!   its best case (queueing, batching, scheduling), not absolute glass-to-
//!   glass latency; a constant hold (open-streamer's MPEG-TS demux emits a
//!   video frame when the next one starts, i.e. one frame later) is not in it.

#[path = "../tests/common/rtmp_player.rs"]
mod rtmp_player;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{Server, env_or, free_port, make_source, publish};
use tokio_util::sync::CancellationToken;

/// Frame interval of the source (25 fps), ms.
const FRAME_MS: u32 = 40;

struct Result {
    players_ok: usize,
    /// Video frames missing at the players (timestamp gaps), all players.
    lost_frames: u64,
    gb: f64,
    cpu_s: f64,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
}

/// Connect `n` players to `addr` `live/<key>`, warm up, measure the window.
fn run_players(
    rt: &tokio::runtime::Runtime,
    pid: u32,
    addr: SocketAddr,
    key: &str,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<Result> {
    let stop = CancellationToken::new();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let key = key.to_string();
            let stop = stop.clone();
            rt.spawn(async move { rtmp_player::play(addr, "live", &key, stop, None).await })
        })
        .collect();
    std::thread::sleep(warmup);
    let b0 = rtmp_player::BYTES.load(Ordering::Relaxed);
    let c0 = support::sample(pid)?.0;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let b1 = rtmp_player::BYTES.load(Ordering::Relaxed);
    let c1 = support::sample(pid)?.0;
    let t1 = Instant::now();
    stop.cancel();
    let played: Vec<_> = rt.block_on(async {
        let mut v = Vec::new();
        for h in handles {
            if let Ok(p) = h.await {
                v.push(p);
            }
        }
        v
    });
    // Delay of each frame relative to its media time, inside the window.
    let mut lat: Vec<f64> = Vec::new();
    let mut ok = 0;
    let mut lost_frames = 0;
    for p in &played {
        let frames: Vec<_> = p
            .video
            .iter()
            .filter(|(_, _, at)| *at >= t0 && *at <= t1)
            .collect();
        if !frames.is_empty() {
            ok += 1;
        }
        for w in frames.windows(2) {
            let step = w[1].0.wrapping_sub(w[0].0);
            if step > FRAME_MS * 3 / 2 && step < 10_000 {
                lost_frames += u64::from((step + FRAME_MS / 2) / FRAME_MS - 1);
            }
        }
        for (ts, _, at) in frames {
            lat.push(at.duration_since(t0).as_secs_f64() * 1000.0 - f64::from(*ts));
        }
    }
    let min = lat.iter().copied().fold(f64::INFINITY, f64::min);
    let mut added: Vec<f64> = lat.iter().map(|l| l - min).collect();
    added.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| {
        added
            .get(((added.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Some(Result {
        players_ok: ok,
        lost_frames,
        gb: (b1 - b0) as f64 / 1e9,
        cpu_s: c1 - c0,
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
        max_ms: added.last().copied().unwrap_or(f64::NAN),
    })
}

fn run_ours(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<Result> {
    let server = Server::start(dir, &[]);
    server.add_stream_with("fan", r#"{"rtmp":true}"#);
    let _publisher = publish(file, &server.rtmp_url("fan"));
    std::thread::sleep(Duration::from_secs(3));
    let addr: SocketAddr = format!("127.0.0.1:{}", server.rtmp).parse().ok()?;
    run_players(rt, server.pid(), addr, "fan", n, warmup, window)
}

fn run_nginx(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<Result> {
    let port = free_port();
    let nginx = support::nginx_rtmp(dir, port, "live on; record off;")?;
    let _publisher = publish(file, &format!("rtmp://127.0.0.1:{port}/live/fan"));
    std::thread::sleep(Duration::from_secs(3));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    run_players(rt, nginx.0.id(), addr, "fan", n, warmup, window)
}

fn main() {
    if !support::asked_to_bench("rtmp_fanout") {
        return;
    }
    let n: usize = env_or("BENCH_PLAYERS", 500);
    let secs: u64 = env_or("BENCH_SECONDS", 20);
    let bitrate: String = env_or("BENCH_BITRATE", "500k".to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "640x360", &bitrate, 10);
    let warmup = Duration::from_secs(5);
    let window = Duration::from_secs(secs);
    println!(
        "1 RTMP publisher ({bitrate}b/s video + 128 kb/s audio) -> {n} RTMP players, {secs} s window after {}s warm-up",
        warmup.as_secs()
    );
    let ours = run_ours(&rt, dir.path(), &file, n, warmup, window);
    let nginx = run_nginx(&rt, dir.path(), &file, n, warmup, window);
    println!();
    println!(
        "| server | players receiving | frames lost | delivered | CPU s | CPU s per GB | added latency p50 / p95 / max |"
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, r: &Result| {
        println!(
            "| {name} | {}/{n} | {} | {:.2} GB | {:.2} | {:.2} | {:.0} / {:.0} / {:.0} ms |",
            r.players_ok,
            r.lost_frames,
            r.gb,
            r.cpu_s,
            r.cpu_s / r.gb.max(1e-9),
            r.p50_ms,
            r.p95_ms,
            r.max_ms
        )
    };
    if let Some(r) = &ours {
        row("open-streamer", r);
    }
    if let Some(r) = &nginx {
        row("nginx-rtmp", r);
    }
    if let (Some(o), Some(g)) = (&ours, &nginx) {
        let per = |r: &Result| r.cpu_s / r.gb.max(1e-9);
        println!();
        println!(
            "ratio open-streamer / nginx-rtmp: CPU seconds per GB {:.2} (goal <= 0.6)",
            per(o) / per(g).max(1e-9)
        );
    }
}
