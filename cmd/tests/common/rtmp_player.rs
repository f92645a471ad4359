//! An in-process RTMP player (rml_rtmp client session) for tests and
//! benchmarks: connects, plays `app/key` and records what arrives.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes received by all players of this process (for benchmarks).
pub static BYTES: AtomicU64 = AtomicU64::new(0);

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What one player received.
#[derive(Debug, Default, Clone)]
pub struct Played {
    /// Video messages that are frames (not sequence headers): (timestamp ms, keyframe, arrival).
    pub video: Vec<(u32, bool, Instant)>,
    pub audio_frames: usize,
    pub video_headers: usize,
    pub audio_headers: usize,
    pub metadata: usize,
    pub bytes: u64,
    /// Why it ended (EOF, error, refusal, cancelled).
    pub end: String,
    pub accepted: bool,
}

async fn write_results(
    sock: &mut TcpStream,
    results: Vec<ClientSessionResult>,
    events: &mut Vec<ClientSessionEvent>,
) -> std::io::Result<()> {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => sock.write_all(&p.bytes).await?,
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    Ok(())
}

/// Play `rtmp://addr/app/key` until the server closes, `stop` fires, or
/// `stall_after` frames arrived (then the socket is kept but never read).
pub async fn play(
    addr: SocketAddr,
    app: &str,
    key: &str,
    stop: CancellationToken,
    stall_after: Option<usize>,
) -> Played {
    let mut out = Played::default();
    match play_inner(addr, app, key, &stop, stall_after, &mut out).await {
        Ok(why) => out.end = why,
        Err(e) => out.end = format!("error: {e}"),
    }
    out
}

async fn play_inner(
    addr: SocketAddr,
    app: &str,
    key: &str,
    stop: &CancellationToken,
    stall_after: Option<usize>,
    out: &mut Played,
) -> Result<String, String> {
    let mut sock = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = sock.set_nodelay(true);
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| format!("{e:?}"))?;
    sock.write_all(&p0p1).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 << 10];
    let rest = loop {
        let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during handshake".into());
        }
        match hs.process_bytes(&buf[..n]).map_err(|e| format!("{e:?}"))? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                break remaining_bytes;
            }
        }
    };
    let (mut session, initial) =
        ClientSession::new(ClientSessionConfig::new()).map_err(|e| format!("{e:?}"))?;
    let mut events = Vec::new();
    write_results(&mut sock, initial, &mut events)
        .await
        .map_err(|e| e.to_string())?;
    let r = session
        .request_connection(app.to_string())
        .map_err(|e| format!("{e:?}"))?;
    write_results(&mut sock, vec![r], &mut events)
        .await
        .map_err(|e| e.to_string())?;
    let mut pending = rest;
    loop {
        if !pending.is_empty() {
            let results = session
                .handle_input(&pending)
                .map_err(|e| format!("{e:?}"))?;
            pending.clear();
            write_results(&mut sock, results, &mut events)
                .await
                .map_err(|e| e.to_string())?;
        }
        for ev in std::mem::take(&mut events) {
            match ev {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let r = session
                        .request_playback(key.to_string())
                        .map_err(|e| format!("{e:?}"))?;
                    write_results(&mut sock, vec![r], &mut events)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Ok(format!("connect rejected: {description}"));
                }
                ClientSessionEvent::PlaybackRequestAccepted => out.accepted = true,
                ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                    // Play.Reset / Play.Start are informational.
                    if code.contains("Reset") || code.contains("Start") {
                        out.accepted = true;
                    } else {
                        return Ok(format!("status {code}"));
                    }
                }
                ClientSessionEvent::StreamMetadataReceived { .. } => out.metadata += 1,
                ClientSessionEvent::VideoDataReceived {
                    data, timestamp, ..
                } => {
                    // FLV video body: byte 1 = AVC packet type (0 = sequence header).
                    if data.get(1) == Some(&0) {
                        out.video_headers += 1;
                    } else {
                        let key = data.first().is_some_and(|b| b >> 4 == 1);
                        out.video.push((timestamp.value, key, Instant::now()));
                    }
                }
                ClientSessionEvent::AudioDataReceived { data, .. } => {
                    if data.get(1) == Some(&0) {
                        out.audio_headers += 1;
                    } else {
                        out.audio_frames += 1;
                    }
                }
                _ => {}
            }
        }
        if stall_after.is_some_and(|n| out.video.len() >= n) {
            // Keep the connection open without reading until told to stop.
            stop.cancelled().await;
            return Ok("stalled".into());
        }
        let n = tokio::select! {
            () = stop.cancelled() => return Ok("cancelled".into()),
            r = tokio::time::timeout(Duration::from_secs(20), sock.read(&mut buf)) => match r {
                Err(_) => return Ok("idle".into()),
                Ok(Err(e)) => return Err(e.to_string()),
                Ok(Ok(0)) => return Ok("eof".into()),
                Ok(Ok(n)) => n,
            },
        };
        out.bytes += n as u64;
        BYTES.fetch_add(n as u64, Ordering::Relaxed);
        pending.extend_from_slice(&buf[..n]);
    }
}
