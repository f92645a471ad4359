//! Tests on real FLV files made with ffmpeg (see data/testdata/flv/README.md).

use std::path::PathBuf;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use os_flv::{
    AudioCodec, AudioPacketType, AudioTag, FlvHeader, FlvReader, ScriptData, Tag, TagType,
    VideoCodec, VideoPacketType, VideoTag, aac_frame, aac_sequence_header, avc_frame,
    avc_sequence_header,
};

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../data/testdata/flv/{name}"))
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(vector(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// A tag with the stream offset it started at.
struct Read {
    pos: u64,
    tag: Tag,
}

fn read_all_chunked(data: &[u8], chunk: usize) -> (FlvHeader, Vec<Read>) {
    let mut reader = FlvReader::with_options(os_flv::ReaderOptions {
        strict_previous_tag_size: true,
        ..Default::default()
    });
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        reader.push(piece);
        while let Some(tag) = reader.pull().expect("valid stream") {
            let pos = reader.position() - 11 - tag.data.len() as u64;
            out.push(Read { pos, tag });
        }
    }
    reader.finish().expect("clean end");
    assert_eq!(reader.previous_tag_size_mismatches(), 0);
    (*reader.header().expect("header"), out)
}

/// One line of `ffprobe -show_entries packet=codec_type,pts,dts,size,pos,flags -of csv=p=0`.
#[derive(Debug, PartialEq, Eq)]
struct Packet {
    kind: String,
    pts: i64,
    dts: i64,
    size: usize,
    pos: u64,
    key: bool,
}

fn parse_csv(text: &str) -> Vec<Packet> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                kind: f[0].to_owned(),
                pts: f[1].parse().expect("pts"),
                dts: f[2].parse().expect("dts"),
                size: f[3].parse().expect("size"),
                pos: f[4].parse().expect("pos"),
                key: f[5].starts_with('K'),
            }
        })
        .collect()
}

