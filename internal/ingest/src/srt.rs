//! SRT: pulling from a remote listener (caller mode) and the shared push
//! listener.
//!
//! **Pull** (`srt://host:port?streamid=..&latency=<ms>&passphrase=..&pbkeylen=16`):
//! call the remote listener with `net.timeout_sec` as connect timeout; every
//! received message (normally 7 TS packets) goes to the emitter as is. A
//! rejected connection is an auth error when the peer says the passphrase is
//! wrong or missing, or the stream is forbidden/unauthorised, not-found when
//! it says so, and a connect error otherwise. A peer that closes ends the
//! session; no message for `net.timeout_sec` is a timeout.
//!
//! **Push** ([`serve_listener`]): encoders call the shared listener with a
//! stream id naming the push key that a stream registered with
//! `srt://0.0.0.0:<port>?streamid=<key>`. [`classify_stream_id`] understands:
//!
//! | stream id | meaning |
//! |---|---|
//! | `key`, `live/key`, `/live/key` | publish `key` |
//! | `publish/live/key`, `publish:live/key` | publish `key` |
//! | `play/live/key`, `play:live/key`, `request:..` | play `key` |
//! | `#!::r=key,m=publish` (any order; `r` may be `live/key`) | publish `key` |
//! | `#!::r=key` or `#!::r=key,m=request` | play `key` (the SRT access-control default mode is `request`) |
//!
//! The key is tried as the whole resource first (`live/key` when a stream
//! registered that) and then as its last path segment (`key`), the same rule
//! the RTMP listener uses for `/<app>/<key>`. Unknown keys get 2404, a key
//! that already has a publisher 2409, malformed stream ids 2400.
//!
//! **Play** (with [`serve_listener_with`]): play requests name a stream code
//! (the last path segment); they are served when the stream runs with
//! `protocols.srt` (else 2404), with the hub's MPEG-TS from the latest access
//! point, 7 TS packets per message. A bare `live/<code>` (the contract's play
//! URL) that is not an open push key, or whose key already has a publisher,
//! is a play request when the stream may be played over SRT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::{KeySize, Passphrase};
use srt_tokio::{ConnectionRequest, SrtListener, SrtSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::emit::TsEmitter;
use crate::error::{ErrorKind, IngestError};
use crate::play::{PlayProtocol, Players};
use crate::push::{ClaimError, PushProtocol, PushRegistry};
use crate::{Session, redact};

/// Pause between accepting a player and sending it data (see `serve_player`).
const HANDSHAKE_SETTLE: Duration = Duration::from_millis(50);
/// Longest stream id accepted (the SRT limit).
const MAX_STREAM_ID: usize = 512;
/// Time for a publisher to finish the handshake after we accepted it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Packets a player connection may hold unsent or unacknowledged (libsrt's
/// default `SRTO_SNDBUF`).
///
/// srt-tokio's default is 32 packets (46,592 bytes), less than one keyframe
/// of a 720p stream. When a burst larger than that reaches the sender before
/// its pacing timer drains it, the library evicts *unsent* packets from the
/// front of the buffer without moving its send position; from then on it
/// counts the connection as having a negative number of packets in flight,
/// waits for an acknowledgement that can never come, and the player starves
/// while the socket keeps accepting data (a GOP-sized burst at join, or a
/// busy machine with ten players, was enough). With room for 8,192 packets
/// the too-late drop (1 s or 1.25 x latency, whichever is longer) empties
/// the buffer long before it fills, up to about 90 Mb/s.
const PLAY_SEND_BUFFER_PACKETS: u64 = 8192;
/// SRT payload bytes per packet as srt-tokio counts buffer sizes (MSS 1500
/// minus the 44 bytes of IP, UDP and SRT headers).
const SRT_PACKET_BYTES: u64 = 1456;

// ---------------------------------------------------------------------------
// Pull

/// What a pull URL asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct CallConfig {
    /// `host:port` of the remote listener.
    pub remote: String,
    pub stream_id: Option<String>,
    pub latency: Option<Duration>,
    /// Passphrase and key length in bytes (16, 24 or 32).
    pub encryption: Option<(String, u16)>,
}

impl std::fmt::Debug for CallConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallConfig")
            .field("remote", &self.remote)
            .field("stream_id", &self.stream_id)
            .field("latency", &self.latency)
            .field("encrypted", &self.encryption.as_ref().map(|e| e.1))
            .finish()
    }
}

