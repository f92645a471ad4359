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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (user+system CPU seconds, RSS KiB) of a process.
fn sample(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    Some((ticks / clk_tck(), rss))
}

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

fn publish(file: &Path, url: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(file)
        .args(["-c", "copy", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    Proc(child)
}

fn make_source(dir: &Path, bitrate: &str) -> PathBuf {
    let out = dir.join("source.flv");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-b:v",
            bitrate,
            "-maxrate",
            bitrate,
            "-bufsize",
            "4M",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "flv",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}"));
    assert!(status.success(), "making the source file failed");
    out
}

fn run_ours(
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<(Measure, f64)> {
    let http = free_port();
    let rtmp = free_port();
    let data = dir.join("data");
    let server = Command::new(BIN)
        .current_dir(dir)
        .env(
            "OPEN_STREAMER_SERVER_HTTP_ADDR",
            format!("127.0.0.1:{http}"),
        )
        .env("OPEN_STREAMER_STORAGE_JSON_DIR", &data)
        .env("OPEN_STREAMER_LISTENERS_RTMP_LISTEN_HOST", "127.0.0.1")
        .env("OPEN_STREAMER_LISTENERS_RTMP_PORT", rtmp.to_string())
        .env("OPEN_STREAMER_LISTENERS_SRT_ENABLED", "false")
        .env("OPEN_STREAMER_METRICS_ADDR", "")
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
    for i in 0..n {
        let body =
            format!(r#"{{"inputs":[{{"url":"rtmp://0.0.0.0:1935/live/s{i}","priority":0}}]}}"#);
        curl(&[
            "-sf",
            "-X",
            "PUT",
            &format!("{base}/streams/s{i}"),
            "-H",
            "content-type: application/json",
            "-d",
            &body,
        ])?;
        curl(&["-sf", "-X", "POST", &format!("{base}/streams/s{i}/start")])?;
    }
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &format!("rtmp://127.0.0.1:{rtmp}/live/s{i}")))
        .collect();
    let m = measure(server.0.id(), &mut pubs, warmup, window)?;
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
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &format!("rtmp://127.0.0.1:{port}/live/s{i}")))
        .collect();
    let m = measure(nginx.0.id(), &mut pubs, warmup, window);
    drop(pubs);
    m
}

fn curl(args: &[&str]) -> Option<String> {
    let out = Command::new("curl").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either way: run only when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("rtmp_ingest: run with `cargo bench -p open-streamer --bench rtmp_ingest`");
        return;
    }
    let n: usize = env_or("BENCH_PUBLISHERS", 50);
    let secs: u64 = env_or("BENCH_SECONDS", 20);
    let bitrate: String = env_or("BENCH_BITRATE", "2M".to_string());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), &bitrate);
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
