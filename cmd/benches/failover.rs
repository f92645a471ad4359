//! Failover benchmark: how long from the death of a stream's primary input
//! to the first backup frame a reader of the stream gets, and how clean the
//! timeline stays (hot and cold standby), plus failback.
//!
//! `make bench-failover` (also part of `make bench`). Trials: `BENCH_RUNS`
//! (3 per standby mode). Knob: `BENCH_TIMEOUT` (input packet timeout,
//! seconds, 0.5).
//!
//! Each trial: two real ffmpeg feeders (H.264 + AAC, 25 fps, 1 s GOP) send
//! MPEG-TS over UDP to inputs of priority 0 and 1 of one stream of the real
//! server (in-process, loopback). After a steady period the primary feeder
//! is SIGKILLed; a hub reader of the stream records arrival times; the
//! event bus gives `input.degraded` / `input.failover` times. Then the
//! primary is restarted and the failback is timed the same way.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/rtmp_player.rs"]
mod rtmp_player;

use std::time::{Duration, Instant};

use common::failover::{FeedSpec, Feeder, Watch, free_udp_port};
use open_streamer::App;
use os_bench::{Better, Figure, Goal, OURS, emit, runs};
use os_events::EventType;
use reqwest::Method;
use serde_json::json;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SCENARIO: &str = "Input failover";

/// Reads one figure's value from a trial.
type Get = fn(&Trial) -> f64;

const FEED: FeedSpec<'static> = FeedSpec {
    size: "640x360",
    tone: 1000,
    video_seconds: 600,
    seconds: 600,
};

#[derive(Debug, Clone)]
struct Trial {
    degraded_ms: f64,
    failover_event_ms: f64,
    hub_chunk_ms: f64,
    hub_frame_ms: f64,
    largest_step_frames: f64,
    failback_step_frames: f64,
    failback_ms: f64,
    rtmp_frame_ms: f64,
    rtmp_max_step_ms: f64,
}

