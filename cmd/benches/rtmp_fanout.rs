//! Loopback RTMP fan-out benchmark: 1 publisher → N RTMP players of one
//! stream, on open-streamer, nginx-rtmp and xiu, alternated trial by trial
//! (ours, nginx-rtmp, xiu, ours, …).
//!
//! `cargo bench -p open-streamer --bench rtmp_fanout` (part of `make bench`).
//!
//! Knobs: `BENCH_PLAYERS` (comma list, default `100,500,1000`),
//! `BENCH_RUNS` (trials, default 3), `BENCH_SECONDS` (window, 20),
//! `BENCH_WARMUP` (5), `BENCH_BITRATE` (video, `2M`), `BENCH_QUICK=1` (one
//! case of 100 players, 5 s windows, 3 s warm-up: about two minutes),
//! `OS_LOAD_BIN` / `XIU_BIN` (binaries; see `support/load.rs`).
//!
//! Needs ffmpeg; nginx with libnginx-mod-rtmp and `.tools/xiu/bin/xiu` for
//! the comparisons (each skipped with a note when missing). xiu listens on
//! every address, so it only runs when the bench is in a network namespace
//! of its own:
//! `ip netns add osbench && ip -n osbench link set lo up && ip netns exec osbench cargo bench -p open-streamer --bench rtmp_fanout`.
//!
//! Method:
//! - Every measurement starts its server afresh, then the publisher:
//!   `ffmpeg -re -stream_loop -1 -c copy` of a pre-encoded 1280x720 FLV
//!   (x264, `BENCH_BITRATE` video + 128 kb/s AAC, GOP 2 s), waits 3 s, and
//!   runs the players: `os-load rtmp` as a separate process (tokio, one
//!   task per player), which connects all players over 1 s, waits for the
//!   warm-up (GOP burst) and counts over the window.
//! - CPU: the server process's user+system seconds over exactly the load
//!   client's window (it marks start and end on stderr; /proc sampled
//!   then), divided by the bytes the players received in that window:
//!   CPU seconds per GB delivered. RSS: the server's at the window's end.
//! - Lost frames: per player, video timestamp steps larger than 1.5 frame
//!   intervals inside the window, counted in frames (a fast reader must
//!   lose none).
//! - Added latency: per video frame, `arrival − timestamp` at each player,
//!   minus the minimum of that over all players (the fastest frame); p95
//!   over all frames of all players. It is the delay the server adds on
//!   top of its best case (queueing, batching, fan-out order), not glass-
//!   to-glass latency (see the os-load crate docs).
//!
//! Figures are printed (and appended to `BENCH_RESULTS`) through os-bench;
//! nothing is asserted.

mod support;

use std::path::Path;
use std::time::Duration;

use os_bench::{Better, Figure, Goal, OURS, emit};
use support::load::{self, Measured};
use support::{Proc, Server, env_or, free_port, make_source, publish};

const SCENARIO: &str = "RTMP fan-out";
const NGINX: &str = "nginx-rtmp";
const XIU: &str = "xiu";

/// Settings of one measurement.
struct Load {
    players: usize,
    warmup: f64,
    seconds: f64,
}

impl Load {
    fn args(&self) -> Vec<String> {
        vec![
            "--readers".into(),
            self.players.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
        ]
    }
}

/// Publisher settling time before the players connect.
const SETTLE: Duration = Duration::from_secs(3);