impl CallConfig {
    pub fn from_url(raw: &str) -> Result<Self, IngestError> {
        let url = url::Url::parse(raw)
            .map_err(|e| IngestError::config(format!("invalid srt url: {e}")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| IngestError::config("srt url needs a host"))?;
        let port = url
            .port()
            .ok_or_else(|| IngestError::config("srt url needs a port"))?;
        let mut cfg = CallConfig {
            remote: format!("{host}:{port}"),
            stream_id: None,
            latency: None,
            encryption: None,
        };
        let mut passphrase = None;
        let mut key_len = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "streamid" if !v.is_empty() => {
                    if v.len() > MAX_STREAM_ID {
                        return Err(IngestError::config(format!(
                            "srt streamid is longer than {MAX_STREAM_ID} bytes"
                        )));
                    }
                    cfg.stream_id = Some(v.into_owned());
                }
                "latency" => {
                    let ms: u64 = v.parse().map_err(|_| {
                        IngestError::config(format!("srt latency must be milliseconds, got {v:?}"))
                    })?;
                    if ms > 60_000 {
                        return Err(IngestError::config("srt latency must be at most 60000 ms"));
                    }
                    cfg.latency = Some(Duration::from_millis(ms));
                }
                "passphrase" if !v.is_empty() => passphrase = Some(v.into_owned()),
                "pbkeylen" => {
                    key_len = Some(match v.as_ref() {
                        "16" => 16,
                        "24" => 24,
                        "32" => 32,
                        _ => {
                            return Err(IngestError::config(format!(
                                "srt pbkeylen must be 16, 24 or 32, got {v:?}"
                            )));
                        }
                    })
                }
                _ => {}
            }
        }
        if let Some(p) = passphrase {
            if !(10..=79).contains(&p.len()) {
                return Err(IngestError::config(
                    "srt passphrase must be 10 to 79 characters long",
                ));
            }
            cfg.encryption = Some((p, key_len.unwrap_or(16)));
        }
        Ok(cfg)
    }

    fn builder(
        &self,
        connect_timeout: Duration,
    ) -> Result<srt_tokio::SrtSocketBuilder, IngestError> {
        let encryption = match &self.encryption {
            Some((p, len)) => Some((
                Passphrase::try_from(p.clone())
                    .map_err(|e| IngestError::config(format!("srt passphrase: {e}")))?,
                KeySize::try_from(*len)
                    .map_err(|e| IngestError::config(format!("srt pbkeylen: {e}")))?,
            )),
            None => None,
        };
        let latency = self.latency;
        Ok(SrtSocket::builder().set(move |o| {
            o.connect.timeout = connect_timeout;
            if let Some(l) = latency {
                o.receiver.latency = l;
                o.sender.peer_latency = l;
            }
            if let Some((pass, size)) = encryption {
                o.encryption.passphrase = Some(pass);
                o.encryption.key_size = size;
            }
        }))
    }
}

/// Map a failed `call()` to an error kind with a readable message (the
/// library's own message may be empty).
fn call_error(e: &std::io::Error, remote: &str, timeout: Duration) -> IngestError {
    use std::io::ErrorKind as K;
    let detail = e.to_string();
    match e.kind() {
        K::TimedOut => IngestError::timeout(format!(
            "srt connect to {remote}: no handshake answer within {} s",
            timeout.as_secs()
        )),
        K::ConnectionRefused => {
            let lower = detail.to_ascii_lowercase();
            let kind = if lower.contains("password")
                || lower.contains("passphrase")
                || lower.contains("unauthorized")
                || lower.contains("forbidden")
            {
                ErrorKind::Auth
            } else if lower.contains("notfound") || lower.contains("not found") {
                ErrorKind::NotFound
            } else {
                ErrorKind::Connect
            };
            let hint = if kind == ErrorKind::Auth && lower.contains("password") {
                " (check passphrase/pbkeylen)"
            } else {
                ""
            };
            IngestError::new(
                kind,
                format!("srt connection to {remote} rejected: {detail}{hint}"),
            )
        }
        K::InvalidInput => IngestError::config(format!("srt options: {detail}")),
        _ if detail.is_empty() => {
            IngestError::connect(format!("srt connect to {remote} failed ({:?})", e.kind()))
        }
        _ => IngestError::connect(format!("srt connect to {remote}: {detail}")),
    }
}

