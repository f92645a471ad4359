//! Transcoder CPU benchmark: what does running FFmpeg through our
//! transcoder cost compared to running the same FFmpeg commands by hand,
//! and what does `mode: multi` (decode once) save over `per_profile`?
//!
//! `make bench-transcode` (also part of `make bench`). Trials: `BENCH_RUNS`
//! (3; each runs the three variants back to back). Knob: `BENCH_SECONDS`
//! (media seconds per run, 20; `BENCH_QUICK=1`: 8).
//!
//! Input: a synthetic 1280x720 25 fps H.264 (3 Mbit/s) + AAC MPEG-TS file
//! made by ffmpeg once. Every scenario gets the same bytes at the same
//! real-time pace (live input), and is measured as the CPU time (user +
//! system) of this process plus its reaped children over the run:
//!
//! - `by hand`: the harness writes the TS into the stdin of one FFmpeg per
//!   profile, started with exactly the argument lists our builder makes
//!   (`args::per_profile_args`), output to /dev/null;
//! - `per_profile`: the harness writes the TS into a hub buffer
//!   `$raw$bench`; `StreamTranscoder` runs one FFmpeg per profile and
//!   pumps their output into `$r$bench$track_N` buffers;
//! - `multi`: the same with one FFmpeg encoding both profiles (loopback TCP
//!   outputs).
//!
//! The ladder is the one of the integration test: 640x360@800k and
//! 320x180@300k, libx264 `veryfast`, AAC 128k.

use std::io::Read as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use os_bench::{Better, Figure, Goal, OURS, emit, runs};
use os_domain::{TranscodeMode, TranscoderConfig, VideoProfile};
use os_events::EventBus;
use os_hub::Buffer;
use os_transcoder::{ProfileState, Settings, StreamTranscoder, Transcoders, args};
use tokio::io::AsyncWriteExt;

const SCENARIO: &str = "Transcoder CPU";
/// The same FFmpeg commands run by hand.
const BY_HAND: &str = "ffmpeg by hand";
/// Our per_profile mode, as the reference for multi.
const PER_PROFILE: &str = "open-streamer per_profile";
use tokio_util::sync::CancellationToken;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (own user+system, children user+system) in clock ticks.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // After ")": state(0) … utime(11) stime(12) cutime(13) cstime(14).
    let g = |i: usize| f.get(i).copied().unwrap_or(0);
    (g(11) + g(12), g(13) + g(14))
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn ladder(mode: TranscodeMode) -> TranscoderConfig {
    let mut c = TranscoderConfig {
        mode,
        ..TranscoderConfig::default()
    };
    for (w, h, b) in [(640, 360, 800), (320, 180, 300)] {
        c.video.profiles.push(VideoProfile {
            width: w,
            height: h,
            bitrate: b,
            preset: "veryfast".into(),
            keyframe_interval: 2,
            ..VideoProfile::default()
        });
    }
    c
}

fn make_source(dir: &std::path::Path, seconds: u32) -> Vec<u8> {
    let path = dir.join("source.ts");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M"])
        .args(["-maxrate", "3M", "-bufsize", "1M", "-g", "50"])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(&path)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg is required: {e}"));
    assert!(status.success());
    let mut data = Vec::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .unwrap_or_else(|e| panic!("{e}"));
    data
}

/// Chunks of 7 TS packets at a constant byte rate over `seconds`.
struct Pacer {
    chunks: Vec<Bytes>,
    interval: Duration,
}

impl Pacer {
    fn new(data: &[u8], seconds: u32) -> Self {
        let chunks: Vec<Bytes> = data.chunks(188 * 7).map(Bytes::copy_from_slice).collect();
        let interval = Duration::from_secs_f64(f64::from(seconds) / chunks.len().max(1) as f64);
        Self { chunks, interval }
    }
}

/// PTS (seconds, 33-bit) of the first video keyframe: the keyframe time
/// origin our supervisor passes (see `args::keyframe_expr`).
fn first_keyframe(data: &[u8]) -> Option<f64> {
    let mut d = os_mpegts::Demuxer::new();
    d.push(data.get(..data.len().min(4 << 20))?);
    while let Some(ev) = d.pull() {
        if let os_mpegts::Event::AccessUnit(au) = ev
            && au.keyframe
            && au.codec.kind() == os_av::TrackKind::Video
        {
            return Some(au.pts.rem_euclid(1 << 33) as f64 / 90_000.0);
        }
    }
    None
}

