//! A stream: one live channel and everything configured on it.
//!
//! The JSON shape (field names, defaults) is the public contract of
//! `PUT /streams/{code}`. Every struct has `#[serde(default)]` so partial
//! documents deserialize, and `deny_unknown_fields` so typos are reported
//! instead of silently ignored.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{FieldError, Problems, join};

/// Longest accepted stream code.
pub const MAX_CODE_LEN: usize = 128;

/// Check a stream code: 1–128 characters of `A-Z a-z 0-9 _ -`.
///
/// The code is used in URL paths, file names and buffer IDs, so nothing
/// else is allowed (in particular no `$`, which internal buffer IDs use).
pub fn validate_code(code: &str) -> Result<(), String> {
    if code.is_empty() {
        return Err("must not be empty".into());
    }
    if code.chars().count() > MAX_CODE_LEN {
        return Err(format!("must be at most {MAX_CODE_LEN} characters"));
    }
    if let Some(c) = code
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "invalid character {c:?}: only letters, digits, '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// A live channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Stream {
    /// Unique identifier (`A-Za-z0-9_-`, 1–128). The code in the request path wins over this field.
    #[schema(example = "channel-1")]
    pub code: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    /// A disabled stream is never started; setting it stops a running stream.
    pub disabled: bool,
    /// Sources in priority order (lower `priority` = preferred).
    pub inputs: Vec<Input>,
    /// Absent = passthrough (no FFmpeg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcoder: Option<TranscoderConfig>,
    pub protocols: Protocols,
    pub push: Vec<PushDestination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr: Option<DvrConfig>,
    /// Set by the server when the stream is first stored (read-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub created_at: Option<DateTime<Utc>>,
    /// Set by the server on every change (read-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// One source of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Input {
    /// Source URL; its scheme and host select protocol and pull/push mode.
    #[schema(example = "rtmp://0.0.0.0:1935/live/demo")]
    pub url: String,
    /// Lower = preferred. Unique within a stream.
    pub priority: u32,
    pub net: InputNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<InputAuth>,
    /// Extra HTTP headers (HTTP-TS and HLS inputs).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How a backup input waits: `hot` keeps it connected and demuxed (an
    /// instant switch), `cold` connects it only when needed. Unset: the
    /// server's `manager.standby`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby: Option<Standby>,
}

/// How a backup input waits for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Standby {
    /// Connected and read, not written to the stream: the switch is instant.
    Hot,
    /// Connected only when it is needed.
    Cold,
}

/// Connection behaviour of one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct InputNet {
    /// Reconnect after a failure (pull inputs).
    pub reconnect: bool,
    /// First reconnect delay; doubles per failure.
    pub reconnect_delay_sec: u32,
    /// Cap of the reconnect delay.
    pub reconnect_max_delay_sec: u32,
    /// Connect / read timeout.
    pub timeout_sec: u32,
}

impl Default for InputNet {
    fn default() -> Self {
        Self {
            reconnect: true,
            reconnect_delay_sec: 1,
            reconnect_max_delay_sec: 30,
            timeout_sec: 10,
        }
    }
}

/// Credentials for an input (RTSP, HLS/HTTP basic auth, S3 access key / secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct InputAuth {
    pub username: String,
    pub password: String,
}

/// Per-stream encoding. Absent on the stream = passthrough.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TranscoderConfig {
    /// FFmpeg process topology: `per_profile` (default, one process per
    /// rendition; changing one profile restarts only that process) or
    /// `multi` (one process decodes once and encodes every rendition).
    pub mode: TranscodeMode,
    pub video: VideoTranscode,
    pub audio: AudioTranscode,
    pub global: TranscodeGlobal,
}

/// FFmpeg process topology of a stream's transcoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TranscodeMode {
    /// One FFmpeg process per profile (`track_N`).
    #[default]
    PerProfile,
    /// One FFmpeg process for every profile (decodes the input once).
    Multi,
}

impl TranscodeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerProfile => "per_profile",
            Self::Multi => "multi",
        }
    }
}

impl TranscoderConfig {
    /// Whether an FFmpeg process is needed at all: `video.copy` together
    /// with `audio.copy` is plain passthrough (no raw buffer, no FFmpeg).
    pub fn needs_ffmpeg(&self) -> bool {
        !(self.video.copy && self.audio.copy)
    }