/// The packets ffprobe would report, derived from our parse.
fn packets_from_tags(tags: &[Read]) -> Vec<Packet> {
    let mut out = Vec::new();
    for r in tags {
        match r.tag.tag_type {
            TagType::Video => {
                let v = VideoTag::parse(&r.tag.data).expect("video body");
                if v.packet_type == VideoPacketType::CodedFrames {
                    out.push(Packet {
                        kind: "video".into(),
                        pts: i64::from(r.tag.timestamp) + i64::from(v.composition_time),
                        dts: i64::from(r.tag.timestamp),
                        size: v.data.len(),
                        pos: r.pos,
                        key: v.is_keyframe(),
                    });
                }
            }
            TagType::Audio => {
                let a = AudioTag::parse(&r.tag.data).expect("audio body");
                if !a.is_sequence_header() {
                    out.push(Packet {
                        kind: "audio".into(),
                        pts: i64::from(r.tag.timestamp),
                        dts: i64::from(r.tag.timestamp),
                        size: a.data.len(),
                        pos: r.pos,
                        key: true,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn write_file(header: &FlvHeader, tags: &[Read]) -> BytesMut {
    let mut out = BytesMut::new();
    header.write(&mut out);
    for r in tags {
        r.tag.write(&mut out).expect("write tag");
    }
    out
}

fn check_against_ffprobe(name: &str) -> (FlvHeader, Vec<Read>) {
    let data = load(&format!("{name}.flv"));
    let (header, tags) = read_all_chunked(&data, 64 * 1024);
    let expected =
        parse_csv(&String::from_utf8(load(&format!("{name}.packets.csv"))).expect("csv"));
    let got = packets_from_tags(&tags);
    assert_eq!(got.len(), expected.len(), "{name}: packet count");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "{name}: packet {i}");
    }
    (header, tags)
}

#[test]
fn h264_aac_matches_ffprobe() {
    let (header, tags) = check_against_ffprobe("h264_aac");
    assert!(header.has_audio && header.has_video);
    // Script + AVC header + AAC header + 50 video + audio frames + AVC end of sequence.
    assert_eq!(tags[0].tag.tag_type, TagType::Script);
    let videos: Vec<VideoTag> = tags
        .iter()
        .filter(|r| r.tag.tag_type == TagType::Video)
        .map(|r| VideoTag::parse(&r.tag.data).expect("video"))
        .collect();
    assert!(
        videos
            .iter()
            .all(|v| v.codec == VideoCodec::Avc && !v.enhanced)
    );
    assert_eq!(videos[0].packet_type, VideoPacketType::SequenceStart);
    assert_eq!(
        videos.last().map(|v| v.packet_type),
        Some(VideoPacketType::SequenceEnd)
    );
    let frames: Vec<&VideoTag> = videos
        .iter()
        .filter(|v| v.packet_type == VideoPacketType::CodedFrames)
        .collect();
    assert_eq!(frames.len(), 50);
    assert_eq!(frames.iter().filter(|v| v.is_keyframe()).count(), 2);
    // B-frames: some composition times are non-zero.
    assert!(frames.iter().any(|v| v.composition_time > 0));
    // avcC record: version 1, High profile.
    let avcc = &videos[0].data;
    assert_eq!(avcc[0], 1);
    assert_eq!(avcc[1], 100);

    let audios: Vec<AudioTag> = tags
        .iter()
        .filter(|r| r.tag.tag_type == TagType::Audio)
        .map(|r| AudioTag::parse(&r.tag.data).expect("audio"))
        .collect();
    assert!(audios.iter().all(|a| a.codec == AudioCodec::Aac));
    assert_eq!(audios[0].packet_type, AudioPacketType::SequenceStart);
    // AudioSpecificConfig: AAC-LC (2), 44.1 kHz (index 4), 2 channels
    // (ffmpeg appends a sync extension after these two bytes).
    assert_eq!(&audios[0].data[..2], &[0x12, 0x10][..]);
    assert!(
        audios[1..]
            .iter()
            .all(|a| a.packet_type == AudioPacketType::CodedFrames)
    );
}

#[test]
fn h264_mp3_extended_timestamps_match_ffprobe() {
    let (_, tags) = check_against_ffprobe("h264_mp3_extts");
    // Timestamps cross 2^24 ms, so the extended byte is in use.
    assert!(tags.iter().any(|r| r.tag.timestamp < 1 << 24));
    assert!(tags.iter().any(|r| r.tag.timestamp >= 1 << 24));
    let audio = tags
        .iter()
        .find(|r| r.tag.tag_type == TagType::Audio)
        .map(|r| AudioTag::parse(&r.tag.data).expect("audio"))
        .expect("an audio tag");
    assert_eq!(audio.codec, AudioCodec::Mp3);
    assert_eq!(audio.packet_type, AudioPacketType::Raw);
    assert!(!audio.stereo);
    // MPEG audio frame sync.
    assert_eq!(audio.data[0], 0xFF);
}

#[test]
fn metadata_is_parsed() {
    let data = load("h264_aac.flv");
    let (_, tags) = read_all_chunked(&data, data.len());
    let script = ScriptData::parse(&tags[0].tag.data).expect("script");
    assert_eq!(script.name, "onMetaData");
    let meta = script.metadata().expect("metadata");
    assert_eq!(meta.width, Some(320.0));
    assert_eq!(meta.height, Some(240.0));
    assert_eq!(meta.framerate, Some(25.0));
    assert_eq!(meta.video_codec, Some(VideoCodec::Avc));
    assert_eq!(meta.audio_codec, Some(AudioCodec::Aac));
    assert_eq!(meta.audio_sample_rate, Some(44_100.0));
    assert_eq!(meta.stereo, Some(true));
    let duration = meta.duration.expect("duration");
    assert!((1.9..=2.1).contains(&duration), "duration {duration}");
    // Re-encoding the script body gives the same bytes.
    assert_eq!(script.to_bytes().expect("encode"), tags[0].tag.data);
}

#[test]
fn rewrite_is_byte_identical() {
    for name in ["h264_aac.flv", "h264_mp3_extts.flv"] {
        let data = load(name);
        let (header, tags) = read_all_chunked(&data, 4096);
        let out = write_file(&header, &tags);
        assert!(out[..] == data[..], "{name}: rewritten file differs");
    }
}

#[test]
fn bodies_reencode_identically() {
    for name in ["h264_aac.flv", "h264_mp3_extts.flv"] {
        let data = load(name);
        let (_, tags) = read_all_chunked(&data, data.len());
        for r in &tags {
            let again = match r.tag.tag_type {
                TagType::Video => VideoTag::parse(&r.tag.data).and_then(|v| v.to_bytes()),
                TagType::Audio => AudioTag::parse(&r.tag.data).and_then(|a| a.to_bytes()),
                _ => continue,
            }
            .expect("re-encode");
            assert_eq!(again, r.tag.data, "{name}: tag at {}", r.pos);
        }
    }
}

/// Rebuilds the file from semantic parts with the body helpers.
#[test]
fn helpers_rebuild_the_file() {
    let data = load("h264_aac.flv");
    let (header, tags) = read_all_chunked(&data, data.len());
    let mut out = BytesMut::new();
    header.write(&mut out);
    for r in &tags {
        let body: Bytes = match r.tag.tag_type {
            TagType::Video => {
                let v = VideoTag::parse(&r.tag.data).expect("video");
                match v.packet_type {
                    VideoPacketType::SequenceStart => avc_sequence_header(&v.data),
                    VideoPacketType::CodedFrames => {
                        avc_frame(v.is_keyframe(), v.composition_time, v.data.clone())
                            .expect("frame")
                    }
                    _ => r.tag.data.clone(),
                }
            }
            TagType::Audio => {
                let a = AudioTag::parse(&r.tag.data).expect("audio");
                if a.is_sequence_header() {
                    aac_sequence_header(&a.data)
                } else {
                    aac_frame(&a.data)
                }
            }
            _ => r.tag.data.clone(),
        };
        Tag::new(r.tag.tag_type, r.tag.timestamp, body)
            .write(&mut out)
            .expect("write");
    }
    assert!(out[..] == data[..], "rebuilt file differs");
}

#[test]
fn one_byte_at_a_time_gives_identical_tags() {
    for name in ["h264_aac.flv", "h264_mp3_extts.flv"] {
        let data = load(name);
        let (h1, whole) = read_all_chunked(&data, data.len());
        let (h2, single) = read_all_chunked(&data, 1);
        let (_, odd) = read_all_chunked(&data, 7);
        assert_eq!(h1, h2);
        assert_eq!(whole.len(), single.len());
        assert_eq!(whole.len(), odd.len());
        for ((a, b), c) in whole.iter().zip(&single).zip(&odd) {
            assert_eq!(a.tag, b.tag);
            assert_eq!(a.tag, c.tag);
            assert_eq!(a.pos, b.pos);
        }
    }
}

fn ffprobe_available() -> bool {
    Command::new("ffprobe")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The file written from parsed tags (with re-encoded bodies) is accepted by
/// ffprobe without messages and yields the same packets.
#[test]
fn rewritten_file_is_accepted_by_ffprobe() {
    if !ffprobe_available() {
        eprintln!("ffprobe not installed; skipping");
        return;
    }
    for name in ["h264_aac", "h264_mp3_extts"] {
        let data = load(&format!("{name}.flv"));
        let (header, tags) = read_all_chunked(&data, data.len());
        let mut out = BytesMut::new();
        header.write(&mut out);
        for r in &tags {
            let body = match r.tag.tag_type {
                TagType::Video => VideoTag::parse(&r.tag.data).and_then(|v| v.to_bytes()),
                TagType::Audio => AudioTag::parse(&r.tag.data).and_then(|a| a.to_bytes()),
                _ => ScriptData::parse(&r.tag.data).and_then(|s| s.to_bytes()),
            }
            .expect("re-encode");
            Tag::new(r.tag.tag_type, r.tag.timestamp, body)
                .write(&mut out)
                .expect("write");
        }
        let path =
            std::env::temp_dir().join(format!("os-flv-rewrite-{}-{name}.flv", std::process::id()));
        std::fs::write(&path, &out).expect("write temp file");
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .arg("packet=codec_type,pts,dts,size,pos,flags")
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("run ffprobe");
        let _ = std::fs::remove_file(&path);
        assert!(probe.status.success());
        assert_eq!(
            String::from_utf8_lossy(&probe.stderr),
            "",
            "{name}: ffprobe messages"
        );
        let expected = String::from_utf8(load(&format!("{name}.packets.csv"))).expect("csv");
        assert_eq!(
            parse_csv(&String::from_utf8_lossy(&probe.stdout)),
            parse_csv(&expected),
            "{name}: packets"
        );
    }
}
