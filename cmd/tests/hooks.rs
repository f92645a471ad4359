//! Hooks end to end: the real server (in-process, port 0) delivering
//! lifecycle events to real HTTP receivers on 127.0.0.1.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{Server, config, start};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

const TOKEN: &str = "hook-test-token";

struct Received {
    headers: HeaderMap,
    body: Bytes,
}

struct Receiver {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    rx: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// The next request, within 5 s.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no request within 5 s"))
            .unwrap_or_else(|| panic!("receiver gone"))
    }
}

/// A receiver answering `status`, or never answering when `hang`.
async fn receiver(status: StatusCode, hang: bool) -> Receiver {
    let requests = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let count = requests.clone();
    let app = Router::new().route(
        "/events",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(Received { headers, body });
                if hang {
                    std::future::pending::<()>().await;
                }
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { addr, requests, rx }
}

/// Authenticated request: (status, JSON body or Null).
async fn call(s: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.client.request(method, s.url(path)).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn stream_doc() -> Value {
    json!({"inputs": [{"url": "rtmp://0.0.0.0:1935/live/hooked", "priority": 0}]})
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn lifecycle_events_reach_a_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(config(dir.path(), TOKEN)).await;
    let mut r = receiver(StatusCode::OK, false).await;

    // Token-protected like /streams.
    let resp = s.client.get(s.url("/hooks")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let secret = "s3cr3t-for-hmac";
    let (st, body) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "ops", "name": "Ops", "target": r.url(), "secret": secret})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["data"]["id"], "ops");

    let (st, _) = call(&s, Method::PUT, "/streams/cam1", Some(stream_doc())).await;
    assert_eq!(st, 201);
    let (st, _) = call(&s, Method::POST, "/streams/cam1/start", None).await;
    assert_eq!(st, 200);
    let (st, _) = call(&s, Method::POST, "/streams/cam1/stop", None).await;
    assert_eq!(st, 200);
    let (st, _) = call(&s, Method::DELETE, "/streams/cam1", None).await;
    assert_eq!(st, 204);

    let mut ids = HashSet::new();
    for expected in [
        "stream.created",
        "stream.started",
        "stream.stopped",
        "stream.deleted",
    ] {
        let got = r.next().await;
        let v: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(v["type"], expected, "{v}");
        assert_eq!(v["stream_code"], "cam1");
        assert!(v["data"].is_object());
        assert_eq!(header(&got, "content-type"), "application/json");
        assert_eq!(header(&got, "x-openstreamer-event"), expected);
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(header(&got, "x-openstreamer-event-id"), id);
        assert!(ids.insert(id), "ids are unique");
        let at = v["occurred_at"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(at).unwrap();
        assert_eq!(parsed.offset().local_minus_utc(), 0, "UTC: {at}");

        // The signature is HMAC-SHA256 of the exact body bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&got.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            header(&got, "x-openstreamer-signature"),
            format!("sha256={want}")
        );
    }
    s.stop().await;
    assert_eq!(
        r.requests.load(Ordering::SeqCst),
        4,
        "nothing else was sent"
    );
}

