//! DVR end to end, with real ffmpeg sources (MPEG-TS over UDP, 1 s GOP) and
//! ffprobe/ffmpeg checking what was recorded: a 30 s recording with its
//! playlist, timeshift windows, keyframe-aligned segments and `info`
//! figures; resume after a server restart; SIGTERM mid-segment; retention
//! by age and by size; a full disk; timeshift parameter validation and
//! path traversal attempts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::failover::{FeedSpec, Feeder, free_udp_port, require};
use common::media::free_port;
use open_streamer::App;
use os_hls::MediaPlaylist;
use reqwest::Method;
use serde_json::{Value, json};

const FEED: FeedSpec<'static> = FeedSpec {
    size: "320x240",
    tone: 440,
    video_seconds: 300,
    seconds: 300,
};

fn dvr_doc(port: u16, root: &Path, extra: Value) -> Value {
    let mut dvr = json!({"enabled": false, "segment_duration": 2, "storage_path": root.display().to_string()});
    if let (Value::Object(d), Value::Object(e)) = (&mut dvr, extra) {
        d.extend(e);
    }
    json!({
        "inputs": [{"url": format!("udp://127.0.0.1:{port}"), "priority": 0}],
        "protocols": {"hls": true},
        "dvr": dvr,
    })
}

struct Rig {
    dir: tempfile::TempDir,
    s: common::Server,
    metrics: Option<std::net::SocketAddr>,
    _feeder: Feeder,
}

