//! The byte-stream readers against real peers: files on disk, an HTTP server
//! (axum) streaming TS, live HLS made by ffmpeg, and S3 served by moto with
//! SigV4 verification on. Every output is read back from the hub, demuxed
//! with `os_mpegts` and decoded by ffprobe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use os_domain::{Input, InputAuth};
use os_hub::{Buffer, Item};
use os_ingest::{ErrorKind, IngestError, InputSnapshot, InputStats, Session, TsEmitter};
use os_mpegts::{Demuxer, Event};
use os_protocol::Protocol;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------
// Harness

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/testdata")
        .join(name)
}

fn vector(name: &str) -> Vec<u8> {
    let p = vector_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn input(url: &str) -> Input {
    let mut i = Input {
        url: url.to_string(),
        ..Default::default()
    };
    i.net.timeout_sec = 5;
    i
}

/// What one reader session produced.
struct Run {
    /// `None`: still running when the time limit hit (then dropped, as the
    /// worker does on cancel).
    result: Option<Result<(), IngestError>>,
    data: Vec<u8>,
    elapsed: Duration,
    stats: InputSnapshot,
}

/// Run one session of the reader that `input.url` selects, for at most
/// `limit`, and collect everything written to the hub.
async fn ingest(input: &Input, limit: Duration) -> Run {
    let buffer = Arc::new(Buffer::new("test", 1 << 16));
    let stats = Arc::new(InputStats::default());
    let mut reader = buffer.subscribe_raw("test");
    let collector = tokio::spawn(async move {
        let mut data = Vec::new();
        while let Ok(item) = reader.recv().await {
            match item {
                Item::Chunk(c) => data.extend_from_slice(&c.data),
                Item::Lagged { lost } => panic!("test reader lagged by {lost} chunks"),
            }
        }
        data
    });
    let url = input.url.trim().to_string();
    let detected = os_protocol::detect(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let cancel = CancellationToken::new();
    let mut out = TsEmitter::new(buffer.clone(), stats.clone());
    let session = Session {
        stream: "test",
        input,
        url: &url,
        detected: &detected,
        stats: &stats,
        cancel: &cancel,
    };
    let start = Instant::now();
    let fut = async {
        match detected.protocol {
            Protocol::File => os_ingest::file::run(&session, &mut out).await,
            Protocol::HttpTs => os_ingest::http_ts::run(&session, &mut out).await,
            Protocol::Hls => os_ingest::hls::run(&session, &mut out).await,
            Protocol::S3 => os_ingest::s3::run(&session, &mut out).await,
            other => panic!("not a byte-stream protocol: {other}"),
        }
    };
    let result = tokio::time::timeout(limit, fut).await.ok();
    let elapsed = start.elapsed();
    out.flush().unwrap();
    buffer.close();
    let data = collector.await.unwrap();
    Run {
        result,
        data,
        elapsed,
        stats: stats.snapshot(),
    }
}

fn expect_ok(run: &Run) {
    match &run.result {
        Some(Ok(())) => {}
        Some(Err(e)) => panic!("reader failed: {e}"),
        None => panic!("reader still running after {:?}", run.elapsed),
    }
}

fn expect_err(run: &Run, kind: ErrorKind) -> String {
    match &run.result {
        Some(Err(e)) if e.kind == kind => e.message.clone(),
        Some(other) => panic!("expected a {kind:?} error, got {other:?}"),
        None => panic!("reader still running after {:?}", run.elapsed),
    }
}

/// Demuxed view of a TS byte stream.
#[derive(Default)]
struct Demuxed {
    /// (pid, pts, dts) per access unit, in stream order.
    units: Vec<(u16, i64, i64)>,
    pcrs: Vec<i64>,
    continuity_errors: usize,
    discontinuities: usize,
}

impl Demuxed {
    fn of(data: &[u8]) -> Self {
        let mut d = Demuxer::new();
        let mut r = Demuxed::default();
        d.push(data);
        d.flush();
        while let Some(ev) = d.pull() {
            match ev {
                Event::AccessUnit(au) => r.units.push((au.track, au.pts, au.dts)),
                Event::Pcr { pcr, .. } => r.pcrs.push(pcr),
                Event::ContinuityError { .. } => r.continuity_errors += 1,
                Event::Discontinuity { .. } => r.discontinuities += 1,
                _ => {}
            }
        }
        r
    }

    fn track(&self, pid: u16) -> Vec<(i64, i64)> {
        self.units
            .iter()
            .filter(|u| u.0 == pid)
            .map(|u| (u.1, u.2))
            .collect()
    }

    /// Seconds between the first and last PCR.
    fn pcr_span(&self) -> f64 {
        match (self.pcrs.first(), self.pcrs.last()) {
            (Some(a), Some(b)) => (b - a) as f64 / 27e6,
            _ => 0.0,
        }
    }
}

const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

/// ffprobe's complaints and the decoded (codec, frames) per stream.
fn ffprobe(data: &[u8]) -> (String, Vec<(String, u64)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.ts");
    std::fs::write(&path, data).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe is required (install ffmpeg): {e}"));
    let streams = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (codec, frames) = l.trim().split_once(',')?;
            Some((
                codec.to_string(),
                frames.trim_end_matches(',').parse().ok()?,
            ))
        })
        .collect();
    (String::from_utf8_lossy(&out.stderr).into_owned(), streams)
}

