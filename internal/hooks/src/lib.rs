//! Hooks: deliver bus events to the configured webhooks.
//!
//! The [`Dispatcher`] subscribes to the [`EventBus`]. A router task takes
//! each event, reads the hooks from the store (the JSON store serves them
//! from memory, so API changes apply to the next event without any
//! notification) and hands the event to every enabled hook whose
//! `event_types` is empty or contains the event's type.
//!
//! Isolation: every HTTP hook has its own lane — a bounded queue and one
//! task that delivers the lane's events in order, with retries. Lanes share
//! a pool of `worker_count` permits; an attempt holds one only while its
//! request is in flight. A hook that hangs or fails therefore delays only
//! its own lane; when its queue is full its new events are dropped and
//! counted. Neither the bus nor the other hooks ever wait for it.
//!
//! Kafka hooks (feature `kafka`) share one producer (see [`kafka`]): the
//! router hands each record to it without waiting; delivery reports are
//! counted in [`KafkaStats`]. In a build without the feature, or with no
//! `hooks.kafka_brokers`, each event for a Kafka hook is counted in
//! [`Stats::kafka_unavailable`] and logged once per hook.

mod deliver;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use os_domain::{Hook, HookType};
use os_events::{Event, EventBus, EventType};
use os_store::Store;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

pub use deliver::{Backoff, Deliverer, DeliveryReport, Payload, sign};

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// `hooks.worker_count`: requests in flight at once, over all hooks.
    pub worker_count: usize,
    /// Events waiting per hook before new ones are dropped.
    pub queue_per_hook: usize,
    /// Events waiting between the bus and the router.
    pub bus_queue: usize,
    pub backoff: Backoff,
    /// The Kafka producer (used only in builds with the `kafka` feature).
    pub kafka: KafkaSettings,
}

/// Kafka producer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port` of the bootstrap brokers (`hooks.kafka_brokers`); empty
    /// = Kafka hooks are not delivered.
    pub brokers: Vec<String>,
    /// Records waiting for the brokers, at most; more are dropped and
    /// counted (librdkafka `queue.buffering.max.messages`).
    pub queue: usize,
    /// How long a record may wait for the brokers before it is counted
    /// failed (librdkafka `message.timeout.ms`).
    pub message_timeout: Duration,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: Vec::new(),
            queue: 10_000,
            message_timeout: Duration::from_secs(300),
        }
    }
}

/// Kafka delivery counters since start.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Records acknowledged by a broker.
    pub delivered: AtomicU64,
    /// Records the producer gave up on (timeout, broker error).
    pub failed: AtomicU64,
    /// Records refused because the producer's queue was full.
    pub dropped: AtomicU64,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            worker_count: 4,
            queue_per_hook: 256,
            bus_queue: os_events::DEFAULT_QUEUE,
            backoff: Backoff::default(),
            kafka: KafkaSettings::default(),
        }
    }
}

/// Whether `hook` wants events of `event_type` (ignores `enabled`).
pub fn subscribed(hook: &Hook, event_type: EventType) -> bool {
    hook.event_types.is_empty() || hook.event_types.iter().any(|t| t == event_type.as_str())
}

/// Delivery counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events delivered (2xx).
    pub delivered: AtomicU64,
    /// Events given up on after their retries.
    pub failed: AtomicU64,
    /// Events dropped because the hook's queue was full.
    pub dropped: AtomicU64,
    /// Events for Kafka hooks that could not be handed to a producer (no
    /// `kafka` feature, no brokers configured, producer creation failed).
    pub kafka_unavailable: AtomicU64,
    /// Kafka deliveries (shared with the producer's callbacks).
    pub kafka: Arc<KafkaStats>,
}

impl Stats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared by the router and the lanes.
struct Shared {
    deliverer: Deliverer,
    pool: Semaphore,
    stats: Stats,
    backoff: Backoff,
    /// Fired when the shutdown deadline passes: in-flight attempts and
    /// backoff pauses end at once.
    abort: CancellationToken,
    #[cfg(feature = "kafka")]
    kafka: Option<kafka::KafkaSink>,
}

