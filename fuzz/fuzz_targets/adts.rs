//! ADTS and AudioSpecificConfig parsing, and their writers' round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use os_codecs::aac::{AdtsHeader, AdtsWriter, AudioSpecificConfig, adts_frames, strip_adts};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = AdtsHeader::parse(data) {
        assert!(usize::from(h.frame_length) >= h.header_len());
        let again = AdtsHeader::parse(&h.to_bytes()).ok();
        if h.protection_absent {
            assert_eq!(again, Some(h));
        }
    }
    let _ = strip_adts(data);
    let mut it = adts_frames(data);
    let mut total = 0;
    for (offset, header, payload) in it.by_ref() {
        assert!(offset + usize::from(header.frame_length) <= data.len());
        assert_eq!(payload.len(), header.payload_len());
        total += 1;
    }
    assert!(total <= data.len() / 7 + 1);
    assert!(it.remainder().len() <= data.len());

    if let Ok(asc) = AudioSpecificConfig::parse(data) {
        let bytes = asc.to_bytes();
        assert_eq!(AudioSpecificConfig::parse(&bytes), Ok(asc));
        let _ = asc.to_audio_params();
        if let Ok(w) = AdtsWriter::new(&asc) {
            let raw = data.get(..data.len().min(64)).unwrap_or_default();
            let mut out = Vec::new();
            if w.write(raw, &mut out).is_ok() {
                let (h, payload) = strip_adts(&out).expect("own ADTS frame parses");
                assert_eq!(payload, raw);
                assert_eq!(h.object_type, asc.adts_object_type());
            }
        }
    }
});
