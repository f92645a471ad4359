//! Tag bodies built by hand (HEVC, Enhanced RTMP, edge cases) and reader errors.

use bytes::{Bytes, BytesMut};
use os_flv::time::{composition_time_ms, ms_to_ticks};
use os_flv::{
    AudioCodec, AudioPacketType, AudioTag, Error, FlvHeader, FlvReader, FrameType, ReaderOptions,
    Tag, TagType, VideoCodec, VideoPacketType, VideoTag, hevc_frame, hevc_sequence_header,
    hevc_sequence_header_legacy,
};

/// Start of a plausible hvcC record (configurationVersion 1, Main profile).
const HVCC: &[u8] = &[
    0x01, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5D, 0xF0, 0, 0xFC,
];
/// One length-prefixed NAL unit (IDR_W_RADL header + 2 bytes).
const NALU: &[u8] = &[0, 0, 0, 4, 0x26, 0x01, 0xAF, 0x10];

fn parse(body: &[u8]) -> os_flv::Result<VideoTag> {
    VideoTag::parse(&Bytes::copy_from_slice(body))
}

#[test]
fn enhanced_hevc_sequence_start() {
    let body = hevc_sequence_header(HVCC);
    assert_eq!(&body[..5], b"\x90hvc1");
    let v = VideoTag::parse(&body).expect("parse");
    assert!(v.enhanced);
    assert_eq!(v.codec, VideoCodec::Hevc);
    assert_eq!(v.frame_type, FrameType::Key);
    assert_eq!(v.packet_type, VideoPacketType::SequenceStart);
    assert_eq!(&v.data[..], HVCC);
    assert_eq!(v.to_bytes().expect("encode"), body);
}

#[test]
fn enhanced_hevc_coded_frames_with_and_without_composition_time() {
    // CodedFrames (packet type 1) carries SI24 composition time: here -40 ms.
    let mut body = vec![0x91, b'h', b'v', b'c', b'1', 0xFF, 0xFF, 0xD8];
    body.extend_from_slice(NALU);
    let v = parse(&body).expect("parse");
    assert_eq!(v.packet_type, VideoPacketType::CodedFrames);
    assert_eq!(v.composition_time, -40);
    assert!(v.is_keyframe());
    assert_eq!(&v.data[..], NALU);
    assert_eq!(&v.to_bytes().expect("encode")[..], &body[..]);

    // CodedFramesX (3): no composition time field.
    let mut body = vec![0xA3, b'h', b'v', b'c', b'1'];
    body.extend_from_slice(NALU);
    let v = parse(&body).expect("parse");
    assert_eq!(v.packet_type, VideoPacketType::CodedFramesX);
    assert_eq!(v.frame_type, FrameType::Inter);
    assert_eq!(v.composition_time, 0);
    assert_eq!(&v.data[..], NALU);

    // The helper picks CodedFramesX for a zero composition time.
    let built = hevc_frame(true, false, 0, Bytes::from_static(NALU)).expect("build");
    assert_eq!(&built[..], &body[..]);
    let built = hevc_frame(true, true, 80, Bytes::from_static(NALU)).expect("build");
    assert_eq!(&built[..8], &[0x91, b'h', b'v', b'c', b'1', 0, 0, 80]);
}

#[test]
fn legacy_hevc_codec_id_12() {
    let body = hevc_sequence_header_legacy(HVCC);
    assert_eq!(&body[..5], &[0x1C, 0, 0, 0, 0]);
    let v = VideoTag::parse(&body).expect("parse");
    assert!(!v.enhanced);
    assert_eq!(v.codec, VideoCodec::Hevc);
    assert!(v.is_sequence_header());

    let frame = hevc_frame(false, false, 120, Bytes::from_static(NALU)).expect("build");
    assert_eq!(&frame[..5], &[0x2C, 1, 0, 0, 120]);
    let v = VideoTag::parse(&frame).expect("parse");
    assert_eq!(v.composition_time, 120);
    assert_eq!(v.packet_type, VideoPacketType::CodedFrames);
}

