//! TS → FLV remux on real ffmpeg output: the FLV written from the messages
//! decodes in ffprobe with the source's codecs, size and frame counts.

use std::process::Command;

use bytes::BytesMut;
use os_flv::remux::{FlvKind, FlvMessage, TsToFlv};
use os_flv::{FlvHeader, Tag};

fn make_ts(dir: &std::path::Path, seconds: u32) -> Vec<u8> {
    let out = dir.join("src.ts");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-bf",
            "2",
        ])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    std::fs::read(out).expect("read ts")
}

fn probe_count(file: &std::path::Path, stream: &str) -> (String, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", stream])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (codec, rest) = text.split_once(',').unwrap_or((&text, ""));
    (codec.to_string(), rest.to_string())
}

#[test]
fn ts_to_flv_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ts = make_ts(dir.path(), 4);
    let mut remux = TsToFlv::new();
    let mut msgs: Vec<FlvMessage> = Vec::new();
    // Odd chunking, like hub chunks cut anywhere.
    for piece in ts.chunks(1000) {
        remux.push(piece, &mut msgs);
    }
    assert!(msgs.len() > 100, "{} messages", msgs.len());
    // Starts decodable: metadata, headers, then a keyframe.
    let kinds: Vec<FlvKind> = msgs.iter().take(2).map(|m| m.kind).collect();
    assert_eq!(kinds, [FlvKind::Metadata, FlvKind::VideoHeader]);
    // The audio header (known once the first audio PES is parsed) comes
    // before the first audio frame.
    let pos = |k: FlvKind| msgs.iter().position(|m| m.kind == k).expect("present");
    assert!(pos(FlvKind::AudioHeader) < pos(FlvKind::Audio));
    assert_eq!(
        remux.headers().len(),
        3,
        "metadata and both headers for joiners"
    );
    let first_frame = msgs.iter().find(|m| !m.kind.is_header()).expect("a frame");
    assert_eq!(first_frame.kind, FlvKind::Video);
    assert!(first_frame.keyframe);
    // Monotonic timestamps, starting near 0.
    assert!(first_frame.timestamp <= 1000, "{}", first_frame.timestamp);
    for kind in [FlvKind::Video, FlvKind::Audio] {
        let ts: Vec<u32> = msgs
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.timestamp)
            .collect();
        for w in ts.windows(2) {
            assert!(w[1] > w[0], "{kind:?}: {} → {}", w[0], w[1]);
        }
    }
    // Video at 25 fps: exactly 40 ms apart (the decode times of the source).
    let vts: Vec<u32> = msgs
        .iter()
        .filter(|m| m.kind == FlvKind::Video)
        .map(|m| m.timestamp)
        .collect();
    assert!(vts.windows(2).all(|w| w[1] - w[0] == 40), "{vts:?}");
    let video = msgs.iter().filter(|m| m.kind == FlvKind::Video).count();
    // The demuxer emits a PES when the next one starts: the last frame stays pending.
    assert!((98..=100).contains(&video), "video frames {video}");
    let keys = msgs
        .iter()
        .filter(|m| m.kind == FlvKind::Video && m.keyframe)
        .count();
    assert_eq!(keys, 4, "one keyframe per second");

    let mut flv = BytesMut::new();
    FlvHeader::default().write(&mut flv);
    for m in &msgs {
        Tag::new(m.kind.tag_type(), m.timestamp, m.body.clone())
            .write(&mut flv)
            .expect("tag");
    }
    let file = dir.path().join("out.flv");
    std::fs::write(&file, &flv).expect("write flv");
    let (vcodec, vrest) = probe_count(&file, "v:0");
    assert_eq!(vcodec, "h264");
    assert!(vrest.starts_with("320,240,"), "{vrest}");
    let frames: usize = vrest.rsplit(',').next().unwrap_or("0").parse().unwrap_or(0);
    assert_eq!(frames, video, "every video message decodes");
    let (acodec, arest) = probe_count(&file, "a:0");
    assert_eq!(acodec, "aac");
    let audio = msgs.iter().filter(|m| m.kind == FlvKind::Audio).count();
    let aframes: usize = arest.rsplit(',').next().unwrap_or("0").parse().unwrap_or(0);
    assert_eq!(aframes, audio);
    assert!(audio > 150, "audio frames {audio}");
}

#[test]
fn splice_keeps_time_monotonic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ts = make_ts(dir.path(), 2);
    let mut remux = TsToFlv::new();
    let mut msgs = Vec::new();
    remux.push(&ts, &mut msgs);
    let end = msgs.last().map(|m| m.timestamp).unwrap_or(0);
    // Same source again (timestamps jump back 2 s): a source switch.
    remux.discontinuity();
    let before = msgs.len();
    remux.push(&ts, &mut msgs);
    assert!(msgs.len() > before + 50);
    for kind in [FlvKind::Video, FlvKind::Audio] {
        let ts: Vec<u32> = msgs
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.timestamp)
            .collect();
        assert!(
            ts.windows(2).all(|w| w[1] >= w[0]),
            "{kind:?} monotonic across the splice"
        );
    }
    assert!(msgs[before].timestamp + 100 >= end);
    // Garbage does not panic and produces nothing.
    let mut junk = TsToFlv::new();
    let mut none = Vec::new();
    junk.push(&[0x47u8; 5000], &mut none);
    junk.push(&vec![0xFFu8; 188 * 20], &mut none);
    assert!(none.is_empty());
}
