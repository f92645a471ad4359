//! The srt reader (being built).

use crate::Session;
use crate::emit::TsEmitter;
use crate::error::IngestError;

/// One session of a srt input.
pub async fn run(_s: &Session<'_>, _out: &mut TsEmitter) -> Result<(), IngestError> {
    Err(IngestError::config(
        "the srt reader is not available in this build yet",
    ))
}

/// Serve the shared SRT listener (push ingest now, play later).
pub async fn serve_listener(
    _port: std::net::SocketAddr,
    _registry: std::sync::Arc<crate::push::PushRegistry>,
    cancel: tokio_util::sync::CancellationToken,
) {
    cancel.cancelled().await;
}
