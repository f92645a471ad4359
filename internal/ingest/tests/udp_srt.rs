//! UDP and SRT ingest against real peers (ffmpeg, srt-live-transmit).
//!
//! Needs the Debian packages `ffmpeg`, `srt-tools` and `iproute2` (the
//! multicast test runs in a private network namespace, so it needs root).
//! Every peer is bound to / sends to 127.0.0.1 only; multicast never leaves
//! a throwaway network namespace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use os_domain::{Input, InputNet};
use os_hub::{Buffer, Item};
use os_ingest::{ErrorKind, InputStats, InputWorker, Outcome, PushRegistry};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------
// Harness

/// A child process killed (by its PID) and reaped when dropped.
struct Peer {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Peer { name, child, log }
    }

    /// Wait up to `limit` for the process to exit on its own.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = self.name;
    }
}

/// Fail (never skip) when a peer program is missing.
fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is required for this test: apt-get install -y --no-install-recommends {package}"
    );
}

/// ffmpeg reading a synthetic live source (640x360 H.264 + AAC, 1 s GOP).
fn ffmpeg_source(seconds: u32) -> Command {
    require("ffmpeg", "ffmpeg");
    let mut c = Command::new("ffmpeg");
    c.args([
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
    ])
    .arg("-i")
    .arg("testsrc2=size=640x360:rate=25")
    .args([
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000",
    ])
    .args(["-t", &seconds.to_string()])
    .args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-ac",
        "2",
    ]);
    c
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

fn input(url: &str, timeout_sec: u32, reconnect: bool) -> Input {
    Input {
        url: url.to_string(),
        priority: 0,
        net: InputNet {
            reconnect,
            reconnect_delay_sec: 1,
            reconnect_max_delay_sec: 2,
            timeout_sec,
        },
        ..Default::default()
    }
}

struct Running {
    buffer: Arc<Buffer>,
    stats: Arc<InputStats>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Outcome>,
}

fn start_worker(url: &str, timeout_sec: u32, reconnect: bool) -> Running {
    let buffer = Arc::new(Buffer::new("test", 100_000));
    let stats = Arc::new(InputStats::default());
    let cancel = CancellationToken::new();
    let worker = InputWorker {
        stream: "test".into(),
        input: input(url, timeout_sec, reconnect),
        buffer: buffer.clone(),
        stats: stats.clone(),
        registry: PushRegistry::new(),
        cancel: cancel.clone(),
    };
    let task = tokio::spawn(worker.run());
    Running {
        buffer,
        stats,
        cancel,
        task,
    }
}

impl Running {
    async fn stop(self) -> Outcome {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .unwrap_or_else(|_| panic!("worker did not stop"))
            .unwrap_or_else(|e| panic!("worker task: {e}"))
    }
}

