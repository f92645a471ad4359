//! The runtime of one started stream: its task tree and live state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use os_domain::{Input, PushDestination, Stream};
use os_events::EventBus;
use os_hub::Buffer;
use os_ingest::{
    InputStats, InputWorker, Outcome, PlayGate, PlayOpening, PlayProtocol, PushRegistry,
};
use os_manager::{Health, InputRunner, Manager, ManagerConfig, RunningInput};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::status::{self, Desired, RunStatus, StreamStatus};

/// Figures per input priority, shared by the runner (writer) and status.
pub(crate) type StatsMap = Arc<Mutex<BTreeMap<u32, Arc<InputStats>>>>;

pub(crate) struct Runtime {
    pub(crate) stream: Stream,
    started_at: DateTime<Utc>,
    /// Cancelling it stops every task of the stream.
    cancel: CancellationToken,
    /// The main buffer `<code>`: the input (passthrough) or the first
    /// rendition (transcoded); RTMP/SRT/RTSP play, push-out and DASH read it.
    buffer: Arc<Buffer>,
    /// The buffer the input manager writes: `buffer` itself, or
    /// `$raw$<code>` when the stream transcodes (what the DVR records).
    input: Arc<Buffer>,
    /// With a transcoder: FFmpeg between `$raw$<code>` and the renditions.
    transcode: Option<Transcode>,
    stats: StatsMap,
    /// Runs the inputs and feeds the buffer from the best one.
    manager: Option<Manager>,
    /// The HLS publisher, when `protocols.hls` (its token is a child of
    /// `cancel`, so stopping the stream stops it too).
    hls: Option<(CancellationToken, JoinHandle<()>)>,
    /// The DASH publisher, when `protocols.dash` (same lifetime rules).
    dash: Option<(CancellationToken, JoinHandle<()>)>,
    /// Play over the shared listeners (`protocols.rtmp` / `.srt` / `.rtsp`):
    /// held while open; dropping one disconnects that protocol's players.
    play: Vec<PlayOpening>,
    play_protocols: Vec<PlayProtocol>,
    /// Push-out tasks, one per enabled `push[]` destination, in config order.
    push: Vec<PushOut>,
    next_push: usize,
    /// The DVR recorder, when `dvr.enabled` (see [`Self::start_dvr`]).
    dvr: Option<DvrRun>,
}

/// A recorder and the task that records its lifecycle in the store.
struct DvrRun {
    cancel: CancellationToken,
    status: Arc<Mutex<os_dvr::DvrStatus>>,
    /// Ends after the recorder ended and its outcome was stored.
    watcher: JoinHandle<()>,
}

/// The transcoder part of a running stream.
pub(crate) struct Transcode {
    pub(crate) tc: os_transcoder::StreamTranscoder,
    /// `$r$<code>$track_N`, in track order.
    pub(crate) renditions: Vec<Arc<Buffer>>,
}

struct PushOut {
    dest: PushDestination,
    cancel: CancellationToken,
    stats: Arc<os_publisher::PushStats>,
}

