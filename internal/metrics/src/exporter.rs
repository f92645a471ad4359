//! The scrape endpoint: collect from the [`Source`], then render.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{counter, gauge};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::names::*;
use crate::{HookKind, handle, process};

/// Figures of one running stream at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSample {
    pub code: String,
    /// The active input delivers media.
    pub up: bool,
    pub uptime_seconds: f64,
    /// Priority of the input feeding the stream.
    pub active_input_priority: Option<u32>,
    /// Bytes received, summed over the stream's inputs.
    pub input_bytes: u64,
    /// Bitrate of the active input.
    pub input_bytes_per_second: f64,
    pub input_reconnects: u64,
    /// Video frames written to the stream's buffer so far.
    pub video_frames: u64,
    /// The stream's hub buffer, when it exists.
    pub hub: Option<HubSample>,
}

/// One hub buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubSample {
    /// Chunks written so far.
    pub chunks_total: u64,
    pub capacity: u64,
    /// Chunks the slowest reader is behind the writer.
    pub depth: u64,
    pub readers: u64,
    pub dropped_total: u64,
    pub lags_total: u64,
}

/// Delivery counters of one hook type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookSample {
    pub kind: HookKind,
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Waiting for delivery (queued or in flight).
    pub buffered: u64,
}

/// What the server reports at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every running stream (others are left out of the exposition).
    pub streams: Vec<StreamSample>,
    pub hooks: Vec<HookSample>,
    pub events_published: u64,
    pub events_dropped: u64,
}

/// Where the exporter gets the scrape-time figures (implemented in `cmd`
/// over the coordinator, the hub and the hooks dispatcher).
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    async fn snapshot(&self) -> Snapshot;
}

/// Frames counted at the previous scrape, per stream (for the FPS gauge).
#[derive(Debug, Clone, Copy)]
struct FrameMark {
    frames: u64,
    at: Instant,
    fps: f64,
}

struct Inner {
    source: Arc<dyn Source>,
    marks: Mutex<HashMap<String, FrameMark>>,
}

/// The metrics endpoint, bound and ready to serve.
pub struct Exporter {
    listener: TcpListener,
    path: String,
    inner: Arc<Inner>,
}

