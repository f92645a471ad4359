//! RTMP pull: connect, `connect(app)`, `play(key)`, and mux what arrives.

use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Announced, FlvToTs};
use crate::emit::TsEmitter;
use crate::error::IngestError;
use crate::{Session, redact};

const READ_BUF: usize = 64 << 10;

/// Where to connect and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    app: String,
    /// Stream name (with any query string, which servers use for tokens).
    key: String,
    tc_url: String,
}

fn parse_target(raw: &str) -> Result<Target, IngestError> {
    let url = url::Url::parse(raw).map_err(|e| IngestError::config(format!("bad url: {e}")))?;
    let tls = match url.scheme() {
        "rtmp" => false,
        "rtmps" => true,
        other => return Err(IngestError::config(format!("not an rtmp url: {other}"))),
    };
    if tls {
        return Err(IngestError::config("rtmps pull is not supported yet"));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| IngestError::config("rtmp url without host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port().unwrap_or(1935);
    let path = url.path().trim_start_matches('/');
    let (app, key) = path
        .split_once('/')
        .filter(|(a, k)| !a.is_empty() && !k.is_empty())
        .ok_or_else(|| IngestError::config("rtmp url needs /app/stream"))?;
    let mut key = key.to_string();
    if let Some(q) = url.query() {
        key.push('?');
        key.push_str(q);
    }
    let tc_url = format!("rtmp://{}:{port}/{app}", url.host_str().unwrap_or_default());
    Ok(Target {
        host,
        port,
        app: app.to_string(),
        key,
        tc_url,
    })
}

struct Conn {
    socket: TcpStream,
    timeout: Duration,
}

impl Conn {
    async fn write(&mut self, data: &[u8]) -> Result<(), IngestError> {
        match tokio::time::timeout(self.timeout, self.socket.write_all(data)).await {
            Ok(r) => r.map_err(IngestError::from),
            Err(_) => Err(IngestError::timeout("server does not read")),
        }
    }

    /// Read some bytes. Cancellation is the worker's job (it drops this
    /// future), so a stop never looks like the source ending.
    async fn read(&mut self, buf: &mut [u8], what: &str) -> Result<usize, IngestError> {
        match tokio::time::timeout(self.timeout, self.socket.read(buf)).await {
            Err(_) => Err(IngestError::timeout(format!(
                "nothing received for {}s ({what})",
                self.timeout.as_secs()
            ))),
            Ok(Ok(0)) => Err(IngestError::ended(format!(
                "server closed the connection ({what})"
            ))),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(IngestError::from(e)),
        }
    }
}

/// One session of an RTMP pull input.
pub async fn run(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    let target = parse_target(s.url)?;
    let timeout = s.timeout();
    let shown = redact(s.url);
    let socket = match tokio::time::timeout(
        timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    {
        Err(_) => return Err(IngestError::timeout("connect timed out")),
        Ok(Err(e)) => return Err(IngestError::connect(format!("connect: {e}"))),
        Ok(Ok(sock)) => sock,
    };
    let _ = socket.set_nodelay(true);
    let mut conn = Conn { socket, timeout };
    let mut buf = vec![0u8; READ_BUF];

    // Handshake.
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake
        .generate_outbound_p0_and_p1()
        .map_err(|e| IngestError::protocol(format!("handshake: {e}")))?;
    conn.write(&c0c1).await?;
    let rest = loop {
        let n = conn.read(&mut buf, "handshake").await?;
        match handshake.process_bytes(buf.get(..n).unwrap_or_default()) {
            Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                conn.write(&response_bytes).await?;
            }
            Ok(HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            }) => {
                conn.write(&response_bytes).await?;
                break remaining_bytes;
            }
            Err(e) => return Err(IngestError::protocol(format!("handshake: {e}"))),
        }
    };

    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(target.tc_url.clone());
    let (mut session, initial) =
        ClientSession::new(config).map_err(|e| IngestError::protocol(format!("session: {e}")))?;
    let mut state = State {
        target: &target,
        sink: FlvToTs::new(),
        playing: false,
        stream: s.stream,
        priority: s.input.priority,
        shown: &shown,
    };
    let mut outbound = Vec::new();
    state.results(&mut session, initial, &mut outbound, out)?;
    let connect = session
        .request_connection(target.app.clone())
        .map_err(|e| IngestError::protocol(format!("connect request: {e}")))?;
    state.results(&mut session, vec![connect], &mut outbound, out)?;
    if !rest.is_empty() {
        let r = session
            .handle_input(&rest)
            .map_err(|e| IngestError::protocol(format!("rtmp: {e}")))?;
        state.results(&mut session, r, &mut outbound, out)?;
    }
    conn.write(&outbound).await?;
    outbound.clear();

    let result = loop {
        let what = if state.playing { "media" } else { "play setup" };
        let n = match conn.read(&mut buf, what).await {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        let r = match session.handle_input(buf.get(..n).unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => break Err(IngestError::protocol(format!("rtmp: {e}"))),
        };
        if let Err(e) = state.results(&mut session, r, &mut outbound, out) {
            break Err(e);
        }
        if !outbound.is_empty() {
            if let Err(e) = conn.write(&outbound).await {
                break Err(e);
            }
            outbound.clear();
        }
    };
    let _ = state.sink.flush(out);
    tracing::debug!(
        stream = s.stream, input = s.input.priority, url = %shown,
        messages = state.sink.messages, bad_messages = state.sink.bad_messages,
        "rtmp pull session over"
    );
    result
}

struct State<'a> {
    target: &'a Target,
    sink: FlvToTs,
    playing: bool,
    stream: &'a str,
    priority: u32,
    shown: &'a str,
}

impl State<'_> {
    fn results(
        &mut self,
        session: &mut ClientSession,
        results: Vec<ClientSessionResult>,
        outbound: &mut Vec<u8>,
        out: &mut TsEmitter,
    ) -> Result<(), IngestError> {
        let mut queue = std::collections::VecDeque::from(results);
        while let Some(r) = queue.pop_front() {
            match r {
                ClientSessionResult::OutboundResponse(p) => outbound.extend_from_slice(&p.bytes),
                ClientSessionResult::RaisedEvent(ev) => {
                    if let Some(more) = self.event(session, ev, out)? {
                        queue.push_front(more);
                    }
                }
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn event(
        &mut self,
        session: &mut ClientSession,
        ev: ClientSessionEvent,
        out: &mut TsEmitter,
    ) -> Result<Option<ClientSessionResult>, IngestError> {
        match ev {
            ClientSessionEvent::ConnectionRequestAccepted => {
                let r = session
                    .request_playback(self.target.key.clone())
                    .map_err(|e| IngestError::protocol(format!("play request: {e}")))?;
                return Ok(Some(r));
            }
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                return Err(IngestError::auth(format!(
                    "server refused connect to app \"{}\": {description}",
                    self.target.app
                )));
            }
            ClientSessionEvent::PlaybackRequestAccepted => {
                self.playing = true;
                tracing::info!(
                    stream = self.stream, input = self.priority, url = %self.shown,
                    "rtmp playback started"
                );
            }
            ClientSessionEvent::StreamMetadataReceived { metadata } => {
                self.sink.announce(Announced::from_metadata(&metadata));
            }
            ClientSessionEvent::VideoDataReceived { timestamp, data } => {
                self.sink.video(ts(timestamp), &data, out)?;
            }
            ClientSessionEvent::AudioDataReceived { timestamp, data } => {
                self.sink.audio(ts(timestamp), &data, out)?;
            }
            ClientSessionEvent::UnhandleableOnStatusCode { code } => status(&code)?,
            ClientSessionEvent::UnknownTransactionResultReceived {
                command_object,
                additional_values,
                ..
            } => {
                // `_error` answers to play arrive without a known transaction.
                for v in std::iter::once(&command_object).chain(additional_values.iter()) {
                    if let rml_rtmp::rml_amf0::Amf0Value::Object(props) = v
                        && let Some(rml_rtmp::rml_amf0::Amf0Value::Utf8String(code)) =
                            props.get("code")
                    {
                        status(code)?;
                        return Err(IngestError::protocol(format!("server error: {code}")));
                    }
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

fn ts(t: RtmpTimestamp) -> u32 {
    t.value
}

/// Map an `onStatus` code to an outcome.
fn status(code: &str) -> Result<(), IngestError> {
    match code {
        "NetStream.Play.StreamNotFound" | "NetStream.Play.BadName" => {
            Err(IngestError::not_found(format!("server: {code}")))
        }
        "NetStream.Play.Stop" | "NetStream.Play.Complete" | "NetStream.Play.UnpublishNotify" => {
            Err(IngestError::ended(format!("server: {code}")))
        }
        "NetStream.Play.Failed" | "NetStream.Failed" | "NetConnection.Connect.Rejected" => {
            Err(IngestError::protocol(format!("server: {code}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t =
            parse_target("rtmp://example.com/live/abc?token=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.host, "example.com");
        assert_eq!(t.port, 1935);
        assert_eq!(t.app, "live");
        assert_eq!(t.key, "abc?token=1");
        assert_eq!(t.tc_url, "rtmp://example.com:1935/live");
        let t =
            parse_target("rtmp://127.0.0.1:19350/app/inst/name").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t.port, t.app.as_str(), t.key.as_str()),
            (19350, "app", "inst/name")
        );
        assert!(parse_target("rtmp://host/onlyapp").is_err());
        assert!(parse_target("rtmp:///live/x").is_err());
    }

    #[test]
    fn status_codes() {
        assert_eq!(
            status("NetStream.Play.StreamNotFound").map_err(|e| e.kind),
            Err(crate::ErrorKind::NotFound)
        );
        assert_eq!(
            status("NetStream.Play.UnpublishNotify").map_err(|e| e.kind),
            Err(crate::ErrorKind::Ended)
        );
        assert!(status("NetStream.Play.Reset").is_ok());
    }
}