/// An in-process server with one UDP-fed stream `code` running (HLS on).
async fn rig(
    code: &str,
    dvr_extra: Value,
    dvr_root: Option<PathBuf>,
) -> (
    Rig,
    tokio::sync::mpsc::Receiver<std::sync::Arc<os_events::Event>>,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.publisher.hls.dir = dir.path().join("hls").display().to_string();
    c.publisher.hls.segment_duration = 1.0;
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let rx = app.events().subscribe("dvr-test", 4096);
    let metrics = app.metrics_addr();
    let s = common::serve(app);
    let port = free_udp_port();
    let feeder = Feeder::start(port, FEED);
    let root = dvr_root.unwrap_or_else(|| dir.path().join("dvr"));
    let (st, b) = common::call(
        &s,
        Method::PUT,
        &format!("/streams/{code}"),
        Some(dvr_doc(port, &root, dvr_extra)),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = common::call(&s, Method::POST, &format!("/streams/{code}/start"), None).await;
    assert_eq!(st, 200, "{b}");
    (
        Rig {
            dir,
            s,
            metrics,
            _feeder: feeder,
        },
        rx,
    )
}

async fn get_text(s: &common::Server, path: &str) -> (u16, String) {
    let r = s
        .client
        .get(s.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let st = r.status().as_u16();
    (st, r.text().await.unwrap_or_default())
}

/// Wait until the recorder of `code` has written `n` segments.
async fn wait_segments(s: &common::Server, code: &str, n: u64, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, b) = common::call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
        let st = b["data"].clone();
        if st["dvr"]["segments"].as_u64().unwrap_or(0) >= n {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} DVR segments in {limit:?}: {st:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `ffprobe` one value per line.
fn ffprobe(args: &[&str], input: &str) -> String {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(input)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    assert!(
        out.status.success(),
        "ffprobe {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Decode every frame of `input` (a playlist URL or file); returns the
/// number of video frames decoded. Fails on any decode error.
fn decode_video_frames(input: &str) -> u64 {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-protocol_whitelist",
            "file,http,tcp,crypto,data",
        ])
        .args([
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe {input}: {stderr}");
    // HLS input lists the stream once per program: take the first count.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no frame count for {input}: {stderr}"))
}

/// Whether the first video packet of a segment file is a keyframe.
fn starts_with_keyframe(file: &Path) -> bool {
    let flags = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
        ],
        &file.display().to_string(),
    );
    flags.lines().next().is_some_and(|l| l.starts_with('K'))
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn ts_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".ts"))
        .collect()
}

/// Every segment the playlist lists exists and is non-empty; no temp file
/// is listed.
fn assert_playlist_valid(dir: &Path) -> MediaPlaylist {
    let text = std::fs::read_to_string(dir.join("playlist.m3u8")).unwrap_or_else(|e| panic!("{e}"));
    let pl = MediaPlaylist::parse(&text);
    assert!(!pl.segments.is_empty(), "{text}");
    for seg in &pl.segments {
        assert!(
            os_hls::playlist::parse_segment_name(&seg.uri).is_some(),
            "{}",
            seg.uri
        );
        let len = std::fs::metadata(dir.join(&seg.uri))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            len > 0 && len.is_multiple_of(188),
            "{}: {len} bytes",
            seg.uri
        );
        assert!(
            seg.program_date_time.is_some(),
            "{} has no PROGRAM-DATE-TIME",
            seg.uri
        );
    }
    assert_eq!(
        text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
        pl.segments.len()
    );
    pl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_second_recording_plays_with_timeshift_keyframe_cuts_and_true_info() {
    let (r, mut events) = rig("rec", json!({}), None).await;
    let s = &r.s;
    let (st, b) = common::call(s, Method::POST, "/streams/rec/recordings/start", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["status"], "recording");
    assert_eq!(b["data"]["id"], "rec");
    wait_segments(s, "rec", 1, Duration::from_secs(20)).await;
    // While recording: an EVENT playlist.
    let (st, live) = get_text(s, "/recordings/rec/playlist.m3u8").await;
    assert_eq!(st, 200, "{live}");
    assert!(
        live.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !live.contains("ENDLIST"),
        "{live}"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (st, b) = common::call(s, Method::POST, "/streams/rec/recordings/stop", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["status"], "stopped", "{b}");
    let (_, b) = common::call(s, Method::GET, "/recordings/rec", None).await;
    assert_eq!(b["data"]["status"], "stopped");
    assert!(b["data"]["stopped_at"].is_string());
    let (_, b) = common::call(s, Method::GET, "/streams/rec/recordings", None).await;
    assert_eq!(b["total"], 1, "{b}");

    // VOD playlist: ENDLIST, a PROGRAM-DATE-TIME per segment, ~30 s.
    let dir = r.dir.path().join("dvr").join("rec");
    let (st, vod) = get_text(s, "/recordings/rec/playlist.m3u8").await;
    assert_eq!(st, 200);
    assert!(
        vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.ends_with("#EXT-X-ENDLIST\n"),
        "{vod}"
    );
    let pl = assert_playlist_valid(&dir);
    let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
    assert!((30.0..40.0).contains(&total), "recorded {total} s:\n{vod}");
    assert!(!vod.contains("#EXT-X-DISCONTINUITY\n"), "{vod}");
    // Every segment is at least the target (except the last) and starts on a keyframe.
    for (i, seg) in pl.segments.iter().enumerate() {
        if i + 1 < pl.segments.len() {
            assert!(seg.duration >= 1.99, "{} lasts {}", seg.uri, seg.duration);
        }
        assert!(
            starts_with_keyframe(&dir.join(&seg.uri)),
            "{} does not start with a keyframe",
            seg.uri
        );
    }
    // The whole recording decodes (over HTTP, as a player would).
    let frames = decode_video_frames(&s.url("/recordings/rec/playlist.m3u8"));
    assert!(
        frames as f64 >= 25.0 * (total - 1.0),
        "{frames} frames for {total} s"
    );

    // Timeshift: 10 s starting 6 s in.
    let (st, ts) = get_text(s, "/recordings/rec/timeshift.m3u8?offset_sec=6&duration=10").await;
    assert_eq!(st, 200, "{ts}");
    let win = MediaPlaylist::parse(&ts);
    assert!(
        ts.ends_with("#EXT-X-ENDLIST\n") && ts.contains("#EXT-X-PLAYLIST-TYPE:VOD"),
        "{ts}"
    );
    let first = pl.segments[0].program_date_time.unwrap_or_default();
    let (a, b) = (
        first + chrono::Duration::seconds(6),
        first + chrono::Duration::seconds(16),
    );
    assert!(!win.segments.is_empty());
    for seg in &win.segments {
        let orig = pl
            .segments
            .iter()
            .find(|o| o.uri == seg.uri)
            .unwrap_or_else(|| panic!("{} not in the recording", seg.uri));
        assert_eq!(
            orig.program_date_time, seg.program_date_time,
            "PROGRAM-DATE-TIME of {}",
            seg.uri
        );
        assert!(
            seg.end().unwrap_or_default() > a && seg.program_date_time.unwrap_or_default() < b,
            "{} outside the window",
            seg.uri
        );
    }
    // ... and every recorded segment overlapping the window is in it.
    let overlapping = pl
        .segments
        .iter()
        .filter(|o| o.end().unwrap_or_default() > a && o.program_date_time.unwrap_or_default() < b)
        .count();
    assert_eq!(win.segments.len(), overlapping);
    let shown: f64 = win.segments.iter().map(|s| s.duration).sum();
    assert!(shown >= 9.5, "window of {shown} s");
    let frames =
        decode_video_frames(&s.url("/recordings/rec/timeshift.m3u8?offset_sec=6&duration=10"));
    assert!(
        frames as f64 >= 25.0 * (shown - 1.0),
        "{frames} frames for {shown} s"
    );
    // Absolute form: from the third segment's date.
    let third = pl.segments[2].program_date_time.unwrap_or_default();
    let from = third.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (st, ts) = get_text(
        s,
        &format!(
            "/recordings/rec/timeshift.m3u8?from={}&duration=3",
            from.replace('+', "%2B")
        ),
    )
    .await;
    assert_eq!(st, 200, "{ts}");
    let win = MediaPlaylist::parse(&ts);
    assert_eq!(win.segments[0].uri, pl.segments[2].uri, "{ts}");

    // info matches the files.
    let (st, b) = common::call(s, Method::GET, "/recordings/rec/info", None).await;
    assert_eq!(st, 200, "{b}");
    let info = &b["data"];
    let ts_names = ts_files(&dir);
    let ts_bytes: u64 = ts_names
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum();
    let all_bytes: u64 = files(&dir)
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert_eq!(
        info["segment_count"].as_u64(),
        Some(ts_names.len() as u64),
        "{info:#}"
    );
    assert_eq!(
        info["segment_count"].as_u64(),
        Some(pl.segments.len() as u64)
    );
    assert_eq!(info["total_size_bytes"].as_u64(), Some(ts_bytes));
    assert_eq!(info["disk_usage"].as_u64(), Some(all_bytes));
    assert_eq!(info["status"], "stopped");
    assert_eq!(info["gaps"], json!([]));
    let started: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(info["dvr_range"]["started_at"].clone())
            .unwrap_or_else(|e| panic!("{e}: {info}"));
    assert_eq!(Some(started), pl.segments[0].program_date_time);
    let last = pl.segments.last().and_then(|s| s.end());
    let ended: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(info["dvr_range"]["last_segment_at"].clone())
            .unwrap_or_else(|e| panic!("{e}: {info}"));
    assert_eq!(Some(ended), last);
    // Segment with Range.
    let r1 = s
        .client
        .get(s.url("/recordings/rec/000001.ts"))
        .header("range", "bytes=188-375")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r1.status().as_u16(), 206);
    assert_eq!(
        r1.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("video/mp2t")
    );
    let body = r1.bytes().await.unwrap_or_default();
    assert_eq!(body.len(), 188);
    assert_eq!(body[0], 0x47);
    // Prometheus: one count per segment written, bytes as on disk.
    let maddr = r.metrics.unwrap_or_else(|| panic!("metrics endpoint"));
    let text = get_metrics(&s.client, maddr).await;
    let metric = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("stream=\"rec\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    assert_eq!(
        metric("open_streamer_dvr_segments_total"),
        Some(ts_names.len() as u64),
        "{text}"
    );
    assert_eq!(
        metric("open_streamer_dvr_bytes_total"),
        Some(ts_bytes),
        "{text}"
    );
    // Events.
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.event_type.as_str().starts_with("recording.") {
            seen.push((e.event_type.as_str(), e.data.get("reason").cloned()));
        }
    }
    assert_eq!(
        seen,
        [
            ("recording.started", None),
            ("recording.stopped", Some(json!("stopped")))
        ]
    );
    r.s.stop().await;
}