fn run_ours(dir: &Path, file: &Path, l: &Load) -> Option<Measured> {
    let server = Server::start(dir, &[]);
    server.add_stream_with("fan", r#"{"rtmp":true}"#);
    let _publisher = publish(file, &server.rtmp_url("fan"));
    std::thread::sleep(SETTLE);
    let url = format!("rtmp://127.0.0.1:{}/live/fan", server.rtmp);
    load::run("rtmp", &url, &l.args(), &[server.pid()])
}

fn run_nginx(dir: &Path, file: &Path, l: &Load) -> Option<Measured> {
    let port = free_port();
    let nginx = support::nginx_rtmp(dir, port, "live on; record off;")?;
    let url = format!("rtmp://127.0.0.1:{port}/live/fan");
    let _publisher = publish(file, &url);
    std::thread::sleep(SETTLE);
    load::run("rtmp", &url, &l.args(), &[nginx.0.id()])
}

fn run_xiu(xiu: &Path, dir: &Path, file: &Path, l: &Load) -> Option<Measured> {
    let port = free_port();
    let log = std::fs::File::create(dir.join("xiu.log")).ok()?;
    let child = std::process::Command::new(xiu)
        .args(["-r", &port.to_string(), "-l", "error"])
        .current_dir(dir)
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", xiu.display()));
    let xiu = Proc(child);
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("rtmp://127.0.0.1:{port}/live/fan");
    let _publisher = publish(file, &url);
    std::thread::sleep(SETTLE);
    load::run("rtmp", &url, &l.args(), &[xiu.0.id()])
}

fn main() {
    if !support::asked_to_bench("rtmp_fanout") {
        return;
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let players: Vec<usize> = if quick {
        vec![100]
    } else {
        env_or("BENCH_PLAYERS", "100,500,1000".to_string())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    };
    let seconds: f64 = if quick {
        5.0
    } else {
        env_or("BENCH_SECONDS", 20.0)
    };
    let warmup: f64 = if quick {
        3.0
    } else {
        env_or("BENCH_WARMUP", 5.0)
    };
    let bitrate: String = env_or("BENCH_BITRATE", "2M".to_string());
    let runs = os_bench::runs();

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "1280x720", &bitrate, 10);
    // Build the load client before anything is measured.
    let _ = load::binary();
    let nginx = support::nginx_available(true);
    if !nginx {
        println!("nginx-rtmp: not installed (apt-get install -y nginx libnginx-mod-rtmp); skipped");
    }
    let xiu = match load::xiu_binary() {
        None => {
            println!("xiu: not found (.tools/xiu/bin/xiu or XIU_BIN); skipped");
            None
        }
        Some(_) if !load::in_own_netns() => {
            println!(
                "xiu: skipped, it listens on every address and runs only inside a network \
                 namespace of its own; run:\n  {}",
                load::netns_hint("rtmp_fanout")
            );
            None
        }
        Some(p) => Some(p),
    };
    println!(
        "1 RTMP publisher ({bitrate}b/s video + 128 kb/s audio, 1280x720) -> N RTMP players (os-load), \
         {seconds} s window after {warmup} s warm-up, {runs} trial(s), players {players:?}"
    );

    let cpu = Figure::new(
        SCENARIO,
        "",
        "server CPU s per GB delivered",
        "s/GB",
        Better::Lower,
    )
    .goal(Goal::Ratio {
        peer: NGINX.into(),
        ratio: 0.6,
    });
    let rss = Figure::new(SCENARIO, "", "server RSS", "MiB", Better::Lower);
    let lost = Figure::new(
        SCENARIO,
        "",
        "frames lost by fast readers",
        "frames",
        Better::Lower,
    )
    .goal(Goal::Absolute { value: 0.0 });
    let p95 = Figure::new(SCENARIO, "", "added latency p95", "ms", Better::Lower)
        .goal(Goal::Absolute { value: 50.0 });
    let p50 = Figure::new(SCENARIO, "", "added latency p50", "ms", Better::Lower);
    let receiving = Figure::new(SCENARIO, "", "players receiving", "players", Better::Higher);

    let mut rows = Vec::new();
    for &n in &players {
        let case = format!("{n} players");
        let l = Load {
            players: n,
            warmup,
            seconds,
        };
        for trial in 1..=runs {
            let mut subjects: Vec<(&str, Option<Measured>)> = Vec::new();
            subjects.push((OURS, run_ours(dir.path(), &file, &l)));
            if nginx {
                subjects.push((NGINX, run_nginx(dir.path(), &file, &l)));
            }
            if let Some(x) = &xiu {
                subjects.push((XIU, run_xiu(x, dir.path(), &file, &l)));
            }
            for (subject, m) in subjects {
                let Some(m) = m else {
                    println!("{case}, trial {trial}: {subject} not measured");
                    continue;
                };
                let s = &m.summary;
                let with_case = |f: &Figure| Figure {
                    case: case.clone(),
                    ..f.clone()
                };
                emit(&with_case(&cpu).value(subject, trial, m.cpu_per_gb()));
                emit(&with_case(&rss).value(subject, trial, m.rss_mib));
                emit(&with_case(&lost).value(subject, trial, s.lost as f64));
                emit(&with_case(&receiving).value(subject, trial, s.receiving as f64));
                let ms = |v: Option<f64>| v.unwrap_or(f64::NAN);
                emit(&with_case(&p95).value(subject, trial, ms(s.latency_ms.p95)));
                emit(&with_case(&p50).value(subject, trial, ms(s.latency_ms.p50)));
                rows.push(format!(
                    "| {n} | {trial} | {subject} | {}/{} | {}–{} | {} | {:.2} GB | {:.2} | {:.2} | {:.0} | {:.0} / {:.0} / {:.0} ms ({}) |",
                    s.receiving,
                    s.readers,
                    s.per_reader.frames_min,
                    s.per_reader.frames_max,
                    s.lost,
                    s.bytes as f64 / 1e9,
                    m.cpu_s,
                    m.cpu_per_gb(),
                    m.rss_mib,
                    ms(s.latency_ms.p50),
                    ms(s.latency_ms.p95),
                    ms(s.latency_ms.max),
                    s.latency_ms.baseline,
                ));
            }
        }
    }
    println!();
    println!(
        "| players | trial | server | receiving | frames per player | frames lost | delivered | CPU s | CPU s per GB | RSS MiB | added latency p50 / p95 / max (baseline) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