pub struct Dispatcher {
    shared: Arc<Shared>,
    /// Fired by [`Dispatcher::shutdown`]: the router stops taking events,
    /// closes every lane and waits for them to drain.
    stop: CancellationToken,
    router: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Subscribe to `bus` and start routing events.
    pub fn start(store: Arc<dyn Store>, bus: &EventBus, config: DispatcherConfig) -> Arc<Self> {
        let stats = Stats::default();
        #[cfg(feature = "kafka")]
        let kafka = if config.kafka.brokers.is_empty() {
            None
        } else {
            match kafka::KafkaSink::new(&config.kafka, stats.kafka.clone()) {
                Ok(sink) => {
                    tracing::info!(brokers = %config.kafka.brokers.join(","), "kafka hooks: producer ready");
                    Some(sink)
                }
                Err(e) => {
                    tracing::error!(error = %e, "kafka hooks: no producer; kafka hooks are skipped");
                    None
                }
            }
        };
        let shared = Arc::new(Shared {
            deliverer: Deliverer::new(),
            pool: Semaphore::new(config.worker_count.max(1)),
            stats,
            backoff: config.backoff,
            abort: CancellationToken::new(),
            #[cfg(feature = "kafka")]
            kafka,
        });
        let rx = bus.subscribe("hooks", config.bus_queue);
        let stop = CancellationToken::new();
        let router = Router {
            store,
            shared: shared.clone(),
            lanes: HashMap::new(),
            tasks: JoinSet::new(),
            kafka_warned: HashSet::new(),
            queue_per_hook: config.queue_per_hook.max(1),
        };
        let task = tokio::spawn(router.run(rx, stop.clone()));
        Arc::new(Self {
            shared,
            stop,
            router: tokio::sync::Mutex::new(Some(task)),
        })
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Kafka records queued or in flight, not yet acknowledged (0 without a
    /// producer).
    pub fn kafka_buffered(&self) -> u64 {
        #[cfg(feature = "kafka")]
        if let Some(k) = &self.shared.kafka {
            return k.buffered();
        }
        0
    }

    /// Send a test event (`stream.created`, `stream_code "_test_"`,
    /// `data {test: true, hook_id}`) to `hook` now, outside its lane and the
    /// worker pool, with the hook's own timeout and retries. Enabled or not.
    pub async fn test(&self, hook: &Hook) -> DeliveryReport {
        let event = Event::new(
            EventType::StreamCreated,
            "_test_",
            serde_json::json!({"test": true, "hook_id": hook.id}),
        );
        let body = match serde_json::to_vec(&event) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                return DeliveryReport {
                    delivered: false,
                    status: None,
                    attempts: 0,
                    error: Some(format!("cannot encode the event: {e}")),
                };
            }
        };
        if hook.hook_type == HookType::Kafka {
            return self.test_kafka(hook, &event, &body).await;
        }
        let payload = Payload {
            event_type: event.event_type.as_str(),
            event_id: &event.id,
            body,
        };
        self.shared
            .deliverer
            .deliver(
                hook,
                &payload,
                self.shared.backoff,
                None,
                &self.shared.abort,
            )
            .await
    }

    #[cfg(feature = "kafka")]
    async fn test_kafka(&self, hook: &Hook, event: &Event, body: &[u8]) -> DeliveryReport {
        let Some(sink) = &self.shared.kafka else {
            return kafka_unavailable_report();
        };
        let timeout = Duration::from_secs(u64::from(hook.timeout_sec.max(1)));
        let result = sink
            .send_and_wait(hook.target.trim(), &event.stream_code, body, timeout)
            .await;
        DeliveryReport {
            delivered: result.is_ok(),
            status: None,
            attempts: 1,
            error: result.err(),
        }
    }

