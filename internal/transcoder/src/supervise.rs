//! Running and supervising a stream's FFmpeg processes.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use os_domain::{TranscodeMode, TranscoderConfig};
use os_events::{EventBus, EventType};
use os_hub::{Buffer, Item};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::args;
use crate::probe::{Probe, ProbeError};

/// Stderr lines kept per process for error reports.
const STDERR_KEEP: usize = 8;
/// Stderr lines logged per process per [`LOG_WINDOW`]; the rest are counted.
const LOG_BURST: u32 = 10;
const LOG_WINDOW: Duration = Duration::from_secs(10);
/// Errors kept per rendition in the status.
const ERRORS_KEEP: usize = 5;
const TS_PACKET: usize = 188;

/// Supervision settings (server-wide).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `transcoder.ffmpeg_path`.
    pub ffmpeg_path: String,
    /// `transcoder.max_workers`: FFmpeg processes at once, server-wide.
    pub max_workers: usize,
    /// `transcoder.max_restarts`: restarts after consecutive failures; the
    /// failure after that many restarts stops the stream.
    pub max_restarts: u32,
    /// A process that reads input but writes no output for this long is
    /// killed (and counted as a failure).
    pub stall_timeout: Duration,
    /// First restart delay; doubled per consecutive failure up to
    /// `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A run that produced output for at least this long resets the
    /// consecutive failure count.
    pub healthy_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ffmpeg_path: "ffmpeg".into(),
            max_workers: 4,
            max_restarts: 5,
            stall_timeout: Duration::from_secs(20),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(30),
        }
    }
}

/// The server-wide transcoder service: settings, the bounded process pool
/// and the probe result. Cheap to clone.
#[derive(Clone)]
pub struct Transcoders {
    inner: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    pool: Arc<Semaphore>,
    probe: RwLock<Option<Arc<Probe>>>,
    events: Arc<EventBus>,
}

impl Transcoders {
    pub fn new(settings: Settings, events: Arc<EventBus>) -> Self {
        let pool = Arc::new(Semaphore::new(settings.max_workers));
        Self {
            inner: Arc::new(Shared {
                settings,
                pool,
                probe: RwLock::new(None),
                events,
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Remember the start-up probe (streams are checked against it).
    pub fn set_probe(&self, probe: Probe) {
        *self
            .inner
            .probe
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(probe));
    }

    pub fn probe(&self) -> Option<Arc<Probe>> {
        self.inner
            .probe
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Probe `transcoder.ffmpeg_path`, log the result and remember it.
    pub async fn probe_and_log(&self) -> Result<Arc<Probe>, ProbeError> {
        let p = crate::probe::probe(&self.inner.settings.ffmpeg_path).await?;
        tracing::info!(
            ffmpeg = %p.ffmpeg_path,
            version = %p.version,
            backends = ?p.available(),
            hwaccels = ?p.hwaccels,
            "transcoder: FFmpeg probed"
        );
        for b in p.backends.iter().filter(|b| !b.available) {
            tracing::debug!(backend = %b.name, reason = ?b.reason, "transcoder: backend not available");
        }
        self.set_probe(p);
        self.probe().ok_or_else(|| ProbeError::Unusable {
            path: self.inner.settings.ffmpeg_path.clone(),
            reason: "probe lost".into(),
        })
    }

    /// FFmpeg processes running now (pool slots taken).
    pub fn workers_in_use(&self) -> usize {
        self.inner.settings.max_workers - self.inner.pool.available_permits()
    }

    /// Check `cfg` against the probe (when there is one).
    pub fn check(&self, cfg: &TranscoderConfig) -> Result<(), ProbeError> {
        match self.probe() {
            Some(p) => p.check(cfg),
            None => Ok(()),
        }
    }
}

/// A stream's transcoder gave up: `max_restarts` consecutive failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub stream: String,
    /// `track_N`, or `multi` for a multi-output process.
    pub profile: String,
    pub error: String,
}

/// Lifecycle of one rendition's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileState {
    /// Spawned, no output yet.
    Starting,
    /// Writing output.
    Running,
    /// Failed; waiting before the next start.
    Backoff,
    /// No free pool slot (`transcoder.max_workers` reached); retried with
    /// backoff, counted as a failure.
    NoSlot,
    /// Gave up after `max_restarts` consecutive failures.
    Failed,
    Stopped,
}

/// One error of a rendition's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProfileError {
    pub message: String,
    pub at: DateTime<Utc>,
}

/// Status of one rendition (`transcoder.profiles[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProfileStatus {
    /// Index in `video.profiles` (0-based).
    pub index: usize,
    /// `track_N` (1-based).
    pub track: String,
    /// FFmpeg process id while one runs (the same for every rendition in
    /// `multi` mode).
    pub pid: Option<u32>,
    pub state: ProfileState,
    /// Restarts after a failure (crash, stall, no pool slot) so far.
    pub restart_count: u32,
    pub last_error: Option<String>,
    /// Newest last, at most 5.
    pub errors: Vec<ProfileError>,
}

