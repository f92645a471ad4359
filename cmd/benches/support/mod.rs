//! Helpers shared by the loopback benchmarks: the server binary, peers
//! (ffmpeg publishers, nginx), process figures from /proc.

#![allow(dead_code)]

pub mod load;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_open-streamer");

/// A child process killed (by its own handle) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cargo bench` passes `--bench`; anything else (`cargo test --benches`)
/// only prints how to run the benchmark.
pub fn asked_to_bench(name: &str) -> bool {
    let asked = std::env::args().any(|a| a == "--bench");
    if !asked {
        println!("{name}: run with `cargo bench -p open-streamer --bench {name}`");
    }
    asked
}

pub fn free_port() -> u16 {
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
pub fn sample(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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

/// Sum of `sample` over several processes (nginx master + workers).
pub fn sample_all(pids: &[u32]) -> Option<(f64, u64)> {
    let mut cpu = 0.0;
    let mut rss = 0;
    for p in pids {
        let (c, r) = sample(*p)?;
        cpu += c;
        rss += r;
    }
    Some((cpu, rss))
}

/// Children of `pid` (nginx workers).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub fn curl(args: &[&str]) -> Option<String> {
    let out = Command::new("curl").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A pre-encoded FLV source (x264 veryfast, GOP 2 s, AAC) so publishers
/// cost no encoding during measurements.
pub fn make_source(dir: &Path, size: &str, bitrate: &str, secs: u32) -> PathBuf {
    let out = dir.join(format!("source-{size}-{bitrate}.flv"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
        ])
        .args(["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", "4M"])
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    assert!(status.success(), "making the source file failed");
    out
}

/// `ffmpeg -re -stream_loop -1 -c copy` of `file` to `url`.
pub fn publish(file: &Path, url: &str) -> Proc {
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

/// The release server binary on free ports, data and media under `dir`.
pub struct Server {
    pub proc: Proc,
    pub base: String,
    pub rtmp: u16,
    pub hls_dir: PathBuf,
    pub dash_dir: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, extra_env: &[(&str, String)]) -> Server {
        let http = free_port();
        let rtmp = free_port();
        let hls_dir = dir.join("hls");
        let dash_dir = dir.join("dash");
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir)
            .env(
                "OPEN_STREAMER_SERVER_HTTP_ADDR",
                format!("127.0.0.1:{http}"),
            )
            .env("OPEN_STREAMER_STORAGE_JSON_DIR", dir.join("data"))
            .env("OPEN_STREAMER_PUBLISHER_HLS_DIR", &hls_dir)
            .env("OPEN_STREAMER_PUBLISHER_DASH_DIR", &dash_dir)
            .env("OPEN_STREAMER_LISTENERS_RTMP_LISTEN_HOST", "127.0.0.1")
            .env("OPEN_STREAMER_LISTENERS_RTMP_PORT", rtmp.to_string())
            .env("OPEN_STREAMER_LISTENERS_SRT_ENABLED", "false")
            .env("OPEN_STREAMER_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let proc = Proc(cmd.spawn().unwrap_or_else(|e| panic!("{BIN}: {e}")));
        let base = format!("http://127.0.0.1:{http}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while curl(&["-sf", &format!("{base}/healthz")]).is_none() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Server {
            proc,
            base,
            rtmp,
            hls_dir,
            dash_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// Create and start stream `code` fed by RTMP push, with the given protocols.
    pub fn add_stream(&self, code: &str, hls: bool, dash: bool) {
        self.add_stream_with(code, &format!(r#"{{"hls":{hls},"dash":{dash}}}"#));
    }

    /// Create and start stream `code` fed by RTMP push; `protocols` is the
    /// JSON object of the stream's `protocols` field.
    pub fn add_stream_with(&self, code: &str, protocols: &str) {
        let body = format!(
            r#"{{"inputs":[{{"url":"rtmp://0.0.0.0:1935/live/{code}","priority":0}}],"protocols":{protocols}}}"#
        );
        let put = format!("{}/streams/{code}", self.base);
        curl(&[
            "-sf",
            "-X",
            "PUT",
            &put,
            "-H",
            "content-type: application/json",
            "-d",
            &body,
        ])
        .unwrap_or_else(|| panic!("PUT {put}"));
        let start = format!("{}/streams/{code}/start", self.base);
        curl(&["-sf", "-X", "POST", &start]).unwrap_or_else(|| panic!("POST {start}"));
    }

    pub fn rtmp_url(&self, code: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{code}", self.rtmp)
    }
}

/// Segment URIs listed in an HLS media playlist.
pub fn playlist_segments(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether nginx is installed (with the RTMP module when `rtmp`).
pub fn nginx_available(rtmp: bool) -> bool {
    let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
    Command::new("nginx").arg("-v").output().is_ok() && (!rtmp || module.exists())
}

/// Run nginx in the foreground under `prefix`: `main` goes first (e.g.
/// `load_module`), then the common header, then `conf_body`; returns the
/// master process.
pub fn nginx(prefix: &Path, main: &str, conf_body: &str, workers: &str) -> Proc {
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(prefix.join(sub)).unwrap_or_else(|e| panic!("{e}"));
    }
    let conf = format!(
        "{main}daemon off;\nworker_processes {workers};\nuser root;\npid tmp/nginx.pid;\n\
         error_log logs/error.log warn;\nevents {{ worker_connections 4096; }}\n{conf_body}\n"
    );
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new("nginx")
        .arg("-p")
        .arg(format!("{}/", prefix.display()))
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("nginx: {e}"));
    std::thread::sleep(Duration::from_millis(500));
    Proc(child)
}

/// nginx-rtmp in one process (no master) on `127.0.0.1:port`, application
/// `live` with `live_conf` (e.g. `live on; record off;`); `None`, with a
/// note, when nginx or its RTMP module is not installed.
pub fn nginx_rtmp(dir: &Path, port: u16, live_conf: &str) -> Option<Proc> {
    if !nginx_available(true) {
        println!(
            "nginx-rtmp: not installed (apt-get install -y nginx libnginx-mod-rtmp); comparison skipped"
        );
        return None;
    }
    Some(nginx(
        &dir.join("nginx"),
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\nmaster_process off;\n",
        &format!(
            "rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
             application live {{ {live_conf} }} }} }}"
        ),
        "1",
    ))
}

/// Total files and bytes under `dir` (recursively).
pub fn dir_usage(dir: &Path) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => {
                    files += 1;
                    bytes += m.len();
                }
                Err(_) => {}
            }
        }
    }
    (files, bytes)
}

