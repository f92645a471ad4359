//! The transcoder end to end through the real server and the real FFmpeg:
//! an RTMP push becomes an ABR ladder (two renditions checked with ffprobe,
//! keyframes aligned, HLS master playlist), one FFmpeg killed with -9 is
//! restarted while the other keeps its pid, a hot reload of one profile
//! restarts only that process, an always-failing FFmpeg stops the stream
//! after `max_restarts`, the pool bound is reported, and killing the server
//! with -9 leaves no FFmpeg behind. DASH of a transcoded stream: one video
//! AdaptationSet with a Representation per rendition.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::{Kill, vector};
use common::{Server, call, config};
use reqwest::Method;
use serde_json::{Value, json};

fn tc_config(data: &Path, hls: &Path, max_workers: usize, max_restarts: u32) -> os_config::Config {
    let mut c = config(data, "");
    c.publisher.hls.dir = hls.display().to_string();
    c.publisher.dash.dir = hls.join("dash").display().to_string();
    c.publisher.hls.live_window = 4;
    c.transcoder.max_workers = max_workers;
    c.transcoder.max_restarts = max_restarts;
    c
}

async fn get_text(s: &Server, path: &str) -> Option<String> {
    let r = s.client.get(s.url(path)).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.text().await.ok()
}

async fn status(s: &Server, code: &str) -> Value {
    let (st, body) = call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
    assert_eq!(st, 200, "{body}");
    body.get("data").cloned().unwrap_or(body)
}

