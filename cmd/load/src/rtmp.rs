//! RTMP play reader (rml_rtmp client session).

use std::time::Instant;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Plan;
use crate::account::{Reader, TimestampGaps};

/// `rtmp://host[:port]/app/key` → (host:port, app, key).
pub fn parse_url(url: &str) -> Result<(String, String, String), String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if u.scheme() != "rtmp" {
        return Err(format!("{url}: not an rtmp:// URL"));
    }
    let host = u.host_str().ok_or_else(|| format!("{url}: no host"))?;
    let port = u.port().unwrap_or(1935);
    let path = u.path().trim_start_matches('/');
    let (app, key) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{url}: expected /app/key"))?;
    Ok((format!("{host}:{port}"), app.to_string(), key.to_string()))
}

async fn send(
    sock: &mut TcpStream,
    results: Vec<ClientSessionResult>,
    events: &mut Vec<ClientSessionEvent>,
) -> Result<(), String> {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => {
                sock.write_all(&p.bytes).await.map_err(|e| e.to_string())?;
            }
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    Ok(())
}

/// Play until `plan.stop`; `stall`: stop reading after the first video frame.
pub async fn play(addr: &str, app: &str, key: &str, plan: &Plan, stall: bool) -> Reader {
    let mut out = Reader {
        stalled: stall,
        ..Reader::default()
    };
    out.end = match run(addr, app, key, plan, stall, &mut out).await {
        Ok(why) => why.to_string(),
        Err(e) => format!("error: {e}"),
    };
    out
}

async fn run(
    addr: &str,
    app: &str,
    key: &str,
    plan: &Plan,
    stall: bool,
    out: &mut Reader,
) -> Result<&'static str, String> {
    let mut sock = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| format!("{e:?}"))?;
    sock.write_all(&p0p1).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 32 << 10];
    let mut pending = loop {
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
    send(&mut sock, initial, &mut events).await?;
    let r = session
        .request_connection(app.to_string())
        .map_err(|e| format!("{e:?}"))?;
    send(&mut sock, vec![r], &mut events).await?;
    let mut gaps = TimestampGaps::new(plan.frame_ms);
    let mut arrived = Instant::now();
    loop {
        if !pending.is_empty() {
            let results = session
                .handle_input(&pending)
                .map_err(|e| format!("{e:?}"))?;
            pending.clear();
            send(&mut sock, results, &mut events).await?;
        }
        let mut got_frame = false;
        for ev in std::mem::take(&mut events) {
            match ev {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let r = session
                        .request_playback(key.to_string())
                        .map_err(|e| format!("{e:?}"))?;
                    send(&mut sock, vec![r], &mut events).await?;
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(format!("connect rejected: {description}"));
                }
                ClientSessionEvent::PlaybackRequestAccepted => out.connected = true,
                ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                    // Play.Reset / Play.Start are informational.
                    if code.contains("Reset") || code.contains("Start") {
                        out.connected = true;
                    } else {
                        return Err(format!("status {code}"));
                    }
                }
                // FLV video tag body: byte 1 is the AVC packet type
                // (0 = sequence header, not a frame).
                ClientSessionEvent::VideoDataReceived {
                    data, timestamp, ..
                } if data.get(1) != Some(&0) => {
                    out.connected = true;
                    got_frame = true;
                    let ts = timestamp.value;
                    let lost = gaps.push(ts);
                    out.lost_at(lost, arrived, &plan.window);
                    out.frame_at(Some(f64::from(ts)), arrived, plan.epoch, &plan.window);
                }
                _ => {}
            }
        }
        if stall && got_frame {
            // Keep the connection open without reading.
            plan.stop.cancelled().await;
            return Ok("stalled");
        }
        let n = tokio::select! {
            () = plan.stop.cancelled() => return Ok("cancelled"),
            r = tokio::time::timeout(plan.idle, sock.read(&mut buf)) => match r {
                Err(_) => return Err("no data (idle)".into()),
                Ok(Err(e)) => return Err(e.to_string()),
                Ok(Ok(0)) => return Ok("eof"),
                Ok(Ok(n)) => n,
            },
        };
        arrived = Instant::now();
        out.bytes_at(n, arrived, &plan.window);
        pending.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("rtmp://127.0.0.1:1936/live/fan"),
            Ok(("127.0.0.1:1936".into(), "live".into(), "fan".into()))
        );
        assert_eq!(
            parse_url("rtmp://h/a/b/key"),
            Ok(("h:1935".into(), "a/b".into(), "key".into()))
        );
        assert!(parse_url("rtmp://h/key").is_err());
        assert!(parse_url("http://h/a/b").is_err());
    }
}
