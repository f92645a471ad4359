//! One HTTP delivery of one event to one hook: signing, per-attempt timeout,
//! retries with exponential backoff.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use os_domain::Hook;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Exponential backoff between attempts: `base`, `2·base`, `4·base`, …,
/// never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The pause before retry number `retry` (0 = the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What happened to one delivery (all its attempts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// A 2xx answer was received.
    pub delivered: bool,
    /// HTTP status of the last answer, if any came.
    pub status: Option<u16>,
    /// Attempts made (1 + retries).
    pub attempts: u32,
    /// Why the last attempt failed; `None` when delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `lowercase hex(HMAC-SHA256(secret, body))`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error arm is unreachable.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// The HTTP client shared by every delivery (one connection pool).
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
}

impl Default for Deliverer {
    fn default() -> Self {
        Self::new()
    }
}

/// One serialised event ready to send.
pub struct Payload<'a> {
    pub event_type: &'a str,
    pub event_id: &'a str,
    /// The exact bytes POSTed and signed.
    pub body: Bytes,
}

enum Attempt {
    Delivered(u16),
    /// Worth retrying (5xx, 408, 429, network error, timeout).
    Retry(Option<u16>, String),
    /// Retrying will not help (other 4xx, 3xx, bad URL, shutdown).
    Permanent(Option<u16>, String),
}

impl Deliverer {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            // A webhook answers itself; a redirect is an answer we do not follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("open-streamer/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// Deliver with up to `hook.max_retries` retries. Each attempt holds a
    /// permit of `pool` (when given) only while its request is in flight,
    /// not while backing off. Returns early, undelivered, when `cancel` fires.
    pub async fn deliver(
        &self,
        hook: &Hook,
        payload: &Payload<'_>,
        backoff: Backoff,
        pool: Option<&Semaphore>,
        cancel: &CancellationToken,
    ) -> DeliveryReport {
        let mut report = DeliveryReport {
            delivered: false,
            status: None,
            attempts: 0,
            error: None,
        };
        loop {
            let permit = match pool {
                Some(p) => tokio::select! {
                    () = cancel.cancelled() => None,
                    permit = p.acquire() => permit.ok(),
                },
                None => None,
            };
            if cancel.is_cancelled() {
                report.error = Some("cancelled at shutdown".into());
                return report;
            }
            report.attempts += 1;
            let outcome = tokio::select! {
                () = cancel.cancelled() => Attempt::Permanent(None, "cancelled at shutdown".into()),
                a = self.attempt(hook, payload) => a,
            };
            drop(permit);
            match outcome {
                Attempt::Delivered(status) => {
                    report.delivered = true;
                    report.status = Some(status);
                    report.error = None;
                    return report;
                }
                Attempt::Permanent(status, error) => {
                    report.status = status;
                    report.error = Some(error);
                    return report;
                }
                Attempt::Retry(status, error) => {
                    report.status = status;
                    report.error = Some(error);
                }
            }
            let retry = report.attempts - 1;
            if retry >= hook.max_retries {
                return report;
            }
            tokio::select! {
                () = cancel.cancelled() => return report,
                () = tokio::time::sleep(backoff.delay(retry)) => {}
            }
        }
    }

    async fn attempt(&self, hook: &Hook, payload: &Payload<'_>) -> Attempt {
        let timeout = Duration::from_secs(u64::from(hook.timeout_sec.max(1)));
        let mut req = self
            .client
            .post(hook.target.trim())
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-OpenStreamer-Event", payload.event_type)
            .header("X-OpenStreamer-Event-Id", payload.event_id)
            .body(payload.body.clone());
        if !hook.secret.is_empty() {
            req = req.header(
                "X-OpenStreamer-Signature",
                format!("sha256={}", sign(&hook.secret, &payload.body)),
            );
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let code = status.as_u16();
                if status.is_success() {
                    Attempt::Delivered(code)
                } else if status.is_server_error() || code == 408 || code == 429 {
                    Attempt::Retry(Some(code), format!("receiver answered HTTP {code}"))
                } else {
                    Attempt::Permanent(Some(code), format!("receiver answered HTTP {code}"))
                }
            }
            Err(e) if e.is_builder() => Attempt::Permanent(None, describe(&e)),
            Err(e) if e.is_timeout() => {
                Attempt::Retry(None, format!("no answer within {}s", timeout.as_secs()))
            }
            Err(e) => Attempt::Retry(None, describe(&e)),
        }
    }
}

/// The error and its causes, without the URL (it may carry credentials).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !s_text.is_empty() && !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let got: Vec<u64> = (0..6).map(|r| b.delay(r).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
        let ms = Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_secs(1),
        };
        assert_eq!(ms.delay(2), Duration::from_millis(80));
    }

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
