//! Input URL detection.
//!
//! An input is described only by its URL: the scheme and host decide which
//! protocol the server speaks and whether it *pulls* from a remote source or
//! *listens* for an encoder that pushes to it.
//!
//! | URL                                   | protocol | mode        |
//! |---------------------------------------|----------|-------------|
//! | `rtmp://server/app/key`               | RTMP     | pull        |
//! | `rtmps://server/app/key`              | RTMPS    | pull        |
//! | `rtsp://camera:554/stream`, `rtsps://`| RTSP     | pull        |
//! | `srt://relay:9999?streamid=key`       | SRT      | pull (caller) |
//! | `udp://239.1.1.1:5000`                | UDP      | pull (receive) |
//! | `http(s)://cdn/live.ts`               | HTTP-TS  | pull        |
//! | `http(s)://cdn/playlist.m3u8`         | HLS      | pull        |
//! | `file:///recordings/src.ts`, `/abs/src.ts` | file | pull      |
//! | `s3://bucket/key?region=…`            | S3       | pull        |
//! | `rtmp://0.0.0.0:1935/live/key`        | RTMP     | push-listen |
//! | `srt://0.0.0.0:9999?streamid=key`     | SRT      | push-listen |
//!
//! Push-listen is chosen when the host is a wildcard address (`0.0.0.0` or
//! `::`); only RTMP and SRT accept pushes. Everything else is rejected with a
//! [`DetectError`] that says why.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// The wire protocol of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rtmp,
    Rtmps,
    Rtsp,
    Srt,
    Udp,
    /// Raw MPEG-TS over HTTP(S).
    HttpTs,
    Hls,
    File,
    S3,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Rtmps => "rtmps",
            Protocol::Rtsp => "rtsp",
            Protocol::Srt => "srt",
            Protocol::Udp => "udp",
            Protocol::HttpTs => "http",
            Protocol::Hls => "hls",
            Protocol::File => "file",
            Protocol::S3 => "s3",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who opens the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The server connects to (or receives from) the source.
    Pull,
    /// An encoder pushes to one of the server's shared listeners; `key`
    /// selects this stream (RTMP: last path segment, SRT: `streamid`).
    PushListen { key: String },
}

/// The result of [`detect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub protocol: Protocol,
    pub mode: Mode,
}

impl Detected {
    pub fn is_push(&self) -> bool {
        matches!(self.mode, Mode::PushListen { .. })
    }
}

/// Why a URL cannot be used as an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    #[error("url is empty")]
    Empty,
    #[error("invalid url: {0}")]
    Invalid(String),
    #[error("unsupported scheme \"{0}\"")]
    UnsupportedScheme(String),
    #[error("relative file paths are not allowed; use an absolute path or file:///")]
    RelativePath,
    #[error("missing host")]
    MissingHost,
    #[error("missing port")]
    MissingPort,
    #[error(
        "{0} inputs cannot listen for pushes; only rtmp and srt accept pushes on a wildcard host"
    )]
    PushNotSupported(Protocol),
    #[error("push-listen url needs a stream key ({0})")]
    MissingPushKey(&'static str),
    #[error("s3 url needs a bucket and an object key (s3://bucket/key)")]
    MissingS3Key,
    #[error("file url must not have a host (use file:///absolute/path)")]
    FileHost,
}

/// Decide protocol and mode for an input URL.
pub fn detect(raw: &str) -> Result<Detected, DetectError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(DetectError::Empty);
    }
    if raw.starts_with('/') {
        return Ok(pull(Protocol::File));
    }
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => return Err(DetectError::RelativePath),
        Err(e) => return Err(DetectError::Invalid(e.to_string())),
    };
    let scheme = url.scheme().to_ascii_lowercase();
    let protocol = match scheme.as_str() {
        "rtmp" => Protocol::Rtmp,
        "rtmps" => Protocol::Rtmps,
        "rtsp" | "rtsps" => Protocol::Rtsp,
        "srt" => Protocol::Srt,
        "udp" | "rtp" => Protocol::Udp,
        "http" | "https" => {
            let path = url.path().to_ascii_lowercase();
            if path.ends_with(".m3u8") || path.ends_with(".m3u") {
                Protocol::Hls
            } else {
                Protocol::HttpTs
            }
        }
        "file" => Protocol::File,
        "s3" => Protocol::S3,
        other => return Err(DetectError::UnsupportedScheme(other.to_string())),
    };

    match protocol {
        Protocol::File => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(DetectError::FileHost);
            }
            return Ok(pull(protocol));
        }
        Protocol::S3 => {
            let has_bucket = url.host_str().is_some_and(|h| !h.is_empty());
            let has_key = !url.path().trim_start_matches('/').is_empty();
            if !has_bucket || !has_key {
                return Err(DetectError::MissingS3Key);
            }
            return Ok(pull(protocol));
        }
        _ => {}
    }

    let host = url.host().ok_or(DetectError::MissingHost)?;
    if matches!(&host, Host::Domain(d) if d.is_empty()) {
        return Err(DetectError::MissingHost);
    }
    if protocol == Protocol::Udp && url.port().is_none() {
        return Err(DetectError::MissingPort);
    }
    if !is_wildcard(&host) || protocol == Protocol::Udp {
        // UDP always receives; a wildcard host just means "any interface".
        return Ok(pull(protocol));
    }
    match protocol {
        Protocol::Rtmp => {
            let key = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default()
                .to_string();
            if key.is_empty() {
                return Err(DetectError::MissingPushKey(
                    "rtmp://0.0.0.0:1935/<app>/<key>",
                ));
            }
            Ok(Detected {
                protocol,
                mode: Mode::PushListen { key },
            })
        }
        Protocol::Srt => {
            let key = url
                .query_pairs()
                .find(|(k, _)| k == "streamid")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if key.is_empty() {
                return Err(DetectError::MissingPushKey(
                    "srt://0.0.0.0:9999?streamid=<key>",
                ));
            }
            Ok(Detected {
                protocol,
                mode: Mode::PushListen { key },
            })
        }
        other => Err(DetectError::PushNotSupported(other)),
    }
}

