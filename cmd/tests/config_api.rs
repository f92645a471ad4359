//! `GET /config` and `POST /config` on the real server: the effective
//! configuration with secrets redacted, listeners moved at runtime without
//! touching the others or running streams, and refusals that change nothing.
//!
//! Needs the Debian package `ffmpeg` (an RTMP publisher and a UDP feeder).

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::failover::{FeedSpec, Feeder, Watch, free_udp_port};
use open_streamer::App;
use reqwest::Method;
use serde_json::{Value, json};

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn accepts(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).ok())
        .is_some()
}

async fn get_config(s: &common::Server) -> Value {
    let (st, b) = common::call(s, Method::GET, "/config", None).await;
    assert_eq!(st, 200, "{b}");
    b["data"].clone()
}

async fn post_config(s: &common::Server, patch: Value) -> (u16, Value) {
    common::call(s, Method::POST, "/config", Some(patch)).await
}

/// A child killed by its PID on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rtmp_publisher(url: &str) -> Child {
    common::failover::require("ffmpeg");
    Child(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=500:sample_rate=44100"])
            .args([
                "-t",
                "60",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("ffmpeg: {e}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_readable_with_secrets_redacted_and_guarded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = common::config(dir.path(), "");
    c.storage.sql_dsn = "postgres://app:s3cret@127.0.0.1:5432/os".into();
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let rtmp = app.rtmp_addr().map(|a| a.to_string());
    let s = common::serve(app);

    let v = get_config(&s).await;
    assert_eq!(
        v["config"]["storage"]["sql_dsn"],
        "postgres://app:***@127.0.0.1:5432/os"
    );
    assert_eq!(v["config"]["manager"]["input_packet_timeout_sec"], 3.0);
    assert_eq!(v["listeners"]["http"], s.addr.to_string());
    assert_eq!(v["listeners"]["rtmp"].as_str().map(str::to_string), rtmp);
    assert!(v["listeners"]["srt"].is_string());

    // Echoing the redacted document back changes nothing.
    let (st, b) = post_config(&s, json!({"storage": v["config"]["storage"].clone()})).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["changes"]["applied"], json!([]));

    // Keys that need a restart are refused, naming them; nothing changes.
    let (st, b) = post_config(
        &s,
        json!({"storage": {"driver": "sql"}, "listeners": {"rtmp": {"port": free_tcp_port()}}}),
    )
    .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "RESTART_REQUIRED");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("storage.driver"))
    );
    assert_eq!(
        get_config(&s).await["listeners"]["rtmp"],
        v["listeners"]["rtmp"]
    );

    // Bad values: 400 naming the key.
    let (st, b) = post_config(&s, json!({"listeners": {"rtmp": {"port": "abc"}}})).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["code"], "VALIDATION_FAILED");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("listeners.rtmp.port")),
        "{b}"
    );
    let (st, b) = post_config(&s, json!({"manager": {"standby": "warm"}})).await;
    assert!(st == 400 || st == 409, "{b}");
    let (st, b) = post_config(&s, json!({"nope": 1})).await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = common::call(&s, Method::POST, "/config", Some(json!([1]))).await;
    assert_eq!(st, 400, "{b}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_port_moves_at_runtime_and_only_that_listener_changes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = common::config(dir.path(), "");
    let app = App::bind(c).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let hub = app.hub();
    let s = common::serve(app);
    let before = get_config(&s).await;
    let old_rtmp = before["listeners"]["rtmp"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(accepts(&old_rtmp));

    // A running stream fed over UDP, watched at the hub.
    let port = free_udp_port();
    let _feed = Feeder::start(
        port,
        FeedSpec {
            size: "320x240",
            tone: 700,
            video_seconds: 60,
            seconds: 60,
        },
    );
    let body = json!({"code": "udp", "inputs": [{"url": format!("udp://127.0.0.1:{port}"), "priority": 0}]});
    assert_eq!(
        common::call(&s, Method::PUT, "/streams/udp", Some(body))
            .await
            .0,
        201
    );
    assert_eq!(
        common::call(&s, Method::POST, "/streams/udp/start", None)
            .await
            .0,
        200
    );
    let watch = Watch::start(hub, "udp");
    // A push stream waiting on the RTMP listener.
    let body = json!({"code": "pushed", "inputs": [{"url": "rtmp://0.0.0.0:1935/live/pushkey", "priority": 0}]});
    assert_eq!(
        common::call(&s, Method::PUT, "/streams/pushed", Some(body))
            .await
            .0,
        201
    );
    assert_eq!(
        common::call(&s, Method::POST, "/streams/pushed/start", None)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Occupied port: 409, nothing changes.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let busy_port = busy.local_addr().map(|a| a.port()).unwrap_or(0);
    let (st, b) = post_config(&s, json!({"listeners": {"rtmp": {"port": busy_port}}})).await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "ADDRESS_IN_USE");
    assert!(accepts(&old_rtmp), "the old listener must still run");
    drop(busy);

    // Move it.
    let new_port = free_tcp_port();
    let seen = watch.len();
    let (st, b) = post_config(&s, json!({"listeners": {"rtmp": {"port": new_port}}})).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["changes"]["applied"], json!(["listeners.rtmp.port"]));
    let new_rtmp = format!("127.0.0.1:{new_port}");
    assert_eq!(b["data"]["listeners"]["rtmp"], new_rtmp);
    assert_eq!(b["data"]["listeners"]["srt"], before["listeners"]["srt"]);
    assert_eq!(b["data"]["listeners"]["http"], before["listeners"]["http"]);
    assert!(accepts(&new_rtmp));
    let deadline = Instant::now() + Duration::from_secs(3);
    while accepts(&old_rtmp) {
        assert!(Instant::now() < deadline, "the old RTMP port still accepts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A publisher on the new port feeds the push stream.
    let _publisher = rtmp_publisher(&format!("rtmp://{new_rtmp}/live/pushkey"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, b) = common::call(&s, Method::GET, "/streams/pushed/status", None).await;
        if b["data"]["status"] == "active" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no media through the moved listener: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The UDP stream was not touched.
    assert!(
        !watch.closed() && watch.len() > seen,
        "the running stream was disturbed"
    );
    let (_, b) = common::call(&s, Method::GET, "/streams/udp/status", None).await;
    assert_eq!(b["data"]["inputs"][0]["reconnects"], 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_address_moves_at_runtime() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = common::config(dir.path(), "");
    let s = common::start(c).await;
    let new_port = free_tcp_port();
    let (st, b) = post_config(
        &s,
        json!({"server": {"http_addr": format!("127.0.0.1:{new_port}")}}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["changes"]["applied"], json!(["server.http_addr"]));
    let resp = reqwest::get(format!("http://127.0.0.1:{new_port}/healthz"))
        .await
        .unwrap_or_else(|e| panic!("new address: {e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let old = s.addr.to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepts(&old) {
        assert!(
            Instant::now() < deadline,
            "the old HTTP address still accepts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stop through the new address's server (the handle still works).
    s.stop().await;
}
