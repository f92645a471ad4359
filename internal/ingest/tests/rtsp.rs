//! RTSP pull against a real RTSP server: a GStreamer RTSP "camera" started
//! from a small Python script written by the test.
//!
//! Needs (Debian): python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
//! gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
//! gstreamer1.0-plugins-ugly gstreamer1.0-libav, and ffmpeg (ffprobe).
//! A missing peer fails the test with an install hint.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use os_domain::{Input, InputAuth};
use os_hub::{Buffer, Item};
use os_ingest::{ErrorKind, InputStats, InputWorker, Outcome, PushRegistry};
use tokio_util::sync::CancellationToken;

const INSTALL_HINT: &str = "install the RTSP test camera: apt-get install -y python3-gi \
    gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
    gstreamer1.0-libav ffmpeg";

/// Debian's interpreter: python3-gi is installed for it only.
const PYTHON: &str = "/usr/bin/python3";

/// The camera: argv = port mount codec(h264|h265) auth(user:pass|-) method(basic|digest).
/// Prints "ready" once listening; stops on SIGTERM.
const CAMERA_PY: &str = r#"
import signal, sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

Gst.init(None)
port, mount, codec, auth, method = sys.argv[1:6]
if codec == "h265":
    video = ("x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800 "
             "! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96")
else:
    video = ("x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800 "
             "! video/x-h264,profile=baseline ! h264parse config-interval=-1 "
             "! rtph264pay name=pay0 pt=96")
pipeline = (
    "( videotestsrc is-live=true pattern=ball "
    "! video/x-raw,format=I420,width=640,height=360,framerate=25/1 ! " + video + " "
    "audiotestsrc is-live=true wave=sine freq=440 "
    "! audio/x-raw,rate=44100,channels=2 ! audioconvert ! avenc_aac bitrate=96000 "
    "! aacparse ! rtpmp4gpay name=pay1 pt=97 )"
)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(pipeline)
factory.set_shared(True)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
if auth != "-":
    user, password = auth.split(":", 1)
    gate = GstRtspServer.RTSPAuth()
    gate.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC if method == "basic"
                               else GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "cam-user")
    gate.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    gate.add_digest(user, password, token)
    server.set_auth(gate)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_role("cam-user")
    perms.add_permission_for_role("cam-user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    perms.add_permission_for_role("cam-user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.set_permissions(perms)
server.get_mount_points().add_factory(mount, factory)
if server.attach(None) == 0:
    sys.exit("cannot listen on port " + port)
print("ready", flush=True)
loop = GLib.MainLoop()
GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
loop.run()
"#;

/// One test at a time: the encoders need the CPU and timing matters.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn script() -> &'static std::path::Path {
    static PATH: OnceLock<tempfile::TempPath> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut f = tempfile::Builder::new()
            .prefix("rtsp-cam-")
            .suffix(".py")
            .tempfile()
            .unwrap_or_else(|e| panic!("temp file: {e}"));
        f.write_all(CAMERA_PY.as_bytes())
            .unwrap_or_else(|e| panic!("write camera script: {e}"));
        f.into_temp_path()
    })
}

fn preflight(codec: &str) {
    let enc = if codec == "h265" {
        "x265enc h265parse rtph265pay"
    } else {
        "x264enc h264parse rtph264pay"
    };
    let check = format!(
        "import gi\ngi.require_version('Gst','1.0')\ngi.require_version('GstRtspServer','1.0')\n\
         from gi.repository import Gst, GstRtspServer\nGst.init(None)\n\
         missing=[e for e in '{enc} avenc_aac aacparse rtpmp4gpay videotestsrc audiotestsrc'.split() \
         if Gst.ElementFactory.find(e) is None]\n\
         assert not missing, missing\n"
    );
    let out = Command::new(PYTHON).arg("-c").arg(&check).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "RTSP camera peer not usable ({}): {INSTALL_HINT}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("{PYTHON} not runnable ({e}): {INSTALL_HINT}"),
    }
    if Command::new("ffprobe").arg("-version").output().is_err() {
        panic!("ffprobe missing: apt-get install -y ffmpeg");
    }
}

/// A running camera; killed (by its PID) when dropped.
struct Camera {
    child: Child,
    port: u16,
}

impl Camera {
    fn start(port: u16, codec: &str, auth: Option<(&str, &str)>) -> Self {
        let (auth_arg, method) = match auth {
            Some((a, m)) => (a, m),
            None => ("-", "digest"),
        };
        let mut child = Command::new(PYTHON)
            .arg(script())
            .args([&port.to_string(), "/cam", codec, auth_arg, method])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start camera: {e}: {INSTALL_HINT}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let cam = Camera { child, port };
        assert_eq!(
            line.trim(),
            "ready",
            "camera did not start on port {port}: {INSTALL_HINT}"
        );
        cam
    }

