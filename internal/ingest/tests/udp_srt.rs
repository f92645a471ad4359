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
use os_ingest::{ErrorKind, InputStats, InputWorker, Outcome, PushProtocol, PushRegistry};
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
        Self::spawn_io(name, cmd, dir, Stdio::null(), Stdio::null())
    }

    fn spawn_io(
        name: &'static str,
        cmd: &mut Command,
        dir: &Path,
        stdin: Stdio,
        stdout: Stdio,
    ) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let child = cmd
            .stdin(stdin)
            .stdout(stdout)
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

/// Our own log lines, captured for assertions (all tests share them).
fn logs() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut l) = logs().lock() {
                    l.extend_from_slice(b);
                }
                std::io::stderr().write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| W)
            .with_max_level(tracing::Level::INFO)
            .try_init();
        std::sync::Mutex::new(Vec::new())
    })
}

fn log_has(needle: &[&str]) -> bool {
    let l = logs().lock().map(|l| l.clone()).unwrap_or_default();
    String::from_utf8_lossy(&l)
        .lines()
        .any(|line| needle.iter().all(|n| line.contains(n)))
}

/// Whether something is bound to the UDP port (from /proc/net/udp).
fn udp_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines().any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").contains(&needle))
            })
        })
        .unwrap_or(false)
}

