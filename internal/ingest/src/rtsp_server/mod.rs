//! The RTSP server on `listeners.rtsp`: players of `rtsp://host:port/live/<code>`.
//!
//! One task per TCP control connection, one session per connection:
//! OPTIONS, DESCRIBE (SDP from the stream's codec parameters; 404 when the
//! stream is unknown or not played over RTSP), SETUP (TCP interleaved, or
//! UDP unicast to the client's own address when UDP is enabled), PLAY
//! (`Range`, `RTP-Info`), PAUSE, TEARDOWN, GET_PARAMETER / SET_PARAMETER
//! (keepalive). Media comes from the stream's [`RtspFanout`] (packetized
//! once per stream, shared by every player); a player that falls behind
//! skips ahead to the next keyframe and never delays others.
//!
//! Sessions: the `Session` header carries `;timeout=` (60 s by default). A
//! UDP session ends when neither RTSP requests nor RTCP packets arrive for
//! that long; a TCP session lives as long as its connection (a peer that
//! stops reading is dropped after a write timeout). Closing the control
//! connection ends the session. RTCP sender reports go out every
//! [`SR_INTERVAL`] per track. Streams have no play credentials in their
//! config, so no authentication is asked.

pub mod fanout;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use os_rtsp::message::{CSeqError, Lower, Message, Method, Request, Response, Transport};
use os_rtsp::rtcp::{SenderReport, ntp_timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

pub use fanout::RtspFanout;
use fanout::{Joined, Unit, on_channel, random_u64, rtp_of};

use crate::play::{PlayProtocol, Players};

/// Time allowed for one write to the peer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent connections on the listener.
const MAX_CONNECTIONS: usize = 1024;
/// Kernel send buffer per player connection: bounds the memory a slow
/// player pins and makes it fall behind the fanout ring (and skip ahead)
/// instead of hiding seconds of media in the socket.
const SEND_BUFFER: usize = 512 << 10;
/// Units written at most in one vectored write.
const MAX_BATCH: usize = 32;
/// Sender reports per track, at most this often.
pub const SR_INTERVAL: Duration = Duration::from_secs(2);
const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
const SERVER: &str = "open-streamer";

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Offer UDP unicast (`listeners.rtsp.transport: udp`); with `false`, a
    /// SETUP that offers only UDP is answered 461 and clients fall back to TCP.
    pub udp: bool,
    /// Session timeout announced in the `Session` header.
    pub session_timeout: Duration,
    /// How long DESCRIBE waits for a stream's codec parameters.
    pub describe_wait: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            udp: true,
            session_timeout: Duration::from_secs(60),
            describe_wait: Duration::from_secs(10),
        }
    }
}

/// The UDP sockets shared by every UDP player (server_port RTP, RTCP).
struct Udp {
    rtp: UdpSocket,
    rtcp: Arc<UdpSocket>,
    ports: (u16, u16),
    /// Last RTCP packet from a client's RTCP address (ms since `epoch`).
    seen: Mutex<HashMap<SocketAddr, Weak<AtomicU64>>>,
}

