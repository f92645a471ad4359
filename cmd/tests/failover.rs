//! Input failover through the real server, with real ffmpeg feeders over
//! UDP: a hot backup takes over when the primary dies and gives way again
//! when it is back (on a keyframe), a primary that never connects gives way
//! after its timeout, a lost video track is detected, manual activation
//! works and is refused for a degraded input. Every scenario checks the
//! stream's timeline as a hub reader sees it.
//!
//! Needs the Debian package `ffmpeg`. Timing figures are printed here and
//! measured properly by `make bench-failover`.

mod common;
#[path = "common/rtmp_player.rs"]
mod rtmp_player;

use std::time::{Duration, Instant};

use common::failover::{FeedSpec, Feeder, Watch, free_udp_port};
use open_streamer::App;
use os_events::EventType;
use reqwest::Method;
use serde_json::{Value, json};

/// Two video frames at 25 fps, in 90 kHz ticks.
const TWO_FRAMES: i64 = 2 * 3600;
/// Audio may be re-placed by up to its interleaving lead; bound it anyway.
const AUDIO_MAX_STEP: i64 = 90_000 / 4;

fn feed(seconds: u32) -> FeedSpec<'static> {
    FeedSpec {
        size: "640x360",
        tone: 1000,
        video_seconds: seconds,
        seconds,
    }
}

