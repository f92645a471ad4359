//! Publishing to HLS and DASH: time from starting an RTMP publisher until
//! the playlist (MPD) lists a segment and that segment downloads.
//!
//! `cargo bench -p open-streamer --bench hls_publish` (part of `make bench`).
//! Trials: `BENCH_RUNS` (3), one fresh stream each. Knob: `BENCH_BITRATE`
//! (1M video). Needs ffmpeg and curl. (Many streams published at once: the
//! `rtmp_ingest` bench, "Ingest density".)
//!
//! The publisher is `ffmpeg -re -stream_loop -1 -c copy` of one pre-encoded
//! FLV (854x480, GOP 2 s, AAC), so encoding costs nothing while measuring.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use os_bench::{Better, Figure, Goal, OURS, emit, runs};
use support::{Server, asked_to_bench, curl, env_or, make_source, publish};

const SCENARIO: &str = "HLS and DASH publish";

/// Time from starting the publisher until the playlist (MPD) lists a
/// segment and that segment downloads.
fn first_playable(server: &Server, file: &Path, code: &str) -> (f64, f64) {
    server.add_stream(code, true, true);
    let t0 = Instant::now();
    let _publisher = publish(file, &server.rtmp_url(code));
    let (mut hls, mut dash) = (None, None);
    let deadline = t0 + Duration::from_secs(30);
    while (hls.is_none() || dash.is_none()) && Instant::now() < deadline {
        if hls.is_none() {
            let text = curl(&["-sf", &format!("{}/{code}/index.m3u8", server.base)]);
            if let Some(seg) = text
                .as_deref()
                .map(support::playlist_segments)
                .and_then(|s| s.into_iter().next())
                && curl(&[
                    "-sf",
                    "-o",
                    "/dev/null",
                    &format!("{}/{code}/{seg}", server.base),
                ])
                .is_some()
            {
                hls = Some(t0.elapsed().as_secs_f64());
            }
        }
        if dash.is_none() {
            let text =
                curl(&["-sf", &format!("{}/{code}/index.mpd", server.base)]).unwrap_or_default();
            // The first media segment of the video representation.
            let rep = text
                .split("<Representation id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned);
            let start = text
                .split("startNumber=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned);
            if let (Some(rep), Some(n)) = (rep, start)
                && curl(&[
                    "-sf",
                    "-o",
                    "/dev/null",
                    &format!("{}/{code}/seg_{rep}_{n}.m4s", server.base),
                ])
                .is_some()
            {
                dash = Some(t0.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (
        hls.unwrap_or_else(|| panic!("{code}: no HLS segment within 30 s")),
        dash.unwrap_or_else(|| panic!("{code}: no DASH segment within 30 s")),
    )
}

fn main() {
    if !asked_to_bench("hls_publish") {
        return;
    }
    let bitrate: String = env_or("BENCH_BITRATE", "1M".to_string());
    let trials = runs();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "854x480", &bitrate, 10);

    // One stream at a time on an otherwise idle server, one per trial.
    let server = Server::start(dir.path(), &[]);
    let hls = Figure::new(
        SCENARIO,
        "HLS (index.m3u8 lists a segment, segment downloads)",
        "publish → first playable",
        "s",
        Better::Lower,
    )
    .goal(Goal::Absolute { value: 2.5 });
    let dash = Figure {
        case: "DASH (index.mpd lists a segment, segment downloads)".into(),
        ..hls.clone()
    };
    println!("publish → first playable, segment_duration 2 s, {trials} trials");
    for trial in 1..=trials {
        let (h, d) = first_playable(&server, &file, &format!("lat{trial}"));
        println!("  trial {trial}: first HLS segment playable after {h:.2} s, DASH after {d:.2} s");
        emit(&hls.value(OURS, trial, h));
        emit(&dash.value(OURS, trial, d));
    }
}