struct Shared {
    players: Arc<Players>,
    config: ServerConfig,
    udp: Option<Udp>,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Bind an RTP/RTCP socket pair (even port, port + 1) on `ip`.
async fn bind_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let mut last = None;
    for _ in 0..32 {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        match UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free even/odd UDP port pair")))
}

/// Serve the RTSP listener until `cancel`.
pub async fn serve_listener(
    listener: TcpListener,
    players: Arc<Players>,
    config: ServerConfig,
    cancel: CancellationToken,
) {
    let local = listener.local_addr().ok();
    let shown = local.map(|a| a.to_string()).unwrap_or_default();
    let udp = match (config.udp, local) {
        (true, Some(addr)) => match bind_pair(addr.ip()).await {
            Ok((rtp, rtcp)) => {
                let ports = (
                    rtp.local_addr().map(|a| a.port()).unwrap_or(0),
                    rtcp.local_addr().map(|a| a.port()).unwrap_or(0),
                );
                Some(Udp {
                    rtp,
                    rtcp: Arc::new(rtcp),
                    ports,
                    seen: Mutex::new(HashMap::new()),
                })
            }
            Err(e) => {
                tracing::warn!(listen = %shown, error = %e, "rtsp: cannot bind UDP ports; serving TCP interleaved only");
                None
            }
        },
        _ => None,
    };
    tracing::info!(
        listen = %shown,
        udp_ports = ?udp.as_ref().map(|u| u.ports),
        "rtsp listener started"
    );
    let shared = Arc::new(Shared {
        players,
        config,
        udp,
        epoch: Instant::now(),
    });
    let tasks = tokio_util::task::TaskTracker::new();
    if shared.udp.is_some() {
        tasks.spawn(rtcp_receiver(shared.clone(), cancel.clone()));
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(listen = %shown, error = %e, "rtsp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "rtsp connection refused: too many connections");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
        let local = socket.local_addr().unwrap_or(peer);
        let shared = shared.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _permit = permit;
            Conn::new(socket, peer, local, shared, cancel).run().await;
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    tracing::info!(listen = %shown, "rtsp listener stopped");
}

/// Refresh UDP sessions from the RTCP packets their clients send.
async fn rtcp_receiver(shared: Arc<Shared>, cancel: CancellationToken) {
    let Some(udp) = &shared.udp else { return };
    let socket = udp.rtcp.clone();
    let mut buf = vec![0u8; 2048];
    loop {
        let r = tokio::select! {
            () = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let Ok((_, from)) = r else {
            // ICMP errors from earlier sends; keep going.
            continue;
        };
        let seen = udp
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&from)
            .and_then(Weak::upgrade);
        if let Some(s) = seen {
            s.store(shared.now_ms(), Ordering::Relaxed);
        }
    }
}

/// Why a connection ends (for the log line).
#[derive(Debug)]
enum End {
    Closed,
    Shutdown,
    Kicked(&'static str),
    Timeout(&'static str),
    Error(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => f.write_str("player disconnected"),
            End::Shutdown => f.write_str("listener shutting down"),
            End::Kicked(w) => f.write_str(w),
            End::Timeout(w) => write!(f, "timeout: {w}"),
            End::Error(e) => f.write_str(e),
        }
    }
}

/// A stream a connection described or set up.
#[derive(Clone)]
struct StreamRef {
    code: String,
    fanout: Arc<RtspFanout>,
    /// Fires when the stream stops or its RTSP play is switched off.
    gate: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
enum Out {
    Tcp { rtp: u8, rtcp: u8 },
    Udp { rtp: SocketAddr, rtcp: SocketAddr },
}

struct TrackOut {
    out: Out,
    packets: u32,
    octets: u32,
    started: bool,
}

struct Session {
    id: String,
    stream: StreamRef,
    generation: u64,
    /// By fanout track index.
    tracks: Vec<Option<TrackOut>>,
    rx: Option<tokio::sync::broadcast::Receiver<Arc<Unit>>>,
    /// After a lag: drop units until a keyframe.
    skipping: bool,
    /// Last RTCP from a UDP client (ms since the shared epoch).
    rtcp_seen: Arc<AtomicU64>,
    next_sr: Instant,
    sent: u64,
    lag_events: u64,
}

impl Session {
    fn playing(&self) -> bool {
        self.rx.is_some()
    }

    fn uses_udp(&self) -> bool {
        self.tracks
            .iter()
            .flatten()
            .any(|t| matches!(t.out, Out::Udp { .. }))
    }
}

/// What to do after a response is written.
enum After {
    Nothing,
    Play(Joined),
    Close,
}

struct Conn {
    socket: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    inbuf: Vec<u8>,
    described: Option<StreamRef>,
    session: Option<Session>,
    last_request: Instant,
}

/// `(stream code, track index)` of a request URI `rtsp://host/live/<code>[/trackID=N]`.
fn parse_target(uri: &str) -> Option<(String, Option<usize>)> {
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    let path = if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
        let after = uri.split_once("://")?.1;
        after.get(after.find('/')?..)?
    } else if uri.starts_with('/') {
        uri
    } else {
        return None;
    };
    let path = path.split('?').next()?.trim_end_matches('/');
    let rest = path.strip_prefix("/live/")?;
    let (code, track) = match rest.split_once('/') {
        Some((c, t)) => (c, Some(t.strip_prefix("trackID=")?.parse().ok()?)),
        None => (rest, None),
    };
    if code.is_empty() {
        return None;
    }
    Some((code.to_string(), track))
}

/// `rtsp://host/live/<code>/` as the client addressed it (for Content-Base and RTP-Info).
fn base_url(uri: &str, code: &str, local: SocketAddr) -> String {
    let authority = uri
        .split_once("://")
        .and_then(|(_, a)| a.split('/').next())
        .filter(|a| !a.is_empty())
        .map_or_else(|| local.to_string(), str::to_string);
    format!("rtsp://{authority}/live/{code}/")
}

async fn recv_unit(
    rx: Option<&mut tokio::sync::broadcast::Receiver<Arc<Unit>>>,
) -> Result<Arc<Unit>, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn gate_closed(gate: Option<CancellationToken>) {
    match gate {
        Some(g) => g.cancelled_owned().await,
        None => std::future::pending().await,
    }
}

impl Conn {
    fn new(
        socket: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        shared: Arc<Shared>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            socket,
            peer,
            local,
            shared,
            cancel,
            inbuf: Vec::new(),
            described: None,
            session: None,
            last_request: Instant::now(),
        }
    }

    async fn run(mut self) {
        let end = match self.serve().await {
            Ok(()) => End::Closed,
            Err(e) => e,
        };
        let peer = self.peer;
        if let Some(s) = self.session.take() {
            tracing::info!(
                stream = %s.stream.code, %peer, session = %s.id, bytes = s.sent,
                lag_events = s.lag_events, reason = %end, "rtsp session ended"
            );
        } else {
            tracing::debug!(%peer, reason = %end, "rtsp connection closed");
        }
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.socket.shutdown()).await;
    }

    fn gate(&self) -> Option<CancellationToken> {
        self.session
            .as_ref()
            .map(|s| &s.stream)
            .or(self.described.as_ref())
            .map(|s| s.gate.clone())
    }

    async fn serve(&mut self) -> Result<(), End> {
        let mut buf = vec![0u8; 16 << 10];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let gate = self.gate();
            let rx = self.session.as_mut().and_then(|s| s.rx.as_mut());
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(End::Shutdown),
                () = gate_closed(gate) => return Err(End::Kicked("stream stopped or rtsp play switched off")),
                r = self.socket.read(&mut buf) => match r {
                    Ok(0) => return Err(End::Closed),
                    Ok(n) => {
                        self.inbuf.extend_from_slice(buf.get(..n).unwrap_or_default());
                        self.input().await?;
                    }
                    Err(e) => return Err(End::Error(format!("read: {e}"))),
                },
                r = recv_unit(rx) => self.media(r).await?,
                _ = tick.tick() => self.tick().await?,
            }
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Error(format!("write: {e}"))),
            Err(_) => Err(End::Timeout("peer does not read")),
        }
    }

    /// Handle every complete message in the input buffer.
    async fn input(&mut self) -> Result<(), End> {
        loop {
            match os_rtsp::parse_message(&self.inbuf) {
                Ok(None) => return Ok(()),
                Ok(Some((msg, used))) => {
                    self.inbuf.drain(..used.min(self.inbuf.len()));
                    match msg {
                        // RTCP receiver reports of TCP players: nothing to do.
                        Message::Interleaved(_) => {}
                        Message::Request(req) => {
                            self.last_request = Instant::now();
                            self.request(req).await?;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "rtsp: unparsable request");
                    let r = Response::new(400, None).header("Server", SERVER);
                    self.write(&r.to_bytes()).await?;
                    return Err(End::Error(format!("bad request: {e}")));
                }
            }
        }
    }

    async fn request(&mut self, req: Request) -> Result<(), End> {
        let cseq = match req.cseq() {
            Ok(c) => c,
            Err(e) => {
                let why = match e {
                    CSeqError::Missing => "missing CSeq",
                    CSeqError::Invalid => "invalid CSeq",
                };
                tracing::debug!(peer = %self.peer, method = req.method.as_str(), why, "rtsp: request refused");
                let r = Response::new(400, None).header("Server", SERVER);
                return self.write(&r.to_bytes()).await;
            }
        };
        let (resp, after) = if req.version != "RTSP/1.0" {
            (Response::new(505, Some(cseq)), After::Nothing)
        } else {
            self.dispatch(&req, cseq).await
        };
        let resp = resp.header("Server", SERVER);
        self.write(&resp.to_bytes()).await?;
        match after {
            After::Nothing => Ok(()),
            After::Close => Err(End::Closed),
            After::Play(joined) => self.start_play(joined).await,
        }
    }

    fn session_header(&self, id: &str) -> String {
        format!(
            "{id};timeout={}",
            self.shared.config.session_timeout.as_secs()
        )
    }

    /// The connection's session when `req` names it (or names none).
    fn check_session(&self, req: &Request, cseq: u32) -> Result<(), Response> {
        match (&self.session, req.session()) {
            (Some(s), Some(id)) if s.id == id => Ok(()),
            (Some(_), None) => Ok(()),
            (_, Some(_)) => Err(Response::new(454, Some(cseq))),
            (None, None) => Err(Response::new(455, Some(cseq))),
        }
    }

    async fn dispatch(&mut self, req: &Request, cseq: u32) -> (Response, After) {
        match &req.method {
            Method::Options => (
                Response::new(200, Some(cseq)).header("Public", PUBLIC),
                After::Nothing,
            ),
            Method::Describe => (self.describe(req, cseq).await, After::Nothing),
            Method::Setup => (self.setup(req, cseq).await, After::Nothing),
            Method::Play => self.play(req, cseq),
            Method::Pause => {
                if let Err(r) = self.check_session(req, cseq) {
                    return (r, After::Nothing);
                }
                let Some(s) = self.session.as_mut() else {
                    return (Response::new(455, Some(cseq)), After::Nothing);
                };
                s.rx = None;
                let id = s.id.clone();
                (
                    Response::new(200, Some(cseq)).header("Session", self.session_header(&id)),
                    After::Nothing,
                )
            }
            Method::Teardown => {
                if let Err(r) = self.check_session(req, cseq) {
                    return (r, After::Nothing);
                }
                if let Some(s) = self.session.take() {
                    tracing::info!(
                        stream = %s.stream.code, peer = %self.peer, session = %s.id,
                        bytes = s.sent, lag_events = s.lag_events, "rtsp session torn down"
                    );
                }
                (Response::new(200, Some(cseq)), After::Nothing)
            }
            Method::GetParameter | Method::SetParameter => {
                // Keepalive. A session id, when given, must be ours.
                if req.session().is_some()
                    && let Err(r) = self.check_session(req, cseq)
                {
                    return (r, After::Nothing);
                }
                let mut r = Response::new(200, Some(cseq));
                if let Some(s) = &self.session {
                    r = r.header("Session", self.session_header(&s.id));
                }
                (r, After::Nothing)
            }
            Method::Announce | Method::Record | Method::Redirect => (
                Response::new(405, Some(cseq)).header("Allow", PUBLIC),
                After::Nothing,
            ),
            Method::Other(_) => (
                Response::new(501, Some(cseq)).header("Public", PUBLIC),
                After::Nothing,
            ),
        }
    }

    /// Admit a player of `code`: the stream's fanout (shared with an earlier
    /// DESCRIBE of this connection).
    fn admit(&mut self, code: &str) -> Option<StreamRef> {
        if let Some(s) = self.session.as_ref().map(|s| &s.stream)
            && s.code == code
        {
            return Some(s.clone());
        }
        if let Some(d) = &self.described
            && d.code == code
            && !d.gate.is_cancelled()
        {
            return Some(d.clone());
        }
        match self.shared.players.admit(PlayProtocol::Rtsp, code) {
            Ok(a) => {
                let fanout = self.shared.players.rtsp_fanout(code, &a.buffer);
                Some(StreamRef {
                    code: code.to_string(),
                    fanout,
                    gate: a.cancel,
                })
            }
            Err(e) => {
                tracing::warn!(stream = %code, peer = %self.peer, reason = %e, "rtsp play refused");
                None
            }
        }
    }

    async fn describe(&mut self, req: &Request, cseq: u32) -> Response {
        let Some((code, None)) = parse_target(&req.uri) else {
            return Response::new(404, Some(cseq));
        };
        let Some(stream) = self.admit(&code) else {
            return Response::new(404, Some(cseq));
        };
        let wait = self.shared.config.describe_wait;
        let Some(d) = stream.fanout.describe(wait).await else {
            tracing::warn!(stream = %code, peer = %self.peer, "rtsp describe: no playable media yet");
            return Response::new(503, Some(cseq)).header("Retry-After", "2");
        };
        let sdp = os_rtsp::sdp::build(
            &code,
            &self.local.ip().to_string(),
            random_u64() >> 1,
            &d.media,
        );
        self.described = Some(stream);
        tracing::debug!(stream = %code, peer = %self.peer, "rtsp describe");
        Response::new(200, Some(cseq))
            .header("Content-Base", base_url(&req.uri, &code, self.local))
            .with_body("application/sdp", sdp)
    }

    async fn setup(&mut self, req: &Request, cseq: u32) -> Response {
        let Some((code, track)) = parse_target(&req.uri) else {
            return Response::new(404, Some(cseq));
        };
        if let Some(id) = req.session()
            && self.session.as_ref().is_none_or(|s| s.id != id)
        {
            return Response::new(454, Some(cseq));
        }
        if let Some(s) = &self.session
            && s.stream.code != code
        {
            return Response::new(459, Some(cseq));
        }
        let Some(stream) = self.admit(&code) else {
            return Response::new(404, Some(cseq));
        };
        let Some(d) = stream
            .fanout
            .describe(self.shared.config.describe_wait)
            .await
        else {
            return Response::new(503, Some(cseq)).header("Retry-After", "2");
        };
        let track = match track {
            Some(t) => t,
            None if d.media.len() == 1 => 0,
            None => return Response::new(459, Some(cseq)),
        };
        if track >= d.media.len() {
            return Response::new(404, Some(cseq));
        }
        if let Some(s) = &self.session
            && (s.generation != d.generation || s.playing())
        {
            return Response::new(455, Some(cseq));
        }
        let offers = req
            .header("Transport")
            .map(Transport::parse_list)
            .unwrap_or_default();
        let udp_ok = self.shared.udp.is_some();
        let chosen = offers.iter().find(|t| {
            t.profile == "RTP/AVP"
                && !t.multicast
                && t.mode.as_deref().is_none_or(|m| m == "PLAY")
                && match t.lower {
                    Lower::Tcp => true,
                    Lower::Udp => udp_ok && t.client_port.is_some(),
                }
        });
        let Some(t) = chosen else {
            return Response::new(461, Some(cseq));
        };
        let ssrc = d.ssrc.get(track).copied().unwrap_or_default();
        let (out, transport) = match (t.lower, &self.shared.udp) {
            (Lower::Tcp, _) => {
                let (a, b) = t
                    .interleaved
                    .unwrap_or(((track * 2) as u8, (track * 2 + 1) as u8));
                (
                    Out::Tcp { rtp: a, rtcp: b },
                    format!("RTP/AVP/TCP;unicast;interleaved={a}-{b};ssrc={ssrc:08X}"),
                )
            }
            (Lower::Udp, Some(udp)) => {
                let (cp, cq) = t.client_port.unwrap_or_default();
                let ip = self.peer.ip();
                (
                    Out::Udp {
                        rtp: SocketAddr::new(ip, cp),
                        rtcp: SocketAddr::new(ip, cq),
                    },
                    format!(
                        "RTP/AVP;unicast;client_port={cp}-{cq};server_port={}-{};ssrc={ssrc:08X}",
                        udp.ports.0, udp.ports.1
                    ),
                )
            }
            (Lower::Udp, None) => return Response::new(461, Some(cseq)),
        };
        let session = self.session.get_or_insert_with(|| Session {
            id: format!("{:016X}", random_u64()),
            stream: stream.clone(),
            generation: d.generation,
            tracks: Vec::new(),
            rx: None,
            skipping: false,
            rtcp_seen: Arc::new(AtomicU64::new(0)),
            next_sr: Instant::now(),
            sent: 0,
            lag_events: 0,
        });
        if session.tracks.len() < d.media.len() {
            session.tracks.resize_with(d.media.len(), || None);
        }
        if let Some(slot) = session.tracks.get_mut(track) {
            *slot = Some(TrackOut {
                out,
                packets: 0,
                octets: 0,
                started: false,
            });
        }
        if let (Out::Udp { rtcp, .. }, Some(udp)) = (out, &self.shared.udp) {
            let mut seen = udp.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.retain(|_, w| w.strong_count() > 0);
            seen.insert(rtcp, Arc::downgrade(&session.rtcp_seen));
        }
        let id = session.id.clone();
        tracing::debug!(stream = %code, peer = %self.peer, track, transport = %transport, "rtsp setup");
        Response::new(200, Some(cseq))
            .header("Transport", transport)
            .header("Session", self.session_header(&id))
    }

    fn play(&mut self, req: &Request, cseq: u32) -> (Response, After) {
        if let Err(r) = self.check_session(req, cseq) {
            return (r, After::Nothing);
        }
        if let Some((code, _)) = parse_target(&req.uri)
            && self.session.as_ref().is_some_and(|s| s.stream.code != code)
        {
            return (Response::new(404, Some(cseq)), After::Nothing);
        }
        let local = self.local;
        let header = self
            .session
            .as_ref()
            .map(|s| self.session_header(&s.id))
            .unwrap_or_default();
        let Some(s) = self.session.as_mut() else {
            return (Response::new(455, Some(cseq)), After::Nothing);
        };
        let ok = Response::new(200, Some(cseq))
            .header("Session", header)
            .header("Range", "npt=0.000-");
        if s.playing() {
            return (ok, After::Nothing);
        }
        let Some(joined) = s.stream.fanout.join() else {
            return (Response::new(503, Some(cseq)), After::Close);
        };
        let base = base_url(&req.uri, &s.stream.code, local);
        let mut info = Vec::new();
        for (i, t) in s.tracks.iter().enumerate() {
            if t.is_none() {
                continue;
            }
            let (seq, ts) = joined.start.get(i).copied().unwrap_or_default();
            info.push(format!("url={base}trackID={i};seq={seq};rtptime={ts}"));
        }
        tracing::info!(stream = %s.stream.code, peer = %self.peer, session = %s.id, udp = s.uses_udp(), "rtsp player started");
        (ok.header("RTP-Info", info.join(",")), After::Play(joined))
    }

    /// Start sending: the GOP backlog first, then the live units.
    async fn start_play(&mut self, joined: Joined) -> Result<(), End> {
        let Joined { backlog, rx, .. } = joined;
        if let Some(s) = self.session.as_mut() {
            s.rx = Some(rx);
            s.skipping = false;
            s.next_sr = Instant::now() + Duration::from_millis(500);
            s.rtcp_seen.store(self.shared.now_ms(), Ordering::Relaxed);
        }
        for chunk in backlog.chunks(MAX_BATCH) {
            self.send_units(chunk).await?;
        }
        Ok(())
    }

    /// A unit (or an error) from the fanout, plus whatever else is queued.
    async fn media(&mut self, first: Result<Arc<Unit>, RecvError>) -> Result<(), End> {
        let mut batch: Vec<Arc<Unit>> = Vec::with_capacity(MAX_BATCH);
        let mut next = Some(first);
        while let Some(r) = next.take() {
            let Some(s) = self.session.as_mut() else {
                return Ok(());
            };
            match r {
                Ok(u) => {
                    if u.generation != s.generation {
                        self.send_units(&batch).await?;
                        return Err(End::Kicked("stream format changed"));
                    }
                    if s.skipping && !u.key {
                        // Keep draining what is queued.
                    } else {
                        s.skipping = false;
                        batch.push(u);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    s.lag_events += 1;
                    s.skipping = true;
                    s.stream.fanout.record_lag(n);
                }
                Err(RecvError::Closed) => {
                    self.send_units(&batch).await?;
                    return Err(End::Kicked("stream stopped"));
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            let Some(rx) = self.session.as_mut().and_then(|s| s.rx.as_mut()) else {
                break;
            };
            next = match rx.try_recv() {
                Ok(u) => Some(Ok(u)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
            };
        }
        self.send_units(&batch).await
    }

    /// Send units on each track's transport.
    async fn send_units(&mut self, units: &[Arc<Unit>]) -> Result<(), End> {
        let Some(s) = self.session.as_mut() else {
            return Ok(());
        };
        let mut tcp: Vec<Bytes> = Vec::new();
        for u in units {
            let Some(Some(t)) = s.tracks.get_mut(u.track) else {
                continue;
            };
            t.started = true;
            for f in &u.framed {
                t.packets = t.packets.wrapping_add(1);
                t.octets = t
                    .octets
                    .wrapping_add(f.len().saturating_sub(4 + os_rtsp::rtp::HEADER_LEN) as u32);
                match t.out {
                    Out::Tcp { rtp, .. } => tcp.push(on_channel(f, rtp)),
                    Out::Udp { rtp, .. } => {
                        if let Some(udp) = &self.shared.udp {
                            // Loss is the client's problem on UDP; never wait.
                            let _ = udp.rtp.try_send_to(&rtp_of(f), rtp);
                            s.sent += (f.len() - 4) as u64;
                        }
                    }
                }
            }
        }
        if tcp.is_empty() {
            return Ok(());
        }
        let n = write_vectored_all(&mut self.socket, &tcp).await?;
        if let Some(s) = self.session.as_mut() {
            s.sent += n;
        }
        Ok(())
    }

    /// Once a second: timeouts and sender reports.
    async fn tick(&mut self) -> Result<(), End> {
        let timeout = self.shared.config.session_timeout;
        let Some(s) = self.session.as_mut() else {
            if self.last_request.elapsed() > timeout {
                return Err(End::Timeout("no request"));
            }
            return Ok(());
        };
        if !s.playing() || s.uses_udp() {
            let rtcp_age = Duration::from_millis(
                self.shared
                    .now_ms()
                    .saturating_sub(s.rtcp_seen.load(Ordering::Relaxed)),
            );
            let idle =
                self.last_request
                    .elapsed()
                    .min(if s.playing() { rtcp_age } else { Duration::MAX });
            if idle > timeout {
                return Err(End::Timeout("session timeout"));
            }
        }
        if !s.playing() || Instant::now() < s.next_sr {
            return Ok(());
        }
        s.next_sr = Instant::now() + SR_INTERVAL;
        let ntp = ntp_timestamp(std::time::SystemTime::now());
        let mut tcp = Vec::new();
        let desc = s.stream.fanout.description();
        for (i, t) in s.tracks.iter().enumerate() {
            let Some(t) = t.as_ref().filter(|t| t.started) else {
                continue;
            };
            let (Some(rtp_ts), Some(ssrc)) = (
                s.stream.fanout.rtp_now(i),
                desc.as_ref().and_then(|d| d.ssrc.get(i).copied()),
            ) else {
                continue;
            };
            let sr = SenderReport {
                ssrc,
                ntp,
                rtp_timestamp: rtp_ts,
                packets: t.packets,
                octets: t.octets,
            }
            .to_bytes(SERVER);
            match t.out {
                Out::Tcp { rtcp, .. } => {
                    let mut b = os_rtsp::interleaved_header(rtcp, sr.len()).to_vec();
                    b.extend_from_slice(&sr);
                    tcp.push(Bytes::from(b));
                }
                Out::Udp { rtcp, .. } => {
                    if let Some(udp) = &self.shared.udp {
                        let _ = udp.rtcp.try_send_to(&sr, rtcp);
                    }
                }
            }
        }
        if !tcp.is_empty() {
            write_vectored_all(&mut self.socket, &tcp).await?;
        }
        Ok(())
    }
}

/// Write `bufs` with vectored writes (no copy), bounded by the write timeout.
async fn write_vectored_all(socket: &mut TcpStream, bufs: &[Bytes]) -> Result<u64, End> {
    let (mut idx, mut off) = (0usize, 0usize);
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    while idx < bufs.len() {
        let slices: Vec<std::io::IoSlice<'_>> = bufs
            .iter()
            .skip(idx)
            .take(64)
            .enumerate()
            .map(|(i, b)| {
                std::io::IoSlice::new(if i == 0 {
                    b.get(off..).unwrap_or_default()
                } else {
                    b
                })
            })
            .collect();
        let n = match tokio::time::timeout_at(deadline, socket.write_vectored(&slices)).await {
            Ok(Ok(0)) => return Err(End::Error("write: connection closed".into())),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(End::Error(format!("write: {e}"))),
            Err(_) => return Err(End::Timeout("peer does not read")),
        };
        sent += n as u64;
        let mut left = n;
        while left > 0 && idx < bufs.len() {
            let rest = bufs.get(idx).map_or(0, |b| b.len() - off);
            if left >= rest {
                left -= rest;
                idx += 1;
                off = 0;
            } else {
                off += left;
                left = 0;
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::play::PlayGate;
    use os_hub::Hub;

    /// A served stream `t` fed from `h264_aac.ts` in a loop, and a server
    /// with a 2 s session timeout.
    async fn setup() -> (SocketAddr, CancellationToken, crate::play::PlayOpening) {
        setup_at(1).await
    }

    /// As [`setup`], the media fed `speed` times faster than real time.
    async fn setup_at(speed: u32) -> (SocketAddr, CancellationToken, crate::play::PlayOpening) {
        let hub = Arc::new(Hub::new());
        let buffer = hub.get_or_create("t", 1024);
        let gate = PlayGate::new();
        let opening = gate.open(PlayProtocol::Rtsp, "t");
        let players = Players::new(hub, gate);
        let stop = CancellationToken::new();
        let path = format!(
            "{}/../../data/testdata/h264_aac.ts",
            env!("CARGO_MANIFEST_DIR")
        );
        let data = std::fs::read(path).unwrap();
        let feed_stop = stop.clone();
        tokio::spawn(async move {
            // ~real time: 3 s of media per pass, 188*7-byte chunks.
            let chunks: Vec<&[u8]> = data.chunks(188 * 7).collect();
            // `speed` chunks per real-time chunk interval (timer resolution).
            let pause = Duration::from_secs(3) / chunks.len() as u32;
            let speed = speed.max(1) as usize;
            while !feed_stop.is_cancelled() {
                for group in chunks.chunks(speed) {
                    for c in group {
                        let _ = buffer.write(Bytes::copy_from_slice(c));
                    }
                    tokio::time::sleep(pause * group.len() as u32 / speed as u32).await;
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ServerConfig {
            udp: true,
            session_timeout: Duration::from_secs(2),
            describe_wait: Duration::from_secs(5),
        };
        tokio::spawn(serve_listener(listener, players, config, stop.clone()));
        (addr, stop, opening)
    }

    async fn request(sock: &mut TcpStream, buf: &mut Vec<u8>, text: &str) -> Response {
        sock.write_all(text.as_bytes()).await.unwrap();
        loop {
            if let Ok(Some((r, n))) = os_rtsp::parse_response(buf) {
                buf.drain(..n);
                return r;
            }
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut tmp))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed while waiting for a response");
            buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// A TCP player that stops reading for a while falls more than the ring
    /// behind: it is skipped ahead and resumes on a keyframe (with its
    /// parameter sets), not disconnected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lagging_player_skips_to_a_keyframe() {
        // 40x real time: ~1 MB/s and ~2900 units/s, so 4 s of not reading
        // fill the socket buffers (~1 MB) and then the 1024-unit ring.
        let (addr, stop, _opening) = setup_at(40).await;
        let url = format!("rtsp://{addr}/live/t");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut sock = socket.connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let r = request(
            &mut sock,
            &mut buf,
            &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
        )
        .await;
        assert_eq!(r.status, 200);
        let r = request(&mut sock, &mut buf, &format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")).await;
        assert_eq!(r.status, 200);
        let id = r
            .get("Session")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        let r = request(
            &mut sock,
            &mut buf,
            &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {id}\r\n\r\n"),
        )
        .await;
        assert_eq!(r.status, 200);
        // Stop reading long enough to fall out of the ring (but well within
        // the 10 s write timeout), then read on.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let started = Instant::now();
        let mut last: Option<u16> = None;
        let mut gaps = 0;
        let mut after_gap = false;
        let mut total = 0usize;
        let mut tmp = vec![0u8; 64 << 10];
        while started.elapsed() < Duration::from_secs(4) {
            let mut at = 0;
            while let Some((f, n)) = os_rtsp::parse_interleaved(buf.get(at..).unwrap_or_default()) {
                at += n;
                if f.channel != 0 {
                    continue;
                }
                let h = os_rtsp::rtp::RtpHeader::parse(&f.data).unwrap();
                if let Some(prev) = last
                    && h.sequence != prev.wrapping_add(1)
                {
                    gaps += 1;
                    after_gap = true;
                }
                last = Some(h.sequence);
                if after_gap {
                    // The first packet after the skip starts a keyframe AU:
                    // its SPS (single NAL packet, type 7).
                    assert_eq!(f.data[h.payload_offset] & 0x1F, 7, "resumed mid-GOP");
                    after_gap = false;
                }
            }
            buf.drain(..at);
            let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut tmp))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "lagging player was disconnected");
            total += n;
            buf.extend_from_slice(&tmp[..n]);
        }
        assert!(
            gaps >= 1,
            "the player never fell out of the ring (last seq {last:?}, {total} bytes read)"
        );
        stop.cancel();
    }

    /// UDP play: RTP and RTCP sender reports arrive on the client ports; a
    /// session kept alive by GET_PARAMETER stays, a silent one times out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_play_and_session_timeout() {
        let (addr, stop, _opening) = setup().await;
        let url = format!("rtsp://{addr}/live/t");
        let mut ends = Vec::new();
        for keepalive in [true, false] {
            let (rtp, rtcp) = bind_pair("127.0.0.1".parse().unwrap()).await.unwrap();
            let cp = rtp.local_addr().unwrap().port();
            let mut sock = TcpStream::connect(addr).await.unwrap();
            let mut buf = Vec::new();
            let r = request(
                &mut sock,
                &mut buf,
                &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            )
            .await;
            assert_eq!(r.status, 200);
            let sdp = String::from_utf8_lossy(&r.body).to_string();
            assert!(sdp.contains("a=rtpmap:96 H264/90000"), "{sdp}");
            assert!(sdp.contains("sprop-parameter-sets="), "{sdp}");
            let r = request(
                &mut sock,
                &mut buf,
                &format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port={cp}-{}\r\n\r\n", cp + 1),
            )
            .await;
            assert_eq!(r.status, 200, "{r:?}");
            let transport = r.get("Transport").unwrap_or_default().to_string();
            assert!(transport.contains("server_port="), "{transport}");
            let session = r.get("Session").unwrap_or_default().to_string();
            assert!(session.ends_with(";timeout=2"), "{session}");
            let id = session.split(';').next().unwrap_or_default().to_string();
            let r = request(
                &mut sock,
                &mut buf,
                &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {id}\r\n\r\n"),
            )
            .await;
            assert_eq!(r.status, 200);
            // Media on the client's RTP port, a sender report on its RTCP port.
            let mut p = vec![0u8; 2048];
            let n = tokio::time::timeout(Duration::from_secs(5), rtp.recv(&mut p))
                .await
                .unwrap()
                .unwrap();
            let h = os_rtsp::rtp::RtpHeader::parse(&p[..n]).unwrap();
            assert_eq!(h.payload_type, 96);
            let n = tokio::time::timeout(Duration::from_secs(5), rtcp.recv(&mut p))
                .await
                .unwrap()
                .unwrap();
            let sr = os_rtsp::rtcp::packets(&p[..n]);
            assert_eq!(sr.first().map(|x| x.0), Some(200));
            assert_eq!(
                os_rtsp::rtcp::parse_sender_report(sr[0].1).unwrap().ssrc,
                h.ssrc
            );
            // 4 s: twice the timeout.
            let started = Instant::now();
            let mut cseq = 4;
            let end = loop {
                if started.elapsed() > Duration::from_secs(4) {
                    break "open";
                }
                if keepalive {
                    let r = request(
                        &mut sock,
                        &mut buf,
                        &format!(
                            "GET_PARAMETER {url} RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {id}\r\n\r\n"
                        ),
                    )
                    .await;
                    assert_eq!(r.status, 200);
                    cseq += 1;
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    continue;
                }
                let mut tmp = [0u8; 1024];
                match tokio::time::timeout(Duration::from_millis(500), sock.read(&mut tmp)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break "closed",
                    _ => {}
                }
            };
            ends.push((end, started.elapsed()));
        }
        assert_eq!(ends[0].0, "open", "kept alive by GET_PARAMETER");
        assert_eq!(ends[1].0, "closed", "silent UDP session timed out");
        assert!(ends[1].1 < Duration::from_millis(3500), "{:?}", ends[1].1);
        stop.cancel();
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("rtsp://127.0.0.1:8554/live/demo"),
            Some(("demo".into(), None))
        );
        assert_eq!(
            parse_target("rtsp://h/live/demo/trackID=1"),
            Some(("demo".into(), Some(1)))
        );
        assert_eq!(
            parse_target("RTSP://h:1/live/demo/?token=x"),
            Some(("demo".into(), None))
        );
        assert_eq!(parse_target("/live/a"), Some(("a".into(), None)));
        assert_eq!(parse_target("rtsp://h/other/demo"), None);
        assert_eq!(parse_target("rtsp://h/live/"), None);
        assert_eq!(parse_target("rtsp://h/live/a/b"), None);
        assert_eq!(parse_target("*"), None);
        assert_eq!(parse_target("rtsp://h"), None);
        assert_eq!(
            base_url(
                "rtsp://10.0.0.1:554/live/a/trackID=0",
                "a",
                "127.0.0.1:1"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
            ),
            "rtsp://10.0.0.1:554/live/a/"
        );
    }
}
