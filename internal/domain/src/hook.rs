//! A hook: where lifecycle events are delivered (HTTP webhook or Kafka topic).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{FieldError, Problems};

/// Every event type a hook can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "stream.created",
    "stream.started",
    "stream.stopped",
    "stream.deleted",
    "input.degraded",
    "input.failover",
    "recording.started",
    "recording.stopped",
    "transcoder.error",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookType {
    #[default]
    Http,
    Kafka,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Hook {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub hook_type: HookType,
    /// HTTP(S) URL for `http`, topic name for `kafka`.
    pub target: String,
    /// HMAC-SHA256 signing secret (HTTP); empty = unsigned.
    pub secret: String,
    /// Event types delivered; empty = all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub max_retries: u32,
    pub timeout_sec: u32,
}

impl Default for Hook {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            hook_type: HookType::Http,
            target: String::new(),
            secret: String::new(),
            event_types: Vec::new(),
            enabled: true,
            max_retries: 3,
            timeout_sec: 10,
        }
    }
}

impl Hook {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut p = Problems::default();
        if let Err(msg) = crate::stream::validate_code(&self.id) {
            p.push("id", msg);
        }
        p.max_len("name", &self.name, 256);
        match self.hook_type {
            HookType::Http => {
                let t = self.target.to_ascii_lowercase();
                if !(t.starts_with("http://") || t.starts_with("https://")) || t.len() < 9 {
                    p.push("target", "http hooks need an http:// or https:// URL");
                }
            }
            HookType::Kafka => {
                let valid = !self.target.is_empty()
                    && self.target.len() <= 249
                    && self
                        .target
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !valid {
                    p.push(
                        "target",
                        "kafka hooks need a topic name (1-249 of A-Z a-z 0-9 . _ -)",
                    );
                }
            }
        }
        for (i, t) in self.event_types.iter().enumerate() {
            if !EVENT_TYPES.contains(&t.as_str()) {
                p.push(
                    format!("event_types[{i}]"),
                    format!("unknown event type \"{t}\""),
                );
            }
        }
        p.range("max_retries", self.max_retries, 0, 10);
        p.range("timeout_sec", self.timeout_sec, 1, 300);
        p.into_result()
    }
}