/// Collect bytes from a hub reader until the source has been quiet for
/// 1.5 s after sending (it finished), or `limit` elapsed.
async fn collect(reader: &mut os_hub::Reader, limit: Duration) -> Vec<u8> {
    let mut data = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let quiet = tokio::time::Instant::now() + Duration::from_millis(1500);
        let until = if data.is_empty() {
            deadline
        } else {
            quiet.min(deadline)
        };
        match tokio::time::timeout_at(until, reader.recv()).await {
            Ok(Ok(Item::Chunk(c))) => data.extend_from_slice(&c.data),
            Ok(Ok(Item::Lagged { lost })) => panic!("reader lagged by {lost} chunks"),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    data
}

#[derive(Debug)]
struct Probe {
    streams: Vec<(String, String, u32, u32, u64)>,
    errors: String,
}

impl Probe {
    fn has(&self, codec: &str) -> bool {
        self.streams.iter().any(|s| s.1 == codec)
    }
    fn video(&self) -> (u32, u32, u64) {
        self.streams
            .iter()
            .find(|s| s.0 == "video")
            .map(|s| (s.2, s.3, s.4))
            .unwrap_or_default()
    }
}

/// Decode every frame of `ts` with ffprobe.
fn ffprobe(ts: &[u8], dir: &Path) -> Probe {
    require("ffprobe", "ffmpeg");
    let path = dir.join("out.ts");
    let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    f.write_all(ts).unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_type,codec_name,width,height,nb_read_frames")
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let streams = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            match f.as_slice() {
                [name, "video", w, h, n, ..] => Some((
                    "video".to_string(),
                    name.to_string(),
                    w.parse().unwrap_or(0),
                    h.parse().unwrap_or(0),
                    n.parse().unwrap_or(0),
                )),
                [name, "audio", n, ..] => Some((
                    "audio".to_string(),
                    name.to_string(),
                    0,
                    0,
                    n.parse().unwrap_or(0),
                )),
                _ => None,
            }
        })
        .collect();
    Probe {
        streams,
        errors: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The common assertion: H.264 640x360 + AAC, enough frames, clean decode.
fn assert_decodable(ts: &[u8], dir: &Path, min_frames: u64) -> Probe {
    assert_decodable_tail(ts, dir, min_frames, 0)
}

/// Like [`assert_decodable`], tolerating up to `tail_errors` decoder error
/// lines (for senders that truncate their last frame).
fn assert_decodable_tail(ts: &[u8], dir: &Path, min_frames: u64, tail_errors: usize) -> Probe {
    assert!(!ts.is_empty(), "no data reached the hub");
    assert_eq!(ts.len() % 188, 0, "hub chunks are whole TS packets");
    assert!(ts.iter().step_by(188).all(|b| *b == 0x47), "TS sync lost");
    let p = ffprobe(ts, dir);
    assert!(p.has("h264") && p.has("aac"), "codecs: {p:?}");
    let (w, h, frames) = p.video();
    assert_eq!((w, h), (640, 360), "{p:?}");
    assert!(frames >= min_frames, "only {frames} video frames: {p:?}");
    assert!(
        p.errors.lines().count() <= tail_errors,
        "decode errors: {}",
        p.errors
    );
    p
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

// ---------------------------------------------------------------------------
// UDP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_unicast_from_ffmpeg() {
    let dir = tmp();
    let port = free_udp_port();
    let run = start_worker(&format!("udp://127.0.0.1:{port}"), 5, true);
    let mut reader = run.buffer.subscribe_raw("test");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ff = Peer::spawn(
        "ffmpeg",
        ffmpeg_source(4)
            .args(["-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316")),
        dir.path(),
    );
    let ts = collect(&mut reader, Duration::from_secs(10)).await;
    let snap = run.stats.snapshot();
    let p = assert_decodable(&ts, dir.path(), 75);
    assert!(
        snap.tracks
            .iter()
            .any(|t| t.codec == "h264" && t.width == 640)
    );
    assert_eq!(snap.skipped_bytes, 0);
    assert_eq!(run.stop().await, Outcome::Cancelled);
    eprintln!("udp unicast: {} bytes, {:?}", ts.len(), p.streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_rtp_wrapped_ts_is_stripped() {
    let dir = tmp();
    let port = free_udp_port();
    let run = start_worker(&format!("udp://127.0.0.1:{port}"), 5, true);
    let mut reader = run.buffer.subscribe_raw("test");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ff = Peer::spawn(
        "ffmpeg",
        ffmpeg_source(4)
            .args(["-f", "rtp_mpegts"])
            .arg(format!("rtp://127.0.0.1:{port}")),
        dir.path(),
    );
    let ts = collect(&mut reader, Duration::from_secs(10)).await;
    let snap = run.stats.snapshot();
    // ffmpeg's rtp_mpegts muxer drops the tail of its last frame at exit (an
    // independent strip-12-bytes receiver sees the same two error lines), so
    // allow errors in that one frame, and demand (nearly) every frame.
    let p = assert_decodable_tail(&ts, dir.path(), 95, 2);
    // Nothing had to be thrown away to resync: the RTP headers were cut off.
    assert_eq!(snap.skipped_bytes, 0, "RTP headers were not stripped");
    assert_eq!(run.stop().await, Outcome::Cancelled);
    eprintln!("udp rtp: {} bytes, {:?}", ts.len(), p.streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_rtp_detection_can_be_disabled() {
    let dir = tmp();
    let port = free_udp_port();
    let run = start_worker(&format!("udp://127.0.0.1:{port}?rtp=0"), 5, true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ff = Peer::spawn(
        "ffmpeg",
        ffmpeg_source(3)
            .args(["-f", "rtp_mpegts"])
            .arg(format!("rtp://127.0.0.1:{port}")),
        dir.path(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The 12-byte headers stay and the emitter has to skip them to resync.
    let snap = run.stats.snapshot();
    assert!(snap.skipped_bytes > 0, "{snap:?}");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_silence_is_a_timeout() {
    let port = free_udp_port();
    let started = Instant::now();
    let run = start_worker(&format!("udp://127.0.0.1:{port}"), 1, false);
    let outcome = tokio::time::timeout(Duration::from_secs(5), run.task)
        .await
        .unwrap_or_else(|_| panic!("no timeout"))
        .unwrap_or_else(|e| panic!("{e}"));
    match outcome {
        Outcome::Failed(e) => assert_eq!(e.kind, ErrorKind::Timeout, "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_port_in_use_is_an_io_error() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = holder.local_addr().map(|a| a.port()).unwrap_or(0);
    let run = start_worker(&format!("udp://127.0.0.1:{port}"), 1, false);
    let outcome = tokio::time::timeout(Duration::from_secs(5), run.task)
        .await
        .unwrap_or_else(|_| panic!("no error"))
        .unwrap_or_else(|e| panic!("{e}"));
    match outcome {
        Outcome::Failed(e) => assert_eq!(e.kind, ErrorKind::Io, "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A network namespace deleted when dropped.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        require("ip", "iproute2");
        let name = format!("osx-{}", std::process::id());
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        assert!(
            ok(Command::new("ip").args(["netns", "add", &name])),
            "ip netns add failed (needs root)"
        );
        let ns = Netns(name);
        assert!(ok(Command::new("ip").args([
            "netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"
        ])));
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs [`udp_multicast_inner`] in a private network namespace (only `lo`),
/// so no multicast can leave the host.
#[test]
fn udp_multicast_in_private_netns() {
    let ns = Netns::create();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp();
    let mut inner = Peer::spawn(
        "inner",
        Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(exe)
            .args([
                "--exact",
                "udp_multicast_inner",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OSX_NETNS", &ns.0),
        dir.path(),
    );
    let status = inner.wait_exit(Duration::from_secs(30));
    let log = inner.log_text();
    eprintln!("{log}");
    assert!(
        status.is_some_and(|s| s.success()),
        "multicast test inside the namespace failed ({status:?})"
    );
    assert!(log.contains("multicast OK"), "inner test did not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside a private network namespace; started by udp_multicast_in_private_netns"]
async fn udp_multicast_inner() {
    if std::env::var_os("OSX_NETNS").is_none() {
        eprintln!("skipped: only runs inside the namespace made by udp_multicast_in_private_netns");
        return;
    }
    // Refuse to send multicast anywhere but a namespace that has only lo.
    let ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ifaces, vec!["lo".to_string()], "not in a private namespace");

    let dir = tmp();
    let url = "udp://239.255.7.7:5000?iface=127.0.0.1";
    // Two receivers on the same group and port (SO_REUSEADDR).
    let a = start_worker(url, 5, true);
    let b = start_worker(url, 5, true);
    let mut ra = a.buffer.subscribe_raw("a");
    let mut rb = b.buffer.subscribe_raw("b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ff = Peer::spawn(
        "ffmpeg",
        ffmpeg_source(4)
            .args(["-f", "mpegts"])
            .arg("udp://239.255.7.7:5000?pkt_size=1316&localaddr=127.0.0.1&ttl=1"),
        dir.path(),
    );
    let (ta, tb) = tokio::join!(
        collect(&mut ra, Duration::from_secs(10)),
        collect(&mut rb, Duration::from_secs(10))
    );
    let pa = assert_decodable(&ta, dir.path(), 75);
    let pb = assert_decodable(&tb, dir.path(), 75);
    a.stop().await;
    b.stop().await;
    eprintln!(
        "multicast OK: a {} bytes {:?}; b {} bytes {:?}",
        ta.len(),
        pa.streams,
        tb.len(),
        pb.streams
    );
}