    #[cfg(not(feature = "kafka"))]
    async fn test_kafka(&self, _hook: &Hook, _event: &Event, _body: &[u8]) -> DeliveryReport {
        kafka_unavailable_report()
    }

    /// Stop taking events, then let queued and in-flight deliveries finish
    /// for at most `deadline`; after that they are abandoned. Events still
    /// waiting in the bus queue when this is called are routed first.
    pub async fn shutdown(&self, deadline: Duration) {
        self.stop.cancel();
        let Some(task) = self.router.lock().await.take() else {
            return;
        };
        let started = tokio::time::Instant::now();
        let abort = self.shared.abort.clone();
        let mut task = task;
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            tracing::warn!("hook deliveries did not finish within the shutdown deadline");
            abort.cancel();
            // Every await of a lane ends on `abort`; this returns promptly.
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        #[cfg(feature = "kafka")]
        if self.shared.kafka.is_some() {
            // librdkafka's flush blocks its thread; keep it off the runtime.
            let shared = self.shared.clone();
            let left = deadline.saturating_sub(started.elapsed());
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(k) = &shared.kafka {
                    k.flush(left);
                }
            })
            .await;
        }
        #[cfg(not(feature = "kafka"))]
        let _ = started;
    }
}

fn kafka_unavailable_report() -> DeliveryReport {
    DeliveryReport {
        delivered: false,
        status: None,
        attempts: 0,
        error: Some(if cfg!(feature = "kafka") {
            "kafka hooks are not delivered: hooks.kafka_brokers is empty".into()
        } else {
            "kafka hooks are not delivered: this build has no kafka support".into()
        }),
    }
}

/// One queued delivery.
struct Job {
    event: Arc<Event>,
    body: Bytes,
}

struct Lane {
    /// The hook as the lane was created; a changed hook gets a new lane.
    hook: Hook,
    /// Sender of the lane's queue; the lane task is the only receiver and
    /// ends once this is dropped and the queue is drained.
    tx: mpsc::Sender<Job>,
}

/// Owns the lanes; the only task that reads the bus subscription.
struct Router {
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    lanes: HashMap<String, Lane>,
    tasks: JoinSet<()>,
    kafka_warned: HashSet<String>,
    queue_per_hook: usize,
}

