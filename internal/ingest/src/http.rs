//! HTTP plumbing shared by the HTTP-TS, HLS and S3 readers: a client with the
//! input's headers and credentials, status → [`ErrorKind`] mapping, and body
//! streaming with an inactivity timeout.
//!
//! Credentials never reach a log or an error message: they are taken out of
//! the URL before any request, and reqwest errors are stripped of their URL.
//! Basic auth is only sent to the origin of the input URL (an HLS playlist
//! may point at segments on another host); custom headers go everywhere.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RANGE};
use reqwest::{Response, StatusCode};
use url::Url;

use crate::Session;
use crate::error::{ErrorKind, IngestError};

pub(crate) const USER_AGENT: &str = concat!("open-streamer/", env!("CARGO_PKG_VERSION"));

/// An HTTP client configured for one input session.
pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
    /// Basic-auth credentials and the origin they may be sent to.
    auth: Option<(String, String, url::Origin)>,
}

impl Http {
    /// A client for the session's input; returns it with the input URL
    /// stripped of any userinfo.
    pub(crate) fn new(s: &Session<'_>) -> Result<(Self, Url), IngestError> {
        let mut url =
            Url::parse(s.url).map_err(|e| IngestError::config(format!("invalid url: {e}")))?;
        let from_url = take_userinfo(&mut url);
        let auth = match &s.input.auth {
            Some(a) if !a.username.is_empty() => Some((a.username.clone(), a.password.clone())),
            _ => from_url,
        }
        .map(|(u, p)| (u, p, url.origin()));
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(s.timeout())
            .default_headers(header_map(&s.input.headers)?)
            .build()
            .map_err(|e| IngestError::config(format!("http client: {}", e.without_url())))?;
        Ok((
            Self {
                client,
                timeout: s.timeout(),
                auth,
            },
            url,
        ))
    }

    /// GET `url` (with an optional byte range); the response when its status
    /// is a success, else the matching error.
    pub(crate) async fn get(
        &self,
        url: &Url,
        range: Option<(u64, u64)>,
    ) -> Result<Response, IngestError> {
        let mut req = self.client.get(url.clone());
        if let Some((user, pass, origin)) = &self.auth
            && url.origin() == *origin
        {
            req = req.basic_auth(user, Some(pass));
        }
        if let Some((first, last)) = range {
            req = req.header(RANGE, format!("bytes={first}-{last}"));
        }
        let resp = send(req, self.timeout).await?;
        check_status(resp.status(), "")?;
        Ok(resp)
    }

    /// The whole body of a GET, refused when larger than `max` bytes. Also
    /// returns the final URL (after redirects) to resolve relative links.
    pub(crate) async fn get_body(
        &self,
        url: &Url,
        range: Option<(u64, u64)>,
        max: usize,
    ) -> Result<(Bytes, Url), IngestError> {
        let resp = self.get(url, range).await?;
        let final_url = resp.url().clone();
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large(max));
        }
        let mut body = Body::new(resp, self.timeout);
        let mut all = BytesMut::new();
        while let Some(chunk) = body.next().await? {
            if all.len() + chunk.len() > max {
                return Err(too_large(max));
            }
            all.extend_from_slice(&chunk);
        }
        Ok((all.freeze(), final_url))
    }

    pub(crate) fn body(&self, resp: Response) -> Body {
        Body::new(resp, self.timeout)
    }
}

fn too_large(max: usize) -> IngestError {
    IngestError::protocol(format!("response larger than {} KiB", max >> 10))
}

/// Send a request, waiting at most `timeout` for the response head.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Response, IngestError> {
    match tokio::time::timeout(timeout, req.send()).await {
        Ok(r) => r.map_err(request_error),
        Err(_) => Err(IngestError::timeout(format!(
            "no response within {} s",
            timeout.as_secs()
        ))),
    }
}

/// A response body read chunk by chunk; waiting longer than the timeout for
/// the next chunk is an error.
pub(crate) struct Body {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    timeout: Duration,
}

impl Body {
    pub(crate) fn new(resp: Response, timeout: Duration) -> Self {
        Self {
            stream: Box::pin(resp.bytes_stream()),
            timeout,
        }
    }

    /// The next chunk, `None` at the end of the body.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, IngestError> {
        match tokio::time::timeout(self.timeout, self.stream.next()).await {
            Ok(Some(Ok(b))) => Ok(Some(b)),
            Ok(Some(Err(e))) => Err(request_error(e)),
            Ok(None) => Ok(None),
            Err(_) => Err(IngestError::timeout(format!(
                "no data for {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

/// The error for a non-success status (`detail` is appended to the message).
pub(crate) fn check_status(status: StatusCode, detail: &str) -> Result<(), IngestError> {
    if status.is_success() {
        return Ok(());
    }
    let kind = match status.as_u16() {
        401 | 403 => ErrorKind::Auth,
        404 | 410 => ErrorKind::NotFound,
        408 | 429 => ErrorKind::Connect,
        s if s >= 500 => ErrorKind::Connect,
        _ => ErrorKind::Protocol,
    };
    let mut message = format!("HTTP {status}");
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(detail);
    }
    Err(IngestError::new(kind, message))
}

/// A reqwest error as an ingest error, without the URL (it may carry tokens).
pub(crate) fn request_error(e: reqwest::Error) -> IngestError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_builder() {
        ErrorKind::Config
    } else if e.is_redirect() || e.is_decode() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Io
    };
    // The source chain holds the useful part ("connection refused", ...).
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    IngestError::new(kind, message)
}

/// Remove `user:password@` from a URL; returns the decoded pair.
pub(crate) fn take_userinfo(url: &mut Url) -> Option<(String, String)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = decode(url.username());
    let pass = url.password().map(decode).unwrap_or_default();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some((user, pass))
}

fn header_map(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap, IngestError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| IngestError::config(format!("invalid header name {name:?}")))?;
        let v = HeaderValue::from_str(value.trim())
            .map_err(|_| IngestError::config(format!("invalid value for header {name:?}")))?;
        map.insert(n, v);
    }
    Ok(map)
}
