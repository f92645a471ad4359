//! Demuxer behaviour on the ffmpeg-made vectors of data/testdata.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use os_av::Codec;
use os_av::time::WRAP_33;
use os_mpegts::{Event, KeyframeScanner, scan_keyframes};

/// Our access units must match ffprobe's packets one to one (count, PTS,
/// DTS, keyframe flag for video).
fn assert_matches_ffprobe(name: &str) {
    let events = demux(&vector(name));
    let probe = probe_packets(&vector_path(name));
    let mut pids: Vec<u16> = probe.iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert!(!pids.is_empty(), "{name}: ffprobe saw no packets");
    for pid in pids {
        let expected: Vec<_> = probe.iter().filter(|p| p.pid == pid).collect();
        let got = units_of(&events, pid);
        assert_eq!(got.len(), expected.len(), "{name} pid {pid:#x}: AU count");
        for (i, (au, p)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(Some(au.pts), p.pts, "{name} pid {pid:#x} AU {i}: pts");
            assert_eq!(Some(au.dts), p.dts, "{name} pid {pid:#x} AU {i}: dts");
            if au.codec.kind() == os_av::TrackKind::Video {
                assert_eq!(au.keyframe, p.key, "{name} pid {pid:#x} AU {i}: keyframe");
            }
        }
    }
}

#[test]
fn h264_aac_matches_ffprobe() {
    assert_matches_ffprobe("h264_aac.ts");
}

#[test]
fn h265_aac_matches_ffprobe() {
    assert_matches_ffprobe("h265_aac.ts");
}

#[test]
fn h264_mp3_matches_ffprobe() {
    assert_matches_ffprobe("h264_mp3.ts");
}

#[test]
fn ac3_matches_ffprobe() {
    assert_matches_ffprobe("ac3.ts");
}

#[test]
fn opus_matches_ffprobe() {
    assert_matches_ffprobe("opus.ts");
}

