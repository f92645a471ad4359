//! The open-streamer application: wires configuration, storage, the
//! coordinator and the HTTP API together and runs them until shutdown.
//!
//! The `open-streamer` binary (`main.rs`) only parses the command line,
//! loads the configuration, sets up logging and calls [`App::run`]; tests
//! call [`App::bind`] with port 0 and drive the server over real HTTP.

mod listeners;
pub mod logging;
mod metrics;

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
    /// The shared RTMP listener (push ingest and play), when enabled.
    rtmp: Option<TcpListener>,
    /// The shared SRT listener socket, when enabled.
    srt: Option<tokio::net::UdpSocket>,
    /// The RTSP listener (play), when enabled.
    rtsp: Option<TcpListener>,
    /// The Prometheus endpoint, unless `metrics.addr` is empty.
    metrics: Option<os_metrics::Exporter>,
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
        let rtsp = if l.rtsp.enabled {
            let addr = listen_addr(
                "listeners.rtsp.listen_host",
                &l.rtsp.listen_host,
                l.rtsp.port,
            )?;
            Some(bind_tcp("listeners.rtsp.port", addr).await?)
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

        let hub = Arc::new(Hub::with_max_bytes(config.buffer.max_bytes));
        let registry = PushRegistry::new();
        let events = Arc::new(EventBus::new());
        if !config.metrics.addr.is_empty() {
            os_metrics::count_events(&events);
        }
        let hooks = Dispatcher::start(
            store.clone(),
            &events,
            DispatcherConfig {
                worker_count: config.hooks.worker_count,
                kafka: os_hooks::KafkaSettings {
                    brokers: config.hooks.kafka_brokers.clone(),
                    ..os_hooks::KafkaSettings::default()
                },
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
                    manager: manager_config(&config.manager),
                    push: os_publisher::PushConfig {
                        ca_file: config.publisher.push.ca_file.clone(),
                    },
                    transcoder: os_transcoder::Settings {
                        ffmpeg_path: config.transcoder.ffmpeg_path.clone(),
                        max_workers: config.transcoder.max_workers,
                        max_restarts: config.transcoder.max_restarts,
                        ..os_transcoder::Settings::default()
                    },
                    ..CoordinatorConfig::default()
                },
            )
            .with_events(events.clone()),
        );
        coordinator.spawn_transcoder_supervision();
        // Which encoders and hardware backends this host has: logged now,
        // shown in `GET /config`, checked when a stream asks for one.
        if let Err(e) = coordinator.transcoders().probe_and_log().await {
            tracing::error!(error = %e, "transcoder: FFmpeg probe failed; streams with a transcoder cannot start");
        }
        let metrics = if config.metrics.addr.is_empty() {
            None
        } else {
            let addr =
                parse_listen_addr(&config.metrics.addr).map_err(|reason| AppError::Config {
                    key: "metrics.addr",
                    reason,
                })?;
            let source = metrics::Source::new(coordinator.clone(), hooks.clone(), events);
            Some(
                os_metrics::Exporter::bind(addr, &config.metrics.path, Arc::new(source))
                    .await
                    .map_err(|source| AppError::Bind {
                        key: "metrics.addr",
                        addr,
                        source,
                    })?,
            )
        };
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
            rtsp,
            metrics,
        })
    }

    /// The address the HTTP server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The buffer hub (for in-process consumers such as tests and benchmarks).
    pub fn hub(&self) -> Arc<os_hub::Hub> {
        self.state.coordinator.hub().clone()
    }

    /// The event bus (for in-process consumers such as tests and benchmarks).
    pub fn events(&self) -> Arc<EventBus> {
        self.state.coordinator.events().clone()
    }

    /// The address of the Prometheus endpoint, unless disabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// The hooks dispatcher (delivery counters).
    pub fn hooks(&self) -> Option<Arc<Dispatcher>> {
        self.state.hooks.clone()
    }

    /// The address of the shared RTMP listener, when enabled.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.rtmp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address of the RTSP listener, when enabled.
    pub fn rtsp_addr(&self) -> Option<SocketAddr> {
        self.rtsp.as_ref().and_then(|l| l.local_addr().ok())
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
            rtsp,
            metrics,
        } = self;
        let coordinator = state.coordinator.clone();
        let hooks = state.hooks.clone();
        let players =
            os_ingest::Players::new(coordinator.hub().clone(), coordinator.play_gate().clone());
        let listeners = Arc::new(listeners::Listeners::new(
            coordinator.registry().clone(),
            Some(players),
            state.readiness.clone(),
        ));
        listeners.serve_rtmp(rtmp);
        listeners.serve_srt(
            srt,
            Duration::from_millis(u64::from(config.listeners.srt.latency_ms)),
        );
        listeners.serve_rtsp(rtsp, listeners::rtsp_config(&config.listeners.rtsp));
        let metrics_stop = CancellationToken::new();
        let metrics_task = metrics.map(|exporter| {
            if let Ok(addr) = exporter.local_addr() {
                tracing::info!(%addr, path = %config.metrics.path, "metrics endpoint");
            }
            let stop = metrics_stop.clone();
            tokio::spawn(async move {
                if let Err(e) = exporter.serve(stop).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            })
        });
        coordinator.resume().await;

        let cors = config.server.cors;
        let deadline = Duration::from_secs(config.server.shutdown_timeout_sec);
        let state = state.with_config(Arc::new(listeners::RuntimeConfig::new(
            config,
            listeners.clone(),
        )));
        let app = os_api::router(state, RouterOptions { cors });
        tracing::debug!(addr = %local_addr, "serving");
        listeners.serve_http(listener, app);

        shutdown.await;
        tracing::info!(deadline_sec = deadline.as_secs(), "shutting down");
        listeners.stop_http(deadline).await;
        let stop_all = async {
            listeners.stop_media().await;
            coordinator.shutdown().await;
            metrics_stop.cancel();
            if let Some(task) = metrics_task {
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

/// `manager.*` as the input manager takes it (values were validated at load).
fn manager_config(m: &os_config::Manager) -> os_manager::ManagerConfig {
    os_manager::ManagerConfig {
        packet_timeout: std::time::Duration::from_secs_f64(m.input_packet_timeout_sec.max(0.05)),
        failback_after: std::time::Duration::from_secs_f64(m.failback_after_sec.max(0.0)),
        default_standby: if m.standby == "hot" {
            os_domain::Standby::Hot
        } else {
            os_domain::Standby::Cold
        },
        ..os_manager::ManagerConfig::default()
    }
}
