//! demux → mux round trips checked with ffprobe.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use os_mpegts::{Event, Muxer, MuxerConfig};

/// Demux a vector and mux every event back into TS.
fn remux(data: &[u8]) -> Vec<u8> {
    remux_with(data, MuxerConfig::default())
}

fn remux_with(data: &[u8], config: MuxerConfig) -> Vec<u8> {
    let mut muxer: Option<Muxer> = None;
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    for event in demux(data) {
        match event {
            Event::ProgramChanged(p) => match muxer.as_mut() {
                Some(m) => m.set_tracks(&p.tracks).unwrap(),
                None => {
                    let mut m = Muxer::new(config.clone());
                    m.set_tracks(&p.tracks).unwrap();
                    muxer = Some(m);
                }
            },
            Event::Params(p) => muxer.as_mut().unwrap().set_params(&p).unwrap(),
            Event::AccessUnit(au) => muxer.as_mut().unwrap().write(&au, &mut out).unwrap(),
            _ => {}
        }
    }
    if let Some(m) = muxer.as_mut() {
        m.flush(&mut out).unwrap();
    }
    out
}

fn round_trip(name: &str) {
    round_trip_with(name, MuxerConfig::default());
}

fn round_trip_with(name: &str, config: MuxerConfig) -> usize {
    let original = vector(name);
    let remuxed = remux_with(&original, config);
    assert_eq!(remuxed.len() % 188, 0);
    let path = temp_path(name);
    std::fs::write(&path, &remuxed).unwrap();
    let errors = probe_errors(&path);
    let ours = probe_packets(&path);
    let theirs = probe_packets(&vector_path(name));
    let _ = std::fs::remove_file(&path);
    assert!(
        errors.is_empty(),
        "{name}: ffprobe complained about our output:\n{errors}"
    );
    // Same packets per stream: count, timestamps, sizes, key flags.
    let mut pids: Vec<u16> = theirs.iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        let a: Vec<_> = theirs.iter().filter(|p| p.pid == pid).collect();
        let b: Vec<_> = ours.iter().filter(|p| p.pid == pid).collect();
        assert_eq!(a.len(), b.len(), "{name} pid {pid:#x}: packet count");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                (x.pts, x.dts),
                (y.pts, y.dts),
                "{name} pid {pid:#x} packet {i}: timestamps"
            );
            assert_eq!(x.key, y.key, "{name} pid {pid:#x} packet {i}: key flag");
        }
    }
    // And our demuxer reads our own output back to the same units.
    let again = units(&demux(&remuxed));
    let first = units(&demux(&original));
    assert_eq!(again.len(), first.len(), "{name}: units after re-demux");
    remuxed.len()
}

#[test]
fn grouped_audio_round_trip() {
    let grouped = MuxerConfig {
        audio_frames_per_pes: 6,
        ..MuxerConfig::default()
    };
    for name in ["h264_aac.ts", "h264_mp3.ts", "ac3.ts", "opus.ts"] {
        let single = round_trip_with(name, MuxerConfig::default());
        let packed = round_trip_with(name, grouped.clone());
        assert!(
            packed < single,
            "{name}: grouping did not shrink the output"
        );
    }
}

#[test]
fn h264_aac_round_trip() {
    round_trip("h264_aac.ts");
}

#[test]
fn h265_aac_round_trip() {
    round_trip("h265_aac.ts");
}

#[test]
fn h264_mp3_round_trip() {
    round_trip("h264_mp3.ts");
}

#[test]
fn ac3_round_trip() {
    round_trip("ac3.ts");
}

#[test]
fn opus_round_trip() {
    round_trip("opus.ts");
}

#[test]
fn wrap_round_trip() {
    round_trip("wrap.ts");
}

#[test]
fn program_change_remux_is_readable() {
    let remuxed = remux(&vector("program_change.ts"));
    let events = demux(&remuxed);
    let programs = events
        .iter()
        .filter(|e| matches!(e, Event::ProgramChanged(_)))
        .count();
    assert_eq!(programs, 2);
    assert_eq!(units_of(&events, 0x100).len(), 75);
    assert_eq!(units_of(&events, 0x200).len(), 75);
}

#[test]
fn muxer_aud_insertion_and_psi_cadence() {
    let remuxed = remux(&vector("h264_aac.ts"));
    let events = demux(&remuxed);
    // Every H.264 unit starts with an access unit delimiter.
    for au in units_of(&events, 0x100) {
        assert_eq!(&au.payload[..5], &[0, 0, 0, 1, 0x09]);
    }
    // PAT at least every ~100 ms of stream time: count PAT packets vs duration.
    let pats = remuxed
        .chunks_exact(188)
        .filter(|p| p[1] & 0x1F == 0 && p[2] == 0)
        .count();
    assert!(pats >= 30, "only {pats} PATs in 3 s");
}
