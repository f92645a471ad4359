//! One input's life: connect, read into the hub, and on failure reconnect
//! with exponential backoff (`net.reconnect`, `reconnect_delay_sec`,
//! `reconnect_max_delay_sec`), until cancelled.

use std::sync::Arc;
use std::time::Duration;

use os_domain::Input;
use os_hub::Buffer;
use os_protocol::{Detected, Mode, Protocol};
use tokio_util::sync::CancellationToken;

use crate::emit::TsEmitter;
use crate::error::IngestError;
use crate::push::{PushProtocol, PushRegistry};
use crate::stats::{InputState, InputStats};
use crate::{Session, redact};

/// Why a worker returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Cancelled (stream stopped, input switched or removed).
    Cancelled,
    /// A finite source (file or object without `loop`) was read to the end.
    Finished,
    /// Failed and will not retry (reconnect off, or unusable configuration).
    Failed(IngestError),
}

/// Everything one input worker needs.
pub struct InputWorker {
    /// Stream code (for logs).
    pub stream: String,
    pub input: Input,
    /// The stream's hub buffer.
    pub buffer: Arc<Buffer>,
    pub stats: Arc<InputStats>,
    pub registry: Arc<PushRegistry>,
    pub cancel: CancellationToken,
}

impl InputWorker {
    pub async fn run(self) -> Outcome {
        let url = self.input.url.trim().to_string();
        let shown = redact(&url);
        let detected = match os_protocol::detect(&url) {
            Ok(d) => d,
            Err(e) => {
                let err = IngestError::config(e.to_string());
                self.fail(&shown, &err);
                return Outcome::Failed(err);
            }
        };
        if let Mode::PushListen { key } = &detected.mode {
            return self.run_push(&detected, key, &shown).await;
        }

        let net = &self.input.net;
        let first_delay = Duration::from_secs(u64::from(net.reconnect_delay_sec.max(1)));
        let max_delay = Duration::from_secs(u64::from(
            net.reconnect_max_delay_sec
                .max(net.reconnect_delay_sec)
                .max(1),
        ));
        let mut delay = first_delay;
        loop {
            self.stats.set_state(InputState::Connecting);
            let packets_before = self.stats.packets();
            let mut out = TsEmitter::new(self.buffer.clone(), self.stats.clone());
            let session = Session {
                stream: &self.stream,
                input: &self.input,
                url: &url,
                detected: &detected,
                stats: &self.stats,
                cancel: &self.cancel,
            };
            tracing::info!(stream = %self.stream, input = self.input.priority, url = %shown, "input connecting");
            let result = tokio::select! {
                () = self.cancel.cancelled() => {
                    let _ = out.flush();
                    self.stats.set_state(InputState::Idle);
                    return Outcome::Cancelled;
                }
                r = crate::open_session(&session, &mut out) => r,
            };
            let _ = out.flush();
            let progressed = self.stats.packets() > packets_before;
            if progressed {
                delay = first_delay;
            }
            let err = match result {
                Ok(()) if is_finite(&detected, &url) => {
                    tracing::info!(stream = %self.stream, input = self.input.priority, url = %shown, "input finished");
                    self.stats.set_state(InputState::Idle);
                    return Outcome::Finished;
                }
                Ok(()) => IngestError::ended("source ended"),
                Err(e) => e,
            };
            if !net.reconnect || !err.is_retryable() {
                self.fail(&shown, &err);
                return Outcome::Failed(err);
            }
            self.stats.set_state(InputState::Degraded);
            self.stats.record_error(err.to_string());
            self.stats.record_reconnect();
            tracing::warn!(
                stream = %self.stream, input = self.input.priority, url = %shown,
                error = %err, retry_in_sec = delay.as_secs_f32(), "input failed; reconnecting"
            );
            tokio::select! {
                () = self.cancel.cancelled() => {
                    self.stats.set_state(InputState::Idle);
                    return Outcome::Cancelled;
                }
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(max_delay);
        }
    }

    async fn run_push(&self, detected: &Detected, key: &str, shown: &str) -> Outcome {
        let protocol = match detected.protocol {
            Protocol::Srt => PushProtocol::Srt,
            _ => PushProtocol::Rtmp,
        };
        let registration = match self.registry.register(
            protocol,
            key,
            &self.stream,
            self.buffer.clone(),
            self.stats.clone(),
        ) {
            Ok(r) => r,
            Err(e) => {
                let err = IngestError::config(e.to_string());
                self.fail(shown, &err);
                return Outcome::Failed(err);
            }
        };
        self.stats.set_state(InputState::Connecting);
        tracing::info!(
            stream = %self.stream, input = self.input.priority, url = %shown,
            listener = protocol.as_str(), key, "waiting for a publisher"
        );
        self.cancel.cancelled().await;
        drop(registration);
        self.stats.set_state(InputState::Idle);
        Outcome::Cancelled
    }

    fn fail(&self, shown: &str, err: &IngestError) {
        self.stats.set_state(InputState::Degraded);
        self.stats.record_error(err.to_string());
        tracing::error!(stream = %self.stream, input = self.input.priority, url = %shown, error = %err, "input failed");
    }
}

/// Files and objects end; a live source that ends is reconnected. With
/// `?loop=true` the reader loops by itself and never returns `Ok`.
fn is_finite(detected: &Detected, url: &str) -> bool {
    matches!(detected.protocol, Protocol::File | Protocol::S3) && !loops(url)
}

/// Whether the URL's query says `loop=true` (bare paths are file URLs).
fn loops(url: &str) -> bool {
    let parsed = if url.starts_with('/') {
        url::Url::parse(&format!("file://{url}"))
    } else {
        url::Url::parse(url)
    };
    parsed.is_ok_and(|u| u.query_pairs().any(|(k, v)| k == "loop" && v == "true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_sources() {
        let d = |u: &str| os_protocol::detect(u).unwrap_or_else(|e| panic!("{u}: {e}"));
        for (url, finite) in [
            ("/a/b.ts", true),
            ("/a/b.ts?loop=true", false),
            ("/a/b.ts?loop=false", true),
            ("file:///a/loop=true.ts", true),
            ("s3://b/k?region=x&loop=true", false),
            ("s3://b/k?noloop=true", true),
            ("rtmp://h/app/k", false),
        ] {
            assert_eq!(is_finite(&d(url), url), finite, "{url}");
        }
    }
}