impl Runtime {
    /// Start the input manager writing into `input` (`buffer` itself, or
    /// `$raw$<code>` when the stream transcodes).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        stream: Stream,
        buffer: Arc<Buffer>,
        input: Arc<Buffer>,
        cancel: CancellationToken,
        registry: Arc<PushRegistry>,
        events: Arc<EventBus>,
        config: ManagerConfig,
        now: DateTime<Utc>,
    ) -> Self {
        let stats: StatsMap = Arc::default();
        let runner = Arc::new(IngestRunner {
            stream: stream.code.clone(),
            registry,
            stats: stats.clone(),
            cancel: cancel.clone(),
        });
        let manager = Manager::spawn(
            stream.code.clone(),
            stream.inputs.clone(),
            input.clone(),
            runner,
            events,
            config,
        );
        Self {
            stream,
            started_at: now,
            cancel,
            buffer,
            input,
            transcode: None,
            stats,
            manager: Some(manager),
            hls: None,
            dash: None,
            play: Vec::new(),
            play_protocols: Vec::new(),
            push: Vec::new(),
            next_push: 0,
            dvr: None,
        }
    }

    /// Start recording `source` (the stream buffer `<code>`; with a
    /// transcoder, the raw input buffer) per the stream's `dvr` config
    /// (no-op when a recorder runs or DVR is not enabled). The recording
    /// record is upserted as `recording`, then as `stopped`/`failed` when
    /// the recorder ends.
    pub(crate) fn start_dvr(
        &mut self,
        source: Arc<Buffer>,
        store: Arc<dyn os_store::Store>,
        events: Arc<EventBus>,
    ) {
        if self.dvr.is_some() {
            return;
        }
        let Some(config) = self.stream.dvr.clone().filter(|d| d.enabled) else {
            return;
        };
        let code = self.stream.code.clone();
        let settings = os_dvr::DvrSettings::new(&config, &code);
        let cancel = self.cancel.child_token();
        let recorder = os_dvr::spawn_recorder(
            code.clone(),
            source,
            settings.clone(),
            events,
            cancel.clone(),
        );
        let (_, status, task) = recorder.into_parts();
        let watcher = tokio::spawn(async move {
            let started_at = match store.get_recording(&code).await {
                Ok(r) => r.started_at,
                Err(_) => Utc::now(),
            };
            let mut rec = os_domain::Recording {
                id: code.clone(),
                stream_code: code.clone(),
                started_at,
                stopped_at: None,
                status: os_domain::RecordingStatus::Recording,
                segment_dir: settings.dir.display().to_string(),
            };
            if let Err(e) = store.put_recording(&rec).await {
                tracing::warn!(stream = %code, error = %e, "dvr: cannot save the recording record");
            }
            let outcome = task
                .await
                .unwrap_or(os_dvr::Outcome::Failed("recorder panicked".into()));
            rec.stopped_at = Some(Utc::now());
            rec.status = match outcome {
                os_dvr::Outcome::Stopped => os_domain::RecordingStatus::Stopped,
                os_dvr::Outcome::Failed(_) => os_domain::RecordingStatus::Failed,
            };
            if let Err(e) = store.put_recording(&rec).await {
                tracing::warn!(stream = %code, error = %e, "dvr: cannot save the recording record");
            }
        });
        self.dvr = Some(DvrRun {
            cancel,
            status,
            watcher,
        });
    }

    /// Stop the recorder (it closes its segment and makes the playlist VOD)
    /// and hand back the task to await without holding the coordinator's lock.
    pub(crate) fn detach_dvr(&mut self) -> Option<JoinHandle<()>> {
        self.dvr.take().map(|d| {
            d.cancel.cancel();
            d.watcher
        })
    }

    /// A recorder is running (not ended by an error).
    pub(crate) fn is_recording(&self) -> bool {
        self.dvr.as_ref().is_some_and(|d| !d.watcher.is_finished())
    }

    /// The hub buffer the DVR records: the input as received — the stream
    /// buffer `<code>`, or `$raw$<code>` when a transcoder feeds `<code>`.
    pub(crate) fn dvr_source(&self) -> Arc<Buffer> {
        self.input.clone()
    }

    /// Attach the transcoder (started by the coordinator).
    pub(crate) fn set_transcode(&mut self, t: Transcode) {
        self.transcode = Some(t);
    }

    pub(crate) fn transcode_mut(&mut self) -> Option<&mut Transcode> {
        self.transcode.as_mut()
    }

    /// The input list changed: the manager applies the difference.
    pub(crate) fn update_inputs(&mut self, inputs: Vec<Input>) {
        if let Ok(mut stats) = self.stats.lock() {
            stats.retain(|p, _| inputs.iter().any(|i| i.priority == *p));
        }
        self.stream.inputs = inputs.clone();
        if let Some(m) = &self.manager {
            m.update_inputs(inputs);
        }
    }

    /// A handle to ask the manager for a manual switch without holding the
    /// coordinator's lock.
    pub(crate) fn activate_handle(&self) -> os_manager::Activator {
        match &self.manager {
            Some(m) => m.activator(),
            None => os_manager::Activator::closed(),
        }
    }

    /// Start the HLS publisher on the stream's buffer (no-op when running).
    pub(crate) fn start_hls(&mut self, config: os_publisher::HlsConfig) {
        if self.hls.is_some() {
            return;
        }
        let cancel = self.cancel.child_token();
        let task = match &self.transcode {
            // Transcoded: master playlist + one media playlist per rendition.
            Some(t) => os_publisher::spawn_hls_abr(
                self.stream.code.clone(),
                renditions(&self.stream, &t.renditions),
                config,
                cancel.clone(),
            ),
            None => os_publisher::spawn_hls(
                self.stream.code.clone(),
                self.buffer.clone(),
                config,
                cancel.clone(),
            ),
        };
        self.hls = Some((cancel, task));
    }

    pub(crate) fn has_hls(&self) -> bool {
        self.hls.is_some()
    }

    pub(crate) fn has_dash(&self) -> bool {
        self.dash.is_some()
    }

    /// Let players play the stream over `protocol` (no-op when open).
    pub(crate) fn start_play(&mut self, gate: &Arc<PlayGate>, protocol: PlayProtocol) {
        if self.play_protocols.contains(&protocol) {
            return;
        }
        self.play.push(gate.open(protocol, &self.stream.code));
        self.play_protocols.push(protocol);
    }

    /// Close play over `protocol`: its players are disconnected.
    pub(crate) fn detach_play(&mut self, protocol: PlayProtocol) {
        if let Some(i) = self.play_protocols.iter().position(|p| *p == protocol) {
            self.play_protocols.remove(i);
            self.play.remove(i);
        }
    }

    /// Run exactly the enabled destinations of `dests`: those already running
    /// with the same settings keep going untouched; removed, disabled or
    /// changed ones are stopped; new ones are started.
    pub(crate) fn update_push(
        &mut self,
        dests: &[PushDestination],
        tls: Option<&Arc<os_publisher::push::TlsClientConfig>>,
    ) {
        let mut old = std::mem::take(&mut self.push);
        for dest in dests.iter().filter(|d| d.enabled) {
            if let Some(i) = old.iter().position(|p| p.dest == *dest) {
                self.push.push(old.remove(i));
                continue;
            }
            let Some(tls) = tls else {
                tracing::error!(stream = %self.stream.code, "push-out: no TLS setup; destination not started");
                continue;
            };
            let cancel = self.cancel.child_token();
            let target = os_publisher::PushTarget {
                url: dest.url.trim().to_string(),
                timeout: Duration::from_secs(u64::from(dest.timeout_sec.max(1))),
                retry: Duration::from_secs(u64::from(dest.retry_timeout_sec)),
            };
            let (stats, _task) = os_publisher::spawn_push(
                self.stream.code.clone(),
                self.next_push,
                target,
                self.buffer.clone(),
                tls.clone(),
                cancel.clone(),
            );
            self.next_push += 1;
            self.push.push(PushOut {
                dest: dest.clone(),
                cancel,
                stats,
            });
        }
        for gone in old {
            gone.cancel.cancel();
        }
        self.stream.push = dests.to_vec();
    }

    /// Cancel the HLS publisher and hand back its task, so the caller can
    /// wait for it without holding the coordinator's lock.
    pub(crate) fn detach_hls(&mut self) -> Option<JoinHandle<()>> {
        self.hls.take().map(|(cancel, task)| {
            cancel.cancel();
            task
        })
    }

    /// Stop the HLS publisher and wait (bounded) until its files are gone.
    pub(crate) async fn stop_hls(&mut self, timeout: Duration) {
        if let Some(task) = self.detach_hls() {
            wait_hls_stopped(&self.stream.code, task, timeout).await;
        }
    }

    /// Start the DASH publisher on the stream's buffer (no-op when running).
    pub(crate) fn start_dash(&mut self, config: os_publisher::DashConfig) {
        if self.dash.is_some() {
            return;
        }
        let cancel = self.cancel.child_token();
        let task = match &self.transcode {
            // Transcoded into several renditions: every rendition a
            // Representation of one video AdaptationSet. A single rendition
            // is also in the main buffer: plain DASH.
            Some(t) if t.renditions.len() > 1 => os_publisher::spawn_dash_abr(
                self.stream.code.clone(),
                renditions(&self.stream, &t.renditions),
                config,
                cancel.clone(),
            ),
            _ => os_publisher::spawn_dash(
                self.stream.code.clone(),
                self.buffer.clone(),
                config,
                cancel.clone(),
            ),
        };
        self.dash = Some((cancel, task));
    }

    /// Cancel the DASH publisher and hand back its task (see [`Self::detach_hls`]).
    pub(crate) fn detach_dash(&mut self) -> Option<JoinHandle<()>> {
        self.dash.take().map(|(cancel, task)| {
            cancel.cancel();
            task
        })
    }

    pub(crate) async fn stop(mut self, timeout: Duration) {
        // Owned here (already out of the coordinator's map): waiting is fine.
        self.cancel.cancel();
        self.play.clear();
        let dvr = self.detach_dvr();
        self.stop_hls(timeout).await;
        if let Some(task) = dvr {
            wait_publisher_stopped(&self.stream.code, "dvr", task, timeout).await;
        }
        if let Some(task) = self.detach_dash() {
            wait_publisher_stopped(&self.stream.code, "dash", task, timeout).await;
        }
        if let Some(t) = self.transcode.take() {
            t.tc.stop(timeout).await;
        }
        if let Some(m) = self.manager.take() {
            m.stop(timeout).await;
        }
    }

    pub(crate) fn status(&self, desired: Desired) -> StreamStatus {
        let report = self
            .manager
            .as_ref()
            .map(Manager::report)
            .unwrap_or_default();
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let inputs: Vec<_> = self
            .stream
            .inputs
            .iter()
            .map(|input| {
                let snap = stats.get(&input.priority).map(|s| s.snapshot());
                let health = report.inputs.iter().find(|h| h.priority == input.priority);
                status::input_status(input, snap.as_ref(), health)
            })
            .collect();
        let active = report
            .active
            .and_then(|a| report.inputs.iter().find(|h| h.priority == a));
        let run = match active.map(|h| h.health) {
            Some(Health::Healthy) => RunStatus::Active,
            Some(Health::Degraded) => RunStatus::Degraded,
            _ if report.inputs.iter().all(|h| h.health == Health::Degraded)
                && !report.inputs.is_empty() =>
            {
                RunStatus::Degraded
            }
            _ => RunStatus::Idle,
        };
        let uptime = (Utc::now() - self.started_at).num_seconds().max(0) as u64;
        StreamStatus {
            code: self.stream.code.clone(),
            desired,
            status: run,
            pipeline_active: true,
            started_at: Some(self.started_at),
            uptime_sec: Some(uptime),
            active_input: report.active,
            inputs,
            switches: report.switches,
            buffer: Some(status::buffer_status(&self.buffer.stats())),
            push: self
                .push
                .iter()
                .map(|p| status::push_status(&p.dest.url, &p.stats.snapshot()))
                .collect(),
            dvr: self.dvr.as_ref().map(|d| {
                d.status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            }),
            transcoder: self.transcoder_status(),
        }
    }
}

