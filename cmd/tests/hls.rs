//! HLS end to end through the real server: a real source (RTMP push from
//! ffmpeg, or a looped file) → hub → HLS publisher → media route over HTTP,
//! checked with Apple's playlist rules and decoded by ffprobe.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::{Kill, ffmpeg_decodes, ffprobe_codecs, get, vector};
use common::{Server, call, config};
use reqwest::Method;
use serde_json::json;

#[derive(Debug, Default)]
struct Media {
    target: u64,
    sequence: u64,
    discontinuity_sequence: u64,
    /// (EXTINF seconds, URI)
    segments: Vec<(f64, String)>,
}

fn parse_playlist(text: &str) -> Media {
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    let mut m = Media::default();
    let mut pending: Option<f64> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            m.target = v.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            m.sequence = v.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            m.discontinuity_sequence = v.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let secs = v.trim_end_matches(',');
            let (_, decimals) = secs.split_once('.').unwrap_or_else(|| panic!("{line}"));
            assert_eq!(decimals.len(), 3, "three decimals: {line}");
            pending = Some(secs.parse().unwrap_or_else(|e| panic!("{line}: {e}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let d = pending
                .take()
                .unwrap_or_else(|| panic!("URI without EXTINF: {text}"));
            m.segments.push((d, line.to_string()));
        }
    }
    assert!(text.contains("#EXT-X-VERSION:3\n"), "{text}");
    assert_eq!(
        text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
        m.segments.len(),
        "one PROGRAM-DATE-TIME per segment: {text}"
    );
    for (d, uri) in &m.segments {
        assert!(
            (d.round() as u64) <= m.target,
            "EXTINF {d} of {uri} rounds above target {}",
            m.target
        );
    }
    m
}

/// Poll the playlist until it lists at least `n` segments.
async fn wait_playlist(s: &Server, code: &str, n: usize, limit: Duration) -> (Media, String) {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        let resp = get(s, &format!("/{code}/index.m3u8")).await;
        if resp.status() == 200 {
            last = resp.text().await.unwrap_or_default();
            let m = parse_playlist(&last);
            if m.segments.len() >= n {
                return (m, last);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("playlist of {code} did not list {n} segments within {limit:?}; last: {last}");
}

/// Download the listed segments and check each decodes with the expected codecs.
async fn check_segments(s: &Server, code: &str, m: &Media, codecs: &[&str], tmp: &Path) {
    for (_, uri) in &m.segments {
        let resp = get(s, &format!("/{code}/{uri}")).await;
        assert_eq!(resp.status(), 200, "{uri}");
        assert_eq!(resp.headers()["content-type"], "video/mp2t");
        let bytes = resp.bytes().await.unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert!(
            bytes.len() > 1000 && bytes.len() % 188 == 0,
            "{uri}: {} bytes",
            bytes.len()
        );
        let file = tmp.join(uri);
        std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let found = ffprobe_codecs(&file.display().to_string());
        assert_eq!(found, codecs, "{uri}");
        ffmpeg_decodes(&file);
    }
}

fn hls_config(data: &Path, hls: &Path, window: usize) -> os_config::Config {
    let mut c = config(data, "");
    c.publisher.hls.dir = hls.display().to_string();
    c.publisher.dash.dir = hls.join("dash").display().to_string();
    c.publisher.hls.live_window = window;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_push_is_published_as_hls() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hls_dir = dir.path().join("hls");
    let app = open_streamer::App::bind(hls_config(&dir.path().join("data"), &hls_dir, 3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app
        .rtmp_addr()
        .unwrap_or_else(|| panic!("rtmp listener is enabled"));
    let s = common::serve(app);
    let body = json!({
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/demo", "priority": 0}],
        "protocols": {"hls": true}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/demo", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/demo/start", None).await.0,
        200
    );

    let ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args(["-t", "16", "-c:v", "libx264", "-preset", "veryfast"])
        .args(["-g", "50", "-keyint_min", "50", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/demo"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    let _guard = Kill(ffmpeg);

    let (first, _) = wait_playlist(&s, "demo", 2, Duration::from_secs(20)).await;
    // 12+ s of media: the window of 3 has slid.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (second, text) = wait_playlist(&s, "demo", 3, Duration::from_secs(10)).await;
    assert!(
        second.sequence > first.sequence,
        "media sequence {} then {}",
        first.sequence,
        second.sequence
    );
    assert_eq!(second.discontinuity_sequence, 0, "{text}");
    assert_eq!(second.segments.len(), 3, "window of 3: {text}");
    for (d, uri) in &second.segments {
        assert!((d - 2.0).abs() <= 0.5, "{uri}: {d} s for a 2 s GOP\n{text}");
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    check_segments(&s, "demo", &second, &["h264", "aac"], tmp.path()).await;

    // A player's view: ffprobe reads the live playlist over HTTP.
    let url = s.url("/demo/index.m3u8");
    let found = ffprobe_codecs(&url);
    assert!(
        found.contains(&"h264".to_string()) && found.contains(&"aac".to_string()),
        "{found:?}"
    );

    // Turning HLS off removes the stream's directory; the stream keeps running.
    let body = json!({
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/demo", "priority": 0}],
        "protocols": {"hls": false}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/demo", Some(body)).await.0,
        200
    );
    assert!(
        !hls_dir.join("demo").exists(),
        "directory removed when HLS is turned off"
    );
    assert_eq!(get(&s, "/demo/index.m3u8").await.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_file_is_published_with_bounded_disk_and_served_safely() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hls_dir = dir.path().join("hls");
    let window = 2;
    let s = common::start(hls_config(&dir.path().join("data"), &hls_dir, window)).await;
    let url = format!("file://{}?loop=true", vector("h265_aac.ts").display());
    let body = json!({"inputs": [{"url": url, "priority": 0}], "protocols": {"hls": true}});
    assert_eq!(
        call(&s, Method::PUT, "/streams/cam", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/cam/start", None).await.0,
        200
    );

    let (first, _) = wait_playlist(&s, "cam", window, Duration::from_secs(20)).await;
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    check_segments(&s, "cam", &first, &["hevc", "aac"], tmp.path()).await;
    let found = ffprobe_codecs(&s.url("/cam/index.m3u8"));
    assert!(found.contains(&"hevc".to_string()), "{found:?}");

    // Disk bound: once more than window + grace segments were made, the
    // directory never holds more than window + grace segment files.
    // +1: a new segment is written before the oldest retired one is deleted.
    let bound = window + os_publisher::hls::GRACE_SEGMENTS + 1;
    let stream_dir = hls_dir.join("cam");
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut max_files = 0;
    loop {
        let files = std::fs::read_dir(&stream_dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ts"))
            .count();
        max_files = max_files.max(files);
        let (now, _) = wait_playlist(&s, "cam", window, Duration::from_secs(10)).await;
        if now.sequence >= first.sequence + bound as u64 + 2 {
            break;
        }
        assert!(Instant::now() < deadline, "too few segments made: {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(max_files <= bound, "{max_files} segment files > {bound}");
    assert!(max_files >= window, "{max_files} segment files");

    // Serving rules.
    let resp = get(&s, "/cam/index.m3u8").await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let (now, _) = wait_playlist(&s, "cam", window, Duration::from_secs(10)).await;
    let seg = format!("/cam/{}", now.segments[window - 1].1);
    let resp = get(&s, &seg).await;
    assert_eq!(resp.status(), 200);
    let cache = resp.headers()["cache-control"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        cache.starts_with("public, max-age=") && cache.ends_with("immutable"),
        "{cache}"
    );
    let etag = resp.headers()["etag"].clone();
    let full = resp.bytes().await.unwrap_or_else(|e| panic!("{e}"));
    let resp = s
        .client
        .get(s.url(&seg))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"], etag);
    let resp = s
        .client
        .get(s.url(&seg))
        .header("range", "bytes=188-375")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 188-375/{}", full.len()).as_str()
    );
    let part = resp.bytes().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&part[..], &full[188..376]);
    let head = s
        .client
        .head(s.url(&seg))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.status(), 200);

    for (path, statuses) in [
        ("/nostream/index.m3u8", &[404][..]),
        ("/cam/seg_1.ts", &[404][..]),
        ("/cam/..%2F..%2Fetc%2Fpasswd", &[400, 404][..]),
        ("/cam/%2e%2e/x", &[400, 404][..]),
        ("/cam/..%5C..%5Cx.ts", &[400, 404][..]),
        ("/cam/a%00.ts", &[400, 404][..]),
        ("/cam/%2Fetc%2Fpasswd", &[400, 404][..]),
        ("/..%2Fcam/index.m3u8", &[400, 404][..]),
    ] {
        let resp = get(&s, path).await;
        let status = resp.status().as_u16();
        assert!(statuses.contains(&status), "{path}: {status}");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert!(
            body["error"]["code"].is_string(),
            "{path}: JSON error, got {body}"
        );
    }
    // The media route does not shadow the API.
    assert_eq!(get(&s, "/healthz").await.status(), 200);
    assert_eq!(get(&s, "/streams/cam/status").await.status(), 200);
    assert_eq!(get(&s, "/swagger/openapi.json").await.status(), 200);

    // Stopping the stream removes its HLS directory.
    assert_eq!(
        call(&s, Method::POST, "/streams/cam/stop", None).await.0,
        200
    );
    assert!(!stream_dir.exists(), "directory removed on stop");
    s.stop().await;
}
