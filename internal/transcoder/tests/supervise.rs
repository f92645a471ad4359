//! Supervision with the real FFmpeg: a synthetic H.264/AAC source is fed
//! into a raw buffer; renditions come out; crashes are restarted; an
//! always-failing process is given up on; the pool bound is enforced.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use os_domain::{TranscodeMode, TranscoderConfig, VideoProfile};
use os_events::EventBus;
use os_hub::Buffer;
use os_transcoder::{ProfileState, Settings, StreamTranscoder, Transcoders};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Feed a live synthetic TS source into `raw` until `cancel`.
fn source(raw: Arc<Buffer>, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut child = tokio::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
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
                "pipe:1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg source");
        let mut out = child.stdout.take().expect("stdout");
        let mut buf = vec![0u8; 188 * 100];
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                n = out.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => { let _ = raw.write(bytes::Bytes::copy_from_slice(&buf[..n])); }
                },
            }
        }
        let _ = child.kill().await;
    })
}

fn ladder(mode: TranscodeMode) -> TranscoderConfig {
    let mut c = TranscoderConfig {
        mode,
        ..TranscoderConfig::default()
    };
    for (w, h, b) in [(320, 180, 300), (160, 90, 100)] {
        c.video.profiles.push(VideoProfile {
            width: w,
            height: h,
            bitrate: b,
            preset: "ultrafast".into(),
            keyframe_interval: 1,
            ..VideoProfile::default()
        });
    }
    c
}

fn settings(max_workers: usize, max_restarts: u32) -> Settings {
    Settings {
        max_workers,
        max_restarts,
        backoff_initial: Duration::from_millis(200),
        backoff_max: Duration::from_secs(1),
        ..Settings::default()
    }
}