    fn url(&self, userinfo: &str, query: &str) -> String {
        format!("rtsp://{userinfo}127.0.0.1:{}/cam{query}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

fn input(url: &str, reconnect: bool) -> Input {
    let mut input = Input {
        url: url.to_string(),
        priority: 0,
        ..Default::default()
    };
    input.net.reconnect = reconnect;
    input.net.reconnect_delay_sec = 1;
    input.net.reconnect_max_delay_sec = 1;
    input.net.timeout_sec = 4;
    input
}

struct Running {
    buffer: Arc<Buffer>,
    stats: Arc<InputStats>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Outcome>,
}

fn start_worker(input: Input) -> Running {
    let buffer = Arc::new(Buffer::new("rtsp-test", 4096));
    let stats = Arc::new(InputStats::default());
    let cancel = CancellationToken::new();
    let worker = InputWorker {
        stream: "rtsp-test".to_string(),
        input,
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

/// Collect the TS the hub gets for `secs` seconds.
async fn collect(reader: &mut os_hub::Reader, secs: u64) -> Vec<u8> {
    let mut ts = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while let Ok(Ok(item)) = tokio::time::timeout_at(end, reader.recv()).await {
        if let Item::Chunk(c) = item {
            ts.extend_from_slice(&c.data);
        }
    }
    ts
}

struct Probe {
    streams: Vec<String>,
    errors: String,
    /// `(codec_type, start_time)` per stream.
    starts: Vec<(String, f64)>,
}

/// ffprobe the TS, decoding every frame (`-count_frames`): the stream list
/// (`codec,width,height,frames`) and whatever ffprobe complained about.
fn probe(ts: &[u8]) -> Probe {
    let mut f = tempfile::Builder::new()
        .suffix(".ts")
        .tempfile()
        .unwrap_or_else(|e| panic!("temp file: {e}"));
    f.write_all(ts).unwrap_or_else(|e| panic!("write ts: {e}"));
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(f.path())
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}: apt-get install -y ffmpeg"));
    let starts = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,start_time",
            "-of",
            "csv=p=0",
        ])
        .arg(f.path())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| {
                    let (kind, start) = l.trim().split_once(',')?;
                    Some((kind.to_string(), start.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    Probe {
        starts,
        streams: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_end_matches(',').to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        errors: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

fn frames(line: &str) -> u64 {
    line.rsplit(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Pull `url` for `secs` seconds and check that the hub output decodes as
/// `video` 640x360 + AAC.
async fn pull_and_check(url: &str, secs: u64, video: &str) {
    let run = start_worker(input(url, false));
    let mut reader = run.buffer.subscribe("test");
    let ts = collect(&mut reader, secs).await;
    let snap = run.stats.snapshot();
    let outcome = run.stop().await;
    assert_eq!(outcome, Outcome::Cancelled, "worker outcome");
    assert!(
        ts.len() > 50_000,
        "only {} bytes of TS; last error {:?}",
        ts.len(),
        snap.last_error
    );
    let p = probe(&ts);
    eprintln!(
        "{}: {} bytes, streams {:?}, tracks {:?}",
        os_ingest::redact(url),
        ts.len(),
        p.streams,
        snap.tracks
    );
    assert!(p.errors.is_empty(), "decode errors: {}", p.errors);
    let v = p
        .streams
        .iter()
        .find(|l| l.starts_with(&format!("{video},640,360")))
        .unwrap_or_else(|| panic!("no {video} 640x360 stream in {:?}", p.streams));
    let a = p
        .streams
        .iter()
        .find(|l| l.starts_with("aac"))
        .unwrap_or_else(|| panic!("no aac stream in {:?}", p.streams));
    // 25 fps and 44100/1024 = 43 frames/s, minus the wait for the first keyframe.
    let span = secs.saturating_sub(2);
    assert!(frames(v) >= 25 * span, "video frames: {v}");
    assert!(frames(a) >= 40 * span, "audio frames: {a}");
    // Audio and video share one timeline: both start at the first video
    // keyframe (audio before it is dropped), within about one audio frame.
    let start = |kind: &str| {
        p.starts
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("no {kind} start time in {:?}", p.starts))
    };
    let skew = start("audio") - start("video");
    eprintln!("audio start - video start = {skew:.3} s");
    assert!(skew.abs() < 0.1, "A/V start skew {skew:.3} s");
    let kinds: Vec<_> = snap.tracks.iter().map(|t| t.codec).collect();
    assert!(kinds.contains(&"aac"), "stats tracks {kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_aac_over_tcp_decodes() {
    let _g = serial().await;
    preflight("h264");
    let cam = Camera::start(free_port(), "h264", None);
    pull_and_check(&cam.url("", ""), 6, "h264").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_aac_over_udp_decodes() {
    let _g = serial().await;
    preflight("h264");
    let cam = Camera::start(free_port(), "h264", None);
    pull_and_check(&cam.url("", "?transport=udp"), 6, "h264").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_aac_decodes() {
    let _g = serial().await;
    preflight("h265");
    let cam = Camera::start(free_port(), "h265", None);
    pull_and_check(&cam.url("", ""), 7, "hevc").await;
}

async fn expect_failure(url: &str, kind: ErrorKind) {
    expect_failure_input(input(url, false), kind).await;
}

async fn expect_failure_input(input: Input, kind: ErrorKind) -> os_ingest::IngestError {
    let run = start_worker(input);
    let outcome = tokio::time::timeout(Duration::from_secs(15), run.task)
        .await
        .unwrap_or_else(|_| panic!("worker did not give up"))
        .unwrap_or_else(|e| panic!("worker task: {e}"));
    match outcome {
        Outcome::Failed(e) => {
            assert_eq!(e.kind, kind, "error: {e}");
            assert!(!e.message.contains("s3cret"), "password in error: {e}");
            e
        }
        other => panic!("expected failure {kind:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_from_url_and_wrong_password() {
    let _g = serial().await;
    preflight("h264");
    let cam = Camera::start(free_port(), "h264", Some(("admin:s3cret", "digest")));
    pull_and_check(&cam.url("admin:s3cret@", ""), 5, "h264").await;
    expect_failure(&cam.url("admin:wrong@", ""), ErrorKind::Auth).await;
    expect_failure(&cam.url("", ""), ErrorKind::Auth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_input_auth() {
    let _g = serial().await;
    preflight("h264");
    let cam = Camera::start(free_port(), "h264", Some(("viewer:p@ss w", "basic")));
    // Credentials in the URL, percent-encoded.
    pull_and_check(&cam.url("viewer:p%40ss%20w@", ""), 5, "h264").await;
    // Credentials from the input's auth block.
    let mut inp = input(&cam.url("", ""), false);
    inp.auth = Some(InputAuth {
        username: "viewer".into(),
        password: "p@ss w".into(),
    });
    let run = start_worker(inp);
    let mut reader = run.buffer.subscribe("test");
    let ts = collect(&mut reader, 4).await;
    run.stop().await;
    assert!(ts.len() > 20_000, "auth block: only {} bytes", ts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_path_is_not_found_and_closed_port_is_connect() {
    let _g = serial().await;
    preflight("h264");
    let cam = Camera::start(free_port(), "h264", None);
    expect_failure(
        &format!("rtsp://127.0.0.1:{}/nothing-here", cam.port),
        ErrorKind::NotFound,
    )
    .await;
    expect_failure(
        &format!("rtsp://127.0.0.1:{}/cam", free_port()),
        ErrorKind::Connect,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_killed_mid_play_then_back_reconnects() {
    let _g = serial().await;
    preflight("h264");
    let port = free_port();
    let mut cam = Camera::start(port, "h264", None);
    let run = start_worker(input(&cam.url("", ""), true));
    let mut reader = run.buffer.subscribe("test");
    let first = collect(&mut reader, 4).await;
    assert!(first.len() > 20_000, "before kill: {} bytes", first.len());

    cam.kill();
    let killed_at = Instant::now();
    // Watch the errors the worker records while the camera is gone.
    let mut errors: Vec<String> = Vec::new();
    while killed_at.elapsed() < Duration::from_secs(3) {
        if let Some((e, _)) = run.stats.snapshot().last_error
            && !errors.contains(&e)
        {
            errors.push(e);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("errors while the camera was down: {errors:?}");
    assert!(
        errors
            .first()
            .is_some_and(|e| e.starts_with("ended:") || e.starts_with("connect:")),
        "first error after the kill: {errors:?}"
    );
    assert!(run.stats.snapshot().reconnects >= 1);
    // Drain what was buffered before the kill.
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), reader.recv()).await {}

    let cam = Camera::start(port, "h264", None);
    let after = collect(&mut reader, 7).await;
    let snap = run.stats.snapshot();
    let outcome = run.stop().await;
    drop(cam);
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(
        after.len() > 20_000,
        "after restart: {} bytes, last error {:?}",
        after.len(),
        snap.last_error
    );
    let p = probe(&after);
    eprintln!("after restart: streams {:?}", p.streams);
    assert!(
        p.streams.iter().any(|l| l.starts_with("h264,640,360")),
        "after restart: {:?} {}",
        p.streams,
        p.errors
    );
}

/// How the scripted RTSP server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    /// Accepts the connection and never answers.
    Mute,
    /// Answers DESCRIBE/SETUP/PLAY, then sends nothing.
    SilentAfterPlay,
    /// Answers with bytes that are not RTSP.
    Garbage,
    /// Offers only a G.711 audio stream.
    OnlyPcmu,
}

/// A scripted RTSP server on 127.0.0.1; returns its port and the request
/// lines it received.
async fn fake_server(mode: Fake) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"))
        .port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = tokio::io::BufReader::new(rd);
                let mut held = Vec::new();
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        match rd.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        head.push(line.trim().to_string());
                    }
                    let Some(first) = head.first().cloned() else {
                        continue;
                    };
                    if let Ok(mut l) = log.lock() {
                        l.push(first.clone());
                    }
                    let cseq = head
                        .iter()
                        .find_map(|h| h.strip_prefix("CSeq:"))
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default();
                    let reply = match mode {
                        Fake::Mute => {
                            held.push(cseq);
                            continue;
                        }
                        Fake::Garbage => "\u{1}\u{2}garbage that is not RTSP\r\n\r\n".to_string(),
                        Fake::SilentAfterPlay | Fake::OnlyPcmu => {
                            let method = first.split(' ').next().unwrap_or_default();
                            let base = format!("rtsp://127.0.0.1:{port}/cam/");
                            match method {
                                "DESCRIBE" => {
                                    let media = if mode == Fake::OnlyPcmu {
                                        "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                                    } else {
                                        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                                         a=fmtp:96 packetization-mode=1\r\n"
                                    };
                                    let sdp = format!(
                                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\n\
                                         t=0 0\r\n{media}a=control:stream=0\r\n"
                                    );
                                    format!(
                                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {base}\r\n\
                                         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                                        sdp.len()
                                    )
                                }
                                "SETUP" => format!(
                                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\
                                     Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\
                                     Session: 4242;timeout=60\r\n\r\n"
                                ),
                                _ => format!(
                                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 4242\r\n\r\n"
                                ),
                            }
                        }
                    };
                    if wr.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn silent_server_times_out() {
    // Connected but no answer to DESCRIBE.
    let (port, _) = fake_server(Fake::Mute).await;
    let mut inp = input(&format!("rtsp://127.0.0.1:{port}/cam"), false);
    inp.net.timeout_sec = 2;
    let started = Instant::now();
    let e = expect_failure_input(inp, ErrorKind::Timeout).await;
    assert!(e.message.starts_with("DESCRIBE"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(6));

    // PLAY answered, then no media.
    let (port, seen) = fake_server(Fake::SilentAfterPlay).await;
    let mut inp = input(&format!("rtsp://user:s3cret@127.0.0.1:{port}/cam"), false);
    inp.net.timeout_sec = 2;
    let e = expect_failure_input(inp, ErrorKind::Timeout).await;
    assert!(e.message.starts_with("no frames"), "{e}");
    let seen = seen.lock().map(|l| l.clone()).unwrap_or_default();
    eprintln!("requests: {seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("PLAY ")), "{seen:?}");
    // Credentials never travel in the request line.
    assert_eq!(
        seen.first().map(String::as_str),
        Some(format!("DESCRIBE rtsp://127.0.0.1:{port}/cam RTSP/1.0").as_str())
    );
}

#[tokio::test]
async fn no_usable_stream_is_not_found() {
    let (port, seen) = fake_server(Fake::OnlyPcmu).await;
    let inp = input(&format!("rtsp://127.0.0.1:{port}/cam"), false);
    let e = expect_failure_input(inp, ErrorKind::NotFound).await;
    assert!(e.message.contains("no usable stream"), "{e}");
    let seen = seen.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(!seen.iter().any(|l| l.starts_with("SETUP")), "{seen:?}");
}

#[tokio::test]
async fn garbage_server_is_a_protocol_error() {
    let (port, _) = fake_server(Fake::Garbage).await;
    let inp = input(&format!("rtsp://127.0.0.1:{port}/cam"), false);
    expect_failure_input(inp, ErrorKind::Protocol).await;
}
