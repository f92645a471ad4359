//! Real browser playback: an RTMP push (ffmpeg, H.264 + AAC) published as
//! HLS and DASH by the real server is played in headless Chromium with
//! hls.js and dash.js (driven by playwright-core, see `build/browser/`).
//! Each output must play for the watch period with `currentTime` advancing,
//! no fatal player error, and a screenshot of the video element showing a
//! picture (not a uniform frame). The player page is served from another
//! origin than the streams, so CORS is exercised too.
//!
//! Needs node, Debian's chromium and `.tools/browser` (installed by
//! `build/test-deps.sh`, run by `make test`); it fails when they are missing.
//! Set `BROWSER_SHOTS_DIR` to keep the screenshots.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Server, call, config};
use reqwest::Method;
use serde_json::{Value, json};

/// Seconds each output is watched after playback started.
const WATCH_S: f64 = 12.0;
/// Minimum advance of `currentTime` over the watch period.
const MIN_ADVANCE_S: f64 = 8.0;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require(program: &str, hint: &str) -> String {
    match std::process::Command::new(program)
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => program.to_string(),
        _ => panic!("{program} is required by this test: {hint} (make test installs it)"),
    }
}

async fn status_of(s: &Server, path: &str) -> (u16, String) {
    match s.client.get(s.url(path)).send().await {
        Ok(r) => {
            let st = r.status().as_u16();
            (st, r.text().await.unwrap_or_default())
        }
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Wait until the HLS playlist lists 3 segments and the MPD 2 per track.
async fn wait_outputs(s: &Server, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (hs, hls) = status_of(s, &format!("/{code}/index.m3u8")).await;
        let (ds, mpd) = status_of(s, &format!("/{code}/index.mpd")).await;
        let hls_ok = hs == 200 && hls.matches("#EXTINF:").count() >= 3;
        let sets: Vec<&str> = mpd.split("<AdaptationSet ").skip(1).collect();
        let dash_ok = ds == 200
            && sets.len() == 2
            && sets.iter().all(|set| {
                let runs: usize = set
                    .split("<S ")
                    .skip(1)
                    .map(|s| {
                        s.split(" r=\"")
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .and_then(|r| r.parse::<usize>().ok())
                            .unwrap_or(0)
                            + 1
                    })
                    .sum();
                runs >= 2
            });
        if hls_ok && dash_ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "outputs not ready: HLS {hs} {hls}\nDASH {ds} {mpd}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Mean and standard deviation of the gray levels of a PNG (decoded by ffmpeg).
fn gray_stats(png: &Path) -> (f64, f64, usize) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(png)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}"));
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "decode {}: {}",
        png.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let px = &out.stdout;
    let n = px.len() as f64;
    let mean = px.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    let var = px
        .iter()
        .map(|&p| (f64::from(p) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt(), px.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_and_dash_play_in_chromium() {
    let node = require("node", "apt-get install -y nodejs");
    let chromium = require("chromium", "apt-get install -y chromium");
    let chromium_path = which(&chromium);
    let tools = workspace().join(".tools/browser");
    assert!(
        tools.join("node_modules/playwright-core").is_dir()
            && tools.join("node_modules/hls.js").is_dir()
            && tools.join("node_modules/dashjs").is_dir(),
        "{} lacks the players: run build/test-deps.sh (make test does)",
        tools.display()
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let media = dir.path().join("media");
    let mut c = config(&dir.path().join("data"), "");
    c.publisher.hls.dir = media.join("hls").display().to_string();
    c.publisher.dash.dir = media.join("dash").display().to_string();
    let app = open_streamer::App::bind(c)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app
        .rtmp_addr()
        .unwrap_or_else(|| panic!("rtmp listener is enabled"));
    let s = common::serve(app);
    let body = json!({
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/tv", "priority": 0}],
        "protocols": {"hls": true, "dash": true}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/tv", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/tv/start", None).await.0,
        200
    );

    let _ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args([
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-b:v",
            "800k",
        ])
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/tv"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    wait_outputs(&s, "tv").await;

    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("{e}"));
    let hls_png = shots.join("hls.png");
    let dash_png = shots.join("dash.png");
    let run = tokio::process::Command::new(&node)
        .arg(tools.join("play.mjs"))
        .arg(&chromium_path)
        .arg(WATCH_S.to_string())
        .args(["hls", &s.url("/tv/index.m3u8")])
        .arg(&hls_png)
        .args(["dash", &s.url("/tv/index.mpd")])
        .arg(&dash_png)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .unwrap_or_else(|_| panic!("the browser run took more than 150 s"))
        .unwrap_or_else(|e| panic!("node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "play.mjs failed:\n{stdout}\n{stderr}");
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(results.len(), 2, "{stdout}");

    if let Some(keep) = std::env::var_os("BROWSER_SHOTS_DIR") {
        let keep = PathBuf::from(keep);
        let _ = std::fs::create_dir_all(&keep);
        for f in [&hls_png, &dash_png] {
            if let Some(name) = f.file_name() {
                let _ = std::fs::copy(f, keep.join(name));
            }
        }
    }

    for (r, (engine, png)) in results
        .iter()
        .zip([("hls.js", &hls_png), ("dash.js", &dash_png)])
    {
        assert_eq!(r["started"], true, "{engine} never started playing: {r}");
        assert!(
            r["engine"].as_str().is_some_and(|e| e.starts_with(engine)),
            "{r}"
        );
        assert!(r["fatal"].is_null(), "{engine} fatal error: {r}");
        let advanced = r["advanced_s"].as_f64().unwrap_or(0.0);
        assert!(
            advanced >= MIN_ADVANCE_S,
            "{engine}: currentTime advanced {advanced} s in {WATCH_S} s: {r}"
        );
        assert!(
            r["wall_s"].as_f64().unwrap_or(0.0) >= WATCH_S,
            "{engine} watched too briefly: {r}"
        );
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(640), Some(360)),
            "{r}"
        );
        // testsrc2 is colour bars and a gradient: far from uniform. A
        // black (or any single-colour) element has a deviation near 0.
        let (mean, dev, n) = gray_stats(png);
        assert!(n >= 640 * 360, "{engine} screenshot has {n} pixels");
        assert!(
            dev > 30.0 && mean > 20.0,
            "{engine} screenshot looks uniform: mean {mean:.1}, deviation {dev:.1}"
        );
        eprintln!(
            "{engine}: advanced {advanced:.2} s, screenshot mean {mean:.1} deviation {dev:.1}"
        );
    }
    s.stop().await;
}

/// Absolute path of a program on PATH (playwright wants one).
fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not found on PATH"))
}
