//! The shared RTMP listener: one task per connection, one `ServerSession`
//! per connection. Publish requests are routed to streams through the
//! [`PushRegistry`]; play requests (`live/<code>`) are admitted through the
//! [`Players`] gate and fed by the stream's [`Fanout`].

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

use super::fanout::{self, Fanout};
use super::{Announced, FlvToTs};
use crate::play::{PlayProtocol, Players};
use crate::push::{ClaimError, PushClaim, PushProtocol, PushRegistry};
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

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
/// Messages a player gathers at most before a vectored write (more may
/// follow when one published batch is larger).
const MAX_BATCH: usize = 64;

/// `try_recv` errors as the blocking ones; `None` = nothing queued.
fn try_err(e: tokio::sync::broadcast::error::TryRecvError) -> Option<RecvError> {
    use tokio::sync::broadcast::error::TryRecvError;
    match e {
        TryRecvError::Empty => None,
        TryRecvError::Closed => Some(RecvError::Closed),
        TryRecvError::Lagged(n) => Some(RecvError::Lagged(n)),
    }
}

/// Serve the shared RTMP listener for publishers only (play requests are
/// refused) until `cancel`.
pub async fn serve_listener(
    listener: TcpListener,
    registry: Arc<PushRegistry>,
    cancel: CancellationToken,
) {
    serve_listener_with(listener, registry, None, cancel).await;
}

/// Serve the shared RTMP listener: publishers through `registry`, players
/// through `players` (refused when `None`), until `cancel`.
pub async fn serve_listener_with(
    listener: TcpListener,
    registry: Arc<PushRegistry>,
    players: Option<Arc<Players>>,
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
        let players = players.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _permit = permit;
            Connection::new(socket, peer, registry, players, cancel)
                .run()
                .await;
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

/// A player admitted by `play`, served once the accept answer is out.
struct Playing {
    code: String,
    stream_id: u32,
    fanout: Arc<Fanout>,
    /// Fires when the stream stops or its RTMP play is switched off.
    gate: CancellationToken,
}

struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    registry: Arc<PushRegistry>,
    players: Option<Arc<Players>>,
    cancel: CancellationToken,
    publishing: Option<Publishing>,
    playing: Option<Playing>,
    /// Set by a client's deleteStream/closeStream while playing.
    play_finished: bool,
    /// Serving a player: the setup byte limit no longer applies.
    in_play: bool,
    received: u64,
    /// Set by a refusal: flush the answer, then close.
    closing: bool,
}

