//! Long run (not part of `make test`): one RTMP-pushed stream published to
//! HLS and DASH for `DISK_BOUND_SECONDS` (600) seconds; the stream
//! directories are sampled every 10 s and must stay within the window +
//! grace bound in files, with bytes not growing, while the stream keeps
//! publishing.
//!
//! `cargo test -p open-streamer --test disk_bound -- --ignored --nocapture`

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::Kill;
use common::{Server, call, config};
use reqwest::Method;
use serde_json::json;

/// (segment files, all files, bytes) in `dir`.
fn usage(dir: &Path, segment_ext: &str) -> (usize, usize, u64) {
    let mut seg = 0;
    let mut files = 0;
    let mut bytes = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if let Ok(m) = e.metadata()
                && m.is_file()
            {
                files += 1;
                bytes += m.len();
                if e.file_name().to_string_lossy().ends_with(segment_ext) {
                    seg += 1;
                }
            }
        }
    }
    (seg, files, bytes)
}

async fn media_sequence(s: &Server) -> u64 {
    let text = s
        .client
        .get(s.url("/long/index.m3u8"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no playlist: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10-minute run; see the module documentation"]
async fn disk_use_stays_bounded_over_a_long_run() {
    let seconds: u64 = std::env::var("DISK_BOUND_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let window = 6;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let media = dir.path().join("media");
    let mut c = config(&dir.path().join("data"), "");
    c.publisher.hls.dir = media.join("hls").display().to_string();
    c.publisher.dash.dir = media.join("dash").display().to_string();
    c.publisher.hls.live_window = window;
    c.publisher.dash.live_window = window;

    // A pre-encoded 10 s source looped by the publisher: no encoding cost.
    let source = dir.path().join("source.flv");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args([
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-b:v",
            "2M",
        ])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(&source)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg is required: {e}"));
    assert!(st.success());

    let app = open_streamer::App::bind(c)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app
        .rtmp_addr()
        .unwrap_or_else(|| panic!("rtmp listener is enabled"));
    let s = common::serve(app);
    let body = json!({
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/long", "priority": 0}],
        "protocols": {"hls": true, "dash": true}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/long", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/long/start", None).await.0,
        200
    );
    let _publisher = Kill(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(&source)
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://{rtmp}/live/long"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("ffmpeg: {e}")),
    );

    let hls_dir = media.join("hls").join("long");
    let dash_dir = media.join("dash").join("long");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let seq0 = media_sequence(&s).await;
    let t0 = Instant::now();
    let hls_bound = window + os_publisher::hls::GRACE_SEGMENTS + 1;
    let dash_bound = 2 * (window + os_publisher::dash::GRACE_SEGMENTS + 1);
    let (mut max_hls, mut max_dash) = ((0, 0, 0u64), (0, 0, 0u64));
    let mut bytes_first_half = 0u64;
    let mut bytes_second_half = 0u64;
    let mut samples = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        let h = usage(&hls_dir, ".ts");
        let d = usage(&dash_dir, ".m4s");
        let total = h.2 + d.2;
        if t0.elapsed() < Duration::from_secs(seconds / 2) {
            bytes_first_half = bytes_first_half.max(total);
        } else {
            bytes_second_half = bytes_second_half.max(total);
        }
        max_hls = (max_hls.0.max(h.0), max_hls.1.max(h.1), max_hls.2.max(h.2));
        max_dash = (
            max_dash.0.max(d.0),
            max_dash.1.max(d.1),
            max_dash.2.max(d.2),
        );
        samples += 1;
        println!(
            "t={:>4}s HLS {} segments / {} files / {} KiB, DASH {} segments / {} files / {} KiB",
            t0.elapsed().as_secs(),
            h.0,
            h.1,
            h.2 / 1024,
            d.0,
            d.1,
            d.2 / 1024
        );
        assert!(h.0 <= hls_bound, "HLS holds {} segments > {hls_bound}", h.0);
        assert!(
            d.0 <= dash_bound,
            "DASH holds {} segments > {dash_bound}",
            d.0
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let seq1 = media_sequence(&s).await;
    let made = seq1 - seq0;
    let expected = seconds / 2;
    println!(
        "{samples} samples over {seconds} s; {made} HLS segments made; max HLS {} segments / {} files / {} KiB; max DASH {} segments / {} files / {} KiB; max bytes first half {} KiB, second half {} KiB",
        max_hls.0,
        max_hls.1,
        max_hls.2 / 1024,
        max_dash.0,
        max_dash.1,
        max_dash.2 / 1024,
        bytes_first_half / 1024,
        bytes_second_half / 1024
    );
    assert!(
        made * 10 >= expected * 9,
        "the stream kept publishing: {made} segments in {seconds} s"
    );
    // Bytes do not creep up: the second half holds no more than the first
    // half's peak plus one segment's worth of slack (VBR).
    assert!(
        bytes_second_half <= bytes_first_half + bytes_first_half / 4,
        "disk use grew: {bytes_first_half} then {bytes_second_half} bytes"
    );
    s.stop().await;
}
