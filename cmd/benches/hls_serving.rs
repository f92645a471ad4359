//! HLS segment serving: `wrk` GETs per second from open-streamer's media
//! route vs nginx serving a copy of the same files, in the same run.
//!
//! `cargo bench -p open-streamer --bench hls_serving` (part of `make bench`).
//! Knobs: `BENCH_SECONDS` (10, per wrk run), `BENCH_CONNECTIONS` (32),
//! `BENCH_BITRATE` (2M video). Needs ffmpeg, wrk and nginx (Debian).
//!
//! One stream is published (RTMP push of a pre-encoded 1280x720 source) until
//! its playlist lists a full window; then the publisher stops so the files
//! stay put, and they are copied for nginx (`sendfile on`, access log off,
//! as many workers as CPUs). wrk requests the listed segments round-robin
//! (and, separately, the playlist); the two servers alternate, `BENCH_RUNS`
//! (3) trials each (`BENCH_QUICK=1`: 4 s per wrk run).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use os_bench::{Better, Figure, Goal, OURS, emit, runs};
use support::{Server, asked_to_bench, curl, env_or, free_port, make_source, nginx, publish};

const SCENARIO: &str = "HLS serving";
const NGINX: &str = "nginx";

struct Wrk {
    rps: f64,
    /// Server CPU (user + system) per request, microseconds.
    cpu_us: f64,
    transfer: String,
    non_2xx: u64,
    p99: String,
}

/// Run wrk against `url` while sampling the CPU time of `pids`.
fn wrk(url: &str, pids: &[u32], script: &Path, secs: u64, conns: u32) -> Wrk {
    let (cpu0, _) = support::sample_all(pids).unwrap_or((0.0, 0));
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("wrk is required (apt-get install -y wrk): {e}"));
    let (cpu1, _) = support::sample_all(pids).unwrap_or((0.0, 0));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk failed: {text}");
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0.0);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    Wrk {
        cpu_us: (cpu1 - cpu0) * 1e6 / requests.max(1.0),
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in {text}")),
        transfer: field("Transfer/sec:").unwrap_or_default(),
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        p99: field("99%").unwrap_or_default(),
    }
}

fn script(dir: &Path, name: &str, paths: &[String]) -> std::path::PathBuf {
    let list: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
    let lua = format!(
        "local paths = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n",
        list.join(", ")
    );
    let path = dir.join(name);
    std::fs::write(&path, lua).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn main() {
    if !asked_to_bench("hls_serving") {
        return;
    }
    let secs: u64 = env_or("BENCH_SECONDS", if support::quick() { 4 } else { 10 });
    let conns: u32 = env_or("BENCH_CONNECTIONS", 32);
    let bitrate: String = env_or("BENCH_BITRATE", "2M".to_string());
    assert!(
        support::nginx_available(false),
        "nginx is required (apt-get install -y nginx)"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = make_source(dir.path(), "1280x720", &bitrate, 10);

    let server = Server::start(dir.path(), &[]);
    server.add_stream("bench", true, false);
    let publisher = publish(&file, &server.rtmp_url("bench"));
    let playlist_url = format!("{}/bench/index.m3u8", server.base);
    let deadline = Instant::now() + Duration::from_secs(40);
    let segments = loop {
        let text = curl(&["-sf", &playlist_url]).unwrap_or_default();
        let segs = support::playlist_segments(&text);
        if segs.len() >= 6 {
            break segs;
        }
        assert!(Instant::now() < deadline, "playlist never filled: {text}");
        std::thread::sleep(Duration::from_millis(250));
    };
    // Freeze the files: no new segment, no deletion during the runs.
    drop(publisher);
    std::thread::sleep(Duration::from_secs(1));
    let stream_dir = server.hls_dir.join("bench");
    let sizes: Vec<u64> = segments
        .iter()
        .map(|s| {
            std::fs::metadata(stream_dir.join(s))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        sizes.iter().all(|s| *s > 0),
        "segments missing on disk: {segments:?}"
    );
    let mean_kb = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64 / 1024.0;

    let root = dir.path().join("nginx-root");
    copy_dir(&stream_dir, &root.join("bench"));
    let port = free_port();
    let conf = format!(
        "http {{\n  sendfile on;\n  tcp_nopush on;\n  access_log off;\n  keepalive_requests 100000;\n\
         types {{ video/mp2t ts; application/vnd.apple.mpegurl m3u8; }}\n\
         server {{ listen 127.0.0.1:{port}; root {}; }}\n}}",
        root.display()
    );
    let ng = nginx(&dir.path().join("nginx"), "", &conf, "auto");
    let nginx_base = format!("http://127.0.0.1:{port}");
    assert!(
        curl(&[
            "-sf",
            "-o",
            "/dev/null",
            &format!("{nginx_base}/bench/{}", segments[0])
        ])
        .is_some(),
        "nginx does not serve the copy"
    );

    let paths: Vec<String> = segments.iter().map(|s| format!("/bench/{s}")).collect();
    let seg_script = script(dir.path(), "segments.lua", &paths);
    let pl_script = script(
        dir.path(),
        "playlist.lua",
        &["/bench/index.m3u8".to_string()],
    );
    let trials = runs();
    println!(
        "{} segments of {mean_kb:.0} KiB mean ({bitrate}b/s video), wrk -t2 -c{conns} -d{secs}s, servers alternate, {trials} trials",
        segments.len()
    );
    for (what, script) in [("segment", &seg_script), ("playlist", &pl_script)] {
        let rps = Figure::new(SCENARIO, what, "GETs per second", "GET/s", Better::Higher).goal(
            Goal::Ratio {
                peer: NGINX.into(),
                ratio: 0.9,
            },
        );
        let cpu = Figure::new(SCENARIO, what, "server CPU per GET", "µs", Better::Lower);
        for trial in 1..=trials {
            let o = wrk(&server.base, &[server.pid()], script, secs, conns);
            let mut ng_pids = vec![ng.0.id()];
            ng_pids.extend(support::children(ng.0.id()));
            let n = wrk(&nginx_base, &ng_pids, script, secs, conns);
            assert_eq!(o.non_2xx, 0, "open-streamer answered errors");
            assert_eq!(n.non_2xx, 0, "nginx answered errors");
            println!(
                "  trial {trial}: {what} open-streamer {:.0}/s ({}/s, {:.0} µs CPU/GET, p99 {}), nginx {:.0}/s ({}/s, {:.0} µs CPU/GET, p99 {})",
                o.rps, o.transfer, o.cpu_us, o.p99, n.rps, n.transfer, n.cpu_us, n.p99
            );
            emit(&rps.value(OURS, trial, o.rps));
            emit(&rps.value(NGINX, trial, n.rps));
            emit(&cpu.value(OURS, trial, o.cpu_us));
            emit(&cpu.value(NGINX, trial, n.cpu_us));
        }
    }
    drop(ng);
    drop(server);
}
