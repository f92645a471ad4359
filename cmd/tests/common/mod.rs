//! Shared helpers: run the real server in-process on port 0.

#![allow(dead_code)]

pub mod failover;
pub mod media;

use std::net::SocketAddr;
use std::path::Path;

use open_streamer::App;
use os_config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Server {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful shutdown; waits for `App::serve` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap_or_else(|e| panic!("server task: {e}"));
        }
    }
}

pub fn config(data_dir: &Path, token: &str) -> Config {
    let mut c = Config::default();
    c.server.http_addr = "127.0.0.1:0".into();
    c.server.api_token = token.into();
    c.storage.json_dir = data_dir.display().to_string();
    // Shared listeners on any free port so tests can run side by side.
    c.listeners.rtmp.listen_host = "127.0.0.1".into();
    c.listeners.rtmp.port = 0;
    c.listeners.srt.listen_host = "127.0.0.1".into();
    c.listeners.srt.port = 0;
    c.listeners.rtsp.listen_host = "127.0.0.1".into();
    c.listeners.rtsp.port = 0;
    c.metrics.addr = "127.0.0.1:0".into();
    c
}

pub async fn start(config: Config) -> Server {
    let app = App::bind(config)
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    serve(app)
}

/// Serve an already bound app in a task.
pub fn serve(app: App) -> Server {
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.serve(async {
            let _ = rx.await;
        })
        .await
        .unwrap_or_else(|e| panic!("serve: {e}"));
    });
    Server {
        addr,
        client: reqwest::Client::new(),
        stop: Some(tx),
        task: Some(task),
    }
}

/// Send a request and return (status, JSON body or Null).
pub async fn call(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = s.client.request(method, s.url(path));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, json)
}