impl Default for Trial {
    /// Not measured (NaN) until a trial sets it: a figure never reports a
    /// time that was not observed.
    fn default() -> Self {
        Self {
            degraded_ms: f64::NAN,
            failover_event_ms: f64::NAN,
            hub_chunk_ms: f64::NAN,
            hub_frame_ms: f64::NAN,
            largest_step_frames: f64::NAN,
            failback_step_frames: f64::NAN,
            failback_ms: f64::NAN,
            rtmp_frame_ms: f64::NAN,
            rtmp_max_step_ms: f64::NAN,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn wait_active(s: &common::Server, code: &str, want: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let (_, b) = common::call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
        if b["data"]["active_input"] == want && b["data"]["status"] == "active" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn trial_run(hot: bool, n: usize, timeout: f64) -> Option<Trial> {
    let dir = tempfile::tempdir().ok()?;
    let mut c = common::config(dir.path(), "");
    c.manager.input_packet_timeout_sec = timeout;
    c.manager.failback_after_sec = 2.0;
    c.manager.standby = if hot { "hot" } else { "cold" }.into();
    c.log.level = "warn".into();
    let app = App::bind(c).await.ok()?;
    let hub = app.hub();
    let rtmp = app.rtmp_addr()?;
    let mut events = app.events().subscribe("bench", 1024);
    let s = common::serve(app);
    let code = format!("fo{n}");
    let (p0, p1) = (free_udp_port(), free_udp_port());
    let mut primary = Feeder::start(p0, FEED);
    let _backup = Feeder::start(p1, FEED);
    let body = json!({"code": code, "protocols": {"rtmp": true}, "inputs": [
        {"url": format!("udp://127.0.0.1:{p0}"), "priority": 0, "net": {"timeout_sec": 3}},
        {"url": format!("udp://127.0.0.1:{p1}"), "priority": 1, "net": {"timeout_sec": 3}},
    ]});
    common::call(&s, Method::PUT, &format!("/streams/{code}"), Some(body)).await;
    common::call(&s, Method::POST, &format!("/streams/{code}/start"), None).await;
    let watch = Watch::start(hub, &code);
    if !wait_active(&s, &code, 0, Duration::from_secs(15)).await {
        eprintln!("trial {n}: primary never became active");
        return None;
    }
    let stop_player = tokio_util::sync::CancellationToken::new();
    let player = {
        let (code, stop) = (code.clone(), stop_player.clone());
        tokio::spawn(async move { rtmp_player::play(rtmp, "live", &code, stop, None).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    while events.try_recv().is_ok() {}

    let killed = primary.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (chunk_at, frame_at) = loop {
        if let Some(t) = watch.switch_after(killed) {
            break t;
        }
        if Instant::now() > deadline {
            eprintln!("trial {n}: no switch within 10 s");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut t = Trial {
        hub_chunk_ms: ms(chunk_at - killed),
        hub_frame_ms: ms(frame_at - killed),
        ..Trial::default()
    };
    // Event times (the bus stamps occurred_at; arrival here is within
    // microseconds of it, so use arrival).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = Instant::now();
    let mut timeline = Vec::new();
    while let Ok(ev) = events.try_recv() {
        let at = ev.occurred_at;
        timeline.push((ev.event_type, at, ev.data.clone()));
    }
    let wall_killed =
        chrono::Utc::now() - chrono::Duration::from_std(now - killed).unwrap_or_default();
    for (ty, at, _) in &timeline {
        let d = (*at - wall_killed).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        match ty {
            EventType::InputDegraded if t.degraded_ms.is_nan() => t.degraded_ms = d,
            EventType::InputFailover if t.failover_event_ms.is_nan() => t.failover_event_ms = d,
            _ => {}
        }
    }
    if n == 0 {
        eprintln!(
            "  timeline of trial 0 ({}):",
            if hot { "hot" } else { "cold" }
        );
        eprintln!("    {:>8.1} ms  primary feeder killed (SIGKILL)", 0.0);
        for (ty, at, data) in &timeline {
            let d = (*at - wall_killed).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            eprintln!(
                "    {d:>8.1} ms  {} {}",
                ty.as_str(),
                serde_json::Value::Object(data.clone())
            );
        }
        eprintln!(
            "    {:>8.1} ms  first backup chunk read from the stream buffer",
            t.hub_chunk_ms
        );
        eprintln!(
            "    {:>8.1} ms  first whole backup video frame demuxed",
            t.hub_frame_ms
        );
    }

    // Failback.
    let back = Instant::now();
    let _primary = Feeder::start(p0, FEED);
    if wait_active(&s, &code, 0, Duration::from_secs(15)).await
        && let Some((at, _)) = watch.switch_after(back + Duration::from_millis(1))
    {
        t.failback_ms = ms(at - back);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    t.largest_step_frames = match watch.check_continuous(i64::MAX / 2, i64::MAX / 2) {
        Ok(step) => step as f64 / 3600.0,
        Err(e) => {
            eprintln!("trial {n}: timeline broken: {e}");
            f64::NAN
        }
    };
    t.failback_step_frames = t.largest_step_frames;
    stop_player.cancel();
    if let Ok(played) = player.await {
        if let Some((_, _, at)) = played.video.iter().find(|(_, _, at)| *at >= chunk_at) {
            t.rtmp_frame_ms = ms(*at - killed);
        }
        t.rtmp_max_step_ms = played
            .video
            .windows(2)
            .map(|w| f64::from(w[1].0.saturating_sub(w[0].0)))
            .fold(0.0, f64::max);
    }
    s.stop().await;
    Some(t)
}

fn main() {
    let trials = runs();
    let timeout: f64 = env_or("BENCH_TIMEOUT", 0.5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    for hot in [true, false] {
        let case = if hot { "hot standby" } else { "cold standby" };
        eprintln!(
            "failover benchmark: {case}, input_packet_timeout_sec {timeout}, {trials} trials"
        );
        let f = |metric: &str, unit: &str| Figure::new(SCENARIO, case, metric, unit, Better::Lower);
        let figures: [(Figure, Get); 8] = [
            (
                f("kill → first whole backup video frame at a hub reader", "s")
                    .goal(Goal::Absolute { value: 1.0 }),
                |t| t.hub_frame_ms / 1000.0,
            ),
            (f("kill → first backup chunk at a hub reader", "s"), |t| {
                t.hub_chunk_ms / 1000.0
            }),
            (f("kill → input.degraded", "s"), |t| {
                t.degraded_ms / 1000.0
            }),
            (f("kill → input.failover", "s"), |t| {
                t.failover_event_ms / 1000.0
            }),
            (
                f("kill → first backup frame at an RTMP player", "s"),
                |t| t.rtmp_frame_ms / 1000.0,
            ),
            (f("primary back → failback switch", "s"), |t| {
                t.failback_ms / 1000.0
            }),
            (
                f("largest video DTS step over both switches", "frames")
                    .goal(Goal::Absolute { value: 1.0 }),
                |t| t.largest_step_frames,
            ),
            (
                f("largest RTMP timestamp step over both switches", "ms"),
                |t| t.rtmp_max_step_ms,
            ),
        ];
        let mut completed = 0;
        for trial in 1..=trials {
            match rt.block_on(trial_run(hot, trial as usize - 1, timeout)) {
                Some(t) => {
                    completed += 1;
                    eprintln!("  trial {trial}: {t:?}");
                    for (fig, get) in &figures {
                        emit(&fig.value(OURS, trial, get(&t)));
                    }
                }
                None => eprintln!("  trial {trial}: did not complete"),
            }
        }
        eprintln!("  {case}: {completed}/{trials} trials completed");
    }
}