fn frames(streams: &[(String, u64)], codec: &str) -> u64 {
    streams
        .iter()
        .filter(|(c, _)| c == codec)
        .map(|(_, n)| *n)
        .sum()
}

/// The output must decode without a single error, with H.264 + AAC.
fn assert_decodes_cleanly(data: &[u8], min_video_frames: u64) {
    let (errors, streams) = ffprobe(data);
    assert!(errors.trim().is_empty(), "ffprobe errors:\n{errors}");
    assert!(
        frames(&streams, "h264") >= min_video_frames,
        "video frames: {streams:?}"
    );
    assert!(frames(&streams, "aac") > 0, "audio frames: {streams:?}");
}

/// Timestamps keep increasing on every track (DTS in decode order, PTS in
/// presentation order), without a step larger than `max_step` (90 kHz), and
/// the PCR never goes back.
fn assert_continuous(d: &Demuxed, max_video_step: i64, max_audio_step: i64) {
    for (pid, max_step) in [(VIDEO_PID, max_video_step), (AUDIO_PID, max_audio_step)] {
        let track = d.track(pid);
        assert!(track.len() > 10, "track {pid:#x} has {} units", track.len());
        for w in track.windows(2) {
            let step = w[1].1 - w[0].1;
            assert!(
                step > 0 && step <= max_step,
                "track {pid:#x}: DTS {} -> {} (step {step})",
                w[0].1,
                w[1].1
            );
        }
        // Presentation order (video has B-frames: its PTS is not monotonic
        // in decode order): every PTS distinct, no gap above `max_step`.
        // A capture ends at an arbitrary point in decode order, so the
        // frames presented after its last DTS may still be missing (the
        // B-frames that follow a P-frame in decode order were cut off);
        // any frame not captured would have a DTS, hence a PTS, above the
        // last DTS, so every frame presented up to it must be there.
        let last_dts = track.last().map_or(i64::MIN, |u| u.1);
        let mut pts: Vec<i64> = track
            .iter()
            .map(|u| u.0)
            .filter(|p| *p <= last_dts)
            .collect();
        pts.sort_unstable();
        for w in pts.windows(2) {
            let step = w[1] - w[0];
            assert!(
                step > 0 && step <= max_step,
                "track {pid:#x}: presentation {} -> {} (step {step})",
                w[0],
                w[1]
            );
        }
        if pid == AUDIO_PID {
            for w in track.windows(2) {
                assert!(w[1].0 > w[0].0, "audio PTS not increasing");
            }
        }
    }
    for w in d.pcrs.windows(2) {
        assert!(w[1] >= w[0], "PCR went back: {} -> {}", w[0], w[1]);
        assert!(
            w[1] - w[0] < 27_000_000 / 5,
            "PCR jumped: {} -> {}",
            w[0],
            w[1]
        );
    }
    assert_eq!(d.continuity_errors, 0, "continuity errors");
    assert_eq!(d.discontinuities, 0, "discontinuity indicators");
}

/// The vector's video track, cut after the last unit whose DTS is
/// `last_dts` (decode order), with the unit at PTS `drop_pts` removed.
fn cut_vector(last_dts: i64, drop_pts: Option<i64>) -> Demuxed {
    let mut d = Demuxed::of(&vector("h264_aac.ts"));
    let end = d
        .units
        .iter()
        .position(|u| u.0 == VIDEO_PID && u.2 == last_dts)
        .unwrap_or_else(|| panic!("no video DTS {last_dts}"));
    d.units.truncate(end + 1);
    if let Some(pts) = drop_pts {
        d.units.retain(|u| u.0 != VIDEO_PID || u.1 != pts);
    }
    d
}

