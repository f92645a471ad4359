//! The open-streamer application: wires configuration, storage, the
//! coordinator and the HTTP API together and runs them until shutdown.
//!
//! The `open-streamer` binary (`main.rs`) only parses the command line,
//! loads the configuration, sets up logging and calls [`App::run`]; tests
//! call [`App::bind`] with port 0 and drive the server over real HTTP.

pub mod logging;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use os_api::{AppState, Readiness, RouterOptions};
use os_config::{Config, parse_listen_addr};
use os_coordinator::{Coordinator, CoordinatorConfig};
use os_events::EventBus;
use os_hooks::{Dispatcher, DispatcherConfig};
use os_hub::Hub;
use os_ingest::PushRegistry;
use os_store::{Store, StoreError, json::JsonStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// A server with its sockets bound, ready to [`App::serve`].
pub struct App {
    config: Config,
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    /// The shared RTMP listener (push ingest; play later), when enabled.
    rtmp: Option<TcpListener>,
    /// The shared SRT listener socket, when enabled.
    srt: Option<tokio::net::UdpSocket>,
}

impl App {
    /// Bind, serve until `shutdown` resolves, then shut down gracefully.
    pub async fn run(
        config: Config,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        Self::bind(config).await?.serve(shutdown).await
    }

    /// Open the store and bind the listeners; nothing is served yet.
    pub async fn bind(config: Config) -> Result<Self, AppError> {
        let store: Arc<dyn Store> = match config.storage.driver.as_str() {
            "json" => Arc::new(JsonStore::open(&config.storage.json_dir).await?),
            #[cfg(feature = "sql")]
            "sql" => Arc::new(os_store::sql::SqlStore::connect(&config.storage.sql_dsn).await?),
            #[cfg(feature = "mongo")]
            "mongo" => Arc::new(
                os_store::mongo::MongoStore::connect(
                    &config.storage.mongo_uri,
                    &config.storage.mongo_database,
                )
                .await?,
            ),
            other => {
                return Err(AppError::Config {
                    key: "storage.driver",
                    reason: format!("driver \"{other}\" is not available in this build"),
                });
            }
        };
        let addr =
            parse_listen_addr(&config.server.http_addr).map_err(|reason| AppError::Config {
                key: "server.http_addr",
                reason,
            })?;
        let listener = bind_tcp("server.http_addr", addr).await?;
        let local_addr = listener.local_addr().map_err(|source| AppError::Bind {
            key: "server.http_addr",
            addr,
            source,
        })?;
        let readiness = Arc::new(Readiness::default());
        readiness.set("http", true);

        let l = &config.listeners;
        let rtmp = if l.rtmp.enabled {
            let addr = listen_addr(
                "listeners.rtmp.listen_host",
                &l.rtmp.listen_host,
                l.rtmp.port,
            )?;
            Some(bind_tcp("listeners.rtmp.port", addr).await?)
        } else {
            None
        };
        let srt = if l.srt.enabled {
            let addr = listen_addr("listeners.srt.listen_host", &l.srt.listen_host, l.srt.port)?;
            let socket =
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|source| AppError::Bind {
                        key: "listeners.srt.port",
                        addr,
                        source,
                    })?;
            Some(socket)
        } else {
            None
        };

        let hub = Arc::new(Hub::new());
        let registry = PushRegistry::new();
        let events = Arc::new(EventBus::new());
        let hooks = Dispatcher::start(
            store.clone(),
            &events,
            DispatcherConfig {
                worker_count: config.hooks.worker_count,
                ..DispatcherConfig::default()
            },
        );
        let coordinator = Arc::new(
            Coordinator::new(
                store.clone(),
                hub,
                registry,
                CoordinatorConfig {
                    buffer_capacity: config.buffer.capacity,
                    hls: os_publisher::HlsConfig {
                        dir: config.publisher.hls.dir.clone().into(),
                        segment_duration: config.publisher.hls.segment_duration,
                        live_window: config.publisher.hls.live_window,
                        base_url: config.publisher.hls.base_url.clone(),
                    },
                    dash: os_publisher::DashConfig {
                        dir: config.publisher.dash.dir.clone().into(),
                        segment_duration: config.publisher.dash.segment_duration,
                        live_window: config.publisher.dash.live_window,
                    },
                    ..CoordinatorConfig::default()
                },
            )
            .with_events(events),
        );
        let token = config.server.api_token.trim();
        let state = AppState::new(
            store,
            coordinator,
            readiness,
            (!token.is_empty()).then(|| Arc::from(token)),
        )
        .with_media_dirs(
            config.publisher.hls.dir.clone().into(),
            config.publisher.dash.dir.clone().into(),
        )
        .with_hooks(hooks);
        Ok(Self {
            config,
            listener,
            local_addr,
            state,
            rtmp,
            srt,
        })
    }

    /// The address the HTTP server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the shared RTMP listener, when enabled.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.rtmp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address of the shared SRT listener, when enabled.
    pub fn srt_addr(&self) -> Option<SocketAddr> {
        self.srt.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Serve until `shutdown` resolves. Then stop accepting, give in-flight
    /// requests and components `server.shutdown_timeout_sec` to finish, and
    /// return.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let Self {
            config,
            listener,
            local_addr,
            state,
            rtmp,
            srt,
        } = self;
        let coordinator = state.coordinator.clone();
        let hooks = state.hooks.clone();
        let listeners_stop = CancellationToken::new();
        let mut listener_tasks: Vec<JoinHandle<()>> = Vec::new();
        if let Some(rtmp) = rtmp {
            if let Ok(addr) = rtmp.local_addr() {
                tracing::info!(%addr, "rtmp listener");
            }
            state.readiness.set("rtmp", true);
            listener_tasks.push(tokio::spawn(os_ingest::rtmp::serve_listener(
                rtmp,
                coordinator.registry().clone(),
                listeners_stop.clone(),
            )));
        }
        if let Some(socket) = srt {
            if let Ok(addr) = socket.local_addr() {
                tracing::info!(%addr, "srt listener");
            }
            state.readiness.set("srt", true);
            let srt_config = os_ingest::srt::ListenerConfig {
                latency: Duration::from_millis(u64::from(config.listeners.srt.latency_ms)),
                ..Default::default()
            };
            let registry = coordinator.registry().clone();
            let stop = listeners_stop.clone();
            let readiness = state.readiness.clone();
            listener_tasks.push(tokio::spawn(async move {
                if let Err(e) =
                    os_ingest::srt::serve_listener(socket, srt_config, registry, stop).await
                {
                    tracing::error!(error = %e, "srt listener stopped");
                    readiness.set("srt", false);
                }
            }));
        }
        coordinator.resume().await;

        let app = os_api::router(
            state,
            RouterOptions {
                cors: config.server.cors,
            },
        );
        tracing::info!(
            addr = %local_addr,
            swagger = %format!("http://{local_addr}/swagger/"),
            "http server listening"
        );
        let stop_accepting = CancellationToken::new();
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
            .into_future();
        tokio::pin!(server);
        let deadline = Duration::from_secs(config.server.shutdown_timeout_sec);

        tokio::select! {
            result = &mut server => {
                result.map_err(AppError::Serve)?;
            }
            () = shutdown => {
                tracing::info!(deadline_sec = deadline.as_secs(), "shutting down");
                stop_accepting.cancel();
                match tokio::time::timeout(deadline, &mut server).await {
                    Ok(result) => result.map_err(AppError::Serve)?,
                    Err(_) => tracing::warn!("shutdown deadline reached; closing open connections"),
                }
            }
        }
        listeners_stop.cancel();
        let stop_all = async {
            coordinator.shutdown().await;
            for task in listener_tasks {
                let _ = task.await;
            }
        };
        let started = tokio::time::Instant::now();
        if tokio::time::timeout(deadline, stop_all).await.is_err() {
            tracing::warn!("components did not stop within the shutdown deadline");
        }
        // Last: the stream.stopped events of the shutdown are still delivered.
        if let Some(hooks) = hooks {
            hooks
                .shutdown(deadline.saturating_sub(started.elapsed()))
                .await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn bind_tcp(key: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { key, addr, source })
}

fn listen_addr(key: &'static str, host: &str, port: u16) -> Result<SocketAddr, AppError> {
    let ip: std::net::IpAddr = host.parse().map_err(|_| AppError::Config {
        key,
        reason: format!("\"{host}\" is not an IP address"),
    })?;
    Ok(SocketAddr::new(ip, port))
}