#[test]
fn av1_and_vp9_have_no_composition_time() {
    let body = [0x91, b'a', b'v', b'0', b'1', 0x12, 0x00, 0x0A];
    let v = parse(&body).expect("parse");
    assert_eq!(v.codec, VideoCodec::Av1);
    assert_eq!(v.packet_type, VideoPacketType::CodedFrames);
    assert_eq!(v.composition_time, 0);
    assert_eq!(&v.data[..], &[0x12, 0x00, 0x0A]);
    assert_eq!(&v.to_bytes().expect("encode")[..], &body[..]);

    let v = parse(b"\x90vp09\x01\x02").expect("parse");
    assert_eq!(v.codec, VideoCodec::Vp9);
    assert!(v.is_sequence_header());

    let v = parse(b"\x92xyz1").expect("parse");
    assert_eq!(v.codec, VideoCodec::FourCc(*b"xyz1"));
    assert_eq!(v.packet_type, VideoPacketType::SequenceEnd);

    // AV1 cannot be written with a legacy header.
    let mut v = VideoTag::sequence_start(VideoCodec::Av1, false, Bytes::new());
    assert!(matches!(v.to_bytes(), Err(Error::Unencodable(_))));
    v.enhanced = true;
    assert_eq!(&v.to_bytes().expect("encode")[..], b"\x90av01");
}

#[test]
fn metadata_and_command_frames() {
    // Enhanced metadata (packet type 4) with a frame type of 5 is still metadata.
    let v = parse(b"\xD4hvc1\x02\x00\x09colorInfo").expect("parse");
    assert_eq!(v.packet_type, VideoPacketType::Metadata);
    assert_eq!(v.codec, VideoCodec::Hevc);
    // Enhanced command frame: no FourCC, one command byte.
    let v = parse(b"\xD0\x01").expect("parse");
    assert_eq!(v.packet_type, VideoPacketType::Command);
    assert_eq!(v.codec, VideoCodec::Unspecified);
    assert_eq!(&v.data[..], b"\x01");
    assert_eq!(&v.to_bytes().expect("encode")[..], b"\xD0\x01");
    // Legacy command frame for AVC: no AVCPacketType.
    let v = parse(b"\x57\x00").expect("parse");
    assert_eq!(v.packet_type, VideoPacketType::Command);
    assert_eq!(v.codec, VideoCodec::Avc);
    assert_eq!(&v.to_bytes().expect("encode")[..], b"\x57\x00");
    // Legacy Sorenson H.263: opaque.
    let v = parse(b"\x22\x00\x00\x84").expect("parse");
    assert_eq!(v.codec, VideoCodec::Legacy(2));
    assert_eq!(v.packet_type, VideoPacketType::Raw);
    assert_eq!(&v.to_bytes().expect("encode")[..], b"\x22\x00\x00\x84");
}

#[test]
fn malformed_video_bodies() {
    assert_eq!(parse(b""), Err(Error::EmptyBody("video")));
    assert_eq!(parse(b"\x07"), Err(Error::InvalidFrameType(0)));
    assert_eq!(parse(b"\x67\x01\0\0\0"), Err(Error::InvalidFrameType(6)));
    assert!(matches!(
        parse(b"\x17\x00\x00"),
        Err(Error::Truncated { .. })
    ));
    assert_eq!(
        parse(b"\x17\x03\0\0\0"),
        Err(Error::InvalidAvcPacketType(3))
    );
    assert!(matches!(parse(b"\x90hv"), Err(Error::Truncated { .. })));
    assert!(matches!(
        parse(b"\x91hvc1\x00"),
        Err(Error::Truncated { .. })
    ));
    assert_eq!(
        parse(b"\x96hvc1"),
        Err(Error::UnsupportedVideoPacketType(6))
    );
    assert_eq!(
        parse(b"\x97hvc1"),
        Err(Error::UnsupportedVideoPacketType(7))
    );
    // Composition time beyond 24 bits cannot be written.
    let v = VideoTag::coded_frames(VideoCodec::Avc, false, true, 1 << 23, Bytes::new());
    assert!(matches!(v.to_bytes(), Err(Error::OutOfRange { .. })));
}