/// A capture cut by a time limit right after a P-frame and one B-frame
/// (decode order P B b b) lacks the B-frames presented before them: that is
/// the end of the capture, not a gap.
#[test]
fn capture_cut_mid_gop_is_continuous() {
    // Decode order at the end of the vector: P 399600/381600,
    // B 392400/385200, b 388800/388800, b 396000/392400.
    assert_continuous(&cut_vector(385_200, None), 3600, 1920);
}

/// A frame missing before the end of the capture is still a gap.
#[test]
#[should_panic(expected = "(step 7200)")]
fn frame_missing_inside_a_capture_is_a_gap() {
    assert_continuous(&cut_vector(392_400, Some(388_800)), 3600, 1920);
}

/// The looped vector: its audio spans 29 ms more than its video (starts
/// 21 ms earlier, ends 8 ms later), so the longest track, audio, continues
/// without any gap (one AAC frame = 1920 ticks between every two units,
/// across the loop too) and video holds its last frame 29 ms longer.
fn assert_loop_continuous(d: &Demuxed) {
    assert_continuous(d, 3600 + 2640, 1920);
}

/// A local HTTP server on an ephemeral port, run on the test's runtime.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Kills a child process (by its own handle) when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves files from `dir`; 404 when missing. Logs every request path.
fn static_dir(dir: PathBuf, log: Arc<Mutex<Vec<String>>>) -> Router {
    Router::new().fallback(move |uri: Uri| {
        let dir = dir.clone();
        let log = log.clone();
        async move {
            log.lock().unwrap().push(uri.path().to_string());
            match tokio::fs::read(dir.join(uri.path().trim_start_matches('/'))).await {
                Ok(b) => (StatusCode::OK, b).into_response(),
                Err(_) => StatusCode::NOT_FOUND.into_response(),
            }
        }
    })
}

fn run_ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg is required (install ffmpeg): {e}"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// VOD HLS of the test vector (1 s segments, cut at its 1 s keyframes) in `dir`.
fn vod_hls(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let seg = dir.join("seg%d.ts");
    let playlist = dir.join("index.m3u8");
    run_ffmpeg(&[
        "-i",
        vector_path("h264_aac.ts").to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        seg.to_str().unwrap(),
        playlist.to_str().unwrap(),
    ]);
}

// ---------------------------------------------------------------------------
// file

#[tokio::test]
async fn file_is_paced_in_real_time_and_passes_bytes_through() {
    let path = vector_path("h264_aac.ts");
    let file = vector("h264_aac.ts");
    let span = Demuxed::of(&file).pcr_span();
    assert!(span > 2.0, "vector PCR span {span}");
    let run = ingest(&input(path.to_str().unwrap()), Duration::from_secs(20)).await;
    expect_ok(&run);
    let wall = run.elapsed.as_secs_f64();
    eprintln!("file: paced read {wall:.3} s for a PCR span of {span:.3} s");
    assert!(
        wall > span - 0.25 && wall < span + 0.75,
        "paced read took {wall:.3} s for {span:.3} s of stream"
    );
    assert_eq!(run.data, file, "bytes pass through unchanged");
    assert_decodes_cleanly(&run.data, 75);
    assert_eq!(
        run.stats.tracks.len(),
        2,
        "tracks probed: {:?}",
        run.stats.tracks
    );
}

#[tokio::test]
async fn file_loop_continues_timestamps_without_a_jump() {
    let path = vector_path("h264_aac.ts");
    let url = format!("file://{}?loop=true", path.display());
    let run = ingest(&input(&url), Duration::from_millis(7500)).await;
    assert!(
        run.result.is_none(),
        "a looped file never ends: {:?}",
        run.result
    );
    let d = Demuxed::of(&run.data);
    assert_loop_continuous(&d);
    let video = d.track(VIDEO_PID);
    let first = video.first().unwrap().1;
    let last = video.last().unwrap().1;
    let stream_secs = (last - first) as f64 / 90_000.0;
    let max_step = video.windows(2).map(|w| w[1].1 - w[0].1).max().unwrap_or(0);
    eprintln!(
        "file loop: {stream_secs:.3} s of video in {:.3} s wall, {} frames, largest DTS step {max_step}",
        run.elapsed.as_secs_f64(),
        video.len()
    );
    assert!(
        stream_secs > 6.5 && stream_secs < 8.0,
        "{stream_secs:.2} s of stream in 7.5 s (past two loop points, in real time)"
    );
    assert!(video.len() > 160, "{} video frames", video.len());
    assert_decodes_cleanly(&run.data, 160);
}

