//! Ingest density: N RTMP publishers pushed at once, each stream published
//! as HLS, on open-streamer, nginx-rtmp (`hls on`) and xiu (HLS on), the
//! subjects alternating trial by trial.
//!
//! `cargo bench -p open-streamer --bench rtmp_ingest` (part of `make bench`).
//! Cases: 25, 50 and 100 publishers (`BENCH_QUICK=1`: 10); trials:
//! `BENCH_RUNS` (3). Knobs: `BENCH_PUBLISHERS` (one case of that many),
//! `BENCH_SECONDS` (window, 20; quick 8), `BENCH_BITRATE` (1M video).
//! Needs ffmpeg; nginx with libnginx-mod-rtmp and xiu (`make bench-peers`)
//! for the comparison, each skipped with a note when missing. xiu binds
//! 0.0.0.0, so it runs only inside a private network namespace (the suite
//! runs there).
//!
//! Publishers are `ffmpeg -re -stream_loop -1 -c copy` of one pre-encoded
//! 854x480 FLV (GOP 2 s, AAC), so encoding costs nothing during the
//! measurement. Server CPU comes from /proc/<pid>/stat (user+system) over
//! the window after a warm-up, memory from VmRSS at its end; both are
//! divided by the number of publishers. Every subject cuts 2 s segments
//! and lists 6 in its playlist. "Streams with a playlist" checks
//! each subject actually produced HLS for every stream.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use os_bench::{Better, Figure, Goal, OURS, emit, runs};
use support::{Proc, Server, curl, env_or, free_port, make_source, publish, sample};

const SCENARIO: &str = "Ingest density";
const NGINX: &str = "nginx-rtmp";
const XIU: &str = "xiu";

struct Measure {
    cpu_percent: f64,
    /// NaN when the server could not be sampled (it died).
    rss_kib: f64,
    alive: usize,
    playlists: usize,
}

fn measure(
    pid: u32,
    publishers: &mut [Proc],
    warmup: Duration,
    window: Duration,
) -> (f64, f64, usize) {
    std::thread::sleep(warmup);
    let before = sample(pid);
    let t0 = Instant::now();
    std::thread::sleep(window);
    let after = sample(pid);
    let secs = t0.elapsed().as_secs_f64();
    let alive = publishers
        .iter_mut()
        .map(|p| matches!(p.0.try_wait(), Ok(None)))
        .filter(|alive| *alive)
        .count();
    match (before, after) {
        (Some((cpu0, _)), Some((cpu1, rss))) => ((cpu1 - cpu0) / secs * 100.0, rss as f64, alive),
        _ => {
            println!("  server process {pid} could not be sampled (exited?): not measured");
            (f64::NAN, f64::NAN, alive)
        }
    }
}

/// Streams whose playlist lists at least one segment.
fn playlists_ok(fetch: &dyn Fn(usize) -> Option<String>, n: usize) -> usize {
    (0..n)
        .filter(|i| fetch(*i).is_some_and(|t| !support::playlist_segments(&t).is_empty()))
        .count()
}

fn run_ours(dir: &Path, file: &Path, n: usize, warmup: Duration, window: Duration) -> Measure {
    let server = Server::start(dir, &[]);
    for i in 0..n {
        server.add_stream(&format!("s{i}"), true, false);
    }
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &server.rtmp_url(&format!("s{i}"))))
        .collect();
    let (cpu_percent, rss_kib, alive) = measure(server.pid(), &mut pubs, warmup, window);
    let base = server.base.clone();
    let playlists = playlists_ok(&|i| curl(&["-sf", &format!("{base}/s{i}/index.m3u8")]), n);
    Measure {
        cpu_percent,
        rss_kib,
        alive,
        playlists,
    }
}

fn run_nginx(
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<Measure> {
    let port = free_port();
    let hls_dir = dir.join("nginx-hls");
    std::fs::create_dir_all(&hls_dir).ok()?;
    let nginx = support::nginx_rtmp(
        dir,
        port,
        &format!(
            "live on; record off; hls on; hls_path {}; hls_fragment 2s; hls_playlist_length 12s;",
            hls_dir.display()
        ),
    )?;
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &format!("rtmp://127.0.0.1:{port}/live/s{i}")))
        .collect();
    let (cpu_percent, rss_kib, alive) = measure(nginx.0.id(), &mut pubs, warmup, window);
    let playlists = playlists_ok(
        &|i| std::fs::read_to_string(hls_dir.join(format!("s{i}.m3u8"))).ok(),
        n,
    );
    Some(Measure {
        cpu_percent,
        rss_kib,
        alive,
        playlists,
    })
}

