//! RTSP/1.0 messages (RFC 2326), sans-IO.
//!
//! [`parse_message`] reads what a server receives on a control connection:
//! requests and interleaved binary frames (`$`, channel, 16-bit length:
//! RTCP receiver reports of TCP players). [`parse_response`] reads what a
//! client receives. Both take any prefix of the input: `Ok(None)` means
//! "need more bytes", never an error; an error means the bytes can never
//! become a valid message (the connection should answer 400 and close).
//!
//! Limits keep a peer from making the server buffer without bound: the head
//! (request line + headers) is at most [`MAX_HEAD`] bytes with at most
//! [`MAX_HEADERS`] header lines, a body at most [`MAX_BODY`] bytes.

use bytes::Bytes;

/// Largest request/status line + headers, bytes.
pub const MAX_HEAD: usize = 16 << 10;
/// Most header lines in one message.
pub const MAX_HEADERS: usize = 64;
/// Largest body (`Content-Length`), bytes.
pub const MAX_BODY: usize = 64 << 10;

/// Why bytes cannot be a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message head longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("body longer than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("malformed header line")]
    BadHeader,
    #[error("bad Content-Length")]
    BadContentLength,
    #[error("message head is not UTF-8")]
    NotText,
}

/// RTSP methods.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Options,
    Describe,
    Setup,
    Play,
    Pause,
    Teardown,
    GetParameter,
    SetParameter,
    Announce,
    Record,
    Redirect,
    /// Any other token.
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Self {
        match s {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "ANNOUNCE" => Method::Announce,
            "RECORD" => Method::Record,
            "REDIRECT" => Method::Redirect,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Announce => "ANNOUNCE",
            Method::Record => "RECORD",
            Method::Redirect => "REDIRECT",
            Method::Other(s) => s,
        }
    }
}

/// Header lines in order; names compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    /// As sent, e.g. `RTSP/1.0`.
    pub version: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// Why a `CSeq` header is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CSeqError {
    Missing,
    Invalid,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The `CSeq` header as a number.
    pub fn cseq(&self) -> Result<u32, CSeqError> {
        let v = self.header("CSeq").ok_or(CSeqError::Missing)?;
        v.trim().parse().map_err(|_| CSeqError::Invalid)
    }

    /// The session id of the `Session` header (without `;timeout=`).
    pub fn session(&self) -> Option<&str> {
        self.header("Session")
            .map(|v| v.split(';').next().unwrap_or_default().trim())
            .filter(|s| !s.is_empty())
    }

    /// Serialize (for clients and tests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method.as_str(), self.uri, self.version);
        for (n, v) in &self.headers.0 {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() && self.header("Content-Length").is_none() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// The standard reason phrase of an RTSP status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        _ => "Unknown",
    }
}

impl Response {
    /// A response with the standard reason phrase and a `CSeq` header
    /// (omitted when `cseq` is `None`).
    pub fn new(status: u16, cseq: Option<u32>) -> Self {
        let mut headers = Headers::default();
        if let Some(c) = cseq {
            headers.push("CSeq", c.to_string());
        }
        Self {
            status,
            reason: reason(status).to_string(),
            headers,
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }

    pub fn with_body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.headers.push("Content-Type", content_type);
        self.body = body.into();
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("RTSP/1.0 {} {}\r\n", self.status, self.reason);
        for (n, v) in &self.headers.0 {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// One binary frame on the control connection (`$`, channel, length, data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interleaved {
    pub channel: u8,
    pub data: Bytes,
}

/// What a server reads on a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Interleaved(Interleaved),
}

/// The 4-byte header of an interleaved frame carrying `len` bytes.
pub fn interleaved_header(channel: u8, len: usize) -> [u8; 4] {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    [b'$', channel, len[0], len[1]]
}

/// Bytes of blank lines before a message (tolerated, skipped).
fn leading_blank(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// End of the head: offset just past the blank line, or `None` if not there yet.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf
        .get(i..)
        .and_then(|b| b.iter().position(|c| *c == b'\n'))
    {
        let nl = i + off;
        let next = nl + 1;
        match buf.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            Some(b'\r') => {}
            Some(_) => {}
            None => return None,
        }
        i = next;
    }
    None
}

/// Split a head into its first line and header lines (folded lines joined).
fn parse_head(head: &[u8]) -> Result<(String, Headers), ParseError> {
    let text = std::str::from_utf8(head).map_err(|_| ParseError::NotText)?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    let mut headers = Headers::default();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let (_, v) = headers.0.last_mut().ok_or(ParseError::BadHeader)?;
            v.push(' ');
            v.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::BadHeader)?;
        let name = name.trim();
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(ParseError::BadHeader);
        }
        if headers.0.len() >= MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        headers.push(name, value.trim());
    }
    Ok((first, headers))
}