#[tokio::test]
async fn truncated_file_ends_cleanly_without_the_partial_packet() {
    let file = vector("h264_aac.ts");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.ts");
    let whole = 160 * 188;
    std::fs::write(&path, &file[..whole + 100]).unwrap();
    let run = ingest(&input(path.to_str().unwrap()), Duration::from_secs(20)).await;
    expect_ok(&run);
    assert_eq!(run.data, file[..whole], "every whole packet, nothing else");
    assert_eq!(run.stats.skipped_bytes, 100);
}

#[tokio::test]
async fn garbage_is_skipped_and_sync_regained() {
    // 1000 garbage bytes (with stray sync bytes) before the vector, 100 more
    // after its packet 300.
    let run = ingest(
        &input(vector_path("garbage_prefix.ts").to_str().unwrap()),
        Duration::from_secs(20),
    )
    .await;
    expect_ok(&run);
    assert_eq!(run.data, vector("h264_aac.ts"));
    assert_eq!(run.stats.skipped_bytes, 1100);
}

#[tokio::test]
async fn missing_file_is_not_found() {
    let run = ingest(
        &input("file:///nonexistent/dir/missing.ts"),
        Duration::from_secs(5),
    )
    .await;
    let message = expect_err(&run, ErrorKind::NotFound);
    assert!(message.contains("/nonexistent/dir/missing.ts"), "{message}");
}

#[tokio::test]
async fn non_ts_file_is_a_protocol_error_after_a_bounded_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    // 8 MiB of text with stray 0x47 ('G') bytes.
    std::fs::write(&big, b"GGG not a transport stream\n".repeat(300_000)).unwrap();
    let run = ingest(&input(big.to_str().unwrap()), Duration::from_secs(5)).await;
    let message = expect_err(&run, ErrorKind::Protocol);
    assert!(message.contains("sync"), "{message}");
    assert!(
        run.stats.skipped_bytes < 256 << 10,
        "{}",
        run.stats.skipped_bytes
    );
    assert!(run.data.is_empty());

    let small = dir.path().join("small.ts");
    std::fs::write(&small, b"hello").unwrap();
    let run = ingest(&input(small.to_str().unwrap()), Duration::from_secs(5)).await;
    expect_err(&run, ErrorKind::Protocol);
}

