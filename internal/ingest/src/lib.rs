//! Ingest: everything that brings media into a stream's hub buffer.
//!
//! - [`worker::InputWorker`] runs one input: it detects the protocol from the
//!   URL, opens a session with the matching reader, and reconnects with
//!   backoff. Push inputs register their key in the [`push::PushRegistry`]
//!   instead and wait for a publisher.
//! - Readers (one module per protocol) deliver bytes or access units:
//!   [`file`], [`http_ts`], [`hls`], [`s3`], [`udp`], [`srt`], [`rtmp`],
//!   [`rtsp`]. Each exposes `run(&Session, &mut TsEmitter)` for one session:
//!   return `Ok(())` when the source ends, `Err` when it fails; never panic.
//! - [`emit`]: [`emit::TsEmitter`] realigns bytes to TS packets and writes them
//!   to the hub; [`emit::AuEmitter`] muxes access units to TS first.
//! - Push listeners on the shared ports: [`rtmp::serve_listener`],
//!   [`srt::serve_listener`].
//! - Play: RTMP and SRT players on the shared listeners, RTSP players on
//!   [`rtsp_server::serve_listener`]; admission through [`play::PlayGate`].
//! - [`stats::InputStats`]: live figures for the status API.

pub mod emit;
pub mod error;
pub mod file;
pub mod hls;
mod http;
pub mod http_ts;
mod pace;
pub mod play;
pub mod push;
pub mod rtmp;
pub mod rtsp;
pub mod rtsp_server;
pub mod s3;
pub mod srt;
pub mod stats;
pub mod udp;
pub mod worker;

use os_domain::Input;
use os_protocol::{Detected, Protocol};
use tokio_util::sync::CancellationToken;

pub use emit::{AuEmitter, TsEmitter};
pub use error::{ErrorKind, IngestError};
pub use play::{PlayGate, PlayOpening, PlayProtocol, Players};
pub use push::{PushProtocol, PushRegistry};
pub use stats::{InputSnapshot, InputState, InputStats, TrackInfo};
pub use worker::{InputWorker, Outcome};

/// What a reader gets for one session.
pub struct Session<'a> {
    /// Stream code, for logs.
    pub stream: &'a str,
    pub input: &'a Input,
    /// The input URL, trimmed (may contain credentials: never log it; use [`redact`]).
    pub url: &'a str,
    pub detected: &'a Detected,
    pub stats: &'a InputStats,
    /// Fires when the input must stop; readers may also just be dropped.
    pub cancel: &'a CancellationToken,
}

impl Session<'_> {
    /// Connect/read timeout from `net.timeout_sec`.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.input.net.timeout_sec.max(1)))
    }
}

async fn open_session(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    match s.detected.protocol {
        Protocol::File => file::run(s, out).await,
        Protocol::HttpTs => http_ts::run(s, out).await,
        Protocol::Hls => hls::run(s, out).await,
        Protocol::S3 => s3::run(s, out).await,
        Protocol::Udp => udp::run(s, out).await,
        Protocol::Srt => srt::run(s, out).await,
        Protocol::Rtmp | Protocol::Rtmps => rtmp::run(s, out).await,
        Protocol::Rtsp => rtsp::run(s, out).await,
    }
}

/// The URL with any password (userinfo, or a `passphrase`/`password` query
/// parameter such as SRT's) replaced, for logs and status.
pub fn redact(raw: &str) -> String {
    const SECRET_PARAMS: [&str; 2] = ["passphrase", "password"];
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let mut changed = false;
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
                changed = true;
            }
            if u.query_pairs()
                .any(|(k, _)| SECRET_PARAMS.contains(&k.as_ref()))
            {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if SECRET_PARAMS.contains(&k.as_ref()) {
                            "***".to_string()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
                changed = true;
            }
            if changed {
                u.to_string()
            } else {
                raw.to_string()
            }
        }
        _ => raw.to_string(),
    }
}
