//! The shared RTMP listener: one task per connection, one `ServerSession`
//! per connection. Publish requests are routed to streams through the
//! [`PushRegistry`]; play requests are the other branch of the same session
//! (refused until the play side exists).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{Announced, FlvToTs};
use crate::push::{ClaimError, PushClaim, PushProtocol, PushRegistry};

/// Time a connection gets to finish the handshake and start publishing (or playing).
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// A publisher silent for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for one write to the peer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a connection may send before it is publishing (commands only).
const MAX_SETUP_BYTES: u64 = 1 << 20;
/// Concurrent connections on the listener.
const MAX_CONNECTIONS: usize = 1024;
const READ_BUF: usize = 64 << 10;

/// Serve the shared RTMP listener (push ingest now, play later) until `cancel`.
pub async fn serve_listener(
    listener: TcpListener,
    registry: Arc<PushRegistry>,
    cancel: CancellationToken,
) {
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(listen = %local, "rtmp listener started");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(listen = %local, error = %e, "rtmp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "rtmp connection refused: too many connections");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let registry = registry.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _permit = permit;
            Connection::new(socket, peer, registry, cancel).run().await;
        });
    }
    tasks.close();
    // Connections see the same token and close themselves.
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    tracing::info!(listen = %local, "rtmp listener stopped");
}

/// Why a connection ends (for the log line).
enum End {
    Closed,
    Shutdown,
    Kicked,
    Timeout(&'static str),
    Refused,
    Error(String),
}

struct Publishing {
    claim: PushClaim,
    sink: FlvToTs,
    app: String,
    key: String,
}

struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    registry: Arc<PushRegistry>,
    cancel: CancellationToken,
    publishing: Option<Publishing>,
    received: u64,
    /// Set by a refusal: flush the answer, then close.
    closing: bool,
}

