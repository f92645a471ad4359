//! Live figures of one input, shared between its worker (writer) and the
//! status API (reader). Everything is atomics or short std mutexes; the hot
//! path (`record_chunk`) takes no lock except a `try_lock` once a second.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};

/// Where an input is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum InputState {
    /// Not running (not the active input, or stream stopped).
    Idle = 0,
    /// Connecting / waiting for a push publisher.
    Connecting = 1,
    /// Delivering media.
    Active = 2,
    /// Failed; waiting to reconnect, or given up.
    Degraded = 3,
}

impl InputState {
    pub fn as_str(self) -> &'static str {
        match self {
            InputState::Idle => "idle",
            InputState::Connecting => "connecting",
            InputState::Active => "active",
            InputState::Degraded => "degraded",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => InputState::Connecting,
            2 => InputState::Active,
            3 => InputState::Degraded,
            _ => InputState::Idle,
        }
    }
}

/// A track found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub pid: u16,
    /// `video` | `audio`.
    pub kind: &'static str,
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Debug, Default)]
struct Meter {
    window_start: Option<Instant>,
    window_bytes: u64,
    kbps: f64,
}

/// Figures of one input. Create one per configured input; the worker and
/// push listeners update it, the status endpoint reads [`InputStats::snapshot`].
#[derive(Debug)]
pub struct InputStats {
    state: AtomicU8,
    bytes: AtomicU64,
    packets: AtomicU64,
    /// Bytes dropped while realigning to 188-byte packets.
    skipped: AtomicU64,
    reconnects: AtomicU64,
    /// Errors recorded (the input-health manager watches it).
    errors: AtomicU64,
    /// Unix milliseconds of the last packet; 0 = never.
    last_packet_ms: AtomicU64,
    /// Unix milliseconds when the current session started delivering; 0 = not.
    active_since_ms: AtomicU64,
    meter: Mutex<Meter>,
    last_error: Mutex<Option<(String, DateTime<Utc>)>>,
    tracks: Mutex<Vec<TrackInfo>>,
}

impl Default for InputStats {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(InputState::Idle as u8),
            bytes: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_packet_ms: AtomicU64::new(0),
            active_since_ms: AtomicU64::new(0),
            meter: Mutex::new(Meter::default()),
            last_error: Mutex::new(None),
            tracks: Mutex::new(Vec::new()),
        }
    }
}

/// A copy of [`InputStats`] at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSnapshot {
    pub state: InputState,
    pub bytes: u64,
    pub packets: u64,
    pub skipped_bytes: u64,
    pub reconnects: u64,
    pub bitrate_kbps: f64,
    pub last_packet_at: Option<DateTime<Utc>>,
    pub active_since: Option<DateTime<Utc>>,
    pub last_error: Option<(String, DateTime<Utc>)>,
    pub tracks: Vec<TrackInfo>,
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

fn ms_to_time(ms: u64) -> Option<DateTime<Utc>> {
    (ms != 0)
        .then(|| DateTime::from_timestamp_millis(ms as i64))
        .flatten()
}

impl InputStats {
    pub fn state(&self) -> InputState {
        InputState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, state: InputState) {
        let prev = self.state.swap(state as u8, Ordering::Relaxed);
        if state != InputState::Active {
            self.active_since_ms.store(0, Ordering::Relaxed);
        } else if prev != InputState::Active as u8 {
            self.active_since_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Account one chunk of `packets` whole TS packets (`bytes` long).
    pub fn record_chunk(&self, bytes: usize, packets: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.packets.fetch_add(packets as u64, Ordering::Relaxed);
        self.last_packet_ms.store(now_ms(), Ordering::Relaxed);
        if self.state() != InputState::Active {
            self.set_state(InputState::Active);
        }
        if let Ok(mut m) = self.meter.try_lock() {
            let now = Instant::now();
            m.window_bytes += bytes as u64;
            match m.window_start {
                None => m.window_start = Some(now),
                Some(start) => {
                    let secs = now.duration_since(start).as_secs_f64();
                    if secs >= 1.0 {
                        m.kbps = m.window_bytes as f64 * 8.0 / 1000.0 / secs;
                        m.window_bytes = 0;
                        m.window_start = Some(now);
                    }
                }
            }
        }
    }

    pub fn record_skipped(&self, bytes: usize) {
        self.skipped.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn record_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_error(&self, message: impl Into<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((message.into(), Utc::now()));
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Errors recorded so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The last error message, if any.
    pub fn last_error_message(&self) -> Option<String> {
        self.last_error
            .lock()
            .ok()
            .and_then(|e| e.as_ref().map(|(m, _)| m.clone()))
    }

    pub fn set_tracks(&self, tracks: Vec<TrackInfo>) {
        if let Ok(mut t) = self.tracks.lock() {
            *t = tracks;
        }
    }

    /// Total TS packets received so far (used to reset backoff after progress).
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> InputSnapshot {
        let last_packet_ms = self.last_packet_ms.load(Ordering::Relaxed);
        // A meter that has not seen data for 2 s reads as zero.
        let stale = now_ms().saturating_sub(last_packet_ms) > 2000;
        InputSnapshot {
            state: self.state(),
            bytes: self.bytes.load(Ordering::Relaxed),
            packets: self.packets.load(Ordering::Relaxed),
            skipped_bytes: self.skipped.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            bitrate_kbps: if stale {
                0.0
            } else {
                self.meter.lock().map(|m| m.kbps).unwrap_or(0.0)
            },
            last_packet_at: ms_to_time(last_packet_ms),
            active_since: ms_to_time(self.active_since_ms.load(Ordering::Relaxed)),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            tracks: self.tracks.lock().map(|t| t.clone()).unwrap_or_default(),
        }
    }
}
