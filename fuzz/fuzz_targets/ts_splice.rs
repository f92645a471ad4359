//! MPEG-TS splicer on arbitrary bytes: splices at data-chosen points must
//! never panic, and every whole packet that comes out is still a packet.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use os_mpegts::{PACKET_SIZE, SYNC_BYTE, Splicer};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut s = Splicer::new();
    // Cut the input into chunks of whole packets (plus any tail); splice
    // before the chunks the control byte's bits select.
    for (i, chunk) in rest.chunks(PACKET_SIZE * 3).enumerate() {
        if control & (1 << (i % 8)) != 0 {
            s.splice();
        }
        let out = s.process(Bytes::copy_from_slice(chunk));
        assert!(out.len() <= chunk.len());
        // Input made of whole synced packets gives whole synced packets.
        let synced = chunk.len() % PACKET_SIZE == 0
            && chunk.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE);
        if synced {
            assert_eq!(out.len() % PACKET_SIZE, 0);
            assert!(out.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE));
        }
    }
});
