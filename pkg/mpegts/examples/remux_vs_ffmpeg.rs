//! Demux → mux CPU time of this crate versus `ffmpeg -c copy` on the same
//! large TS file.
//!
//! ```text
//! cargo run --release -p os-mpegts --example remux_vs_ffmpeg -- [--source FILE] [--size-mb N] [--dir DIR] [--keep] [--repeat N] [--audio-frames-per-pes N]
//! ```
//!
//! Without `--source`, a 10 s 1280x720 H.264 (~6 Mbit/s, keyframe every
//! 50 frames) + AAC clip is encoded first. The source is looped with
//! `ffmpeg -stream_loop` into a ~N MB (default 500) TS file in DIR (default:
//! the system temp dir), which is deleted afterwards unless `--keep`.
//!
//! Our side reads the file in 1 MiB chunks, demuxes, and muxes every unit
//! into a reused buffer (discarded, like ffmpeg's `/dev/null`). CPU time is
//! the thread's on-CPU time (`/proc/thread-self/schedstat`); ffmpeg's is its
//! user + system time as reported by the shell's `times` builtin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use os_mpegts::{Demuxer, Event, Muxer, MuxerConfig};

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg must be installed");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// On-CPU time of the calling thread, seconds.
fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: f64 = s
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    ns / 1e9
}

/// User + system CPU time of this process (excluding children), seconds,
/// from `/proc/self/stat` (clock ticks, assumed 100 Hz).
fn process_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14th and 15th overall.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Run a shell command and return its children's user + system CPU seconds.
fn child_cpu(cmd: &str) -> f64 {
    let out = Command::new("bash")
        .args(["-c", &format!("{cmd} >/dev/null 2>&1; times")])
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    // Second line: children's user and system time as "XmY.ZZZs XmY.ZZZs".
    let line = text.lines().nth(1).unwrap_or_default();
    line.split_whitespace()
        .map(|t| {
            let t = t.trim_end_matches('s');
            let (m, s) = t.split_once('m').unwrap_or(("0", t));
            m.parse::<f64>().unwrap_or(0.0) * 60.0 + s.parse::<f64>().unwrap_or(0.0)
        })
        .sum()
}

struct Stats {
    cpu: f64,
    process_cpu: f64,
    wall: f64,
    units: usize,
    out_bytes: usize,
}

fn our_remux(path: &Path, config: &MuxerConfig) -> Stats {
    let start_cpu = thread_cpu();
    let start_process = process_cpu();
    let start = Instant::now();
    let mut file = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut demux = Demuxer::new();
    let mut muxer: Option<Muxer> = None;
    let mut out: Vec<u8> = Vec::with_capacity(4 << 20);
    let mut units = 0;
    let mut out_bytes = 0;
    let mut handle = |e: Event, out: &mut Vec<u8>, muxer: &mut Option<Muxer>| match e {
        Event::ProgramChanged(p) => {
            let m = muxer.get_or_insert_with(|| Muxer::new(config.clone()));
            m.set_tracks(&p.tracks).expect("tracks");
        }
        Event::Params(p) => {
            if let Some(m) = muxer.as_mut() {
                m.set_params(&p).expect("params");
            }
        }
        Event::AccessUnit(au) => {
            if let Some(m) = muxer.as_mut() {
                m.write(&au, out).expect("mux");
                units += 1;
            }
        }
        _ => {}
    };
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        demux.push(&buf[..n]);
        while let Some(e) = demux.pull() {
            handle(e, &mut out, &mut muxer);
        }
        out_bytes += out.len();
        out.clear();
    }
    demux.flush();
    while let Some(e) = demux.pull() {
        handle(e, &mut out, &mut muxer);
    }
    if let Some(m) = muxer.as_mut() {
        m.flush(&mut out).expect("flush");
    }
    out_bytes += out.len();
    Stats {
        cpu: thread_cpu() - start_cpu,
        process_cpu: process_cpu() - start_process,
        wall: start.elapsed().as_secs_f64(),
        units,
        out_bytes,
    }
}

fn main() {
    let mut source: Option<PathBuf> = None;
    let mut size_mb: u64 = 500;
    let mut dir = std::env::temp_dir();
    let mut keep = false;
    let mut repeat = 1;
    let mut config = MuxerConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--source" => source = args.next().map(PathBuf::from),
            "--size-mb" => size_mb = args.next().and_then(|v| v.parse().ok()).unwrap_or(500),
            "--dir" => dir = args.next().map(PathBuf::from).unwrap_or(dir),
            "--keep" => keep = true,
            "--repeat" => repeat = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--audio-frames-per-pes" => {
                config.audio_frames_per_pes = args.next().and_then(|v| v.parse().ok()).unwrap_or(1)
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let work = dir.join(format!("os-mpegts-remux-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("temp dir");
    let source = source.unwrap_or_else(|| {
        let clip = work.join("source.ts");
        eprintln!("encoding a 10 s 720p source clip...");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25:duration=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-b:v",
            "6M",
            "-maxrate",
            "6M",
            "-bufsize",
            "6M",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "mpegts",
            clip.to_str().unwrap(),
        ]);
        clip
    });
    let src_len = std::fs::metadata(&source).expect("source").len().max(1);
    let loops = (size_mb * 1_000_000 / src_len).max(1);
    let big = work.join("big.ts");
    eprintln!("looping {} x {} bytes...", loops, src_len);
    ffmpeg(&[
        "-stream_loop",
        &(loops - 1).to_string(),
        "-i",
        source.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "mpegts",
        big.to_str().unwrap(),
    ]);
    let size = std::fs::metadata(&big).expect("big file").len();

    // Warm the page cache for both sides.
    let _ = std::fs::read(&big).map(|d| d.len());
    let ff_cmd = format!(
        "ffmpeg -hide_banner -loglevel error -i '{}' -c copy -f mpegts -y /dev/null",
        big.display()
    );
    println!("file: {} bytes ({:.0} MB)", size, size as f64 / 1e6);
    for _ in 0..repeat.max(1) {
        let ours = our_remux(&big, &config);
        let ff_start = Instant::now();
        let ff_cpu = child_cpu(&ff_cmd);
        let ff_wall = ff_start.elapsed().as_secs_f64();
        println!(
            "ours:   cpu {:.3} s (process utime+stime {:.2} s), wall {:.3} s, {:.2} GB/s of input per CPU second, {} units, {} bytes out",
            ours.cpu,
            ours.process_cpu,
            ours.wall,
            size as f64 / ours.cpu / 1e9,
            ours.units,
            ours.out_bytes
        );
        println!("ffmpeg: cpu {ff_cpu:.3} s, wall {ff_wall:.3} s");
        println!("ratio (ours / ffmpeg CPU): {:.3}", ours.cpu / ff_cpu);
    }

    if !keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("kept {}", work.display());
    }
}
