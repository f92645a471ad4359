//! Players on the shared listeners: which streams may be played over which
//! protocol ([`PlayGate`]), and what the listeners need to serve them
//! ([`Players`]).
//!
//! A running stream with `protocols.rtmp` (or `.srt`, `.rtsp`) *opens* its
//! code on the gate while it runs; the coordinator holds the
//! [`PlayOpening`] and drops it when the stream stops or the protocol is
//! switched off, which also disconnects the stream's players of that
//! protocol. Players look the stream's media up by code in the hub.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use os_hub::{Buffer, Hub};
use tokio_util::sync::CancellationToken;

use crate::rtmp::fanout::Fanout;
use crate::rtsp_server::RtspFanout;

/// A play protocol on a shared listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlayProtocol {
    Rtmp,
    Srt,
    Rtsp,
}

impl PlayProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            PlayProtocol::Rtmp => "rtmp",
            PlayProtocol::Srt => "srt",
            PlayProtocol::Rtsp => "rtsp",
        }
    }
}

/// The (protocol, stream code) pairs players may use right now.
#[derive(Debug, Default)]
pub struct PlayGate {
    /// A std mutex: every critical section is a map access.
    open: Mutex<HashMap<(PlayProtocol, String), (u64, CancellationToken)>>,
    generations: AtomicU64,
}

/// Held while a stream may be played over a protocol. Dropping it closes
/// the gate and disconnects that stream's players of that protocol.
#[derive(Debug)]
pub struct PlayOpening {
    gate: Arc<PlayGate>,
    key: (PlayProtocol, String),
    generation: u64,
    cancel: CancellationToken,
}

impl Drop for PlayOpening {
    fn drop(&mut self) {
        self.cancel.cancel();
        let mut open = self
            .gate
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if open
            .get(&self.key)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            open.remove(&self.key);
        }
    }
}

impl PlayGate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Let players play `code` over `protocol` until the opening is dropped.
    pub fn open(self: &Arc<Self>, protocol: PlayProtocol, code: &str) -> PlayOpening {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let key = (protocol, code.to_string());
        let old = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), (generation, cancel.clone()));
        if let Some((_, old)) = old {
            old.cancel();
        }
        PlayOpening {
            gate: self.clone(),
            key,
            generation,
            cancel,
        }
    }

    /// A token for one player of `code` over `protocol`, cancelled when the
    /// gate closes; `None` when the stream may not be played that way.
    pub fn pass(&self, protocol: PlayProtocol, code: &str) -> Option<CancellationToken> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(protocol, code.to_string()))
            .map(|(_, c)| c.child_token())
    }

    /// Whether `code` may be played over `protocol`.
    pub fn is_open(&self, protocol: PlayProtocol, code: &str) -> bool {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&(protocol, code.to_string()))
    }
}

/// Why a play request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayRefused {
    #[error("stream is not played over {0}")]
    NotOpen(&'static str),
    #[error("stream has no media buffer")]
    NoBuffer,
}

/// A player's admission: the stream's buffer and the token that fires when
/// the gate closes.
pub struct Admission {
    pub buffer: Arc<Buffer>,
    pub cancel: CancellationToken,
}

/// What the shared listeners need to serve players.
#[derive(Debug)]
pub struct Players {
    pub hub: Arc<Hub>,
    pub gate: Arc<PlayGate>,
    /// RTMP fanouts by stream code, alive while they have players.
    fanouts: Mutex<HashMap<String, Weak<Fanout>>>,
    /// RTSP fanouts by stream code, alive while they have players.
    rtsp_fanouts: Mutex<HashMap<String, Weak<RtspFanout>>>,
}

impl Players {
    pub fn new(hub: Arc<Hub>, gate: Arc<PlayGate>) -> Arc<Self> {
        Arc::new(Self {
            hub,
            gate,
            fanouts: Mutex::new(HashMap::new()),
            rtsp_fanouts: Mutex::new(HashMap::new()),
        })
    }

    /// Admit a player of `code` over `protocol`.
    pub fn admit(&self, protocol: PlayProtocol, code: &str) -> Result<Admission, PlayRefused> {
        let cancel = self
            .gate
            .pass(protocol, code)
            .ok_or(PlayRefused::NotOpen(protocol.as_str()))?;
        let buffer = self.hub.get(code).ok_or(PlayRefused::NoBuffer)?;
        Ok(Admission { buffer, cancel })
    }

    /// The RTMP fanout of `buffer` (the stream `code`), started on first use.
    pub(crate) fn fanout(&self, code: &str, buffer: &Arc<Buffer>) -> Arc<Fanout> {
        let mut map = self.fanouts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = map.get(code).and_then(Weak::upgrade)
            && f.serves(buffer)
        {
            return f;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let f = Fanout::start(code, buffer.clone());
        map.insert(code.to_string(), Arc::downgrade(&f));
        f
    }

    /// The RTSP fanout of `buffer` (the stream `code`), started on first use.
    pub(crate) fn rtsp_fanout(&self, code: &str, buffer: &Arc<Buffer>) -> Arc<RtspFanout> {
        let mut map = self
            .rtsp_fanouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = map.get(code).and_then(Weak::upgrade)
            && f.serves(buffer)
        {
            return f;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let f = RtspFanout::start(code, buffer.clone());
        map.insert(code.to_string(), Arc::downgrade(&f));
        f
    }

    /// Streams with a running RTSP fanout (for tests and logs).
    pub fn rtsp_fanout_count(&self) -> usize {
        self.rtsp_fanouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Streams with a running RTMP fanout (for tests and logs).
    pub fn fanout_count(&self) -> usize {
        self.fanouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_opens_and_closes() {
        let gate = PlayGate::new();
        assert!(gate.pass(PlayProtocol::Rtmp, "a").is_none());
        let opening = gate.open(PlayProtocol::Rtmp, "a");
        let pass = gate.pass(PlayProtocol::Rtmp, "a").expect("open");
        assert!(gate.pass(PlayProtocol::Srt, "a").is_none(), "per protocol");
        assert!(!pass.is_cancelled());
        drop(opening);
        assert!(pass.is_cancelled(), "closing kicks the players");
        assert!(!gate.is_open(PlayProtocol::Rtmp, "a"));
    }
}