#[test]
fn aac_units_are_raw_frames_with_params() {
    let events = demux(&vector("h264_aac.ts"));
    let params: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Params(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(params.len(), 1);
    let os_av::TrackParams::Audio(a) = &params[0].params else {
        panic!("audio params expected");
    };
    assert_eq!((a.sample_rate, a.channels, a.object_type), (48_000, 2, 2));
    assert_eq!(&a.asc[..], &[0x11, 0x90]);
    let aac = units_of(&events, 0x101);
    assert!(aac.iter().all(|a| a.codec == Codec::Aac && a.keyframe));
    // No ADTS syncword left in the payloads.
    assert!(
        aac.iter()
            .all(|a| !(a.payload[0] == 0xFF && a.payload[1] & 0xF0 == 0xF0))
    );
    // Consecutive frames are 1024 samples at 48 kHz apart.
    assert!(aac.windows(2).all(|w| w[1].pts - w[0].pts == 1920));
}

#[test]
fn chunking_does_not_change_the_result() {
    for name in [
        "h264_aac.ts",
        "h265_aac.ts",
        "garbage_prefix.ts",
        "program_change.ts",
        "cc_errors.ts",
        "opus.ts",
    ] {
        let data = vector(name);
        let whole = demux(&data);
        assert_eq!(whole, demux_chunked(&data, 1), "{name}: 1-byte chunks");
        for chunk in [7, 187, 188, 189, 1000, 4096] {
            assert_eq!(
                whole,
                demux_chunked(&data, chunk),
                "{name}: {chunk}-byte chunks"
            );
        }
    }
}

#[test]
fn program_change_emits_events() {
    let events = demux(&vector("program_change.ts"));
    let programs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ProgramChanged(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(programs.len(), 2);
    let layout =
        |p: &os_mpegts::Program| p.tracks.iter().map(|t| (t.id, t.codec)).collect::<Vec<_>>();
    assert_eq!(
        layout(&programs[0]),
        vec![(0x100, Codec::H264), (0x101, Codec::Aac)]
    );
    assert_eq!(
        layout(&programs[1]),
        vec![(0x200, Codec::H265), (0x201, Codec::Mp3)]
    );
    // Units of both programs come out; the first of the second program is
    // flagged as a discontinuity.
    assert_eq!(units_of(&events, 0x100).len(), 75);
    let hevc = units_of(&events, 0x200);
    assert_eq!(hevc.len(), 75);
    assert!(hevc[0].discontinuity && hevc[0].keyframe);
    assert!(!units_of(&events, 0x201).is_empty());
}

#[test]
fn wrap_gives_monotonic_timestamps() {
    let events = demux(&vector("wrap.ts"));
    for pid in [0x100, 0x101] {
        let au = units_of(&events, pid);
        assert!(au.len() > 70, "pid {pid:#x}: {} units", au.len());
        assert!(
            au.windows(2).all(|w| w[1].dts > w[0].dts),
            "pid {pid:#x}: DTS not increasing"
        );
        assert!(
            au.first().unwrap().dts < WRAP_33 && au.last().unwrap().dts > WRAP_33,
            "pid {pid:#x}: no wrap crossed"
        );
    }
    // PCRs too.
    let pcrs: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Pcr { pcr, .. } => Some(*pcr),
            _ => None,
        })
        .collect();
    assert!(pcrs.len() > 10);
    assert!(pcrs.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn cc_errors_are_reported() {
    let events = demux(&vector("cc_errors.ts"));
    let cc: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ContinuityError { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect();
    assert_eq!(cc, vec![0x100; 5]);
    // Each loss drops the damaged picture and flags the next one.
    let video = units_of(&events, 0x100);
    assert_eq!(video.len(), 75 - 5);
    assert_eq!(video.iter().filter(|a| a.discontinuity).count(), 5);
    assert_eq!(
        units_of(&events, 0x101).len(),
        units_of(&demux(&vector("h264_aac.ts")), 0x101).len()
    );
}

#[test]
fn garbage_is_skipped_and_sync_recovered() {
    let events = demux(&vector("garbage_prefix.ts"));
    let resync: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Resync { skipped } => Some(*skipped),
            _ => None,
        })
        .collect();
    assert_eq!(resync, vec![1000, 100]);
    assert_eq!(units(&events), units(&demux(&vector("h264_aac.ts"))));
}

#[test]
fn keyframe_scanner_finds_every_keyframe() {
    for name in ["h264_aac.ts", "h265_aac.ts"] {
        let data = vector(name);
        let keyframes = units_of(&demux(&data), 0x100)
            .iter()
            .filter(|a| a.keyframe)
            .count();
        assert_eq!(keyframes, 3, "{name}");
        let learned = scan_keyframes(&data, None);
        assert_eq!(learned.len(), keyframes, "{name}");
        let codec = if name.starts_with("h265") {
            Codec::H265
        } else {
            Codec::H264
        };
        assert_eq!(scan_keyframes(&data, Some((0x100, codec))), learned);
        for &off in &learned {
            assert_eq!(data[off], 0x47);
            assert_eq!(
                ((u16::from(data[off + 1]) & 0x1F) << 8) | u16::from(data[off + 2]),
                0x100
            );
        }
        // Without random_access_indicator, NAL inspection still finds them.
        let mut stripped = data.clone();
        for pkt in stripped.chunks_exact_mut(188) {
            if pkt[3] & 0x20 != 0 && pkt[4] > 0 {
                pkt[5] &= !0x40;
            }
        }
        assert_eq!(
            scan_keyframes(&stripped, None),
            learned,
            "{name} without RAI"
        );
        // Chunked scanning with a persistent scanner gives the same offsets.
        let mut scanner = KeyframeScanner::new();
        let mut found = Vec::new();
        for (i, chunk) in data.chunks(188 * 50).enumerate() {
            let mut local = Vec::new();
            scanner.scan(chunk, &mut local);
            found.extend(local.iter().map(|o| o + i * 188 * 50));
        }
        assert_eq!(found, learned);
    }
    // Garbage around packets: offsets still point at packets.
    let data = vector("garbage_prefix.ts");
    let offs = scan_keyframes(&data, None);
    assert_eq!(offs.len(), 3);
    assert!(
        offs.iter()
            .all(|&o| data[o] == 0x47 && ((o - 1000) % 188 == 0 || (o - 1100) % 188 == 0))
    );
}

#[test]
fn malformed_input_never_panics() {
    let base = vector("h264_aac.ts");
    let mut seed = 0x1234_5678u32;
    for round in 0..50 {
        let mut data = base.clone();
        for _ in 0..(round * 5 + 1) {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = (seed >> 8) as usize % data.len();
            data[at] = (seed >> 3) as u8;
        }
        let _ = demux(&data);
        let _ = demux_chunked(&data, 61);
        let _ = scan_keyframes(&data, None);
    }
}