/// Status of a stream's transcoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TranscoderStatus {
    /// `per_profile` or `multi`.
    pub mode: String,
    pub profiles: Vec<ProfileStatus>,
}

#[derive(Debug)]
struct Slot {
    pid: Option<u32>,
    state: ProfileState,
    restart_count: u32,
    errors: VecDeque<ProfileError>,
}

type SlotRef = Arc<Mutex<Slot>>;

fn lock(s: &SlotRef) -> std::sync::MutexGuard<'_, Slot> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Worker {
    /// Rendition indexes this process serves.
    tracks: Vec<usize>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// One stream's FFmpeg processes.
pub struct StreamTranscoder {
    code: String,
    config: TranscoderConfig,
    raw: Arc<Buffer>,
    /// Sinks per rendition (index = track - 1).
    sinks: Vec<Vec<Arc<Buffer>>>,
    slots: Vec<SlotRef>,
    workers: Vec<Worker>,
    service: Transcoders,
    cancel: CancellationToken,
    fatal: mpsc::UnboundedSender<Fatal>,
}

impl StreamTranscoder {
    /// Check `config` against the probe, then start the processes of stream
    /// `code`: reading `raw`, rendition `i` written to every buffer of
    /// `sinks[i]` (`sinks.len()` must be `config.renditions()`). They stop
    /// when `cancel` fires or [`Self::stop`] is called; a rendition that
    /// gives up reports on `fatal`.
    pub fn start(
        service: &Transcoders,
        code: &str,
        config: &TranscoderConfig,
        raw: Arc<Buffer>,
        sinks: Vec<Vec<Arc<Buffer>>>,
        cancel: CancellationToken,
        fatal: mpsc::UnboundedSender<Fatal>,
    ) -> Result<Self, ProbeError> {
        service.check(config)?;
        let slots = (0..sinks.len())
            .map(|_| {
                Arc::new(Mutex::new(Slot {
                    pid: None,
                    state: ProfileState::Starting,
                    restart_count: 0,
                    errors: VecDeque::new(),
                }))
            })
            .collect();
        let mut me = Self {
            code: code.to_string(),
            config: config.clone(),
            raw,
            sinks,
            slots,
            workers: Vec::new(),
            service: service.clone(),
            cancel,
            fatal,
        };
        if me.multi() {
            let all: Vec<usize> = (0..me.sinks.len()).collect();
            me.spawn_worker(all, false);
        } else {
            for i in 0..me.sinks.len() {
                me.spawn_worker(vec![i], false);
            }
        }
        Ok(me)
    }

    /// `multi` mode with more than one encoded rendition.
    fn multi(&self) -> bool {
        self.config.mode == TranscodeMode::Multi && !self.config.video.copy && self.sinks.len() > 1
    }

    pub fn config(&self) -> &TranscoderConfig {
        &self.config
    }

