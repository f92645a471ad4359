//! A DVR recording. One persistent recording per stream: its ID is the stream code.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    Recording,
    Stopped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Equal to the stream code.
    pub id: String,
    pub stream_code: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    pub status: RecordingStatus,
    /// Absolute directory holding the segments, `index.json` and `playlist.m3u8`.
    pub segment_dir: String,
}