#[tokio::test]
async fn worker_finishes_a_file_and_gives_up_on_a_missing_one() {
    use os_ingest::{InputWorker, Outcome, PushRegistry};
    let worker = |url: &str| {
        let mut i = input(url);
        i.net.reconnect = false;
        InputWorker {
            stream: "test".into(),
            input: i,
            buffer: Arc::new(Buffer::new("test", 1 << 12)),
            stats: Arc::new(InputStats::default()),
            registry: PushRegistry::new(),
            cancel: CancellationToken::new(),
        }
    };
    let path = vector_path("h264_aac.ts");
    let w = worker(&format!("file://{}", path.display()));
    let buffer = w.buffer.clone();
    assert_eq!(w.run().await, Outcome::Finished);
    assert_eq!(buffer.stats().bytes, vector("h264_aac.ts").len() as u64);
    match worker("/nonexistent/missing.ts").run().await {
        Outcome::Failed(e) => assert_eq!(e.kind, ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// http_ts

#[derive(Default)]
struct Seen {
    token: Vec<Option<String>>,
    authorization: Vec<Option<String>>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The vector in 3000-byte pieces (not packet aligned), 30 ms apart, as a
/// chunked body.
fn slow_body(data: Vec<u8>) -> Body {
    let pieces: Vec<Bytes> = data.chunks(3000).map(Bytes::copy_from_slice).collect();
    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(30)).await;
        Some((Ok::<_, std::io::Error>(next), it))
    });
    Body::from_stream(stream)
}

async fn http_ts_server() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s1 = seen.clone();
    let s2 = seen.clone();
    let router = Router::new()
        .route(
            "/live.ts",
            get(move |h: HeaderMap| async move {
                s1.lock().unwrap().token.push(header(&h, "x-test-token"));
                Response::new(slow_body(vector("h264_aac.ts")))
            }),
        )
        .route(
            "/private.ts",
            get(move |h: HeaderMap| async move {
                let auth = header(&h, "authorization");
                s2.lock().unwrap().authorization.push(auth.clone());
                // "user:pa ss"
                if auth.as_deref() == Some("Basic dXNlcjpwYSBzcw==") {
                    Response::new(slow_body(vector("h264_aac.ts")))
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        )
        .route(
            "/stall.ts",
            get(|| async {
                let first = Bytes::from(vector("h264_aac.ts")[..188 * 20].to_vec());
                let stream = futures_util::stream::unfold(Some(first), |state| async move {
                    match state {
                        Some(b) => Some((Ok::<_, std::io::Error>(b), None)),
                        None => {
                            std::future::pending::<()>().await;
                            None
                        }
                    }
                });
                Response::new(Body::from_stream(stream))
            }),
        )
        .route("/gone.ts", get(|| async { StatusCode::GONE }))
        .route("/broken.ts", get(|| async { StatusCode::BAD_GATEWAY }));
    (serve(router).await, seen)
}

#[tokio::test]
async fn http_ts_streams_a_chunked_body_with_custom_headers() {
    let (addr, seen) = http_ts_server().await;
    let mut i = input(&format!("http://{addr}/live.ts"));
    i.headers = BTreeMap::from([("X-Test-Token".to_string(), "abc 123".to_string())]);
    let run = ingest(&i, Duration::from_secs(20)).await;
    expect_ok(&run);
    assert_eq!(
        seen.lock().unwrap().token,
        vec![Some("abc 123".to_string())]
    );
    assert_eq!(run.data, vector("h264_aac.ts"));
    assert!(
        run.elapsed > Duration::from_millis(700),
        "streamed over {:?}",
        run.elapsed
    );
    assert_decodes_cleanly(&run.data, 75);
}

#[tokio::test]
async fn http_ts_basic_auth_from_userinfo_or_input_auth() {
    let (addr, seen) = http_ts_server().await;
    let run = ingest(
        &input(&format!("http://user:pa%20ss@{addr}/private.ts")),
        Duration::from_secs(20),
    )
    .await;
    expect_ok(&run);
    assert_eq!(run.data, vector("h264_aac.ts"));

    let mut i = input(&format!("http://nobody:wrong@{addr}/private.ts"));
    i.auth = Some(InputAuth {
        username: "user".into(),
        password: "pa ss".into(),
    });
    let run = ingest(&i, Duration::from_secs(20)).await;
    expect_ok(&run);

    let run = ingest(
        &input(&format!("http://{addr}/private.ts")),
        Duration::from_secs(5),
    )
    .await;
    let message = expect_err(&run, ErrorKind::Auth);
    assert!(message.contains("401"), "{message}");
    assert_eq!(seen.lock().unwrap().authorization.len(), 3);
}

#[tokio::test]
async fn http_ts_status_codes_map_to_error_kinds() {
    let (addr, _) = http_ts_server().await;
    for (path, kind) in [
        ("/missing.ts", ErrorKind::NotFound),
        ("/gone.ts", ErrorKind::NotFound),
        ("/broken.ts", ErrorKind::Connect),
    ] {
        let run = ingest(
            &input(&format!("http://{addr}{path}")),
            Duration::from_secs(5),
        )
        .await;
        expect_err(&run, kind);
    }
    // Nothing listens on a port that was just freed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = ingest(
        &input(&format!("http://127.0.0.1:{port}/x.ts")),
        Duration::from_secs(5),
    )
    .await;
    expect_err(&run, ErrorKind::Connect);
}

#[tokio::test]
async fn http_ts_inactivity_times_out() {
    let (addr, _) = http_ts_server().await;
    let mut i = input(&format!("http://{addr}/stall.ts"));
    i.net.timeout_sec = 1;
    let run = ingest(&i, Duration::from_secs(10)).await;
    expect_err(&run, ErrorKind::Timeout);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    assert_eq!(
        run.data.len(),
        188 * 20,
        "what came before the stall was written"
    );
}

// ---------------------------------------------------------------------------
// hls

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_live_from_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let playlist = dir.path().join("live.m3u8");
    let log_path = dir.path().join("ffmpeg.log");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
        ])
        .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "5"])
        .args(["-hls_flags", "delete_segments"])
        .arg(&playlist)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (install ffmpeg): {e}"));
    let _ffmpeg = ChildGuard(child);
    // Wait for a playlist with at least 3 segments.
    let ready = Instant::now();
    loop {
        let text = std::fs::read_to_string(&playlist).unwrap_or_default();
        if text.matches("#EXTINF").count() >= 3 {
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "ffmpeg made no live HLS: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let newest_at_start = segment_numbers(&std::fs::read_to_string(&playlist).unwrap())
        .into_iter()
        .max()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(static_dir(dir.path().to_path_buf(), log.clone())).await;
    let run = ingest(
        &input(&format!("http://{addr}/live.m3u8")),
        Duration::from_secs(6),
    )
    .await;
    assert!(
        run.result.is_none(),
        "live HLS keeps going: {:?}",
        run.result
    );
    let d = Demuxed::of(&run.data);
    let video = d.track(VIDEO_PID);
    let secs = (video.last().unwrap().1 - video.first().unwrap().1) as f64 / 90_000.0;
    eprintln!(
        "hls live: {secs:.2} s of video ({} frames) in 6 s",
        video.len()
    );
    // Started 3 segments back, paced: about as much stream as wall time.
    assert!(secs > 4.0 && secs < 7.5, "{secs:.2} s of video in 6 s");
    assert_continuous(&d, 3600, 90_000 / 5);
    assert_decodes_cleanly(&run.data, 100);
    let requests = log.lock().unwrap().clone();
    // Started near the live edge: at most 3 segments back.
    let first_fetched = segment_numbers(&requests.join("\n"))[0];
    assert!(
        first_fetched + 2 >= newest_at_start,
        "first segment {first_fetched}, newest {newest_at_start}"
    );
    let segments: Vec<&String> = requests.iter().filter(|p| p.ends_with(".ts")).collect();
    let mut unique = segments.clone();
    unique.dedup();
    assert_eq!(
        segments.len(),
        unique.len(),
        "each segment fetched once: {requests:?}"
    );
    let tracks: Vec<&str> = run.stats.tracks.iter().map(|t| t.codec).collect();
    assert_eq!(tracks, ["h264", "aac"]);
}

/// The numbers N of the `liveN.ts` names in `text`, in order.
fn segment_numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| c.is_whitespace() || c == '/')
        .filter_map(|w| w.strip_prefix("live")?.strip_suffix(".ts")?.parse().ok())
        .collect()
}

