//! Push-out: re-publish a stream to an RTMP / RTMPS destination.
//!
//! One task per enabled destination reads the stream's hub buffer (reader
//! `push:<n>`), turns the MPEG-TS into FLV messages
//! ([`os_flv::remux::TsToFlv`]) and publishes them with an RTMP client
//! session (`rml_rtmp`), over TCP or TLS (rustls; web PKI roots plus the
//! certificates of `publisher.push.ca_file`). A failure (connect, handshake,
//! refusal, write error, the peer closing) is recorded in the destination's
//! [`PushStats`] and the task reconnects after `retry_timeout_sec`, doubling
//! up to [`MAX_RETRY`] while failures repeat. Each (re)connection starts at
//! the latest access point of the hub with fresh headers.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use os_flv::remux::{FlvKind, FlvMessage, TsToFlv};
use os_flv::{ScriptData, VideoCodec};
use os_hub::{Buffer, Item};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use rustls::ClientConfig as TlsClientConfig;

/// Longest wait between reconnects.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// Time one write may take before the destination counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `publisher.push.*` settings shared by every destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushConfig {
    /// PEM file with extra CA certificates trusted for `rtmps://` (empty: web PKI only).
    pub ca_file: String,
}

/// One destination of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub url: String,
    pub timeout: Duration,
    pub retry: Duration,
}

/// Where a destination stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    Connecting,
    Active,
    Retrying,
    Stopped,
}

impl PushState {
    pub fn as_str(self) -> &'static str {
        match self {
            PushState::Connecting => "connecting",
            PushState::Active => "active",
            PushState::Retrying => "retrying",
            PushState::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
struct Live {
    state: PushState,
    last_error: Option<(String, DateTime<Utc>)>,
    connected_at: Option<DateTime<Utc>>,
}

/// Live figures of one destination, read by the status API.
#[derive(Debug)]
pub struct PushStats {
    live: Mutex<Live>,
    bytes_sent: AtomicU64,
    reconnects: AtomicU64,
    skipped: AtomicU64,
}

/// A copy of [`PushStats`] at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSnapshot {
    pub state: PushState,
    pub bytes_sent: u64,
    pub reconnects: u64,
    /// Hub chunks lost because the destination was too slow.
    pub skipped_chunks: u64,
    pub last_error: Option<(String, DateTime<Utc>)>,
    pub connected_at: Option<DateTime<Utc>>,
}

impl Default for PushStats {
    fn default() -> Self {
        Self {
            live: Mutex::new(Live {
                state: PushState::Connecting,
                last_error: None,
                connected_at: None,
            }),
            bytes_sent: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }
}

impl PushStats {
    pub fn snapshot(&self) -> PushSnapshot {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        PushSnapshot {
            state: live.state,
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            skipped_chunks: self.skipped.load(Ordering::Relaxed),
            last_error: live.last_error.clone(),
            connected_at: live.connected_at,
        }
    }

    fn set_state(&self, state: PushState) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.state = state;
        if state == PushState::Active {
            live.connected_at = Some(Utc::now());
        }
    }

    fn error(&self, message: String) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.state = PushState::Retrying;
        live.last_error = Some((message, Utc::now()));
    }
}

