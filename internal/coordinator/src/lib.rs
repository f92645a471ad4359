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

mod runtime;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use os_domain::Stream;
use os_events::{EventBus, EventType};
use os_hub::Hub;
use os_ingest::PushRegistry;
use os_store::{Store, StoreError};
use tokio::sync::Mutex;

pub use status::{
    BufferStatus, Desired, ErrorStatus, InputStatus, ReaderStatus, RunStatus, StreamStatus,
    TrackStatus,
};

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
    /// `publisher.dash.*`: used for streams with `protocols.dash`.
    pub dash: os_publisher::DashConfig,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            buffer_capacity: 1000,
            stop_timeout: Duration::from_secs(5),
            hls: os_publisher::HlsConfig::default(),
            dash: os_publisher::DashConfig::default(),
        }
    }
}

pub struct Coordinator {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    registry: Arc<PushRegistry>,
    config: CoordinatorConfig,
    /// Running streams by code. Locked for map changes and for the short
    /// start/stop sequences of one stream; never held while waiting on the
    /// network.
    running: Mutex<HashMap<String, Runtime>>,
    /// Where lifecycle events go (`stream.started`/`stopped`, input events).
    events: Arc<EventBus>,
}

impl Coordinator {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        registry: Arc<PushRegistry>,
        config: CoordinatorConfig,
    ) -> Self {
        Self {
            store,
            hub,
            registry,
            config,
            running: Mutex::new(HashMap::new()),
            events: Arc::new(EventBus::new()),
        }
    }

    /// Publish lifecycle events on `bus` (without it they are discarded).
    pub fn with_events(mut self, bus: Arc<EventBus>) -> Self {
        self.events = bus;
        self
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
        started
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
        self.start_runtime(&stored.stream).await?;
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
                    .map(|i| status::input_status(i, None, false))
                    .collect(),
                buffer: None,
            });
        };
        Ok(rt.status(desired))
    }

    /// A stream config was created or changed. A running stream is stopped
    /// when disabled and restarted when its inputs changed; toggling
    /// `protocols.hls` (`protocols.dash`) starts or stops only its HLS (DASH)
    /// publisher; other changes
    /// concern components that are not running yet.
    pub async fn stream_saved(&self, new: &Stream) {
        // An HLS task being switched off is cancelled under the lock and
        // awaited after it is released, so other streams are never blocked
        // behind its file cleanup.
        let mut hls_stopping = None;
        let mut dash_stopping = None;
        let action = {
            let mut running = self.running.lock().await;
            match running.get_mut(&new.code) {
                None => None,
                Some(_) if new.disabled => Some(false),
                Some(rt) if rt.stream.inputs != new.inputs => Some(true),
                Some(rt) => {
                    if rt.stream.protocols.hls != new.protocols.hls {
                        rt.stream.protocols.hls = new.protocols.hls;
                        if new.protocols.hls {
                            rt.start_hls(self.config.hls.clone());
                        } else {
                            hls_stopping = rt.detach_hls();
                        }
                    }
                    if rt.stream.protocols.dash != new.protocols.dash {
                        rt.stream.protocols.dash = new.protocols.dash;
                        if new.protocols.dash {
                            rt.start_dash(self.config.dash.clone());
                        } else {
                            dash_stopping = rt.detach_dash();
                        }
                    }
                    None
                }
            }
        };
        if let Some(task) = hls_stopping {
            runtime::wait_hls_stopped(&new.code, task, self.config.stop_timeout).await;
        }
        if let Some(task) = dash_stopping {
            runtime::wait_publisher_stopped(&new.code, "dash", task, self.config.stop_timeout)
                .await;
        }
        match action {
            Some(false) => {
                if let Err(e) = self.store.set_stream_running(&new.code, false).await {
                    tracing::warn!(stream = %new.code, error = %e, "cannot persist stopped state");
                }
                self.stop_runtime(&new.code).await;
                tracing::info!(stream = %new.code, "stopped: stream was disabled");
            }
            Some(true) => {
                tracing::info!(stream = %new.code, "inputs changed: restarting ingest");
                self.stop_runtime(&new.code).await;
                if let Err(e) = self.start_runtime(new).await {
                    tracing::warn!(stream = %new.code, error = %e, "restart failed");
                }
            }
            None => {}
        }
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
        self.hub.remove(&stream.code);
        let buffer = self
            .hub
            .get_or_create(&stream.code, self.config.buffer_capacity);
        let mut rt = Runtime::start(
            stream.clone(),
            buffer,
            self.registry.clone(),
            self.events.clone(),
            Utc::now(),
        );
        if stream.protocols.hls {
            rt.start_hls(self.config.hls.clone());
        }
        if stream.protocols.dash {
            rt.start_dash(self.config.dash.clone());
        }
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
            self.hub.remove(code);
            tracing::info!(stream = %code, "stream stopped");
            self.events
                .emit(EventType::StreamStopped, code, serde_json::json!({}));
        }
    }
}
