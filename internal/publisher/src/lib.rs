//! Outputs fed from the hub.
//!
//! Push-out ([`push`]): one task per enabled `push[]` destination re-publishes
//! the stream over RTMP or RTMPS, reconnecting with backoff.
//!
//! HLS ([`hls`]): one task per stream reads the stream's hub buffer (reader
//! `"hls"`), cuts MPEG-TS segments at access points ([`segmenter`]) and
//! keeps a live media playlist with a sliding window ([`playlist`]) on disk
//! under `{publisher.hls.dir}/{code}/`:
//!
//! - `seg_<n>.ts`: written whole before the playlist lists it;
//! - `index.m3u8`: replaced atomically (temp file + rename) after each segment;
//! - segments that left the window are deleted after a grace of
//!   [`hls::GRACE_SEGMENTS`] segments (players still fetching them), so at
//!   most `live_window + GRACE_SEGMENTS` segment files exist between writes
//!   (one more while a new segment is being written, before the oldest goes);
//! - the stream directory is removed when the task stops.
//!
//! The first media sequence number is the UNIX time (seconds) at which the
//! task starts; with segments of at least a second, segment names never repeat
//! across restarts of a stream, so caches may treat them as immutable.
//!
//! HLS for a transcoded stream ([`hls_abr`]): one media playlist per
//! rendition under `{code}/track_N/` plus the master `{code}/index.m3u8`.
//!
//! DASH ([`dash`]): one task per stream reads reader `"dash"`, demuxes the
//! MPEG-TS chunks into access units and drives the sans-IO packager of
//! `os-dash`, carrying out its file operations under
//! `{publisher.dash.dir}/{code}/`: init and media segments (`init_v<t>.mp4`,
//! `seg_v<t>_<n>.m4s`, `init_a<t>.mp4`, `seg_a<t>_<n>.m4s`, `<t>` the UNIX
//! time the task started, so names never repeat) are written whole before
//! `index.mpd` (replaced atomically) lists them; segments that left the
//! window are deleted after [`dash::GRACE_SEGMENTS`] more; the directory is
//! removed when the task stops. A source switch or a lag marks the next
//! units as a discontinuity: the packager splices its timeline (and opens a
//! new Period when the parameters changed).
//!
//! DASH for a transcoded stream ([`dash_abr`]): one packager per rendition
//! with a shared time origin; `index.mpd` lists every rendition as a
//! Representation of one video AdaptationSet (audio from the first
//! rendition in its own), files flat in `{code}/`.

pub mod dash;
pub mod dash_abr;
pub mod hls;
pub mod hls_abr;
pub mod playlist;
pub mod push;
pub mod segmenter;

pub use dash::{DashConfig, spawn_dash};
pub use dash_abr::spawn_dash_abr;
pub use hls::{HlsConfig, spawn_hls};
pub use hls_abr::{Rendition, spawn_hls_abr};
pub use push::{
    PushConfig, PushSnapshot, PushState, PushStats, PushTarget, spawn_push, tls_config,
};
