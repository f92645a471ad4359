//! Publishing to HLS: (1) publish → first playable playlist latency, and
//! (2) N streams published at once (RTMP push) with HLS on: server CPU and
//! RSS per stream, against nginx-rtmp with `hls on` in the same run (and
//! open-streamer with HLS off, to isolate the HLS cost).
//!
//! `cargo bench -p open-streamer --bench hls_publish` (part of `make bench`).
//! Knobs: `BENCH_STREAMS` (100), `BENCH_SECONDS` (20, measurement window),
//! `BENCH_BITRATE` (1M video), `BENCH_LATENCY_RUNS` (5).
//! Needs ffmpeg, curl, nginx with libnginx-mod-rtmp (comparison).
//!
//! Publishers are `ffmpeg -re -stream_loop -1 -c copy` of one pre-encoded FLV
//! (854x480, GOP 2 s, AAC), so encoding costs nothing while measuring.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Proc, Server, asked_to_bench, curl, env_or, free_port, make_source, nginx, publish};

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

struct Measure {
    cpu_percent: f64,
    rss_kib: u64,
    alive: usize,
}

fn measure(
    pids: &dyn Fn() -> Vec<u32>,
    pubs: &mut [Proc],
    warmup: Duration,
    window: Duration,
) -> Measure {
    std::thread::sleep(warmup);
    let (cpu0, _) = support::sample_all(&pids()).unwrap_or((0.0, 0));
    let t0 = Instant::now();
    std::thread::sleep(window);
    let (cpu1, rss) = support::sample_all(&pids()).unwrap_or((0.0, 0));
    let alive = pubs
        .iter_mut()
        .map(|p| matches!(p.0.try_wait(), Ok(None)))
        .filter(|alive| *alive)
        .count();
    Measure {
        cpu_percent: (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0,
        rss_kib: rss,
        alive,
    }
}

/// Streams whose playlist lists at least one segment.
fn playlists_ok(fetch: &dyn Fn(usize) -> Option<String>, n: usize) -> usize {
    (0..n)
        .filter(|i| fetch(*i).is_some_and(|t| !support::playlist_segments(&t).is_empty()))
        .count()
}

fn run_ours(
    dir: &Path,
    file: &Path,
    n: usize,
    hls: bool,
    warmup: Duration,
    window: Duration,
) -> (Measure, usize) {
    let server = Server::start(dir, &[]);
    for i in 0..n {
        server.add_stream(&format!("s{i}"), hls, false);
    }
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &server.rtmp_url(&format!("s{i}"))))
        .collect();
    let pid = server.pid();
    let m = measure(&|| vec![pid], &mut pubs, warmup, window);
    let base = server.base.clone();
    let ok = if hls {
        playlists_ok(&|i| curl(&["-sf", &format!("{base}/s{i}/index.m3u8")]), n)
    } else {
        0
    };
    drop(pubs);
    drop(server);
    (m, ok)
}

fn run_nginx(
    dir: &Path,
    file: &Path,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Option<(Measure, usize)> {
    if !support::nginx_available(true) {
        println!(
            "nginx-rtmp: not installed (apt-get install -y nginx libnginx-mod-rtmp); comparison skipped"
        );
        return None;
    }
    let port = free_port();
    let hls_dir = dir.join("nginx-hls");
    std::fs::create_dir_all(&hls_dir).ok()?;
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
         application live {{ live on; record off; hls on; hls_path {}; hls_fragment 2s; hls_playlist_length 12s; }} }} }}",
        hls_dir.display()
    );
    let ng = nginx(
        &dir.join("nginx"),
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\nmaster_process off;\n",
        &conf,
        "1",
    );
    let mut pubs: Vec<Proc> = (0..n)
        .map(|i| publish(file, &format!("rtmp://127.0.0.1:{port}/live/s{i}")))
        .collect();
    let pid = ng.0.id();
    let m = measure(&|| vec![pid], &mut pubs, warmup, window);
    let ok = playlists_ok(
        &|i| std::fs::read_to_string(hls_dir.join(format!("s{i}.m3u8"))).ok(),
        n,
    );
    drop(pubs);
    drop(ng);
    Some((m, ok))
}

