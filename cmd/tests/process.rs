//! The real `open-streamer` binary: CLI, exit codes, signals, crash safety.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_open-streamer");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn spawn(dir: &Path, port: u16, extra_env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env(
            "OPEN_STREAMER_SERVER_HTTP_ADDR",
            format!("127.0.0.1:{port}"),
        )
        .env("OPEN_STREAMER_STORAGE_JSON_DIR", dir.join("data"))
        .env("OPEN_STREAMER_METRICS_ADDR", "")
        .env("OPEN_STREAMER_LISTENERS_RTMP_LISTEN_HOST", "127.0.0.1")
        .env("OPEN_STREAMER_LISTENERS_RTMP_PORT", "0")
        .env("OPEN_STREAMER_LISTENERS_SRT_LISTEN_HOST", "127.0.0.1")
        .env("OPEN_STREAMER_LISTENERS_SRT_PORT", "0")
        .env("OPEN_STREAMER_LISTENERS_RTSP_LISTEN_HOST", "127.0.0.1")
        .env("OPEN_STREAMER_LISTENERS_RTSP_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"))
}

async fn wait_healthy(client: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let url = format!("http://127.0.0.1:{port}/healthz");
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on port {port} did not become healthy");
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("open-streamer {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config <PATH>"));
    let out = Command::new(BIN)
        .arg("--bogus")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invalid_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path())
            .args(args)
            .env("OPEN_STREAMER_LISTENERS_RTMP_PORT", "0")
            .env("OPEN_STREAMER_LISTENERS_SRT_PORT", "0")
            .env("OPEN_STREAMER_LISTENERS_RTSP_LISTEN_HOST", "127.0.0.1")
            .env("OPEN_STREAMER_LISTENERS_RTSP_PORT", "0")
            .env("OPEN_STREAMER_METRICS_ADDR", "");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[], &[("OPEN_STREAMER_BUFFER_CAPACITY", "0")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("buffer.capacity: must be between 1 and 1000000"),
        "{err}"
    );

    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "publisher:\n  hls:\n    dir: ./m\n  dash:\n    dir: ./m\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (code, err) = run(&["--config", &file.display().to_string()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("publisher.dash.dir: must differ from publisher.hls.dir"),
        "{err}"
    );

    let (code, err) = run(&["--config", "/nonexistent/x.yaml"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/x.yaml: not found"), "{err}");

    // A port that is taken is a runtime error (exit 1), reported with the key.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().map(|a| a.port()).unwrap_or_default();
    let (code, err) = run(
        &[],
        &[
            (
                "OPEN_STREAMER_SERVER_HTTP_ADDR",
                &format!("127.0.0.1:{port}"),
            ),
            (
                "OPEN_STREAMER_STORAGE_JSON_DIR",
                &dir.path().join("d").display().to_string(),
            ),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("server.http_addr"), "{err}");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_0() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut child = spawn(dir.path(), port, &[("OPEN_STREAMER_LOG_FORMAT", "json")]);
    let client = reqwest::Client::new();
    wait_healthy(&client, port).await;
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    // Structured JSON logs, one object per line.
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "received SIGTERM"),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{stderr}");
}

/// Writers hammer the API while the process is killed with SIGKILL; after a
/// restart every acknowledged write is there and every file is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_writes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut child = spawn(dir.path(), port, &[]);
    let client = reqwest::Client::new();
    wait_healthy(&client, port).await;

    const WRITERS: usize = 8;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            // Returns (highest acknowledged counter, highest sent counter).
            let mut acked: i64 = -1;
            let mut sent: i64 = -1;
            for n in 0i64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent = n;
                let body = json!({"name": format!("{n}"), "tags": [format!("w{w}")]});
                let r = client
                    .put(format!("http://127.0.0.1:{port}/streams/w{w}"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => acked = n,
                    _ => break,
                }
            }
            (acked, sent)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, "KILL");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by a signal");
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(
        results.iter().all(|(acked, _)| *acked >= 0),
        "writes were acknowledged: {results:?}"
    );

    let port = free_port();
    let mut child = spawn(dir.path(), port, &[]);
    wait_healthy(&client, port).await;
    for (w, (acked, sent)) in results.iter().enumerate() {
        let r = client
            .get(format!("http://127.0.0.1:{port}/streams/w{w}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 200, "stream w{w} lost");
        let body: Value = r.json().await.unwrap_or_default();
        let stored: i64 = body["data"]["name"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        assert!(
            stored >= *acked && stored <= *sent,
            "w{w}: stored {stored}, acknowledged {acked}, sent {sent}"
        );
    }
    signal(&child, "TERM");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
    let total: i64 = results.iter().map(|(a, _)| a + 1).sum();
    eprintln!("acknowledged writes before SIGKILL: {total}");
}