impl Connection {
    fn new(
        socket: TcpStream,
        peer: SocketAddr,
        registry: Arc<PushRegistry>,
        players: Option<Arc<Players>>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            socket,
            peer,
            registry,
            players,
            cancel,
            publishing: None,
            playing: None,
            play_finished: false,
            in_play: false,
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

    /// Read some bytes before publishing or playing (handshake, commands):
    /// `deadline` bounds the whole setup. The publishing phase reads in
    /// [`Self::serve_publisher`].
    async fn read(&mut self, buf: &mut [u8], deadline: tokio::time::Instant) -> Result<usize, End> {
        tokio::select! {
            () = self.cancel.cancelled() => Err(End::Shutdown),
            r = tokio::time::timeout_at(deadline, self.socket.read(buf)) => match r {
                Err(_) => Err(End::Timeout("no publish or play request in time")),
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

        let mut config = ServerSessionConfig::new();
        config.chunk_size = fanout::OUT_CHUNK_SIZE as u32;
        let (mut session, initial) =
            ServerSession::new(config).map_err(|e| End::Error(format!("session: {e}")))?;
        self.results(&mut session, initial).await?;
        self.input(&mut session, &rest).await?;

        loop {
            if self.closing {
                return Err(End::Refused);
            }
            if self.playing.is_some() {
                return self.serve_player(&mut session, &mut buf).await;
            }
            if let Some(p) = &self.publishing {
                let kicked = p.claim.cancelled_owned();
                return self.serve_publisher(&mut session, &mut buf, kicked).await;
            }
            let n = self.read(&mut buf, setup_deadline).await?;
            self.input(&mut session, buf.get(..n).unwrap_or_default())
                .await?;
        }
    }

    /// The publishing phase: read and feed until the end. The stop signals
    /// and the idle timer live across reads (a read costs one wakeup, not
    /// three waiter registrations and a timer), and the idle timer is only
    /// re-armed when it fires.
    async fn serve_publisher(
        &mut self,
        session: &mut ServerSession,
        buf: &mut [u8],
        kicked: tokio_util::sync::WaitForCancellationFutureOwned,
    ) -> Result<(), End> {
        let shutdown = self.cancel.clone().cancelled_owned();
        tokio::pin!(shutdown, kicked);
        let mut last_data = tokio::time::Instant::now();
        let idle = tokio::time::sleep_until(last_data + IDLE_TIMEOUT);
        tokio::pin!(idle);
        loop {
            if self.closing {
                return Err(End::Refused);
            }
            let n = tokio::select! {
                () = &mut shutdown => return Err(End::Shutdown),
                () = &mut kicked => return Err(End::Kicked),
                () = &mut idle => {
                    let due = last_data + IDLE_TIMEOUT;
                    if tokio::time::Instant::now() >= due {
                        return Err(End::Timeout("publisher idle"));
                    }
                    idle.as_mut().reset(due);
                    continue;
                }
                r = self.socket.read(buf) => match r {
                    Ok(0) => return Err(End::Closed),
                    Ok(n) => n,
                    Err(e) => return Err(End::Error(format!("read: {e}"))),
                },
            };
            last_data = tokio::time::Instant::now();
            // deleteStream / FCUnpublish end the connection from `input`.
            self.input(session, buf.get(..n).unwrap_or_default())
                .await?;
        }
    }

    async fn input(&mut self, session: &mut ServerSession, data: &[u8]) -> Result<(), End> {
        if data.is_empty() {
            return Ok(());
        }
        self.received += data.len() as u64;
        if self.publishing.is_none() && !self.in_play && self.received > MAX_SETUP_BYTES {
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
                stream_id,
                ..
            } => self.play(session, request_id, app_name, stream_key, stream_id),
            ServerSessionEvent::PlayStreamFinished { .. } => {
                self.play_finished = true;
                Ok(Vec::new())
            }
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
        stream_id: u32,
    ) -> Result<Vec<ServerSessionResult>, End> {
        let peer = self.peer;
        // Players may append parameters (`code?token=..`): the code is the key.
        let code = stream_key.split('?').next().unwrap_or_default().to_string();
        if self.publishing.is_some() || self.playing.is_some() {
            return self.refuse(
                session,
                request_id,
                "NetStream.Play.Failed",
                "already publishing or playing on this connection",
            );
        }
        let Some(players) = self.players.clone() else {
            tracing::warn!(%app, key = %code, %peer, "rtmp play refused: play is not served on this listener");
            return self.refuse(
                session,
                request_id,
                "NetStream.Play.StreamNotFound",
                "play is not served here",
            );
        };
        let admission = match players.admit(PlayProtocol::Rtmp, &code) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%app, stream = %code, %peer, reason = %e, "rtmp play refused");
                return self.refuse(
                    session,
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    "no such stream",
                );
            }
        };
        let fanout = players.fanout(&code, &admission.buffer);
        tracing::info!(stream = %code, %app, %peer, "rtmp player connected");
        self.playing = Some(Playing {
            code,
            stream_id,
            fanout,
            gate: admission.cancel,
        });
        session
            .accept_request(request_id)
            .map_err(|e| End::Error(format!("rtmp: {e}")))
    }

