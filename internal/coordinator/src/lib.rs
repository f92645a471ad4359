//! The coordinator owns every stream's runtime.
//!
//! It is the single place that decides whether a stream runs: the API asks
//! it to start and stop streams and tells it about saved or deleted stream
//! configs; at boot it resumes the streams that were running when the server
//! stopped. The desired state is persisted through the [`Store`], so it
//! survives restarts.
//!
//! A running stream is one task tree under a [`CancellationToken`]: a
//! supervisor that runs the stream's active input worker (see
//! [`runtime`]), writing into the stream's hub buffer `<code>`. Cancelling
//! the token stops every task of the stream; the buffer is then removed from
//! the hub, which ends its readers.

pub mod reload;
mod runtime;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use os_domain::Stream;
use os_events::{EventBus, EventType};
use os_hub::Hub;
use os_ingest::{PlayGate, PlayProtocol, PushRegistry};
use os_publisher::push::TlsClientConfig;
use os_store::{Store, StoreError};
use tokio::sync::{Mutex, mpsc};

pub use os_transcoder::{Backend, Probe, ProfileStatus, TranscoderStatus};
pub use status::{
    BufferStatus, Desired, ErrorStatus, InputStatus, PushStatus, ReaderStatus, RunStatus,
    StreamStatus, TrackStatus,
};

pub use reload::{ReloadReport, StreamDiff};
use runtime::Runtime;

/// Why a start/stop/status request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stream \"{0}\" is disabled; set \"disabled\": false to start it")]
    Disabled(String),
    #[error("stream \"{0}\" has no inputs")]
    NoInputs(String),
    #[error("stream \"{0}\" is not running")]
    NotRunning(String),
    #[error("stream \"{stream}\" has no input with priority {priority}")]
    UnknownInput { stream: String, priority: u32 },
    #[error("cannot activate: {0}")]
    InputNotHealthy(String),
    #[error("{0}")]
    Conflict(String),
    /// The stream's transcoder cannot run on this host (missing hardware
    /// backend or encoder).
    #[error("{0}")]
    Transcoder(String),
}

/// Settings the coordinator takes from the server configuration.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// `buffer.capacity`: ring size of every stream buffer, in chunks.
    pub buffer_capacity: usize,
    /// How long stopping one stream may take before its tasks are abandoned.
    pub stop_timeout: Duration,
    /// `publisher.hls.*`: used for streams with `protocols.hls`.
    pub hls: os_publisher::HlsConfig,
    /// `manager.*`: input health and failover.
    pub manager: os_manager::ManagerConfig,
    /// `publisher.push.*`: push-out destinations (`push[]`).
    pub push: os_publisher::PushConfig,
    /// `publisher.dash.*`: used for streams with `protocols.dash`.
    pub dash: os_publisher::DashConfig,
    /// `transcoder.*`: FFmpeg path, pool size, restart policy.
    pub transcoder: os_transcoder::Settings,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            buffer_capacity: 1000,
            stop_timeout: Duration::from_secs(5),
            hls: os_publisher::HlsConfig::default(),
            manager: os_manager::ManagerConfig::default(),
            push: os_publisher::PushConfig::default(),
            dash: os_publisher::DashConfig::default(),
            transcoder: os_transcoder::Settings::default(),
        }
    }
}

pub struct Coordinator {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    registry: Arc<PushRegistry>,
    /// Which streams players may play over RTMP/SRT/RTSP.
    play_gate: Arc<PlayGate>,
    /// TLS client settings of `rtmps://` push destinations (web PKI roots
    /// plus `publisher.push.ca_file`); `Err` only if no TLS setup is possible.
    push_tls: Result<Arc<TlsClientConfig>, String>,
    config: CoordinatorConfig,
    /// Running streams by code. Locked for map changes and for the short
    /// start/stop sequences of one stream; never held while waiting on the
    /// network.
    running: Mutex<HashMap<String, Runtime>>,
    /// Where lifecycle events go (`stream.started`/`stopped`, input events).
    events: Arc<EventBus>,
    /// The FFmpeg pool and probe, shared by every stream.
    transcoders: os_transcoder::Transcoders,
    /// Transcoders that gave up report here; see [`Self::spawn_transcoder_supervision`].
    fatal_tx: mpsc::UnboundedSender<os_transcoder::Fatal>,
    fatal_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<os_transcoder::Fatal>>>,
    /// Transcoder state of streams stopped by their transcoder (shown in
    /// their status until they start again).
    failed: std::sync::Mutex<HashMap<String, os_transcoder::TranscoderStatus>>,
}