async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_profile_renditions_restart_and_stop() {
    let events = Arc::new(EventBus::new());
    let mut bus = events.subscribe("test", 64);
    let svc = Transcoders::new(settings(4, 3), events);
    let cancel = CancellationToken::new();
    let raw = Arc::new(Buffer::new("$raw$t", 500));
    let src = source(raw.clone(), cancel.clone());
    let outs: Vec<Arc<Buffer>> = (1..=2)
        .map(|i| Arc::new(Buffer::new(format!("$r$t$track_{i}"), 500)))
        .collect();
    let (fatal_tx, _fatal_rx) = mpsc::unbounded_channel();
    let mut tc = StreamTranscoder::start(
        &svc,
        "t",
        &ladder(TranscodeMode::PerProfile),
        raw,
        outs.iter().map(|b| vec![b.clone()]).collect(),
        cancel.child_token(),
        fatal_tx,
    )
    .expect("start");
    wait_for("both renditions running", 30, || {
        tc.status()
            .profiles
            .iter()
            .all(|p| p.state == ProfileState::Running)
    })
    .await;
    assert_eq!(svc.workers_in_use(), 2);
    let st = tc.status();
    let pids: Vec<u32> = st.profiles.iter().filter_map(|p| p.pid).collect();
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1]);
    let head1 = outs[1].head();

    // kill -9 the first process: it is restarted, the other is untouched.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_for("track_1 restarted", 30, || {
        let p = &tc.status().profiles[0];
        p.state == ProfileState::Running && p.pid.is_some_and(|p| p != pids[0])
    })
    .await;
    let st = tc.status();
    assert_eq!(st.profiles[0].restart_count, 1);
    assert!(
        st.profiles[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("FFmpeg exited")
    );
    assert_eq!(st.profiles[1].pid, Some(pids[1]));
    assert_eq!(st.profiles[1].restart_count, 0);
    assert!(outs[1].head() > head1, "track_2 kept producing");
    // The crash was published.
    let ev = tokio::time::timeout(Duration::from_secs(5), bus.recv())
        .await
        .ok()
        .flatten()
        .expect("transcoder.error event");
    let v = serde_json::to_value(&*ev).expect("json");
    assert_eq!(v["type"], "transcoder.error");
    assert_eq!(v["data"]["profile"], "track_1");
    assert_eq!(v["data"]["fatal"], false);

    // Reload of track_2 only: its pid changes, track_1's does not.
    let before = tc.status();
    let mut cfg = ladder(TranscodeMode::PerProfile);
    cfg.video.profiles[1].bitrate = 150;
    let restarted = tc.apply(&cfg, &[1]).await;
    assert_eq!(restarted, ["track_2"]);
    wait_for("track_2 running again", 30, || {
        tc.status().profiles[1].state == ProfileState::Running
    })
    .await;
    let after = tc.status();
    assert_eq!(after.profiles[0].pid, before.profiles[0].pid);
    assert_ne!(after.profiles[1].pid, before.profiles[1].pid);

    // Stop: every process is gone.
    let last: Vec<u32> = after.profiles.iter().filter_map(|p| p.pid).collect();
    tc.stop(Duration::from_secs(5)).await;
    for pid in last {
        assert!(!pid_alive(pid), "ffmpeg {pid} still alive after stop");
    }
    assert_eq!(svc.workers_in_use(), 0);
    cancel.cancel();
    let _ = src.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_mode_one_process_all_renditions() {
    let svc = Transcoders::new(settings(4, 3), Arc::new(EventBus::new()));
    let cancel = CancellationToken::new();
    let raw = Arc::new(Buffer::new("$raw$m", 500));
    let src = source(raw.clone(), cancel.clone());
    let outs: Vec<Arc<Buffer>> = (1..=2)
        .map(|i| Arc::new(Buffer::new(format!("$r$m$track_{i}"), 500)))
        .collect();
    let (fatal_tx, _rx) = mpsc::unbounded_channel();
    let tc = StreamTranscoder::start(
        &svc,
        "m",
        &ladder(TranscodeMode::Multi),
        raw,
        outs.iter().map(|b| vec![b.clone()]).collect(),
        cancel.child_token(),
        fatal_tx,
    )
    .expect("start");
    wait_for("both renditions produce", 30, || {
        outs.iter().all(|b| b.stats().access_points >= 2)
    })
    .await;
    let st = tc.status();
    assert_eq!(st.mode, "multi");
    assert_eq!(svc.workers_in_use(), 1);
    assert_eq!(st.profiles[0].pid, st.profiles[1].pid);
    assert!(st.profiles[0].pid.is_some());
    tc.stop(Duration::from_secs(5)).await;
    cancel.cancel();
    let _ = src.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_process_is_given_up_and_pool_is_bounded() {
    let events = Arc::new(EventBus::new());
    let mut bus = events.subscribe("test", 64);
    let svc = Transcoders::new(settings(1, 2), events);
    let cancel = CancellationToken::new();
    let raw = Arc::new(Buffer::new("$raw$f", 500));
    let src = source(raw.clone(), cancel.clone());
    let mut cfg = ladder(TranscodeMode::PerProfile);
    // A preset x264 does not know (the API validates preset names; this
    // test drives the crate directly): every run fails at encoder setup.
    cfg.video.profiles[0].preset = "bogus".into();
    cfg.video.profiles.truncate(1);
    let out = Arc::new(Buffer::new("$r$f$track_1", 500));
    let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel();
    let tc = StreamTranscoder::start(
        &svc,
        "f",
        &cfg,
        raw.clone(),
        vec![vec![out]],
        cancel.child_token(),
        fatal_tx,
    )
    .expect("start");
    let fatal = tokio::time::timeout(Duration::from_secs(30), fatal_rx.recv())
        .await
        .expect("fatal in time")
        .expect("fatal");
    assert_eq!(fatal.profile, "track_1");
    let st = tc.status();
    assert_eq!(st.profiles[0].state, ProfileState::Failed);
    assert_eq!(st.profiles[0].restart_count, 2);
    let mut last = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), bus.recv()).await {
        last = Some(serde_json::to_value(&*ev).expect("json"));
    }
    let last = last.expect("events");
    assert_eq!(last["data"]["fatal"], true);
    assert_eq!(last["data"]["reason"], "max_restarts");
    assert!(
        !last["data"]["stderr"]
            .as_array()
            .map(Vec::is_empty)
            .unwrap_or(true)
    );
    drop(tc);

    // Pool of one: a second stream of two renditions gets one slot; the
    // other rendition reports no slot.
    let outs: Vec<Arc<Buffer>> = (1..=2)
        .map(|i| Arc::new(Buffer::new(format!("$r$p$track_{i}"), 500)))
        .collect();
    let (fatal_tx, _rx) = mpsc::unbounded_channel();
    let tc = StreamTranscoder::start(
        &svc,
        "p",
        &ladder(TranscodeMode::PerProfile),
        raw,
        outs.iter().map(|b| vec![b.clone()]).collect(),
        cancel.child_token(),
        fatal_tx,
    )
    .expect("start");
    wait_for("one rendition without slot", 30, || {
        let st = tc.status();
        st.profiles.iter().any(|p| {
            p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("transcoder.max_workers"))
        }) && st.profiles.iter().any(|p| p.state == ProfileState::Running)
    })
    .await;
    assert_eq!(svc.workers_in_use(), 1);
    tc.stop(Duration::from_secs(5)).await;
    cancel.cancel();
    let _ = src.await;
}

/// A process that reads its input but never writes output is killed by the
/// stall watchdog and counted as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_process_is_killed_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("silent-ffmpeg");
    std::fs::write(&fake, "#!/bin/sh\nexec cat > /dev/null\n").expect("write script");
    let made_executable = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .expect("chmod");
    assert!(made_executable.success());
    let svc = Transcoders::new(
        Settings {
            ffmpeg_path: fake.display().to_string(),
            stall_timeout: Duration::from_secs(2),
            ..settings(2, 1)
        },
        Arc::new(EventBus::new()),
    );
    let cancel = CancellationToken::new();
    let raw = Arc::new(Buffer::new("$raw$s", 500));
    let src = source(raw.clone(), cancel.clone());
    let mut cfg = ladder(TranscodeMode::PerProfile);
    cfg.video.profiles.truncate(1);
    let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel();
    let tc = StreamTranscoder::start(
        &svc,
        "s",
        &cfg,
        raw,
        vec![vec![Arc::new(Buffer::new("$r$s$track_1", 10))]],
        cancel.child_token(),
        fatal_tx,
    )
    .expect("start");
    let started = std::time::Instant::now();
    let fatal = tokio::time::timeout(Duration::from_secs(30), fatal_rx.recv())
        .await
        .expect("fatal in time")
        .expect("fatal");
    // Two runs of ≥ 2 s each (max_restarts = 1).
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(fatal.error.contains("stalled"), "{}", fatal.error);
    let st = tc.status();
    assert_eq!(st.profiles[0].restart_count, 1);
    assert_eq!(st.profiles[0].state, ProfileState::Failed);
    cancel.cancel();
    let _ = src.await;
}