fn content_length(headers: &Headers) -> Result<usize, ParseError> {
    match headers.get("Content-Length") {
        None => Ok(0),
        Some(v) => {
            let n: usize = v.trim().parse().map_err(|_| ParseError::BadContentLength)?;
            if n > MAX_BODY {
                return Err(ParseError::BodyTooLarge);
            }
            Ok(n)
        }
    }
}

/// Head + body of the next message in `buf` (after `skip` blank bytes):
/// `(first line, headers, body, total consumed)`.
fn parse_generic(buf: &[u8]) -> Result<Option<(String, Headers, Bytes, usize)>, ParseError> {
    let skip = leading_blank(buf);
    let rest = buf.get(skip..).unwrap_or_default();
    let Some(end) = head_end(rest) else {
        if rest.len() > MAX_HEAD {
            return Err(ParseError::HeadTooLarge);
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(ParseError::HeadTooLarge);
    }
    let (first, headers) = parse_head(rest.get(..end).unwrap_or_default())?;
    let len = content_length(&headers)?;
    let Some(body) = rest.get(end..end + len) else {
        return Ok(None);
    };
    Ok(Some((
        first,
        headers,
        Bytes::copy_from_slice(body),
        skip + end + len,
    )))
}

/// The next request or interleaved frame in `buf`, and how many bytes it used.
pub fn parse_message(buf: &[u8]) -> Result<Option<(Message, usize)>, ParseError> {
    if buf.first() == Some(&b'$') {
        let Some(&[_, channel, hi, lo]) = buf.get(..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(data) = buf.get(4..4 + len) else {
            return Ok(None);
        };
        return Ok(Some((
            Message::Interleaved(Interleaved {
                channel,
                data: Bytes::copy_from_slice(data),
            }),
            4 + len,
        )));
    }
    let skip = leading_blank(buf);
    if skip > 0 && buf.get(skip) == Some(&b'$') {
        // Blank lines between a request and a frame: drop them first.
        return parse_message(buf.get(skip..).unwrap_or_default())
            .map(|r| r.map(|(m, n)| (m, n + skip)));
    }
    let Some((first, headers, body, used)) = parse_generic(buf)? else {
        return Ok(None);
    };
    let mut parts = first.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine);
    };
    if !version.starts_with("RTSP/") || !method.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::BadRequestLine);
    }
    Ok(Some((
        Message::Request(Request {
            method: Method::parse(method),
            uri: uri.to_string(),
            version: version.to_string(),
            headers,
            body,
        }),
        used,
    )))
}

/// The next response in `buf` and how many bytes it used. Interleaved
/// frames before it are not skipped (use [`parse_interleaved`] first).
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, ParseError> {
    let Some((first, headers, body, used)) = parse_generic(buf)? else {
        return Ok(None);
    };
    let mut parts = first.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ParseError::BadStatusLine);
    };
    if !version.starts_with("RTSP/") {
        return Err(ParseError::BadStatusLine);
    }
    let status: u16 = code.parse().map_err(|_| ParseError::BadStatusLine)?;
    Ok(Some((
        Response {
            status,
            reason: parts.next().unwrap_or_default().to_string(),
            headers,
            body,
        },
        used,
    )))
}

/// An interleaved frame at the start of `buf` (`Ok(None)`: need more, or
/// `buf` does not start with `$`; check `buf[0]`).
pub fn parse_interleaved(buf: &[u8]) -> Option<(Interleaved, usize)> {
    if buf.first() != Some(&b'$') {
        return None;
    }
    match parse_message(buf) {
        Ok(Some((Message::Interleaved(i), n))) => Some((i, n)),
        _ => None,
    }
}

/// Lower transport of a `Transport` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lower {
    Udp,
    Tcp,
}

/// One transport spec of a `Transport` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// `RTP/AVP` (the only profile served) or what the client asked.
    pub profile: String,
    pub lower: Lower,
    pub multicast: bool,
    pub interleaved: Option<(u8, u8)>,
    pub client_port: Option<(u16, u16)>,
    /// `mode=` value if present (upper-cased, quotes removed).
    pub mode: Option<String>,
}

fn pair<T: std::str::FromStr + Copy>(v: &str) -> Option<(T, Option<T>)> {
    let mut it = v.splitn(2, '-');
    let a = it.next()?.trim().parse().ok()?;
    let b = match it.next() {
        Some(b) => Some(b.trim().parse().ok()?),
        None => None,
    };
    Some((a, b))
}

