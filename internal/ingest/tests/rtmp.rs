//! RTMP ingest against real peers: ffmpeg publishing to our listener, and
//! ffmpeg serving a stream our pull reader plays.
//!
//! Needs `ffmpeg` and `ffprobe` (Debian: `apt-get install ffmpeg`).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use os_hub::{Buffer, Item};
use os_ingest::{
    ErrorKind, InputState, InputStats, InputWorker, PushProtocol, PushRegistry, Session, TsEmitter,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- helpers

fn require(bin: &str) {
    let ok = Command::new(bin)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{bin}` is needed for this test: apt-get install -y --no-install-recommends ffmpeg"
    );
}

/// A child process killed (by its PID) when the test ends, also on panic.
struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc(child)
    }

    /// Wait up to `limit` for the exit; returns (success, stderr).
    async fn finish(mut self, limit: Duration) -> (bool, String) {
        let start = Instant::now();
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = self.0.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return (status.success(), err);
                }
                Ok(None) if start.elapsed() < limit => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => panic!("process {} did not finish within {limit:?}", self.0.id()),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Log lines of the whole test binary, for asserting on refusals.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    static INIT: OnceLock<()> = OnceLock::new();
    let logs = LOGS.get_or_init(|| Mutex::new(Vec::new()));
    INIT.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if let Some(l) = LOGS.get()
                    && let Ok(mut l) = l.lock()
                {
                    l.extend_from_slice(buf);
                }
                std::io::stderr().write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(|| W)
            .try_init();
    });
    logs
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().map(|l| l.clone()).unwrap_or_default()).into_owned()
}

/// Collects everything written to a buffer.
fn collect(buffer: &Arc<Buffer>) -> (Arc<Mutex<Vec<u8>>>, tokio::task::JoinHandle<()>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut reader = buffer.subscribe_raw("test");
    let sink = out.clone();
    let task = tokio::spawn(async move {
        while let Ok(item) = reader.recv().await {
            if let Item::Chunk(c) = item
                && let Ok(mut v) = sink.lock()
            {
                v.extend_from_slice(&c.data);
            }
        }
    });
    (out, task)
}

struct Probe {
    /// codec_name,width,height,nb_read_frames per stream.
    streams: Vec<Vec<String>>,
    decode_errors: String,
}

impl Probe {
    fn video(&self) -> Option<&Vec<String>> {
        self.streams
            .iter()
            .find(|s| s.first().is_some_and(|c| c == "h264"))
    }
    fn audio(&self) -> Option<&Vec<String>> {
        self.streams
            .iter()
            .find(|s| s.first().is_some_and(|c| c == "aac"))
    }
    fn frames(s: Option<&Vec<String>>) -> u64 {
        // csv omits the fields a stream does not have: the count is last.
        s.and_then(|s| s.last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

fn probe(ts: &[u8]) -> Probe {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("out.ts");
    std::fs::write(&path, ts).unwrap_or_else(|e| panic!("{e}"));
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,width,height,nb_read_frames")
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    let streams = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split(',').map(|s| s.trim().to_string()).collect())
        .collect();
    let d = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}"));
    Probe {
        streams,
        decode_errors: String::from_utf8_lossy(&d.stderr).into_owned(),
    }
}

/// ffmpeg publishing an OBS-like stream (H.264 with B-frames + AAC) for `secs`.
fn publisher(url: &str, secs: u32, preset: &str) -> Proc {
    Proc::spawn(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-re"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", &secs.to_string()])
            .args(["-c:v", "libx264", "-preset", preset, "-bf", "2", "-g", "50"])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url]),
    )
}

struct Listener {
    port: u16,
    registry: Arc<PushRegistry>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start() -> Listener {
        logs();
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let registry = PushRegistry::new();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(os_ingest::rtmp::serve_listener(
            l,
            registry.clone(),
            cancel.clone(),
        ));
        Listener {
            port,
            registry,
            cancel,
            task,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        assert!(matches!(r, Ok(Ok(()))), "listener task ended badly: {r:?}");
    }
}

fn stream_buffer() -> (Arc<Buffer>, Arc<InputStats>) {
    (
        Arc::new(Buffer::new("stream", 4096)),
        Arc::new(InputStats::default()),
    )
}

fn assert_av(p: &Probe, min_video_frames: u64) {
    let v = p
        .video()
        .unwrap_or_else(|| panic!("no h264 stream: {:?}", p.streams));
    assert_eq!(
        (v.get(1).map(String::as_str), v.get(2).map(String::as_str)),
        (Some("640"), Some("360")),
        "{:?}",
        p.streams
    );
    assert!(p.audio().is_some(), "no aac stream: {:?}", p.streams);
    let vf = Probe::frames(p.video());
    let af = Probe::frames(p.audio());
    assert!(
        vf >= min_video_frames,
        "video frames {vf} < {min_video_frames}"
    );
    // 48 kHz AAC: 1024 samples a frame, ~47 a second; the video decides the span.
    assert!(af >= vf, "audio frames {af} for {vf} video frames");
    assert!(
        p.decode_errors.trim().is_empty(),
        "decode errors: {}",
        p.decode_errors
    );
}

// ---------------------------------------------------------------- push

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_ffmpeg_publish_decodes() {
    require("ffmpeg");
    require("ffprobe");
    let l = Listener::start().await;
    let (buffer, stats) = stream_buffer();
    let _reg = l
        .registry
        .register(
            PushProtocol::Rtmp,
            "demo",
            "stream",
            buffer.clone(),
            stats.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let (out, collector) = collect(&buffer);

    let ff = publisher(
        &format!("rtmp://127.0.0.1:{}/live/demo", l.port),
        4,
        "veryfast",
    );
    let mut saw_active = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        saw_active |= stats.state() == InputState::Active;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, err) = ff.finish(Duration::from_secs(20)).await;
    assert!(ok, "ffmpeg publish failed: {err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snap = stats.snapshot();
    assert!(saw_active, "input never went active");
    assert!(snap.bytes > 0);
    // The publisher is gone: the key waits for the next one.
    assert_eq!(snap.state, InputState::Connecting);

    let ts = out.lock().map(|v| v.clone()).unwrap_or_default();
    let p = probe(&ts);
    eprintln!(
        "push: {} bytes, streams {:?}, stats bytes {}",
        ts.len(),
        p.streams,
        snap.bytes
    );
    // 4 s at 25 fps = 100 frames.
    assert_av(&p, 90);
    collector.abort();
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_unknown_key_refused() {
    require("ffmpeg");
    let l = Listener::start().await;
    let (buffer, stats) = stream_buffer();
    let _reg = l
        .registry
        .register(PushProtocol::Rtmp, "demo", "stream", buffer.clone(), stats)
        .unwrap_or_else(|e| panic!("{e}"));
    let ff = publisher(
        &format!("rtmp://127.0.0.1:{}/live/nosuchkey42", l.port),
        3,
        "ultrafast",
    );
    let (ok, err) = ff.finish(Duration::from_secs(15)).await;
    assert!(!ok, "publishing to an unknown key must fail");
    eprintln!("ffmpeg said: {err}");
    let logs = log_text();
    assert!(
        logs.lines()
            .any(|l| l.contains("nosuchkey42") && l.contains("unknown stream key")),
        "no refusal log line naming the key"
    );
    assert_eq!(buffer.stats().bytes, 0);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_second_publisher_refused_first_continues() {
    require("ffmpeg");
    require("ffprobe");
    let l = Listener::start().await;
    let (buffer, stats) = stream_buffer();
    let _reg = l
        .registry
        .register(
            PushProtocol::Rtmp,
            "busykey",
            "stream",
            buffer.clone(),
            stats,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let (out, collector) = collect(&buffer);
    let url = format!("rtmp://127.0.0.1:{}/live/busykey", l.port);
    let first = publisher(&url, 6, "ultrafast");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = publisher(&url, 3, "ultrafast");
    let (ok2, _) = second.finish(Duration::from_secs(15)).await;
    assert!(!ok2, "second publisher on a live key must be refused");
    let (ok1, err1) = first.finish(Duration::from_secs(20)).await;
    assert!(ok1, "first publisher must continue: {err1}");
    assert!(
        log_text()
            .lines()
            .any(|l| l.contains("busykey") && l.contains("already publishing")),
        "no busy log line"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ts = out.lock().map(|v| v.clone()).unwrap_or_default();
    let p = probe(&ts);
    eprintln!("busy: streams {:?}", p.streams);
    // 6 s at 25 fps from the first publisher alone.
    assert_av(&p, 130);
    collector.abort();
    l.stop().await;
}

/// An RTMP chunk (fmt 0, csid 3) carrying one message.
fn chunk(msg_type: u8, stream_id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x03, 0, 0, 0];
    let len = body.len() as u32;
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(msg_type);
    v.extend_from_slice(&stream_id.to_le_bytes());
    // Default chunk size 128.
    for (i, part) in body.chunks(128).enumerate() {
        if i > 0 {
            v.push(0xC3);
        }
        v.extend_from_slice(part);
    }
    v
}

/// A client handshake done by hand; returns the socket ready for chunks.
async fn handshaken(port: u16) -> TcpStream {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut h = Handshake::new(PeerType::Client);
    let c01 = h
        .generate_outbound_p0_and_p1()
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&c01).await.unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("handshake timeout"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0, "server closed during handshake");
        match h.process_bytes(&buf[..n]).unwrap_or_else(|e| panic!("{e}")) {
            HandshakeProcessResult::InProgress { response_bytes } => {
                s.write_all(&response_bytes)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                s.write_all(&response_bytes)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                return s;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_survives_garbage_and_half_handshakes() {
    require("ffmpeg");
    require("ffprobe");
    let l = Listener::start().await;
    let (buffer, stats) = stream_buffer();
    let _reg = l
        .registry
        .register(PushProtocol::Rtmp, "good", "stream", buffer.clone(), stats)
        .unwrap_or_else(|e| panic!("{e}"));

    // 1. Pure garbage.
    let mut g = TcpStream::connect(("127.0.0.1", l.port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let _ = g.write_all(&garbage).await;
    // 2. Half a handshake, then silence (kept open during the good publish).
    let mut half = TcpStream::connect(("127.0.0.1", l.port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c01 = vec![3u8];
    c01.extend(std::iter::repeat_n(0x55u8, 700));
    let _ = half.write_all(&c01).await;
    // 3. Connect and drop at once.
    drop(TcpStream::connect(("127.0.0.1", l.port)).await);
    // 4. Valid handshake, then malformed AMF in a command message.
    let mut bad = handshaken(l.port).await;
    let _ = bad
        .write_all(&chunk(20, 0, &[0x02, 0xFF, 0xFF, b'c', 0x11, 0x0A, 0xFF]))
        .await;
    // 5. Valid handshake, then a chunk claiming a huge message, then disconnect.
    let mut huge = handshaken(l.port).await;
    let mut head = vec![0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
    head.extend(std::iter::repeat_n(0u8, 100));
    let _ = huge.write_all(&head).await;
    drop(huge);
    // 6. Valid handshake, connect with a truncated AMF object, abrupt close.
    let mut trunc = handshaken(l.port).await;
    let mut body = vec![0x02, 0x00, 0x07];
    body.extend_from_slice(b"connect");
    body.extend_from_slice(&[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x03, 0x00, 0x03, b'a']);
    let _ = trunc.write_all(&chunk(20, 0, &body)).await;
    drop(trunc);
    drop(g);

    // Garbage connections are closed by the server (not left hanging).
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match bad.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        matches!(closed, Ok(true)),
        "malformed AMF connection not closed"
    );

    // A good publisher still works.
    let (out, collector) = collect(&buffer);
    let ff = publisher(
        &format!("rtmp://127.0.0.1:{}/live/good", l.port),
        3,
        "ultrafast",
    );
    let (ok, err) = ff.finish(Duration::from_secs(20)).await;
    assert!(ok, "good publisher failed after bad clients: {err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ts = out.lock().map(|v| v.clone()).unwrap_or_default();
    let p = probe(&ts);
    assert_av(&p, 65);
    drop(half);
    collector.abort();
    l.stop().await;
}

// ---------------------------------------------------------------- pull

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn input(url: &str) -> os_domain::Input {
    os_domain::Input {
        url: url.to_string(),
        priority: 0,
        net: os_domain::InputNet {
            reconnect: true,
            reconnect_delay_sec: 1,
            reconnect_max_delay_sec: 1,
            timeout_sec: 5,
        },
        auth: None,
        headers: Default::default(),
        standby: None,
    }
}

/// A private nginx-rtmp instance (single process, so its PID is all there is).
struct Nginx {
    _proc: Proc,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    async fn start() -> Nginx {
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        assert!(
            std::path::Path::new(module).exists() && require_ok("nginx", "-v"),
            "nginx-rtmp is needed for this test: apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp"
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let p = dir.path().display().to_string();
        let conf = format!(
            "load_module {module};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off; }} }} }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap_or_else(|e| panic!("{e}"));
        let proc = Proc::spawn(
            Command::new("nginx")
                .arg("-p")
                .arg(format!("{p}/"))
                .arg("-e")
                .arg(format!("{p}/error.log"))
                .arg("-c")
                .arg(format!("{p}/nginx.conf")),
        );
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nginx {
            _proc: proc,
            _dir: dir,
            port,
        }
    }
}

fn require_ok(bin: &str, arg: &str) -> bool {
    Command::new(bin)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_nginx_rtmp() {
    require("ffmpeg");
    require("ffprobe");
    logs();
    let nginx = Nginx::start().await;
    let url = format!("rtmp://127.0.0.1:{}/live/src", nginx.port);
    let _source = publisher(&url, 15, "ultrafast");
    let (buffer, stats) = stream_buffer();
    let (out, collector) = collect(&buffer);
    let cancel = CancellationToken::new();
    let worker = InputWorker {
        stream: "pulled".into(),
        input: input(&url),
        buffer: buffer.clone(),
        stats: stats.clone(),
        registry: PushRegistry::new(),
        cancel: cancel.clone(),
    };
    // Give the publisher a moment so the play finds the stream at once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let task = tokio::spawn(worker.run());
    let start = Instant::now();
    while stats.packets() == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stats.packets() > 0, "no media pulled");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(matches!(r, Ok(Ok(os_ingest::Outcome::Cancelled))), "{r:?}");
    let snap = stats.snapshot();
    let ts = out.lock().map(|v| v.clone()).unwrap_or_default();
    let p = probe(&ts);
    eprintln!(
        "pull: {} bytes, streams {:?}, tracks {:?}",
        ts.len(),
        p.streams,
        snap.tracks
    );
    // ~4 s at 25 fps, joined at a key frame (GOP 2 s).
    assert_av(&p, 80);
    assert_eq!(snap.reconnects, 0);
    collector.abort();

    // nginx holds a player of a stream nobody publishes: no data, so the
    // read timeout ends the session (no panic, no hang).
    let missing = format!("rtmp://127.0.0.1:{}/live/nothing", nginx.port);
    let e = pull_once(&missing)
        .await
        .err()
        .unwrap_or_else(|| panic!("pull of a missing stream succeeded"));
    assert!(
        matches!(
            e.kind,
            ErrorKind::Timeout | ErrorKind::NotFound | ErrorKind::Ended
        ),
        "{e}"
    );
}

async fn pull_once(url: &str) -> Result<(), os_ingest::IngestError> {
    let input = input(url);
    let detected = os_protocol::detect(url).unwrap_or_else(|e| panic!("{e}"));
    let stats = Arc::new(InputStats::default());
    let cancel = CancellationToken::new();
    let s = Session {
        stream: "pulled",
        input: &input,
        url,
        detected: &detected,
        stats: &stats,
        cancel: &cancel,
    };
    let buffer = Arc::new(Buffer::new("x", 64));
    let mut out = TsEmitter::new(buffer, stats.clone());
    tokio::time::timeout(Duration::from_secs(15), os_ingest::rtmp::run(&s, &mut out))
        .await
        .unwrap_or_else(|_| panic!("pull did not end"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_missing_stream_is_not_found() {
    // Our own listener has no stream to play: it answers StreamNotFound.
    let l = Listener::start().await;
    let r = pull_once(&format!("rtmp://127.0.0.1:{}/live/missing", l.port)).await;
    let e = r
        .err()
        .unwrap_or_else(|| panic!("pull of a missing stream succeeded"));
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    l.stop().await;

    // Nobody listening: a connect error.
    let port = free_port();
    let r = pull_once(&format!("rtmp://127.0.0.1:{port}/live/missing")).await;
    let e = r
        .err()
        .unwrap_or_else(|| panic!("pull from a closed port succeeded"));
    assert_eq!(e.kind, ErrorKind::Connect, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_ffmpeg_wrong_app_ends() {
    require("ffmpeg");
    // ffmpeg serving live/src refuses a player asking for another app.
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/src");
    let _server = Proc::spawn(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-t", "10", "-c:v", "libx264", "-preset", "ultrafast"])
            .args(["-f", "flv", "-listen", "1", &url]),
    );
    let mut last = None;
    for _ in 0..40 {
        match pull_once(&format!("rtmp://127.0.0.1:{port}/other/nothing")).await {
            Err(e) if e.kind == ErrorKind::Connect => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => {
                last = Some(r);
                break;
            }
        }
    }
    let r = last.unwrap_or_else(|| panic!("ffmpeg server never accepted"));
    let e = r
        .err()
        .unwrap_or_else(|| panic!("pull of a wrong app succeeded"));
    assert!(
        matches!(
            e.kind,
            ErrorKind::NotFound | ErrorKind::Ended | ErrorKind::Protocol | ErrorKind::Auth
        ),
        "{e}"
    );
    eprintln!("wrong app: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stopping_the_input_disconnects_the_publisher() {
    require("ffmpeg");
    let l = Listener::start().await;
    let (buffer, stats) = stream_buffer();
    let reg = l
        .registry
        .register(
            PushProtocol::Rtmp,
            "kickme",
            "stream",
            buffer.clone(),
            stats.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let ff = publisher(
        &format!("rtmp://127.0.0.1:{}/live/kickme", l.port),
        20,
        "ultrafast",
    );
    let start = Instant::now();
    while stats.packets() == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stats.packets() > 0, "publisher never delivered");
    // The stream's push input stops: its registration goes away.
    drop(reg);
    let (ok, _) = ff.finish(Duration::from_secs(10)).await;
    assert!(!ok, "ffmpeg should see the connection closed");
    assert!(
        log_text()
            .lines()
            .any(|l| l.contains("kickme") && l.contains("stream input stopped")),
        "no log line for the kicked publisher"
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_video_only() {
    require("ffmpeg");
    require("ffprobe");
    let l = Listener::start().await;
    let (buffer, stats) = stream_buffer();
    let _reg = l
        .registry
        .register(PushProtocol::Rtmp, "vonly", "stream", buffer.clone(), stats)
        .unwrap_or_else(|e| panic!("{e}"));
    let (out, collector) = collect(&buffer);
    let ff = Proc::spawn(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25",
                "-t",
                "3",
            ])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
            .args(["-pix_fmt", "yuv420p", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{}/live/vonly", l.port)),
    );
    let (ok, err) = ff.finish(Duration::from_secs(20)).await;
    assert!(ok, "ffmpeg publish failed: {err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ts = out.lock().map(|v| v.clone()).unwrap_or_default();
    let p = probe(&ts);
    eprintln!("video only: streams {:?}", p.streams);
    assert!(p.audio().is_none(), "{:?}", p.streams);
    assert!(Probe::frames(p.video()) >= 70, "{:?}", p.streams);
    assert!(p.decode_errors.trim().is_empty(), "{}", p.decode_errors);
    collector.abort();
    l.stop().await;
}