#[tokio::test]
async fn hanging_hook_delays_neither_the_api_nor_other_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), TOKEN);
    cfg.server.shutdown_timeout_sec = 1;
    let s = start(cfg).await;
    let hang = receiver(StatusCode::OK, true).await;
    let mut ok = receiver(StatusCode::OK, false).await;
    for (id, r) in [("hang", &hang), ("ok", &ok)] {
        let (st, body) = call(
            &s,
            Method::POST,
            "/hooks",
            Some(json!({"id": id, "target": r.url(), "timeout_sec": 300})),
        )
        .await;
        assert_eq!(st, 201, "{body}");
    }

    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut expected = 0;
    for i in 0..5 {
        let code = format!("s{i}");
        for (method, path, body) in [
            (Method::PUT, format!("/streams/{code}"), Some(stream_doc())),
            (Method::POST, format!("/streams/{code}/start"), None),
            (Method::POST, format!("/streams/{code}/stop"), None),
            (Method::DELETE, format!("/streams/{code}"), None),
        ] {
            let t = Instant::now();
            let (st, _) = call(&s, method, &path, body).await;
            slowest = slowest.max(t.elapsed());
            assert!(st < 300, "{path}: {st}");
        }
        expected += 4;
    }
    for _ in 0..expected {
        ok.next().await;
    }
    let all = started.elapsed();
    eprintln!(
        "20 API calls + 20 deliveries to the healthy hook: {all:?}; slowest API call {slowest:?}"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "slowest API call {slowest:?}"
    );
    assert!(
        all < Duration::from_secs(3),
        "healthy hook got its 20 events after {all:?}"
    );
    assert_eq!(hang.requests.load(Ordering::SeqCst), 1, "one request stuck");

    // Shutdown abandons the hanging delivery at the deadline (1 s).
    let t = Instant::now();
    s.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn test_endpoint_reports_the_real_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(config(dir.path(), TOKEN)).await;
    let mut live = receiver(StatusCode::OK, false).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (st, _) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "live", "target": live.url(), "enabled": false})),
    )
    .await;
    assert_eq!(st, 201);
    let (st, _) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "dead", "target": format!("http://{closed}/x"), "max_retries": 0})),
    )
    .await;
    assert_eq!(st, 201);

    let (st, body) = call(&s, Method::POST, "/hooks/live/test", None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"delivered": true, "status": 200, "attempts": 1})
    );
    let got = live.next().await;
    let v: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["type"], "stream.created");
    assert_eq!(v["stream_code"], "_test_");
    assert_eq!(v["data"], json!({"test": true, "hook_id": "live"}));

    let (st, body) = call(&s, Method::POST, "/hooks/dead/test", None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["delivered"], false);
    assert_eq!(body["data"]["status"], Value::Null);
    assert_eq!(body["data"]["attempts"], 1);
    let err = body["data"]["error"].as_str().unwrap();
    assert!(err.contains("connection"), "{err}");

    let (st, body) = call(&s, Method::POST, "/hooks/nope/test", None).await;
    assert_eq!(st, 404, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn hooks_crud_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(config(dir.path(), TOKEN)).await;

    let (st, body) = call(&s, Method::GET, "/hooks", None).await;
    assert_eq!((st, body), (200, json!({"data": [], "total": 0})));

    let (st, body) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "bad", "target": "ftp://example.com", "event_types": ["stream.started", "nope"]})),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["target", "event_types[1]"]);

    let (st, body) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "x", "retries": 1})),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");

    let hook =
        json!({"id": "ops", "target": "http://127.0.0.1:9/x", "event_types": ["stream.started"]});
    let (st, created) = call(&s, Method::POST, "/hooks", Some(hook.clone())).await;
    assert_eq!(st, 201);
    assert_eq!(created["data"]["max_retries"], 3, "defaults filled");
    let (st, body) = call(&s, Method::POST, "/hooks", Some(hook)).await;
    assert_eq!(st, 409, "{body}");

    // Kafka hooks are stored; without hooks.kafka_brokers they are not delivered.
    let (st, _) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "k", "type": "kafka", "target": "events"})),
    )
    .await;
    assert_eq!(st, 201);
    let (st, body) = call(&s, Method::POST, "/hooks/k/test", None).await;
    assert_eq!(st, 200);
    assert_eq!(body["data"]["delivered"], false);
    assert!(body["data"]["error"].as_str().unwrap().contains("kafka"));

    // PUT is a merge patch; the path id wins.
    let (st, body) = call(
        &s,
        Method::PUT,
        "/hooks/ops",
        Some(json!({"id": "other", "enabled": false, "event_types": []})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["id"], "ops");
    assert_eq!(body["data"]["enabled"], false);
    assert_eq!(body["data"]["target"], "http://127.0.0.1:9/x");
    let (st, body) = call(
        &s,
        Method::PUT,
        "/hooks/ops",
        Some(json!({"timeout_sec": 0})),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(body["error"]["details"][0]["path"], "timeout_sec");
    let (st, got) = call(&s, Method::GET, "/hooks/ops", None).await;
    assert_eq!(st, 200);
    assert_eq!(got["data"]["enabled"], false);

    let (st, list) = call(&s, Method::GET, "/hooks", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["total"], 2);

    for (method, path) in [
        (Method::GET, "/hooks/unknown"),
        (Method::PUT, "/hooks/unknown"),
        (Method::DELETE, "/hooks/unknown"),
    ] {
        let body = (method == Method::PUT).then(|| json!({}));
        let (st, err) = call(&s, method, path, body).await;
        assert_eq!(st, 404, "{path}");
        assert_eq!(err["error"]["code"], "NOT_FOUND");
    }
    let (st, _) = call(&s, Method::DELETE, "/hooks/ops", None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&s, Method::GET, "/hooks/ops", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn failing_input_emits_degraded_and_failover() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(config(dir.path(), TOKEN)).await;
    let mut r = receiver(StatusCode::OK, false).await;
    let (st, _) = call(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({"id": "inputs", "target": r.url(),
            "event_types": ["input.degraded", "input.failover"]})),
    )
    .await;
    assert_eq!(st, 201);
    // Input 0 plays a short file once and ends; input 1 (a cold backup)
    // loops the same file and takes over.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/testdata/h264_aac.ts")
        .display()
        .to_string();
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/flaky",
        Some(json!({"inputs": [
            {"url": file, "priority": 0},
            {"url": format!("{file}?loop=true"), "priority": 1},
        ]})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, _) = call(&s, Method::POST, "/streams/flaky/start", None).await;
    assert_eq!(st, 200);

    let mut next = async || -> Value { serde_json::from_slice(&r.next().await.body).unwrap() };
    let degraded = next().await;
    assert_eq!(degraded["type"], "input.degraded", "{degraded}");
    assert_eq!(degraded["stream_code"], "flaky");
    assert_eq!(degraded["data"]["input_priority"], 0);
    assert_eq!(degraded["data"]["reason"], "ended");
    assert_eq!(degraded["data"]["active"], true);
    assert!(degraded["data"]["error"].is_string());
    let failover = next().await;
    assert_eq!(failover["type"], "input.failover", "{failover}");
    assert_eq!(
        failover["data"],
        json!({"from": 0, "to": 1, "reason": "ended"})
    );
    s.stop().await;
}
