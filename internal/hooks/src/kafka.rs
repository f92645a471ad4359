//! Kafka delivery (feature `kafka`): one idempotent librdkafka producer for
//! every Kafka hook, brokers from `hooks.kafka_brokers`.
//!
//! A record per event: topic = the hook's `target`, key = the stream code,
//! value = the envelope JSON (the same bytes an HTTP hook receives).
//!
//! Nothing here ever waits on the network. [`KafkaSink::send`] hands the
//! record to librdkafka's queue and returns; a background thread of the
//! producer talks to the brokers and reports every record's outcome to
//! [`Context::delivery`], which counts it. While the brokers are down the
//! records stay in that queue, bounded by `queue.buffering.max.messages`
//! ([`KafkaSettings::queue`]) and by `message.timeout.ms`
//! ([`KafkaSettings::message_timeout`]); a record that finds the queue full
//! is dropped and counted, one that outlives the timeout is reported failed.
//!
//! Self-healing: an idempotent producer whose brokers lost its producer
//! state (a cluster rebuilt from scratch, producer ids expired) is never
//! accepted again and every record times out. So when records time out and
//! none has been delivered since, the producer is replaced by a new one (at
//! most once per `message_timeout`); the old one's queue is dropped (each
//! record counted failed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::oneshot;

use crate::{KafkaSettings, KafkaStats};

/// Sent back by the delivery callback for the records of `POST /hooks/{hid}/test`.
type Reply = oneshot::Sender<Result<(), String>>;

/// The per-record opaque: who to tell besides the counters.
pub struct Delivery {
    reply: Option<Reply>,
}

/// The producer's callbacks. Runs on the producer's polling thread.
pub struct Context {
    stats: Arc<KafkaStats>,
    /// Set when a record timed out, cleared when one is delivered.
    stalled: Arc<AtomicBool>,
    /// Milliseconds since `created` of the last logged failure (+1; 0 = never).
    last_warn_ms: AtomicU64,
    created: Instant,
}

impl Context {
    fn warn_rate_limited(&self, what: &str, reason: &str) {
        let now = self.created.elapsed().as_millis() as u64 + 1;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        if last == 0 || now.saturating_sub(last) >= 1000 {
            self.last_warn_ms.store(now, Ordering::Relaxed);
            tracing::warn!(reason, "kafka hooks: {what}");
        }
    }
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        // Broker-down errors repeat every reconnect attempt.
        self.warn_rate_limited(&format!("client error: {error}"), reason);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<Delivery>) {
        let outcome = match result {
            Ok(_) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                self.stalled.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err((e, _)) => {
                if *e == KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) {
                    self.stalled.store(true, Ordering::Relaxed);
                }
                let n = self.stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
                self.warn_rate_limited("record not delivered", &format!("{e} (failed_total {n})"));
                Err(e.to_string())
            }
        };
        if let Some(reply) = opaque.reply {
            let _ = reply.send(outcome);
        }
    }
}

/// The shared producer.
pub struct KafkaSink {
    settings: KafkaSettings,
    stats: Arc<KafkaStats>,
    stalled: Arc<AtomicBool>,
    /// The producer and when it was created. Locked only for a `send`, a
    /// count or a swap (and for the final flush).
    producer: Mutex<(ThreadedProducer<Context>, Instant)>,
}

/// Why a record was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The local queue is full (brokers unreachable for a while).
    QueueFull,
    Other(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::QueueFull => f.write_str("the kafka producer queue is full"),
            Self::Other(e) => f.write_str(e),
        }
    }
}

impl KafkaSink {
    /// Create the producer. It connects lazily: brokers that are down now
    /// are not an error.
    pub fn new(settings: &KafkaSettings, stats: Arc<KafkaStats>) -> Result<Self, String> {
        if settings.brokers.is_empty() {
            return Err("hooks.kafka_brokers is empty".into());
        }
        let stalled = Arc::new(AtomicBool::new(false));
        let producer = create(settings, &stats, &stalled)?;
        Ok(Self {
            settings: settings.clone(),
            stats,
            stalled,
            producer: Mutex::new((producer, Instant::now())),
        })
    }

    pub fn stats(&self) -> &Arc<KafkaStats> {
        &self.stats
    }

    /// Records queued or in flight, not yet reported.
    pub fn buffered(&self) -> u64 {
        let p = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        u64::try_from(p.0.in_flight_count()).unwrap_or(0)
    }

    /// Queue one record; never waits. A full queue counts as dropped.
    pub fn send(&self, topic: &str, key: &str, value: &[u8]) -> Result<(), SendError> {
        self.enqueue(topic, key, value, None)
    }

    /// Queue one record and wait for its delivery report, at most `timeout`.
    pub async fn send_and_wait(
        &self,
        topic: &str,
        key: &str,
        value: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(topic, key, value, Some(tx))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the kafka producer went away".into()),
            Err(_) => Err(format!(
                "no delivery report within {}s (brokers unreachable?)",
                timeout.as_secs()
            )),
        }
    }

    fn enqueue(
        &self,
        topic: &str,
        key: &str,
        value: &[u8],
        reply: Option<Reply>,
    ) -> Result<(), SendError> {
        let record = BaseRecord::with_opaque_to(topic, Box::new(Delivery { reply }))
            .key(key)
            .payload(value);
        let mut p = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stalled.load(Ordering::Relaxed) && p.1.elapsed() >= self.settings.message_timeout {
            self.replace(&mut p);
        }
        match p.0.send(record) {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Err(SendError::QueueFull)
            }
            Err((e, _)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Other(e.to_string()))
            }
        }
    }

    /// Swap in a new producer; the old one is dropped off the runtime (its
    /// drop purges its queue and joins its thread).
    fn replace(&self, p: &mut (ThreadedProducer<Context>, Instant)) {
        match create(&self.settings, &self.stats, &self.stalled) {
            Ok(new) => {
                tracing::warn!(
                    dropped = p.0.in_flight_count(),
                    "kafka hooks: records time out and none was delivered; producer replaced"
                );
                self.stalled.store(false, Ordering::Relaxed);
                let old = std::mem::replace(p, (new, Instant::now())).0;
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn_blocking(move || drop(old))),
                    Err(_) => drop(old),
                }
            }
            Err(e) => {
                // Keep the old one; try again after another period.
                p.1 = Instant::now();
                tracing::error!(error = %e, "kafka hooks: cannot replace the producer");
            }
        }
    }

    /// Wait (blocking the calling thread) up to `deadline` for queued
    /// records to be delivered. Call from a blocking context.
    pub fn flush(&self, deadline: Duration) {
        let p = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = p.0.flush(deadline) {
            tracing::warn!(error = %e, buffered = p.0.in_flight_count(), "kafka hooks: not every record was delivered before shutdown");
        }
    }
}

fn create(
    settings: &KafkaSettings,
    stats: &Arc<KafkaStats>,
    stalled: &Arc<AtomicBool>,
) -> Result<ThreadedProducer<Context>, String> {
    let context = Context {
        stats: stats.clone(),
        stalled: stalled.clone(),
        last_warn_ms: AtomicU64::new(0),
        created: Instant::now(),
    };
    ClientConfig::new()
        .set("bootstrap.servers", settings.brokers.join(","))
        .set("client.id", "open-streamer")
        .set("enable.idempotence", "true")
        .set(
            "queue.buffering.max.messages",
            settings.queue.clamp(1, 10_000_000).to_string(),
        )
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().max(1).to_string(),
        )
        .set("linger.ms", "5")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000")
        .create_with_context(context)
        .map_err(|e| format!("cannot create the kafka producer: {e}"))
}
