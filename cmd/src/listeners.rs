//! The server's listeners (HTTP, shared RTMP, shared SRT, RTSP) as tasks that can
//! be replaced while the server runs, and `GET|POST /config` on top of them.
//!
//! A changed listener is rebound in this order: bind the new socket (a
//! failure changes nothing), start serving it, then stop the old one. The
//! HTTP listener that answered the request keeps serving its open
//! connections until they finish.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use os_api::config::{BoxFuture, ConfigApplied, ConfigControl, ConfigView, ListenerAddrs};
use os_api::error::ApiError;
use os_api::{Readiness, body::merge_patch};
use os_config::{Config, parse_listen_addr};
use os_domain::FieldError;
use os_ingest::PushRegistry;
use serde_json::Value;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Shown instead of secrets.
const REDACTED: &str = "***";

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    http: Option<Running>,
    rtmp: Option<Running>,
    srt: Option<Running>,
    rtsp: Option<Running>,
    /// HTTP listeners replaced at runtime, still finishing their requests.
    retired: Vec<JoinHandle<()>>,
}

/// The running listeners.
pub(crate) struct Listeners {
    registry: Arc<PushRegistry>,
    /// Play side of the shared RTMP/SRT listeners.
    players: Option<Arc<os_ingest::Players>>,
    readiness: Arc<Readiness>,
    router: Mutex<Option<Router>>,
    inner: Mutex<Inner>,
}

impl Listeners {
    pub(crate) fn new(
        registry: Arc<PushRegistry>,
        players: Option<Arc<os_ingest::Players>>,
        readiness: Arc<Readiness>,
    ) -> Self {
        Self {
            registry,
            players,
            readiness,
            router: Mutex::new(None),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn addrs(&self) -> ListenerAddrs {
        let i = self.inner();
        ListenerAddrs {
            http: i.http.as_ref().map(|r| r.addr.to_string()),
            rtmp: i.rtmp.as_ref().map(|r| r.addr.to_string()),
            srt: i.srt.as_ref().map(|r| r.addr.to_string()),
            rtsp: i.rtsp.as_ref().map(|r| r.addr.to_string()),
        }
    }

    /// Serve `router` on `listener`, replacing the current HTTP listener
    /// (which stops accepting and finishes its open requests).
    pub(crate) fn serve_http(&self, listener: TcpListener, router: Router) {
        *self.router.lock().unwrap_or_else(PoisonError::into_inner) = Some(router.clone());
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let stop = CancellationToken::new();
        let graceful = stop.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(graceful.cancelled_owned())
                .await
            {
                tracing::error!(%addr, error = %e, "http server failed");
            }
        });
        tracing::info!(%addr, swagger = %format!("http://{addr}/swagger/"), "http server listening");
        let old = self.inner().http.replace(Running { addr, stop, task });
        if let Some(old) = old {
            tracing::info!(old = %old.addr, new = %addr, "http listener moved");
            old.stop.cancel();
            self.inner().retired.push(old.task);
        }
    }

    /// Serve the shared RTMP listener on `listener` (None = disabled),
    /// replacing the current one.
    pub(crate) fn serve_rtmp(&self, listener: Option<TcpListener>) {
        let new = listener.and_then(|l| {
            let addr = l.local_addr().ok()?;
            let stop = CancellationToken::new();
            let task = tokio::spawn(os_ingest::rtmp::serve_listener_with(
                l,
                self.registry.clone(),
                self.players.clone(),
                stop.clone(),
            ));
            tracing::info!(%addr, "rtmp listener");
            Some(Running { addr, stop, task })
        });
        self.readiness.set("rtmp", new.is_some());
        let old = std::mem::replace(&mut self.inner().rtmp, new);
        if let Some(old) = old {
            tracing::info!(addr = %old.addr, "rtmp listener closed");
            old.stop.cancel();
        }
    }

    /// Serve the shared SRT listener on `socket` (None = disabled),
    /// replacing the current one.
    pub(crate) fn serve_srt(&self, socket: Option<UdpSocket>, latency: Duration) {
        let new = socket.and_then(|socket| {
            let addr = socket.local_addr().ok()?;
            let stop = CancellationToken::new();
            let config = os_ingest::srt::ListenerConfig {
                latency,
                ..Default::default()
            };
            let registry = self.registry.clone();
            let players = self.players.clone();
            let readiness = self.readiness.clone();
            let cancel = stop.clone();
            let task = tokio::spawn(async move {
                if let Err(e) =
                    os_ingest::srt::serve_listener_with(socket, config, registry, players, cancel)
                        .await
                {
                    tracing::error!(error = %e, "srt listener stopped");
                    readiness.set("srt", false);
                }
            });
            tracing::info!(%addr, "srt listener");
            Some(Running { addr, stop, task })
        });
        self.readiness.set("srt", new.is_some());
        let old = std::mem::replace(&mut self.inner().srt, new);
        if let Some(old) = old {
            tracing::info!(addr = %old.addr, "srt listener closed");
            old.stop.cancel();
        }
    }