async fn by_hand(pacer: &Pacer, settings: &Settings, origin: Option<f64>) {
    let cfg = ladder(TranscodeMode::PerProfile);
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for i in 0..cfg.video.profiles.len() {
        let mut child = tokio::process::Command::new(&settings.ffmpeg_path)
            .args(args::per_profile_args(&cfg, i, origin))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("ffmpeg: {e}"));
        if let Some(s) = child.stdin.take() {
            stdins.push(s);
        }
        children.push(child);
    }
    let start = Instant::now();
    for (n, c) in pacer.chunks.iter().enumerate() {
        tokio::time::sleep_until((start + pacer.interval * n as u32).into()).await;
        for s in &mut stdins {
            let _ = s.write_all(c).await;
        }
    }
    drop(stdins);
    for mut c in children {
        let _ = c.wait().await;
    }
}

/// Runs our transcoder over the paced input; returns the chunks FFmpeg
/// lost by falling behind the live input (a run with losses spent less CPU
/// and does not count).
async fn ours(pacer: &Pacer, settings: &Settings, mode: TranscodeMode) -> u64 {
    let svc = Transcoders::new(settings.clone(), Arc::new(EventBus::new()));
    let raw = Arc::new(Buffer::new("$raw$bench", 1000));
    let outs: Vec<Arc<Buffer>> = (1..=2)
        .map(|i| Arc::new(Buffer::new(format!("$r$bench$track_{i}"), 1000)))
        .collect();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let tc = StreamTranscoder::start(
        &svc,
        "bench",
        &ladder(mode),
        raw.clone(),
        outs.iter().map(|b| vec![b.clone()]).collect(),
        cancel.clone(),
        tx,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Processes read from the live edge: wait until they run.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tc.status().profiles.iter().any(|p| p.pid.is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    for (n, c) in pacer.chunks.iter().enumerate() {
        tokio::time::sleep_until((start + pacer.interval * n as u32).into()).await;
        let _ = raw.write(c.clone());
    }
    // A process that fell behind the live input would lose chunks (and
    // spend less CPU): such a run does not count.
    let lost: u64 = raw.stats().readers.iter().map(|r| r.lost).sum();
    // End of input: FFmpeg drains and exits; then stop the supervisors.
    raw.close();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tc
        .status()
        .profiles
        .iter()
        .any(|p| p.state != ProfileState::Stopped)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let produced: u64 = outs.iter().map(|b| b.stats().bytes).sum();
    assert!(produced > 0, "{mode:?}: no output");
    tc.stop(Duration::from_secs(10)).await;
    lost
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let seconds: u32 = env_or("BENCH_SECONDS", if quick { 8 } else { 20 });
    let trials = runs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = make_source(dir.path(), seconds);
    let pacer = Pacer::new(&data, seconds);
    let origin = first_keyframe(&data);
    let settings = Settings {
        max_workers: 8,
        ..Settings::default()
    };
    let tck = clk_tck();
    println!(
        "transcode CPU, {seconds} s of 1280x720 25 fps input, ladder 640x360@800k + 320x180@300k (libx264 veryfast), {trials} trials"
    );
    let per_profile = Figure::new(
        SCENARIO,
        "per_profile (one FFmpeg per rendition)",
        "CPU s per media s",
        "s/s",
        Better::Lower,
    )
    .goal(Goal::Ratio {
        peer: BY_HAND.into(),
        ratio: 1.05,
    });
    let multi = Figure {
        case: "multi (one FFmpeg for all renditions)".into(),
        goal: None,
        ..per_profile.clone()
    };
    for trial in 1..=trials {
        let mut cpu = [f64::NAN; 3];
        for (i, slot) in cpu.iter_mut().enumerate() {
            let (own0, kids0) = cpu_ticks();
            let lost = rt.block_on(async {
                match i {
                    0 => {
                        by_hand(&pacer, &settings, origin).await;
                        0
                    }
                    1 => ours(&pacer, &settings, TranscodeMode::PerProfile).await,
                    _ => ours(&pacer, &settings, TranscodeMode::Multi).await,
                }
            });
            let (own1, kids1) = cpu_ticks();
            let secs = ((own1 - own0) + (kids1 - kids0)) as f64 / tck;
            if lost > 0 {
                println!(
                    "  trial {trial}, run {i}: FFmpeg fell behind the live input ({lost} chunks lost; host too busy), not counted"
                );
            } else {
                *slot = secs / f64::from(seconds);
            }
        }
        println!(
            "  trial {trial}: CPU s per media s: by hand {:.3}, per_profile {:.3}, multi {:.3}",
            cpu[0], cpu[1], cpu[2]
        );
        emit(&per_profile.value(BY_HAND, trial, cpu[0]));
        emit(&per_profile.value(OURS, trial, cpu[1]));
        emit(&multi.value(BY_HAND, trial, cpu[0]));
        emit(&multi.value(PER_PROFILE, trial, cpu[1]));
        emit(&multi.value(OURS, trial, cpu[2]));
    }
}
