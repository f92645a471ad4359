//! Hot reload through `PUT /streams/{code}` on a running stream, one test
//! per row of the reload table: only the component a change concerns is
//! touched. "Untouched" is checked from the outside: a hub reader of the
//! stream stays connected, the HLS media sequence keeps rising, the input
//! manager records no switch and the inputs no reconnect; the response's
//! `reload` report says what was restarted and what was kept.
//!
//! Needs the Debian package `ffmpeg` (UDP feeders).

mod common;
#[path = "common/rtmp_player.rs"]
mod rtmp_player;

use std::time::{Duration, Instant};

use common::failover::{FeedSpec, Feeder, Watch, free_udp_port};
use open_streamer::App;
use reqwest::Method;
use serde_json::{Value, json};

const FEED: FeedSpec<'static> = FeedSpec {
    size: "320x240",
    tone: 800,
    video_seconds: 120,
    seconds: 120,
};

struct Rig {
    _dir: tempfile::TempDir,
    s: common::Server,
    hub: std::sync::Arc<os_hub::Hub>,
    rtmp: std::net::SocketAddr,
    _feeders: Vec<Feeder>,
    ports: Vec<u16>,
}

async fn rig(feeds: usize) -> Rig {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.publisher.hls.dir = dir.path().join("hls").display().to_string();
    c.publisher.hls.segment_duration = 1.0;
    c.manager.input_packet_timeout_sec = 1.0;
    c.manager.standby = "hot".into();
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let hub = app.hub();
    let rtmp = app.rtmp_addr().unwrap_or_else(|| panic!("rtmp listener"));
    let s = common::serve(app);
    let ports: Vec<u16> = (0..feeds).map(|_| free_udp_port()).collect();
    let feeders = ports.iter().map(|p| Feeder::start(*p, FEED)).collect();
    Rig {
        _dir: dir,
        s,
        hub,
        rtmp,
        _feeders: feeders,
        ports,
    }
}

fn input(port: u16, priority: u32) -> Value {
    json!({"url": format!("udp://127.0.0.1:{port}"), "priority": priority})
}

async fn put(s: &common::Server, code: &str, body: Value) -> (u16, Value) {
    common::call(s, Method::PUT, &format!("/streams/{code}"), Some(body)).await
}

async fn status(s: &common::Server, code: &str) -> Value {
    common::call(s, Method::GET, &format!("/streams/{code}/status"), None)
        .await
        .1["data"]
        .clone()
}