/// The TLS client configuration for `rtmps://` destinations: web PKI roots
/// plus the certificates in `ca_file` (when set). An unreadable file is an error.
pub fn tls_config(config: &PushConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !config.ca_file.trim().is_empty() {
        let path = Path::new(config.ca_file.trim());
        let pem = std::fs::read(path)
            .map_err(|e| format!("publisher.push.ca_file {}: {e}", path.display()))?;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("publisher.push.ca_file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("publisher.push.ca_file: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "publisher.push.ca_file {}: no certificate found",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Start pushing stream `code` (buffer `buffer`) to `target` until `cancel`.
pub fn spawn_push(
    code: String,
    index: usize,
    target: PushTarget,
    buffer: Arc<Buffer>,
    tls: Arc<rustls::ClientConfig>,
    cancel: CancellationToken,
) -> (Arc<PushStats>, JoinHandle<()>) {
    let stats = Arc::new(PushStats::default());
    let task = tokio::spawn(run(code, index, target, buffer, tls, stats.clone(), cancel));
    (stats, task)
}

/// The URL with any password or stream key hidden, for logs.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let mut segs: Vec<&str> = u.path().trim_matches('/').split('/').collect();
            if segs.len() > 1
                && let Some(last) = segs.last_mut()
            {
                *last = "***";
            }
            format!(
                "{}://{}{}/{}",
                u.scheme(),
                u.host_str().unwrap_or_default(),
                u.port().map(|p| format!(":{p}")).unwrap_or_default(),
                segs.join("/")
            )
        }
        Err(_) => "(invalid url)".into(),
    }
}

async fn run(
    code: String,
    index: usize,
    target: PushTarget,
    buffer: Arc<Buffer>,
    tls: Arc<rustls::ClientConfig>,
    stats: Arc<PushStats>,
    cancel: CancellationToken,
) {
    let dest = shown(&target.url);
    let mut delay = target.retry.max(Duration::from_millis(200));
    let mut attempt: u64 = 0;
    loop {
        if attempt > 0 {
            stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        attempt += 1;
        stats.set_state(PushState::Connecting);
        let started = Instant::now();
        let result = tokio::select! {
            () = cancel.cancelled() => break,
            r = session(&code, index, &target, &buffer, &tls, &stats) => r,
        };
        let why = match result {
            Ok(()) => "stream ended".to_string(),
            Err(e) => e,
        };
        if buffer.is_closed() || cancel.is_cancelled() {
            break;
        }
        if started.elapsed() >= STABLE {
            delay = target.retry.max(Duration::from_millis(200));
        }
        tracing::warn!(stream = %code, destination = %dest, error = %why, retry_in_ms = delay.as_millis() as u64, "push: destination failed");
        stats.error(why);
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RETRY.max(target.retry));
    }
    stats.set_state(PushState::Stopped);
    tracing::info!(stream = %code, destination = %dest, "push: stopped");
}

/// Parsed destination URL.
struct Dest {
    tls: bool,
    host: String,
    port: u16,
    app: String,
    key: String,
    tc_url: String,
}

