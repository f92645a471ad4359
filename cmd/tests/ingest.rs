//! Ingest end to end through the real server: create a stream over the API,
//! start it, and watch the status report live figures from the real source.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::media::{Kill, vector, wait_status};
use common::{call, config, start};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_input_reports_live_figures() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = start(config(dir.path(), "")).await;
    let url = format!("file://{}?loop=true", vector("h264_aac.ts").display());
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/looped",
        Some(json!({"inputs": [{"url": url, "priority": 0}]})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        call(&s, Method::POST, "/streams/looped/start", None)
            .await
            .0,
        200
    );

    let status = wait_status(&s, "looped", Duration::from_secs(15), |d| {
        d["status"] == "active"
            && d["inputs"][0]["bitrate_kbps"].as_f64().unwrap_or(0.0) > 0.0
            && d["inputs"][0]["tracks"]
                .as_array()
                .is_some_and(|t| t.len() == 2 && t[0]["width"] == 320)
    })
    .await;
    let input = &status["inputs"][0];
    assert_eq!(status["active_input"], 0);
    assert_eq!(input["protocol"], "file");
    assert_eq!(
        input["tracks"][0],
        json!({"kind": "video", "codec": "h264", "width": 320, "height": 240})
    );
    assert_eq!(input["tracks"][1]["codec"], "aac");
    assert_eq!(input["tracks"][1]["sample_rate"], 48000);
    assert!(status["buffer"]["chunks"].as_u64().unwrap_or(0) > 0);

    // Past the file's 3 s length the loop keeps it active.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, body) = call(&s, Method::GET, "/streams/looped/status", None).await;
    assert_eq!(body["data"]["status"], "active", "{body:#}");

    let (_, body) = call(&s, Method::POST, "/streams/looped/stop", None).await;
    assert_eq!(body["data"]["status"], "stopped");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_is_reported_and_other_streams_keep_running() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = start(config(dir.path(), "")).await;
    let good = format!("file://{}?loop=true", vector("h264_aac.ts").display());
    call(
        &s,
        Method::PUT,
        "/streams/good",
        Some(json!({"inputs": [{"url": good, "priority": 0}]})),
    )
    .await;
    call(
        &s,
        Method::PUT,
        "/streams/bad",
        Some(json!({"inputs": [{"url": "/nonexistent/missing.ts", "priority": 0}]})),
    )
    .await;
    assert_eq!(
        call(&s, Method::POST, "/streams/bad/start", None).await.0,
        200
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/good/start", None).await.0,
        200
    );
    let bad = wait_status(&s, "bad", Duration::from_secs(10), |d| {
        d["inputs"][0]["last_error"].is_object()
    })
    .await;
    let message = bad["inputs"][0]["last_error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("not_found"), "{message}");
    wait_status(&s, "good", Duration::from_secs(15), |d| {
        d["status"] == "active"
    })
    .await;
    s.stop().await;
}

/// The README's first stream: an RTMP push from ffmpeg to the shared listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_push_from_ffmpeg_makes_the_stream_active() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = open_streamer::App::bind(config(dir.path(), ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app
        .rtmp_addr()
        .unwrap_or_else(|| panic!("rtmp listener is enabled"));
    let s = common::serve(app);

    let body = json!({
        "name": "Demo",
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/demo", "priority": 0}],
        "protocols": {"hls": true, "dash": true}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/demo", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/demo/start", None).await.0,
        200
    );
    wait_status(&s, "demo", Duration::from_secs(5), |d| {
        d["inputs"][0]["status"] == "connecting"
    })
    .await;

    let ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "8",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ])
        .arg(format!("rtmp://{rtmp}/live/demo"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    let _guard = Kill(ffmpeg);
    let status = wait_status(&s, "demo", Duration::from_secs(15), |d| {
        d["status"] == "active"
            && d["inputs"][0]["tracks"]
                .as_array()
                .is_some_and(|t| t.len() == 2 && t[0]["width"] == 640)
    })
    .await;
    assert_eq!(status["inputs"][0]["mode"], "push");
    assert_eq!(status["inputs"][0]["tracks"][0]["codec"], "h264");
    assert_eq!(status["inputs"][0]["tracks"][1]["codec"], "aac");
    s.stop().await;
}

/// An SRT push from ffmpeg to the shared SRT listener, selected by streamid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_push_from_ffmpeg_makes_the_stream_active() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = open_streamer::App::bind(config(dir.path(), ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let srt = app
        .srt_addr()
        .unwrap_or_else(|| panic!("srt listener is enabled"));
    let s = common::serve(app);
    let body = json!({"inputs": [{"url": "srt://0.0.0.0:9999?streamid=cam1", "priority": 0}]});
    assert_eq!(
        call(&s, Method::PUT, "/streams/cam", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/cam/start", None).await.0,
        200
    );
    let ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "8",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-f",
            "mpegts",
        ])
        .arg(format!("srt://{srt}?streamid=cam1&pkt_size=1316"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    let _guard = Kill(ffmpeg);
    let status = wait_status(&s, "cam", Duration::from_secs(15), |d| {
        d["status"] == "active"
            && d["inputs"][0]["tracks"]
                .as_array()
                .is_some_and(|t| t.len() == 2 && t[0]["width"] == 320)
    })
    .await;
    assert_eq!(status["inputs"][0]["protocol"], "srt");
    assert_eq!(status["inputs"][0]["mode"], "push");
    s.stop().await;
}
