//! Real browser playback: an RTMP push (ffmpeg, H.264 + AAC) published as
//! HLS and DASH by the real server is played in headless Chromium with
//! hls.js and dash.js (driven by playwright-core, see `build/browser/`).
//! Each output must play for the watch period with `currentTime` advancing,
//! no fatal player error, and a screenshot of the video element showing a
//! picture (not a uniform frame). The player page is served from another
//! origin than the streams, so CORS is exercised too. A second scenario
//! kills the primary input of a two-input stream while hls.js plays it: the
//! hot backup takes over, the playlist marks the switch with
//! `#EXT-X-DISCONTINUITY`, and hls.js keeps playing through it. A third
//! plays the DASH ABR MPD of a transcoded stream (two renditions) in dash.js.
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
    let browser = Browser::require();

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
    let player = browser.spawn(
        WATCH_S,
        &[
            ("hls", s.url("/tv/index.m3u8"), hls_png.clone()),
            ("dash", s.url("/tv/index.mpd"), dash_png.clone()),
        ],
    );
    let results = player.finish().await;
    assert_eq!(results.len(), 2);
    keep_shots(&[&hls_png, &dash_png]);
    for (r, (engine, png)) in results
        .iter()
        .zip([("hls.js", &hls_png), ("dash.js", &dash_png)])
    {
        check_played(r, engine, png, MIN_ADVANCE_S);
    }
    s.stop().await;
}

/// dash.js plays the MPD of a transcoded stream: one video AdaptationSet
/// with a Representation per rendition (640x360 and 320x180).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_js_plays_a_transcoded_abr_stream() {
    let browser = Browser::require();

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
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/ladder", "priority": 0}],
        "protocols": {"dash": true},
        "transcoder": {
            "video": {"profiles": [
                {"width": 640, "height": 360, "bitrate": 800, "preset": "veryfast", "keyframe_interval": 2},
                {"width": 320, "height": 180, "bitrate": 300, "preset": "veryfast", "keyframe_interval": 2}
            ]},
            "audio": {"codec": "aac", "bitrate": 96}
        }
    });
    let (st, body) = call(&s, Method::PUT, "/streams/ladder", Some(body)).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        call(&s, Method::POST, "/streams/ladder/start", None)
            .await
            .0,
        200
    );
    let _ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", "50", "-b:v", "1M", "-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/ladder"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    // Two video representations with 3 segments each, and the audio set.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, mpd) = status_of(&s, "/ladder/index.mpd").await;
        let video = mpd
            .split("<AdaptationSet ")
            .nth(1)
            .and_then(|v| v.split("</AdaptationSet>").next())
            .unwrap_or("");
        let reps: Vec<&str> = video.split("<Representation ").skip(1).collect();
        let ready = st == 200
            && mpd.matches("<AdaptationSet ").count() == 2
            && reps.len() == 2
            && reps.iter().all(|r| {
                r.split("<S ")
                    .skip(1)
                    .map(|s| {
                        s.split(" r=\"")
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .and_then(|r| r.parse::<usize>().ok())
                            .unwrap_or(0)
                            + 1
                    })
                    .sum::<usize>()
                    >= 3
            });
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "ABR MPD not ready: {st} {mpd}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("{e}"));
    let png = shots.join("dash_abr.png");
    let player = browser.spawn(
        WATCH_S,
        &[("dash", s.url("/ladder/index.mpd"), png.clone())],
    );
    let results = player.finish().await;
    assert_eq!(results.len(), 1);
    keep_shots(&[&png]);
    check_played_at(
        &results[0],
        "dash.js",
        &png,
        MIN_ADVANCE_S,
        &[(640, 360), (320, 180)],
    );
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

/// Node, Chromium and the player libraries (`.tools/browser`).
struct Browser {
    node: String,
    chromium: PathBuf,
    tools: PathBuf,
}