fn parse(url: &str) -> Result<Dest, String> {
    let u = url::Url::parse(url).map_err(|e| format!("bad url: {e}"))?;
    let tls = match u.scheme() {
        "rtmp" => false,
        "rtmps" => true,
        other => return Err(format!("unsupported scheme {other}:// (rtmp or rtmps)")),
    };
    let host = u.host_str().ok_or("url without host")?.to_string();
    let port = u.port().unwrap_or(if tls { 443 } else { 1935 });
    let path = u.path().trim_matches('/');
    let (app, key) = path
        .split_once('/')
        .ok_or("url must be rtmp[s]://host[:port]/<app>/<stream key>")?;
    if app.is_empty() || key.is_empty() {
        return Err("url must be rtmp[s]://host[:port]/<app>/<stream key>".into());
    }
    let key = match u.query() {
        Some(q) => format!("{key}?{q}"),
        None => key.to_string(),
    };
    Ok(Dest {
        tls,
        tc_url: format!("{}://{host}:{port}/{app}", u.scheme()),
        host,
        port,
        app: app.to_string(),
        key,
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connect(
    d: &Dest,
    timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Box<dyn Io>, String> {
    let addr = format!("{}:{}", d.host, d.port);
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("connect to {addr}: timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if !d.tls {
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(d.host.clone())
        .map_err(|e| format!("tls server name {}: {e}", d.host))?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let stream = tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| format!("tls handshake with {addr}: timed out"))?
        .map_err(|e| format!("tls handshake with {addr}: {e}"))?;
    Ok(Box::new(stream))
}

async fn write_all(io: &mut Box<dyn Io>, data: &[u8], stats: &PushStats) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, io.write_all(data)).await {
        Ok(Ok(())) => {
            stats
                .bytes_sent
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            Ok(())
        }
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write: destination does not read".into()),
    }
}

fn metadata_of(body: &Bytes) -> StreamMetadata {
    let mut m = StreamMetadata::new();
    if let Some(meta) = ScriptData::parse(body).ok().and_then(|s| s.metadata()) {
        m.video_width = meta.width.map(|v| v as u32);
        m.video_height = meta.height.map(|v| v as u32);
        m.video_frame_rate = meta.framerate.map(|v| v as f32);
        m.video_codec_id = meta.video_codec.map(|c| match c {
            VideoCodec::Hevc => 12,
            _ => 7,
        });
        m.audio_sample_rate = meta.audio_sample_rate.map(|v| v as u32);
        m.audio_is_stereo = meta.stereo;
        m.audio_channels = meta.stereo.map(|s| if s { 2 } else { 1 });
        m.audio_codec_id = meta.audio_codec.map(|_| 10);
    }
    m.encoder = Some("open-streamer".into());
    m
}

/// One connection: connect, publish, stream until an error.
async fn session(
    code: &str,
    index: usize,
    target: &PushTarget,
    buffer: &Arc<Buffer>,
    tls: &Arc<rustls::ClientConfig>,
    stats: &PushStats,
) -> Result<(), String> {
    let d = parse(&target.url)?;
    let timeout = target.timeout.max(Duration::from_secs(1));
    let mut io = connect(&d, timeout, tls).await?;

    // Handshake and publish, bounded by the connect timeout.
    let (mut session, rest) = tokio::time::timeout(timeout * 2, async {
        let mut hs = Handshake::new(PeerType::Client);
        let p0p1 = hs
            .generate_outbound_p0_and_p1()
            .map_err(|e| format!("handshake: {e}"))?;
        write_all(&mut io, &p0p1, stats).await?;
        let mut buf = vec![0u8; 16 << 10];
        let rest = loop {
            let n = io.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("destination closed during the handshake".to_string());
            }
            match hs
                .process_bytes(buf.get(..n).unwrap_or_default())
                .map_err(|e| format!("handshake: {e}"))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    write_all(&mut io, &response_bytes, stats).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    write_all(&mut io, &response_bytes, stats).await?;
                    break remaining_bytes;
                }
            }
        };
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(d.tc_url.clone());
        config.chunk_size = 4096;
        let (mut session, initial) =
            ClientSession::new(config).map_err(|e| format!("rtmp: {e}"))?;
        let mut events = Vec::new();
        let mut out = Vec::new();
        collect(initial, &mut out, &mut events);
        collect(
            vec![
                session
                    .request_connection(d.app.clone())
                    .map_err(|e| format!("rtmp: {e}"))?,
            ],
            &mut out,
            &mut events,
        );
        let mut pending = rest;
        loop {
            for p in out.drain(..) {
                write_all(&mut io, &p, stats).await?;
            }
            for ev in std::mem::take(&mut events) {
                match ev {
                    ClientSessionEvent::ConnectionRequestAccepted => {
                        let r = session
                            .request_publishing(d.key.clone(), PublishRequestType::Live)
                            .map_err(|e| format!("rtmp: {e}"))?;
                        collect(vec![r], &mut out, &mut events);
                    }
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(format!("connect refused: {description}"));
                    }
                    ClientSessionEvent::PublishRequestAccepted => {
                        for p in out.drain(..) {
                            write_all(&mut io, &p, stats).await?;
                        }
                        return Ok((session, pending));
                    }
                    ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                        return Err(format!("publish refused: {code}"));
                    }
                    _ => {}
                }
            }
            if !out.is_empty() {
                continue;
            }
            if !pending.is_empty() {
                let results = session
                    .handle_input(&pending)
                    .map_err(|e| format!("rtmp: {e}"))?;
                pending.clear();
                collect(results, &mut out, &mut events);
                continue;
            }
            let n = io.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("destination closed the connection".to_string());
            }
            pending.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
    })
    .await
    .map_err(|_| "rtmp connect/publish: timed out".to_string())??;

    tracing::info!(stream = %code, destination = %shown(&target.url), "push: publishing");
    stats.set_state(PushState::Active);
    let mut reader = buffer.subscribe(format!("push:{index}"));
    let mut remux = TsToFlv::new();
    let mut msgs: Vec<FlvMessage> = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    if !rest.is_empty() {
        let results = session
            .handle_input(&rest)
            .map_err(|e| format!("rtmp: {e}"))?;
        let (mut out, mut events) = (Vec::new(), Vec::new());
        collect(results, &mut out, &mut events);
        for p in out {
            write_all(&mut io, &p, stats).await?;
        }
    }
    loop {
        let item = tokio::select! {
            r = reader.recv() => r,
            r = io.read(&mut buf) => {
                let n = r.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("destination closed the connection".into());
                }
                let results = session
                    .handle_input(buf.get(..n).unwrap_or_default())
                    .map_err(|e| format!("rtmp: {e}"))?;
                let (mut out, mut events) = (Vec::new(), Vec::new());
                collect(results, &mut out, &mut events);
                for p in out {
                    write_all(&mut io, &p, stats).await?;
                }
                continue;
            }
        };
        let chunk = match item {
            Ok(Item::Chunk(c)) => c,
            Ok(Item::Lagged { lost }) => {
                stats.skipped.fetch_add(lost, Ordering::Relaxed);
                remux.discontinuity();
                continue;
            }
            Err(_) => return Ok(()),
        };
        // A source switch needs no splice here: the stream buffer is written
        // by the input manager, which keeps one continuous timeline across
        // switches (forcing one would add the audio lead as a gap). A real
        // clock jump is still caught by `MAX_GAP_MS`.
        msgs.clear();
        remux.push(&chunk.data, &mut msgs);
        for m in msgs.drain(..) {
            let ts = RtmpTimestamp::new(m.timestamp);
            let packet = match m.kind {
                FlvKind::Metadata => session.publish_metadata(&metadata_of(&m.body)),
                FlvKind::Video | FlvKind::VideoHeader => {
                    session.publish_video_data(m.body, ts, false)
                }
                FlvKind::Audio | FlvKind::AudioHeader => {
                    session.publish_audio_data(m.body, ts, false)
                }
            }
            .map_err(|e| format!("rtmp: {e}"))?;
            if let ClientSessionResult::OutboundResponse(p) = packet {
                write_all(&mut io, &p.bytes, stats).await?;
            }
        }
    }
}

fn collect(
    results: Vec<ClientSessionResult>,
    out: &mut Vec<Vec<u8>>,
    events: &mut Vec<ClientSessionEvent>,
) {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => out.push(p.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let d = parse("rtmp://a.rtmp.youtube.com/live2/xxxx-yyyy").expect("ok");
        assert_eq!(
            (d.app.as_str(), d.key.as_str(), d.port, d.tls),
            ("live2", "xxxx-yyyy", 1935, false)
        );
        let d = parse("rtmps://live-api-s.facebook.com:443/rtmp/FB-1?s_bl=1").expect("ok");
        assert_eq!(d.key, "FB-1?s_bl=1");
        assert!(d.tls);
        assert_eq!(d.tc_url, "rtmps://live-api-s.facebook.com:443/rtmp");
        assert!(parse("http://x/a/b").is_err());
        assert!(parse("rtmp://x/onlyapp").is_err());
        assert_eq!(shown("rtmp://h:1935/live/secret"), "rtmp://h:1935/live/***");
    }
}