    /// Serve RTSP players on `listener` (None = disabled), replacing the
    /// current listener (its players are disconnected).
    pub(crate) fn serve_rtsp(
        &self,
        listener: Option<TcpListener>,
        config: os_ingest::rtsp_server::ServerConfig,
    ) {
        let new = listener.and_then(|l| {
            let addr = l.local_addr().ok()?;
            let players = self.players.clone()?;
            let stop = CancellationToken::new();
            let task = tokio::spawn(os_ingest::rtsp_server::serve_listener(
                l,
                players,
                config,
                stop.clone(),
            ));
            tracing::info!(%addr, "rtsp listener");
            Some(Running { addr, stop, task })
        });
        self.readiness.set("rtsp", new.is_some());
        let old = std::mem::replace(&mut self.inner().rtsp, new);
        if let Some(old) = old {
            tracing::info!(addr = %old.addr, "rtsp listener closed");
            old.stop.cancel();
        }
    }

    /// Stop accepting HTTP connections; wait (bounded) for open requests.
    pub(crate) async fn stop_http(&self, deadline: Duration) {
        let (current, retired) = {
            let mut i = self.inner();
            (i.http.take(), std::mem::take(&mut i.retired))
        };
        let mut tasks = retired;
        if let Some(r) = current {
            r.stop.cancel();
            tasks.push(r.task);
        }
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("shutdown deadline reached; closing open connections");
        }
    }

    /// Stop the media listeners and wait for them.
    pub(crate) async fn stop_media(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut i = self.inner();
            [i.rtmp.take(), i.srt.take(), i.rtsp.take()]
                .into_iter()
                .flatten()
                .map(|r| {
                    r.stop.cancel();
                    r.task
                })
                .collect()
        };
        for t in tasks {
            let _ = t.await;
        }
    }

    fn router(&self) -> Option<Router> {
        self.router
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `GET|POST /config`: the effective configuration and runtime changes.
pub(crate) struct RuntimeConfig {
    config: Mutex<Config>,
    listeners: Arc<Listeners>,
    /// One change at a time.
    apply: tokio::sync::Mutex<()>,
}

impl RuntimeConfig {
    pub(crate) fn new(config: Config, listeners: Arc<Listeners>) -> Self {
        Self {
            config: Mutex::new(config),
            listeners,
            apply: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Config {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn view(&self, config: &Config) -> ConfigView {
        ConfigView {
            config: redacted(config),
            listeners: self.listeners.addrs(),
            // Filled in by the API from the coordinator's probe.
            hw_accels: Vec::new(),
            transcoder: None,
        }
    }
}

/// Keys that can change while the server runs (prefixes).
const RUNTIME_KEYS: [&str; 4] = [
    "server.http_addr",
    "listeners.rtmp.",
    "listeners.srt.",
    "listeners.rtsp.",
];

/// RTSP server settings from `listeners.rtsp`.
pub(crate) fn rtsp_config(l: &os_config::RtspListener) -> os_ingest::rtsp_server::ServerConfig {
    os_ingest::rtsp_server::ServerConfig {
        udp: l.transport == "udp",
        ..Default::default()
    }
}

fn bad(key: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(vec![FieldError::new(key.to_string(), message.into())])
}

fn in_use(key: &str, addr: SocketAddr, e: &std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "ADDRESS_IN_USE",
        format!("{key}: cannot listen on {addr}: {e}; nothing was changed"),
    )
}

fn listen_addr(key: &str, host: &str, port: u16) -> Result<SocketAddr, ApiError> {
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| bad(key, format!("\"{host}\" is not an IP address")))?;
    Ok(SocketAddr::new(ip, port))
}

impl ConfigControl for RuntimeConfig {
    fn effective(&self) -> ConfigView {
        self.view(&self.current())
    }

    fn apply(&self, patch: Value) -> BoxFuture<'_, Result<(ConfigView, ConfigApplied), ApiError>> {
        Box::pin(async move {
            let _one = self.apply.lock().await;
            let cur = self.current();
            let before = serde_json::to_value(&cur).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
            })?;
            let mut doc = before.clone();
            merge_patch(&mut doc, &without_redacted(patch));
            let new: Config = serde_path_to_error::deserialize(&doc).map_err(|e| {
                let path = e.path().to_string();
                bad(&path, e.into_inner().to_string())
            })?;
            new.validate().map_err(|e| match e {
                os_config::ConfigError::Invalid { key, reason } => bad(&key, reason),
                other => bad("", other.to_string()),
            })?;
            let after = serde_json::to_value(&new).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
            })?;
            let mut changed = Vec::new();
            changed_keys("", &before, &after, &mut changed);
            let fixed: Vec<&String> = changed
                .iter()
                .filter(|k| !RUNTIME_KEYS.iter().any(|p| k.starts_with(p) || *k == p))
                .collect();
            if !fixed.is_empty() {
                let keys: Vec<&str> = fixed.iter().map(|k| k.as_str()).collect();
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "RESTART_REQUIRED",
                    format!(
                        "{} cannot change while the server runs; set it in config.yaml and restart. Nothing was changed",
                        keys.join(", ")
                    ),
                ));
            }
            let touched = |prefix: &str| changed.iter().any(|k| k.starts_with(prefix));

            // Bind every new socket first: a failure changes nothing.
            let http = if touched("server.http_addr") {
                let addr = parse_listen_addr(&new.server.http_addr)
                    .map_err(|r| bad("server.http_addr", r))?;
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| in_use("server.http_addr", addr, &e))?,
                )
            } else {
                None
            };
            let l = &new.listeners;
            let rtmp = if touched("listeners.rtmp.") && l.rtmp.enabled {
                let addr = listen_addr(
                    "listeners.rtmp.listen_host",
                    &l.rtmp.listen_host,
                    l.rtmp.port,
                )?;
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| in_use("listeners.rtmp.port", addr, &e))?,
                )
            } else {
                None
            };
            let srt = if touched("listeners.srt.") && l.srt.enabled {
                let addr =
                    listen_addr("listeners.srt.listen_host", &l.srt.listen_host, l.srt.port)?;
                Some(
                    UdpSocket::bind(addr)
                        .await
                        .map_err(|e| in_use("listeners.srt.port", addr, &e))?,
                )
            } else {
                None
            };

            let rtsp = if touched("listeners.rtsp.") && l.rtsp.enabled {
                let addr = listen_addr(
                    "listeners.rtsp.listen_host",
                    &l.rtsp.listen_host,
                    l.rtsp.port,
                )?;
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| in_use("listeners.rtsp.port", addr, &e))?,
                )
            } else {
                None
            };

            // Swap.
            if touched("listeners.rtsp.") {
                self.listeners.serve_rtsp(rtsp, rtsp_config(&l.rtsp));
            }
            if touched("listeners.rtmp.") {
                self.listeners.serve_rtmp(rtmp);
            }
            if touched("listeners.srt.") {
                self.listeners
                    .serve_srt(srt, Duration::from_millis(u64::from(l.srt.latency_ms)));
            }
            if let Some(listener) = http
                && let Some(router) = self.listeners.router()
            {
                self.listeners.serve_http(listener, router);
            }
            for key in &changed {
                tracing::info!(key = %key, "config changed at runtime");
            }
            *self.config.lock().unwrap_or_else(PoisonError::into_inner) = new.clone();
            Ok((self.view(&new), ConfigApplied { applied: changed }))
        })
    }
}