#[test]
fn audio_bodies() {
    // Legacy AAC.
    let a = AudioTag::parse(&os_flv::aac_sequence_header(&[0x11, 0x90])).expect("parse");
    assert_eq!(a.codec, AudioCodec::Aac);
    assert!(a.is_sequence_header());
    assert_eq!(&a.data[..], &[0x11, 0x90]);
    assert_eq!(a.legacy_sample_rate(), 44_100);
    assert!(a.stereo && a.sound_size_16bit);
    let raw = os_flv::aac_frame(&[0x21, 0x10]);
    assert_eq!(&raw[..2], &[0xAF, 0x01]);
    assert_eq!(
        AudioTag::parse(&raw).expect("parse").packet_type,
        AudioPacketType::CodedFrames
    );
    assert_eq!(
        AudioTag::aac(
            AudioPacketType::CodedFrames,
            Bytes::from_static(&[0x21, 0x10])
        )
        .to_bytes()
        .expect("encode"),
        raw
    );
    // Legacy MP3, 22 kHz, 16-bit, mono.
    let a = AudioTag::parse(&Bytes::from_static(b"\x2A\xFF\xFB")).expect("parse");
    assert_eq!(a.codec, AudioCodec::Mp3);
    assert_eq!(a.packet_type, AudioPacketType::Raw);
    assert_eq!(a.legacy_sample_rate(), 22_050);
    assert!(!a.stereo);
    assert_eq!(&a.to_bytes().expect("encode")[..], b"\x2A\xFF\xFB");
    // Enhanced Opus.
    let a = AudioTag::parse(&Bytes::from_static(b"\x90OpusOpusHead")).expect("parse");
    assert!(a.enhanced);
    assert_eq!(a.codec, AudioCodec::Opus);
    assert!(a.is_sequence_header());
    assert_eq!(&a.data[..], b"OpusHead");
    assert_eq!(&a.to_bytes().expect("encode")[..], b"\x90OpusOpusHead");
    // Errors.
    assert_eq!(
        AudioTag::parse(&Bytes::new()),
        Err(Error::EmptyBody("audio"))
    );
    assert!(matches!(
        AudioTag::parse(&Bytes::from_static(b"\xAF")),
        Err(Error::Truncated { .. })
    ));
    assert_eq!(
        AudioTag::parse(&Bytes::from_static(b"\xAF\x02")),
        Err(Error::InvalidAacPacketType(2))
    );
    assert_eq!(
        AudioTag::parse(&Bytes::from_static(b"\x95Opus")),
        Err(Error::UnsupportedAudioPacketType(5))
    );
}

#[test]
fn composition_time_from_90khz() {
    // pts = dts + 2 frames at 25 fps.
    let dts = ms_to_ticks(1000);
    assert_eq!(composition_time_ms(dts + 7200, dts), 80);
    // 29.97 fps: pts/dts not on ms boundaries; tag time + cts == ms(pts).
    let (pts, dts) = (3003 * 7, 3003 * 5);
    let cts = composition_time_ms(pts, dts);
    assert_eq!(
        i64::from(os_flv::time::tag_timestamp(dts)) + i64::from(cts),
        os_flv::time::ticks_to_ms(pts)
    );
}

fn file_with(tags: &[Tag]) -> Vec<u8> {
    let mut out = BytesMut::new();
    FlvHeader::default().write(&mut out);
    for t in tags {
        t.write(&mut out).expect("write");
    }
    out.to_vec()
}

#[test]
fn reader_rejects_bad_signature_early() {
    let mut r = FlvReader::new();
    r.push(b"FLX");
    assert_eq!(r.pull(), Err(Error::BadSignature(*b"FLX")));
    // The error sticks.
    r.push(b"\x01\x05\0\0\0\x09");
    assert_eq!(r.pull(), Err(Error::BadSignature(*b"FLX")));
    let mut r = FlvReader::new();
    r.push(b"G");
    assert!(matches!(r.pull(), Err(Error::BadSignature(_))));
}

#[test]
fn reader_rejects_bad_data_offset() {
    let mut r = FlvReader::new();
    r.push(b"FLV\x01\x05\0\0\0\x05");
    assert_eq!(r.pull(), Err(Error::BadDataOffset(5)));
}

#[test]
fn reader_skips_extended_header() {
    let mut data = b"FLV\x01\x05\0\0\0\x0C\xAA\xBB\xCC\0\0\0\0".to_vec();
    let mut tag = Vec::new();
    Tag::new(TagType::Audio, 5, Bytes::from_static(b"\xAF\x01\x00"))
        .write(&mut tag)
        .expect("write");
    data.extend_from_slice(&tag);
    let mut r = FlvReader::new();
    for b in &data {
        r.push(std::slice::from_ref(b));
        if let Some(t) = r.pull().expect("valid") {
            assert_eq!(t.timestamp, 5);
        }
    }
    r.finish().expect("clean end");
}