impl Coordinator {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        registry: Arc<PushRegistry>,
        config: CoordinatorConfig,
    ) -> Self {
        let events = Arc::new(EventBus::new());
        let (fatal_tx, fatal_rx) = mpsc::unbounded_channel();
        Self {
            store,
            hub,
            registry,
            play_gate: PlayGate::new(),
            push_tls: push_tls(&config.push),
            transcoders: os_transcoder::Transcoders::new(config.transcoder.clone(), events.clone()),
            config,
            running: Mutex::new(HashMap::new()),
            events,
            fatal_tx,
            fatal_rx: std::sync::Mutex::new(Some(fatal_rx)),
            failed: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Publish lifecycle events on `bus` (without it they are discarded).
    pub fn with_events(mut self, bus: Arc<EventBus>) -> Self {
        self.transcoders =
            os_transcoder::Transcoders::new(self.config.transcoder.clone(), bus.clone());
        self.events = bus;
        self
    }

    /// The FFmpeg pool and probe (`GET /config` shows the probe).
    pub fn transcoders(&self) -> &os_transcoder::Transcoders {
        &self.transcoders
    }

    /// Stop streams whose transcoder gave up (`transcoder.max_restarts`
    /// consecutive failures): the stream is stopped and marked not running
    /// (so it is not resumed at the next boot); its status keeps the
    /// transcoder state it failed in. Call once after wrapping in an `Arc`.
    pub fn spawn_transcoder_supervision(self: &Arc<Self>) {
        let rx = self
            .fatal_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut rx) = rx else { return };
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                let Some(me) = me.upgrade() else { return };
                tracing::error!(stream = %f.stream, profile = %f.profile, error = %f.error, "transcoder gave up: stopping the stream");
                let snapshot = me
                    .running
                    .lock()
                    .await
                    .get(&f.stream)
                    .and_then(|rt| rt.transcoder_status());
                if let Some(st) = snapshot {
                    me.failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(f.stream.clone(), st);
                }
                if let Err(e) = me.store.set_stream_running(&f.stream, false).await {
                    tracing::warn!(stream = %f.stream, error = %e, "cannot persist stopped state");
                }
                me.stop_runtime(&f.stream).await;
            }
        });
    }

    /// Use `gate` for play admission (shared with the listeners).
    pub fn with_play_gate(mut self, gate: Arc<PlayGate>) -> Self {
        self.play_gate = gate;
        self
    }

    pub fn play_gate(&self) -> &Arc<PlayGate> {
        &self.play_gate
    }

    pub fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn registry(&self) -> &Arc<PushRegistry> {
        &self.registry
    }

    /// Start every stream whose desired state is running. Called once at boot.
    /// Returns how many were started; failures are logged per stream.
    pub async fn resume(&self) -> usize {
        let streams = match self.store.list_streams().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot list streams to resume");
                return 0;
            }
        };
        let mut started = 0;
        for s in streams.into_iter().filter(|s| s.running) {
            let code = s.stream.code.clone();
            match self.start_runtime(&s.stream).await {
                Ok(()) => started += 1,
                Err(e) => tracing::warn!(stream = %code, error = %e, "not resumed"),
            }
        }
        if started > 0 {
            tracing::info!(streams = started, "resumed streams that were running");
        }
        self.close_stale_recordings().await;
        started
    }

    /// Recordings still marked `recording` although their stream was not
    /// resumed (the server was killed): marked `stopped` at the end of their
    /// last segment (now when unknown).
    async fn close_stale_recordings(&self) {
        let Ok(recs) = self.store.list_recordings(None).await else {
            return;
        };
        for mut rec in recs {
            if rec.status != os_domain::RecordingStatus::Recording
                || self.running.lock().await.contains_key(&rec.stream_code)
            {
                continue;
            }
            let dir = std::path::PathBuf::from(&rec.segment_dir);
            let ended = match os_dvr::index::load(&dir).await {
                Ok(Some(ix)) => ix.last_segment_at,
                _ => None,
            };
            rec.status = os_domain::RecordingStatus::Stopped;
            rec.stopped_at = Some(ended.unwrap_or_else(Utc::now));
            if let Err(e) = self.store.put_recording(&rec).await {
                tracing::warn!(stream = %rec.stream_code, error = %e, "dvr: cannot close a stale recording record");
            }
        }
    }

    /// Start a stream and remember that it should run.
    pub async fn start(&self, code: &str) -> Result<StreamStatus, CoordError> {
        let stored = self.store.get_stream(code).await?;
        if stored.stream.disabled {
            return Err(CoordError::Disabled(code.to_string()));
        }
        if stored.stream.inputs.is_empty() {
            return Err(CoordError::NoInputs(code.to_string()));
        }
        self.store.set_stream_running(code, true).await?;
        if let Err(e) = self.start_runtime(&stored.stream).await {
            // Not running: do not resume it at the next boot either.
            let _ = self.store.set_stream_running(code, false).await;
            return Err(e);
        }
        self.status(code).await
    }

    /// Stop a stream and remember that it should not run.
    pub async fn stop(&self, code: &str) -> Result<StreamStatus, CoordError> {
        self.store.get_stream(code).await?;
        self.store.set_stream_running(code, false).await?;
        self.stop_runtime(code).await;
        self.status(code).await
    }

    /// Current status of a stream.
    pub async fn status(&self, code: &str) -> Result<StreamStatus, CoordError> {
        let stored = self.store.get_stream(code).await?;
        let running = self.running.lock().await;
        let desired = if stored.running {
            Desired::Running
        } else {
            Desired::Stopped
        };
        let Some(rt) = running.get(code) else {
            return Ok(StreamStatus {
                code: code.to_string(),
                desired,
                status: RunStatus::Stopped,
                pipeline_active: false,
                started_at: None,
                uptime_sec: None,
                active_input: None,
                inputs: stored
                    .stream
                    .inputs
                    .iter()
                    .map(|i| status::input_status(i, None, None))
                    .collect(),
                switches: Vec::new(),
                buffer: None,
                push: Vec::new(),
                dvr: None,
                transcoder: self
                    .failed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(code)
                    .cloned(),
            });
        };
        Ok(rt.status(desired))
    }

    /// The status of every running stream (for metrics; no store access).
    pub async fn running_statuses(&self) -> Vec<StreamStatus> {
        let running = self.running.lock().await;
        running
            .values()
            .map(|rt| rt.status(Desired::Running))
            .collect()
    }

    /// Refuse an update that could not be applied to the running server,
    /// before anything is saved or touched: a push key (RTMP/SRT listener)
    /// already used by another running stream.
    pub fn check_update(&self, new: &Stream) -> Result<(), CoordError> {
        let held = self.registry.keys();
        for input in &new.inputs {
            let Ok(d) = os_protocol::detect(&input.url) else {
                continue;
            };
            if let os_protocol::Mode::PushListen { key } = &d.mode
                && let Some((_, _, other)) = held.iter().find(|(proto, k, stream)| {
                    k == key && stream != &new.code && proto.as_str() == d.protocol.name()
                })
            {
                return Err(CoordError::Conflict(format!(
                    "inputs[priority {}]: push key \"{key}\" is in use by stream \"{other}\"",
                    input.priority
                )));
            }
        }
        Ok(())
    }

    /// A stream config was created or changed. For a running stream the
    /// difference is applied component by component (see [`reload`]):
    /// only what changed is touched. Returns what was done, or `None` when
    /// the stream is not running.
    pub async fn stream_saved(&self, new: &Stream) -> Option<ReloadReport> {
        enum Whole {
            Stop,
            Rebuild,
        }
        // An HLS task being switched off is cancelled under the lock and
        // awaited after it is released, so other streams are never blocked
        // behind its file cleanup.
        let mut hls_stopping = None;
        let mut dash_stopping = None;
        // A changed recorder must finish writing before the new one opens
        // the same directory: stopped under the lock, awaited after, then
        // started again.
        let mut dvr_stopping = None;
        let mut dvr_restart = false;
        let (whole, report) = {
            let mut running = self.running.lock().await;
            let rt = running.get_mut(&new.code)?;
            let diff = StreamDiff::between(&rt.stream, new);
            let mut report = ReloadReport::default();
            if new.disabled {
                report.restarted.push("stream".into());
                (Some(Whole::Stop), report)
            } else if diff.needs_rebuild() {
                report.restarted.push("stream".into());
                (Some(Whole::Rebuild), report)
            } else {
                // Fixed order: inputs, transcoder, publishers, push, DVR.
                if diff.inputs {
                    rt.update_inputs(new.inputs.clone());
                    report.restarted.push("inputs".into());
                } else {
                    report.kept.push("inputs".into());
                }
                match (&diff.transcoder, new.transcoder.as_ref()) {
                    (reload::TranscoderChange::Unchanged, _) => {
                        if let Some(t) = rt.transcode_mut() {
                            for p in t.tc.status().profiles {
                                report.kept.push(format!("transcoder:{}", p.track));
                            }
                        }
                    }
                    (reload::TranscoderChange::Profiles { changed, all, .. }, Some(cfg)) => {
                        if let Err(e) = self.transcoders.check(cfg) {
                            // Saved; the running processes keep their
                            // settings (the next start reports the error).
                            tracing::error!(stream = %new.code, error = %e, "transcoder change not applied");
                            report.deferred.push("transcoder".into());
                        } else if let Some(t) = rt.transcode_mut() {
                            let which: Vec<usize> = if *all {
                                (0..t.renditions.len()).collect()
                            } else {
                                changed.clone()
                            };
                            let restarted = t.tc.apply(cfg, &which).await;
                            for p in t.tc.status().profiles {
                                if restarted.contains(&p.track) {
                                    report.restarted.push(format!("transcoder:{}", p.track));
                                } else {
                                    report.kept.push(format!("transcoder:{}", p.track));
                                }
                            }
                        } else {
                            // Copy-only transcoder (no FFmpeg): nothing runs.
                            report.kept.push("transcoder".into());
                        }
                    }
                    _ => report.deferred.push("transcoder".into()),
                }
                for (name, on) in &diff.protocols {
                    let play = match *name {
                        "rtmp" => Some(PlayProtocol::Rtmp),
                        "srt" => Some(PlayProtocol::Srt),
                        "rtsp" => Some(PlayProtocol::Rtsp),
                        _ => None,
                    };
                    match (*name, play) {
                        ("hls", _) => {
                            if *on {
                                rt.start_hls(self.config.hls.clone());
                            } else {
                                hls_stopping = rt.detach_hls();
                            }
                            report.restarted.push("hls".into());
                        }
                        ("dash", _) => {
                            if *on {
                                rt.start_dash(self.config.dash.clone());
                            } else {
                                dash_stopping = rt.detach_dash();
                            }
                            report.restarted.push("dash".into());
                        }
                        (_, Some(protocol)) => {
                            if *on {
                                rt.start_play(&self.play_gate, protocol);
                            } else {
                                rt.detach_play(protocol);
                            }
                            report.restarted.push((*name).to_string());
                        }
                        (other, None) => report.deferred.push(other.to_string()),
                    }
                }
                for (name, on) in [
                    ("hls", rt.has_hls()),
                    ("dash", rt.has_dash()),
                    ("rtmp", new.protocols.rtmp),
                    ("srt", new.protocols.srt),
                    ("rtsp", new.protocols.rtsp),
                ] {
                    if on && !diff.protocols.iter().any(|(n, _)| *n == name) {
                        report.kept.push(name.to_string());
                    }
                }
                // Push-out: only the destinations that changed.
                if !diff.push_added.is_empty() || !diff.push_removed.is_empty() {
                    rt.update_push(&new.push, self.push_tls.as_ref().ok());
                }
                for d in diff.push_removed.iter().chain(&diff.push_added) {
                    report
                        .restarted
                        .push(format!("push:{}", os_ingest::redact(&d.url)));
                }
                for d in new
                    .push
                    .iter()
                    .filter(|d| d.enabled && !diff.push_added.contains(d))
                {
                    report
                        .kept
                        .push(format!("push:{}", os_ingest::redact(&d.url)));
                }
                rt.stream = new.clone();
                if diff.dvr {
                    dvr_stopping = rt.detach_dvr();
                    dvr_restart = new.dvr.as_ref().is_some_and(|d| d.enabled);
                    if dvr_restart && dvr_stopping.is_none() {
                        let source = rt.dvr_source();
                        rt.start_dvr(source, self.store.clone(), self.events.clone());
                        dvr_restart = false;
                    }
                    report.restarted.push("dvr".into());
                } else if rt.is_recording() {
                    report.kept.push("dvr".into());
                }
                (None, report)
            }
        };
        if let Some(task) = hls_stopping {
            runtime::wait_hls_stopped(&new.code, task, self.config.stop_timeout).await;
        }
        if let Some(task) = dash_stopping {
            runtime::wait_publisher_stopped(&new.code, "dash", task, self.config.stop_timeout)
                .await;
        }
        if let Some(task) = dvr_stopping {
            runtime::wait_publisher_stopped(&new.code, "dvr", task, self.config.stop_timeout).await;
        }
        if dvr_restart {
            let mut running = self.running.lock().await;
            if let Some(rt) = running.get_mut(&new.code) {
                let source = rt.dvr_source();
                rt.start_dvr(source, self.store.clone(), self.events.clone());
            }
        }
        match whole {
            Some(Whole::Stop) => {
                if let Err(e) = self.store.set_stream_running(&new.code, false).await {
                    tracing::warn!(stream = %new.code, error = %e, "cannot persist stopped state");
                }
                self.stop_runtime(&new.code).await;
                tracing::info!(stream = %new.code, "stopped: stream was disabled");
            }
            Some(Whole::Rebuild) => {
                tracing::info!(stream = %new.code, "transcoder topology changed: rebuilding the pipeline");
                self.stop_runtime(&new.code).await;
                if let Err(e) = self.start_runtime(new).await {
                    tracing::warn!(stream = %new.code, error = %e, "restart failed");
                }
            }
            None => {
                tracing::info!(
                    stream = %new.code,
                    restarted = ?report.restarted,
                    kept = ?report.kept,
                    deferred = ?report.deferred,
                    "stream config applied"
                );
            }
        }
        Some(report)
    }

    /// Start recording a running stream: `dvr.enabled` is set in the stored
    /// config (so the recording resumes after a restart) and applied.
    pub async fn recording_start(&self, code: &str) -> Result<os_domain::Recording, CoordError> {
        if !self.running.lock().await.contains_key(code) {
            self.store.get_stream(code).await?;
            return Err(CoordError::NotRunning(code.to_string()));
        }
        let stream = self.set_dvr_enabled(code, true).await?;
        self.stream_saved(&stream).await;
        // A recorder that ended on an error (disk full) is started again.
        let failed = {
            let mut running = self.running.lock().await;
            match running.get_mut(code) {
                Some(rt) if !rt.is_recording() => rt.detach_dvr(),
                _ => None,
            }
        };
        if let Some(task) = failed {
            runtime::wait_publisher_stopped(code, "dvr", task, self.config.stop_timeout).await;
        }
        {
            let mut running = self.running.lock().await;
            if let Some(rt) = running.get_mut(code) {
                let source = rt.dvr_source();
                rt.start_dvr(source, self.store.clone(), self.events.clone());
            }
        }
        let dir = stream
            .dvr
            .as_ref()
            .map(|d| os_dvr::recording_dir(d, code))
            .unwrap_or_default();
        let started_at = match self.store.get_recording(code).await {
            Ok(r) => r.started_at,
            Err(_) => Utc::now(),
        };
        Ok(os_domain::Recording {
            id: code.to_string(),
            stream_code: code.to_string(),
            started_at,
            stopped_at: None,
            status: os_domain::RecordingStatus::Recording,
            segment_dir: dir.display().to_string(),
        })
    }

    /// Stop recording: `dvr.enabled` is cleared in the stored config and
    /// the recorder stops (its playlist becomes VOD). Returns the record.
    pub async fn recording_stop(&self, code: &str) -> Result<os_domain::Recording, CoordError> {
        let stream = self.set_dvr_enabled(code, false).await?;
        self.stream_saved(&stream).await;
        Ok(self.store.get_recording(code).await?)
    }

    /// Whether a recorder of stream `code` is running.
    pub async fn is_recording(&self, code: &str) -> bool {
        self.running
            .lock()
            .await
            .get(code)
            .is_some_and(Runtime::is_recording)
    }

    /// Set `dvr.enabled` in the stored stream (optimistic retries).
    async fn set_dvr_enabled(&self, code: &str, on: bool) -> Result<Stream, CoordError> {
        for _ in 0..8 {
            let cur = self.store.get_stream(code).await?;
            let mut stream = cur.stream;
            let mut dvr = stream.dvr.clone().unwrap_or_default();
            if dvr.enabled == on && stream.dvr.is_some() {
                return Ok(stream);
            }
            dvr.enabled = on;
            stream.dvr = Some(dvr);
            stream.updated_at = Some(Utc::now());
            match self
                .store
                .put_stream(&stream, os_store::Precondition::Version(cur.version))
                .await
            {
                Ok(_) => return Ok(stream),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoordError::Conflict(format!(
            "stream \"{code}\" is being changed concurrently; retry"
        )))
    }

    /// Make input `priority` of a running stream the active one.
    pub async fn activate(&self, code: &str, priority: u32) -> Result<StreamStatus, CoordError> {
        self.store.get_stream(code).await?;
        let result = {
            let running = self.running.lock().await;
            let Some(rt) = running.get(code) else {
                return Err(CoordError::NotRunning(code.to_string()));
            };
            // The manager answers fast except for a cold input it must
            // start first: do not hold the streams lock meanwhile.
            rt.activate_handle()
        };
        match result.activate(priority).await {
            Ok(()) => {}
            Err(os_manager::ActivateError::Unknown(p)) => {
                return Err(CoordError::UnknownInput {
                    stream: code.to_string(),
                    priority: p,
                });
            }
            Err(os_manager::ActivateError::Stopped) => {
                return Err(CoordError::NotRunning(code.to_string()));
            }
            Err(e) => return Err(CoordError::InputNotHealthy(e.to_string())),
        }
        self.status(code).await
    }

    /// A stream is about to be deleted.
    pub async fn stream_deleted(&self, code: &str) {
        self.stop_runtime(code).await;
    }

    /// Stop every stream without touching the desired state, so that they
    /// are resumed at the next boot.
    pub async fn shutdown(&self) {
        let codes: Vec<String> = self.running.lock().await.keys().cloned().collect();
        for code in codes {
            self.stop_runtime(&code).await;
        }
    }

    async fn start_runtime(&self, stream: &Stream) -> Result<(), CoordError> {
        if stream.disabled {
            return Err(CoordError::Disabled(stream.code.clone()));
        }
        if stream.inputs.is_empty() {
            return Err(CoordError::NoInputs(stream.code.clone()));
        }
        let mut running = self.running.lock().await;
        if running.contains_key(&stream.code) {
            return Ok(());
        }
        // A buffer left over from an earlier run is closed and replaced.
        self.remove_buffers(&stream.code);
        let buffer = self
            .hub
            .get_or_create(&stream.code, self.config.buffer_capacity);
        let cancel = tokio_util::sync::CancellationToken::new();
        // With a transcoder: the manager writes `$raw$<code>`, FFmpeg writes
        // `$r$<code>$track_N`; `track_1` also goes into `<code>`, so play,
        // push-out and DASH serve the first rendition unchanged.
        let mut transcode = None;
        let mut input = buffer.clone();
        if let Some(tc) = stream.transcoder.as_ref().filter(|t| t.needs_ffmpeg()) {
            let cap = self.config.buffer_capacity;
            let raw = self
                .hub
                .get_or_create(&os_domain::raw_buffer_id(&stream.code), cap);
            let renditions: Vec<_> = (1..=tc.renditions())
                .map(|n| {
                    self.hub
                        .get_or_create(&os_domain::rendition_buffer_id(&stream.code, n), cap)
                })
                .collect();
            let sinks = renditions
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if i == 0 {
                        vec![b.clone(), buffer.clone()]
                    } else {
                        vec![b.clone()]
                    }
                })
                .collect();
            self.failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&stream.code);
            match os_transcoder::StreamTranscoder::start(
                &self.transcoders,
                &stream.code,
                tc,
                raw.clone(),
                sinks,
                cancel.child_token(),
                self.fatal_tx.clone(),
            ) {
                Ok(t) => {
                    transcode = Some(runtime::Transcode { tc: t, renditions });
                    input = raw;
                }
                Err(e) => {
                    self.remove_buffers(&stream.code);
                    tracing::error!(stream = %stream.code, error = %e, "transcoder cannot start");
                    return Err(CoordError::Transcoder(e.to_string()));
                }
            }
        }
        let mut rt = Runtime::start(
            stream.clone(),
            buffer,
            input,
            cancel,
            self.registry.clone(),
            self.events.clone(),
            os_manager::ManagerConfig {
                staging_capacity: (self.config.buffer_capacity / 4).max(64),
                ..self.config.manager.clone()
            },
            Utc::now(),
        );
        if let Some(t) = transcode {
            rt.set_transcode(t);
        }
        if stream.protocols.hls {
            rt.start_hls(self.config.hls.clone());
        }
        for (protocol, _, on) in play_flags(stream, stream) {
            if on {
                rt.start_play(&self.play_gate, protocol);
            }
        }
        rt.update_push(&stream.push, self.push_tls.as_ref().ok());
        if stream.protocols.dash {
            rt.start_dash(self.config.dash.clone());
        }
        // DVR records the input as received (`$raw$<code>` when transcoding).
        let source = rt.dvr_source();
        rt.start_dvr(source, self.store.clone(), self.events.clone());
        tracing::info!(stream = %stream.code, inputs = stream.inputs.len(), "stream started");
        self.events.emit(
            EventType::StreamStarted,
            &stream.code,
            serde_json::json!({"inputs": stream.inputs.len()}),
        );
        running.insert(stream.code.clone(), rt);
        Ok(())
    }

    async fn stop_runtime(&self, code: &str) {
        let rt = self.running.lock().await.remove(code);
        if let Some(rt) = rt {
            rt.stop(self.config.stop_timeout).await;
            self.remove_buffers(code);
            tracing::info!(stream = %code, "stream stopped");
            self.events
                .emit(EventType::StreamStopped, code, serde_json::json!({}));
        }
    }
}

