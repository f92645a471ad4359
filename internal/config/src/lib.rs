//! Server configuration.
//!
//! Sources, later ones winning:
//! 1. built-in defaults ([`Config::default`]);
//! 2. a YAML file: `--config PATH`, else `./config.yaml`, else
//!    `/etc/open-streamer/config.yaml` (a missing default file is fine);
//! 3. environment variables `OPEN_STREAMER_<KEY>` where `<KEY>` is the
//!    dotted key upper-cased with `.` → `_` (`server.http_addr` →
//!    `OPEN_STREAMER_SERVER_HTTP_ADDR`). Lists are comma-separated.
//!
//! Because key names contain `_` themselves, environment names are matched
//! against the full list of known keys rather than split on `_`; a test
//! checks that no two keys share an environment name.
//!
//! Every problem is reported as a [`ConfigError`] naming the key.

mod addr;
mod load;

pub use addr::parse_listen_addr;
pub use load::{ConfigError, LoadOptions, env_name, known_keys, load};

use serde::{Deserialize, Serialize};

/// The whole server configuration. Field names are the config keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub buffer: Buffer,
    pub transcoder: Transcoder,
    pub publisher: Publisher,
    pub listeners: Listeners,
    pub manager: Manager,
    pub hooks: Hooks,
    pub metrics: Metrics,
    pub log: Log,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// REST API, Swagger UI and HLS/DASH delivery.
    pub http_addr: String,
    /// When set, every API route except health, media and Swagger needs `Authorization: Bearer <token>`.
    pub api_token: String,
    /// Allow browser players on other origins (CORS `*`) on media routes.
    pub cors: bool,
    /// How long shutdown waits for components to finish.
    pub shutdown_timeout_sec: u64,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            http_addr: ":8080".into(),
            api_token: String::new(),
            cors: true,
            shutdown_timeout_sec: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// `json` | `sql` | `mongo`.
    pub driver: String,
    pub json_dir: String,
    pub sql_dsn: String,
    pub mongo_uri: String,
    pub mongo_database: String,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            driver: "json".into(),
            json_dir: "./data".into(),
            sql_dsn: String::new(),
            mongo_uri: String::new(),
            mongo_database: "open_streamer".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Buffer {
    /// Ring capacity per stream, in MPEG-TS chunks.
    pub capacity: usize,
    /// Bytes a ring keeps beyond its GOP cache: older chunks are released
    /// early (a reader that far behind resumes at a keyframe).
    pub max_bytes: u64,
}

