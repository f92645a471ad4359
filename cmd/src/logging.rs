//! Structured logging: `log.level` and `log.format` (text | json).
//! `RUST_LOG`, when set, overrides the level with a full filter directive.
//! The SRT library logs every socket teardown at WARN; it is kept at ERROR
//! unless `RUST_LOG` asks for more.

use os_config::Log;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Call once, before anything logs.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},hyper=warn,h2=warn,tower=warn,srt_protocol=error,srt_tokio=error",
            level = log.level
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if log.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("open-streamer: logging already initialised: {e}");
    }
}