    /// Number of renditions (`track_1` … `track_N`): one per profile, or a
    /// single passthrough rendition when `video.copy` is set or no profile
    /// is configured.
    pub fn renditions(&self) -> usize {
        if self.video.copy || self.video.profiles.is_empty() {
            1
        } else {
            self.video.profiles.len()
        }
    }
}

/// Hub buffer the input manager writes when the stream transcodes.
pub fn raw_buffer_id(code: &str) -> String {
    format!("$raw${code}")
}

/// Hub buffer of rendition `track` (1-based) of a transcoded stream.
pub fn rendition_buffer_id(code: &str, track: usize) -> String {
    format!("$r${code}$track_{track}")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VideoTranscode {
    /// Pass video through unchanged (profiles are ignored).
    pub copy: bool,
    /// The ABR ladder: one rendition (`track_N`, 1-based) per profile.
    pub profiles: Vec<VideoProfile>,
}

/// One rendition of the ABR ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VideoProfile {
    /// Output width in pixels; 0 keeps the aspect ratio from `height` (or the source size).
    pub width: u32,
    /// Output height in pixels; 0 keeps the aspect ratio from `width` (or the source size).
    pub height: u32,
    /// Target bitrate, kbit/s.
    pub bitrate: u32,
    /// Peak bitrate, kbit/s; 0 = no cap.
    pub max_bitrate: u32,
    /// Output frame rate; 0 = same as the source (or `global.fps`).
    pub framerate: f64,
    /// Seconds between keyframes; 0 = 2 s.
    pub keyframe_interval: u32,
    pub codec: VideoCodec,
    /// Encoder preset (`ultrafast` … `veryslow`, or NVENC `p1` … `p7`).
    pub preset: String,
    /// Codec profile (`baseline`, `main`, `high`, `main10`).
    pub profile: String,
    /// Codec level (`3.1`, `4.1`, `5.1`).
    pub level: String,
}

impl Default for VideoProfile {
    fn default() -> Self {
        Self {
            width: 0,
            height: 0,
            bitrate: 2500,
            max_bitrate: 0,
            framerate: 0.0,
            keyframe_interval: 2,
            codec: VideoCodec::H264,
            preset: String::new(),
            profile: String::new(),
            level: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    #[default]
    #[serde(alias = "avc")]
    H264,
    #[serde(alias = "hevc")]
    H265,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AudioTranscode {
    /// Pass audio through unchanged.
    pub copy: bool,
    pub codec: AudioCodec,
    /// kbit/s.
    pub bitrate: u32,
    /// Hz; 0 = same as the source.
    pub sample_rate: u32,
    /// 0 = same as the source.
    pub channels: u32,
}

impl Default for AudioTranscode {
    fn default() -> Self {
        Self {
            copy: false,
            codec: AudioCodec::Aac,
            bitrate: 128,
            sample_rate: 0,
            channels: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    #[default]
    Aac,
    Mp3,
    Opus,
    Ac3,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TranscodeGlobal {
    pub hw_accel: HwAccel,
    /// Output frame rate for every profile that does not set one; 0 = source.
    pub fps: u32,
    /// GOP length in frames for every profile; 0 = from `keyframe_interval`.
    pub gop: u32,
}

/// Hardware encoder family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HwAccel {
    #[default]
    None,
    Nvenc,
    Vaapi,
    Qsv,
    Videotoolbox,
}

/// Which delivery endpoints are opened for the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Protocols {
    pub hls: bool,
    pub dash: bool,
    pub rtsp: bool,
    pub rtmp: bool,
    pub srt: bool,
}

/// A platform the server re-streams to (RTMP/RTMPS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PushDestination {
    #[schema(example = "rtmp://a.rtmp.youtube.com/live2/xxxx")]
    pub url: String,
    pub enabled: bool,
    pub comment: String,
    /// Connect timeout.
    pub timeout_sec: u32,
    /// Wait before reconnecting after a failure.
    pub retry_timeout_sec: u32,
}

impl Default for PushDestination {
    fn default() -> Self {
        Self {
            url: String::new(),
            enabled: true,
            comment: String::new(),
            timeout_sec: 10,
            retry_timeout_sec: 5,
        }
    }
}

/// Per-stream DVR recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DvrConfig {
    pub enabled: bool,
    /// Segment length, seconds.
    pub segment_duration: u32,
    /// Keep this many seconds of recording; 0 = forever.
    pub retention_sec: u64,
    /// Root directory; the recording lives in `{storage_path}/{code}/`. Empty = `./dvr`.
    pub storage_path: String,
    /// Disk cap in GiB; 0 = unlimited.
    pub max_size_gb: f64,
}

impl Default for DvrConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            segment_duration: 4,
            retention_sec: 0,
            storage_path: String::new(),
            max_size_gb: 0.0,
        }
    }
}