#[test]
fn reader_caps_tag_size() {
    let data = file_with(&[Tag::new(TagType::Video, 0, Bytes::from(vec![0x17; 1000]))]);
    let mut r = FlvReader::with_options(ReaderOptions {
        max_tag_size: 999,
        ..Default::default()
    });
    // Only the header of the big tag is needed to reject it.
    r.push(&data[..13 + 11]);
    assert_eq!(
        r.pull(),
        Err(Error::TagTooLarge {
            size: 1000,
            max: 999
        })
    );
}

#[test]
fn reader_previous_tag_size_checks() {
    let mut data = file_with(&[
        Tag::new(TagType::Audio, 0, Bytes::from_static(b"\xAF\x01")),
        Tag::new(TagType::Audio, 23, Bytes::from_static(b"\xAF\x01")),
    ]);
    // Corrupt the PreviousTagSize after the first tag (13 + 11 + 2).
    data[26 + 3] ^= 0x01;
    let mut lenient = FlvReader::new();
    lenient.push(&data);
    assert!(lenient.pull().expect("ok").is_some());
    assert!(lenient.pull().expect("ok").is_some());
    assert_eq!(lenient.previous_tag_size_mismatches(), 1);
    lenient.finish().expect("clean end");

    let mut strict = FlvReader::with_options(ReaderOptions {
        strict_previous_tag_size: true,
        ..Default::default()
    });
    strict.push(&data);
    assert!(strict.pull().expect("ok").is_some());
    assert_eq!(
        strict.pull(),
        Err(Error::PreviousTagSize {
            expected: 13,
            found: 12
        })
    );
}

#[test]
fn reader_reports_truncation_at_finish() {
    let data = file_with(&[Tag::new(
        TagType::Script,
        0,
        Bytes::from_static(b"\x02\x00\x01x"),
    )]);
    for cut in [0, 5, 13, 20, 27] {
        let mut r = FlvReader::new();
        r.push(&data[..cut]);
        while let Ok(Some(_)) = r.pull() {}
        if cut == 13 {
            assert!(r.finish().is_ok(), "cut {cut}");
        } else {
            assert!(
                matches!(r.finish(), Err(Error::UnexpectedEnd(_))),
                "cut {cut}"
            );
        }
    }
    // Missing the final PreviousTagSize is tolerated.
    let mut r = FlvReader::new();
    r.push(&data[..data.len() - 4]);
    assert!(r.pull().expect("ok").is_some());
    r.finish().expect("clean end");
}

#[test]
fn headerless_mode_and_extended_timestamp() {
    let tag = Tag::new(
        TagType::Video,
        0x1234_5678,
        Bytes::from_static(b"\x27\x02\0\0\0"),
    );
    let mut bytes = Vec::new();
    tag.write(&mut bytes).expect("write");
    // Timestamp bytes: lower 24 bits then the extended byte.
    assert_eq!(&bytes[4..8], &[0x34, 0x56, 0x78, 0x12]);
    let mut r = FlvReader::with_options(ReaderOptions {
        expect_header: false,
        ..Default::default()
    });
    r.push(&bytes);
    assert_eq!(r.pull().expect("ok"), Some(tag));
    assert_eq!(r.pull().expect("ok"), None);
    r.finish().expect("clean end");
    assert!(r.header().is_none());
}

#[test]
fn writer_rejects_oversized_body() {
    let tag = Tag::new(TagType::Video, 0, Bytes::from(vec![0; 1 << 24]));
    let mut out = Vec::new();
    assert!(matches!(tag.write(&mut out), Err(Error::OutOfRange { .. })));
}

#[test]
fn push_bytes_adopts_unshared_input() {
    let data = file_with(&[
        Tag::new(TagType::Audio, 0, Bytes::from_static(b"\xAF\x01\x01")),
        Tag::new(TagType::Audio, 23, Bytes::from_static(b"\xAF\x01\x02")),
    ]);
    let mut r = FlvReader::new();
    r.push_bytes(Bytes::from(data[..20].to_vec()));
    r.push_bytes(Bytes::from(data[20..].to_vec()));
    let a = r.pull().expect("ok").expect("tag");
    let b = r.pull().expect("ok").expect("tag");
    assert_eq!((a.timestamp, b.timestamp), (0, 23));
    assert_eq!(&b.data[..], b"\xAF\x01\x02");
    assert_eq!(r.pull(), Ok(None));
    r.finish().expect("clean end");
}