impl Default for Buffer {
    fn default() -> Self {
        Self {
            capacity: 1000,
            max_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Transcoder {
    /// Most FFmpeg processes running at once, server-wide.
    pub max_workers: usize,
    pub ffmpeg_path: String,
    /// Crashes of one FFmpeg process before the stream is stopped.
    pub max_restarts: u32,
}

impl Default for Transcoder {
    fn default() -> Self {
        Self {
            max_workers: 4,
            ffmpeg_path: "ffmpeg".into(),
            max_restarts: 5,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Publisher {
    pub hls: Hls,
    pub dash: Dash,
    pub push: Push,
}

/// `publisher.push.*`: settings shared by every push-out destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Push {
    /// PEM file of extra CA certificates trusted for `rtmps://` destinations
    /// (empty: the web PKI roots only).
    pub ca_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hls {
    pub dir: String,
    /// Absolute URL prefix for playlists; empty = relative URLs.
    pub base_url: String,
    /// Target segment length, seconds.
    pub segment_duration: f64,
    /// Segments listed in the live playlist.
    pub live_window: usize,
}

impl Default for Hls {
    fn default() -> Self {
        Self {
            dir: "./hls".into(),
            base_url: String::new(),
            segment_duration: 2.0,
            live_window: 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dash {
    pub dir: String,
    pub segment_duration: f64,
    pub live_window: usize,
}

impl Default for Dash {
    fn default() -> Self {
        Self {
            dir: "./dash".into(),
            segment_duration: 2.0,
            live_window: 6,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listeners {
    pub rtmp: Listener,
    pub rtsp: RtspListener,
    pub srt: SrtListener,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listener {
    pub enabled: bool,
    pub listen_host: String,
    pub port: u16,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_host: "0.0.0.0".into(),
            port: 1935,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtspListener {
    pub enabled: bool,
    pub listen_host: String,
    pub port: u16,
    /// `tcp` | `udp`: transport offered to RTSP players.
    pub transport: String,
}

impl Default for RtspListener {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_host: "0.0.0.0".into(),
            port: 8554,
            transport: "tcp".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SrtListener {
    pub enabled: bool,
    pub listen_host: String,
    pub port: u16,
    pub latency_ms: u32,
}

impl Default for SrtListener {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_host: "0.0.0.0".into(),
            port: 9999,
            latency_ms: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Manager {
    /// An input silent for this long (fractional seconds) is degraded; the
    /// active one is failed over.
    pub input_packet_timeout_sec: f64,
    /// A recovered higher-priority input takes over again after being
    /// healthy for this long (seconds).
    pub failback_after_sec: f64,
    /// Default for inputs without `standby`: `cold` (backups connect when
    /// needed) or `hot` (backups stay connected, so a switch is instant).
    pub standby: String,
}

impl Default for Manager {
    fn default() -> Self {
        Self {
            input_packet_timeout_sec: 3.0,
            failback_after_sec: 10.0,
            standby: "cold".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hooks {
    pub worker_count: usize,
    pub kafka_brokers: Vec<String>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            worker_count: 4,
            kafka_brokers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// Prometheus endpoint address; empty disables it.
    pub addr: String,
    pub path: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            addr: ":9091".into(),
            path: "/metrics".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `debug` | `info` | `warn` | `error`.
    pub level: String,
    /// `text` | `json`.
    pub format: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Config {
    /// Check every value; the first problem is returned naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                reason,
            })
        };
        if let Err(e) = parse_listen_addr(&self.server.http_addr) {
            return bad("server.http_addr", e);
        }
        if self
            .server
            .api_token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad("server.api_token", "must not contain whitespace".into());
        }
        if self.server.shutdown_timeout_sec > 3600 {
            return bad("server.shutdown_timeout_sec", "must be at most 3600".into());
        }
        match self.storage.driver.as_str() {
            "json" => {
                if self.storage.json_dir.trim().is_empty() {
                    return bad("storage.json_dir", "must not be empty".into());
                }
            }
            "sql" => {
                let dsn = self.storage.sql_dsn.trim();
                if dsn.is_empty() {
                    return bad(
                        "storage.sql_dsn",
                        "must be set when storage.driver is sql".into(),
                    );
                }
                let scheme = dsn.split_once("://").map_or("", |(s, _)| s);
                if !matches!(scheme, "postgres" | "postgresql" | "mysql" | "mariadb") {
                    // Never echo the DSN: it may carry a password.
                    return bad(
                        "storage.sql_dsn",
                        "must start with postgres:// or mysql://".into(),
                    );
                }
            }
            "mongo" => {
                let uri = self.storage.mongo_uri.trim();
                if uri.is_empty() {
                    return bad(
                        "storage.mongo_uri",
                        "must be set when storage.driver is mongo".into(),
                    );
                }
                if !uri.starts_with("mongodb://") {
                    return bad("storage.mongo_uri", "must start with mongodb://".into());
                }
                if self.storage.mongo_database.trim().is_empty() {
                    return bad("storage.mongo_database", "must not be empty".into());
                }
            }
            other => {
                return bad(
                    "storage.driver",
                    format!("unknown driver \"{other}\" (expected json, sql or mongo)"),
                );
            }
        }
        if self.buffer.capacity == 0 || self.buffer.capacity > 1_000_000 {
            return bad("buffer.capacity", "must be between 1 and 1000000".into());
        }
        if self.buffer.max_bytes < 64 << 10 || self.buffer.max_bytes > 1 << 40 {
            return bad(
                "buffer.max_bytes",
                "must be between 65536 and 1099511627776".into(),
            );
        }
        if self.transcoder.max_workers == 0 || self.transcoder.max_workers > 1024 {
            return bad(
                "transcoder.max_workers",
                "must be between 1 and 1024".into(),
            );
        }
        if self.transcoder.ffmpeg_path.trim().is_empty() {
            return bad("transcoder.ffmpeg_path", "must not be empty".into());
        }
        let (hls, dash) = (&self.publisher.hls, &self.publisher.dash);
        if hls.dir.trim().is_empty() {
            return bad("publisher.hls.dir", "must not be empty".into());
        }
        if dash.dir.trim().is_empty() {
            return bad("publisher.dash.dir", "must not be empty".into());
        }
        if same_dir(&hls.dir, &dash.dir) {
            return bad(
                "publisher.dash.dir",
                format!(
                    "must differ from publisher.hls.dir (both are \"{}\")",
                    hls.dir
                ),
            );
        }
        let base_ok = hls.base_url.is_empty()
            || hls.base_url.starts_with("http://")
            || hls.base_url.starts_with("https://");
        if !base_ok {
            return bad(
                "publisher.hls.base_url",
                "must be empty or an http(s):// URL".into(),
            );
        }
        for (key, seg, window) in [
            ("publisher.hls", hls.segment_duration, hls.live_window),
            ("publisher.dash", dash.segment_duration, dash.live_window),
        ] {
            if !(0.5..=60.0).contains(&seg) {
                return bad(
                    &format!("{key}.segment_duration"),
                    format!("must be between 0.5 and 60 seconds, got {seg}"),
                );
            }
            if !(2..=1000).contains(&window) {
                return bad(
                    &format!("{key}.live_window"),
                    format!("must be between 2 and 1000 segments, got {window}"),
                );
            }
        }
        let l = &self.listeners;
        for (key, enabled, host) in [
            ("listeners.rtmp", l.rtmp.enabled, &l.rtmp.listen_host),
            ("listeners.rtsp", l.rtsp.enabled, &l.rtsp.listen_host),
            ("listeners.srt", l.srt.enabled, &l.srt.listen_host),
        ] {
            if enabled && host.parse::<std::net::IpAddr>().is_err() {
                return bad(
                    &format!("{key}.listen_host"),
                    format!("\"{host}\" is not an IP address"),
                );
            }
        }
        if !matches!(l.rtsp.transport.as_str(), "tcp" | "udp") {
            return bad(
                "listeners.rtsp.transport",
                format!("must be tcp or udp, got \"{}\"", l.rtsp.transport),
            );
        }
        if l.srt.latency_ms > 60_000 {
            return bad("listeners.srt.latency_ms", "must be at most 60000".into());
        }
        let t = self.manager.input_packet_timeout_sec;
        if !(0.1..=3600.0).contains(&t) {
            return bad(
                "manager.input_packet_timeout_sec",
                format!("must be between 0.1 and 3600 seconds, got {t}"),
            );
        }
        let f = self.manager.failback_after_sec;
        if !(0.0..=86_400.0).contains(&f) {
            return bad(
                "manager.failback_after_sec",
                format!("must be between 0 and 86400 seconds, got {f}"),
            );
        }
        if !matches!(self.manager.standby.as_str(), "cold" | "hot") {
            return bad(
                "manager.standby",
                format!("must be cold or hot, got \"{}\"", self.manager.standby),
            );
        }
        if self.hooks.worker_count == 0 || self.hooks.worker_count > 256 {
            return bad("hooks.worker_count", "must be between 1 and 256".into());
        }
        if let Some(b) = self.hooks.kafka_brokers.iter().find(|b| !b.contains(':')) {
            return bad("hooks.kafka_brokers", format!("\"{b}\" is not host:port"));
        }
        if !self.metrics.addr.is_empty() {
            if let Err(e) = parse_listen_addr(&self.metrics.addr) {
                return bad("metrics.addr", e);
            }
            if !self.metrics.path.starts_with('/') {
                return bad("metrics.path", "must start with '/'".into());
            }
        }
        if !matches!(
            self.log.level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) {
            return bad(
                "log.level",
                format!(
                    "must be debug, info, warn or error, got \"{}\"",
                    self.log.level
                ),
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad(
                "log.format",
                format!("must be text or json, got \"{}\"", self.log.format),
            );
        }
        Ok(())
    }
}

fn same_dir(a: &str, b: &str) -> bool {
    let norm = |p: &str| {
        let p = p.trim().trim_end_matches('/');
        p.strip_prefix("./").unwrap_or(p).to_string()
    };
    norm(a) == norm(b)
}