impl Runtime {
    pub(crate) fn transcoder_status(&self) -> Option<os_transcoder::TranscoderStatus> {
        self.transcode.as_ref().map(|t| t.tc.status())
    }
}

/// The HLS/DASH renditions of a transcoded stream, with their declared peak
/// bitrate (profile max or target bitrate, plus audio), bit/s.
fn renditions(stream: &Stream, buffers: &[Arc<Buffer>]) -> Vec<os_publisher::Rendition> {
    let tc = stream.transcoder.as_ref();
    buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let video = tc
                .filter(|t| !t.video.copy)
                .and_then(|t| t.video.profiles.get(i))
                .map_or(0, |p| u64::from(p.max_bitrate.max(p.bitrate)));
            let audio = tc
                .filter(|t| !t.audio.copy)
                .map_or(0, |t| u64::from(t.audio.bitrate));
            os_publisher::Rendition {
                name: format!("track_{}", i + 1),
                buffer: b.clone(),
                declared_bandwidth: if video > 0 { (video + audio) * 1000 } else { 0 },
            }
        })
        .collect()
}

/// Starts input workers (ingest) for the manager.
struct IngestRunner {
    stream: String,
    registry: Arc<PushRegistry>,
    stats: StatsMap,
    /// The stream's token: inputs stop with the stream.
    cancel: CancellationToken,
}

