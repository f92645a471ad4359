//! FLV reader in random chunkings, tag body parsers and AMF0 decode/encode round trips.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use os_flv::{
    Amf0Value, AudioTag, FlvDemuxer, FlvReader, ReaderOptions, ScriptData, Tag, TagType,
    VideoTag, amf0,
};

/// Reads every tag until the first error or the end of input.
fn read(data: &[u8], chunk_seed: u8, opts: ReaderOptions) -> (Vec<Tag>, bool) {
    let mut reader = FlvReader::with_options(opts);
    let mut tags = Vec::new();
    let mut state = u32::from(chunk_seed) | 1;
    let mut rest = data;
    let mut failed = false;
    while !rest.is_empty() && !failed {
        // Chunk sizes from a small LCG: 1..=64, or everything when the seed is 0.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = if chunk_seed == 0 {
            rest.len()
        } else {
            (((state >> 16) % 64) as usize + 1).min(rest.len())
        };
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        reader.push(piece);
        loop {
            match reader.pull() {
                Ok(Some(tag)) => tags.push(tag),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
    }
    if !failed {
        let _ = reader.finish();
    }
    (tags, failed)
}

fn check_amf0(data: &[u8]) {
    let mut input = data;
    while !input.is_empty() {
        let Ok(v) = Amf0Value::decode(&mut input) else {
            break;
        };
        let Ok(encoded) = v.to_vec() else {
            continue;
        };
        let mut slice = &encoded[..];
        let again = Amf0Value::decode(&mut slice).expect("decode(encode(v)) must succeed");
        assert!(slice.is_empty(), "decoder left bytes of an encoded value");
        // Byte comparison also covers NaN numbers, which are never == themselves.
        assert_eq!(again.to_vec().expect("re-encode"), encoded);
        if !format!("{v:?}").contains("NaN") {
            assert_eq!(again, v);
        }
    }
    let _ = amf0::decode_all(data);
    if let Ok(cmd) = amf0::Command::parse(data) {
        if let Ok(bytes) = cmd.to_vec() {
            let again = amf0::Command::parse(&bytes).expect("reparse command");
            assert_eq!(again.to_vec().expect("re-encode command"), bytes);
        }
    }
}

fn check_bodies(tag: &Tag) {
    match tag.tag_type {
        TagType::Video => {
            if let Ok(v) = VideoTag::parse(&tag.data) {
                if let Ok(bytes) = v.to_bytes() {
                    assert_eq!(VideoTag::parse(&bytes).expect("reparse video"), v);
                }
            }
        }
        TagType::Audio => {
            if let Ok(a) = AudioTag::parse(&tag.data) {
                if let Ok(bytes) = a.to_bytes() {
                    assert_eq!(AudioTag::parse(&bytes).expect("reparse audio"), a);
                }
            }
        }
        _ => {
            if let Ok(s) = ScriptData::parse(&tag.data) {
                let _ = s.metadata();
                let _ = s.to_bytes();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let opts = ReaderOptions {
        expect_header: seed & 0x80 == 0,
        max_tag_size: 1 << 16,
        strict_previous_tag_size: seed & 0x40 != 0,
    };
    let (whole, whole_failed) = read(rest, 0, opts);
    let (chunked, chunked_failed) = read(rest, seed | 1, opts);
    assert_eq!(whole_failed, chunked_failed);
    assert_eq!(whole, chunked, "chunking changed the tags");
    let mut demuxer = FlvDemuxer::new(1, 2);
    let mut events = Vec::new();
    for tag in &whole {
        check_bodies(tag);
        let _ = demuxer.push_tag(tag, &mut events);
        events.clear();
        let mut out = Vec::new();
        if tag.write(&mut out).is_ok() {
            assert_eq!(out.len(), tag.encoded_len());
        }
    }
    // Bodies straight from the input, as RTMP messages would arrive.
    let body = Bytes::copy_from_slice(rest);
    let _ = VideoTag::parse(&body).map(|v| v.to_bytes());
    let _ = AudioTag::parse(&body).map(|a| a.to_bytes());
    check_amf0(rest);
});