impl Exporter {
    /// Bind `addr`; serve the exposition on `path` once [`Exporter::serve`]
    /// runs.
    pub async fn bind(
        addr: SocketAddr,
        path: &str,
        source: Arc<dyn Source>,
    ) -> std::io::Result<Self> {
        handle();
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            path: path.to_string(),
            inner: Arc::new(Inner {
                source,
                marks: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve scrapes until `stop` fires.
    pub async fn serve(self, stop: CancellationToken) -> std::io::Result<()> {
        let app = Router::new()
            .route(&self.path, get(scrape))
            .with_state(self.inner);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    }

    /// Collect and render once, as a scrape does (for embedding and tests).
    pub async fn render(&self) -> String {
        render(&self.inner).await
    }
}

async fn scrape(State(inner): State<Arc<Inner>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&inner).await,
    )
}

async fn render(inner: &Inner) -> String {
    let snap = inner.source.snapshot().await;
    let now = Instant::now();
    let mut live: HashSet<&str> = HashSet::new();
    let mut fps_of: Vec<(&StreamSample, f64)> = Vec::with_capacity(snap.streams.len());
    {
        let mut marks = inner.marks.lock().unwrap_or_else(PoisonError::into_inner);
        marks.retain(|code, _| snap.streams.iter().any(|s| &s.code == code));
        for s in &snap.streams {
            live.insert(&s.code);
            let fps = match marks.get(&s.code) {
                Some(m) if s.video_frames < m.frames => 0.0,
                Some(m) if now.duration_since(m.at).as_secs_f64() < 0.5 => m.fps,
                Some(m) => {
                    (s.video_frames - m.frames) as f64 / now.duration_since(m.at).as_secs_f64()
                }
                // First sight: the average since the start.
                None if s.uptime_seconds > 0.0 => s.video_frames as f64 / s.uptime_seconds,
                None => 0.0,
            };
            let keep = marks.get(&s.code).is_some_and(|m| {
                s.video_frames >= m.frames && now.duration_since(m.at).as_secs_f64() < 0.5
            });
            if !keep {
                marks.insert(
                    s.code.clone(),
                    FrameMark {
                        frames: s.video_frames,
                        at: now,
                        fps,
                    },
                );
            }
            init_event_counters(&s.code);
            fps_of.push((s, fps));
        }
    }
    gauge!(STREAMS_RUNNING).set(snap.streams.len() as f64);
    for h in &snap.hooks {
        let t = h.kind.as_str();
        counter!(HOOK_DELIVERIES_TOTAL, "type" => t).absolute(h.delivered);
        counter!(HOOK_FAILURES_TOTAL, "type" => t).absolute(h.failed);
        counter!(HOOK_DROPPED_TOTAL, "type" => t).absolute(h.dropped);
        gauge!(HOOK_BUFFERED, "type" => t).set(h.buffered as f64);
    }
    counter!(EVENTS_PUBLISHED_TOTAL).absolute(snap.events_published);
    counter!(EVENTS_DROPPED_TOTAL).absolute(snap.events_dropped);
    let h = handle();
    h.run_upkeep();
    let mut out = only_live(&h.render(), &live);
    streams_text(&fps_of, &mut out);
    process_text(&process::sample(), &mut out);
    out
}

/// Process series, written directly (the CPU counter is fractional, which
/// the facade's integer counters cannot carry).
fn process_text(p: &process::ProcessSample, out: &mut String) {
    use std::fmt::Write;
    let series = [
        (PROCESS_CPU_SECONDS_TOTAL, "counter", p.cpu_seconds),
        (
            PROCESS_RESIDENT_MEMORY_BYTES,
            "gauge",
            p.resident_bytes.map(|v| v as f64),
        ),
        (PROCESS_OPEN_FDS, "gauge", p.open_fds.map(|v| v as f64)),
        (PROCESS_THREADS, "gauge", p.threads.map(|v| v as f64)),
    ];
    for (name, kind, value) in series {
        let Some(value) = value else { continue };
        let help = ALL.iter().find(|m| m.0 == name).map_or("", |m| m.3);
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }
}

/// Event-counted series exist (at 0) from a stream's start, so that
/// rate() and increase() see its first event.
fn init_event_counters(code: &str) {
    for name in [
        INPUT_FAILOVERS_TOTAL,
        INPUT_DEGRADED_TOTAL,
        TRANSCODER_ERRORS_TOTAL,
    ] {
        counter!(name, "stream" => code.to_owned()).increment(0);
    }
}

type Get = fn(&StreamSample, f64) -> Option<f64>;

/// The per-stream series of the snapshot, written directly: their values
/// are the components' own counters, which restart from 0 with a stream
/// (the facade's counters could only grow), and a stopped stream simply has
/// no sample.
const STREAM_SERIES: [(&str, Get); 15] = [
    (STREAM_UP, |s, _| Some(if s.up { 1.0 } else { 0.0 })),
    (STREAM_UPTIME_SECONDS, |s, _| Some(s.uptime_seconds)),
    (STREAM_ACTIVE_INPUT_PRIORITY, |s, _| {
        Some(s.active_input_priority.map_or(-1.0, f64::from))
    }),
    (INPUT_BYTES_TOTAL, |s, _| Some(s.input_bytes as f64)),
    (INPUT_RATE_BYTES, |s, _| Some(s.input_bytes_per_second)),
    (INPUT_RECONNECTS_TOTAL, |s, _| {
        Some(s.input_reconnects as f64)
    }),
    (VIDEO_FRAMES_TOTAL, |s, _| Some(s.video_frames as f64)),
    (VIDEO_FPS, |_, fps| Some(fps)),
    (HUB_CHUNKS_TOTAL, |s, _| {
        s.hub.map(|h| h.chunks_total as f64)
    }),
    (HUB_BUFFER_CHUNKS, |s, _| {
        s.hub.map(|h| h.chunks_total.min(h.capacity) as f64)
    }),
    (HUB_BUFFER_CAPACITY_CHUNKS, |s, _| {
        s.hub.map(|h| h.capacity as f64)
    }),
    (HUB_READER_DEPTH_CHUNKS, |s, _| {
        s.hub.map(|h| h.depth as f64)
    }),
    (HUB_READERS, |s, _| s.hub.map(|h| h.readers as f64)),
    (HUB_DROPPED_CHUNKS_TOTAL, |s, _| {
        s.hub.map(|h| h.dropped_total as f64)
    }),
    (HUB_READER_LAGS_TOTAL, |s, _| {
        s.hub.map(|h| h.lags_total as f64)
    }),
];

/// Whether `name` is written by [`streams_text`] (not by the recorder).
pub(crate) fn is_scraped(name: &str) -> bool {
    STREAM_SERIES.iter().any(|(n, _)| *n == name)
}

fn streams_text(streams: &[(&StreamSample, f64)], out: &mut String) {
    use std::fmt::Write;
    for (name, get) in STREAM_SERIES {
        let Some((_, kind, _, help)) = ALL.iter().find(|m| m.0 == name) else {
            continue;
        };
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let mut header = false;
        for (s, fps) in streams {
            let Some(v) = get(s, *fps).filter(|v| v.is_finite()) else {
                continue;
            };
            if !header {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                header = true;
            }
            let _ = writeln!(out, "{name}{{stream=\"{}\"}} {v}", escape(&s.code));
        }
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition without the samples of streams that are not running
/// (and without the HELP/TYPE lines of families left empty).
fn only_live(text: &str, live: &HashSet<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    // HELP/TYPE lines of the family being read, written before its first
    // kept sample.
    let mut header = String::new();
    let mut family = "";
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let name = rest.split(' ').next().unwrap_or("");
            if name != family {
                header.clear();
                family = name;
            }
            header.push_str(line);
            header.push('\n');
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(code) = stream_label(line)
            && !live.contains(code)
        {
            continue;
        }
        out.push_str(&header);
        header.clear();
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The value of the `stream` label of a sample line.
fn stream_label(line: &str) -> Option<&str> {
    let labels = &line[line.find('{')? + 1..line.find('}')?];
    labels.split(',').find_map(|kv| {
        kv.trim()
            .strip_prefix("stream=\"")
            .and_then(|v| v.strip_suffix('"'))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stopped_streams_and_empty_families_are_left_out() {
        let text = "# HELP a_total A\n# TYPE a_total counter\na_total{stream=\"on\"} 1\na_total{stream=\"off\"} 2\n\n\
                    # HELP b B\n# TYPE b gauge\nb{format=\"hls\",stream=\"off\"} 3\n\n\
                    # TYPE c gauge\nc 4\n";
        let live: HashSet<&str> = ["on"].into_iter().collect();
        assert_eq!(
            only_live(text, &live),
            "# HELP a_total A\n# TYPE a_total counter\na_total{stream=\"on\"} 1\n# TYPE c gauge\nc 4\n"
        );
    }

    #[test]
    fn stream_series_are_written_per_running_stream() {
        let a = StreamSample {
            code: "a".into(),
            up: true,
            input_bytes: 10,
            ..StreamSample::default()
        };
        let b = StreamSample {
            code: "b".into(),
            hub: Some(HubSample {
                chunks_total: 5,
                capacity: 3,
                ..HubSample::default()
            }),
            ..StreamSample::default()
        };
        let mut out = String::new();
        streams_text(&[(&a, 25.0), (&b, f64::NAN)], &mut out);
        assert!(out.contains("# TYPE open_streamer_input_bytes_total counter\nopen_streamer_input_bytes_total{stream=\"a\"} 10\nopen_streamer_input_bytes_total{stream=\"b\"} 0\n"), "{out}");
        assert!(out.contains("open_streamer_video_frames_per_second{stream=\"a\"} 25\n"));
        assert!(
            !out.contains("open_streamer_video_frames_per_second{stream=\"b\"}"),
            "NaN left out"
        );
        assert!(out.contains("open_streamer_hub_buffer_chunks{stream=\"b\"} 3\n"));
        assert!(
            !out.contains("open_streamer_hub_buffer_chunks{stream=\"a\"}"),
            "no hub, no sample"
        );
        assert_eq!(out.matches("# HELP open_streamer_stream_up ").count(), 1);
        assert_eq!(escape("x\"y\\"), "x\\\"y\\\\");
    }

    #[test]
    fn stream_label_is_found_among_others() {
        assert_eq!(stream_label("x{a=\"1\",stream=\"s-1\"} 2"), Some("s-1"));
        assert_eq!(stream_label("x{streams=\"no\"} 2"), None);
        assert_eq!(stream_label("x 2"), None);
    }
}