/// Dotted paths of the leaves that differ between `a` and `b`.
fn changed_keys(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                changed_keys(
                    &path,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// The config as JSON with secrets replaced.
fn redacted(config: &Config) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(t) = v.pointer_mut("/server/api_token")
        && t.as_str().is_some_and(|s| !s.is_empty())
    {
        *t = Value::String(REDACTED.into());
    }
    for ptr in ["/storage/sql_dsn", "/storage/mongo_uri"] {
        if let Some(Value::String(s)) = v.pointer_mut(ptr) {
            *s = redact_url_password(s);
        }
    }
    v
}

fn redact_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some(REDACTED));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

/// A patch built from a `GET /config` answer carries `"***"` for secrets:
/// those members are dropped so the real values stay.
fn without_redacted(mut patch: Value) -> Value {
    if patch
        .pointer("/server/api_token")
        .is_some_and(|t| t == REDACTED)
        && let Some(Value::Object(server)) = patch.pointer_mut("/server")
    {
        server.remove("api_token");
    }
    for (section, key) in [("/storage", "sql_dsn"), ("/storage", "mongo_uri")] {
        let has = patch
            .pointer(&format!("{section}/{key}"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains(REDACTED));
        if has && let Some(Value::Object(m)) = patch.pointer_mut(section) {
            m.remove(key);
        }
    }
    patch
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_keys_are_leaf_paths() {
        let mut out = Vec::new();
        changed_keys(
            "",
            &json!({"a": {"b": 1, "c": 2}, "d": 3}),
            &json!({"a": {"b": 1, "c": 5}, "d": 3, "e": 1}),
            &mut out,
        );
        assert_eq!(out, vec!["a.c", "e"]);
    }

    #[test]
    fn secrets_are_redacted_and_not_taken_back() {
        let mut c = Config::default();
        c.server.api_token = "tok".into();
        c.storage.sql_dsn = "postgres://u:secret@127.0.0.1/db".into();
        let v = redacted(&c);
        assert_eq!(v["server"]["api_token"], "***");
        assert_eq!(v["storage"]["sql_dsn"], "postgres://u:***@127.0.0.1/db");
        let p = without_redacted(v);
        assert!(p["server"].get("api_token").is_none());
        assert!(p["storage"].get("sql_dsn").is_none());
    }
}