async fn wait_udp_bound(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !udp_bound(port) {
        assert!(
            Instant::now() < deadline,
            "peer never bound udp port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

// ---------------------------------------------------------------------------
// SRT pull (we call an ffmpeg listener)

fn ffmpeg_srt_listener(port: u16, extra: &str, dir: &Path) -> Peer {
    Peer::spawn(
        "ffmpeg-srt-listener",
        ffmpeg_source(4).args(["-f", "mpegts"]).arg(format!(
            "srt://127.0.0.1:{port}?mode=listener&latency=200000&pkt_size=1316{extra}"
        )),
        dir,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_pull_from_ffmpeg_listener() {
    let dir = tmp();
    let port = free_udp_port();
    let _ff = ffmpeg_srt_listener(port, "", dir.path());
    wait_udp_bound(port).await;
    let run = start_worker(
        &format!("srt://127.0.0.1:{port}?latency=200&streamid=live/pull"),
        5,
        true,
    );
    let mut reader = run.buffer.subscribe_raw("test");
    let ts = collect(&mut reader, Duration::from_secs(15)).await;
    let p = assert_decodable_tail(&ts, dir.path(), 90, 2);
    let snap = run.stats.snapshot();
    assert!(snap.tracks.iter().any(|t| t.codec == "aac"), "{snap:?}");
    // ffmpeg closed the connection when its source ended: the session ended
    // and the worker went back to reconnecting.
    let deadline = Instant::now() + Duration::from_secs(5);
    while run.stats.snapshot().reconnects == 0 {
        assert!(Instant::now() < deadline, "{:?}", run.stats.snapshot());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snap = run.stats.snapshot();
    let last = snap.last_error.map(|e| e.0).unwrap_or_default();
    assert!(
        last.contains("ended: srt peer closed the connection"),
        "{last}"
    );
    run.stop().await;
    eprintln!(
        "srt pull: {} bytes {:?} errors {:?}",
        ts.len(),
        p.streams,
        p.errors
    );
}

const PASS: &str = "correct-horse-battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_pull_encrypted() {
    let dir = tmp();
    let port = free_udp_port();
    let _ff = ffmpeg_srt_listener(port, &format!("&passphrase={PASS}&pbkeylen=16"), dir.path());
    wait_udp_bound(port).await;
    let run = start_worker(
        &format!("srt://127.0.0.1:{port}?latency=200&passphrase={PASS}&pbkeylen=16"),
        5,
        true,
    );
    let mut reader = run.buffer.subscribe_raw("test");
    let ts = collect(&mut reader, Duration::from_secs(15)).await;
    let p = assert_decodable_tail(&ts, dir.path(), 90, 2);
    run.stop().await;
    assert!(!log_has(&[PASS]), "the passphrase leaked into the log");
    eprintln!("srt pull encrypted: {} bytes {:?}", ts.len(), p.streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_pull_wrong_passphrase_is_a_clear_error() {
    let dir = tmp();
    let port = free_udp_port();
    let _ff = ffmpeg_srt_listener(port, &format!("&passphrase={PASS}&pbkeylen=16"), dir.path());
    wait_udp_bound(port).await;
    let run = start_worker(
        &format!("srt://127.0.0.1:{port}?latency=200&passphrase=wrong-passphrase-1&pbkeylen=16"),
        3,
        false,
    );
    let outcome = tokio::time::timeout(Duration::from_secs(10), run.task)
        .await
        .unwrap_or_else(|_| panic!("no error"))
        .unwrap_or_else(|e| panic!("{e}"));
    let Outcome::Failed(e) = outcome else {
        panic!("{outcome:?}")
    };
    eprintln!("wrong passphrase: {e}");
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("passphrase"), "{e}");
    assert!(!e.message.contains("wrong-passphrase-1"), "{e}");
    assert!(
        !log_has(&["wrong-passphrase-1"]),
        "the passphrase leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_pull_nobody_listening_times_out() {
    let port = free_udp_port();
    let started = Instant::now();
    let run = start_worker(&format!("srt://127.0.0.1:{port}"), 2, false);
    let outcome = tokio::time::timeout(Duration::from_secs(10), run.task)
        .await
        .unwrap_or_else(|_| panic!("no error"))
        .unwrap_or_else(|e| panic!("{e}"));
    let Outcome::Failed(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connect),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

// ---------------------------------------------------------------------------
// SRT push (publishers call our shared listener)

struct PushSetup {
    port: u16,
    buffer: Arc<Buffer>,
    stats: Arc<InputStats>,
    registration: Option<os_ingest::push::Registration>,
    cancel: CancellationToken,
    listener: tokio::task::JoinHandle<Result<(), os_ingest::IngestError>>,
}

async fn push_setup(key: &str) -> PushSetup {
    let _ = logs();
    let registry = PushRegistry::new();
    let buffer = Arc::new(Buffer::new("stream", 100_000));
    let stats = Arc::new(InputStats::default());
    let registration = registry
        .register(
            PushProtocol::Srt,
            key,
            "stream",
            buffer.clone(),
            stats.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let cancel = CancellationToken::new();
    let listener = tokio::spawn(os_ingest::srt::serve_listener(
        socket,
        os_ingest::srt::ListenerConfig::default(),
        registry.clone(),
        cancel.clone(),
    ));
    PushSetup {
        port,

        buffer,
        stats,
        registration: Some(registration),
        cancel,
        listener,
    }
}

impl PushSetup {
    async fn stop(self) {
        self.cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), self.listener)
            .await
            .unwrap_or_else(|_| panic!("listener did not stop"))
            .unwrap_or_else(|e| panic!("listener task: {e}"));
        assert!(r.is_ok(), "{r:?}");
    }
}

fn ffmpeg_srt_push(
    port: u16,
    streamid: &str,
    seconds: u32,
    dir: &Path,
    name: &'static str,
) -> Peer {
    Peer::spawn(
        name,
        ffmpeg_source(seconds).args(["-f", "mpegts"]).arg(format!(
            "srt://127.0.0.1:{port}?streamid={streamid}&latency=120000&pkt_size=1316"
        )),
        dir,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_push_from_ffmpeg() {
    let dir = tmp();
    let setup = push_setup("cam1").await;
    let mut reader = setup.buffer.subscribe_raw("test");
    let mut ff = ffmpeg_srt_push(setup.port, "cam1", 4, dir.path(), "ffmpeg-push");
    let ts = collect(&mut reader, Duration::from_secs(15)).await;
    let status = ff.wait_exit(Duration::from_secs(5));
    let p = assert_decodable_tail(&ts, dir.path(), 90, 2);
    assert!(
        status.is_some_and(|s| s.success()),
        "ffmpeg: {status:?} {}",
        ff.log_text()
    );
    assert!(log_has(&["srt: publisher connected", "cam1"]));
    setup.stop().await;
    eprintln!(
        "srt push: {} bytes {:?} errors {:?}",
        ts.len(),
        p.streams,
        p.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_push_from_srt_live_transmit_access_control_id() {
    require("srt-live-transmit", "srt-tools");
    let dir = tmp();
    let setup = push_setup("cam1").await;
    let mut reader = setup.buffer.subscribe_raw("test");
    let mut src = Peer::spawn_io(
        "ffmpeg-pipe",
        ffmpeg_source(4).args(["-f", "mpegts", "-"]),
        dir.path(),
        Stdio::null(),
        Stdio::piped(),
    );
    let pipe = src.child.stdout.take().unwrap_or_else(|| panic!("no pipe"));
    let _slt = Peer::spawn_io(
        "srt-live-transmit",
        Command::new("srt-live-transmit")
            .args(["-chunk:1316", "-a:no", "file://con"])
            .arg(format!(
                "srt://127.0.0.1:{}?streamid=#!::r=cam1,m=publish&latency=120",
                setup.port
            )),
        dir.path(),
        Stdio::from(pipe),
        Stdio::null(),
    );
    let ts = collect(&mut reader, Duration::from_secs(15)).await;
    let p = assert_decodable_tail(&ts, dir.path(), 90, 2);
    assert!(log_has(&["srt: publisher connected", "cam1"]));
    setup.stop().await;
    eprintln!(
        "srt push (slt): {} bytes {:?} errors {:?}",
        ts.len(),
        p.streams,
        p.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_push_unknown_key_is_refused() {
    let dir = tmp();
    let setup = push_setup("cam1").await;
    let mut ff = ffmpeg_srt_push(setup.port, "nope-key", 4, dir.path(), "ffmpeg-unknown");
    let status = ff.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "ffmpeg was not refused: {status:?}"
    );
    eprintln!("ffmpeg says: {}", ff.log_text());
    assert!(log_has(&[
        "publisher refused",
        "nope-key",
        "unknown stream key"
    ]));
    assert_eq!(setup.stats.snapshot().bytes, 0);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_push_second_publisher_is_refused() {
    let dir = tmp();
    let setup = push_setup("cam2").await;
    let mut first = ffmpeg_srt_push(setup.port, "cam2", 7, dir.path(), "ffmpeg-first");
    // Wait until the first publisher delivers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.stats.snapshot().bytes == 0 {
        assert!(Instant::now() < deadline, "first publisher never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut second = ffmpeg_srt_push(setup.port, "live/cam2", 3, dir.path(), "ffmpeg-second");
    let status = second.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "second publisher was not refused: {status:?}"
    );
    assert!(log_has(&[
        "publisher refused",
        "cam2",
        "already has a publisher"
    ]));
    // The first one keeps going: collect what it sends from now on (joining
    // at the hub's latest access point, as a player would).
    let mut reader = setup.buffer.subscribe("after");
    let before = setup.stats.snapshot().bytes;
    let ts = collect(&mut reader, Duration::from_secs(10)).await;
    assert!(setup.stats.snapshot().bytes > before);
    let status = first.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "first publisher: {status:?} {}",
        first.log_text()
    );
    let p = assert_decodable_tail(&ts, dir.path(), 25, 2);
    setup.stop().await;
    eprintln!("srt busy: first kept {} bytes {:?}", ts.len(), p.streams);
}

/// A valid-looking SRT induction handshake that we never follow up on.
fn induction_handshake(socket_id: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&4u32.to_be_bytes()); // version
    p.extend_from_slice(&0u16.to_be_bytes()); // encryption
    p.extend_from_slice(&2u16.to_be_bytes()); // extension field
    p.extend_from_slice(&12345u32.to_be_bytes()); // initial sequence
    p.extend_from_slice(&1500u32.to_be_bytes()); // MTU
    p.extend_from_slice(&8192u32.to_be_bytes()); // flow window
    p.extend_from_slice(&1u32.to_be_bytes()); // induction
    p.extend_from_slice(&socket_id.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // cookie
    p.extend_from_slice(&[127, 0, 0, 1]);
    p.extend_from_slice(&[0; 12]);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_push_listener_survives_garbage() {
    let dir = tmp();
    let setup = push_setup("cam3").await;
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let target = format!("127.0.0.1:{}", setup.port);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..3000u32 {
        let len = (next() % 1500) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Every third datagram looks like a control packet / handshake.
        if i % 3 == 0 && d.len() >= 4 {
            d[0] = 0x80;
            d[1] = 0;
        }
        if i % 100 == 0 {
            d = induction_handshake(i);
        }
        let _ = junk.send_to(&d, &target);
        if i % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Truncated handshakes and an empty datagram.
    let hs = induction_handshake(7);
    for cut in [0, 1, 4, 16, 17, 40, 63] {
        let _ = junk.send_to(&hs[..cut], &target);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!setup.listener.is_finished(), "listener died on garbage");

    let mut reader = setup.buffer.subscribe_raw("test");
    let mut ff = ffmpeg_srt_push(setup.port, "cam3", 3, dir.path(), "ffmpeg-after-garbage");
    let ts = collect(&mut reader, Duration::from_secs(15)).await;
    let status = ff.wait_exit(Duration::from_secs(5));
    assert_decodable_tail(&ts, dir.path(), 60, 2);
    assert!(status.is_some_and(|s| s.success()), "ffmpeg: {status:?}");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_play_request_is_refused_by_a_listener_without_players() {
    require("srt-live-transmit", "srt-tools");
    let dir = tmp();
    let setup = push_setup("cam4").await;
    let mut player = Peer::spawn(
        "srt-live-transmit-player",
        Command::new("srt-live-transmit")
            .args(["-a:no", "-t:8"])
            .arg(format!(
                "srt://127.0.0.1:{}?streamid=#!::r=cam4,m=request",
                setup.port
            ))
            .arg("file://con"),
        dir.path(),
    );
    // srt-live-transmit exits 0 even when refused; its log tells.
    let status = player.wait_exit(Duration::from_secs(10));
    let said = player.log_text();
    eprintln!("player says: {said}");
    assert!(status.is_some(), "player still connected");
    assert!(said.to_ascii_lowercase().contains("reject"), "{said}");
    assert!(log_has(&["play is not served on this listener", "cam4"]));
    // The key stays free for a publisher.
    let mut reader = setup.buffer.subscribe_raw("test");
    let mut ff = ffmpeg_srt_push(
        setup.port,
        "#!::r=live/cam4,m=publish",
        2,
        dir.path(),
        "ffmpeg-cam4",
    );
    let ts = collect(&mut reader, Duration::from_secs(15)).await;
    let _ = ff.wait_exit(Duration::from_secs(5));
    assert_decodable_tail(&ts, dir.path(), 40, 2);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_push_stopping_the_input_kicks_the_publisher() {
    let dir = tmp();
    let mut setup = push_setup("cam5").await;
    let mut ff = ffmpeg_srt_push(setup.port, "cam5", 20, dir.path(), "ffmpeg-cam5");
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.stats.snapshot().bytes == 0 {
        assert!(Instant::now() < deadline, "publisher never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The stream's push input stops: its registration goes away.
    setup.registration.take();
    let status = ff.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "publisher still connected after the input stopped"
    );
    assert!(log_has(&[
        "publisher disconnected",
        "cam5",
        "input stopped"
    ]));
    setup.stop().await;
}