async fn get_metrics(client: &reqwest::Client, addr: std::net::SocketAddr) -> String {
    let r = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("metrics: {e}"));
    r.text().await.unwrap_or_default()
}

/// A stream recorded for a few seconds, then stopped.
async fn short_recording(code: &str) -> Rig {
    let (r, _events) = rig(code, json!({"enabled": true}), None).await;
    wait_segments(&r.s, code, 3, Duration::from_secs(30)).await;
    let (st, b) = common::call(
        &r.s,
        Method::POST,
        &format!("/streams/{code}/recordings/stop"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeshift_parameters_are_validated() {
    let r = short_recording("tsv").await;
    let s = &r.s;
    for (query, code) in [
        ("", "INVALID_QUERY"),
        ("?duration=10", "INVALID_QUERY"),
        ("?from=2026-01-01T00:00:00Z&offset_sec=5", "INVALID_QUERY"),
        ("?from=yesterday", "INVALID_FROM"),
        ("?from=2026-01-01%2000:00:00", "INVALID_FROM"),
        ("?offset_sec=-1800", "INVALID_OFFSET"),
        ("?offset_sec=abc", "INVALID_OFFSET"),
        ("?offset_sec=NaN", "INVALID_OFFSET"),
        ("?offset_sec=0&duration=0", "INVALID_DURATION"),
        ("?offset_sec=0&duration=-5", "INVALID_DURATION"),
        ("?offset_sec=0&duration=ten", "INVALID_DURATION"),
    ] {
        let (st, b) = common::call(
            s,
            Method::GET,
            &format!("/recordings/tsv/timeshift.m3u8{query}"),
            None,
        )
        .await;
        assert_eq!(st, 400, "{query}: {b}");
        assert_eq!(b["error"]["code"], code, "{query}: {b}");
        assert!(
            !b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
    }
    // Well-formed but empty windows: 404.
    for query in [
        "?from=2000-01-01T00:00:00Z&duration=60",
        "?offset_sec=100000",
    ] {
        let (st, b) = common::call(
            s,
            Method::GET,
            &format!("/recordings/tsv/timeshift.m3u8{query}"),
            None,
        )
        .await;
        assert_eq!(st, 404, "{query}: {b}");
        assert_eq!(b["error"]["code"], "NO_SEGMENTS_IN_RANGE", "{b}");
    }
    let (st, b) = common::call(
        s,
        Method::GET,
        "/recordings/nosuch/timeshift.m3u8?offset_sec=0",
        None,
    )
    .await;
    assert_eq!(st, 404, "{b}");
    let (st, _) = get_text(
        s,
        "/recordings/tsv/timeshift.m3u8?offset_sec=0&duration=2.5",
    )
    .await;
    assert_eq!(st, 200);
    r.s.stop().await;
}

/// Send a raw request line (no client-side path normalisation).
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_route_refuses_traversal_and_other_streams_files() {
    let r = short_recording("trav").await;
    let s = &r.s;
    let dir = r.dir.path().join("dvr").join("trav");
    // A second recording whose files must not be reachable through "trav".
    let other = r.dir.path().join("dvr").join("other");
    std::fs::create_dir_all(&other).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(other.join("999999.ts"), [0x47u8; 188]).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(r.dir.path().join("secret.ts"), b"secret").unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.join("000000.ts").is_file());
    let (st, _) = get_text(s, "/recordings/trav/000000.ts").await;
    assert_eq!(st, 200);
    for path in [
        "/recordings/trav/..%2Fother%2F999999.ts",
        "/recordings/trav/..%2F..%2Fsecret.ts",
        "/recordings/trav/%2Fetc%2Fpasswd",
        "/recordings/trav/%2E%2E%2Findex.json",
        "/recordings/trav/index.json",
        "/recordings/trav/playlist.m3u8.tmp",
        "/recordings/trav/.000000.ts.tmp",
        "/recordings/trav/..%5C..%5Csecret.ts",
        "/recordings/trav/000000.ts%00",
    ] {
        let (st, body) = get_text(s, path).await;
        assert!(st == 400 || st == 404, "{path}: {st} {body}");
        assert!(
            !body.contains("secret") && !body.starts_with('G'),
            "{path}: {body}"
        );
    }
    // Another stream's segment name through this recording: not found.
    let (st, b) = common::call(s, Method::GET, "/recordings/trav/999999.ts", None).await;
    assert_eq!(st, 404, "{b}");
    // Bad recording IDs.
    for path in [
        "/recordings/..%2Fother/999999.ts",
        "/recordings/%2E%2E/secret.ts",
    ] {
        let (st, body) = get_text(s, path).await;
        assert!(st == 400 || st == 404, "{path}: {st} {body}");
    }
    // Literal dot segments, sent unnormalised.
    for path in [
        "/recordings/trav/../other/999999.ts",
        "/recordings/trav/../../secret.ts",
        "/recordings/../recordings/other/999999.ts",
        "//etc/passwd",
    ] {
        let st = raw_get(s.addr, path).await;
        assert!(st == 400 || st == 404, "{path}: {st}");
    }
    // Other names are refused with a JSON error.
    let (st, b) = common::call(s, Method::GET, "/recordings/trav/%2Fetc%2Fpasswd", None).await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["code"], "INVALID_FILE", "{b}");
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_and_by_size_deletes_only_the_oldest() {
    // Age: keep 4 s of 1 s segments. Size: keep ~400 KB.
    let (age, _e1) = rig(
        "ret-age",
        json!({"enabled": true, "segment_duration": 1, "retention_sec": 4}),
        None,
    )
    .await;
    let max = 400_000u64;
    let (size, _e2) = rig(
        "ret-size",
        json!({"enabled": true, "segment_duration": 1, "max_size_gb": max as f64 / (1u64 << 30) as f64}),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    for (r, code) in [(&age, "ret-age"), (&size, "ret-size")] {
        let (st, b) = common::call(
            &r.s,
            Method::POST,
            &format!("/streams/{code}/recordings/stop"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{b}");
        let dir = r.dir.path().join("dvr").join(code);
        let pl = assert_playlist_valid(&dir);
        let (_, b) =
            common::call(&r.s, Method::GET, &format!("/recordings/{code}/info"), None).await;
        let info = &b["data"];
        let next = info["next_segment"].as_u64().unwrap_or(0);
        assert!(next >= 10, "{code}: only {next} segments written: {info:#}");
        // What is left is exactly the newest segments, numbered without a hole.
        let listed: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
        let want: Vec<String> = (next - listed.len() as u64..next)
            .map(os_hls::playlist::recording_segment_name)
            .collect();
        assert_eq!(listed, want, "{code}");
        assert_eq!(
            ts_files(&dir),
            want,
            "{code}: files on disk = listed segments"
        );
        assert!(
            !dir.join("000000.ts").exists(),
            "{code}: the oldest segment is still there"
        );
        assert_eq!(pl.media_sequence, next - listed.len() as u64, "{code}");
        if code == "ret-age" {
            // Everything but the newest ended at most ~4 s before the stop.
            let end = pl.segments.last().and_then(|s| s.end()).unwrap_or_default();
            let oldest_end = pl.segments[0].end().unwrap_or_default();
            assert!(
                (end - oldest_end).num_milliseconds() <= 4_000 + 2_500,
                "{code}: {pl:?}"
            );
            assert!(listed.len() >= 3, "{code}: retention too eager: {listed:?}");
        } else {
            let total = info["total_size_bytes"].as_u64().unwrap_or(u64::MAX);
            assert!(total <= max, "{code}: {total} bytes kept > {max}");
            assert!(
                !listed.is_empty() && next as usize > listed.len(),
                "{code}: {listed:?}"
            );
        }
    }
    age.s.stop().await;
    size.s.stop().await;
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap_or_else(|e| panic!("{e}"));
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap_or_else(|e| panic!("mount: {e}"));
        assert!(
            st.success(),
            "mount -t tmpfs failed (the disk-full test needs root)"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

async fn hls_sequence(s: &common::Server, code: &str) -> Option<u64> {
    let (st, text) = get_text(s, &format!("/{code}/index.m3u8")).await;
    if st != 200 {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .map(|seq: u64| seq + text.lines().filter(|l| l.ends_with(".ts")).count() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_stops_the_recording_cleanly_and_live_hls_continues() {
    let mnt = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fs = Tmpfs::mount(&mnt.path().join("small"), "2m");
    // Leave ~400 KB free: a few seconds of recording.
    std::fs::write(fs.0.join("filler"), vec![0u8; 1_600_000]).unwrap_or_else(|e| panic!("{e}"));
    let (r, mut events) = rig(
        "full",
        json!({"enabled": true, "segment_duration": 1}),
        Some(fs.0.clone()),
    )
    .await;
    let s = &r.s;
    let deadline = Instant::now() + Duration::from_secs(90);
    let st = loop {
        let (_, b) = common::call(s, Method::GET, "/streams/full/status", None).await;
        if b["data"]["dvr"]["state"] == "failed" {
            break b["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the recorder never failed: {b:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let err = st["dvr"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.to_lowercase().contains("space"), "{err}");
    assert!(st["dvr"]["segments"].as_u64().unwrap_or(0) >= 1, "{st:#}");
    // recording.stopped with the reason.
    let stopped = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no recording.stopped event"))
            .unwrap_or_else(|| panic!("bus closed"));
        if e.event_type.as_str() == "recording.stopped" {
            break e;
        }
    };
    assert_eq!(
        stopped.data.get("reason"),
        Some(&json!("error")),
        "{stopped:?}"
    );
    assert!(
        stopped
            .data
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| e.contains("space")),
        "{stopped:?}"
    );
    let (_, b) = common::call(s, Method::GET, "/recordings/full", None).await;
    assert_eq!(b["data"]["status"], "failed", "{b}");
    // The stream and its live HLS keep going.
    assert_eq!(st["status"], "active", "{st:#}");
    let before = hls_sequence(s, "full").await.unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = hls_sequence(s, "full").await.unwrap_or(0);
    assert!(after > before, "live HLS stalled: {before} → {after}");
    // What was recorded stays playable: every listed file is complete and decodes.
    let dir = fs.0.join("full");
    let pl = assert_playlist_valid(&dir);
    assert!(
        !files(&dir).iter().any(|f| f.ends_with(".tmp")),
        "{:?}",
        files(&dir)
    );
    let frames = decode_video_frames(&dir.join("playlist.m3u8").display().to_string());
    let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
    assert!(
        frames as f64 >= 25.0 * (total - 1.0),
        "{frames} frames for {total} s"
    );
    // With space again, the recording can be started again (numbering continues).
    std::fs::remove_file(fs.0.join("filler")).unwrap_or_else(|e| panic!("{e}"));
    let next = pl.segments.len();
    let (st, b) = common::call(s, Method::POST, "/streams/full/recordings/start", None).await;
    assert_eq!(st, 200, "{b}");
    let st = wait_segments(s, "full", next as u64 + 1, Duration::from_secs(20)).await;
    assert_eq!(st["dvr"]["state"], "recording", "{st:#}");
    let (st, _) = common::call(s, Method::POST, "/streams/full/recordings/stop", None).await;
    assert_eq!(st, 200);
    let pl2 = assert_playlist_valid(&dir);
    assert_eq!(
        pl2.segments[..next],
        pl.segments[..],
        "the recorded part is untouched"
    );
    r.s.stop().await;
    drop(fs);
}

// ---- the real binary: restart and SIGTERM ------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_open-streamer");

/// The server process, SIGKILLed by PID on drop if still running.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(dir: &Path, port: u16) -> Proc {
        let child = Command::new(BIN)
            .current_dir(dir)
            .env(
                "OPEN_STREAMER_SERVER_HTTP_ADDR",
                format!("127.0.0.1:{port}"),
            )
            .env("OPEN_STREAMER_STORAGE_JSON_DIR", dir.join("data"))
            .env("OPEN_STREAMER_PUBLISHER_HLS_DIR", dir.join("hls"))
            .env("OPEN_STREAMER_METRICS_ADDR", "")
            .env("OPEN_STREAMER_LISTENERS_RTMP_LISTEN_HOST", "127.0.0.1")
            .env("OPEN_STREAMER_LISTENERS_RTMP_PORT", "0")
            .env("OPEN_STREAMER_LISTENERS_SRT_LISTEN_HOST", "127.0.0.1")
            .env("OPEN_STREAMER_LISTENERS_SRT_PORT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        Proc(Some(child))
    }

    /// SIGTERM and wait for a clean exit.
    fn terminate(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "exit after SIGTERM: {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn http(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    match req.send().await {
        Ok(r) => {
            let st = r.status().as_u16();
            (
                st,
                serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null),
            )
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_http_segments(client: &reqwest::Client, base: &str, code: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, b) = http(
            client,
            Method::GET,
            &format!("{base}/streams/{code}/status"),
            None,
        )
        .await;
        if b["data"]["dvr"]["written"].as_u64().unwrap_or(0) >= n {
            return b["data"].clone();
        }
        assert!(Instant::now() < deadline, "no {n} segments written: {b:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Server process with a UDP-fed recorded stream `code` (dvr under `{dir}/dvr`).
async fn recorded_process(
    dir: &Path,
    code: &str,
    port: u16,
    segment_duration: u32,
) -> (Proc, String, reqwest::Client) {
    let http_port = free_port();
    let p = Proc::spawn(dir, http_port);
    let base = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(&client, Method::GET, &format!("{base}/healthz"), None)
        .await
        .0
        != 200
    {
        assert!(Instant::now() < deadline, "server not healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let doc = dvr_doc(
        port,
        &dir.join("dvr"),
        json!({"enabled": true, "segment_duration": segment_duration}),
    );
    let (st, b) = http(
        &client,
        Method::PUT,
        &format!("{base}/streams/{code}"),
        Some(doc),
    )
    .await;
    assert!(st == 200 || st == 201, "{b}");
    let (st, b) = http(
        &client,
        Method::POST,
        &format!("{base}/streams/{code}/start"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    (p, base, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_recording_continues_numbering_with_one_gap() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_udp_port();
    let _feeder = Feeder::start(port, FEED);
    let (mut p, base, client) = recorded_process(dir.path(), "rs", port, 2).await;
    wait_http_segments(&client, &base, "rs", 3).await;
    p.terminate();
    let rec = dir.path().join("dvr").join("rs");
    let before = assert_playlist_valid(&rec);
    let last_before = before
        .segments
        .last()
        .map(|s| s.uri.clone())
        .unwrap_or_default();
    let n_before = before.segments.len();
    // Down for a few seconds; the source keeps sending meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Same data dir: the stream is resumed, and so is its recording.
    let http_port = free_port();
    let mut p = Proc::spawn(dir.path(), http_port);
    let base = format!("http://127.0.0.1:{http_port}");
    wait_http_segments(&client, &base, "rs", 3).await;
    let (st, b) = http(
        &client,
        Method::POST,
        &format!("{base}/streams/rs/recordings/stop"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let pl = assert_playlist_valid(&rec);
    let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
    // Numbering continues right after the last segment of the first run.
    let first_after = &pl.segments[n_before];
    assert_eq!(
        os_hls::playlist::parse_segment_name(&first_after.uri),
        os_hls::playlist::parse_segment_name(&last_before).map(|n| n + 1),
        "{uris:?}"
    );
    let want: Vec<String> = (0..pl.segments.len() as u64)
        .map(os_hls::playlist::recording_segment_name)
        .collect();
    assert_eq!(uris, want);
    // One DISCONTINUITY, on that segment; one gap covering the downtime.
    let disc: Vec<&str> = pl
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.uri.as_str())
        .collect();
    assert_eq!(disc, [first_after.uri.as_str()]);
    let text = std::fs::read_to_string(rec.join("playlist.m3u8")).unwrap_or_default();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    let (_, b) = http(
        &client,
        Method::GET,
        &format!("{base}/recordings/rs/info"),
        None,
    )
    .await;
    let gaps = b["data"]["gaps"].as_array().cloned().unwrap_or_default();
    assert_eq!(gaps.len(), 1, "{b:#}");
    let gap = gaps[0]["duration_sec"].as_f64().unwrap_or(0.0);
    assert!(gap >= 3.0, "gap of {gap} s for a restart of 3+ s");
    let from: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(gaps[0]["from"].clone()).unwrap_or_default();
    assert_eq!(Some(from), before.segments.last().and_then(|s| s.end()));
    // The VOD playlist plays across the gap.
    let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
    let frames = decode_video_frames(&format!("{base}/recordings/rs/playlist.m3u8"));
    assert!(
        frames as f64 >= 25.0 * (total - 2.0),
        "{frames} frames for {total} s"
    );
    p.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_segment_leaves_a_valid_playlist() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_udp_port();
    let _feeder = Feeder::start(port, FEED);
    // 8 s segments; SIGTERM ~3 s into the third one.
    let (mut p, base, client) = recorded_process(dir.path(), "term", port, 8).await;
    wait_http_segments(&client, &base, "term", 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    p.terminate();
    let rec = dir.path().join("dvr").join("term");
    let pl = assert_playlist_valid(&rec);
    let text = std::fs::read_to_string(rec.join("playlist.m3u8")).unwrap_or_default();
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    // The segment in progress was closed at the stop and listed whole.
    assert!(pl.segments.len() >= 3, "{text}");
    let last = pl.segments.last().map(|s| s.duration).unwrap_or(0.0);
    assert!(last > 0.5 && last < 7.9, "last segment {last} s:\n{text}");
    assert_eq!(ts_files(&rec).len(), pl.segments.len(), "{:?}", files(&rec));
    assert!(
        !files(&rec).iter().any(|f| f.ends_with(".tmp")),
        "{:?}",
        files(&rec)
    );
    for seg in &pl.segments {
        assert!(starts_with_keyframe(&rec.join(&seg.uri)), "{}", seg.uri);
    }
    let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
    let frames = decode_video_frames(&rec.join("playlist.m3u8").display().to_string());
    assert!(
        frames as f64 >= 25.0 * (total - 1.0),
        "{frames} frames for {total} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_loss_is_one_gap_and_one_discontinuity() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.publisher.hls.dir = dir.path().join("hls").display().to_string();
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let s = common::serve(app);
    let port = free_udp_port();
    let mut feeder = Feeder::start(port, FEED);
    let root = dir.path().join("dvr");
    let doc = dvr_doc(port, &root, json!({"enabled": true, "segment_duration": 1}));
    let (st, b) = common::call(&s, Method::PUT, "/streams/loss", Some(doc)).await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = common::call(&s, Method::POST, "/streams/loss/start", None).await;
    assert_eq!(st, 200, "{b}");
    let st = wait_segments(&s, "loss", 4, Duration::from_secs(30)).await;
    let before = st["dvr"]["segments"].as_u64().unwrap_or(0);
    // The source goes silent for 6 s (> 2 × segment duration), then returns.
    feeder.kill();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _feeder = Feeder::start(port, FEED);
    wait_segments(&s, "loss", before + 4, Duration::from_secs(30)).await;
    let (st, b) = common::call(&s, Method::POST, "/streams/loss/recordings/stop", None).await;
    assert_eq!(st, 200, "{b}");
    let rec = root.join("loss");
    let pl = assert_playlist_valid(&rec);
    let text = std::fs::read_to_string(rec.join("playlist.m3u8")).unwrap_or_default();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    let (_, b) = common::call(&s, Method::GET, "/recordings/loss/info", None).await;
    let gaps = b["data"]["gaps"].as_array().cloned().unwrap_or_default();
    assert_eq!(gaps.len(), 1, "{b:#}");
    let gap = gaps[0]["duration_sec"].as_f64().unwrap_or(0.0);
    assert!(
        (4.0..12.0).contains(&gap),
        "gap of {gap} s for 6 s of silence"
    );
    // Numbering has no hole, and the recording plays across the gap.
    let want: Vec<String> = (0..pl.segments.len() as u64)
        .map(os_hls::playlist::recording_segment_name)
        .collect();
    let uris: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
    assert_eq!(uris, want);
    let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
    let frames = decode_video_frames(&s.url("/recordings/loss/playlist.m3u8"));
    assert!(
        frames as f64 >= 25.0 * (total - 2.0),
        "{frames} frames for {total} s"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_left_open_by_a_crash_is_closed_at_boot() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // What a killed server leaves: the record still says "recording".
    let recs = dir.path().join("recordings");
    std::fs::create_dir_all(&recs).unwrap_or_else(|e| panic!("{e}"));
    let rec_dir = dir.path().join("dvr").join("gone");
    std::fs::create_dir_all(&rec_dir).unwrap_or_else(|e| panic!("{e}"));
    let record = json!({
        "id": "gone", "stream_code": "gone", "started_at": "2026-01-01T00:00:00Z",
        "status": "recording", "segment_dir": rec_dir.display().to_string(),
    });
    std::fs::write(recs.join("gone.json"), record.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let ix = json!({
        "stream_code": "gone", "started_at": "2026-01-01T00:00:00Z",
        "last_segment_at": "2026-01-01T00:10:00Z", "segment_count": 0,
        "total_size_bytes": 0, "next_seq": 150,
    });
    std::fs::write(rec_dir.join("index.json"), ix.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let s = common::start(common::config(dir.path(), "")).await;
    let (st, b) = common::call(&s, Method::GET, "/recordings/gone", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["status"], "stopped", "{b}");
    assert_eq!(b["data"]["stopped_at"], "2026-01-01T00:10:00Z", "{b}");
    // Its info still answers from the index; playback has nothing to list.
    let (st, b) = common::call(&s, Method::GET, "/recordings/gone/info", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["next_segment"], 150);
    let (st, b) = common::call(&s, Method::GET, "/recordings/gone/playlist.m3u8", None).await;
    assert_eq!(
        (st, b["error"]["code"].clone()),
        (404, json!("NO_PLAYLIST")),
        "{b}"
    );
    // Delete removes the files and the record.
    let (st, _) = common::call(&s, Method::DELETE, "/recordings/gone", None).await;
    assert_eq!(st, 204);
    assert!(!rec_dir.exists());
    let (st, _) = common::call(&s, Method::GET, "/recordings/gone", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}