impl Router {
    async fn run(mut self, mut rx: mpsc::Receiver<Arc<Event>>, stop: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                ev = rx.recv() => match ev {
                    Some(ev) => self.route(ev).await,
                    None => break,
                },
            }
        }
        // Events published before the stop are still delivered.
        rx.close();
        while let Ok(ev) = rx.try_recv() {
            self.route(ev).await;
        }
        // Closing the lanes lets each drain its queue and end.
        self.lanes.clear();
        while self.tasks.join_next().await.is_some() {}
    }

    async fn route(&mut self, event: Arc<Event>) {
        while self.tasks.try_join_next().is_some() {}
        let hooks = match self.store.list_hooks().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, event = %event.event_type, "cannot read hooks; event not delivered");
                return;
            }
        };
        let ids: HashSet<&str> = hooks.iter().map(|h| h.id.as_str()).collect();
        self.lanes.retain(|id, _| ids.contains(id.as_str()));

        let mut body: Option<Bytes> = None;
        for hook in hooks {
            if !hook.enabled || !subscribed(&hook, event.event_type) {
                continue;
            }
            let body = match &body {
                Some(b) => b.clone(),
                None => match serde_json::to_vec(&*event) {
                    Ok(b) => body.insert(Bytes::from(b)).clone(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode event");
                        return;
                    }
                },
            };
            if hook.hook_type == HookType::Kafka {
                self.route_kafka(&hook, &event, &body);
                continue;
            }
            let job = Job {
                event: event.clone(),
                body,
            };
            let tx = self.lane(hook);
            if let Err(mpsc::error::TrySendError::Full(job)) = tx.try_send(job) {
                let n = self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Log the first drop and then every 100th.
                if n % 100 == 1 {
                    tracing::warn!(
                        event = %job.event.event_type,
                        dropped_total = n,
                        "hook queue full: event dropped for this hook"
                    );
                }
            }
        }
    }

    /// Hand the record to the producer; never waits.
    fn route_kafka(&mut self, hook: &Hook, event: &Event, body: &[u8]) {
        #[cfg(feature = "kafka")]
        if let Some(sink) = &self.shared.kafka {
            if let Err(e) = sink.send(hook.target.trim(), &event.stream_code, body) {
                let n = match e {
                    kafka::SendError::QueueFull => {
                        self.shared.stats.kafka.dropped.load(Ordering::Relaxed)
                    }
                    kafka::SendError::Other(_) => {
                        self.shared.stats.kafka.failed.load(Ordering::Relaxed)
                    }
                };
                // Log the first and then every 100th.
                if n % 100 == 1 {
                    tracing::warn!(hook = %hook.id, event = %event.event_type, error = %e, total = n, "kafka hook: event not queued");
                }
            }
            return;
        }
        let _ = (event, body);
        Stats::add(&self.shared.stats.kafka_unavailable);
        if self.kafka_warned.insert(hook.id.clone()) {
            tracing::warn!(hook = %hook.id, "kafka hook: not delivered ({}); events are skipped",
                if cfg!(feature = "kafka") { "no hooks.kafka_brokers or no producer" } else { "no kafka support in this build" });
        }
    }

    /// The lane of `hook`, created (or recreated after a change) as needed.
    fn lane(&mut self, hook: Hook) -> mpsc::Sender<Job> {
        if let Some(lane) = self.lanes.get(&hook.id)
            && lane.hook == hook
            && !lane.tx.is_closed()
        {
            return lane.tx.clone();
        }
        let (tx, rx) = mpsc::channel(self.queue_per_hook);
        self.tasks
            .spawn(run_lane(hook.clone(), rx, self.shared.clone()));
        self.lanes.insert(
            hook.id.clone(),
            Lane {
                hook,
                tx: tx.clone(),
            },
        );
        tx
    }
}

/// Deliver a lane's events one after the other until its sender is dropped.
async fn run_lane(hook: Hook, mut rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    while let Some(job) = rx.recv().await {
        let payload = Payload {
            event_type: job.event.event_type.as_str(),
            event_id: &job.event.id,
            body: job.body,
        };
        let report = shared
            .deliverer
            .deliver(
                &hook,
                &payload,
                shared.backoff,
                Some(&shared.pool),
                &shared.abort,
            )
            .await;
        if report.delivered {
            Stats::add(&shared.stats.delivered);
            tracing::debug!(hook = %hook.id, event = %job.event.event_type, attempts = report.attempts, "hook delivered");
        } else {
            Stats::add(&shared.stats.failed);
            tracing::warn!(
                hook = %hook.id,
                event = %job.event.event_type,
                event_id = %job.event.id,
                attempts = report.attempts,
                status = ?report.status,
                error = report.error.as_deref().unwrap_or(""),
                "hook delivery failed"
            );
        }
        if shared.abort.is_cancelled() {
            break;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn event_type_filtering() {
        let mut hook = Hook {
            id: "h".into(),
            ..Hook::default()
        };
        assert!(
            EventType::ALL.iter().all(|t| subscribed(&hook, *t)),
            "empty = all"
        );
        hook.event_types = vec!["stream.started".into(), "input.failover".into()];
        let wanted: Vec<_> = EventType::ALL
            .iter()
            .filter(|t| subscribed(&hook, **t))
            .map(|t| t.as_str())
            .collect();
        assert_eq!(wanted, ["stream.started", "input.failover"]);
    }

    #[test]
    fn every_event_type_is_a_domain_event_type() {
        let ours: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        let mut domain: Vec<_> = os_domain::hook::EVENT_TYPES.to_vec();
        let mut ours_sorted = ours.clone();
        ours_sorted.sort_unstable();
        domain.sort_unstable();
        assert_eq!(ours_sorted, domain);
    }
}
