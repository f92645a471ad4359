//! Ingest errors: what went wrong with one input, and whether retrying can help.

use std::fmt;

/// Broad class of an ingest failure; decides retry vs. give up and the
/// status shown to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not reach or connect to the source (DNS, refused, TLS handshake).
    Connect,
    /// Nothing arrived within `net.timeout_sec`.
    Timeout,
    /// The peer broke the protocol or sent data we cannot use.
    Protocol,
    /// The source refused us (401/403, bad key, wrong credentials).
    Auth,
    /// The source does not exist (404, unknown stream, missing file/object).
    NotFound,
    /// The source ended (EOF, publisher gone, server closed the session).
    Ended,
    /// Local I/O failure (socket, file system).
    Io,
    /// The input URL or its options are unusable.
    Config,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Ended => "ended",
            ErrorKind::Io => "io",
            ErrorKind::Config => "config",
        }
    }
}

/// One failure of one input session. The message never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl IngestError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn connect(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connect, m)
    }
    pub fn timeout(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, m)
    }
    pub fn protocol(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, m)
    }
    pub fn auth(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, m)
    }
    pub fn ended(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Ended, m)
    }
    pub fn io(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, m)
    }
    pub fn config(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, m)
    }

    /// Whether reconnecting may succeed. Configuration errors never will;
    /// everything else (even 404/401: a live source may appear or be fixed)
    /// is retried with backoff when `net.reconnect` is on.
    pub fn is_retryable(&self) -> bool {
        self.kind != ErrorKind::Config
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for IngestError {}

impl From<std::io::Error> for IngestError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::ConnectionRefused | K::ConnectionReset | K::ConnectionAborted | K::NotConnected => {
                ErrorKind::Connect
            }
            K::TimedOut | K::WouldBlock => ErrorKind::Timeout,
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied => ErrorKind::Auth,
            K::UnexpectedEof => ErrorKind::Ended,
            K::InvalidData | K::InvalidInput => ErrorKind::Protocol,
            _ => ErrorKind::Io,
        };
        Self::new(kind, e.to_string())
    }
}
