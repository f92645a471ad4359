//! The runtime of one started stream: its task tree and live state.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use os_domain::Stream;
use os_events::{EventBus, EventType};
use os_hub::Buffer;
use os_ingest::{InputStats, InputWorker, Outcome, PushRegistry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::status::{self, Desired, RunStatus, StreamStatus};

/// No input is active.
const NONE: usize = usize::MAX;

pub(crate) struct Runtime {
    pub(crate) stream: Stream,
    started_at: DateTime<Utc>,
    /// Cancelling it stops every task of the stream.
    cancel: CancellationToken,
    buffer: Arc<Buffer>,
    /// Figures per input, in the order of `stream.inputs`.
    stats: Vec<Arc<InputStats>>,
    /// Index (into `stream.inputs`) of the input feeding the buffer; written
    /// by the supervisor, read by status.
    active: Arc<AtomicUsize>,
    supervisor: JoinHandle<()>,
    /// The HLS publisher, when `protocols.hls` (its token is a child of
    /// `cancel`, so stopping the stream stops it too).
    hls: Option<(CancellationToken, JoinHandle<()>)>,
    /// The DASH publisher, when `protocols.dash` (same lifetime rules).
    dash: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Runtime {
    pub(crate) fn start(
        stream: Stream,
        buffer: Arc<Buffer>,
        registry: Arc<PushRegistry>,
        events: Arc<EventBus>,
        now: DateTime<Utc>,
    ) -> Self {
        let cancel = CancellationToken::new();
        let stats: Vec<Arc<InputStats>> = stream
            .inputs
            .iter()
            .map(|_| Arc::new(InputStats::default()))
            .collect();
        let active = Arc::new(AtomicUsize::new(NONE));
        let supervisor = tokio::spawn(supervise(
            stream.clone(),
            buffer.clone(),
            stats.clone(),
            active.clone(),
            registry,
            events,
            cancel.clone(),
        ));
        Self {
            stream,
            started_at: now,
            cancel,
            buffer,
            stats,
            active,
            supervisor,
            hls: None,
            dash: None,
        }
    }

    /// Start the HLS publisher on the stream's buffer (no-op when running).
    pub(crate) fn start_hls(&mut self, config: os_publisher::HlsConfig) {
        if self.hls.is_some() {
            return;
        }
        let cancel = self.cancel.child_token();
        let task = os_publisher::spawn_hls(
            self.stream.code.clone(),
            self.buffer.clone(),
            config,
            cancel.clone(),
        );
        self.hls = Some((cancel, task));
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
        let task = os_publisher::spawn_dash(
            self.stream.code.clone(),
            self.buffer.clone(),
            config,
            cancel.clone(),
        );
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
        self.stop_hls(timeout).await;
        if let Some(task) = self.detach_dash() {
            wait_publisher_stopped(&self.stream.code, "dash", task, timeout).await;
        }
        let code = self.stream.code.clone();
        if tokio::time::timeout(timeout, self.supervisor)
            .await
            .is_err()
        {
            tracing::warn!(stream = %code, "stream tasks did not stop in time");
        }
    }

    pub(crate) fn status(&self, desired: Desired) -> StreamStatus {
        let active = self.active.load(Ordering::Relaxed);
        let inputs: Vec<_> = self
            .stream
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let snap = self.stats.get(i).map(|s| s.snapshot());
                status::input_status(input, snap.as_ref(), i == active)
            })
            .collect();
        let run = match inputs.get(active).map(|i| i.status.as_str()) {
            Some("active") => RunStatus::Active,
            Some("degraded") => RunStatus::Degraded,
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
            active_input: self.stream.inputs.get(active).map(|i| i.priority),
            inputs,
            buffer: Some(status::buffer_status(&self.buffer.stats())),
        }
    }
}

/// Run the inputs in priority order: the best one runs (its worker retries
/// by itself); when it gives up or a finite source ends, the next one takes
/// over, wrapping around. Prioritised failover on health (silence, errors)
/// belongs to the input-health manager, which replaces this loop.
async fn supervise(
    stream: Stream,
    buffer: Arc<Buffer>,
    stats: Vec<Arc<InputStats>>,
    active: Arc<AtomicUsize>,
    registry: Arc<PushRegistry>,
    events: Arc<EventBus>,
    cancel: CancellationToken,
) {
    let mut order: Vec<usize> = (0..stream.inputs.len()).collect();
    order.sort_by_key(|i| stream.inputs[*i].priority);
    let mut pos = 0;
    while let Some(&idx) = order.get(pos) {
        active.store(idx, Ordering::Relaxed);
        let worker = InputWorker {
            stream: stream.code.clone(),
            input: stream.inputs[idx].clone(),
            buffer: buffer.clone(),
            stats: stats[idx].clone(),
            registry: registry.clone(),
            cancel: cancel.child_token(),
        };
        let outcome = worker.run().await;
        if cancel.is_cancelled() || outcome == Outcome::Cancelled {
            break;
        }
        let (reason, error) = match &outcome {
            Outcome::Failed(e) => (e.kind.as_str(), Some(e.message.clone())),
            _ => ("finished", None),
        };
        let from = stream.inputs[idx].priority;
        events.emit(
            EventType::InputDegraded,
            &stream.code,
            serde_json::json!({"input_priority": from, "reason": reason, "error": error}),
        );
        pos = (pos + 1) % order.len();
        if let Some(&next) = order.get(pos) {
            let to = stream.inputs[next].priority;
            tracing::warn!(
                stream = %stream.code,
                from,
                to,
                outcome = ?outcome,
                "switching input"
            );
            if next != idx {
                events.emit(
                    EventType::InputFailover,
                    &stream.code,
                    serde_json::json!({"from": from, "to": to, "reason": reason}),
                );
            }
        }
        if pos == 0 {
            // Every input had its turn: pause before starting over.
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    active.store(NONE, Ordering::Relaxed);
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