    /// `replacing`: the renditions had output from an earlier process, so
    /// the first output of this one is marked as a discontinuity.
    fn spawn_worker(&mut self, tracks: Vec<usize>, replacing: bool) {
        let cancel = self.cancel.child_token();
        let label = if tracks.len() == 1 {
            format!("track_{}", tracks[0] + 1)
        } else {
            "multi".to_string()
        };
        for &t in &tracks {
            if let Some(s) = self.slots.get(t) {
                let mut s = lock(s);
                s.state = ProfileState::Starting;
                s.pid = None;
            }
        }
        let spec = Spec {
            code: self.code.clone(),
            label,
            config: self.config.clone(),
            tracks: tracks.clone(),
            raw: self.raw.clone(),
            sinks: tracks
                .iter()
                .map(|&t| self.sinks.get(t).cloned().unwrap_or_default())
                .collect(),
            slots: tracks
                .iter()
                .filter_map(|&t| self.slots.get(t).cloned())
                .collect(),
            service: self.service.clone(),
            cancel: cancel.clone(),
            fatal: self.fatal.clone(),
            replacing,
        };
        let task = tokio::spawn(supervise(spec));
        self.workers.push(Worker {
            tracks,
            cancel,
            task,
        });
    }

    /// Apply a new config whose rendition count is unchanged: the processes
    /// serving `changed` renditions (0-based) are stopped and started with
    /// the new settings; every other process keeps running untouched. In
    /// `multi` mode any change restarts the one process. Returns the
    /// restarted `track_N` names.
    pub async fn apply(&mut self, config: &TranscoderConfig, changed: &[usize]) -> Vec<String> {
        self.config = config.clone();
        let mut restarted = Vec::new();
        let mut keep = Vec::new();
        let mut stop = Vec::new();
        for w in self.workers.drain(..) {
            if w.tracks.iter().any(|t| changed.contains(t)) {
                stop.push(w);
            } else {
                keep.push(w);
            }
        }
        self.workers = keep;
        for w in stop {
            w.cancel.cancel();
            if tokio::time::timeout(Duration::from_secs(5), w.task)
                .await
                .is_err()
            {
                tracing::warn!(stream = %self.code, "transcoder: process did not stop in time");
            }
            restarted.extend(w.tracks.iter().map(|t| format!("track_{}", t + 1)));
            self.spawn_worker(w.tracks, true);
        }
        restarted
    }

    /// Status of every rendition.
    pub fn status(&self) -> TranscoderStatus {
        TranscoderStatus {
            mode: if self.multi() { "multi" } else { "per_profile" }.to_string(),
            profiles: self
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let s = lock(s);
                    ProfileStatus {
                        index: i,
                        track: format!("track_{}", i + 1),
                        pid: s.pid,
                        state: s.state,
                        restart_count: s.restart_count,
                        last_error: s.errors.back().map(|e| e.message.clone()),
                        errors: s.errors.iter().cloned().collect(),
                    }
                })
                .collect(),
        }
    }

    /// Stop every process and wait (bounded) until they are gone.
    pub async fn stop(mut self, timeout: Duration) {
        for w in &self.workers {
            w.cancel.cancel();
        }
        for w in self.workers.drain(..) {
            if tokio::time::timeout(timeout, w.task).await.is_err() {
                tracing::warn!(stream = %self.code, "transcoder: process did not stop in time");
            }
        }
    }
}

impl Drop for StreamTranscoder {
    fn drop(&mut self) {
        for w in &self.workers {
            w.cancel.cancel();
        }
    }
}

/// Everything one supervised process needs.
struct Spec {
    code: String,
    /// `track_N` or `multi` (logs, events).
    label: String,
    config: TranscoderConfig,
    tracks: Vec<usize>,
    raw: Arc<Buffer>,
    /// Per served track, its sinks.
    sinks: Vec<Vec<Arc<Buffer>>>,
    slots: Vec<SlotRef>,
    service: Transcoders,
    cancel: CancellationToken,
    fatal: mpsc::UnboundedSender<Fatal>,
    /// Replaces a process of the same renditions (hot reload).
    replacing: bool,
}