/// One session of a srt (caller) input.
pub async fn run(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    let shown = redact(s.url);
    let cfg = CallConfig::from_url(s.url)?;
    let timeout = s.timeout();
    let builder = cfg.builder(timeout)?;
    tracing::info!(
        stream = %s.stream, input = s.input.priority, url = %shown,
        encrypted = cfg.encryption.is_some(), "srt: calling"
    );
    // The library enforces the connect timeout; the outer one is a guard.
    let call = builder.call(cfg.remote.as_str(), cfg.stream_id.as_deref());
    let mut socket = match tokio::time::timeout(timeout + Duration::from_secs(2), call).await {
        Err(_) => {
            return Err(IngestError::timeout(format!(
                "srt connect to {}: no answer within {} s",
                cfg.remote,
                timeout.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(call_error(&e, &cfg.remote, timeout)),
        Ok(Ok(socket)) => socket,
    };
    tracing::info!(stream = %s.stream, input = s.input.priority, url = %shown, "srt: connected");
    loop {
        match tokio::time::timeout(timeout, socket.next()).await {
            Err(_) => {
                return Err(IngestError::timeout(format!(
                    "srt: no data from {} for {} s",
                    cfg.remote,
                    timeout.as_secs()
                )));
            }
            Ok(None) => return Err(IngestError::ended("srt peer closed the connection")),
            Ok(Some(Err(e))) => {
                let mut err = IngestError::from(e);
                err.message = format!("srt receive: {}", err.message);
                return Err(err);
            }
            Ok(Some(Ok((_, data)))) => out.push_bytes(data)?,
        }
    }
}

// ---------------------------------------------------------------------------
// Stream ids

/// What an SRT peer asks for, from its stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamIdRequest {
    /// Push media to `resource`.
    Publish(Resource),
    /// Receive media of `resource`.
    Play(Resource),
}

/// The named resource: the whole path (`live/key`) and its last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub path: String,
    pub key: String,
}

impl Resource {
    fn new(path: &str) -> Result<Self, String> {
        let path = path.trim().trim_matches('/');
        let key = path.rsplit('/').next().unwrap_or_default();
        if key.is_empty() {
            return Err("no stream key in stream id".into());
        }
        Ok(Resource {
            path: path.to_string(),
            key: key.to_string(),
        })
    }

    /// Registry keys to try, most specific first.
    pub fn candidates(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str())
            .chain((self.key != self.path).then_some(self.key.as_str()))
    }
}

/// Classify a stream id (see the module docs for the accepted forms).
pub fn classify_stream_id(sid: &str) -> Result<StreamIdRequest, String> {
    if sid.len() > MAX_STREAM_ID {
        return Err("stream id too long".into());
    }
    if let Some(list) = sid.strip_prefix("#!::") {
        let mut resource = None;
        let mut mode = "request";
        for item in list.split(',') {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("malformed access-control entry {item:?}"))?;
            match k.trim() {
                "r" => resource = Some(v),
                "m" => mode = v.trim(),
                "t" if !matches!(v.trim(), "stream" | "auth") => {
                    return Err(format!("unsupported connection type t={v}"));
                }
                _ => {} // u (user), s (session), h (host) and custom keys
            }
        }
        let r = Resource::new(resource.ok_or("access-control stream id without r=")?)?;
        return match mode {
            "publish" => Ok(StreamIdRequest::Publish(r)),
            "request" | "play" => Ok(StreamIdRequest::Play(r)),
            other => Err(format!("unsupported mode m={other}")),
        };
    }
    for (prefix, play) in [
        ("publish:", false),
        ("play:", true),
        ("request:", true),
        ("publish/", false),
        ("play/", true),
    ] {
        if let Some(rest) = sid.strip_prefix(prefix) {
            let r = Resource::new(rest)?;
            return Ok(if play {
                StreamIdRequest::Play(r)
            } else {
                StreamIdRequest::Publish(r)
            });
        }
    }
    Resource::new(sid).map(StreamIdRequest::Publish)
}

// ---------------------------------------------------------------------------
// Push listener