fn stream(code: &str, ports: &[(u16, u32)], extra: Value) -> Value {
    let inputs: Vec<Value> = ports
        .iter()
        .map(|(port, prio)| {
            json!({
                "url": format!("udp://127.0.0.1:{port}"),
                "priority": prio,
                "net": {"timeout_sec": 2},
            })
        })
        .collect();
    let mut s = json!({"code": code, "inputs": inputs});
    if let (Some(obj), Some(more)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    s
}

async fn status(s: &common::Server, code: &str) -> Value {
    let (st, body) = common::call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
    assert_eq!(st, 200, "{body}");
    body["data"].clone()
}

/// Wait until the status satisfies `f` (or panic after `limit`).
async fn wait_status(
    s: &common::Server,
    code: &str,
    limit: Duration,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let st = status(s, code).await;
        if f(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {st:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn put_and_start(s: &common::Server, code: &str, body: Value) {
    let (st, b) = common::call(s, Method::PUT, &format!("/streams/{code}"), Some(body)).await;
    assert!(st == 201 || st == 200, "{b}");
    let (st, b) = common::call(s, Method::POST, &format!("/streams/{code}/start"), None).await;
    assert_eq!(st, 200, "{b}");
}

fn last_switch(st: &Value) -> (Value, Value, String) {
    let sw = st["switches"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or(Value::Null);
    (
        sw["from"].clone(),
        sw["to"].clone(),
        sw["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_backup_takes_over_then_primary_fails_back_on_a_keyframe() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.publisher.hls.dir = dir.path().join("hls").display().to_string();
    c.manager.input_packet_timeout_sec = 0.5;
    c.manager.failback_after_sec = 2.0;
    c.manager.standby = "hot".into();
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let hub = app.hub();
    let rtmp = app.rtmp_addr().unwrap_or_else(|| panic!("rtmp listener"));
    let mut events = app.events().subscribe("failover-test", 1024);
    let s = common::serve(app);

    let (p0, p1) = (free_udp_port(), free_udp_port());
    let mut primary = Feeder::start(p0, feed(120));
    let _backup = Feeder::start(p1, feed(120));
    put_and_start(
        &s,
        "fo",
        stream(
            "fo",
            &[(p0, 0), (p1, 1)],
            json!({"protocols": {"hls": true, "rtmp": true}}),
        ),
    )
    .await;
    let watch = Watch::start(hub, "fo");
    let st = wait_status(&s, "fo", Duration::from_secs(15), "primary active", |st| {
        st["active_input"] == 0
            && st["status"] == "active"
            && st["inputs"][1]["status"] == "standby"
    })
    .await;
    assert_eq!(st["inputs"][1]["standby"], "hot");
    // An RTMP player of the stream watches the switches too.
    let stop_player = tokio_util::sync::CancellationToken::new();
    let player = tokio::spawn(rtmp_player::play(
        rtmp,
        "live",
        "fo",
        stop_player.clone(),
        None,
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Kill the primary: the hot backup must take over.
    let killed = primary.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (chunk_at, video_at) = loop {
        if let Some(t) = watch.switch_after(killed) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no switch seen by the hub reader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "failover: primary killed → first backup chunk at the hub {:?}, first whole backup video frame {:?}",
        chunk_at - killed,
        video_at - killed
    );
    let st = wait_status(&s, "fo", Duration::from_secs(5), "backup active", |st| {
        st["active_input"] == 1
    })
    .await;
    assert_eq!(
        last_switch(&st),
        (json!(0), json!(1), "timeout".to_string())
    );
    assert_eq!(st["inputs"][0]["status"], "degraded");
    assert_eq!(st["inputs"][0]["degraded_reason"], "timeout");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Bring the primary back: after 2 s of health it takes over again.
    let back = Instant::now();
    let _primary = Feeder::start(p0, feed(120));
    let st = wait_status(&s, "fo", Duration::from_secs(15), "failback", |st| {
        st["active_input"] == 0
    })
    .await;
    assert_eq!(
        last_switch(&st),
        (json!(1), json!(0), "failback".to_string())
    );
    let failback_at = watch
        .switch_after(back)
        .map(|(t, _)| t - back)
        .unwrap_or_default();
    eprintln!("failback: primary restarted → switched back after {failback_at:?}");
    assert!(
        failback_at >= Duration::from_secs(2),
        "failback must wait failback_after_sec"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // One continuous timeline for the reader across both switches.
    let largest = watch
        .check_continuous(TWO_FRAMES, AUDIO_MAX_STEP)
        .unwrap_or_else(|e| panic!("timeline broken: {e}"));
    eprintln!("largest video DTS step across the switches: {largest} ticks");
    assert!(watch.video_units() > 100);

    // The RTMP player saw one timeline: rising timestamps, no step over two
    // frames (80 ms at 25 fps) across both switches.
    stop_player.cancel();
    let played = player.await.unwrap_or_else(|e| panic!("player: {e}"));
    assert!(played.accepted, "RTMP play refused: {}", played.end);
    assert!(played.video.len() > 100, "{} frames", played.video.len());
    for w in played.video.windows(2) {
        let (a, b) = (w[0].0, w[1].0);
        assert!(
            b > a && b - a <= 80,
            "RTMP timestamps {a} → {b} ms across a switch"
        );
    }
    if let Some((_, _, at)) = played.video.iter().find(|(_, _, at)| *at >= chunk_at) {
        eprintln!(
            "failover: primary killed → first backup frame at the RTMP player {:?}",
            *at - killed
        );
    }

    // HLS marks both switches.
    let (st, _) = common::call(&s, Method::GET, "/fo/index.m3u8", None).await;
    assert_eq!(st, 200);
    let playlist = s
        .client
        .get(s.url("/fo/index.m3u8"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        playlist.contains("#EXT-X-DISCONTINUITY"),
        "no discontinuity in the HLS playlist:\n{playlist}"
    );

    // Events: degraded + failover (timeout), then failover (failback).
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if matches!(
            ev.event_type,
            EventType::InputDegraded | EventType::InputFailover
        ) {
            seen.push((ev.event_type.as_str().to_string(), ev.data.clone()));
        }
    }
    assert!(
        seen.iter().any(|(t, d)| t == "input.degraded"
            && d["input_priority"] == 0
            && d["reason"] == "timeout"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(t, d)| t == "input.failover" && d["reason"] == "timeout" && d["to"] == 1),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(t, d)| t == "input.failover" && d["reason"] == "failback" && d["to"] == 0),
        "{seen:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_that_never_connects_gives_way_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.manager.input_packet_timeout_sec = 0.5;
    c.manager.standby = "cold".into();
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let hub = app.hub();
    let s = common::serve(app);
    let (p0, p1) = (free_udp_port(), free_udp_port());
    // Nobody sends to p0.
    let _backup = Feeder::start(p1, feed(60));
    let started = Instant::now();
    put_and_start(&s, "nc", stream("nc", &[(p0, 0), (p1, 1)], json!({}))).await;
    let watch = Watch::start(hub, "nc");
    let st = wait_status(&s, "nc", Duration::from_secs(10), "backup active", |st| {
        st["active_input"] == 1 && st["status"] == "active"
    })
    .await;
    eprintln!(
        "never-connected primary: backup active after {:?}",
        started.elapsed()
    );
    assert_eq!(st["inputs"][0]["status"], "degraded");
    assert_eq!(st["inputs"][0]["degraded_reason"], "never_connected");
    // net.timeout_sec is 2: not before it.
    assert!(started.elapsed() >= Duration::from_secs(2));
    let first = watch
        .wait_video_after(started, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no video from the backup"));
    assert!(first - started >= Duration::from_secs(2));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_video_track_is_detected_and_failed_over() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.manager.input_packet_timeout_sec = 0.5;
    c.manager.standby = "hot".into();
    c.manager.failback_after_sec = 600.0;
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let s = common::serve(app);
    let (p0, p1) = (free_udp_port(), free_udp_port());
    // The primary's video stops after 4 s; its audio goes on.
    let _primary = Feeder::start(
        p0,
        FeedSpec {
            size: "640x360",
            tone: 1000,
            video_seconds: 4,
            seconds: 60,
        },
    );
    let _backup = Feeder::start(p1, feed(60));
    put_and_start(&s, "vl", stream("vl", &[(p0, 0), (p1, 1)], json!({}))).await;
    wait_status(&s, "vl", Duration::from_secs(10), "primary active", |st| {
        st["active_input"] == 0
    })
    .await;
    let st = wait_status(
        &s,
        "vl",
        Duration::from_secs(15),
        "failover on video loss",
        |st| st["active_input"] == 1,
    )
    .await;
    assert_eq!(st["inputs"][0]["status"], "degraded");
    assert_eq!(st["inputs"][0]["degraded_reason"], "video_lost");
    assert_eq!(last_switch(&st).2, "video_lost");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_activation_and_its_refusals() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.manager.input_packet_timeout_sec = 0.5;
    c.manager.standby = "hot".into();
    c.manager.failback_after_sec = 1.0;
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let hub = app.hub();
    let s = common::serve(app);
    let (p0, p1, p2) = (free_udp_port(), free_udp_port(), free_udp_port());
    let _primary = Feeder::start(p0, feed(60));
    let _backup = Feeder::start(p1, feed(60));
    // Nobody sends to p2: it will be degraded.
    put_and_start(
        &s,
        "mn",
        stream("mn", &[(p0, 0), (p1, 1), (p2, 2)], json!({})),
    )
    .await;
    let watch = Watch::start(hub, "mn");
    wait_status(&s, "mn", Duration::from_secs(10), "primary active", |st| {
        st["active_input"] == 0 && st["inputs"][1]["status"] == "standby"
    })
    .await;
    let asked = Instant::now();
    let (st, body) = common::call(&s, Method::POST, "/streams/mn/inputs/1/activate", None).await;
    assert_eq!(st, 200, "{body}");
    let st = wait_status(&s, "mn", Duration::from_secs(5), "manual switch", |st| {
        st["active_input"] == 1
    })
    .await;
    assert_eq!(last_switch(&st), (json!(0), json!(1), "manual".to_string()));
    // A manual choice holds although the primary is healthy (failback 1 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status(&s, "mn").await["active_input"], 1);
    assert!(watch.switch_after(asked).is_some());
    watch
        .check_continuous(TWO_FRAMES, AUDIO_MAX_STEP)
        .unwrap_or_else(|e| panic!("timeline broken by the manual switch: {e}"));

    let (st, body) = common::call(&s, Method::POST, "/streams/mn/inputs/x1/activate", None).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_PRIORITY");
    let (st, body) = common::call(&s, Method::POST, "/streams/mn/inputs/7/activate", None).await;
    assert_eq!(st, 404, "{body}");
    assert_eq!(body["error"]["code"], "INPUT_NOT_FOUND");
    wait_status(&s, "mn", Duration::from_secs(5), "input 2 degraded", |st| {
        st["inputs"][2]["status"] == "degraded"
    })
    .await;
    let (st, body) = common::call(&s, Method::POST, "/streams/mn/inputs/2/activate", None).await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(body["error"]["code"], "INPUT_NOT_HEALTHY");
    let (st, body) = common::call(&s, Method::POST, "/streams/nope/inputs/0/activate", None).await;
    assert_eq!(st, 404, "{body}");
    s.stop().await;
}
