//! `open-streamer`: command line, configuration, logging, signals.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use open_streamer::{App, logging};
use os_config::{LoadOptions, load};

/// A REST-controlled live media server: ingest RTMP/RTSP/SRT/UDP/HLS/HTTP/file/S3,
/// publish HLS/DASH/RTSP/RTMP/SRT, transcode, record.
#[derive(Parser)]
#[command(name = "open-streamer", version, about, long_about = None)]
struct Cli {
    /// Config file (default: ./config.yaml, then /etc/open-streamer/config.yaml).
    #[arg(long, short, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// Exit code for an unusable configuration.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match load(&LoadOptions::standard(cli.config)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("open-streamer: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(&loaded.config.log);
    match &loaded.file {
        Some(f) => tracing::info!(file = %f.display(), "configuration loaded"),
        None => tracing::info!("no config file found; using defaults and environment"),
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("open-streamer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        let signals = ShutdownSignals::install();
        App::run(loaded.config, signals.recv()).await
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ open_streamer::AppError::Config { .. }) => {
            tracing::error!("invalid configuration: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, with their handlers installed *now*.
///
/// Installing them before anything is bound matters: the HTTP server answers
/// `/healthz` from its own task, so a supervisor may send SIGTERM as soon as
/// the process looks alive — a handler installed lazily on the first poll of
/// the shutdown future could still be missing then, and the default action
/// would kill the process without a graceful stop.
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    /// Must run inside the runtime (the signal driver belongs to it).
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!("cannot listen for {name}: {e}");
                    None
                }
            };
            Self {
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
                terminate: install(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves on the first of the signals.
    async fn recv(self) {
        #[cfg(unix)]
        {
            async fn next(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(self.interrupt) => tracing::info!("received SIGINT"),
                () = next(self.terminate) => tracing::info!("received SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!("cannot listen for Ctrl-C: {e}");
                std::future::pending::<()>().await;
            }
            tracing::info!("received Ctrl-C");
        }
    }
}
