//! Loopback ingest benchmark: N RTMP publishers at ~2 Mb/s pushed at once to
//! open-streamer, then to nginx-rtmp, measured in the same run.
//!
//! `cargo bench -p open-streamer --bench rtmp_ingest` (part of `make bench`).
//! Knobs: `BENCH_PUBLISHERS` (50), `BENCH_SECONDS` (20), `BENCH_BITRATE` (2M).
//! Needs ffmpeg; nginx with libnginx-mod-rtmp for the comparison (skipped
//! with a note when missing).
//!
//! Publishers are `ffmpeg -re -stream_loop -1 -c copy` of one pre-encoded
//! FLV, so encoding costs nothing during the measurement. Server CPU comes
//! from /proc/<pid>/stat (user+system), memory from VmRSS, both sampled over
//! the measurement window after a warm-up.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Proc, Server, curl, env_or, free_port, make_source, publish, sample};

struct Measure {
    cpu_percent: f64,
    rss_kib: u64,
    publishers_alive: usize,
}

fn measure(
    pid: u32,
    publishers: &mut [Proc],
    warmup: Duration,
    window: Duration,
) -> Option<Measure> {
    std::thread::sleep(warmup);
    let (cpu0, _) = sample(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let (cpu1, rss) = sample(pid)?;
    let secs = t0.elapsed().as_secs_f64();
    let alive = publishers
        .iter_mut()
        .map(|p| matches!(p.0.try_wait(), Ok(None)))
        .filter(|alive| *alive)
        .count();
    Some(Measure {
        cpu_percent: (cpu1 - cpu0) / secs * 100.0,
        rss_kib: rss,
        publishers_alive: alive,
    })
}

fn run_ours(
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<(Measure, f64)> {
    let server = Server::start(dir, &[("OPEN_STREAMER_METRICS_ADDR", String::new())]);
    let base = server.base.clone();
    for i in 0..n {
        server.add_stream_with(&format!("s{i}"), "{}");
    }
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &server.rtmp_url(&format!("s{i}"))))
        .collect();
    let m = measure(server.pid(), &mut pubs, warmup, window)?;
    // Every stream should be active at about the source bitrate.
    let mut total_kbps = 0.0;
    let mut active = 0;
    for i in 0..n {
        let out = curl(&["-sf", &format!("{base}/streams/s{i}/status")]).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        if v["data"]["status"] == "active" {
            active += 1;
        }
        total_kbps += v["data"]["inputs"][0]["bitrate_kbps"]
            .as_f64()
            .unwrap_or(0.0);
    }
    println!(
        "open-streamer: {active}/{n} streams active, mean input bitrate {:.0} kb/s",
        total_kbps / n as f64
    );
    drop(pubs);
    Some((m, total_kbps / n as f64))
}

fn run_nginx(
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<Measure> {
    let port = free_port();
    let nginx = support::nginx_rtmp(dir, port, "live on; record off;")?;
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &format!("rtmp://127.0.0.1:{port}/live/s{i}")))
        .collect();
    let m = measure(nginx.0.id(), &mut pubs, warmup, window);
    drop(pubs);
    m
}

fn main() {
    if !support::asked_to_bench("rtmp_ingest") {
        return;
    }
    let n: usize = env_or("BENCH_PUBLISHERS", 50);
    let secs: u64 = env_or("BENCH_SECONDS", 20);
    let bitrate: String = env_or("BENCH_BITRATE", "2M".to_string());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "1280x720", &bitrate, 10);
    let warmup = Duration::from_secs(5);
    let window = Duration::from_secs(secs);
    println!(
        "{n} RTMP publishers x {bitrate}b/s video + 128 kb/s audio, {secs} s window after {}s warm-up",
        warmup.as_secs()
    );

    let ours = run_ours(dir.path(), &file, n, warmup, window);
    let nginx = run_nginx(dir.path(), &file, n, warmup, window);
    println!();
    println!(
        "| server | publishers alive | CPU (% of one core) | CPU per stream | RSS | RSS per stream |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, m: &Measure| {
        println!(
            "| {name} | {}/{n} | {:.1} % | {:.2} % | {:.1} MiB | {:.2} MiB |",
            m.publishers_alive,
            m.cpu_percent,
            m.cpu_percent / n as f64,
            m.rss_kib as f64 / 1024.0,
            m.rss_kib as f64 / 1024.0 / n as f64
        )
    };
    if let Some((m, _)) = &ours {
        row("open-streamer", m);
    }
    if let Some(m) = &nginx {
        row("nginx-rtmp", m);
    }
    if let (Some((o, _)), Some(g)) = (&ours, &nginx) {
        println!();
        println!(
            "ratio open-streamer / nginx-rtmp: CPU {:.2}, RSS {:.2}",
            o.cpu_percent / g.cpu_percent.max(0.01),
            o.rss_kib as f64 / (g.rss_kib as f64).max(1.0)
        );
    }
}
