//! RTMP play reader (rml_rtmp's client state machine).

use std::time::Instant;

use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
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
    let pending = loop {
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
    let (mut client, initial) =
        ClientSession::new(ClientSessionConfig::new()).map_err(|e| format!("{e:?}"))?;
    let mut events = Vec::new();
    send(&mut sock, initial, &mut events).await?;
    let r = client
        .request_connection(app.to_string())
        .map_err(|e| format!("{e:?}"))?;
    send(&mut sock, vec![r], &mut events).await?;
    let mut media = Media {
        gaps: TimestampGaps::new(plan.frame_ms),
        got_frame: false,
    };
    // Inbound chunks are parsed here: media messages are counted directly
    // (whatever message stream they come on: some servers do not use the
    // id createStream answered), everything else is re-serialized
    // (uncompressed) and handed to the rml_rtmp client, which runs the
    // connect / createStream / play exchange.
    let mut inbound = ChunkDeserializer::new();
    let mut to_client = ChunkSerializer::new();
    let mut arrived = Instant::now();
    // Bytes read last (first: what followed the handshake).
    let mut filled = pending.len();
    if filled > buf.len() {
        buf.resize(filled, 0);
    }
    buf[..filled].copy_from_slice(&pending);
    loop {
        media.got_frame = false;
        let mut fresh: &[u8] = &buf[..filled];
        while let Some(msg) = inbound
            .get_next_message(fresh)
            .map_err(|e| format!("{e:?}"))?
        {
            fresh = &[];
            match msg.type_id {
                VIDEO => media.video(msg.timestamp.value, &msg.data, arrived, plan, out),
                AUDIO => {}
                AGGREGATE => media.aggregate(&msg.data, arrived, plan, out),
                _ => {
                    let packet = if msg.type_id == SET_CHUNK_SIZE {
                        let size = msg
                            .data
                            .get(..4)
                            .map(|b| u32::from_be_bytes([b[0] & 0x7F, b[1], b[2], b[3]]))
                            .ok_or("short SetChunkSize")?;
                        inbound
                            .set_max_chunk_size(size as usize)
                            .map_err(|e| format!("{e:?}"))?;
                        to_client
                            .set_max_chunk_size(size, msg.timestamp)
                            .map_err(|e| format!("{e:?}"))?
                    } else {
                        to_client
                            .serialize(&msg, true, false)
                            .map_err(|e| format!("{e:?}"))?
                    };
                    let results = client
                        .handle_input(&packet.bytes)
                        .map_err(|e| format!("{e:?}"))?;
                    send(&mut sock, results, &mut events).await?;
                }
            }
        }
        for ev in std::mem::take(&mut events) {
            match ev {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let r = client
                        .request_playback(key.to_string())
                        .map_err(|e| format!("{e:?}"))?;
                    send(&mut sock, vec![r], &mut events).await?;
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(format!("connect rejected: {description}"));
                }
                ClientSessionEvent::PlaybackRequestAccepted => out.connected = true,
                ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                    // Play.Reset / Play.Start / Play.PublishNotify are
                    // informational; failures end the reader.
                    if ["Failed", "NotFound", "Rejected", "BadName"]
                        .iter()
                        .any(|bad| code.contains(bad))
                    {
                        return Err(format!("status {code}"));
                    }
                    if code.contains("Reset") || code.contains("Start") {
                        out.connected = true;
                    }
                }
                _ => {}
            }
        }
        if stall && media.got_frame {
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
        filled = n;
    }
}

const SET_CHUNK_SIZE: u8 = 1;
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const AGGREGATE: u8 = 22;

/// Video accounting of one reader.
struct Media {
    gaps: TimestampGaps,
    got_frame: bool,
}

impl Media {
    /// A video message: FLV video tag body; byte 1 is the AVC packet type
    /// (0 = sequence header, not a frame).
    fn video(&mut self, ts: u32, data: &[u8], at: Instant, plan: &Plan, out: &mut Reader) {
        if data.len() < 2 || data[1] == 0 {
            return;
        }
        out.connected = true;
        self.got_frame = true;
        let lost = self.gaps.push(ts);
        out.lost_at(lost, at, &plan.window);
        if plan.window.contains(at) {
            out.frames_missing += lost;
        }
        out.frame_at(Some(f64::from(ts)), at, plan.epoch, &plan.window);
    }

    /// An aggregate message: FLV tags (11-byte header, body, 4-byte size).
    fn aggregate(&mut self, mut data: &[u8], at: Instant, plan: &Plan, out: &mut Reader) {
        while data.len() >= 11 {
            let kind = data[0] & 0x1F;
            let size =
                usize::from(data[1]) << 16 | usize::from(data[2]) << 8 | usize::from(data[3]);
            let ts = u32::from(data[7]) << 24
                | u32::from(data[4]) << 16
                | u32::from(data[5]) << 8
                | u32::from(data[6]);
            let Some(body) = data.get(11..11 + size) else {
                return;
            };
            if kind == VIDEO {
                self.video(ts, body, at, plan, out);
            }
            data = data.get(11 + size + 4..).unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Window;
    use std::time::Duration;

    /// One FLV tag: header, body, previous-tag size.
    fn tag(kind: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut t = vec![kind, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        t.extend_from_slice(&[
            (ts >> 16) as u8,
            (ts >> 8) as u8,
            ts as u8,
            (ts >> 24) as u8,
        ]);
        t.extend_from_slice(&[0, 0, 0]);
        t.extend_from_slice(body);
        t.extend_from_slice(&((11 + n) as u32).to_be_bytes());
        t
    }

    #[test]
    fn video_in_aggregate_messages_counts_frames_and_gaps() {
        let epoch = Instant::now();
        let plan = Plan {
            epoch,
            window: Window {
                start: epoch,
                end: epoch + Duration::from_secs(60),
            },
            frame_ms: 40.0,
            stop: tokio_util::sync::CancellationToken::new(),
            idle: Duration::from_secs(1),
        };
        let mut m = Media {
            gaps: TimestampGaps::new(40.0),
            got_frame: false,
        };
        let mut out = Reader::default();
        let mut agg = tag(VIDEO, 1000, &[0x17, 0, 0, 0, 0]); // sequence header
        agg.extend(tag(VIDEO, 1000, &[0x17, 1, 0, 0, 0, 0xAA]));
        agg.extend(tag(AUDIO, 1010, &[0xAF, 1, 0x21]));
        // 1000 -> 1120: two frames missing; extended timestamp byte used.
        agg.extend(tag(VIDEO, 1120, &[0x27, 1, 0, 0, 0, 0xBB]));
        agg.extend(tag(VIDEO, 0x0100_0000, &[0x27, 1, 0, 0, 0]));
        let at = epoch + Duration::from_millis(5);
        m.aggregate(&agg, at, &plan, &mut out);
        assert!(m.got_frame && out.connected);
        assert_eq!((out.frames, out.lost), (3, 2));
        // Truncated data is ignored, not misread.
        m.aggregate(&agg[..20], at, &plan, &mut out);
        assert_eq!(out.frames, 3);
    }

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