impl Coordinator {
    /// Remove (and close) every hub buffer of stream `code`: `<code>`,
    /// `$raw$<code>` and `$r$<code>$track_N`.
    fn remove_buffers(&self, code: &str) {
        self.hub.remove(code);
        self.hub.remove(&os_domain::raw_buffer_id(code));
        let prefix = format!("$r${code}$");
        for id in self.hub.ids() {
            if id.starts_with(&prefix) {
                self.hub.remove(&id);
            }
        }
    }
}

/// `(protocol, in old, in new)` for the play protocols of the shared listeners.
fn play_flags(old: &Stream, new: &Stream) -> [(PlayProtocol, bool, bool); 3] {
    [
        (PlayProtocol::Rtmp, old.protocols.rtmp, new.protocols.rtmp),
        (PlayProtocol::Srt, old.protocols.srt, new.protocols.srt),
        (PlayProtocol::Rtsp, old.protocols.rtsp, new.protocols.rtsp),
    ]
}

fn push_tls(config: &os_publisher::PushConfig) -> Result<Arc<TlsClientConfig>, String> {
    os_publisher::tls_config(config).or_else(|e| {
        tracing::error!(error = %e, "push-out: extra CA certificates not loaded; using the web PKI roots only");
        os_publisher::tls_config(&os_publisher::PushConfig::default())
    })
}
