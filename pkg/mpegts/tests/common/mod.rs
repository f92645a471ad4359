//! Helpers shared by the integration tests: test vectors and ffprobe.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use os_av::AccessUnit;
use os_mpegts::{Demuxer, Event};

pub fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/testdata")
        .join(name)
}

pub fn vector(name: &str) -> Vec<u8> {
    let path = vector_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read test vector {}: {e} (regenerate with data/testdata/make-vectors.sh)",
            path.display()
        )
    })
}

/// Demux `data` pushed in chunks of `chunk` bytes (0 = all at once).
pub fn demux_chunked(data: &[u8], chunk: usize) -> Vec<Event> {
    let mut d = Demuxer::new();
    let mut events = Vec::new();
    if chunk == 0 {
        d.push(data);
    } else {
        for c in data.chunks(chunk) {
            d.push(c);
            while let Some(e) = d.pull() {
                events.push(e);
            }
        }
    }
    d.flush();
    while let Some(e) = d.pull() {
        events.push(e);
    }
    events
}

pub fn demux(data: &[u8]) -> Vec<Event> {
    demux_chunked(data, 0)
}

pub fn units(events: &[Event]) -> Vec<AccessUnit> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AccessUnit(au) => Some(au.clone()),
            _ => None,
        })
        .collect()
}

pub fn units_of(events: &[Event], pid: u16) -> Vec<AccessUnit> {
    units(events)
        .into_iter()
        .filter(|a| a.track == pid)
        .collect()
}

fn ffprobe() -> Command {
    if Command::new("ffprobe").arg("-version").output().is_err() {
        panic!(
            "ffprobe is required by this test but was not found in PATH; \
             install ffmpeg (the Makefile's CI setup does) and re-run"
        );
    }
    Command::new("ffprobe")
}

/// One packet as reported by ffprobe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePacket {
    pub pid: u16,
    pub pts: Option<i64>,
    pub dts: Option<i64>,
    pub key: bool,
    pub size: usize,
}

/// `ffprobe -show_packets` of a file, with PIDs resolved.
pub fn probe_packets(path: &std::path::Path) -> Vec<ProbePacket> {
    let streams = ffprobe()
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=index,id",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let streams = String::from_utf8_lossy(&streams.stdout);
    let mut pid_of = std::collections::HashMap::new();
    for line in streams.lines() {
        let mut f = line.split(',');
        if let (Some(i), Some(id)) = (f.next(), f.next()) {
            let pid = u16::from_str_radix(id.trim_start_matches("0x"), 16).unwrap();
            pid_of.insert(i.to_string(), pid);
        }
    }
    let out = ffprobe()
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts,dts,flags,size",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            ProbePacket {
                pid: pid_of[f[0]],
                pts: f[1].parse().ok(),
                dts: f[2].parse().ok(),
                size: f[3].parse().unwrap(),
                key: f[4].starts_with('K'),
            }
        })
        .collect()
}

/// stderr of `ffprobe -v error` decoding every frame (empty when the file is clean).
pub fn probe_errors(path: &std::path::Path) -> String {
    let out = ffprobe()
        .args(["-v", "error", "-show_frames", "-of", "csv"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A unique scratch file path in the system temp dir.
/// A temp file path unique to this process and call (tests run in parallel
/// and may use the same vector).
pub fn temp_path(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("os-mpegts-{}-{n}-{name}", std::process::id()))
}