const KNOWN_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
    "p1",
    "p2",
    "p3",
    "p4",
    "p5",
    "p6",
    "p7",
];

const KNOWN_VIDEO_PROFILES: &[&str] = &[
    "baseline",
    "constrained_baseline",
    "main",
    "high",
    "high10",
    "high422",
    "high444",
    "main10",
    "main-intra",
    "rext",
];

impl Stream {
    /// Check every rule of the model and report every problem with its path.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut p = Problems::default();
        if let Err(msg) = validate_code(&self.code) {
            p.push("code", msg);
        }
        p.max_len("name", &self.name, 256);
        p.max_len("description", &self.description, 4096);
        if self.tags.len() > 64 {
            p.push("tags", "at most 64 tags");
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                p.push(format!("tags[{i}]"), "must not be empty");
            }
            p.max_len(format!("tags[{i}]"), tag, 64);
        }
        self.validate_inputs(&mut p);
        if let Some(t) = &self.transcoder {
            t.validate("transcoder", &mut p);
        }
        self.validate_push(&mut p);
        if let Some(d) = &self.dvr {
            d.validate("dvr", &mut p);
        }
        p.into_result()
    }

    fn validate_inputs(&self, p: &mut Problems) {
        if self.inputs.len() > 32 {
            p.push("inputs", "at most 32 inputs");
        }
        let mut priorities: HashMap<u32, usize> = HashMap::new();
        let mut urls: HashMap<&str, usize> = HashMap::new();
        for (i, input) in self.inputs.iter().enumerate() {
            let base = format!("inputs[{i}]");
            let url = input.url.trim();
            match os_protocol::detect(url) {
                Ok(_) => {
                    if let Some(first) = urls.insert(url, i) {
                        p.push(
                            join(&base, "url"),
                            format!("duplicate of inputs[{first}].url"),
                        );
                    }
                }
                Err(e) => p.push(join(&base, "url"), e.to_string()),
            }
            if let Some(first) = priorities.insert(input.priority, i) {
                p.push(
                    join(&base, "priority"),
                    format!(
                        "priority {} is already used by inputs[{first}]",
                        input.priority
                    ),
                );
            }
            let net = &input.net;
            let nb = join(&base, "net");
            p.range(
                join(&nb, "reconnect_delay_sec"),
                net.reconnect_delay_sec,
                0,
                3600,
            );
            p.range(
                join(&nb, "reconnect_max_delay_sec"),
                net.reconnect_max_delay_sec,
                0,
                86_400,
            );
            if net.reconnect_max_delay_sec < net.reconnect_delay_sec {
                p.push(
                    join(&nb, "reconnect_max_delay_sec"),
                    "must not be less than reconnect_delay_sec",
                );
            }
            p.range(join(&nb, "timeout_sec"), net.timeout_sec, 1, 3600);
            for name in input.headers.keys() {
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !valid {
                    p.push(format!("{base}.headers.{name}"), "invalid HTTP header name");
                }
            }
            for (name, value) in &input.headers {
                if value.contains(['\r', '\n']) {
                    p.push(
                        format!("{base}.headers.{name}"),
                        "header value must not contain line breaks",
                    );
                }
            }
        }
    }

    fn validate_push(&self, p: &mut Problems) {
        let mut urls: HashMap<&str, usize> = HashMap::new();
        for (i, dest) in self.push.iter().enumerate() {
            let base = format!("push[{i}]");
            let url = dest.url.trim();
            let lower = url.to_ascii_lowercase();
            if url.is_empty() {
                p.push(join(&base, "url"), "url is empty");
            } else if !(lower.starts_with("rtmp://") || lower.starts_with("rtmps://")) {
                let scheme = url.split("://").next().unwrap_or(url);
                p.push(
                    join(&base, "url"),
                    format!("unsupported scheme \"{scheme}\": push destinations must be rtmp:// or rtmps://"),
                );
            } else if url.len() <= lower.find("://").map_or(0, |i| i + 3) {
                p.push(join(&base, "url"), "missing host");
            } else if let Some(first) = urls.insert(url, i) {
                p.push(
                    join(&base, "url"),
                    format!("duplicate of push[{first}].url"),
                );
            }
            p.max_len(join(&base, "comment"), &dest.comment, 1024);
            p.range(join(&base, "timeout_sec"), dest.timeout_sec, 1, 600);
            p.range(
                join(&base, "retry_timeout_sec"),
                dest.retry_timeout_sec,
                0,
                3600,
            );
        }
    }
}