fn main() {
    if !asked_to_bench("hls_publish") {
        return;
    }
    let n: usize = env_or("BENCH_STREAMS", 100);
    let secs: u64 = env_or("BENCH_SECONDS", 20);
    let bitrate: String = env_or("BENCH_BITRATE", "1M".to_string());
    let runs: usize = env_or("BENCH_LATENCY_RUNS", 5);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "854x480", &bitrate, 10);

    // (1) Latency, one stream at a time on an otherwise idle server.
    let lat_dir = dir.path().join("latency");
    std::fs::create_dir_all(&lat_dir).unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(&lat_dir, &[]);
    let mut hls = Vec::new();
    let mut dash = Vec::new();
    for k in 0..runs {
        let (h, d) = first_playable(&server, &file, &format!("lat{k}"));
        println!("  run {k}: first HLS segment playable after {h:.2} s, DASH after {d:.2} s");
        hls.push(h);
        dash.push(d);
    }
    drop(server);
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (hm, hx) = stats(&mut hls);
    let (dm, dx) = stats(&mut dash);
    println!();
    println!("publish → first playable (segment_duration 2 s; goal ≤ 2.5 s), {runs} runs:");
    println!("| output | median | max |");
    println!("|---|---:|---:|");
    println!("| HLS (index.m3u8 lists a segment, segment downloads) | {hm:.2} s | {hx:.2} s |");
    println!("| DASH (index.mpd lists a segment, segment downloads) | {dm:.2} s | {dx:.2} s |");
    println!();

    // (2) N streams at once.
    let warmup = Duration::from_secs(10);
    let window = Duration::from_secs(secs);
    println!(
        "{n} RTMP publishers x {bitrate}b/s 854x480 video + 128 kb/s audio, {secs} s window after {} s warm-up",
        warmup.as_secs()
    );
    let on_dir = dir.path().join("on");
    let off_dir = dir.path().join("off");
    for d in [&on_dir, &off_dir] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    let (on, on_ok) = run_ours(&on_dir, &file, n, true, warmup, window);
    let (off, _) = run_ours(&off_dir, &file, n, false, warmup, window);
    let ng = run_nginx(dir.path(), &file, n, warmup, window);
    println!();
    println!(
        "| server | publishers alive | playlists with segments | CPU (% of one core) | CPU / stream | RSS | RSS / stream |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    let row = |name: &str, m: &Measure, ok: Option<usize>| {
        println!(
            "| {name} | {}/{n} | {} | {:.1} % | {:.2} % | {:.1} MiB | {:.2} MiB |",
            m.alive,
            ok.map_or("—".to_string(), |k| format!("{k}/{n}")),
            m.cpu_percent,
            m.cpu_percent / n as f64,
            m.rss_kib as f64 / 1024.0,
            m.rss_kib as f64 / 1024.0 / n as f64
        )
    };
    row("open-streamer, HLS on", &on, Some(on_ok));
    row("open-streamer, HLS off (ingest only)", &off, None);
    if let Some((m, ok)) = &ng {
        row("nginx-rtmp, hls on", m, Some(*ok));
        println!();
        println!(
            "ratio open-streamer (HLS on) / nginx-rtmp (hls on): CPU {:.2}, RSS {:.2}",
            on.cpu_percent / m.cpu_percent.max(0.01),
            on.rss_kib as f64 / (m.rss_kib as f64).max(1.0)
        );
    }
    println!(
        "HLS cost per stream (on − off): CPU {:.3} % of a core, RSS {:.2} MiB",
        (on.cpu_percent - off.cpu_percent) / n as f64,
        (on.rss_kib as f64 - off.rss_kib as f64) / 1024.0 / n as f64
    );
}