/// Whether this process runs in a network namespace other than the
/// initial one (xiu binds 0.0.0.0, so it only runs inside one). Compares
/// /proc/self/ns/net with /proc/1/ns/net; where that is not readable, with
/// the namespaces `ip netns add` made (/run/netns).
pub fn in_private_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = std::fs::metadata("/proc/self/ns/net") else {
        return false;
    };
    if let Ok(init) = std::fs::metadata("/proc/1/ns/net") {
        return (own.dev(), own.ino()) != (init.dev(), init.ino());
    }
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .any(|m| m.ino() == own.ino())
        })
        .unwrap_or(false)
}

/// The xiu binary `build/bench-peers.sh` installs.
pub fn xiu_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/xiu/bin/xiu")
}

/// xiu with RTMP on `rtmp` and HLS (served on `hls`, files under
/// `dir/live/<stream>/`), or why it cannot run here.
pub fn xiu_hls(dir: &Path, rtmp: u16, hls: u16) -> Result<Proc, String> {
    let bin = xiu_path();
    if !bin.exists() {
        return Err("xiu is not installed (make bench-peers)".into());
    }
    if !in_private_netns() {
        return Err(
            "xiu binds 0.0.0.0, so it runs only inside a private network namespace (make bench does that)"
                .into(),
        );
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // The [hls.s3] table is needed (disabled): without it xiu 0.14 panics
    // when a stream starts. Segments of 2 s and a window of 6, as the other
    // subjects (xiu's default fragment is 5 s).
    let conf = format!(
        "[rtmp]\nenabled = true\nport = {rtmp}\n\n[hls]\nenabled = true\nport = {hls}\nneed_record = false\nfragment = 2\nlive_ts_count = 6\n\n\
         [hls.s3]\nenabled = false\nbucket = \"unused\"\nregion = \"unused\"\n\n\
         [authsecret]\nkey = \"\"\npassword = \"\"\n\n[log]\nlevel = \"error\"\n"
    );
    let path = dir.join("xiu.toml");
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("xiu.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .arg("-c")
        .arg(&path)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", rtmp)).is_err() {
        if Instant::now() > deadline {
            return Err("xiu did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(proc)
}

/// `BENCH_QUICK=1`: the suite's short version (smaller sizes, shorter windows).
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}
