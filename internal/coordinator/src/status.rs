//! The status document of a stream (`GET /streams/{code}/status`).

use chrono::{DateTime, Utc};
use os_hub::BufferStats;
use os_ingest::InputSnapshot;
use serde::Serialize;
use utoipa::ToSchema;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Stopped,
}

/// What is actually happening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Not started.
    Stopped,
    /// Started; the active input is connecting or waiting for a publisher.
    Idle,
    /// Started and the active input delivers media.
    Active,
    /// Started, but the active input is failing.
    Degraded,
}

/// A track found in an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrackStatus {
    /// `video` | `audio`.
    pub kind: String,
    pub codec: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub width: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub height: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub sample_rate: u32,
    #[serde(skip_serializing_if = "is_zero_u8")]
    pub channels: u8,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

/// The last error of an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorStatus {
    pub message: String,
    pub at: DateTime<Utc>,
}

/// One configured input as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InputStatus {
    pub priority: u32,
    /// The input URL with any password removed.
    pub url: String,
    /// Detected protocol (`rtmp`, `srt`, `hls`, ...).
    pub protocol: String,
    /// `pull` or `push`.
    pub mode: String,
    /// `active` (feeds the stream), `standby` (healthy, connected, not
    /// feeding), `connecting`, `degraded` or `idle` (not running).
    pub status: String,
    /// Whether this input currently feeds the stream.
    pub active: bool,
    /// Why it is degraded: `timeout`, `error`, `never_connected`,
    /// `video_lost`, `audio_lost`, `ended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<String>,
    /// `hot` (kept connected while a backup) or `cold` (started when needed).
    pub standby: String,
    /// Continuity counter errors seen in this input.
    pub cc_errors: u64,
    pub bitrate_kbps: f64,
    pub bytes: u64,
    /// MPEG-TS packets received.
    pub packets: u64,
    pub reconnects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_packet_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorStatus>,
    pub tracks: Vec<TrackStatus>,
}

/// One reader of the stream's buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReaderStatus {
    pub name: String,
    pub delivered: u64,
    /// Chunks lost because the reader fell behind.
    pub lost: u64,
    pub lag_events: u64,
}

/// The stream's buffer in the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BufferStatus {
    pub id: String,
    pub capacity: usize,
    pub chunks: u64,
    pub bytes: u64,
    /// Chunks dropped by readers that fell behind, in total.
    pub dropped: u64,
    pub readers: Vec<ReaderStatus>,
}

/// One push-out destination (`push[]`) of a running stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PushStatus {
    /// The destination URL with any password removed.
    pub url: String,
    /// `connecting` | `active` | `retrying` | `stopped`.
    pub state: String,
    pub bytes_sent: u64,
    /// Connections made after the first one.
    pub reconnects: u64,
    /// Hub chunks skipped because the destination was too slow.
    pub skipped_chunks: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorStatus>,
}

pub(crate) fn push_status(url: &str, s: &os_publisher::PushSnapshot) -> PushStatus {
    PushStatus {
        url: os_ingest::redact(url),
        state: s.state.as_str().into(),
        bytes_sent: s.bytes_sent,
        reconnects: s.reconnects,
        skipped_chunks: s.skipped_chunks,
        connected_at: s.connected_at,
        last_error: s
            .last_error
            .clone()
            .map(|(message, at)| ErrorStatus { message, at }),
    }
}

/// `GET /streams/{code}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StreamStatus {
    pub code: String,
    pub desired: Desired,
    pub status: RunStatus,
    /// True while the media pipeline of the stream is running.
    pub pipeline_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_sec: Option<u64>,
    /// Priority of the input feeding the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_input: Option<u32>,
    pub inputs: Vec<InputStatus>,
    /// The latest input switches (failover, failback, manual), oldest first.
    pub switches: Vec<os_manager::Switch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferStatus>,
    /// Enabled push-out destinations, in `push[]` order (running streams).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<PushStatus>,
    /// The DVR recorder (running streams with `dvr.enabled`, or one that
    /// stopped on an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr: Option<os_dvr::DvrStatus>,
    /// FFmpeg processes per rendition, for a stream with a `transcoder`
    /// (for a stream stopped by its transcoder: the state it gave up in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcoder: Option<os_transcoder::TranscoderStatus>,
}

pub(crate) fn input_status(
    input: &os_domain::Input,
    snap: Option<&InputSnapshot>,
    health: Option<&os_manager::InputHealth>,
) -> InputStatus {
    let active = health.is_some_and(|h| h.active);
    let (protocol, mode) = match os_protocol::detect(&input.url) {
        Ok(d) => (
            d.protocol.name().to_string(),
            if d.is_push() { "push" } else { "pull" }.to_string(),
        ),
        Err(_) => ("unknown".to_string(), "pull".to_string()),
    };
    let mut s = InputStatus {
        priority: input.priority,
        url: os_ingest::redact(&input.url),
        protocol,
        mode,
        status: "idle".into(),
        active,
        degraded_reason: None,
        standby: match input.standby {
            Some(os_domain::Standby::Hot) => "hot".into(),
            Some(os_domain::Standby::Cold) => "cold".into(),
            None => "default".into(),
        },
        cc_errors: 0,
        bitrate_kbps: 0.0,
        bytes: 0,
        packets: 0,
        reconnects: 0,
        last_packet_at: None,
        last_error: None,
        tracks: Vec::new(),
    };
    if let Some(h) = health {
        s.standby = h.standby.clone();
        s.cc_errors = h.cc_errors;
        s.degraded_reason = h.reason.clone();
    }
    if let Some(snap) = snap {
        s.bitrate_kbps = (snap.bitrate_kbps * 10.0).round() / 10.0;
        s.bytes = snap.bytes;
        s.packets = snap.packets;
        s.reconnects = snap.reconnects;
        s.last_packet_at = snap.last_packet_at;
        s.last_error = snap
            .last_error
            .clone()
            .map(|(message, at)| ErrorStatus { message, at });
        s.tracks = snap
            .tracks
            .iter()
            .map(|t| TrackStatus {
                kind: t.kind.into(),
                codec: t.codec.into(),
                width: t.width,
                height: t.height,
                sample_rate: t.sample_rate,
                channels: t.channels,
            })
            .collect();
    }
    s.status = match health.map(|h| h.health) {
        Some(os_manager::Health::Healthy) if active => "active",
        Some(os_manager::Health::Healthy) => "standby",
        Some(os_manager::Health::Connecting) => "connecting",
        Some(os_manager::Health::Degraded) => "degraded",
        Some(os_manager::Health::Stopped) | None => "idle",
    }
    .into();
    s
}

pub(crate) fn buffer_status(b: &BufferStats) -> BufferStatus {
    BufferStatus {
        id: b.id.clone(),
        capacity: b.capacity,
        chunks: b.chunks,
        bytes: b.bytes,
        dropped: b.dropped,
        readers: b
            .readers
            .iter()
            .map(|r| ReaderStatus {
                name: r.name.clone(),
                delivered: r.delivered,
                lost: r.lost,
                lag_events: r.lag_events,
            })
            .collect(),
    }
}