/// Settings of the shared SRT listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Receive latency offered to callers (`listeners.srt.latency_ms`).
    pub latency: Duration,
    /// A publisher silent this long is disconnected.
    pub idle_timeout: Duration,
    /// Connections (handshaking or publishing) served at once.
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(120),
            idle_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serve the shared SRT listener on `socket` (bound by the caller, so a busy
/// port is reported where the configuration is) until `cancel` fires.
/// Publishers only: play requests are rejected.
pub async fn serve_listener(
    socket: tokio::net::UdpSocket,
    config: ListenerConfig,
    registry: Arc<PushRegistry>,
    cancel: CancellationToken,
) -> Result<(), IngestError> {
    serve_listener_with(socket, config, registry, None, cancel).await
}

/// Serve the shared SRT listener: publishers through `registry`, players
/// (`streamid=live/<code>` forms classified as play) through `players`.
pub async fn serve_listener_with(
    socket: tokio::net::UdpSocket,
    config: ListenerConfig,
    registry: Arc<PushRegistry>,
    players: Option<Arc<Players>>,
    cancel: CancellationToken,
) -> Result<(), IngestError> {
    let local = socket
        .local_addr()
        .map_err(|e| IngestError::io(format!("srt listener socket: {e}")))?;
    let latency = config.latency;
    let (mut listener, mut incoming) = SrtListener::builder()
        .set(move |o| {
            o.receiver.latency = latency;
            o.sender.peer_latency = latency;
            o.sender.buffer_size =
                srt_tokio::options::ByteCount(PLAY_SEND_BUFFER_PACKETS * SRT_PACKET_BYTES);
        })
        .socket(socket)
        .bind(local)
        .await
        .map_err(|e| IngestError::io(format!("srt listener on {local}: {e}")))?;
    tracing::info!(listen = %local, latency_ms = latency.as_millis() as u64, "srt: listener ready");
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let conns = tokio_util::task::TaskTracker::new();
    let result = loop {
        let request = tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            r = incoming.incoming().next() => r,
        };
        let Some(request) = request else {
            tracing::error!(listen = %local, "srt: listener stopped unexpectedly");
            break Err(IngestError::io(format!("srt listener on {local} stopped")));
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(listen = %local, remote = %request.remote(), "srt: too many connections; rejecting");
            let _ = request
                .reject(RejectReason::Server(ServerRejectReason::Overload))
                .await;
            continue;
        };
        let registry = registry.clone();
        let players = players.clone();
        let cancel = cancel.child_token();
        let config = config.clone();
        conns.spawn(async move {
            serve_connection(request, &registry, players.as_ref(), &config, &cancel).await;
            drop(permit);
        });
    };
    conns.close();
    // Connections watch `cancel` themselves; give them a moment to finish.
    let _ = tokio::time::timeout(Duration::from_secs(2), conns.wait()).await;
    if result.is_ok() {
        // Only on a healthy listener: `close` joins its task.
        listener.close().await;
    }
    result
}

async fn serve_connection(
    request: ConnectionRequest,
    registry: &Arc<PushRegistry>,
    players: Option<&Arc<Players>>,
    config: &ListenerConfig,
    cancel: &CancellationToken,
) {
    let remote: SocketAddr = request.remote();
    let sid = request
        .stream_id()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let reject = |reason: ServerRejectReason| RejectReason::Server(reason);
    let resource = match classify_stream_id(&sid) {
        Ok(StreamIdRequest::Publish(r)) => r,
        Ok(StreamIdRequest::Play(r)) => {
            match players {
                Some(players) => serve_player(request, players, &r, cancel).await,
                None => {
                    tracing::info!(%remote, key = %r.key, "srt: play is not served on this listener; rejecting");
                    let _ = request.reject(reject(ServerRejectReason::BadMode)).await;
                }
            }
            return;
        }
        Err(why) => {
            tracing::warn!(%remote, stream_id = %sid.escape_debug(), reason = %why, "srt: bad stream id; rejecting");
            let _ = request.reject(reject(ServerRejectReason::BadRequest)).await;
            return;
        }
    };
    let mut outcome = Err(ClaimError::UnknownKey);
    for key in resource.candidates() {
        outcome = registry.claim(PushProtocol::Srt, key);
        if !matches!(outcome, Err(ClaimError::UnknownKey)) {
            break;
        }
    }
    // A bare stream id (`live/<code>`) names either a push key or a stream to
    // play: a key that is not open for pushes (or already has its publisher)
    // is a play request when the stream may be played over SRT.
    let bare = !sid.starts_with("#!::")
        && !sid.contains(':')
        && !sid.starts_with("publish/")
        && !sid.starts_with("play/");
    if bare
        && outcome.is_err()
        && let Some(players) = players
        && players.gate.is_open(PlayProtocol::Srt, &resource.key)
    {
        serve_player(request, players, &resource, cancel).await;
        return;
    }
    let mut claim = match outcome {
        Ok(c) => c,
        Err(e) => {
            let reason = match e {
                ClaimError::UnknownKey => ServerRejectReason::Notfound,
                ClaimError::Busy(_) => ServerRejectReason::Conflict,
            };
            tracing::warn!(%remote, key = %resource.path, error = %e, "srt: publisher refused");
            let _ = request.reject(reject(reason)).await;
            return;
        }
    };
    let stream = claim.stream.clone();
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, request.accept(None)).await;
    let mut socket = match accepted {
        Ok(Ok(s)) => s,
        Err(_) => {
            tracing::warn!(%remote, %stream, key = %resource.path, "srt: handshake did not complete in time");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(%remote, %stream, key = %resource.path, error = %e, "srt: handshake did not complete");
            return;
        }
    };
    tracing::info!(%remote, %stream, key = %resource.path, "srt: publisher connected");
    let why = loop {
        let next = tokio::select! {
            () = claim.cancelled() => break "input stopped".to_string(),
            () = cancel.cancelled() => break "listener stopped".to_string(),
            n = tokio::time::timeout(config.idle_timeout, socket.next()) => n,
        };
        match next {
            Err(_) => break format!("no data for {} s", config.idle_timeout.as_secs()),
            Ok(None) => break "publisher closed the connection".to_string(),
            Ok(Some(Err(e))) => break format!("receive error: {e}"),
            Ok(Some(Ok((_, data)))) => {
                if let Err(e) = claim.emitter.push_bytes(data) {
                    break e.to_string();
                }
            }
        }
    };
    tracing::info!(%remote, %stream, key = %resource.path, reason = %why, "srt: publisher disconnected");
}