    /// Send the stream to an admitted player until it leaves, the stream or
    /// its RTMP play stops, or the listener shuts down.
    async fn serve_player(
        &mut self,
        session: &mut ServerSession,
        buf: &mut [u8],
    ) -> Result<(), End> {
        let Some(p) = self.playing.take() else {
            return Ok(());
        };
        let peer = self.peer;
        self.in_play = true;
        let mut sent: u64 = 0;
        let mut lags: u64 = 0;
        let end = self.play_loop(session, buf, &p, &mut sent, &mut lags).await;
        let why = match &end {
            Ok(()) => "player left".to_string(),
            Err(End::Closed) => "player disconnected".to_string(),
            Err(End::Shutdown) => "listener shutting down".to_string(),
            Err(End::Kicked) => "stream stopped or rtmp play switched off".to_string(),
            Err(End::Timeout(w)) => format!("timeout: {w}"),
            Err(End::Refused) => "refused".to_string(),
            Err(End::Error(e)) => e.clone(),
        };
        tracing::info!(stream = %p.code, %peer, bytes = sent, lag_events = lags, reason = %why, "rtmp player left");
        end
    }

    async fn write_frames(
        &mut self,
        frames: &[Bytes],
        stream_id: u32,
        sent: &mut u64,
    ) -> Result<(), End> {
        let bufs: Vec<Bytes> = frames
            .iter()
            .map(|f| fanout::for_stream(f, stream_id))
            .collect();
        self.write_batch(&bufs, sent).await
    }

    async fn play_loop(
        &mut self,
        session: &mut ServerSession,
        buf: &mut [u8],
        p: &Playing,
        sent: &mut u64,
        lags: &mut u64,
    ) -> Result<(), End> {
        let Some(joined) = p.fanout.join() else {
            return Err(End::Kicked);
        };
        self.write_frames(&joined.backlog, p.stream_id, sent)
            .await?;
        let mut rx = joined.rx;
        // After a skip: drop frames until a keyframe, then re-send headers.
        let mut skipping = false;
        let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(End::Shutdown),
                () = p.gate.cancelled() => return Err(End::Kicked),
                r = self.socket.read(buf) => {
                    match r {
                        Ok(0) => return Err(End::Closed),
                        Ok(n) => {
                            let data = buf.get(..n).unwrap_or_default().to_vec();
                            self.input(session, &data).await?;
                            if self.play_finished {
                                return Ok(());
                            }
                            continue;
                        }
                        Err(e) => return Err(End::Error(format!("read: {e}"))),
                    }
                }
                r = rx.recv() => r,
            };
            // Everything already queued goes out in one vectored write.
            let mut next = Some(first.map_err(Some));
            while let Some(r) = next.take() {
                match r {
                    Ok(frames) => {
                        for frame in frames.iter() {
                            if skipping {
                                if !frame.key {
                                    continue;
                                }
                                skipping = false;
                                for h in p.fanout.headers() {
                                    batch.push(fanout::for_stream(&h, p.stream_id));
                                }
                            }
                            batch.push(fanout::for_stream(&frame.data, p.stream_id));
                        }
                        if batch.len() < MAX_BATCH {
                            next = Some(rx.try_recv().map_err(try_err));
                        }
                    }
                    Err(Some(RecvError::Lagged(n))) => {
                        *lags += 1;
                        p.fanout.record_lag(n);
                        skipping = true;
                        next = Some(rx.try_recv().map_err(try_err));
                    }
                    Err(Some(RecvError::Closed)) => {
                        self.write_batch(&batch, sent).await?;
                        return Err(End::Kicked);
                    }
                    // Nothing more queued right now.
                    Err(None) => {}
                }
            }
            self.write_batch(&batch, sent).await?;
            batch.clear();
        }
    }

    /// Write `bufs` with vectored writes (no copy), bounded by the write timeout.
    async fn write_batch(&mut self, bufs: &[Bytes], sent: &mut u64) -> Result<(), End> {
        let (mut idx, mut off) = (0usize, 0usize);
        while idx < bufs.len() {
            let slices: Vec<std::io::IoSlice<'_>> = bufs
                .iter()
                .skip(idx)
                .enumerate()
                .map(|(i, b)| {
                    std::io::IoSlice::new(if i == 0 {
                        b.get(off..).unwrap_or_default()
                    } else {
                        b
                    })
                })
                .collect();
            let n = match tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_vectored(&slices))
                .await
            {
                Ok(Ok(0)) => return Err(End::Error("write: connection closed".into())),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(End::Error(format!("write: {e}"))),
                Err(_) => return Err(End::Timeout("peer does not read")),
            };
            *sent += n as u64;
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
        Ok(())
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
