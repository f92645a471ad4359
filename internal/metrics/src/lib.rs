//! Prometheus metrics for open-streamer.
//!
//! Three sources feed one exposition (`metrics.addr` + `metrics.path`):
//!
//! * **Scrape-time collection** (most series): at every scrape the exporter
//!   asks a [`Source`] (wired in `cmd` from the coordinator, the hub and the
//!   hooks dispatcher) for a [`Snapshot`] and sets the per-stream and hook
//!   series from it. Media hot paths carry no metric calls for these.
//! * **Event counting**: [`count_events`] subscribes to the event bus and
//!   counts failovers, degradations and transcoder errors per stream.
//! * **One-line helpers** for components ([`segment_written`],
//!   [`transcoder_restart`], [`dvr_segment_written`], [`viewers`],
//!   [`push_destinations`]) that emit through the `metrics` facade.
//!
//! Label cardinality is bounded: the only free label is `stream` (the
//! stream code; the number of configured streams bounds it); every other
//! label takes values from a fixed set ([`Protocol`], [`Format`],
//! [`HookKind`], [`PushState`]). Series of a stream that is not running are
//! left out of the exposition (and forgotten by the registry after
//! [`IDLE_FORGET`]).
//!
//! Every name is listed in [`names`] and documented in `docs/METRICS.md`.

mod exporter;
pub mod names;
mod process;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

pub use exporter::{Exporter, HookSample, HubSample, Snapshot, Source, StreamSample};
pub use names::*;

/// Series not updated for this long are dropped from the registry (a
/// deleted stream's counters, for instance). Running streams' series are
/// updated at every scrape.
pub const IDLE_FORGET: Duration = Duration::from_secs(3600);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed as the global `metrics`
/// recorder on first use. When another recorder was installed first (an
/// embedding program, a test harness) ours still renders what the
/// exporter sets through it, but component helpers go to the other one.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::ALL, Some(IDLE_FORGET))
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; component metrics go there");
        }
        describe_all();
        handle
    })
}

/// Delivery protocols of viewers (fixed label set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Hls,
    Dash,
    Rtsp,
    Rtmp,
    Srt,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [Self::Hls, Self::Dash, Self::Rtsp, Self::Rtmp, Self::Srt];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hls => "hls",
            Self::Dash => "dash",
            Self::Rtsp => "rtsp",
            Self::Rtmp => "rtmp",
            Self::Srt => "srt",
        }
    }
}

/// Segmented output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hls,
    Dash,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hls => "hls",
            Self::Dash => "dash",
        }
    }
}

/// Hook delivery kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Http,
    Kafka,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Kafka => "kafka",
        }
    }
}

/// States of a push-out destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    Connecting,
    Active,
    Failed,
    Stopped,
}

impl PushState {
    pub const ALL: [PushState; 4] = [Self::Connecting, Self::Active, Self::Failed, Self::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

// ---- one-line helpers for components -------------------------------------

/// A publisher finished a segment of `stream` in `format`.
pub fn segment_written(stream: &str, format: Format) {
    counter!(SEGMENTS_WRITTEN_TOTAL, "stream" => stream.to_owned(), "format" => format.as_str())
        .increment(1);
}

/// The transcoder of `stream` restarted an encoder process.
pub fn transcoder_restart(stream: &str) {
    counter!(TRANSCODER_RESTARTS_TOTAL, "stream" => stream.to_owned()).increment(1);
}

/// The DVR of `stream` wrote a segment of `bytes`.
pub fn dvr_segment_written(stream: &str, bytes: u64) {
    counter!(DVR_SEGMENTS_TOTAL, "stream" => stream.to_owned()).increment(1);
    counter!(DVR_BYTES_TOTAL, "stream" => stream.to_owned()).increment(bytes);
}

/// `stream` has `count` viewers over `protocol` now.
pub fn viewers(stream: &str, protocol: Protocol, count: u64) {
    gauge!(VIEWERS, "stream" => stream.to_owned(), "protocol" => protocol.as_str())
        .set(count as f64);
}

/// `stream` has `count` push-out destinations in `state` now.
pub fn push_destinations(stream: &str, state: PushState, count: u64) {
    gauge!(PUSH_DESTINATIONS, "stream" => stream.to_owned(), "state" => state.as_str())
        .set(count as f64);
}

/// Count failovers, degradations and transcoder errors from the bus, per
/// stream, until the bus is dropped. Spawns a task.
pub fn count_events(bus: &os_events::EventBus) -> tokio::task::JoinHandle<()> {
    handle();
    let mut rx = bus.subscribe("metrics", os_events::DEFAULT_QUEUE);
    tokio::spawn(async move {
        use os_events::EventType as T;
        while let Some(ev) = rx.recv().await {
            let name = match ev.event_type {
                T::InputFailover => INPUT_FAILOVERS_TOTAL,
                T::InputDegraded => INPUT_DEGRADED_TOTAL,
                T::TranscoderError => TRANSCODER_ERRORS_TOTAL,
                _ => continue,
            };
            counter!(name, "stream" => ev.stream_code.clone()).increment(1);
        }
    })
}

fn describe_all() {
    // Process and per-stream snapshot series are written by the exporter itself.
    for (name, kind, unit, help) in names::ALL
        .iter()
        .filter(|m| !m.0.starts_with("open_streamer_process_") && !exporter::is_scraped(m.0))
    {
        let unit = unit.and_then(Unit::from_string);
        match (kind, unit) {
            (Kind::Counter, Some(u)) => describe_counter!(*name, u, *help),
            (Kind::Counter, None) => describe_counter!(*name, *help),
            (Kind::Gauge, Some(u)) => describe_gauge!(*name, u, *help),
            (Kind::Gauge, None) => describe_gauge!(*name, *help),
        }
    }
}