impl Spec {
    fn set(&self, f: impl Fn(&mut Slot)) {
        for s in &self.slots {
            f(&mut lock(s));
        }
    }

    fn profiles(&self) -> Vec<String> {
        self.tracks
            .iter()
            .map(|t| format!("track_{}", t + 1))
            .collect()
    }
}

/// How one run of the process ended.
enum RunEnd {
    /// Cancelled, or the input buffer closed (the stream is stopping).
    Stopped,
    Failed {
        error: String,
        stderr: Vec<String>,
        /// Ran long enough, with output, to reset the failure count.
        healthy: bool,
    },
}

async fn supervise(spec: Spec) {
    let settings = spec.service.settings().clone();
    let mut consecutive: u32 = 0;
    let mut runs: u64 = 0;
    loop {
        if spec.cancel.is_cancelled() {
            break;
        }
        let end = match spec.service.inner.pool.clone().try_acquire_owned() {
            Err(_) => RunEnd::Failed {
                error: format!(
                    "no free transcoder slot: all {} FFmpeg processes allowed server-wide (transcoder.max_workers) are running",
                    settings.max_workers
                ),
                stderr: Vec::new(),
                healthy: false,
            },
            Ok(permit) => {
                runs += 1;
                run_once(&spec, &settings, permit, runs > 1 || spec.replacing).await
            }
        };
        let (error, stderr, healthy) = match end {
            RunEnd::Stopped => break,
            RunEnd::Failed {
                error,
                stderr,
                healthy,
            } => (error, stderr, healthy),
        };
        if spec.cancel.is_cancelled() {
            break;
        }
        if healthy {
            consecutive = 0;
        }
        consecutive += 1;
        let no_slot = error.starts_with("no free transcoder slot");
        let message = if stderr.is_empty() {
            error.clone()
        } else {
            format!("{error}; stderr: {}", stderr.join(" | "))
        };
        spec.set(|s| {
            s.pid = None;
            s.errors.push_back(ProfileError {
                message: message.clone(),
                at: Utc::now(),
            });
            while s.errors.len() > ERRORS_KEEP {
                s.errors.pop_front();
            }
        });
        if consecutive > settings.max_restarts {
            spec.set(|s| s.state = ProfileState::Failed);
            tracing::error!(
                stream = %spec.code, profile = %spec.label, failures = consecutive,
                error = %message,
                "transcoder: giving up after transcoder.max_restarts consecutive failures; stopping the stream"
            );
            spec.service.inner.events.emit(
                EventType::TranscoderError,
                &spec.code,
                json!({
                    "profile": spec.label,
                    "profiles": spec.profiles(),
                    "mode": if spec.tracks.len() > 1 { "multi" } else { "per_profile" },
                    "reason": "max_restarts",
                    "fatal": true,
                    "attempt": consecutive,
                    "error": error,
                    "stderr": stderr,
                }),
            );
            let _ = spec.fatal.send(Fatal {
                stream: spec.code.clone(),
                profile: spec.label.clone(),
                error: message,
            });
            return;
        }
        let exp = consecutive.saturating_sub(1).min(16);
        let delay = settings
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(settings.backoff_max);
        spec.set(|s| {
            s.restart_count += 1;
            s.state = if no_slot {
                ProfileState::NoSlot
            } else {
                ProfileState::Backoff
            };
        });
        os_metrics::transcoder_restart(&spec.code);
        tracing::warn!(
            stream = %spec.code, profile = %spec.label, attempt = consecutive,
            restart_in_ms = delay.as_millis() as u64, error = %message,
            "transcoder: FFmpeg failed; restarting"
        );
        spec.service.inner.events.emit(
            EventType::TranscoderError,
            &spec.code,
            json!({
                "profile": spec.label,
                "profiles": spec.profiles(),
                "mode": if spec.tracks.len() > 1 { "multi" } else { "per_profile" },
                "reason": if no_slot { "pool_exhausted" } else { "crash" },
                "fatal": false,
                "attempt": consecutive,
                "restart_in_sec": delay.as_secs_f64(),
                "error": error,
                "stderr": stderr,
            }),
        );
        tokio::select! {
            () = spec.cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    spec.set(|s| {
        s.pid = None;
        if s.state != ProfileState::Failed {
            s.state = ProfileState::Stopped;
        }
    });
}

/// Progress clocks of one run, in ms since `start`.
struct Progress {
    start: Instant,
    last_in: AtomicU64,
    last_out: AtomicU64,
    /// 0 = no output yet.
    first_out: AtomicU64,
}

impl Progress {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

async fn run_once(
    spec: &Spec,
    settings: &Settings,
    _permit: OwnedSemaphorePermit,
    restarted: bool,
) -> RunEnd {
    let fail = |error: String| RunEnd::Failed {
        error,
        stderr: Vec::new(),
        healthy: false,
    };
    // A fresh reader per run: it starts at an access point (PAT + PMT +
    // keyframe). The keyframe's timestamp is the time origin of the
    // keyframe schedule (see `args::keyframe_expr`), read before FFmpeg is
    // started; the chunks read meanwhile are fed first.
    let reader_name = format!("transcoder:{}", spec.label);
    let (reader, origin, pending) = tokio::select! {
        () = spec.cancel.cancelled() => return RunEnd::Stopped,
        r = open_at_keyframe(&spec.raw, &reader_name) => match r {
            Some(r) => r,
            None => return RunEnd::Stopped,
        },
    };
    // Multi mode: one loopback listener per rendition; FFmpeg connects to
    // each as a TCP client, so every rendition has its own byte stream.
    let mut listeners = Vec::new();
    let argv = if spec.tracks.len() > 1 {
        let mut urls = Vec::new();
        for _ in &spec.tracks {
            match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
                Ok(l) => {
                    match l.local_addr() {
                        Ok(a) => urls.push(format!("tcp://{a}")),
                        Err(e) => return fail(format!("loopback listener: {e}")),
                    }
                    listeners.push(l);
                }
                Err(e) => return fail(format!("cannot open a loopback output listener: {e}")),
            }
        }
        args::multi_args(&spec.config, &urls, origin)
    } else {
        args::per_profile_args(
            &spec.config,
            spec.tracks.first().copied().unwrap_or(0),
            origin,
        )
    };
    let mut cmd = Command::new(&settings.ffmpeg_path);
    cmd.args(&argv)
        .stdin(Stdio::piped())
        .stdout(if listeners.is_empty() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Own process group: a terminal's Ctrl-C reaches only the server,
        // which then stops FFmpeg itself.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return fail(format!(
                "cannot start FFmpeg \"{}\" (transcoder.ffmpeg_path): {e}",
                settings.ffmpeg_path
            ));
        }
    };
    let pid = child.id();
    spec.set(|s| {
        s.pid = pid;
        s.state = ProfileState::Starting;
    });
    tracing::info!(stream = %spec.code, profile = %spec.label, pid = ?pid, keyframe_origin = ?origin, "transcoder: FFmpeg started");
    tracing::debug!(stream = %spec.code, profile = %spec.label, args = ?argv, "transcoder: FFmpeg arguments");

    let progress = Arc::new(Progress {
        start: Instant::now(),
        last_in: AtomicU64::new(0),
        last_out: AtomicU64::new(0),
        first_out: AtomicU64::new(0),
    });
    let stderr_lines = Arc::new(Mutex::new(VecDeque::new()));
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    if let Some(err) = child.stderr.take() {
        tasks.push(tokio::spawn(log_stderr(
            err,
            spec.code.clone(),
            spec.label.clone(),
            stderr_lines.clone(),
        )));
    }
    let input_closed = CancellationToken::new();
    if let Some(stdin) = child.stdin.take() {
        tasks.push(tokio::spawn(pump_in(
            reader,
            pending,
            stdin,
            progress.clone(),
            input_closed.clone(),
        )));
    }
    if restarted {
        // The new process's output is a new timeline segment.
        for sinks in &spec.sinks {
            for b in sinks {
                b.discontinuity();
            }
        }
    }
    if let Some(out) = child.stdout.take() {
        let sinks = spec.sinks.first().cloned().unwrap_or_default();
        tasks.push(tokio::spawn(pump_out(out, sinks, progress.clone())));
    }
    for (l, sinks) in listeners.into_iter().zip(spec.sinks.iter().cloned()) {
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            if let Ok((sock, _)) = l.accept().await {
                drop(l);
                pump_out(sock, sinks, progress).await;
            }
        }));
    }

    let slots = spec.slots.clone();
    let mut marked_running = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let stall_ms = settings.stall_timeout.as_millis() as u64;
    let outcome: Result<RunEnd, String> = loop {
        tokio::select! {
            () = spec.cancel.cancelled() => break Ok(RunEnd::Stopped),
            status = child.wait() => {
                if input_closed.is_cancelled() {
                    break Ok(RunEnd::Stopped);
                }
                break Err(match status {
                    Ok(st) => format!("FFmpeg exited ({st})"),
                    Err(e) => format!("FFmpeg wait failed: {e}"),
                });
            }
            _ = tick.tick() => {
                let now = progress.now();
                let first = progress.first_out.load(Ordering::Relaxed);
                if first > 0 && !marked_running {
                    marked_running = true;
                    for s in &slots {
                        lock(s).state = ProfileState::Running;
                    }
                }
                let last_in = progress.last_in.load(Ordering::Relaxed);
                let last_out = progress.last_out.load(Ordering::Relaxed);
                // Input keeps arriving but nothing comes out.
                if last_in > 0
                    && now.saturating_sub(last_in) < 2_000
                    && now.saturating_sub(last_out) > stall_ms
                    && now > stall_ms
                {
                    break Err(format!(
                        "FFmpeg stalled: no output for {} s while input arrived; killed",
                        settings.stall_timeout.as_secs()
                    ));
                }
            }
        }
    };
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    // Let the stderr reader take the last lines of a crashed process.
    if let Some(t) = tasks.first_mut() {
        let _ = tokio::time::timeout(Duration::from_millis(300), t).await;
    }
    for t in &tasks {
        t.abort();
    }
    drop(child);
    match outcome {
        Ok(end) => end,
        Err(error) => {
            let first = progress.first_out.load(Ordering::Relaxed);
            let now = progress.now();
            let healthy =
                first > 0 && now.saturating_sub(first) >= settings.healthy_after.as_millis() as u64;
            let stderr: Vec<String> = stderr_lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned()
                .collect();
            RunEnd::Failed {
                error,
                stderr,
                healthy,
            }
        }
    }
}