/// `(pid, state, restart_count)` per rendition from the status.
fn profiles(st: &Value) -> Vec<(Option<u64>, String, u64)> {
    st["transcoder"]["profiles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["pid"].as_u64(),
                        p["state"].as_str().unwrap_or("").to_string(),
                        p["restart_count"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_until<F>(what: &str, limit: Duration, mut f: F)
where
    F: AsyncFnMut() -> bool,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pid_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

/// Segment URIs of a media playlist.
fn segments(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn media_sequence(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Download the last `n` segments of `{code}/{track}` into one file.
async fn fetch_segments(s: &Server, code: &str, track: &str, n: usize, out: &Path) -> PathBuf {
    let text = get_text(s, &format!("/{code}/{track}/index.m3u8"))
        .await
        .unwrap_or_else(|| panic!("{track} playlist"));
    let segs = segments(&text);
    assert!(segs.len() >= n, "{text}");
    let mut bytes = Vec::new();
    for seg in &segs[segs.len() - n..] {
        let r = s
            .client
            .get(s.url(&format!("/{code}/{track}/{seg}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{seg}: {e}"));
        assert_eq!(r.status(), 200, "{track}/{seg}");
        bytes.extend_from_slice(&r.bytes().await.unwrap_or_default());
    }
    let path = out.join(format!("{track}.ts"));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    path
}

struct Probed {
    width: u64,
    height: u64,
    codec: String,
    /// Video bitrate from packet sizes over the packets' time span, bit/s.
    video_bps: f64,
    /// Keyframe presentation times, seconds.
    keyframes: Vec<f64>,
}

fn ffprobe(file: &Path) -> Probed {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe is required (apt-get install -y ffmpeg): {e}"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let stream = &v["streams"][0];
    let pk = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "packet=pts_time,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    let text = String::from_utf8_lossy(&pk.stdout);
    let (mut bytes, mut first, mut last, mut n) = (0u64, f64::MAX, f64::MIN, 0u64);
    let mut keyframes = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        let (Ok(pts), Ok(size)) = (f[0].parse::<f64>(), f[1].parse::<u64>()) else {
            continue;
        };
        bytes += size;
        n += 1;
        first = first.min(pts);
        last = last.max(pts);
        if f[2].starts_with('K') {
            keyframes.push(pts);
        }
    }
    assert!(n > 10, "few video packets in {}: {text}", file.display());
    let span = (last - first) * (n as f64) / ((n - 1) as f64);
    Probed {
        width: stream["width"].as_u64().unwrap_or(0),
        height: stream["height"].as_u64().unwrap_or(0),
        codec: stream["codec_name"].as_str().unwrap_or("").to_string(),
        video_bps: bytes as f64 * 8.0 / span,
        keyframes,
    }
}

/// Keyframe times (ms) of `a` and `b` over the span both cover; they must
/// be the same set (at least 2).
fn aligned_keyframes(a: &Probed, b: &Probed) -> BTreeSet<i64> {
    let lo = a.keyframes[0].max(b.keyframes[0]);
    let hi = a.keyframes[a.keyframes.len() - 1].min(b.keyframes[b.keyframes.len() - 1]);
    let in_range = |k: &Vec<f64>| -> BTreeSet<i64> {
        k.iter()
            .filter(|t| **t >= lo - 0.001 && **t <= hi + 0.001)
            .map(|t| (t * 1000.0).round() as i64)
            .collect()
    };
    let (k1, k2) = (in_range(&a.keyframes), in_range(&b.keyframes));
    assert!(
        k1.len() >= 2,
        "overlapping keyframes: {:?} / {:?}",
        a.keyframes,
        b.keyframes
    );
    assert_eq!(k1, k2, "keyframes aligned across renditions");
    k1
}

/// `#EXT-X-STREAM-INF` attributes and URI, per entry.
fn master_entries(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let attrs = l.strip_prefix("#EXT-X-STREAM-INF:")?;
            Some((attrs.to_string(), lines.get(i + 1)?.to_string()))
        })
        .collect()
}

fn attr(attrs: &str, name: &str) -> String {
    // CODECS is quoted and contains a comma.
    let key = format!("{name}=");
    let start = attrs
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing in {attrs}"))
        + key.len();
    let rest = &attrs[start..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next().unwrap_or("").to_string()
    } else {
        rest.split(',').next().unwrap_or("").to_string()
    }
}

fn ladder_body(rtmp_key: &str, second_bitrate: u32) -> Value {
    json!({
        "inputs": [{"url": format!("rtmp://0.0.0.0:1935/live/{rtmp_key}"), "priority": 0}],
        "protocols": {"hls": true, "rtmp": true},
        "transcoder": {
            "video": {"profiles": [
                {"width": 640, "height": 360, "bitrate": 800, "preset": "veryfast", "keyframe_interval": 2},
                {"width": 320, "height": 180, "bitrate": second_bitrate, "preset": "veryfast", "keyframe_interval": 2}
            ]},
            "audio": {"codec": "aac", "bitrate": 128}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_push_becomes_an_abr_ladder_with_crash_recovery_and_reload() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hls_dir = dir.path().join("hls");
    let app = open_streamer::App::bind(tc_config(&dir.path().join("data"), &hls_dir, 4, 3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app.rtmp_addr().unwrap_or_else(|| panic!("rtmp listener"));
    let s = common::serve(app);
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/abr",
        Some(ladder_body("abr", 300)),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = call(&s, Method::POST, "/streams/abr/start", None).await;
    assert_eq!(st, 200, "{body}");

    let ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args([
            "-t", "120", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M",
        ])
        .args(["-g", "50", "-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/abr"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    let _source = Kill(ffmpeg);

    // Master playlist with both renditions.
    let mut master = String::new();
    wait_until(
        "master playlist with two renditions",
        Duration::from_secs(40),
        async || {
            master = get_text(&s, "/abr/index.m3u8").await.unwrap_or_default();
            master_entries(&master).len() == 2
        },
    )
    .await;
    // Enough segments for a bitrate measurement (4 × 2 s per rendition).
    for track in ["track_1", "track_2"] {
        wait_until(
            &format!("{track} has 4 segments"),
            Duration::from_secs(40),
            async || {
                get_text(&s, &format!("/abr/{track}/index.m3u8"))
                    .await
                    .is_some_and(|t| segments(&t).len() >= 4)
            },
        )
        .await;
    }
    master = get_text(&s, "/abr/index.m3u8").await.unwrap_or_default();
    let entries = master_entries(&master);
    assert_eq!(entries.len(), 2, "{master}");
    for ((attrs, uri), (track, res, kbps)) in entries
        .iter()
        .zip([("track_1", "640x360", 800.0), ("track_2", "320x180", 300.0)])
    {
        assert_eq!(uri, &format!("{track}/index.m3u8"), "{master}");
        assert_eq!(attr(attrs, "RESOLUTION"), res, "{master}");
        let codecs = attr(attrs, "CODECS");
        assert!(
            codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
            "{master}"
        );
        assert_eq!(attr(attrs, "FRAME-RATE"), "25.000", "{master}");
        // Declared peak: video + audio target; measured can only raise it.
        let bw: f64 = attr(attrs, "BANDWIDTH").parse().unwrap_or(0.0);
        let avg: f64 = attr(attrs, "AVERAGE-BANDWIDTH").parse().unwrap_or(0.0);
        let target = (kbps + 128.0) * 1000.0;
        assert!(
            bw >= target && bw <= target * 1.6,
            "BANDWIDTH {bw} for {target}: {master}"
        );
        assert!(
            avg >= target * 0.8 && avg <= target * 1.25,
            "AVERAGE-BANDWIDTH {avg} for {target}: {master}"
        );
    }

    // Both renditions decode at the right size and bitrate.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p1 = ffprobe(&fetch_segments(&s, "abr", "track_1", 4, tmp.path()).await);
    let p2 = ffprobe(&fetch_segments(&s, "abr", "track_2", 4, tmp.path()).await);
    for (p, w, h, kbps) in [(&p1, 640, 360, 800.0), (&p2, 320, 180, 300.0)] {
        assert_eq!((p.codec.as_str(), p.width, p.height), ("h264", w, h));
        let ratio = p.video_bps / (kbps * 1000.0);
        eprintln!(
            "{w}x{h}: measured video {:.0} bit/s (target {kbps} kbit/s, ×{ratio:.3})",
            p.video_bps
        );
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{w}x{h}: video {:.0} bit/s for a {kbps} kbit/s target (×{ratio:.2})",
            p.video_bps
        );
    }
    // Keyframes at the same presentation times in both renditions.
    let k1 = aligned_keyframes(&p1, &p2);
    eprintln!("aligned keyframes (ms): {k1:?}\nmaster:\n{master}");

    // RTMP/SRT play and push-out read the main buffer, which carries the
    // first rendition.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rw_timeout",
            "10000000",
            "-select_streams",
            "v:0",
        ])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(format!("rtmp://{rtmp}/live/abr"))
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "640,360",
        "RTMP play serves track_1: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Status: one process per rendition, both running.
    let st = status(&s, "abr").await;
    let before = profiles(&st);
    assert_eq!(before.len(), 2, "{st}");
    assert!(
        before
            .iter()
            .all(|(pid, state, _)| pid.is_some() && state == "running"),
        "{st}"
    );
    assert_eq!(st["transcoder"]["profiles"][1]["track"], "track_2");
    let (pid1, pid2) = (before[0].0.unwrap_or(0), before[1].0.unwrap_or(0));
    assert_ne!(pid1, pid2);

    // kill -9 track_1's FFmpeg: restarted, its rendition resumes, track_2
    // keeps its process.
    let seq_before = media_sequence(
        &get_text(&s, "/abr/track_1/index.m3u8")
            .await
            .unwrap_or_default(),
    );
    assert!(
        Command::new("kill")
            .args(["-9", &pid1.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    );
    let mut now = Vec::new();
    wait_until("track_1 restarted", Duration::from_secs(30), async || {
        now = profiles(&status(&s, "abr").await);
        now[0].0.is_some_and(|p| p != pid1) && now[0].1 == "running"
    })
    .await;
    assert_eq!(now[0].2, 1, "one restart counted: {now:?}");
    assert_eq!(
        now[1],
        (Some(pid2), "running".to_string(), 0),
        "track_2 untouched"
    );
    assert!(!pid_alive(pid1));
    wait_until(
        "track_1 segments resume",
        Duration::from_secs(30),
        async || {
            let t = get_text(&s, "/abr/track_1/index.m3u8")
                .await
                .unwrap_or_default();
            media_sequence(&t) >= seq_before + 4
        },
    )
    .await;
    // The restarted process keeps the keyframe schedule of the other (its
    // very first frame is an extra keyframe, in a segment after an
    // EXT-X-DISCONTINUITY; the last two segments are past it).
    let tmp2 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r1 = ffprobe(&fetch_segments(&s, "abr", "track_1", 2, tmp2.path()).await);
    let r2 = ffprobe(&fetch_segments(&s, "abr", "track_2", 2, tmp2.path()).await);
    let after = aligned_keyframes(&r1, &r2);
    eprintln!("aligned keyframes after the restart (ms): {after:?}");
    let st = status(&s, "abr").await;
    assert!(
        st["transcoder"]["profiles"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("FFmpeg exited")),
        "{st}"
    );

    // Hot reload of profile 2 only: track_2 gets a new process, track_1
    // keeps its pid.
    let pid1 = now[0].0.unwrap_or(0);
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/abr",
        Some(ladder_body("abr", 250)),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let reload = &body["reload"];
    let has = |k: &str, v: &str| {
        reload[k]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == v))
    };
    assert!(has("restarted", "transcoder:track_2"), "{body}");
    assert!(
        has("kept", "transcoder:track_1") && has("kept", "hls"),
        "{body}"
    );
    wait_until(
        "track_2 running again",
        Duration::from_secs(30),
        async || {
            now = profiles(&status(&s, "abr").await);
            now[1].1 == "running"
        },
    )
    .await;
    assert_eq!(now[0].0, Some(pid1), "track_1 not restarted by the reload");
    assert!(
        now[1].0.is_some_and(|p| p != pid2),
        "track_2 restarted: {now:?}"
    );
    assert!(!pid_alive(pid2));

    // Stopping the stream ends every FFmpeg.
    let pids: Vec<u64> = now.iter().filter_map(|p| p.0).collect();
    let (st, _) = call(&s, Method::POST, "/streams/abr/stop", None).await;
    assert_eq!(st, 200);
    wait_until(
        "FFmpeg processes gone after stop",
        Duration::from_secs(10),
        async || pids.iter().all(|p| !pid_alive(*p)),
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_ffmpeg_stops_the_stream_and_the_pool_is_bounded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = open_streamer::App::bind(tc_config(
        &dir.path().join("data"),
        &dir.path().join("hls"),
        1,
        2,
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut events = app.events().subscribe("test", 256);
    let s = common::serve(app);
    let file = format!("file://{}?loop=true", vector("h264_aac.ts").display());

    // Bad encoder settings: libx265 refuses profile "high" on every start
    // (the API already rejects unknown preset names, so this is the
    // always-failing FFmpeg a valid config can produce).
    let body = json!({
        "inputs": [{"url": file, "priority": 0}],
        "transcoder": {"video": {"profiles": [
            {"width": 160, "height": 120, "bitrate": 200, "codec": "h265", "profile": "high"}
        ]}}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/bad", Some(body)).await.0,
        201
    );
    let (st, body) = call(&s, Method::POST, "/streams/bad/start", None).await;
    assert_eq!(st, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut crashes = 0;
    let fatal = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no fatal transcoder.error within 60 s"))
            .unwrap_or_else(|| panic!("bus closed"));
        let v = serde_json::to_value(&*ev).unwrap_or(Value::Null);
        if v["type"] == "transcoder.error" && v["stream_code"] == "bad" {
            if v["data"]["fatal"] == true {
                break v;
            }
            crashes += 1;
            assert_eq!(v["data"]["reason"], "crash", "{v}");
            assert_eq!(v["data"]["profile"], "track_1", "{v}");
        }
    };
    assert_eq!(crashes, 2, "max_restarts = 2 restarts before giving up");
    assert_eq!(fatal["data"]["reason"], "max_restarts");
    let stderr = fatal["data"]["stderr"].to_string();
    assert!(
        stderr.contains("high"),
        "last stderr lines name the cause: {fatal}"
    );
    let mut st = Value::Null;
    wait_until("stream stopped", Duration::from_secs(10), async || {
        st = status(&s, "bad").await;
        st["status"] == "stopped" && st["desired"] == "stopped"
    })
    .await;
    assert_eq!(st["transcoder"]["profiles"][0]["state"], "failed", "{st}");

    // Pool of one FFmpeg server-wide: a two-rendition stream gets one slot;
    // the other rendition is reported, with an event, instead of waiting.
    let body = json!({
        "inputs": [{"url": file, "priority": 0}],
        "transcoder": {"video": {"profiles": [
            {"width": 160, "height": 120, "bitrate": 200, "preset": "ultrafast"},
            {"width": 96, "height": 72, "bitrate": 100, "preset": "ultrafast"}
        ]}}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/two", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/two/start", None).await.0,
        200
    );
    let ev = loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no pool_exhausted event"))
            .unwrap_or_else(|| panic!("bus closed"));
        let v = serde_json::to_value(&*ev).unwrap_or(Value::Null);
        if v["type"] == "transcoder.error" && v["stream_code"] == "two" {
            break v;
        }
    };
    assert_eq!(ev["data"]["reason"], "pool_exhausted", "{ev}");
    let st = status(&s, "two").await;
    let msgs = st["transcoder"]["profiles"].to_string();
    assert!(msgs.contains("transcoder.max_workers"), "{st}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_hardware_backend_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = common::start(tc_config(
        &dir.path().join("data"),
        &dir.path().join("hls"),
        2,
        2,
    ))
    .await;
    let (st, cfg) = call(&s, Method::GET, "/config", None).await;
    assert_eq!(st, 200);
    let accels = cfg["data"]["hw_accels"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(accels.iter().any(|a| a == "none"), "{cfg}");
    assert!(
        cfg["data"]["transcoder"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("ffmpeg version"))
    );
    // VideoToolbox never exists on this (Linux) host.
    let body = json!({
        "inputs": [{"url": "udp://127.0.0.1:5999", "priority": 0}],
        "transcoder": {"global": {"hw_accel": "videotoolbox"},
                       "video": {"profiles": [{"width": 640, "height": 360, "bitrate": 800}]}}
    });
    // Saving is fine (the config may be meant for another host) …
    let (st, err) = call(&s, Method::PUT, "/streams/vt", Some(body)).await;
    assert_eq!(st, 201, "{err}");
    // … starting it here is refused, naming the backend.
    let (st, err) = call(&s, Method::POST, "/streams/vt/start", None).await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["error"]["code"], "TRANSCODER_UNAVAILABLE");
    let msg = err["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("\"videotoolbox\"") && msg.contains("not available"),
        "{msg}"
    );
    s.stop().await;
}

/// `kill -9` of the server: its FFmpeg children read our stdin pipe, see
/// end of input and exit on their own — no orphans keep encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_children_exit_when_the_server_is_killed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Command::new(env!("CARGO_BIN_EXE_open-streamer"))
        .current_dir(dir.path())
        .env(
            "OPEN_STREAMER_SERVER_HTTP_ADDR",
            format!("127.0.0.1:{port}"),
        )
        .env("OPEN_STREAMER_STORAGE_JSON_DIR", dir.path().join("data"))
        .env("OPEN_STREAMER_PUBLISHER_HLS_DIR", dir.path().join("hls"))
        .env("OPEN_STREAMER_PUBLISHER_DASH_DIR", dir.path().join("dash"))
        .env("OPEN_STREAMER_METRICS_ADDR", "")
        .env("OPEN_STREAMER_LISTENERS_RTMP_LISTEN_HOST", "127.0.0.1")
        .env("OPEN_STREAMER_LISTENERS_RTMP_PORT", "0")
        .env("OPEN_STREAMER_LISTENERS_SRT_LISTEN_HOST", "127.0.0.1")
        .env("OPEN_STREAMER_LISTENERS_SRT_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn server: {e}"));
    let mut server = Kill(server);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until("server healthy", Duration::from_secs(20), async || {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let file = format!("file://{}?loop=true", vector("h264_aac.ts").display());
    let body = json!({
        "inputs": [{"url": file, "priority": 0}],
        "protocols": {"hls": true},
        "transcoder": {"video": {"profiles": [
            {"width": 160, "height": 120, "bitrate": 200, "preset": "ultrafast"},
            {"width": 96, "height": 72, "bitrate": 100, "preset": "ultrafast"}
        ]}}
    });
    let put = client
        .put(format!("{base}/streams/k"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(put.status(), 201);
    let start = client
        .post(format!("{base}/streams/k/start"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(start.status(), 200);
    let mut pids = Vec::new();
    wait_until(
        "two FFmpeg processes running",
        Duration::from_secs(30),
        async || {
            let Ok(r) = client.get(format!("{base}/streams/k/status")).send().await else {
                return false;
            };
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let p = profiles(v.get("data").unwrap_or(&v));
            pids = p
                .iter()
                .filter_map(|(pid, state, _)| pid.filter(|_| state == "running"))
                .collect();
            pids.len() == 2
        },
    )
    .await;
    assert!(pids.iter().all(|p| pid_alive(*p)));
    assert!(
        Command::new("kill")
            .args(["-9", &server.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    );
    let _ = server.0.wait();
    wait_until(
        "FFmpeg children gone after kill -9 of the server",
        Duration::from_secs(10),
        async || pids.iter().all(|p| !pid_alive(*p)),
    )
    .await;
}

/// Failover upstream does not restart FFmpeg: the input manager keeps
/// `$raw$<code>` continuous, the process just keeps reading and the
/// rendition keeps growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_upstream_keeps_the_ffmpeg_processes() {
    use common::failover::{FeedSpec, Feeder, free_udp_port};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = tc_config(&dir.path().join("data"), &dir.path().join("hls"), 4, 3);
    c.manager.input_packet_timeout_sec = 1.0;
    let s = common::start(c).await;
    let (p0, p1) = (free_udp_port(), free_udp_port());
    let spec = FeedSpec {
        size: "640x360",
        tone: 1000,
        video_seconds: 120,
        seconds: 120,
    };
    let mut primary = Feeder::start(p0, spec);
    let _backup = Feeder::start(p1, spec);
    let body = json!({
        "inputs": [
            {"url": format!("udp://127.0.0.1:{p0}"), "priority": 0},
            {"url": format!("udp://127.0.0.1:{p1}"), "priority": 1}
        ],
        "protocols": {"hls": true},
        "transcoder": {"video": {"profiles": [
            {"width": 320, "height": 180, "bitrate": 300, "preset": "ultrafast"}
        ]}}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/fo", Some(body)).await.0,
        201
    );
    assert_eq!(
        call(&s, Method::POST, "/streams/fo/start", None).await.0,
        200
    );
    let mut before = Vec::new();
    wait_until(
        "FFmpeg running on the primary",
        Duration::from_secs(30),
        async || {
            let st = status(&s, "fo").await;
            before = profiles(&st);
            st["active_input"] == 0 && before.first().is_some_and(|p| p.1 == "running")
        },
    )
    .await;
    let seq = media_sequence(
        &get_text(&s, "/fo/track_1/index.m3u8")
            .await
            .unwrap_or_default(),
    );
    primary.kill();
    wait_until(
        "failover to the backup",
        Duration::from_secs(20),
        async || status(&s, "fo").await["active_input"] == 1,
    )
    .await;
    wait_until(
        "rendition keeps growing after the failover",
        Duration::from_secs(30),
        async || {
            let t = get_text(&s, "/fo/track_1/index.m3u8")
                .await
                .unwrap_or_default();
            media_sequence(&t) >= seq + 4
        },
    )
    .await;
    let after = profiles(&status(&s, "fo").await);
    assert_eq!(
        after, before,
        "same FFmpeg process, no restart: {before:?} → {after:?}"
    );
    s.stop().await;
}

/// One `<Representation>` of a DASH MPD with its own `SegmentTemplate`.
#[derive(Debug)]
struct DashRep {
    id: String,
    bandwidth: u64,
    codecs: String,
    width: u64,
    height: u64,
    init: String,
    /// (name, t, d) per listed segment.
    segments: Vec<(String, u64, u64)>,
}

/// Value of `name` in the first `<tag ...>` element of `xml`.
fn xml_attr(xml: &str, tag: &str, name: &str) -> Option<String> {
    let el = &xml[xml.find(&format!("<{tag} "))?..];
    let el = &el[..el.find('>')?];
    let key = format!(" {name}=\"");
    let v = &el[el.find(&key)? + key.len()..];
    Some(v[..v.find('"')?].to_string())
}

/// `(contentType, representations)` per adaptation set of the last Period;
/// a representation without a template of its own uses the set's.
fn dash_sets(xml: &str) -> Vec<(String, Vec<DashRep>)> {
    let period = xml.rsplit("<Period ").next().unwrap_or("");
    let mut sets = Vec::new();
    for set in period.split("<AdaptationSet ").skip(1) {
        let set = format!("<AdaptationSet {set}");
        let set = &set[..set.find("</AdaptationSet>").unwrap_or(set.len())];
        let ct = xml_attr(set, "AdaptationSet", "contentType").unwrap_or_default();
        let head = &set[..set.find("<Representation ").unwrap_or(set.len())];
        let mut reps = Vec::new();
        for rep in set.split("<Representation ").skip(1) {
            let rep = format!("<Representation {rep}");
            let tpl = if rep.contains("<SegmentTemplate ") {
                rep.as_str()
            } else {
                head
            };
            let get = |tag: &str, a: &str, src: &str| {
                xml_attr(src, tag, a).unwrap_or_else(|| panic!("{tag}@{a} missing: {set}"))
            };
            let id = get("Representation", "id", &rep);
            let number =
                |a: &str, src: &str| -> u64 { get("Representation", a, src).parse().unwrap_or(0) };
            let start: u64 = get("SegmentTemplate", "startNumber", tpl)
                .parse()
                .unwrap_or(0);
            let media = get("SegmentTemplate", "media", tpl).replace("$RepresentationID$", &id);
            let mut segments = Vec::new();
            for s in tpl.split("<S ").skip(1) {
                let s = format!("<S {s}");
                let n = |a: &str| xml_attr(&s, "S", a).and_then(|v| v.parse::<u64>().ok());
                let (Some(mut t), Some(d)) = (n("t"), n("d")) else {
                    panic!("S without t/d: {set}");
                };
                for _ in 0..=n("r").unwrap_or(0) {
                    let number = start + segments.len() as u64;
                    segments.push((media.replace("$Number$", &number.to_string()), t, d));
                    t += d;
                }
            }
            reps.push(DashRep {
                bandwidth: number("bandwidth", &rep),
                codecs: get("Representation", "codecs", &rep),
                width: xml_attr(&rep, "Representation", "width")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                height: xml_attr(&rep, "Representation", "height")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                init: get("SegmentTemplate", "initialization", tpl)
                    .replace("$RepresentationID$", &id),
                segments,
                id,
            });
        }
        sets.push((ct, reps));
    }
    sets
}

/// Init segment + the last `n` listed segments of `rep`, fetched over HTTP
/// into one file.
async fn fetch_dash(s: &Server, code: &str, rep: &DashRep, n: usize, out: &Path) -> PathBuf {
    assert!(rep.segments.len() >= n, "{rep:?}");
    let mut names = vec![rep.init.clone()];
    names.extend(
        rep.segments[rep.segments.len() - n..]
            .iter()
            .map(|s| s.0.clone()),
    );
    let mut bytes = Vec::new();
    for name in &names {
        let r = s
            .client
            .get(s.url(&format!("/{code}/{name}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status(), 200, "{name}");
        bytes.extend_from_slice(&r.bytes().await.unwrap_or_default());
    }
    let path = out.join(format!("{}.mp4", rep.id));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// DASH of a transcoded stream: one video AdaptationSet with a
/// Representation per rendition (sizes, codecs and bandwidth of each, time
/// lines on one clock), one audio AdaptationSet; ffprobe reads the MPD over
/// HTTP and decodes each representation's init + segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcoded_stream_dash_lists_every_rendition_in_one_video_set() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = open_streamer::App::bind(tc_config(
        &dir.path().join("data"),
        &dir.path().join("hls"),
        4,
        3,
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app.rtmp_addr().unwrap_or_else(|| panic!("rtmp listener"));
    let s = common::serve(app);
    let mut body = ladder_body("abrdash", 300);
    body["protocols"] = json!({"dash": true});
    let (st, body) = call(&s, Method::PUT, "/streams/abrdash", Some(body)).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = call(&s, Method::POST, "/streams/abrdash/start", None).await;
    assert_eq!(st, 200, "{body}");
    let ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args([
            "-t", "90", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1M",
        ])
        .args(["-g", "50", "-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/abrdash"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    let _source = Kill(ffmpeg);

    // Both renditions with 4 segments (a bandwidth worth measuring).
    let mut mpd = String::new();
    wait_until(
        "MPD with two video representations of 4 segments",
        Duration::from_secs(60),
        async || {
            mpd = get_text(&s, "/abrdash/index.mpd").await.unwrap_or_default();
            let sets = dash_sets(&mpd);
            sets.first().is_some_and(|(_, reps)| {
                reps.len() == 2 && reps.iter().all(|r| r.segments.len() >= 4)
            })
        },
    )
    .await;
    eprintln!("ABR MPD:\n{mpd}");
    let sets = dash_sets(&mpd);
    assert_eq!(sets.len(), 2, "one video and one audio set: {mpd}");
    assert_eq!(sets[0].0, "video", "{mpd}");
    assert_eq!(sets[1].0, "audio", "{mpd}");
    let (video, audio) = (&sets[0].1, &sets[1].1);
    assert_eq!(audio.len(), 1, "{mpd}");
    assert_eq!(audio[0].codecs, "mp4a.40.2", "{mpd}");
    assert!(audio[0].segments.len() >= 2, "{mpd}");
    for (rep, (w, h, kbps)) in video.iter().zip([(640, 360, 800.0), (320, 180, 300.0)]) {
        assert_eq!((rep.width, rep.height), (w, h), "{mpd}");
        assert!(rep.codecs.starts_with("avc1."), "{mpd}");
        // Measured from the listed segments (video only).
        let ratio = rep.bandwidth as f64 / (kbps * 1000.0);
        assert!(
            (0.7..=1.5).contains(&ratio),
            "{w}x{h}: bandwidth {} for {kbps} kbit/s (×{ratio:.2}): {mpd}",
            rep.bandwidth
        );
    }
    assert_ne!(video[0].id, video[1].id);
    // One clock: the renditions' segments start and end at the same times.
    let times =
        |r: &DashRep| -> BTreeSet<(u64, u64)> { r.segments.iter().map(|s| (s.1, s.2)).collect() };
    let common = times(&video[0]).intersection(&times(&video[1])).count();
    assert!(common >= 3, "aligned segments ({common}): {mpd}");

    // ffprobe reads the live MPD over HTTP: two video streams and audio.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=index,codec_name,width",
        ])
        .args(["-of", "csv=p=0"])
        .arg(s.url("/abrdash/index.mpd"))
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    // Streams are listed once per program too.
    let streams: BTreeSet<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        streams.iter().any(|l| l.ends_with("h264,640"))
            && streams.iter().any(|l| l.ends_with("h264,320"))
            && streams.iter().any(|l| l.contains("aac")),
        "ffprobe on the ABR MPD: {streams:?} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each representation's init + segments decode at its size.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (rep, (w, h)) in video.iter().zip([(640, 360), (320, 180)]) {
        let p = ffprobe(&fetch_dash(&s, "abrdash", rep, 2, tmp.path()).await);
        assert_eq!(
            (p.codec.as_str(), p.width, p.height),
            ("h264", w, h),
            "{}",
            rep.id
        );
    }
    s.stop().await;
}