impl Connection {
    fn new(
        socket: TcpStream,
        peer: SocketAddr,
        registry: Arc<PushRegistry>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            socket,
            peer,
            registry,
            cancel,
            publishing: None,
            received: 0,
            closing: false,
        }
    }

    async fn run(mut self) {
        let end = self.serve().await;
        let peer = self.peer;
        if let Some(p) = self.publishing.take() {
            let Publishing {
                mut claim,
                mut sink,
                app,
                key,
                ..
            } = p;
            let _ = sink.flush(&mut claim.emitter);
            let why = match &end {
                End::Closed => "publisher disconnected".to_string(),
                End::Shutdown => "listener shutting down".to_string(),
                End::Kicked => "stream input stopped".to_string(),
                End::Timeout(w) => format!("timeout: {w}"),
                End::Refused => "refused".to_string(),
                End::Error(e) => e.clone(),
            };
            tracing::info!(
                stream = %claim.stream, %app, key = %key, %peer,
                messages = sink.messages, bad_messages = sink.bad_messages,
                reason = %why, "rtmp publish ended"
            );
            // Dropping the claim frees the key.
        } else {
            match end {
                End::Error(e) => tracing::debug!(%peer, error = %e, "rtmp connection closed"),
                End::Timeout(w) => tracing::debug!(%peer, reason = w, "rtmp connection timed out"),
                _ => {}
            }
        }
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.socket.shutdown()).await;
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Error(format!("write: {e}"))),
            Err(_) => Err(End::Timeout("peer does not read")),
        }
    }

    /// Read some bytes; `Ok(None)` on EOF.
    async fn read(&mut self, buf: &mut [u8], deadline: tokio::time::Instant) -> Result<usize, End> {
        let kicked = async {
            match &self.publishing {
                Some(p) => p.claim.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => Err(End::Shutdown),
            () = kicked => Err(End::Kicked),
            r = tokio::time::timeout_at(deadline, self.socket.read(buf)) => match r {
                Err(_) => Err(End::Timeout(if self.publishing.is_some() {
                    "publisher idle"
                } else {
                    "no publish or play request in time"
                })),
                Ok(Ok(0)) => Err(End::Closed),
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(End::Error(format!("read: {e}"))),
            },
        }
    }

    async fn serve(&mut self) -> End {
        match self.serve_inner().await {
            Ok(()) => End::Closed,
            Err(e) => e,
        }
    }

    async fn serve_inner(&mut self) -> Result<(), End> {
        let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        let mut buf = vec![0u8; READ_BUF];

        // Handshake.
        let mut handshake = Handshake::new(PeerType::Server);
        let rest = loop {
            let n = self.read(&mut buf, setup_deadline).await?;
            let data = buf.get(..n).unwrap_or_default();
            match handshake.process_bytes(data) {
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    self.write(&response_bytes).await?;
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    self.write(&response_bytes).await?;
                    break remaining_bytes;
                }
                Err(e) => return Err(End::Error(format!("handshake: {e}"))),
            }
        };

        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())
            .map_err(|e| End::Error(format!("session: {e}")))?;
        self.results(&mut session, initial).await?;
        self.input(&mut session, &rest).await?;

        loop {
            if self.closing {
                return Err(End::Refused);
            }
            let deadline = if self.publishing.is_some() {
                tokio::time::Instant::now() + IDLE_TIMEOUT
            } else {
                setup_deadline
            };
            let n = self.read(&mut buf, deadline).await?;
            let data = buf.get(..n).unwrap_or_default().to_vec();
            self.input(&mut session, &data).await?;
        }
    }

    async fn input(&mut self, session: &mut ServerSession, data: &[u8]) -> Result<(), End> {
        if data.is_empty() {
            return Ok(());
        }
        self.received += data.len() as u64;
        if self.publishing.is_none() && self.received > MAX_SETUP_BYTES {
            return Err(End::Error("too much data before publishing".into()));
        }
        let results = session
            .handle_input(data)
            .map_err(|e| End::Error(format!("rtmp: {e}")))?;
        self.results(session, results).await
    }

    async fn results(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), End> {
        // Events may produce more results (accept/reject answers); keep order.
        let mut queue = std::collections::VecDeque::from(results);
        while let Some(r) = queue.pop_front() {
            match r {
                ServerSessionResult::OutboundResponse(packet) => self.write(&packet.bytes).await?,
                ServerSessionResult::RaisedEvent(ev) => {
                    let more = self.event(session, ev)?;
                    for (i, m) in more.into_iter().enumerate() {
                        queue.insert(i, m);
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn event(
        &mut self,
        session: &mut ServerSession,
        ev: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, End> {
        let peer = self.peer;
        let answer = |r: Result<Vec<ServerSessionResult>, _>| {
            r.map_err(|e: rml_rtmp::sessions::ServerSessionError| End::Error(format!("rtmp: {e}")))
        };
        match ev {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                tracing::debug!(%peer, app = %app_name, "rtmp connect");
                answer(session.accept_request(request_id))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.publish(session, request_id, app_name, stream_key),
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.play(session, request_id, app_name, stream_key),
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(p) = &mut self.publishing {
                    p.sink.announce(Announced::from_metadata(&metadata));
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                if let Some(p) = &mut self.publishing {
                    p.sink
                        .video(timestamp.value, &data, &mut p.claim.emitter)
                        .map_err(|e| End::Error(e.to_string()))?;
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                if let Some(p) = &mut self.publishing {
                    p.sink
                        .audio(timestamp.value, &data, &mut p.claim.emitter)
                        .map_err(|e| End::Error(e.to_string()))?;
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                // FCUnpublish/deleteStream: the publisher is done.
                Err(End::Closed)
            }
            // releaseStream, FCPublish, _checkbw, acks, pings: nothing to do.
            _ => Ok(Vec::new()),
        }
    }

    fn publish(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app: String,
        stream_key: String,
    ) -> Result<Vec<ServerSessionResult>, End> {
        let peer = self.peer;
        // Encoders may append parameters (`key?token=..`): route by the key.
        let key = stream_key.split('?').next().unwrap_or_default().to_string();
        if self.publishing.is_some() {
            return self.refuse(
                session,
                request_id,
                "NetStream.Publish.BadConnection",
                "already publishing on this connection",
            );
        }
        match self.registry.claim(PushProtocol::Rtmp, &key) {
            Ok(claim) => {
                tracing::info!(
                    stream = %claim.stream, %app, key = %key, %peer,
                    "rtmp publisher connected"
                );
                self.publishing = Some(Publishing {
                    claim,
                    sink: FlvToTs::new(),
                    app,
                    key,
                });
                session
                    .accept_request(request_id)
                    .map_err(|e| End::Error(format!("rtmp: {e}")))
            }
            Err(ClaimError::UnknownKey) => {
                tracing::warn!(%app, key = %key, %peer, "rtmp publish refused: unknown stream key");
                self.refuse(
                    session,
                    request_id,
                    "NetStream.Publish.BadName",
                    "unknown stream key",
                )
            }
            Err(ClaimError::Busy(stream)) => {
                tracing::warn!(
                    %stream, %app, key = %key, %peer,
                    "rtmp publish refused: stream already publishing"
                );
                self.refuse(
                    session,
                    request_id,
                    "NetStream.Publish.BadName",
                    "stream is already publishing",
                )
            }
        }
    }

    fn play(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app: String,
        stream_key: String,
    ) -> Result<Vec<ServerSessionResult>, End> {
        tracing::warn!(%app, key = %stream_key, peer = %self.peer, "rtmp play refused: play not available yet");
        self.refuse(
            session,
            request_id,
            "NetStream.Play.StreamNotFound",
            "play not available yet",
        )
    }

    fn refuse(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        code: &str,
        description: &str,
    ) -> Result<Vec<ServerSessionResult>, End> {
        self.closing = true;
        session
            .reject_request(request_id, code, description)
            .map_err(|e| End::Error(format!("rtmp: {e}")))
    }
}
