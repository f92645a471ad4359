//! MPEG-TS demuxer on arbitrary bytes: random chunkings must give the same
//! events as one push, the keyframe scanner must not panic, and whatever
//! comes out must mux back without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use os_mpegts::{Demuxer, Event, KeyframeScanner, Muxer, MuxerConfig, scan_keyframes};

fn demux(data: &[u8], seed: u8) -> Vec<Event> {
    let mut d = Demuxer::new();
    let mut events = Vec::new();
    let mut state = u32::from(seed) | 1;
    let mut rest = data;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = if seed == 0 {
            rest.len()
        } else {
            (((state >> 16) % 400) as usize + 1).min(rest.len())
        };
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        d.push(piece);
        while let Some(e) = d.pull() {
            events.push(e);
        }
    }
    d.flush();
    while let Some(e) = d.pull() {
        events.push(e);
    }
    events
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let whole = demux(data, 0);
    if seed != 0 {
        assert_eq!(whole, demux(data, seed), "chunking changed the events");
    }

    let _ = scan_keyframes(data, None);
    let mut scanner = KeyframeScanner::with_video(0x100, os_av::Codec::H264);
    let mut offsets = Vec::new();
    scanner.scan(data, &mut offsets);
    assert!(offsets.iter().all(|&o| data.get(o) == Some(&0x47)));

    let mut muxer = Muxer::new(MuxerConfig {
        audio_frames_per_pes: usize::from(seed % 4) + 1,
        ..MuxerConfig::default()
    });
    let mut out = Vec::new();
    for e in &whole {
        match e {
            Event::ProgramChanged(p) => {
                let _ = muxer.set_tracks(&p.tracks);
            }
            Event::Params(p) => {
                let _ = muxer.set_params(p);
            }
            Event::AccessUnit(au) => {
                let _ = muxer.write(au, &mut out);
            }
            _ => {}
        }
    }
    let _ = muxer.flush(&mut out);
    assert_eq!(out.len() % 188, 0);
    let _ = demux(&out, 0);
});
