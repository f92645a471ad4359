//! The http_ts reader (being built).

use crate::Session;
use crate::emit::TsEmitter;
use crate::error::IngestError;

/// One session of a http_ts input.
pub async fn run(_s: &Session<'_>, _out: &mut TsEmitter) -> Result<(), IngestError> {
    Err(IngestError::config(
        "the http_ts reader is not available in this build yet",
    ))
}