/// Hub reader → FFmpeg stdin. Ends when the buffer closes (cancels
/// `closed`) or FFmpeg stops reading.
async fn pump_in(
    mut reader: os_hub::Reader,
    pending: Vec<Bytes>,
    mut stdin: tokio::process::ChildStdin,
    progress: Arc<Progress>,
    closed: CancellationToken,
) {
    for c in pending {
        if stdin.write_all(&c).await.is_err() {
            return;
        }
        progress
            .last_in
            .store(progress.now().max(1), Ordering::Relaxed);
    }
    loop {
        match reader.recv().await {
            Ok(Item::Chunk(c)) => {
                if stdin.write_all(&c.data).await.is_err() {
                    return;
                }
                progress
                    .last_in
                    .store(progress.now().max(1), Ordering::Relaxed);
            }
            Ok(Item::Lagged { .. }) => {}
            Err(_) => {
                closed.cancel();
                return;
            }
        }
    }
}

/// Most chunks read while looking for the first keyframe's timestamp.
const ORIGIN_PEEK_CHUNKS: usize = 64;

/// A reader of `raw` whose first chunk is an access point (PAT + PMT +
/// keyframe: FFmpeg's first decoded frame is that keyframe), waiting for
/// the first one when the buffer has none yet; then its chunks up to the
/// keyframe's PTS (seconds; `None` if the program has no video within
/// [`ORIGIN_PEEK_CHUNKS`]). `None` when the buffer closed.
async fn open_at_keyframe(
    raw: &Arc<Buffer>,
    name: &str,
) -> Option<(os_hub::Reader, Option<f64>, Vec<Bytes>)> {
    loop {
        // Starts at the latest access point in the ring, or at the live
        // edge when there is none yet.
        let mut reader = raw.subscribe(name.to_string());
        match reader.recv().await {
            Ok(Item::Chunk(c)) if c.access_point => {
                let mut demuxer = os_mpegts::Demuxer::new();
                demuxer.push(&c.data);
                let (origin, pending) =
                    first_keyframe(&mut demuxer, &mut reader, vec![c.data]).await?;
                return Some((reader, origin, pending));
            }
            Ok(_) => {}
            Err(_) => return None,
        }
        // Not at an access point (none in the ring yet): try again.
        drop(reader);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Continue reading until the first video keyframe unit is complete.
async fn first_keyframe(
    demuxer: &mut os_mpegts::Demuxer,
    reader: &mut os_hub::Reader,
    mut pending: Vec<Bytes>,
) -> Option<(Option<f64>, Vec<Bytes>)> {
    loop {
        while let Some(ev) = demuxer.pull() {
            if let os_mpegts::Event::AccessUnit(au) = ev
                && au.keyframe
                && au.codec.kind() == os_av::TrackKind::Video
            {
                // As FFmpeg sees it: the 33-bit value in the stream (our
                // demuxer unwraps, e.g. after a slightly negative audio
                // timestamp).
                let pts = au.pts.rem_euclid(1 << 33);
                return Some((Some(pts as f64 / 90_000.0), pending));
            }
        }
        if pending.len() >= ORIGIN_PEEK_CHUNKS {
            return Some((None, pending));
        }
        let chunk = match reader.recv().await {
            Ok(Item::Chunk(c)) => c,
            Ok(Item::Lagged { .. }) => {
                // Resumes at an access point: start over from there.
                pending.clear();
                *demuxer = os_mpegts::Demuxer::new();
                continue;
            }
            Err(_) => return None,
        };
        demuxer.push(&chunk.data);
        pending.push(chunk.data);
    }
}

/// FFmpeg output → every sink, in whole TS packets.
async fn pump_out<R: AsyncRead + Unpin>(
    mut out: R,
    sinks: Vec<Arc<Buffer>>,
    progress: Arc<Progress>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        match out.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let whole = buf.len() - buf.len() % TS_PACKET;
        if whole == 0 {
            continue;
        }
        let chunk: Bytes = buf.split_to(whole).freeze();
        let now = progress.now().max(1);
        progress.last_out.store(now, Ordering::Relaxed);
        let _ = progress
            .first_out
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        for s in &sinks {
            let _ = s.write(chunk.clone());
        }
    }
}

/// FFmpeg stderr → our log (rate limited), keeping the last lines.
async fn log_stderr(
    err: tokio::process::ChildStderr,
    code: String,
    label: String,
    keep: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(err).lines();
    let mut window = Instant::now();
    let mut logged = 0u32;
    let mut suppressed = 0u64;
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        {
            let mut k = keep.lock().unwrap_or_else(PoisonError::into_inner);
            k.push_back(line.chars().take(500).collect());
            while k.len() > STDERR_KEEP {
                k.pop_front();
            }
        }
        if window.elapsed() >= LOG_WINDOW {
            if suppressed > 0 {
                tracing::warn!(stream = %code, profile = %label, suppressed, "ffmpeg: stderr lines not logged (rate limit)");
            }
            window = Instant::now();
            logged = 0;
            suppressed = 0;
        }
        if logged < LOG_BURST {
            logged += 1;
            tracing::warn!(stream = %code, profile = %label, "ffmpeg: {line}");
        } else {
            suppressed += 1;
        }
    }
}
