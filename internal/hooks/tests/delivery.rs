//! The dispatcher against real local HTTP receivers, a real JSON store and
//! the real bus, with short retry delays.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use os_domain::Hook;
use os_events::{EventBus, EventType};
use os_hooks::{Backoff, Dispatcher, DispatcherConfig};
use os_store::{Precondition, Store, json::JsonStore};
use tokio::sync::mpsc;

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Mode {
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

struct Receiver {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    /// (event id header, body) of every request.
    rx: mpsc::UnboundedReceiver<(String, Bytes)>,
}

async fn receiver(mode: Mode) -> Receiver {
    let requests = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let count = requests.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let count = count.clone();
            let tx = tx.clone();
            async move {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let id = headers
                    .get("x-openstreamer-event-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send((id, body));
                match mode {
                    Mode::FailFirst(k) if n < k => StatusCode::INTERNAL_SERVER_ERROR,
                    Mode::FailFirst(_) => StatusCode::OK,
                    Mode::Hang => {
                        std::future::pending::<()>().await;
                        StatusCode::OK
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { addr, requests, rx }
}

fn hook(id: &str, addr: SocketAddr) -> Hook {
    Hook {
        id: id.into(),
        target: format!("http://{addr}/hook"),
        max_retries: 3,
        timeout_sec: 30,
        ..Hook::default()
    }
}

async fn setup(
    config: DispatcherConfig,
) -> (
    tempfile::TempDir,
    Arc<JsonStore>,
    Arc<EventBus>,
    Arc<Dispatcher>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(JsonStore::open(dir.path()).await.unwrap());
    let bus = Arc::new(EventBus::new());
    let d = Dispatcher::start(store.clone(), &bus, config);
    (dir, store, bus, d)
}

fn fast() -> DispatcherConfig {
    DispatcherConfig {
        backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        ..DispatcherConfig::default()
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn failing_receiver_gets_one_successful_delivery_after_retries() {
    let (_dir, store, bus, d) = setup(fast()).await;
    let mut r = receiver(Mode::FailFirst(2)).await;
    store
        .put_hook(&hook("flaky", r.addr), Precondition::Absent)
        .await
        .unwrap();

    let started = Instant::now();
    bus.emit(EventType::StreamStarted, "demo", serde_json::json!({}));
    wait_for("delivery", || {
        d.stats().delivered.load(Ordering::SeqCst) == 1
    })
    .await;
    let took = started.elapsed();
    // 500, 500, 200: three requests of the same event (same id), 20 + 40 ms apart.
    assert_eq!(r.requests.load(Ordering::SeqCst), 3);
    let mut ids = Vec::new();
    while let Ok((id, body)) = r.rx.try_recv() {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], id.as_str());
        ids.push(id);
    }
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "retries keep the event id"
    );
    assert!(
        took >= Duration::from_millis(60),
        "backoff 20 ms + 40 ms, took {took:?}"
    );
    assert_eq!(d.stats().failed.load(Ordering::SeqCst), 0);
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let (_dir, store, bus, d) = setup(fast()).await;
    let r = receiver(Mode::FailFirst(usize::MAX)).await;
    let mut h = hook("down", r.addr);
    h.max_retries = 2;
    store.put_hook(&h, Precondition::Absent).await.unwrap();
    bus.emit(EventType::StreamStopped, "demo", serde_json::json!({}));
    wait_for("give up", || d.stats().failed.load(Ordering::SeqCst) == 1).await;
    assert_eq!(r.requests.load(Ordering::SeqCst), 3, "1 + max_retries");
    assert_eq!(d.stats().delivered.load(Ordering::SeqCst), 0);
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn hanging_receiver_does_not_delay_other_hooks_and_overflow_is_counted() {
    let config = DispatcherConfig {
        queue_per_hook: 2,
        ..fast()
    };
    let (_dir, store, bus, d) = setup(config).await;
    let hang = receiver(Mode::Hang).await;
    let ok = receiver(Mode::FailFirst(0)).await;
    store
        .put_hook(&hook("hang", hang.addr), Precondition::Absent)
        .await
        .unwrap();
    store
        .put_hook(&hook("ok", ok.addr), Precondition::Absent)
        .await
        .unwrap();

    let started = Instant::now();
    // Spaced so that the healthy hook's small queue keeps up.
    for _ in 0..10 {
        bus.emit(EventType::InputDegraded, "demo", serde_json::json!({}));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for("the healthy hook's 10 deliveries", || {
        d.stats().delivered.load(Ordering::SeqCst) == 10
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "healthy hook took {took:?}");
    assert_eq!(ok.requests.load(Ordering::SeqCst), 10);
    // The hanging hook has one request in flight and 2 queued; the other 7
    // of its 10 events are dropped and counted.
    assert_eq!(hang.requests.load(Ordering::SeqCst), 1);
    assert_eq!(d.stats().dropped.load(Ordering::SeqCst), 7);

    // Shutdown abandons the hanging delivery at the deadline.
    let t = Instant::now();
    d.shutdown(Duration::from_millis(200)).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn disabled_and_unsubscribed_hooks_get_nothing() {
    let (_dir, store, bus, d) = setup(fast()).await;
    let all = receiver(Mode::FailFirst(0)).await;
    let off = receiver(Mode::FailFirst(0)).await;
    let only_started = receiver(Mode::FailFirst(0)).await;
    store
        .put_hook(&hook("all", all.addr), Precondition::Absent)
        .await
        .unwrap();
    let mut h = hook("off", off.addr);
    h.enabled = false;
    store.put_hook(&h, Precondition::Absent).await.unwrap();
    let mut h = hook("started", only_started.addr);
    h.event_types = vec!["stream.started".into()];
    store.put_hook(&h, Precondition::Absent).await.unwrap();
    let mut k = hook("kafka", all.addr);
    k.hook_type = os_domain::HookType::Kafka;
    k.target = "events".into();
    store.put_hook(&k, Precondition::Absent).await.unwrap();

    bus.emit(EventType::StreamCreated, "demo", serde_json::json!({}));
    bus.emit(EventType::StreamStarted, "demo", serde_json::json!({}));
    wait_for("3 deliveries", || {
        d.stats().delivered.load(Ordering::SeqCst) == 3
    })
    .await;
    // Deliveries are flushed at shutdown; nothing more arrives.
    d.shutdown(Duration::from_secs(1)).await;
    assert_eq!(all.requests.load(Ordering::SeqCst), 2);
    assert_eq!(only_started.requests.load(Ordering::SeqCst), 1);
    assert_eq!(off.requests.load(Ordering::SeqCst), 0);
    assert_eq!(d.stats().kafka_unavailable.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shutdown_flushes_queued_events() {
    let (_dir, store, bus, d) = setup(fast()).await;
    let r = receiver(Mode::FailFirst(0)).await;
    store
        .put_hook(&hook("h", r.addr), Precondition::Absent)
        .await
        .unwrap();
    for _ in 0..5 {
        bus.emit(EventType::StreamStopped, "demo", serde_json::json!({}));
    }
    // Immediately: the events are still queued.
    d.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.requests.load(Ordering::SeqCst), 5);
    assert_eq!(d.stats().delivered.load(Ordering::SeqCst), 5);
}