fn run_xiu(
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Measure, String> {
    let (rtmp, hls) = (free_port(), free_port());
    let xiu = support::xiu_hls(dir, rtmp, hls)?;
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &format!("rtmp://127.0.0.1:{rtmp}/live/s{i}")))
        .collect();
    let (cpu_percent, rss_kib, alive) = measure(xiu.0.id(), &mut pubs, warmup, window);
    let playlists = playlists_ok(
        &|i| {
            curl(&[
                "-sf",
                &format!("http://127.0.0.1:{hls}/live/s{i}/s{i}.m3u8"),
            ])
        },
        n,
    );
    Ok(Measure {
        cpu_percent,
        rss_kib,
        alive,
        playlists,
    })
}

fn main() {
    if !support::asked_to_bench("rtmp_ingest") {
        return;
    }
    let quick = support::quick();
    let cases: Vec<usize> = match std::env::var("BENCH_PUBLISHERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None if quick => vec![10],
        None => vec![25, 50, 100],
    };
    let secs: u64 = env_or("BENCH_SECONDS", if quick { 8 } else { 20 });
    let bitrate: String = env_or("BENCH_BITRATE", "1M".to_string());
    let trials = runs();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "854x480", &bitrate, 10);
    let warmup = Duration::from_secs(if quick { 5 } else { 10 });
    let window = Duration::from_secs(secs);
    println!(
        "publishers {cases:?} x {bitrate}b/s 854x480 video + 128 kb/s audio → HLS, {secs} s window after {} s warm-up, {trials} trials",
        warmup.as_secs()
    );

    let cpu = Figure::new(SCENARIO, "", "CPU per stream", "% of a core", Better::Lower).goal(
        Goal::Ratio {
            peer: NGINX.into(),
            ratio: 1.0,
        },
    );
    let rss = Figure::new(SCENARIO, "", "RSS per stream", "MiB", Better::Lower)
        .goal(Goal::Absolute { value: 8.0 });
    let ok = Figure::new(SCENARIO, "", "streams with a playlist", "%", Better::Higher);
    let mut xiu_note_printed = false;
    for &n in &cases {
        let case = format!("{n} publishers");
        let (cpu, rss, ok) = (
            Figure {
                case: case.clone(),
                ..cpu.clone()
            },
            Figure {
                case: case.clone(),
                ..rss.clone()
            },
            Figure {
                case: case.clone(),
                ..ok.clone()
            },
        );
        for trial in 1..=trials {
            let report = |subject: &str, m: &Measure| {
                println!(
                    "  {case}, trial {trial}, {subject}: {}/{n} publishers alive, {}/{n} playlists, CPU {:.1} % ({:.3} % per stream), RSS {:.1} MiB ({:.2} MiB per stream)",
                    m.alive,
                    m.playlists,
                    m.cpu_percent,
                    m.cpu_percent / n as f64,
                    m.rss_kib / 1024.0,
                    m.rss_kib / 1024.0 / n as f64
                );
                emit(&cpu.value(subject, trial, m.cpu_percent / n as f64));
                emit(&rss.value(subject, trial, m.rss_kib / 1024.0 / n as f64));
                emit(&ok.value(subject, trial, m.playlists as f64 * 100.0 / n as f64));
            };
            let sub = |name: &str| {
                let d = dir.path().join(format!("{n}-{trial}-{name}"));
                std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
                d
            };
            let m = run_ours(&sub("ours"), &file, n, warmup, window);
            report(OURS, &m);
            if let Some(m) = run_nginx(&sub("nginx"), &file, n, warmup, window) {
                report(NGINX, &m);
            }
            match run_xiu(&sub("xiu"), &file, n, warmup, window) {
                Ok(m) => report(XIU, &m),
                Err(why) if !xiu_note_printed => {
                    println!("xiu: skipped: {why}");
                    xiu_note_printed = true;
                }
                Err(_) => {}
            }
        }
    }
}