impl Browser {
    /// Fail (never skip) when something is missing.
    fn require() -> Browser {
        let node = require("node", "apt-get install -y nodejs");
        let chromium = which(&require("chromium", "apt-get install -y chromium"));
        let tools = workspace().join(".tools/browser");
        assert!(
            tools.join("node_modules/playwright-core").is_dir()
                && tools.join("node_modules/hls.js").is_dir()
                && tools.join("node_modules/dashjs").is_dir(),
            "{} lacks the players: run build/test-deps.sh (make test does)",
            tools.display()
        );
        // The driver and page are the checked-in ones (the npm packages
        // resolve next to them in the tools directory).
        for f in ["play.mjs", "player.html"] {
            std::fs::copy(workspace().join("build/browser").join(f), tools.join(f))
                .unwrap_or_else(|e| panic!("copy {f} into {}: {e}", tools.display()));
        }
        Browser {
            node,
            chromium,
            tools,
        }
    }

    /// Start `play.mjs` on `streams` (type, playlist URL, screenshot path),
    /// each watched for `watch_s` seconds after it started playing.
    fn spawn(&self, watch_s: f64, streams: &[(&str, String, PathBuf)]) -> Player {
        let mut cmd = tokio::process::Command::new(&self.node);
        cmd.arg(self.tools.join("play.mjs"))
            .arg(&self.chromium)
            .arg(watch_s.to_string());
        for (kind, url, png) in streams {
            cmd.arg(kind).arg(url).arg(png);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("node: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("node stdout is piped"));
        let (started_tx, started) = tokio::sync::mpsc::unbounded_channel();
        // Lines are read as they come so `STARTED` can be acted upon.
        let lines = tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut all = Vec::new();
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(kind) = line.strip_prefix("STARTED ") {
                    let _ = started_tx.send(kind.to_string());
                }
                all.push(line);
            }
            all
        });
        Player {
            child,
            lines,
            started,
        }
    }
}