/// TS packets per SRT payload (the usual 1316 bytes).
const PLAY_PACKETS: usize = 7;
/// Time one datagram may wait for room in the sender.
const PLAY_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Send a stream's MPEG-TS to an SRT player, starting at an access point
/// (PAT + PMT + keyframe); a player that falls behind the hub resumes at the
/// next access point.
async fn serve_player(
    request: ConnectionRequest,
    players: &Arc<Players>,
    resource: &Resource,
    cancel: &CancellationToken,
) {
    let remote: SocketAddr = request.remote();
    let code = resource.key.clone();
    let admission = match players.admit(PlayProtocol::Srt, &code) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%remote, stream = %code, path = %resource.path, reason = %e, "srt: play refused");
            let _ = request
                .reject(RejectReason::Server(ServerRejectReason::Notfound))
                .await;
            return;
        }
    };
    let mut socket = match tokio::time::timeout(HANDSHAKE_TIMEOUT, request.accept(None)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%remote, stream = %code, error = %e, "srt: player handshake did not complete");
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, stream = %code, "srt: player handshake did not complete in time");
            return;
        }
    };
    tracing::info!(%remote, stream = %code, "srt: player connected");
    // The listener sends its handshake answer only after handing us the
    // socket: data sent at once can overtake it, and libsrt then drops the
    // data and re-requests the handshake, leaving the player without its
    // first GOP (or without anything). Let the answer go out first.
    tokio::time::sleep(HANDSHAKE_SETTLE).await;
    // Join at the next keyframe rather than with the GOP backlog: a burst
    // of a whole GOP arrives too late for the receiver's latency window
    // and is dropped (the player then starves until it gives up).
    let mut reader = admission.buffer.subscribe_next("srt-play");
    let (mut sent, mut lags) = (0u64, 0u64);
    let why = loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break "listener stopped".to_string(),
            () = admission.cancel.cancelled() => break "stream stopped or srt play switched off".to_string(),
            incoming = socket.next() => match incoming {
                // Players send nothing we use; None/Err means the peer is gone.
                Some(Ok(_)) => continue,
                None => break "player closed the connection".to_string(),
                Some(Err(e)) => break format!("receive error: {e}"),
            },
            r = reader.recv() => r,
        };
        let chunk = match item {
            Ok(os_hub::Item::Chunk(c)) => c,
            Ok(os_hub::Item::Lagged { .. }) => {
                lags += 1;
                continue;
            }
            Err(_) => break "stream stopped".to_string(),
        };
        let mut failed = None;
        for piece in chunk.data.chunks(PLAY_PACKETS * os_mpegts::PACKET_SIZE) {
            let data = chunk.data.slice_ref(piece);
            let send = send_now(&mut socket, data);
            match tokio::time::timeout(PLAY_SEND_TIMEOUT, send).await {
                Ok(Ok(())) => sent += piece.len() as u64,
                Ok(Err(e)) => failed = Some(format!("send error: {e}")),
                Err(_) => failed = Some("player does not keep up (send timeout)".to_string()),
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some(why) = failed {
            break why;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
    tracing::info!(%remote, stream = %code, bytes = sent, lag_events = lags, reason = %why, "srt: player left");
}

/// Send `data` stamped with the instant it enters the socket's queue.
///
/// SRT delivers a packet at its source time + latency, so the stamp must be
/// taken once the socket accepts it: stamped before waiting for room (as
/// `send((Instant::now(), data))` does), a burst — the GOP a player joins
/// with — carries stale times and the receiver drops it as too late.
async fn send_now(socket: &mut SrtSocket, data: bytes::Bytes) -> std::io::Result<()> {
    std::future::poll_fn(|cx| socket.poll_ready_unpin(cx)).await?;
    socket.start_send_unpin((std::time::Instant::now(), data))?;
    std::future::poll_fn(|cx| socket.poll_flush_unpin(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(path: &str, key: &str) -> Result<StreamIdRequest, String> {
        Ok(StreamIdRequest::Publish(Resource {
            path: path.into(),
            key: key.into(),
        }))
    }

    fn play(path: &str, key: &str) -> Result<StreamIdRequest, String> {
        Ok(StreamIdRequest::Play(Resource {
            path: path.into(),
            key: key.into(),
        }))
    }

    #[test]
    fn stream_id_forms() {
        assert_eq!(classify_stream_id("cam1"), publish("cam1", "cam1"));
        assert_eq!(
            classify_stream_id("live/cam1"),
            publish("live/cam1", "cam1")
        );
        assert_eq!(
            classify_stream_id("/live/cam1"),
            publish("live/cam1", "cam1")
        );
        assert_eq!(
            classify_stream_id("publish/live/cam1"),
            publish("live/cam1", "cam1")
        );
        assert_eq!(
            classify_stream_id("publish:live/cam1"),
            publish("live/cam1", "cam1")
        );
        assert_eq!(
            classify_stream_id("play/live/cam1"),
            play("live/cam1", "cam1")
        );
        assert_eq!(classify_stream_id("request:cam1"), play("cam1", "cam1"));
        assert_eq!(
            classify_stream_id("#!::r=cam1,m=publish"),
            publish("cam1", "cam1")
        );
        assert_eq!(
            classify_stream_id("#!::m=publish,r=live/cam1"),
            publish("live/cam1", "cam1")
        );
        assert_eq!(
            classify_stream_id("#!::u=alice,r=live/cam1,m=publish,s=abc"),
            publish("live/cam1", "cam1")
        );
        assert_eq!(classify_stream_id("#!::r=cam1"), play("cam1", "cam1"));
        assert_eq!(
            classify_stream_id("#!::r=cam1,m=request"),
            play("cam1", "cam1")
        );
        assert!(classify_stream_id("").is_err());
        assert!(classify_stream_id("/").is_err());
        assert!(classify_stream_id("publish:").is_err());
        assert!(classify_stream_id("#!::m=publish").is_err());
        assert!(classify_stream_id("#!::r=cam1,m=bidirectional").is_err());
        assert!(classify_stream_id("#!::r=cam1,t=file,m=publish").is_err());
        assert!(classify_stream_id("#!::garbage").is_err());
        assert!(classify_stream_id(&"x".repeat(600)).is_err());
        let r = Resource::new("live/cam1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.candidates().collect::<Vec<_>>(), ["live/cam1", "cam1"]);
        let r = Resource::new("cam1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.candidates().collect::<Vec<_>>(), ["cam1"]);
    }

    #[test]
    fn pull_url() {
        let c = CallConfig::from_url(
            "srt://example.com:9000?streamid=live/x&latency=200&passphrase=0123456789ab&pbkeylen=32",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.remote, "example.com:9000");
        assert_eq!(c.stream_id.as_deref(), Some("live/x"));
        assert_eq!(c.latency, Some(Duration::from_millis(200)));
        assert_eq!(c.encryption, Some(("0123456789ab".into(), 32)));
        assert!(!format!("{c:?}").contains("0123456789ab"));
        assert!(CallConfig::from_url("srt://h:1?passphrase=short").is_err());
        assert!(CallConfig::from_url("srt://h:1?passphrase=0123456789&pbkeylen=8").is_err());
        assert!(CallConfig::from_url("srt://h:1?latency=abc").is_err());
        assert!(CallConfig::from_url("srt://h").is_err());
        let shown = redact("srt://h:1?streamid=a&passphrase=0123456789ab");
        assert!(!shown.contains("0123456789ab"), "{shown}");
        assert!(shown.contains("streamid=a"), "{shown}");
    }
}
