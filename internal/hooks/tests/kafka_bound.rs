//! Kafka hooks with every broker down (a closed loopback port): records are
//! buffered up to the producer's bound, the rest are dropped and counted,
//! and publishing never waits. Delivery against a real broker is tested
//! end to end in the server's `kafka` test.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use os_domain::{Hook, HookType};
use os_events::{EventBus, EventType};
use os_hooks::{Dispatcher, DispatcherConfig, KafkaSettings};
use os_store::{Precondition, Store, json::JsonStore};

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_buffers_to_the_bound_then_drops_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(JsonStore::open(dir.path()).await.unwrap());
    let bus = Arc::new(EventBus::new());
    let d = Dispatcher::start(
        store.clone(),
        &bus,
        DispatcherConfig {
            kafka: KafkaSettings {
                brokers: vec![format!("127.0.0.1:{}", closed_port())],
                queue: 5,
                message_timeout: Duration::from_secs(60),
            },
            ..DispatcherConfig::default()
        },
    );
    let hook = Hook {
        id: "k".into(),
        hook_type: HookType::Kafka,
        target: "events".into(),
        ..Hook::default()
    };
    store.put_hook(&hook, Precondition::Absent).await.unwrap();

    let t = Instant::now();
    for i in 0..20 {
        bus.emit(
            EventType::StreamStarted,
            &format!("s{i}"),
            serde_json::json!({}),
        );
    }
    let publish = t.elapsed();
    assert!(
        publish < Duration::from_millis(50),
        "publishing took {publish:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    while d.stats().kafka.dropped.load(Ordering::SeqCst) < 15 {
        assert!(Instant::now() < deadline, "drops not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let k = &d.stats().kafka;
    assert_eq!(k.dropped.load(Ordering::SeqCst), 15);
    assert_eq!(d.kafka_buffered(), 5, "the bound is kept");
    assert_eq!(k.delivered.load(Ordering::SeqCst), 0);
    assert_eq!(d.stats().kafka_unavailable.load(Ordering::SeqCst), 0);

    // The test endpoint reports the failure within the hook's timeout
    // instead of hanging.
    let mut h = hook.clone();
    h.timeout_sec = 1;
    let t = Instant::now();
    let r = d.test(&h).await;
    assert!(!r.delivered);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(r.error.is_some_and(|e| e.contains("queue is full")));

    // Shutdown gives up on the unreachable broker at its deadline.
    let t = Instant::now();
    d.shutdown(Duration::from_millis(500)).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
