//! PES parsing: the header parser on raw bytes, and the input carried as one
//! PES of each supported stream type through the demuxer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use os_mpegts::pes::parse_pes_header;
use os_mpegts::psi::{PmtEntry, build_pat, build_pmt};
use os_mpegts::{Demuxer, Event};

const STREAM_TYPES: [(u8, &[u8]); 7] = [
    (0x1B, &[]),
    (0x24, &[]),
    (0x0F, &[]),
    (0x03, &[]),
    (0x81, &[]),
    (0x06, &[0x05, 4, b'O', b'p', b'u', b's']),
    (0x06, &[0x6A, 1, 0]),
];

/// Packetize `section` (PSI) or `pes` (when `pusi_pes`) on `pid`.
fn packets(out: &mut Vec<u8>, pid: u16, data: &[u8], psi: bool, cc: &mut u8) {
    let mut rest = data;
    let mut first = true;
    while first || !rest.is_empty() {
        let mut pkt = [0xFFu8; 188];
        pkt[0] = 0x47;
        pkt[1] = (u8::from(first) << 6) | (pid >> 8) as u8;
        pkt[2] = pid as u8;
        let mut at = 4;
        if psi && first {
            pkt[4] = 0;
            at = 5;
        }
        let n = rest.len().min(188 - at);
        if !psi && n < 188 - at {
            // Stuff with an adaptation field so the payload ends the packet.
            let stuffing = 188 - at - n;
            pkt[3] = 0x30 | *cc;
            pkt[4] = (stuffing - 1) as u8;
            if stuffing > 1 {
                pkt[5] = 0;
            }
            at += stuffing;
        } else {
            pkt[3] = 0x10 | *cc;
        }
        pkt[at..at + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        *cc = (*cc + 1) & 0x0F;
        out.extend_from_slice(&pkt);
        first = false;
    }
}

fuzz_target!(|input: &[u8]| {
    let _ = parse_pes_header(input);
    let Some((&selector, pes)) = input.split_first() else {
        return;
    };
    let (stream_type, descriptors) = STREAM_TYPES[usize::from(selector) % STREAM_TYPES.len()];
    let mut ts = Vec::new();
    let mut cc = [0u8; 3];
    packets(&mut ts, 0, &build_pat(1, 1, 0x1000, 0), true, &mut cc[0]);
    let pmt = build_pmt(
        1,
        0,
        0x100,
        &[PmtEntry {
            stream_type,
            pid: 0x100,
            descriptors: descriptors.to_vec(),
        }],
    );
    packets(&mut ts, 0x1000, &pmt, true, &mut cc[1]);
    // The PES twice, so the first one is terminated by the second's start.
    packets(&mut ts, 0x100, pes, false, &mut cc[2]);
    packets(&mut ts, 0x100, pes, false, &mut cc[2]);
    let mut d = Demuxer::new();
    d.push(&ts);
    d.flush();
    let mut units = 0usize;
    while let Some(e) = d.pull() {
        if let Event::AccessUnit(au) = e {
            units += 1;
            assert!(au.payload.len() <= 2 * pes.len());
        }
    }
    assert!(units <= 2 * pes.len() + 2);
});