impl InputRunner for IngestRunner {
    fn start(&self, input: &Input, sink: Arc<Buffer>) -> Box<dyn RunningInput> {
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(input.priority)
            .or_default()
            .clone();
        let cancel = self.cancel.child_token();
        let ended = Arc::new(Mutex::new(None));
        let worker = InputWorker {
            stream: self.stream.clone(),
            input: input.clone(),
            buffer: sink,
            stats: stats.clone(),
            registry: self.registry.clone(),
            cancel: cancel.clone(),
        };
        let slot = ended.clone();
        tokio::spawn(async move {
            let why = match worker.run().await {
                Outcome::Cancelled => return,
                Outcome::Finished => "source ended".to_string(),
                Outcome::Failed(e) => e.to_string(),
            };
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
        });
        let errors_at_start = stats.errors();
        Box::new(RunningIngest {
            stats,
            cancel,
            ended,
            errors_at_start,
        })
    }
}

struct RunningIngest {
    stats: Arc<InputStats>,
    cancel: CancellationToken,
    ended: Arc<Mutex<Option<String>>>,
    errors_at_start: u64,
}

impl RunningInput for RunningIngest {
    fn errors(&self) -> u64 {
        self.stats.errors().saturating_sub(self.errors_at_start)
    }

    fn last_error(&self) -> Option<String> {
        self.stats.last_error_message()
    }

    fn ended(&self) -> Option<String> {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stop(&mut self) {
        self.cancel.cancel();
    }
}

/// Wait (bounded) for a detached HLS publisher task to finish removing its files.
pub(crate) async fn wait_hls_stopped(code: &str, task: JoinHandle<()>, timeout: Duration) {
    wait_publisher_stopped(code, "hls", task, timeout).await;
}

/// Wait (bounded) for a detached publisher task (`what`: "hls", "dash") to
/// finish removing its files.
pub(crate) async fn wait_publisher_stopped(
    code: &str,
    what: &str,
    task: JoinHandle<()>,
    timeout: Duration,
) {
    if tokio::time::timeout(timeout, task).await.is_err() {
        tracing::warn!(stream = %code, publisher = what, "publisher did not stop in time");
    }
}
