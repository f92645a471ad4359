//! Routing pushes on the shared listeners to streams.
//!
//! A stream whose input is `rtmp://0.0.0.0:1935/live/<key>` (or
//! `srt://0.0.0.0:9999?streamid=<key>`) *registers* its key while that input
//! runs. A publisher arriving on the shared RTMP/SRT listener *claims* the
//! key: unknown keys and a second publisher on a live key are refused. The
//! claim carries a [`TsEmitter`] into the stream's hub buffer, so the
//! connection task writes media exactly like a pull reader does.
//!
//! The same listeners will serve players (RTMP `play`, SRT `m=request`);
//! they look streams up by code through the hub, not through this registry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use os_hub::Buffer;
use tokio_util::sync::CancellationToken;

use crate::emit::TsEmitter;
use crate::stats::{InputState, InputStats};

/// Which shared listener a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushProtocol {
    Rtmp,
    Srt,
}

impl PushProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            PushProtocol::Rtmp => "rtmp",
            PushProtocol::Srt => "srt",
        }
    }
}

/// Why a publisher is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("unknown stream key")]
    UnknownKey,
    #[error("stream \"{0}\" already has a publisher on this key")]
    Busy(String),
}

/// Why an input cannot register its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("push key \"{key}\" is already used by stream \"{stream}\"")]
pub struct KeyInUse {
    pub key: String,
    pub stream: String,
}

struct Slot {
    stream: String,
    generation: u64,
    buffer: Arc<Buffer>,
    stats: Arc<InputStats>,
    /// Cancelled when the registering input stops; claims hold children of it.
    cancel: CancellationToken,
    busy: bool,
}

/// Keys currently open for pushes. Shared by the push inputs (register) and
/// the listeners (claim).
#[derive(Default)]
pub struct PushRegistry {
    /// A std mutex: every critical section is a map access, never I/O.
    slots: Mutex<HashMap<(PushProtocol, String), Slot>>,
    generations: AtomicU64,
}

/// Held by a running push input; dropping it closes the key and
/// disconnects any publisher on it.
pub struct Registration {
    registry: Arc<PushRegistry>,
    key: (PushProtocol, String),
    generation: u64,
    cancel: CancellationToken,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Ok(mut slots) = self.registry.slots.lock()
            && slots
                .get(&self.key)
                .is_some_and(|s| s.generation == self.generation)
        {
            slots.remove(&self.key);
        }
    }
}

/// A publisher's hold on a key. Write media through [`PushClaim::emitter`];
/// stop when [`PushClaim::cancelled`] fires (the input was stopped). Dropping
/// the claim frees the key for the next publisher.
pub struct PushClaim {
    registry: Arc<PushRegistry>,
    key: (PushProtocol, String),
    generation: u64,
    pub stream: String,
    pub emitter: TsEmitter,
    stats: Arc<InputStats>,
    cancel: CancellationToken,
}

impl PushClaim {
    /// Fires when the stream's push input stops (stream stopped, input removed).
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// [`Self::cancelled`] as an owned future, to keep across many awaits.
    pub fn cancelled_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }

    pub fn stats(&self) -> &Arc<InputStats> {
        &self.stats
    }
}

impl Drop for PushClaim {
    fn drop(&mut self) {
        let _ = self.emitter.flush();
        if let Ok(mut slots) = self.registry.slots.lock()
            && let Some(slot) = slots.get_mut(&self.key)
            && slot.generation == self.generation
        {
            slot.busy = false;
        }
        self.stats.set_state(InputState::Connecting);
        self.stats.record_error("publisher disconnected");
    }
}

impl PushRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Open `key` on the `protocol` listener for `stream`.
    pub fn register(
        self: &Arc<Self>,
        protocol: PushProtocol,
        key: &str,
        stream: &str,
        buffer: Arc<Buffer>,
        stats: Arc<InputStats>,
    ) -> Result<Registration, KeyInUse> {
        let mut slots = self.slots.lock().map_err(|_| KeyInUse {
            key: key.to_string(),
            stream: "?".into(),
        })?;
        let k = (protocol, key.to_string());
        if let Some(existing) = slots.get(&k) {
            return Err(KeyInUse {
                key: key.to_string(),
                stream: existing.stream.clone(),
            });
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        slots.insert(
            k.clone(),
            Slot {
                stream: stream.to_string(),
                generation,
                buffer,
                stats,
                cancel: cancel.clone(),
                busy: false,
            },
        );
        Ok(Registration {
            registry: self.clone(),
            key: k,
            generation,
            cancel,
        })
    }

    /// A publisher wants to push to `key`.
    pub fn claim(
        self: &Arc<Self>,
        protocol: PushProtocol,
        key: &str,
    ) -> Result<PushClaim, ClaimError> {
        let mut slots = self.slots.lock().map_err(|_| ClaimError::UnknownKey)?;
        let k = (protocol, key.to_string());
        let slot = slots.get_mut(&k).ok_or(ClaimError::UnknownKey)?;
        if slot.busy {
            return Err(ClaimError::Busy(slot.stream.clone()));
        }
        slot.busy = true;
        let mut emitter = TsEmitter::new(slot.buffer.clone(), slot.stats.clone());
        emitter.discontinuity();
        Ok(PushClaim {
            registry: self.clone(),
            key: k,
            generation: slot.generation,
            stream: slot.stream.clone(),
            emitter,
            stats: slot.stats.clone(),
            cancel: slot.cancel.child_token(),
        })
    }

    /// Keys open right now, for logs and tests.
    pub fn keys(&self) -> Vec<(PushProtocol, String, String)> {
        self.slots
            .lock()
            .map(|s| {
                s.iter()
                    .map(|((p, k), slot)| (*p, k.clone(), slot.stream.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_claim_release() {
        let reg = PushRegistry::new();
        let buffer = Arc::new(Buffer::new("s", 100));
        let stats = Arc::new(InputStats::default());
        assert!(matches!(
            reg.claim(PushProtocol::Rtmp, "k"),
            Err(ClaimError::UnknownKey)
        ));
        let r = reg
            .register(PushProtocol::Rtmp, "k", "s", buffer.clone(), stats.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            reg.register(
                PushProtocol::Rtmp,
                "k",
                "other",
                buffer.clone(),
                stats.clone()
            )
            .is_err()
        );
        // Same key on the other listener is a different key.
        let _srt = reg
            .register(
                PushProtocol::Srt,
                "k",
                "other",
                buffer.clone(),
                stats.clone(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let claim = reg
            .claim(PushProtocol::Rtmp, "k")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claim.stream, "s");
        assert!(matches!(reg.claim(PushProtocol::Rtmp, "k"), Err(ClaimError::Busy(s)) if s == "s"));
        drop(claim);
        let claim = reg
            .claim(PushProtocol::Rtmp, "k")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!claim.cancel.is_cancelled());
        drop(r);
        assert!(
            claim.cancel.is_cancelled(),
            "stopping the input kicks the publisher"
        );
        assert!(matches!(
            reg.claim(PushProtocol::Rtmp, "k"),
            Err(ClaimError::UnknownKey)
        ));
    }
}
