//! The event bus: lifecycle events (stream started, input degraded, …) with
//! one stable JSON envelope, fanned out to subscribers (hooks, metrics).
//!
//! Envelope (see `docs/EVENTS.md` for every payload):
//!
//! ```json
//! {"id":"<32 hex>","type":"stream.started","stream_code":"demo",
//!  "occurred_at":"2025-01-01T00:00:00.000Z","data":{}}
//! ```
//!
//! Publishing never blocks and never awaits: each subscriber has a bounded
//! queue, filled with `try_send`. When a subscriber's queue is full the event
//! is dropped for that subscriber only, counted ([`EventBus::dropped`]) and
//! logged at most once a second. A subscriber that drops its receiver is
//! forgotten at the next publish.

mod id;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub use id::new_id;

/// Every event type. The string forms are the `type` of the envelope and the
/// values hooks subscribe to (`os_domain::hook::EVENT_TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    StreamCreated,
    StreamStarted,
    StreamStopped,
    StreamDeleted,
    InputDegraded,
    InputFailover,
    RecordingStarted,
    RecordingStopped,
    TranscoderError,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        Self::StreamCreated,
        Self::StreamStarted,
        Self::StreamStopped,
        Self::StreamDeleted,
        Self::InputDegraded,
        Self::InputFailover,
        Self::RecordingStarted,
        Self::RecordingStopped,
        Self::TranscoderError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamCreated => "stream.created",
            Self::StreamStarted => "stream.started",
            Self::StreamStopped => "stream.stopped",
            Self::StreamDeleted => "stream.deleted",
            Self::InputDegraded => "input.degraded",
            Self::InputFailover => "input.failover",
            Self::RecordingStarted => "recording.started",
            Self::RecordingStopped => "recording.stopped",
            Self::TranscoderError => "transcoder.error",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// One event, exactly as delivered (serialised) to hooks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// 128-bit random id as 32 lowercase hex digits; unique per event, the
    /// same across delivery retries (receivers deduplicate on it).
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub stream_code: String,
    /// RFC 3339, UTC, millisecond precision.
    #[serde(serialize_with = "rfc3339")]
    pub occurred_at: DateTime<Utc>,
    /// Type-specific payload; always an object (possibly empty).
    pub data: Map<String, Value>,
}

impl Event {
    /// A new event occurring now. `data` that is not a JSON object is put
    /// under the key `"value"` so the payload stays an object.
    pub fn new(event_type: EventType, stream_code: impl Into<String>, data: Value) -> Self {
        let data = match data {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other)]),
        };
        Self {
            id: new_id(),
            event_type,
            stream_code: stream_code.into(),
            occurred_at: Utc::now(),
            data,
        }
    }
}

/// Capacity of a subscriber queue when none is given.
pub const DEFAULT_QUEUE: usize = 1024;

/// The fan-out point. Shared as `Arc<EventBus>`; a bus without subscribers
/// discards what is published (components built without hooks use one).
pub struct EventBus {
    /// Senders of the subscriber queues. Locked only for the few
    /// `try_send`s of one publish or to add a subscriber; never across an await.
    subscribers: Mutex<Vec<Subscriber>>,
    published: AtomicU64,
    dropped: AtomicU64,
    /// Milliseconds since `created` of the last overflow warning (+1; 0 = never).
    last_warn_ms: AtomicU64,
    created: Instant,
}

struct Subscriber {
    name: &'static str,
    tx: mpsc::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        Self {
            subscribers: Mutex::new(Vec::new()),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_warn_ms: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    /// Register a subscriber (`name` is for logs) with a queue of `capacity`
    /// events (at least 1). It receives every event published from now on,
    /// in publish order, unless its queue is full. Dropping the receiver
    /// unsubscribes.
    pub fn subscribe(&self, name: &'static str, capacity: usize) -> mpsc::Receiver<Arc<Event>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.lock().push(Subscriber { name, tx });
        rx
    }

    /// Hand the event to every subscriber. Never blocks, never awaits.
    pub fn publish(&self, event: Event) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(event);
        let mut full: Option<&'static str> = None;
        self.lock().retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                full = Some(s.name);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if let Some(name) = full {
            self.warn_overflow(name, &event);
        }
    }

    /// Build an event occurring now and publish it: the one-liner for call sites.
    pub fn emit(&self, event_type: EventType, stream_code: &str, data: Value) {
        self.publish(Event::new(event_type, stream_code, data));
    }

    /// Events published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Deliveries to subscribers dropped because their queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        // A panic while holding the lock cannot leave the vector inconsistent.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Warn about overflow at most once a second.
    fn warn_overflow(&self, subscriber: &str, event: &Event) {
        let now = self.created.elapsed().as_millis() as u64 + 1;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < 1000 {
            return;
        }
        if self
            .last_warn_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                subscriber,
                event = %event.event_type,
                stream = %event.stream_code,
                dropped_total = self.dropped(),
                "event queue full: events dropped"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_shape() {
        let e = Event::new(
            EventType::InputFailover,
            "demo",
            json!({"from": 0, "to": 1}),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "input.failover");
        assert_eq!(v["stream_code"], "demo");
        assert_eq!(v["data"], json!({"from": 0, "to": 1}));
        let id = v["id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let t = v["occurred_at"].as_str().unwrap();
        assert!(t.ends_with('Z'), "{t}");
        DateTime::parse_from_rfc3339(t).unwrap();
        let empty = Event::new(EventType::StreamStarted, "x", Value::Null);
        assert_eq!(serde_json::to_value(&empty).unwrap()["data"], json!({}));
    }

    #[test]
    fn type_strings_are_unique() {
        let mut names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let bus = EventBus::new();
        let mut a = bus.subscribe("a", 8);
        let mut b = bus.subscribe("b", 8);
        bus.emit(EventType::StreamCreated, "s", json!({}));
        bus.emit(EventType::StreamStarted, "s", json!({}));
        for rx in [&mut a, &mut b] {
            assert_eq!(
                rx.recv().await.unwrap().event_type,
                EventType::StreamCreated
            );
            assert_eq!(
                rx.recv().await.unwrap().event_type,
                EventType::StreamStarted
            );
        }
        assert_eq!(bus.published(), 2);
        assert_eq!(bus.dropped(), 0);
    }

    #[tokio::test]
    async fn overflow_is_counted_and_does_not_affect_other_subscribers() {
        let bus = EventBus::new();
        let mut slow = bus.subscribe("slow", 2);
        let mut fast = bus.subscribe("fast", 16);
        for _ in 0..5 {
            bus.emit(EventType::InputDegraded, "s", json!({}));
        }
        assert_eq!(bus.dropped(), 3, "slow queue holds 2 of 5");
        let mut n = 0;
        while fast.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 5);
        assert!(slow.try_recv().is_ok() && slow.try_recv().is_ok());
        assert!(slow.try_recv().is_err());
    }

    #[test]
    fn closed_subscribers_are_forgotten() {
        let bus = EventBus::new();
        let rx = bus.subscribe("gone", 1);
        assert_eq!(bus.subscriber_count(), 1);
        drop(rx);
        bus.emit(EventType::StreamStopped, "s", Value::Null);
        assert_eq!(bus.subscriber_count(), 0);
        assert_eq!(bus.dropped(), 0);
    }
}
