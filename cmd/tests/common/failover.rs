//! Failover scenario kit, shared by `tests/failover.rs` and the
//! `failover` benchmark: real ffmpeg feeders over UDP, a hub reader that
//! timestamps what it receives, and timeline checks.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use os_hub::{Hub, Item};
use os_mpegts::{Demuxer, Event};

/// Fail (never skip) when a peer program is missing.
pub fn require(program: &str) {
    let found = Command::new(program)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "`{program}` is required: apt-get install -y ffmpeg");
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// A live ffmpeg source (H.264 + AAC, 25 fps, 1 s GOP) sent as MPEG-TS
/// over UDP to `127.0.0.1:port`. Killed (SIGKILL, by its PID) on drop.
pub struct Feeder {
    child: Option<Child>,
}

/// What a feeder sends.
#[derive(Debug, Clone, Copy)]
pub struct FeedSpec<'a> {
    pub size: &'a str,
    /// Tone frequency (tells sources apart by ear in captures).
    pub tone: u32,
    /// Seconds of video; audio runs `seconds` in total. Less than
    /// `seconds` = the video stops while audio continues.
    pub video_seconds: u32,
    pub seconds: u32,
}

impl Feeder {
    pub fn start(port: u16, spec: FeedSpec<'_>) -> Feeder {
        require("ffmpeg");
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(["-re", "-t", &spec.video_seconds.to_string()])
            .args(["-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={}:rate=25", spec.size))
            .args(["-re", "-t", &spec.seconds.to_string()])
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency={}:sample_rate=48000", spec.tone))
            .args(["-map", "0:v", "-map", "1:a"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-ac",
                "2",
                // Do not hold audio back when video stops (live behaviour).
                "-max_interleave_delta",
                "100000",
                "-f",
                "mpegts",
            ])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ffmpeg: {e}"));
        Feeder { child: Some(child) }
    }

    /// SIGKILL the feeder now; returns the instant it was killed.
    pub fn kill(&mut self) -> Instant {
        let at = Instant::now();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        at
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One observation of the hub reader.
#[derive(Debug, Clone)]
pub enum Obs {
    /// A chunk arrived; `discontinuity` = first chunk after a source switch.
    Chunk { discontinuity: bool, bytes: usize },
    /// A complete access unit: (video?, unwrapped DTS in 90 kHz).
    Unit { video: bool, dts: i64 },
    /// The demuxer saw a continuity counter error.
    CcError { pid: u16 },
}

/// Everything a hub reader of the stream received, with arrival times.
#[derive(Clone, Default)]
pub struct Watch {
    log: Arc<Mutex<Vec<(Instant, Obs)>>>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Watch {
    /// Read buffer `code` of `hub` (waiting for it to exist) until it closes.
    pub fn start(hub: Arc<Hub>, code: &str) -> Watch {
        let w = Watch::default();
        let log = w.log.clone();
        let closed = w.closed.clone();
        let code = code.to_string();
        tokio::spawn(async move {
            let buffer = loop {
                if let Some(b) = hub.get(&code) {
                    break b;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let mut reader = buffer.subscribe("failover-watch");
            let mut demux = Demuxer::new();
            while let Ok(item) = reader.recv().await {
                let Item::Chunk(c) = item else { continue };
                let now = Instant::now();
                let mut entries = vec![(
                    now,
                    Obs::Chunk {
                        discontinuity: c.discontinuity,
                        bytes: c.data.len(),
                    },
                )];
                demux.push(&c.data);
                while let Some(ev) = demux.pull() {
                    match ev {
                        Event::AccessUnit(au) => entries.push((
                            now,
                            Obs::Unit {
                                video: au.codec.kind() == os_av::TrackKind::Video,
                                dts: au.dts,
                            },
                        )),
                        Event::ContinuityError { pid, .. } => {
                            entries.push((now, Obs::CcError { pid }));
                        }
                        _ => {}
                    }
                }
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(entries);
            }
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        w
    }

    /// The stream buffer this reader followed was closed (stream stopped
    /// or rebuilt).
    pub fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Observations so far (to compare before/after a change).
    pub fn len(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn snapshot(&self) -> Vec<(Instant, Obs)> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wait until a video unit arrives after `after` (true) or `limit` passes.
    pub async fn wait_video_after(&self, after: Instant, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(t) = self.first(after, |o| matches!(o, Obs::Unit { video: true, .. })) {
                return Some(t);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Arrival of the first observation after `after` matching `f`.
    pub fn first(&self, after: Instant, f: impl Fn(&Obs) -> bool) -> Option<Instant> {
        self.snapshot()
            .into_iter()
            .find(|(t, o)| *t >= after && f(o))
            .map(|(t, _)| t)
    }

    /// The first chunk flagged as a source switch after `after`, then the
    /// first complete video unit from there on.
    pub fn switch_after(&self, after: Instant) -> Option<(Instant, Instant)> {
        let log = self.snapshot();
        let i = log.iter().position(|(t, o)| {
            *t >= after
                && matches!(
                    o,
                    Obs::Chunk {
                        discontinuity: true,
                        ..
                    }
                )
        })?;
        let chunk_at = log[i].0;
        let video_at = log[i..]
            .iter()
            .find(|(_, o)| matches!(o, Obs::Unit { video: true, .. }))
            .map(|(t, _)| *t)?;
        Some((chunk_at, video_at))
    }

    /// Timeline checks over everything received: DTS of each kind never
    /// goes back and never jumps more than `max_video` / `max_audio` ticks;
    /// no continuity errors. Returns the largest video DTS step seen.
    pub fn check_continuous(&self, max_video: i64, max_audio: i64) -> Result<i64, String> {
        let mut last: [Option<i64>; 2] = [None, None];
        let mut largest = 0;
        for (_, o) in self.snapshot() {
            match o {
                Obs::Unit { video, dts } => {
                    let k = usize::from(video);
                    if let Some(prev) = last[k] {
                        let step = dts - prev;
                        let max_jump = if video { max_video } else { max_audio };
                        if step <= 0 || step > max_jump {
                            return Err(format!(
                                "{} DTS step {step} ({prev} → {dts})",
                                if video { "video" } else { "audio" }
                            ));
                        }
                        if video {
                            largest = largest.max(step);
                        }
                    }
                    last[k] = Some(dts);
                }
                Obs::CcError { pid } => return Err(format!("continuity error on pid {pid:#x}")),
                Obs::Chunk { .. } => {}
            }
        }
        Ok(largest)
    }

    /// Video units received.
    pub fn video_units(&self) -> usize {
        self.snapshot()
            .iter()
            .filter(|(_, o)| matches!(o, Obs::Unit { video: true, .. }))
            .count()
    }
}