/// A running `play.mjs`.
struct Player {
    child: tokio::process::Child,
    lines: tokio::task::JoinHandle<Vec<String>>,
    started: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Player {
    /// Wait until the next stream started playing; returns its type, or
    /// `None` when play.mjs ended first (its results then say why).
    async fn started(&mut self, limit: Duration) -> Option<String> {
        tokio::time::timeout(limit, self.started.recv())
            .await
            .unwrap_or_else(|_| panic!("no stream started playing within {limit:?}"))
    }

    /// Wait for the run to end (bounded) and return its `RESULT` lines.
    async fn finish(mut self) -> Vec<Value> {
        let status = tokio::time::timeout(Duration::from_secs(150), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the browser run took more than 150 s"))
            .unwrap_or_else(|e| panic!("node: {e}"));
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut stderr).await;
        }
        let stdout = self
            .lines
            .await
            .unwrap_or_else(|e| panic!("stdout reader: {e}"))
            .join("\n");
        eprintln!("{stdout}\n{stderr}");
        assert!(status.success(), "play.mjs failed:\n{stdout}\n{stderr}");
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// Copy the screenshots to `BROWSER_SHOTS_DIR` when it is set.
fn keep_shots(pngs: &[&Path]) {
    if let Some(keep) = std::env::var_os("BROWSER_SHOTS_DIR") {
        let keep = PathBuf::from(keep);
        let _ = std::fs::create_dir_all(&keep);
        for f in pngs {
            if let Some(name) = f.file_name() {
                let _ = std::fs::copy(f, keep.join(name));
            }
        }
    }
}

/// `engine` played the whole watch period: started, no fatal error,
/// `currentTime` advanced at least `min_advance` s, 640x360 video, and the
/// screenshot shows a picture.
fn check_played(r: &Value, engine: &str, png: &Path, min_advance: f64) {
    check_played_at(r, engine, png, min_advance, &[(640, 360)]);
}

/// [`check_played`] with the video size one of `sizes` (ABR: the player
/// picks a rendition).
fn check_played_at(r: &Value, engine: &str, png: &Path, min_advance: f64, sizes: &[(u64, u64)]) {
    assert_eq!(r["started"], true, "{engine} never started playing: {r}");
    assert!(
        r["engine"].as_str().is_some_and(|e| e.starts_with(engine)),
        "{r}"
    );
    assert!(r["fatal"].is_null(), "{engine} fatal error: {r}");
    let advanced = r["advanced_s"].as_f64().unwrap_or(0.0);
    assert!(
        advanced >= min_advance,
        "{engine}: currentTime advanced {advanced} s in {WATCH_S} s: {r}"
    );
    let wall = r["wall_s"].as_f64().unwrap_or(0.0);
    assert!(wall >= WATCH_S, "{engine} watched too briefly: {r}");
    let size = (
        r["width"].as_u64().unwrap_or(0),
        r["height"].as_u64().unwrap_or(0),
    );
    assert!(
        sizes.contains(&size),
        "{engine}: size {size:?} not in {sizes:?}: {r}"
    );
    // testsrc2 is colour bars and a gradient: far from uniform. A black (or
    // any single-colour) element has a deviation near 0.
    let (mean, dev, n) = gray_stats(png);
    assert!(n >= 640 * 360, "{engine} screenshot has {n} pixels");
    assert!(
        dev > 30.0 && mean > 20.0,
        "{engine} screenshot looks uniform: mean {mean:.1}, deviation {dev:.1}"
    );
    eprintln!(
        "{engine}: advanced {advanced:.2} s in {wall:.2} s, longest stall {} s, screenshot mean {mean:.1} deviation {dev:.1}",
        r["max_stall_s"]
    );
}

/// Longest stall hls.js may show across the switch. The hub sees the backup
/// within ~0.5 s (input timeout 0.5 s) and the player has segments buffered,
/// so a healthy player does not stall at all; a player that trips over the
/// discontinuity stalls for seconds or stops.
const MAX_FAILOVER_STALL_S: f64 = 1.5;
/// Watch period of the failover run: the player is ~3 segments behind the
/// live edge, so it reaches the switch ~6 s after it happened.
const FAILOVER_WATCH_S: f64 = 18.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_through_a_failover() {
    use common::failover::{FeedSpec, Feeder, free_udp_port};

    let browser = Browser::require();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = config(&dir.path().join("data"), "");
    c.publisher.hls.dir = dir.path().join("hls").display().to_string();
    c.manager.input_packet_timeout_sec = 0.5;
    c.manager.standby = "hot".into();
    let s = common::start(c).await;

    let feed = |tone| FeedSpec {
        size: "640x360",
        tone,
        video_seconds: 120,
        seconds: 120,
    };
    let (p0, p1) = (free_udp_port(), free_udp_port());
    let mut primary = Feeder::start(p0, feed(440));
    let _backup = Feeder::start(p1, feed(880));
    let body = json!({
        "inputs": [
            {"url": format!("udp://127.0.0.1:{p0}"), "priority": 0},
            {"url": format!("udp://127.0.0.1:{p1}"), "priority": 1}
        ],
        "protocols": {"hls": true}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/fo", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/fo/start", None).await.0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, pl) = status_of(&s, "/fo/index.m3u8").await;
        if st == 200 && pl.matches("#EXTINF:").count() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "HLS not ready: {st} {pl}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let png = dir.path().join("hls-failover.png");
    let mut player = browser.spawn(
        FAILOVER_WATCH_S,
        &[("hls", s.url("/fo/index.m3u8"), png.clone())],
    );
    if player.started(Duration::from_secs(60)).await.is_none() {
        let results = player.finish().await;
        panic!("hls.js never started playing: {results:?}");
    }
    // Let it play a while, then kill the primary mid-watch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    primary.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, st) = call(&s, Method::GET, "/streams/fo/status", None).await;
        let (_, pl) = status_of(&s, "/fo/index.m3u8").await;
        if st["data"]["active_input"] == 1 && pl.contains("#EXT-X-DISCONTINUITY\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failover marked in the playlist: {st}\n{pl}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let results = player.finish().await;
    assert_eq!(results.len(), 1);
    keep_shots(&[&png]);
    let r = &results[0];
    check_played(r, "hls.js", &png, MIN_ADVANCE_S);
    assert!(
        r["played_cc"].as_u64().is_some_and(|cc| cc >= 1),
        "hls.js did not play past the discontinuity within the watch: {r}"
    );
    let stall = r["max_stall_s"].as_f64().unwrap_or(f64::MAX);
    assert!(
        stall <= MAX_FAILOVER_STALL_S,
        "hls.js stalled {stall} s across the failover: {r}"
    );
    s.stop().await;
}