async fn wait_active(s: &common::Server, code: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = status(s, code).await;
        if st["status"] == "active" {
            return st;
        }
        assert!(Instant::now() < deadline, "stream never active: {st:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sequence number of the newest segment of the live playlist.
async fn media_sequence(s: &common::Server, code: &str) -> Option<u64> {
    let resp = s
        .client
        .get(s.url(&format!("/{code}/index.m3u8")))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let text = resp.text().await.ok()?;
    let first: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())?;
    let segments = text.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64;
    // Sequence number of the newest segment.
    (segments > 0).then(|| first + segments - 1)
}

/// Wait for a playlist with at least two segments; returns its sequence.
async fn wait_playlist(s: &common::Server, code: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(seq) = media_sequence(s, code).await {
            return seq;
        }
        assert!(Instant::now() < deadline, "no HLS playlist");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Start a stream with HLS on input 0 (and input 1 as a hot backup when
/// given), wait until it plays, and attach a hub reader.
async fn running(r: &Rig, code: &str, inputs: Vec<Value>) -> (Value, Watch) {
    let body = json!({"code": code, "inputs": inputs, "protocols": {"hls": true}});
    let (st, b) = put(&r.s, code, body.clone()).await;
    assert_eq!(st, 201, "{b}");
    assert!(
        b.get("reload").is_none(),
        "a stopped stream has no reload report"
    );
    let (st, b) = common::call(&r.s, Method::POST, &format!("/streams/{code}/start"), None).await;
    assert_eq!(st, 200, "{b}");
    let watch = Watch::start(r.hub.clone(), code);
    wait_active(&r.s, code).await;
    wait_playlist(&r.s, code).await;
    (body, watch)
}

/// The pipeline outside the changed component kept going: the reader is
/// still connected and receiving, HLS keeps counting up from `seq_before`,
/// no input switch or reconnect happened.
async fn untouched(r: &Rig, code: &str, watch: &Watch, seq_before: u64, switches_before: usize) {
    let seen = watch.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!watch.closed(), "the stream buffer was replaced");
    assert!(watch.len() > seen, "the hub reader stopped receiving");
    let seq = media_sequence(&r.s, code).await.unwrap_or(0);
    assert!(
        seq > seq_before,
        "HLS media sequence {seq_before} → {seq}: HLS restarted or stalled"
    );
    let st = status(&r.s, code).await;
    assert_eq!(
        st["switches"].as_array().map_or(0, Vec::len),
        switches_before,
        "unexpected input switch: {st:#}"
    );
    assert_eq!(st["inputs"][0]["reconnects"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_changes_touch_only_the_manager() {
    let r = rig(2).await;
    let (mut body, watch) = running(&r, "ri", vec![input(r.ports[0], 0)]).await;
    let seq = wait_playlist(&r.s, "ri").await;
    // Add a backup input.
    body["inputs"] = json!([input(r.ports[0], 0), input(r.ports[1], 1)]);
    let (st, b) = put(&r.s, "ri", body.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["inputs"]));
    assert_eq!(b["reload"]["kept"], json!(["hls"]));
    untouched(&r, "ri", &watch, seq, 1).await;
    let st = status(&r.s, "ri").await;
    assert_eq!(st["inputs"][1]["status"], "standby", "{st:#}");

    // Remove the active input: the manager fails over to the backup
    // (input_removed); HLS and the reader go on.
    let seq = wait_playlist(&r.s, "ri").await;
    body["inputs"] = json!([input(r.ports[1], 1)]);
    let (st, b) = put(&r.s, "ri", body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["inputs"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = status(&r.s, "ri").await;
        if st["active_input"] == 1 {
            let last = &st["switches"][1];
            assert_eq!(last["reason"], "input_removed", "{st:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failover after removal: {st:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!watch.closed());
    let seq_after = media_sequence(&r.s, "ri").await.unwrap_or(0);
    assert!(seq_after > seq, "HLS restarted: {seq} → {seq_after}");
    watch
        .check_continuous(2 * 3600, 90_000 / 4)
        .unwrap_or_else(|e| panic!("timeline broken by the input change: {e}"));
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toggling_hls_touches_only_hls() {
    let r = rig(1).await;
    let (mut body, watch) = running(&r, "rh", vec![input(r.ports[0], 0)]).await;
    body["protocols"]["hls"] = json!(false);
    let (st, b) = put(&r.s, "rh", body.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["hls"]));
    assert_eq!(b["reload"]["kept"], json!(["inputs"]));
    assert!(
        media_sequence(&r.s, "rh").await.is_none(),
        "HLS still served"
    );
    body["protocols"]["hls"] = json!(true);
    let (st, b) = put(&r.s, "rh", body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["hls"]));
    wait_playlist(&r.s, "rh").await;
    let seen = watch.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !watch.closed() && watch.len() > seen,
        "the reader was disturbed"
    );
    let st = status(&r.s, "rh").await;
    assert_eq!(st["switches"].as_array().map_or(0, Vec::len), 1);
    assert_eq!(st["inputs"][0]["reconnects"], 0);
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_dvr_and_metadata_changes_leave_the_pipeline_running() {
    let r = rig(1).await;
    let (mut body, watch) = running(&r, "rp", vec![input(r.ports[0], 0)]).await;
    let seq = wait_playlist(&r.s, "rp").await;
    body["name"] = json!("renamed");
    let (st, b) = put(&r.s, "rp", body.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!([]));
    body["push"] = json!([{"url": "rtmp://127.0.0.1:1/live/x", "enabled": true}]);
    let (st, b) = put(&r.s, "rp", body.clone()).await;
    assert_eq!(st, 200, "{b}");
    // Only the new push task starts.
    assert_eq!(
        b["reload"]["restarted"],
        json!(["push:rtmp://127.0.0.1:1/live/x"])
    );
    assert_eq!(b["reload"]["kept"], json!(["inputs", "hls"]));
    assert!(b["reload"].get("deferred").is_none(), "{b}");
    let dvr_root = r._dir.path().join("dvr");
    body["dvr"] = json!({"enabled": true, "segment_duration": 1, "storage_path": dvr_root.display().to_string()});
    let (st, b) = put(&r.s, "rp", body.clone()).await;
    assert_eq!(st, 200, "{b}");
    // Only the recorder starts; the push task keeps running.
    assert_eq!(b["reload"]["restarted"], json!(["dvr"]));
    assert!(b["reload"].get("deferred").is_none(), "{b}");
    assert_eq!(
        b["reload"]["kept"],
        json!(["inputs", "hls", "push:rtmp://127.0.0.1:1/live/x"])
    );
    untouched(&r, "rp", &watch, seq, 1).await;
    let st = status(&r.s, "rp").await;
    assert_eq!(st["dvr"]["state"], "recording", "{st:#}");
    assert!(st["dvr"]["segments"].as_u64().unwrap_or(0) >= 1, "{st:#}");
    assert!(dvr_root.join("rp").join("000000.ts").is_file());
    // Switched off: only the recorder stops; its playlist becomes VOD.
    body["dvr"]["enabled"] = json!(false);
    let seq = media_sequence(&r.s, "rp").await.unwrap_or(0);
    let (st, b) = put(&r.s, "rp", body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["dvr"]));
    assert_eq!(
        b["reload"]["kept"],
        json!(["inputs", "hls", "push:rtmp://127.0.0.1:1/live/x"])
    );
    let pl = std::fs::read_to_string(dvr_root.join("rp").join("playlist.m3u8"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pl.ends_with("#EXT-X-ENDLIST\n"), "{pl}");
    assert!(status(&r.s, "rp").await.get("dvr").is_none());
    untouched(&r, "rp", &watch, seq, 1).await;
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcoder_added_rebuilds_and_disabled_stops() {
    let r = rig(1).await;
    let (mut body, watch) = running(&r, "rt", vec![input(r.ports[0], 0)]).await;
    body["transcoder"] =
        json!({"video": {"profiles": [{"width": 320, "height": 240, "bitrate": 300}]}});
    let (st, b) = put(&r.s, "rt", body.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["stream"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watch.closed() {
        assert!(
            Instant::now() < deadline,
            "the old pipeline was not torn down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_active(&r.s, "rt").await;
    body["disabled"] = json!(true);
    let (st, b) = put(&r.s, "rt", body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["stream"]));
    let st = status(&r.s, "rt").await;
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["desired"], "stopped");
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_conflicting_updates_leave_the_old_config_running() {
    let r = rig(1).await;
    let (body, watch) = running(&r, "rv", vec![input(r.ports[0], 0)]).await;
    let seq = wait_playlist(&r.s, "rv").await;
    // Invalid: unsupported scheme.
    let mut bad = body.clone();
    bad["inputs"] = json!([{"url": "ftp://x/y", "priority": 0}]);
    let (st, b) = put(&r.s, "rv", bad).await;
    assert_eq!(st, 400, "{b}");
    // Conflict: a push key another running stream holds.
    let (st, b) = put(
        &r.s,
        "holder",
        json!({"code": "holder", "inputs": [{"url": "rtmp://0.0.0.0:1935/live/shared", "priority": 0}]}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = common::call(&r.s, Method::POST, "/streams/holder/start", None).await;
    assert_eq!(st, 200, "{b}");
    // The key is registered once the holder's input runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut taken = body.clone();
    taken["inputs"] =
        json!([input(r.ports[0], 0), {"url": "rtmp://0.0.0.0:1935/live/shared", "priority": 1}]);
    let (st, b) = put(&r.s, "rv", taken).await;
    assert_eq!(st, 409, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("shared")),
        "{b}"
    );
    // The old config is still stored and running.
    let (_, stored) = common::call(&r.s, Method::GET, "/streams/rv", None).await;
    assert_eq!(stored["data"]["inputs"].as_array().map_or(0, Vec::len), 1);
    untouched(&r, "rv", &watch, seq, 1).await;
    r.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toggling_rtmp_play_touches_only_its_players() {
    let r = rig(1).await;
    let (mut body, watch) = running(&r, "rr", vec![input(r.ports[0], 0)]).await;
    let seq = wait_playlist(&r.s, "rr").await;
    // Not played over RTMP yet: refused.
    let refused = rtmp_player::play(
        r.rtmp,
        "live",
        "rr",
        tokio_util::sync::CancellationToken::new(),
        None,
    )
    .await;
    assert!(!refused.accepted && refused.video.is_empty(), "{refused:?}");

    body["protocols"]["rtmp"] = json!(true);
    let (st, b) = put(&r.s, "rr", body.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["rtmp"]));
    assert_eq!(b["reload"]["kept"], json!(["inputs", "hls"]));
    let stop = tokio_util::sync::CancellationToken::new();
    let player = tokio::spawn(rtmp_player::play(r.rtmp, "live", "rr", stop.clone(), None));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Off again: the player is disconnected, nothing else moves.
    body["protocols"]["rtmp"] = json!(false);
    let (st, b) = put(&r.s, "rr", body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["rtmp"]));
    let played = tokio::time::timeout(Duration::from_secs(5), player)
        .await
        .unwrap_or_else(|_| panic!("the RTMP player was not disconnected"))
        .unwrap_or_else(|e| panic!("{e}"));
    stop.cancel();
    assert!(played.accepted, "{}", played.end);
    assert!(played.video.len() > 25, "{} frames", played.video.len());
    untouched(&r, "rr", &watch, seq, 1).await;
    r.s.stop().await;
}
