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
//! - Latency: for every video frame, `arrival - timestamp` at each player;
//!   the figure is that value minus its minimum over the run (the fastest
//!   frame), p50/p95/max. It measures the delay the server adds on top of
//!   its best case (queueing, batching, scheduling), not absolute glass-to-
//!   glass latency; a constant hold (open-streamer's MPEG-TS demux emits a
//!   video frame when the next one starts, i.e. one frame later) is not in it.

#[path = "../tests/common/rtmp_player.rs"]
mod rtmp_player;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_open-streamer");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let tck: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / tck)
}

fn curl(args: &[&str]) -> Option<String> {
    let out = Command::new("curl").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn make_source(dir: &Path, bitrate: &str) -> PathBuf {
    let out = dir.join("source.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args([
            "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-g", "50",
        ])
        .args(["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", "1M"])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}"));
    assert!(status.success(), "making the source file failed");
    out
}

fn publish(file: &Path, url: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(file)
        .args(["-c", "copy", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    Proc(child)
}

struct Result {
    players_ok: usize,
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
    let c0 = cpu_seconds(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let b1 = rtmp_player::BYTES.load(Ordering::Relaxed);
    let c1 = cpu_seconds(pid)?;
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
    for p in &played {
        let frames: Vec<_> = p
            .video
            .iter()
            .filter(|(_, _, at)| *at >= t0 && *at <= t1)
            .collect();
        if !frames.is_empty() {
            ok += 1;
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
    let http = free_port();
    let rtmp = free_port();
    let server = Command::new(BIN)
        .current_dir(dir)
        .env(
            "OPEN_STREAMER_SERVER_HTTP_ADDR",
            format!("127.0.0.1:{http}"),
        )
        .env("OPEN_STREAMER_STORAGE_JSON_DIR", dir.join("data"))
        .env("OPEN_STREAMER_LISTENERS_RTMP_LISTEN_HOST", "127.0.0.1")
        .env("OPEN_STREAMER_LISTENERS_RTMP_PORT", rtmp.to_string())
        .env("OPEN_STREAMER_LISTENERS_SRT_ENABLED", "false")
        .env("OPEN_STREAMER_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{BIN}: {e}"));
    let server = Proc(server);
    let base = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&["-sf", &format!("{base}/healthz")]).is_none() {
        if Instant::now() > deadline {
            panic!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = r#"{"inputs":[{"url":"rtmp://0.0.0.0:1935/live/in","priority":0}],"protocols":{"rtmp":true}}"#;
    curl(&[
        "-sf",
        "-X",
        "PUT",
        &format!("{base}/streams/fan"),
        "-H",
        "content-type: application/json",
        "-d",
        body,
    ])?;
    curl(&["-sf", "-X", "POST", &format!("{base}/streams/fan/start")])?;
    let _publisher = publish(file, &format!("rtmp://127.0.0.1:{rtmp}/live/in"));
    std::thread::sleep(Duration::from_secs(3));
    let addr: SocketAddr = format!("127.0.0.1:{rtmp}").parse().ok()?;
    run_players(rt, server.0.id(), addr, "fan", n, warmup, window)
}

fn run_nginx(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<Result> {
    let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
    if Command::new("nginx").arg("-v").output().is_err() || !module.exists() {
        println!(
            "nginx-rtmp: not installed (apt-get install -y nginx libnginx-mod-rtmp); comparison skipped"
        );
        return None;
    }
    let prefix = dir.join("nginx");
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(prefix.join(sub)).ok()?;
    }
    let port = free_port();
    let conf = format!(
        "load_module {module};\ndaemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\npid tmp/nginx.pid;\n\
         error_log logs/error.log warn;\nevents {{ worker_connections 4096; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
         application live {{ live on; record off; }} }} }}\n",
        module = module.display()
    );
    std::fs::write(prefix.join("nginx.conf"), conf).ok()?;
    let nginx = Command::new("nginx")
        .arg("-p")
        .arg(format!("{}/", prefix.display()))
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let nginx = Proc(nginx);
    std::thread::sleep(Duration::from_millis(500));
    let _publisher = publish(file, &format!("rtmp://127.0.0.1:{port}/live/fan"));
    std::thread::sleep(Duration::from_secs(3));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    run_players(rt, nginx.0.id(), addr, "fan", n, warmup, window)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("rtmp_fanout: run with `cargo bench -p open-streamer --bench rtmp_fanout`");
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
    let file = make_source(dir.path(), &bitrate);
    let warmup = Duration::from_secs(5);
    let window = Duration::from_secs(secs);
    println!(
        "1 RTMP publisher ({bitrate}b/s video + 64 kb/s audio) -> {n} RTMP players, {secs} s window after {}s warm-up",
        warmup.as_secs()
    );
    let ours = run_ours(&rt, dir.path(), &file, n, warmup, window);
    let nginx = run_nginx(&rt, dir.path(), &file, n, warmup, window);
    println!();
    println!(
        "| server | players receiving | delivered | CPU s | CPU s per GB | added latency p50 / p95 / max |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, r: &Result| {
        println!(
            "| {name} | {}/{n} | {:.2} GB | {:.2} | {:.2} | {:.0} / {:.0} / {:.0} ms |",
            r.players_ok,
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
