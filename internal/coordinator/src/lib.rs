//! The coordinator owns every stream's runtime.
//!
//! It is the single place that decides whether a stream runs: the API asks
//! it to start and stop streams and tells it about saved or deleted stream
//! configs; at boot it resumes the streams that were running when the server
//! stopped. The desired state is persisted through the [`Store`], so it
//! survives restarts.
//!
//! The media pipeline (hub, ingest, manager, publishers, DVR) plugs in
//! behind [`Coordinator::start`] / [`Coordinator::stop`]; until a stream has
//! a pipeline its status is `idle` while started.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use os_domain::Stream;
use os_store::{Store, StoreError};
use serde::Serialize;
use tokio::sync::Mutex;
use utoipa::ToSchema;

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

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Stopped,
}

/// What is actually happening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Not started.
    Stopped,
    /// Started, but no input is delivering media.
    Idle,
    /// Started and the active input delivers media.
    Active,
    /// Started, but every input has failed.
    Degraded,
}

/// One configured input as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InputStatus {
    pub priority: u32,
    /// The input URL with any password removed.
    pub url: String,
    /// Detected protocol (`rtmp`, `srt`, `hls`, ...).
    pub protocol: String,
    /// `pull` or `push`.
    pub mode: String,
    /// `idle` | `active` | `degraded`.
    pub status: String,
}

/// `GET /streams/{code}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StreamStatus {
    pub code: String,
    pub desired: Desired,
    pub status: RunStatus,
    /// True while the media pipeline of the stream is running.
    pub pipeline_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub inputs: Vec<InputStatus>,
}

/// Runtime of one started stream.
struct Runtime {
    started_at: DateTime<Utc>,
}

pub struct Coordinator {
    store: Arc<dyn Store>,
    /// Started streams by code. Held only for map updates, never across I/O.
    running: Mutex<HashMap<String, Runtime>>,
}

impl Coordinator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            running: Mutex::new(HashMap::new()),
        }
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
        let rt = running.get(code);
        Ok(StreamStatus {
            code: code.to_string(),
            desired: if stored.running {
                Desired::Running
            } else {
                Desired::Stopped
            },
            status: if rt.is_some() {
                RunStatus::Idle
            } else {
                RunStatus::Stopped
            },
            pipeline_active: false,
            started_at: rt.map(|r| r.started_at),
            inputs: stored.stream.inputs.iter().map(input_status).collect(),
        })
    }

    /// A stream config was created or changed.
    pub async fn stream_saved(&self, new: &Stream) {
        if new.disabled && self.running.lock().await.contains_key(&new.code) {
            if let Err(e) = self.store.set_stream_running(&new.code, false).await {
                tracing::warn!(stream = %new.code, error = %e, "cannot persist stopped state");
            }
            self.stop_runtime(&new.code).await;
            tracing::info!(stream = %new.code, "stopped: stream was disabled");
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
        let mut running = self.running.lock().await;
        if !running.contains_key(&stream.code) {
            running.insert(
                stream.code.clone(),
                Runtime {
                    started_at: Utc::now(),
                },
            );
            tracing::info!(stream = %stream.code, inputs = stream.inputs.len(), "stream started");
        }
        Ok(())
    }

    async fn stop_runtime(&self, code: &str) {
        if self.running.lock().await.remove(code).is_some() {
            tracing::info!(stream = %code, "stream stopped");
        }
    }
}

fn input_status(input: &os_domain::Input) -> InputStatus {
    let (protocol, mode) = match os_protocol::detect(&input.url) {
        Ok(d) => (
            d.protocol.name().to_string(),
            if d.is_push() { "push" } else { "pull" }.to_string(),
        ),
        Err(_) => ("unknown".to_string(), "pull".to_string()),
    };
    InputStatus {
        priority: input.priority,
        url: redact(&input.url),
        protocol,
        mode,
        status: "idle".to_string(),
    }
}

/// Remove the password from a URL for display.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("rtsp://u:secret@cam/x"), "rtsp://u:***@cam/x");
        assert_eq!(redact("rtmp://host/live/k"), "rtmp://host/live/k");
        assert_eq!(redact("/abs/file.ts"), "/abs/file.ts");
    }
}
