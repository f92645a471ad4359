//! Real MPEG-TS (ffmpeg-made vectors): keyframe cutting, PAT/PMT at every
//! join and resync point, and ffprobe decoding what a reader receives.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use os_hub::{Buffer, Item, Reader, TryRecvError};

const CHUNK: usize = 7 * 188;

fn vector(name: &str) -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/testdata")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn chunks(ts: &Bytes) -> Vec<Bytes> {
    (0..ts.len())
        .step_by(CHUNK)
        .map(|i| ts.slice(i..(i + CHUNK).min(ts.len())))
        .collect()
}

/// Everything the reader gets until it would wait, as (items, bytes).
fn drain(r: &mut Reader) -> (Vec<Item>, Vec<u8>) {
    let mut items = Vec::new();
    let mut bytes = Vec::new();
    loop {
        match r.try_recv() {
            Ok(item) => {
                if let Item::Chunk(c) = &item {
                    bytes.extend_from_slice(&c.data);
                }
                items.push(item);
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return (items, bytes),
        }
    }
}

fn pid(pkt: &[u8]) -> u16 {
    (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2])
}

/// ffprobe's error output and decoded video/audio frame counts for `ts`.
fn probe(tag: &str, ts: &[u8]) -> (String, Vec<u64>) {
    let path = std::env::temp_dir().join(format!("os-hub-{}-{tag}.ts", std::process::id()));
    std::fs::write(&path, ts).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    std::fs::remove_file(&path).ok();
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    (String::from_utf8_lossy(&out.stderr).into_owned(), frames)
}

fn starts_with_pat_pmt(data: &[u8]) -> bool {
    data.len() >= 2 * 188 && pid(&data[..188]) == 0 && pid(&data[188..376]) == 0x1000
}

#[test]
fn in_step_raw_reader_gets_the_exact_stream_and_keyframes_are_cut() {
    for name in ["h264_aac.ts", "h265_aac.ts", "h264_mp3.ts"] {
        let ts = vector(name);
        let buf = Arc::new(Buffer::new(name, 10_000));
        let mut raw = buf.subscribe_raw("raw");
        let mut aps = Vec::new();
        for c in chunks(&ts) {
            buf.write(c).ok();
            let (items, _) = drain(&mut raw);
            for item in items {
                match item {
                    Item::Chunk(c) if c.access_point => aps.push(c),
                    Item::Chunk(_) => {}
                    Item::Lagged { .. } => panic!("unexpected lag"),
                }
            }
        }
        assert_eq!(aps.len(), 3, "{name}: one access point per keyframe");
        for ap in &aps {
            // Cut at a packet boundary, starting with PSI or the keyframe.
            assert_eq!(ap.data.first(), Some(&0x47), "{name}");
            assert!(pid(&ap.data) == 0 || pid(&ap.data) == 0x100, "{name}");
        }
        let st = buf.stats();
        assert_eq!(st.access_points, 3);
        assert!(st.video.is_some());
        // One video PES per frame (ffprobe counts 75 video packets).
        assert_eq!(st.video_frames, 75, "{name}");
        // Concatenation of what the raw reader got == the input.
        let again = Arc::new(Buffer::new("again", 10_000));
        let mut r = again.subscribe_raw("raw");
        for c in chunks(&ts) {
            again.write(c).ok();
        }
        again.close();
        let (_, bytes) = drain(&mut r);
        assert_eq!(bytes, ts.to_vec(), "{name}: bytes differ");
    }
}

#[test]
fn late_joiner_gets_a_decodable_stream_from_the_gop_cache() {
    for name in ["h264_aac.ts", "h265_aac.ts", "h264_mp3.ts"] {
        let ts = vector(name);
        let all = chunks(&ts);
        let buf = Arc::new(Buffer::new(name, 10_000));
        let half = all.len() * 6 / 10;
        for c in &all[..half] {
            buf.write(c.clone()).ok();
        }
        let mut r = buf.subscribe("player");
        let (first, _) = drain(&mut r);
        match first.first() {
            Some(Item::Chunk(c)) => {
                assert!(
                    c.access_point && c.resume,
                    "{name}: starts at an access point"
                );
                assert!(starts_with_pat_pmt(&c.data), "{name}: PAT+PMT first");
            }
            other => panic!("{name}: expected the GOP cache, got {other:?}"),
        }
        for c in &all[half..] {
            buf.write(c.clone()).ok();
        }
        buf.close();
        let (_, mut bytes) = drain(&mut r);
        let mut joined = Vec::new();
        for item in first {
            if let Item::Chunk(c) = item {
                joined.extend_from_slice(&c.data);
            }
        }
        joined.append(&mut bytes);
        let (errors, frames) = probe(&format!("join-{name}"), &joined);
        assert_eq!(errors, "", "{name}: ffprobe errors on the joined stream");
        // The joiner starts at the 2nd keyframe (1 s): 2 s of 25 fps video.
        assert!(frames.contains(&50), "{name}: decoded frames {frames:?}");
    }
}

#[test]
fn lagging_reader_resyncs_to_a_decodable_access_point() {
    let ts = vector("h264_aac.ts");
    let all = chunks(&ts);
    // Ring of 30 entries (< a third of the file): a stalled reader is lapped.
    let buf = Arc::new(Buffer::new("s", 30));
    let mut r = buf.subscribe("stalled");
    for c in &all[..5] {
        buf.write(c.clone()).ok();
    }
    let (items, mut got) = drain(&mut r);
    assert!(!items.is_empty());
    for c in &all[5..] {
        buf.write(c.clone()).ok();
    }
    buf.close();
    let (items, _) = drain(&mut r);
    let Some(Item::Lagged { lost }) = items.first() else {
        panic!("expected Lagged first, got {:?}", items.first());
    };
    assert!(*lost > 0);
    let Some(Item::Chunk(ap)) = items.get(1) else {
        panic!("expected the resume chunk");
    };
    assert!(ap.access_point && ap.resume && starts_with_pat_pmt(&ap.data));
    let mut after = Vec::new();
    for item in &items[1..] {
        match item {
            Item::Chunk(c) => after.extend_from_slice(&c.data),
            Item::Lagged { .. } => panic!("second lag"),
        }
    }
    let (errors, frames) = probe("resync", &after);
    assert_eq!(errors, "", "ffprobe errors after resync");
    assert!(
        frames.contains(&25),
        "one GOP decoded after resync: {frames:?}"
    );
    assert_eq!(buf.stats().dropped, *lost);
    got.clear();
}

#[test]
fn audio_only_program_every_chunk_is_an_access_point() {
    for name in ["ac3.ts", "opus.ts"] {
        let ts = vector(name);
        let all = chunks(&ts);
        let buf = Arc::new(Buffer::new(name, 10_000));
        for c in &all[..all.len() / 2] {
            buf.write(c.clone()).ok();
        }
        let mut r = buf.subscribe("listener");
        for c in &all[all.len() / 2..] {
            buf.write(c.clone()).ok();
        }
        buf.close();
        let (items, bytes) = drain(&mut r);
        match items.first() {
            Some(Item::Chunk(c)) => assert!(c.access_point && starts_with_pat_pmt(&c.data)),
            other => panic!("{name}: {other:?}"),
        }
        assert!(buf.stats().video.is_none());
        let (errors, frames) = probe(&format!("audio-{name}"), &bytes);
        assert_eq!(errors, "", "{name}: ffprobe errors");
        assert!(frames.first().is_some_and(|&n| n > 0), "{name}: {frames:?}");
    }
}
