//! Loopback added-latency benchmark: RTMP → RTMP and SRT → SRT through
//! open-streamer, with nginx-rtmp (RTMP) and `srt-live-transmit` (an SRT
//! relay, SRT) as peers when installed; subjects alternate trial by trial.
//!
//! `cargo bench -p open-streamer --bench latency`.
//! Knobs: `BENCH_READERS` (players per measurement, 10), `BENCH_RUNS` (3),
//! `BENCH_SECONDS` (window, 20), `BENCH_WARMUP` (5), `BENCH_BITRATE`
//! (`2M`), `BENCH_QUICK=1` (5 s windows, 3 s warm-up), `OS_LOAD_BIN`.
//!
//! Method:
//! - The publisher is `ffmpeg -re -stream_loop -1 -c copy` of a pre-encoded
//!   1280x720 FLV (x264 GOP 2 s, 25 fps, AAC): RTMP to the server, or
//!   MPEG-TS over SRT (`streamid=<key>`, 1316-byte packets).
//! - The players are `os-load rtmp` / `os-load srt` (a separate process).
//!   For every video frame each player takes `arrival − media time` (RTMP
//!   message timestamp; for SRT the DTS of the video PES, else its PTS).
//!   The publisher sends in real time (`-re`), so that value is the
//!   publisher's pacing offset plus what the path adds. Its minimum over all
//!   players and frames of the window is the best case; the figures are
//!   p50 / p95 / max of the value minus that minimum: the delay the server
//!   adds on top of its best case (queueing, batching, scheduling, fan-out
//!   order), in ms. Constant delays (the SRT receive latency window, a
//!   demuxer that holds a frame until the next one starts) are not in it,
//!   and it is not glass-to-glass latency.
//! - `srt-live-transmit` relays one caller to one listener, so its SRT
//!   figures are from one player (ours from `BENCH_READERS`).
//!
//! Figures go through os-bench (`BENCH_RESULTS`); nothing is asserted.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use os_bench::{Better, Figure, Goal, OURS, emit};
use support::load::{self, Measured};
use support::{Proc, Server, curl, env_or, free_port, make_source, publish};

const SCENARIO: &str = "Latency";
const RTMP_CASE: &str = "RTMP → RTMP";
const SRT_CASE: &str = "SRT → SRT";
const SETTLE: Duration = Duration::from_secs(3);

struct Load {
    readers: usize,
    warmup: f64,
    seconds: f64,
}

impl Load {
    fn args(&self, readers: usize) -> Vec<String> {
        vec![
            "--readers".into(),
            readers.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
        ]
    }
}