fn pull(protocol: Protocol) -> Detected {
    Detected {
        protocol,
        mode: Mode::Pull,
    }
}

fn is_wildcard(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_unspecified(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_unspecified(),
        // Non-special schemes (rtmp, srt, ...) keep the host opaque.
        Host::Domain(d) => d
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(url: &str) -> Protocol {
        match detect(url) {
            Ok(d) => d.protocol,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn contract_pull_table() {
        let cases = [
            ("rtmp://server/app/key", Protocol::Rtmp),
            ("rtmps://server/app/key", Protocol::Rtmps),
            ("rtsp://camera:554/stream", Protocol::Rtsp),
            ("srt://relay:9999?streamid=key", Protocol::Srt),
            ("udp://239.1.1.1:5000", Protocol::Udp),
            ("http://cdn/live.ts", Protocol::HttpTs),
            ("https://cdn/playlist.m3u8", Protocol::Hls),
            ("https://cdn/Playlist.M3U8?token=1", Protocol::Hls),
            ("file:///recordings/src.ts", Protocol::File),
            ("/absolute/path/to/src.ts", Protocol::File),
            ("s3://bucket/key?region=ap-1", Protocol::S3),
        ];
        for (url, want) in cases {
            assert_eq!(proto(url), want, "{url}");
            assert_eq!(detect(url).map(|d| d.mode), Ok(Mode::Pull), "{url}");
        }
    }

    #[test]
    fn wildcard_host_means_push_listen() {
        assert_eq!(
            detect("rtmp://0.0.0.0:1935/live/demo"),
            Ok(Detected {
                protocol: Protocol::Rtmp,
                mode: Mode::PushListen { key: "demo".into() }
            })
        );
        assert_eq!(
            detect("srt://0.0.0.0:9999?streamid=cam1"),
            Ok(Detected {
                protocol: Protocol::Srt,
                mode: Mode::PushListen { key: "cam1".into() }
            })
        );
        assert!(detect("rtmp://[::]:1935/live/k").is_ok_and(|d| d.is_push()));
        // A loopback or named host is a pull.
        assert!(detect("rtmp://127.0.0.1:1935/live/k").is_ok_and(|d| !d.is_push()));
        // UDP on a wildcard host receives unicast on every interface.
        assert_eq!(detect("udp://0.0.0.0:5000").map(|d| d.mode), Ok(Mode::Pull));
    }

    #[test]
    fn rejections_say_why() {
        assert_eq!(
            detect("ftp://x/y"),
            Err(DetectError::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(
            detect("ftp://x/y").map_err(|e| e.to_string()),
            Err("unsupported scheme \"ftp\"".to_string())
        );
        assert_eq!(detect("  "), Err(DetectError::Empty));
        assert_eq!(detect("video.ts"), Err(DetectError::RelativePath));
        assert_eq!(
            detect("rtsp://0.0.0.0:8554/x"),
            Err(DetectError::PushNotSupported(Protocol::Rtsp))
        );
        assert!(matches!(
            detect("rtmp://0.0.0.0:1935/"),
            Err(DetectError::MissingPushKey(_))
        ));
        assert!(matches!(
            detect("srt://0.0.0.0:9999"),
            Err(DetectError::MissingPushKey(_))
        ));
        assert_eq!(detect("s3://bucket"), Err(DetectError::MissingS3Key));
        assert_eq!(detect("udp://239.1.1.1"), Err(DetectError::MissingPort));
        assert_eq!(detect("file://host/x.ts"), Err(DetectError::FileHost));
        assert!(matches!(
            detect("rtmp://"),
            Err(DetectError::Invalid(_) | DetectError::MissingHost)
        ));
    }
}