#[tokio::test]
async fn hls_master_playlist_picks_the_highest_bandwidth_variant() {
    let dir = tempfile::tempdir().unwrap();
    vod_hls(&dir.path().join("low"));
    vod_hls(&dir.path().join("high"));
    std::fs::write(
        dir.path().join("master.m3u8"),
        "#EXTM3U\n\
         #EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x120\n\
         low/index.m3u8\n\
         #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=5000000,URI=\"iframes.m3u8\"\n\
         #EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=320x240,CODECS=\"avc1.64000d,mp4a.40.2\"\n\
         high/index.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=500000\n\
         mid/index.m3u8\n",
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(static_dir(dir.path().to_path_buf(), log.clone())).await;
    let run = ingest(
        &input(&format!("http://{addr}/master.m3u8")),
        Duration::from_secs(20),
    )
    .await;
    expect_ok(&run); // EXT-X-ENDLIST: done after the last segment
    let requests = log.lock().unwrap().clone();
    assert_eq!(
        requests[..2],
        ["/master.m3u8", "/high/index.m3u8"],
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|p| !p.starts_with("/low/") && !p.starts_with("/mid/"))
    );
    assert!(
        requests
            .iter()
            .filter(|p| p.starts_with("/high/seg"))
            .count()
            >= 3
    );
    // VOD: played from the first segment, paced.
    assert!(
        run.elapsed > Duration::from_millis(2500),
        "{:?}",
        run.elapsed
    );
    assert_decodes_cleanly(&run.data, 75);
}

