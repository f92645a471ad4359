//! A Kafka cluster that comes back without its state (tansu with memory
//! storage, restarted): the idempotent producer's id is unknown to it and
//! librdkafka would retry until every record times out, forever. The sink
//! notices (records time out, none delivered) and replaces its producer;
//! delivery resumes and the records land in the topic.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use os_domain::{Hook, HookType};
use os_events::{EventBus, EventType};
use os_hooks::{Dispatcher, DispatcherConfig, KafkaSettings};
use os_store::{Precondition, Store, json::JsonStore};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn tansu_bin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/tansu");
    assert!(p.exists(), "{} missing: run `make test-deps`", p.display());
    p
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh (empty) tansu on `port` with topic `ev` (1 partition).
fn broker(port: u16) -> Broker {
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let b = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new(tansu_bin())
        .args([
            "topic",
            "create",
            "--broker",
            &url,
            "--partitions",
            "1",
            "ev",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_recovers_from_a_broker_that_lost_its_state() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = broker(port);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(JsonStore::open(dir.path()).await.unwrap());
    let bus = Arc::new(EventBus::new());
    let d = Dispatcher::start(
        store.clone(),
        &bus,
        DispatcherConfig {
            kafka: KafkaSettings {
                brokers: vec![format!("127.0.0.1:{port}")],
                queue: 100,
                message_timeout: Duration::from_secs(2),
            },
            ..DispatcherConfig::default()
        },
    );
    let hook = Hook {
        id: "k".into(),
        hook_type: HookType::Kafka,
        target: "ev".into(),
        ..Hook::default()
    };
    store.put_hook(&hook, Precondition::Absent).await.unwrap();
    let k = d.stats().kafka.clone();

    bus.emit(EventType::StreamStarted, "before", serde_json::json!({}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while k.delivered.load(Ordering::SeqCst) < 1 {
        assert!(Instant::now() < deadline, "first record not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The cluster is replaced by an empty one on the same address.
    drop(first);
    let _second = broker(port);
    let t = Instant::now();
    while k.delivered.load(Ordering::SeqCst) < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no delivery after the restart: failed {}, buffered {}",
            k.failed.load(Ordering::SeqCst),
            d.kafka_buffered()
        );
        bus.emit(EventType::StreamStarted, "after", serde_json::json!({}));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "delivery resumed {:?} after the restart (message timeout 2 s); failed meanwhile {}",
        t.elapsed(),
        k.failed.load(Ordering::SeqCst)
    );
    assert!(
        k.failed.load(Ordering::SeqCst) >= 1,
        "records of the old producer time out"
    );

    // What was delivered is in the new cluster's topic.
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "os-restart-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ev", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), c.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.key(), Some(&b"after"[..]));
    let v: serde_json::Value = serde_json::from_slice(msg.payload().unwrap()).unwrap();
    assert_eq!(v["type"], "stream.started");
    d.shutdown(Duration::from_secs(2)).await;
}
