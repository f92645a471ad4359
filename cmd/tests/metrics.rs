//! Prometheus metrics end to end: the real server (in-process, port 0) runs
//! a stream from a real file source with HLS on; its metrics endpoint is
//! scraped over HTTP, the series are checked for sane values, `promtool
//! check metrics` must accept the exposition, and the Grafana dashboard
//! must only use series the exporter produces.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, call, config, serve};
use open_streamer::App;
use reqwest::Method;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Samples of one exposition: `name{labels}` → value.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from:\n{}", self.text))
    }

    /// Metric families present (names of the samples).
    fn families(&self) -> BTreeSet<String> {
        self.samples
            .keys()
            .map(|k| k.split('{').next().unwrap().to_string())
            .collect()
    }

    fn mentions(&self, needle: &str) -> bool {
        self.samples.keys().any(|k| k.contains(needle))
    }
}

async fn scrape(client: &reqwest::Client, addr: SocketAddr) -> Scrape {
    let resp = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        samples.insert(series.to_string(), value.parse::<f64>().unwrap());
    }
    Scrape { text, samples }
}

/// `promtool check metrics` on the exposition: (success, output).
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (Debian package prometheus; make test-deps): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), msg)
}

async fn wait_active(s: &Server, code: &str, priority: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
        if body["data"]["status"] == "active" && body["data"]["active_input"] == priority {
            return;
        }
        assert!(Instant::now() < deadline, "{code} not active: {body:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every `open_streamer_*` name used in the dashboard's queries.
fn dashboard_names() -> BTreeSet<String> {
    let path = root().join("docs/grafana/open-streamer.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut exprs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if (k == "expr" || k == "query") && v.is_string() {
                        out.push(v.as_str().unwrap().to_string());
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&doc, &mut exprs);
    assert!(exprs.len() >= 10, "dashboard has {} queries", exprs.len());
    let mut names = BTreeSet::new();
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("open_streamer_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_stream_is_scraped_with_sane_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("data"), "");
    c.publisher.hls.dir = dir.path().join("hls").display().to_string();
    c.publisher.hls.segment_duration = 1.0;
    let app = App::bind(c).await.unwrap();
    let maddr = app.metrics_addr().expect("metrics endpoint bound");
    assert!(maddr.ip().is_loopback() && maddr.port() != 0);
    let s = serve(app);
    let client = reqwest::Client::new();

    // Other paths are not the exposition.
    let resp = client
        .get(format!("http://{maddr}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    let file = root().join("data/testdata/h264_aac.ts");
    let url = format!("file://{}?loop=true", file.display());
    let once = format!("file://{}", file.display());
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/metered",
        // Priority 1 plays the 3 s file once; when it ends the stream fails
        // over to priority 3, the same file looped.
        Some(json!({
            "inputs": [
                {"url": once, "priority": 1},
                {"url": url, "priority": 3}
            ],
            "protocols": {"hls": true}
        })),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        call(&s, Method::POST, "/streams/metered/start", None)
            .await
            .0,
        200
    );
    wait_active(&s, "metered", 3).await;
    // Long enough for HLS segments (1 s) and a bitrate figure.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let a = scrape(&client, maddr).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let b = scrape(&client, maddr).await;

    let m = |name: &str| format!("{name}{{stream=\"metered\"}}");
    let bytes = (
        a.get(&m("open_streamer_input_bytes_total")),
        b.get(&m("open_streamer_input_bytes_total")),
    );
    assert!(bytes.0 > 0.0 && bytes.1 > bytes.0, "bytes {bytes:?}");
    let uptime = (
        a.get(&m("open_streamer_stream_uptime_seconds")),
        b.get(&m("open_streamer_stream_uptime_seconds")),
    );
    assert!(
        uptime.0 > 2.0 && uptime.1 - uptime.0 > 1.5 && uptime.1 - uptime.0 < 6.0,
        "uptime {uptime:?}"
    );
    assert_eq!(b.get(&m("open_streamer_stream_active_input_priority")), 3.0);
    assert_eq!(b.get(&m("open_streamer_stream_up")), 1.0);
    assert!(b.get(&m("open_streamer_input_failovers_total")) >= 1.0);
    assert!(b.get(&m("open_streamer_input_degraded_total")) >= 1.0);
    assert_eq!(b.get(&m("open_streamer_transcoder_errors_total")), 0.0);
    let bitrate = b.get(&m("open_streamer_input_rate_bytes_per_second")) * 8.0;
    // The test file is ~150 kbit/s, read at its own pace.
    assert!(
        (30_000.0..1_000_000.0).contains(&bitrate),
        "bitrate {bitrate}"
    );
    let fps = b.get(&m("open_streamer_video_frames_per_second"));
    assert!((15.0..=35.0).contains(&fps), "fps {fps} (source: 25)");
    assert!(
        b.get(&m("open_streamer_video_frames_total"))
            > a.get(&m("open_streamer_video_frames_total"))
    );
    assert!(b.get(&m("open_streamer_hub_chunks_total")) > 0.0);
    assert!(b.get(&m("open_streamer_hub_buffer_chunks")) > 0.0);
    assert!(
        b.get(&m("open_streamer_hub_readers")) >= 1.0,
        "the HLS reader"
    );
    assert!(b.get(&m("open_streamer_hub_reader_depth_chunks")) >= 0.0);
    assert_eq!(b.get(&m("open_streamer_hub_dropped_chunks_total")), 0.0);
    let segs = b.get("open_streamer_segments_written_total{stream=\"metered\",format=\"hls\"}");
    assert!(segs >= 2.0, "hls segments {segs}");
    assert_eq!(b.get("open_streamer_streams_running"), 1.0);
    assert!(b.get("open_streamer_process_resident_memory_bytes") > 1e6);
    assert!(b.get("open_streamer_process_cpu_seconds_total") > 0.0);
    assert!(b.get("open_streamer_process_threads") >= 2.0);
    assert_eq!(
        b.get("open_streamer_hook_deliveries_total{type=\"http\"}"),
        0.0
    );
    assert!(
        b.get("open_streamer_events_published_total") >= 2.0,
        "created + started"
    );

    let (ok, out) = promtool(&b.text);
    assert!(
        ok,
        "promtool check metrics rejected the exposition:\n{out}\n{}",
        b.text
    );
    eprintln!(
        "scrape: {} samples, {} families; bytes {:.0} -> {:.0}, fps {fps:.1}, bitrate {bitrate:.0} b/s, \
         uptime {:.1} s, hls segments {segs}",
        b.samples.len(),
        b.families().len(),
        bytes.0,
        bytes.1,
        uptime.1
    );

    // The component helpers produce valid series too (their components are
    // not built yet; a stream that is not running is left out).
    os_metrics::transcoder_restart("metered");
    os_metrics::dvr_segment_written("metered", 4096);
    os_metrics::viewers("metered", os_metrics::Protocol::Rtsp, 2);
    os_metrics::push_destinations("metered", os_metrics::PushState::Active, 1);
    os_metrics::segment_written("metered", os_metrics::Format::Dash);
    os_metrics::transcoder_restart("not-running");
    let h = scrape(&client, maddr).await;
    assert_eq!(h.get(&m("open_streamer_transcoder_restarts_total")), 1.0);
    assert_eq!(h.get(&m("open_streamer_dvr_bytes_total")), 4096.0);
    assert_eq!(h.get(&m("open_streamer_dvr_segments_total")), 1.0);
    assert_eq!(
        h.get("open_streamer_viewers{stream=\"metered\",protocol=\"rtsp\"}"),
        2.0
    );
    assert_eq!(
        h.get("open_streamer_push_destinations{stream=\"metered\",state=\"active\"}"),
        1.0
    );
    assert!(!h.mentions("not-running"));
    let (ok, out) = promtool(&h.text);
    assert!(ok, "promtool:\n{out}\n{}", h.text);

    // The dashboard uses only series the exporter produces.
    let used = dashboard_names();
    let have = h.families();
    let missing: Vec<_> = used.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "dashboard uses {missing:?}, not exported"
    );
    let documented = std::fs::read_to_string(root().join("docs/METRICS.md")).unwrap();
    for (name, ..) in os_metrics::names::ALL {
        assert!(documented.contains(name), "{name} not in docs/METRICS.md");
        assert!(have.contains(*name), "{name} not exported");
    }

    // Stopped: the stream's series are gone at once.
    let (_, body) = call(&s, Method::POST, "/streams/metered/stop", None).await;
    assert_eq!(body["data"]["status"], "stopped");
    let c = scrape(&client, maddr).await;
    assert!(!c.mentions("stream=\"metered\""), "{}", c.text);
    assert_eq!(c.get("open_streamer_streams_running"), 0.0);
    let (ok, out) = promtool(&c.text);
    assert!(ok, "promtool:\n{out}");

    // Started again: its counters start again from 0 (a counter reset, as
    // Prometheus expects), they do not stay at the old run's value.
    assert_eq!(
        call(&s, Method::POST, "/streams/metered/start", None)
            .await
            .0,
        200
    );
    wait_active(&s, "metered", 1).await;
    let d = scrape(&client, maddr).await;
    let again = d.get(&m("open_streamer_input_bytes_total"));
    assert!(
        again > 0.0 && again < bytes.1,
        "after restart {again}, before {}",
        bytes.1
    );
    assert!(d.get(&m("open_streamer_stream_uptime_seconds")) < uptime.1);
    assert_eq!(d.get(&m("open_streamer_stream_active_input_priority")), 1.0);
    // Event counters keep counting across the restart (process lifetime).
    assert!(d.get(&m("open_streamer_input_failovers_total")) >= 1.0);
    s.stop().await;
}
