//! MPEG-TS over HTTP(S): one streaming GET, the body written to the hub as
//! it arrives.
//!
//! - Custom headers from `input.headers`; basic auth from `input.auth`, else
//!   from the URL's userinfo (removed from the URL before the request).
//! - `net.timeout_sec` bounds the connect, the wait for the response head and
//!   every wait for the next body chunk.
//! - Status → error: 401/403 auth, 404/410 not found, 5xx connect.
//! - No pacing: a live HTTP-TS source is already real time. A body that is
//!   not MPEG-TS fails once [`crate::pace::MAX_UNSYNCED`] bytes went by
//!   without sync. The end of the body ends the session (`Ok`).

use crate::Session;
use crate::emit::TsEmitter;
use crate::error::IngestError;
use crate::http::Http;
use crate::pace::TsPipe;

/// One session of an HTTP-TS input.
pub async fn run(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    let (http, url) = Http::new(s)?;
    let resp = http.get(&url, None).await?;
    let mut body = http.body(resp);
    let mut pipe = TsPipe::new(s.stats, false, false);
    while let Some(chunk) = body.next().await? {
        pipe.feed(&chunk, out).await?;
    }
    pipe.end_pass(out).await
}