#[tokio::test]
async fn hls_missing_segments_are_retried_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    vod_hls(dir.path());
    std::fs::remove_file(dir.path().join("seg1.ts")).unwrap();
    std::fs::write(
        dir.path().join("gap.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:1.0,\nseg0.ts\n#EXTINF:1.0,\nseg1.ts\n#EXTINF:1.0,\nseg2.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("none.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n\
         #EXTINF:1.0,\nnope7.ts\n#EXTINF:1.0,\nnope8.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(static_dir(dir.path().to_path_buf(), log.clone())).await;

    let run = ingest(
        &input(&format!("http://{addr}/gap.m3u8")),
        Duration::from_secs(20),
    )
    .await;
    expect_ok(&run);
    let requests = log.lock().unwrap().clone();
    let count = |p: &str| requests.iter().filter(|r| r.as_str() == p).count();
    assert_eq!(
        count("/seg1.ts"),
        3,
        "fetched once and retried twice: {requests:?}"
    );
    assert_eq!((count("/seg0.ts"), count("/seg2.ts")), (1, 1));
    let (error, _) = run
        .stats
        .last_error
        .clone()
        .expect("skip recorded as the input's error");
    assert!(
        error.contains("segment 1") && error.contains("404"),
        "{error}"
    );
    let d = Demuxed::of(&run.data);
    assert!(d.track(VIDEO_PID).len() >= 40, "segments 0 and 2 written");
    let (_, streams) = ffprobe(&run.data);
    assert!(frames(&streams, "h264") >= 40, "{streams:?}");

    let run = ingest(
        &input(&format!("http://{addr}/none.m3u8")),
        Duration::from_secs(20),
    )
    .await;
    let message = expect_err(&run, ErrorKind::NotFound);
    assert!(message.contains("segment 8"), "{message}");
    assert!(run.data.is_empty());
}

#[tokio::test]
async fn hls_playlist_that_stops_advancing_times_out() {
    let dir = tempfile::tempdir().unwrap();
    vod_hls(dir.path());
    std::fs::write(
        dir.path().join("stuck.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nseg0.ts\n",
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(static_dir(dir.path().to_path_buf(), log.clone())).await;
    let run = ingest(
        &input(&format!("http://{addr}/stuck.m3u8")),
        Duration::from_secs(20),
    )
    .await;
    expect_err(&run, ErrorKind::Timeout);
    assert!(
        run.elapsed > Duration::from_secs(3) && run.elapsed < Duration::from_secs(6),
        "{:?}",
        run.elapsed
    );
    let reloads = log
        .lock()
        .unwrap()
        .iter()
        .filter(|p| *p == "/stuck.m3u8")
        .count();
    assert!(reloads >= 5, "reloaded every 500 ms: {reloads}");
    assert!(!run.data.is_empty(), "the one segment was written");
}

#[tokio::test]
async fn hls_404_playlist_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(static_dir(dir.path().to_path_buf(), Arc::default())).await;
    let run = ingest(
        &input(&format!("http://{addr}/nothing.m3u8")),
        Duration::from_secs(5),
    )
    .await;
    expect_err(&run, ErrorKind::NotFound);
}

// ---------------------------------------------------------------------------
// s3 (moto)

/// A Python with moto and boto3: `.tools/venv` at the workspace root, made
/// on first use when the Python on PATH lacks them.
fn python_with_moto() -> PathBuf {
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import moto.server, boto3"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv");
    let venv_py = venv.join("bin/python");
    if has(&venv_py) {
        return venv_py;
    }
    let system = PathBuf::from("python3");
    if has(&system) {
        return system;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 is required for the S3 tests");
    assert!(status.success(), "python3 -m venv {}", venv.display());
    let status = Command::new(&venv_py)
        .args(["-m", "pip", "install", "-q", "moto[server]", "boto3"])
        .status()
        .expect("pip");
    assert!(status.success(), "pip install 'moto[server]' boto3 failed");
    venv_py
}

/// Bootstraps IAM keys on a moto started with INITIAL_NO_AUTH_ACTION_COUNT=3
/// (every later request is SigV4-verified), creates the bucket, uploads
/// `key=path` pairs with those keys, and prints the keys.
const MOTO_SETUP: &str = r#"
import json, sys, boto3
ep, bucket, uploads = sys.argv[1], sys.argv[2], sys.argv[3:]
iam = boto3.client("iam", endpoint_url=ep, aws_access_key_id="bootstrap",
                   aws_secret_access_key="bootstrap", region_name="us-east-1")
iam.create_user(UserName="ingest")
iam.put_user_policy(UserName="ingest", PolicyName="all", PolicyDocument=json.dumps({
    "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="ingest")["AccessKey"]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=k["AccessKeyId"],
                  aws_secret_access_key=k["SecretAccessKey"], region_name="us-east-1")
s3.create_bucket(Bucket=bucket)
for u in uploads:
    key, path = u.split("=", 1)
    s3.upload_file(path, bucket, key)
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

/// The vector with 60 null packets after each packet: over 4 MiB (two
/// ranged GETs), same timing.
fn padded_vector() -> Vec<u8> {
    let mut null = [0xFFu8; 188];
    null[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
    let mut out = Vec::new();
    for pkt in vector("h264_aac.ts").chunks(188) {
        out.extend_from_slice(pkt);
        for _ in 0..60 {
            out.extend_from_slice(&null);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_from_moto_with_sigv4_verification() {
    // Keys with a space, "~" and "/" only: moto's own SigV4 check rejects
    // even boto3's requests for keys with "+", "=", "," or non-ASCII (the
    // signer's encoding of those is pinned by a botocore vector in s3.rs).
    let python = python_with_moto();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("moto.log")).unwrap())
        .spawn()
        .expect("start moto");
    let _moto = ChildGuard(child);
    // Wait for the port with a bare TCP connect: in auth mode every HTTP
    // request counts as one of the 3 unauthenticated actions.
    let ready = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let padded = dir.path().join("padded.ts");
    std::fs::write(&padded, padded_vector()).unwrap();
    let out = Command::new(&python)
        .args(["-c", MOTO_SETUP, &endpoint, "media"])
        .arg(format!(
            "vectors/h264 aac~1.ts={}",
            vector_path("h264_aac.ts").display()
        ))
        .arg(format!("padded.ts={}", padded.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "moto setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = String::from_utf8(out.stdout).unwrap();
    let (access, secret) = keys.trim().split_once(' ').unwrap();
    let s3 = |key: &str, extra: &str, secret: &str| {
        let mut i = input(&format!(
            "s3://media/{key}?region=us-east-1&endpoint={endpoint}{extra}"
        ));
        i.auth = Some(InputAuth {
            username: access.to_string(),
            password: secret.to_string(),
        });
        i
    };
    let limit = Duration::from_secs(20);
    let plain = s3("vectors/h264%20aac~1.ts", "", secret);
    let large = s3("padded.ts", "", secret);
    let missing = s3("vectors/missing.ts", "", secret);
    let wrong = s3("vectors/h264%20aac~1.ts", "", "not-the-secret");
    let looped = s3("vectors/h264%20aac~1.ts", "&loop=true", secret);
    let (plain, large, missing, wrong, looped) = tokio::join!(
        ingest(&plain, limit),
        ingest(&large, limit),
        ingest(&missing, limit),
        ingest(&wrong, limit),
        ingest(&looped, Duration::from_millis(5000)),
    );

    // A signed GET, paced, bytes unchanged, decodable.
    expect_ok(&plain);
    let file = vector("h264_aac.ts");
    assert_eq!(plain.data, file);
    let span = Demuxed::of(&file).pcr_span();
    let wall = plain.elapsed.as_secs_f64();
    eprintln!("s3: paced read {wall:.3} s for a PCR span of {span:.3} s");
    // Not faster than real time; slower only by moto's response times.
    assert!(
        wall > span - 0.25 && wall < span + 2.0,
        "paced: {wall:.2} s for {span:.2} s"
    );
    assert_decodes_cleanly(&plain.data, 75);

    // Over 4 MiB: read in two ranged GETs, exactly.
    expect_ok(&large);
    assert!(large.data.len() > 4 << 20);
    assert!(large.data == padded_vector(), "large object bytes differ");

    let message = expect_err(&missing, ErrorKind::NotFound);
    assert!(message.contains("NoSuchKey"), "{message}");

    // moto verifies the signature: a wrong secret is refused.
    let message = expect_err(&wrong, ErrorKind::Auth);
    assert!(message.contains("403"), "{message}");

    // Looping re-reads the object and continues the timestamps.
    assert!(looped.result.is_none(), "{:?}", looped.result);
    let d = Demuxed::of(&looped.data);
    assert_loop_continuous(&d);
    let video = d.track(VIDEO_PID);
    assert!(
        video.len() > 100,
        "past the loop point: {} frames",
        video.len()
    );
    assert_decodes_cleanly(&looped.data, 100);
}