impl Transport {
    /// Every spec of a `Transport` header value, in the client's order of
    /// preference; specs that do not parse are left out.
    pub fn parse_list(value: &str) -> Vec<Transport> {
        value.split(',').filter_map(Self::parse).collect()
    }

    /// One spec (`RTP/AVP/TCP;unicast;interleaved=0-1`).
    pub fn parse(spec: &str) -> Option<Transport> {
        let mut params = spec.split(';').map(str::trim);
        let proto = params.next()?.to_ascii_uppercase();
        let mut parts = proto.split('/');
        let (Some(p1), Some(p2)) = (parts.next(), parts.next()) else {
            return None;
        };
        let lower = match parts.next() {
            None | Some("UDP") => Lower::Udp,
            Some("TCP") => Lower::Tcp,
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        let mut t = Transport {
            profile: format!("{p1}/{p2}"),
            lower,
            multicast: false,
            interleaved: None,
            client_port: None,
            mode: None,
        };
        for p in params {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "multicast" => t.multicast = true,
                "unicast" => t.multicast = false,
                "interleaved" => {
                    let (a, b) = pair::<u8>(v)?;
                    t.interleaved = Some((a, b.unwrap_or(a.saturating_add(1))));
                }
                "client_port" => {
                    let (a, b) = pair::<u16>(v)?;
                    t.client_port = Some((a, b.unwrap_or(a.saturating_add(1))));
                }
                "mode" => t.mode = Some(v.trim().trim_matches('"').to_ascii_uppercase()),
                _ => {}
            }
        }
        Some(t)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(s: &str) -> (Request, usize) {
        match parse_message(s.as_bytes()).unwrap().unwrap() {
            (Message::Request(r), n) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    /// ffmpeg 5.1's DESCRIBE (its header set and order).
    const FFMPEG_DESCRIBE: &str = "DESCRIBE rtsp://127.0.0.1:8554/live/demo RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\n\r\n";

    #[test]
    fn parses_a_real_request_in_any_chunking() {
        let (r, n) = req(FFMPEG_DESCRIBE);
        assert_eq!(n, FFMPEG_DESCRIBE.len());
        assert_eq!(r.method, Method::Describe);
        assert_eq!(r.uri, "rtsp://127.0.0.1:8554/live/demo");
        assert_eq!(r.cseq(), Ok(2));
        assert_eq!(r.header("accept"), Some("application/sdp"));
        for cut in 0..FFMPEG_DESCRIBE.len() {
            assert_eq!(
                parse_message(&FFMPEG_DESCRIBE.as_bytes()[..cut]),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    /// The first request of ffprobe 5.1 and of GStreamer 1.22's rtspsrc,
    /// captured on a loopback socket.
    #[test]
    fn captured_client_requests() {
        let ffmpeg = b"OPTIONS rtsp://127.0.0.1:44059/live/demo RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n";
        let gst = b"OPTIONS rtsp://127.0.0.1:35363/live/demo RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: GStreamer/1.22.0\r\nUser-Agent: RealMedia Player Version 6.0.9.1235 (linux-2.0-libc6-i386-gcc2.95)\r\nClientChallenge: 9e26d33f2984236010ef6253fb1887f7\r\nCompanyID: KnKV4M4I/B2FjJ1TToLycw==\r\nGUID: 00000000-0000-0000-0000-000000000000\r\nRegionData: 0\r\nPlayerStarttime: [28/03/2003:22:50:23 00:00]\r\nClientID: Linux_2.4_6.0.9.1235_play32_RN01_EN_586\r\nDate: Sat, 21 Nov 2026 13:44:23 GMT\r\n\r\n";
        for raw in [&ffmpeg[..], &gst[..]] {
            let Ok(Some((Message::Request(r), n))) = parse_message(raw) else {
                panic!("{}", String::from_utf8_lossy(raw));
            };
            assert_eq!(n, raw.len());
            assert_eq!(r.method, Method::Options);
            assert_eq!(r.cseq(), Ok(1));
            assert!(r.uri.ends_with("/live/demo"));
        }
        let Ok(Some((Message::Request(r), _))) = parse_message(gst) else {
            panic!("gst");
        };
        // Repeated headers are kept in order; the first one wins.
        assert_eq!(r.header("user-agent"), Some("GStreamer/1.22.0"));
        assert_eq!(r.headers.0.len(), 10);
        assert_eq!(
            r.header("PlayerStarttime"),
            Some("[28/03/2003:22:50:23 00:00]")
        );
    }

    #[test]
    fn body_and_pipelining() {
        let two = "SET_PARAMETER rtsp://h/live/a RTSP/1.0\r\nCSeq: 5\r\nSession: abc;timeout=60\r\nContent-Length: 4\r\n\r\nx: 1GET_PARAMETER rtsp://h/live/a RTSP/1.0\r\nCSeq: 6\r\n\r\n";
        let (r, n) = req(two);
        assert_eq!(&r.body[..], b"x: 1");
        assert_eq!(r.session(), Some("abc"));
        let (r2, _) = req(&two[n..]);
        assert_eq!(r2.method, Method::GetParameter);
        assert_eq!(r2.cseq(), Ok(6));
        assert_eq!(parse_message(&two.as_bytes()[..n - 1]), Ok(None));
    }

    #[test]
    fn interleaved_frames() {
        let mut b = vec![b'$', 1, 0, 3, 9, 8, 7];
        b.extend_from_slice(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        let (m, n) = parse_message(&b).unwrap().unwrap();
        assert_eq!(
            m,
            Message::Interleaved(Interleaved {
                channel: 1,
                data: Bytes::from_static(&[9, 8, 7])
            })
        );
        assert_eq!(n, 7);
        assert!(matches!(
            parse_message(&b[n..]),
            Ok(Some((Message::Request(_), _)))
        ));
        assert_eq!(parse_message(&b[..5]), Ok(None));
        assert_eq!(interleaved_header(2, 300), [b'$', 2, 1, 44]);
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            parse_message(b"\x16\x03\x01 garbage\r\n\r\n"),
            Err(ParseError::BadRequestLine)
        );
        assert_eq!(
            parse_message(b"GET / HTTP/1.1\r\n\r\n"),
            Err(ParseError::BadRequestLine)
        );
        assert_eq!(
            parse_message(b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n"),
            Err(ParseError::BadHeader)
        );
        let huge = format!("OPTIONS * RTSP/1.0\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(
            parse_message(huge.as_bytes()),
            Err(ParseError::HeadTooLarge)
        );
        let many: String = (0..100).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(
            parse_message(format!("OPTIONS * RTSP/1.0\r\n{many}\r\n").as_bytes()),
            Err(ParseError::TooManyHeaders)
        );
        assert_eq!(
            parse_message(b"OPTIONS * RTSP/1.0\r\nContent-Length: 99999999\r\n\r\n"),
            Err(ParseError::BodyTooLarge)
        );
        assert_eq!(
            parse_message(b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n"),
            Err(ParseError::BadContentLength)
        );
        let (r, _) = req("OPTIONS * RTSP/1.0\r\nCSeq: x\r\n\r\n");
        assert_eq!(r.cseq(), Err(CSeqError::Invalid));
        let (r, _) = req("OPTIONS * RTSP/1.0\r\n\r\n");
        assert_eq!(r.cseq(), Err(CSeqError::Missing));
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::new(200, Some(3))
            .header("Session", "12;timeout=60")
            .with_body("application/sdp", "v=0\r\n");
        let bytes = r.to_bytes();
        let (p, n) = parse_response(&bytes).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(p.status, 200);
        assert_eq!(p.reason, "OK");
        assert_eq!(p.get("cseq"), Some("3"));
        assert_eq!(&p.body[..], b"v=0\r\n");
        assert_eq!(parse_response(&bytes[..bytes.len() - 1]), Ok(None));
    }

    #[test]
    fn transports() {
        // ffmpeg UDP, ffmpeg TCP, GStreamer's list.
        let t = Transport::parse_list("RTP/AVP/UDP;unicast;client_port=32768-32769");
        assert_eq!(t[0].lower, Lower::Udp);
        assert_eq!(t[0].client_port, Some((32768, 32769)));
        let t = Transport::parse_list("RTP/AVP/TCP;unicast;interleaved=0-1");
        assert_eq!(t[0].lower, Lower::Tcp);
        assert_eq!(t[0].interleaved, Some((0, 1)));
        let t = Transport::parse_list(
            "RTP/AVP;unicast;client_port=5000-5001;mode=\"PLAY\",RTP/AVP/TCP;unicast;interleaved=2-3",
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].mode.as_deref(), Some("PLAY"));
        assert_eq!(t[1].interleaved, Some((2, 3)));
        assert!(Transport::parse_list("RTP/AVP;client_port=x").is_empty());
        assert!(Transport::parse_list("RAW/RAW/SCTP").is_empty());
    }
}
