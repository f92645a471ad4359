//! The transcoder: FFmpeg processes between hub buffers.
//!
//! With a `transcoder` block on a stream, the input manager writes the
//! selected input into `$raw$<code>`; this crate runs FFmpeg reading that
//! buffer as MPEG-TS on stdin and writes each rendition's MPEG-TS into
//! `$r$<code>$track_N` (N from 1 in profile order) — plus any extra sinks
//! the caller gives per rendition (the coordinator adds the main buffer
//! `<code>` to `track_1`, so RTMP/SRT/RTSP play and push-out serve the
//! first rendition unchanged).
//!
//! - [`args`]: the argument builder (pure, pinned per hardware backend).
//! - [`probe`]: encoders / hwaccels / devices of this host.
//! - [`Transcoders`]: the server-wide service: settings, the bounded pool
//!   (`transcoder.max_workers` FFmpeg processes at most), the probe.
//! - [`StreamTranscoder`]: one stream's processes — `per_profile` (one per
//!   rendition) or `multi` (one process, one loopback TCP output per
//!   rendition) — supervised: stderr into the log (rate limited, tagged
//!   with stream and profile), restart with exponential backoff, a stall
//!   watchdog, and after `max_restarts` consecutive failures a fatal report
//!   (the coordinator stops the stream) with the last stderr lines.
//!
//! Processes never outlive their owner: each is spawned with
//! `kill_on_drop` in its own process group (a Ctrl-C to the server's
//! terminal does not reach it; the server stops it), and it reads its input
//! from our stdin pipe, so when the server dies (even `kill -9`) FFmpeg sees
//! end of input and exits, and its next write to our stdout pipe fails.

pub mod args;
pub mod probe;
mod supervise;

pub use probe::{Backend, Devices, Probe, ProbeError};
pub use supervise::{
    Fatal, ProfileError, ProfileState, ProfileStatus, Settings, StreamTranscoder, TranscoderStatus,
    Transcoders,
};