fn rtmp_ours(dir: &Path, file: &Path, l: &Load) -> Option<Measured> {
    let server = Server::start(dir, &[]);
    server.add_stream_with("lat", r#"{"rtmp":true}"#);
    let _publisher = publish(file, &server.rtmp_url("lat"));
    std::thread::sleep(SETTLE);
    let url = format!("rtmp://127.0.0.1:{}/live/lat", server.rtmp);
    load::run("rtmp", &url, &l.args(l.readers), &[server.pid()])
}

fn rtmp_nginx(dir: &Path, file: &Path, l: &Load) -> Option<Measured> {
    let port = free_port();
    let nginx = support::nginx_rtmp(dir, port, "live on; record off;")?;
    let url = format!("rtmp://127.0.0.1:{port}/live/lat");
    let _publisher = publish(file, &url);
    std::thread::sleep(SETTLE);
    load::run("rtmp", &url, &l.args(l.readers), &[nginx.0.id()])
}

/// `ffmpeg -re -stream_loop -1 -c copy -f mpegts` of `file` to an SRT URL.
fn publish_srt(file: &Path, url: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(file)
        .args(["-c", "copy", "-f", "mpegts", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    Proc(child)
}

fn srt_ours(dir: &Path, file: &Path, l: &Load) -> Option<Measured> {
    let srt = free_port();
    let server = Server::start(
        dir,
        &[
            ("OPEN_STREAMER_LISTENERS_SRT_ENABLED", "true".into()),
            (
                "OPEN_STREAMER_LISTENERS_SRT_LISTEN_HOST",
                "127.0.0.1".into(),
            ),
            ("OPEN_STREAMER_LISTENERS_SRT_PORT", srt.to_string()),
        ],
    );
    let body = r#"{"inputs":[{"url":"srt://0.0.0.0:9999?streamid=lat","priority":0}],"protocols":{"srt":true}}"#;
    let put = format!("{}/streams/lat", server.base);
    curl(&[
        "-sf",
        "-X",
        "PUT",
        &put,
        "-H",
        "content-type: application/json",
        "-d",
        body,
    ])
    .unwrap_or_else(|| panic!("PUT {put}"));
    let start = format!("{}/streams/lat/start", server.base);
    curl(&["-sf", "-X", "POST", &start]).unwrap_or_else(|| panic!("POST {start}"));
    let _publisher = publish_srt(
        file,
        &format!("srt://127.0.0.1:{srt}?streamid=lat&pkt_size=1316"),
    );
    std::thread::sleep(SETTLE);
    let url = format!("srt://127.0.0.1:{srt}?streamid=live/lat");
    load::run("srt", &url, &l.args(l.readers), &[server.pid()])
}

fn srt_relay(dir: &Path, file: &Path, l: &Load) -> Option<Measured> {
    let input = free_port();
    let output = free_port();
    let log = std::fs::File::create(dir.join("srt-live-transmit.log")).ok()?;
    let child = Command::new("srt-live-transmit")
        .arg(format!("srt://127.0.0.1:{input}?mode=listener"))
        .arg(format!("srt://127.0.0.1:{output}?mode=listener"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .spawn()
        .ok()?;
    let relay = Proc(child);
    std::thread::sleep(Duration::from_millis(300));
    let _publisher = publish_srt(
        file,
        &format!("srt://127.0.0.1:{input}?mode=caller&pkt_size=1316"),
    );
    std::thread::sleep(SETTLE);
    let url = format!("srt://127.0.0.1:{output}");
    load::run("srt", &url, &l.args(1), &[relay.0.id()])
}

fn main() {
    if !support::asked_to_bench("latency") {
        return;
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let readers: usize = env_or("BENCH_READERS", 10);
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
    let l = Load {
        readers,
        warmup,
        seconds,
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "1280x720", &bitrate, 10);
    let _ = load::binary();
    let nginx = support::nginx_available(true);
    if !nginx {
        println!("nginx-rtmp: not installed (apt-get install -y nginx libnginx-mod-rtmp); skipped");
    }
    let relay = Command::new("srt-live-transmit")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !relay {
        println!("srt-live-transmit: not installed (apt-get install -y srt-tools); skipped");
    }
    println!(
        "added latency, {readers} players, {seconds} s window after {warmup} s warm-up, {runs} trial(s)"
    );
    let metric = |case: &str, name: &str| Figure::new(SCENARIO, case, name, "ms", Better::Lower);
    let mut rows = Vec::new();
    for trial in 1..=runs {
        let mut measured: Vec<(&str, &str, Option<Measured>)> = Vec::new();
        measured.push((RTMP_CASE, OURS, rtmp_ours(dir.path(), &file, &l)));
        if nginx {
            measured.push((RTMP_CASE, "nginx-rtmp", rtmp_nginx(dir.path(), &file, &l)));
        }
        measured.push((SRT_CASE, OURS, srt_ours(dir.path(), &file, &l)));
        if relay {
            measured.push((
                SRT_CASE,
                "srt-live-transmit",
                srt_relay(dir.path(), &file, &l),
            ));
        }
        for (case, subject, m) in measured {
            let Some(m) = m else {
                println!("{case}, trial {trial}: {subject} not measured");
                continue;
            };
            let lat = &m.summary.latency_ms;
            let v = |x: Option<f64>| x.unwrap_or(f64::NAN);
            emit(&metric(case, "added latency p50").value(subject, trial, v(lat.p50)));
            emit(
                &metric(case, "added latency p95")
                    .goal(Goal::Absolute { value: 50.0 })
                    .value(subject, trial, v(lat.p95)),
            );
            emit(&metric(case, "added latency max").value(subject, trial, v(lat.max)));
            rows.push(format!(
                "| {case} | {trial} | {subject} | {}/{} | {} {} | {} ({}–{} per player) | {:.1} / {:.1} / {:.1} ms ({}) |",
                m.summary.receiving,
                m.summary.readers,
                m.summary.lost,
                m.summary.lost_unit,
                m.summary.frames,
                m.summary.per_reader.frames_min,
                m.summary.per_reader.frames_max,
                v(lat.p50),
                v(lat.p95),
                v(lat.max),
                lat.baseline,
            ));
        }
    }
    println!();
    println!(
        "| path | trial | server | receiving | lost | frames | added latency p50 / p95 / max (baseline) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
