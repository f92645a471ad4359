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
    match runtime.block_on(App::run(loaded.config, shutdown_signal())) {
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}