impl TranscoderConfig {
    fn validate(&self, base: &str, p: &mut Problems) {
        let vb = join(base, "video");
        if self.video.profiles.len() > 16 {
            p.push(join(&vb, "profiles"), "at most 16 profiles");
        }
        for (i, prof) in self.video.profiles.iter().enumerate() {
            let b = format!("{vb}.profiles[{i}]");
            p.range(join(&b, "width"), prof.width, 0, 8192);
            p.range(join(&b, "height"), prof.height, 0, 8192);
            if prof.width % 2 == 1 {
                p.push(join(&b, "width"), "must be even");
            }
            if prof.height % 2 == 1 {
                p.push(join(&b, "height"), "must be even");
            }
            p.range(join(&b, "bitrate"), prof.bitrate, 16, 200_000);
            if prof.max_bitrate != 0 && prof.max_bitrate < prof.bitrate {
                p.push(join(&b, "max_bitrate"), "must be 0 or at least bitrate");
            }
            if !prof.framerate.is_finite() || prof.framerate < 0.0 || prof.framerate > 240.0 {
                p.push(
                    join(&b, "framerate"),
                    format!("must be between 0 and 240, got {}", prof.framerate),
                );
            }
            p.range(join(&b, "keyframe_interval"), prof.keyframe_interval, 0, 60);
            if !prof.preset.is_empty() && !KNOWN_PRESETS.contains(&prof.preset.as_str()) {
                p.push(
                    join(&b, "preset"),
                    format!(
                        "unknown preset \"{}\"; expected one of {}",
                        prof.preset,
                        KNOWN_PRESETS.join(", ")
                    ),
                );
            }
            if !prof.profile.is_empty() && !KNOWN_VIDEO_PROFILES.contains(&prof.profile.as_str()) {
                p.push(
                    join(&b, "profile"),
                    format!(
                        "unknown profile \"{}\"; expected one of {}",
                        prof.profile,
                        KNOWN_VIDEO_PROFILES.join(", ")
                    ),
                );
            }
            if !prof.level.is_empty() && !valid_level(&prof.level) {
                p.push(
                    join(&b, "level"),
                    format!(
                        "invalid level \"{}\"; expected e.g. 3.1, 4.1 or 5.1",
                        prof.level
                    ),
                );
            }
        }
        let ab = join(base, "audio");
        p.range(join(&ab, "bitrate"), self.audio.bitrate, 8, 1024);
        if self.audio.sample_rate != 0
            && ![
                8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000,
            ]
            .contains(&self.audio.sample_rate)
        {
            p.push(
                join(&ab, "sample_rate"),
                format!("unsupported sample rate {}", self.audio.sample_rate),
            );
        }
        p.range(join(&ab, "channels"), self.audio.channels, 0, 8);
        let gb = join(base, "global");
        p.range(join(&gb, "fps"), self.global.fps, 0, 240);
        p.range(join(&gb, "gop"), self.global.gop, 0, 1000);
    }
}

fn valid_level(level: &str) -> bool {
    let mut parts = level.split('.');
    let major = parts.next().and_then(|m| m.parse::<u8>().ok());
    let minor_ok = match parts.next() {
        None => true,
        Some(m) => m.len() == 1 && m.parse::<u8>().is_ok(),
    };
    matches!(major, Some(1..=6)) && minor_ok && parts.next().is_none()
}

impl DvrConfig {
    fn validate(&self, base: &str, p: &mut Problems) {
        p.range(join(base, "segment_duration"), self.segment_duration, 1, 60);
        if !self.max_size_gb.is_finite() || self.max_size_gb < 0.0 {
            p.push(
                join(base, "max_size_gb"),
                "must be 0 (unlimited) or positive",
            );
        }
        if self.storage_path.split(['/', '\\']).any(|c| c == "..") {
            p.push(join(base, "storage_path"), "must not contain '..'");
        }
        if self.storage_path.contains('\0') {
            p.push(join(base, "storage_path"), "must not contain NUL");
        }
    }
}
