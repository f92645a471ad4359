//! AMF0 decode / encode.

use os_flv::amf0::{self, Amf0Value, decode_all, decode_all_with_depth, encode_all};
use os_flv::{Error, Metadata, ScriptData, VideoCodec};

fn round_trip(v: &Amf0Value) {
    let bytes = v.to_vec().expect("encode");
    let mut input = &bytes[..];
    let back = Amf0Value::decode(&mut input).expect("decode");
    assert!(input.is_empty(), "leftover bytes for {v:?}");
    assert_eq!(&back, v);
}

fn sample_values() -> Vec<Amf0Value> {
    vec![
        Amf0Value::Number(0.0),
        Amf0Value::Number(-1.5e300),
        Amf0Value::Number(f64::INFINITY),
        Amf0Value::Boolean(true),
        Amf0Value::Boolean(false),
        Amf0Value::string(""),
        Amf0Value::string("héllo ✓"),
        Amf0Value::Null,
        Amf0Value::Undefined,
        Amf0Value::Reference(7),
        Amf0Value::Date {
            millis: 1.7e12,
            timezone: 0,
        },
        Amf0Value::LongString("x".repeat(70_000)),
        Amf0Value::Unsupported,
        Amf0Value::XmlDocument("<a/>".into()),
        Amf0Value::object([("", Amf0Value::Number(1.0)), ("k", Amf0Value::Null)]),
        Amf0Value::Object(vec![]),
        Amf0Value::EcmaArray(vec![]),
        Amf0Value::StrictArray(vec![]),
        Amf0Value::TypedObject {
            class: "flash.Thing".into(),
            properties: vec![("a".into(), Amf0Value::Boolean(true))],
        },
    ]
}

#[test]
fn every_type_round_trips() {
    for v in sample_values() {
        round_trip(&v);
    }
}

#[test]
fn nested_objects_and_arrays_round_trip() {
    let inner = Amf0Value::EcmaArray(vec![
        ("width".into(), Amf0Value::Number(1920.0)),
        (
            "list".into(),
            Amf0Value::StrictArray(sample_values().into_iter().take(10).collect()),
        ),
    ]);
    let v = Amf0Value::object([
        ("inner", inner.clone()),
        ("obj", Amf0Value::object([("deeper", inner)])),
        ("all", Amf0Value::StrictArray(sample_values())),
    ]);
    round_trip(&v);
    // A sequence of values decodes back to the same sequence.
    let seq = vec![
        Amf0Value::string("cmd"),
        Amf0Value::Number(3.0),
        v,
        Amf0Value::Null,
    ];
    let mut bytes = Vec::new();
    encode_all(&seq, &mut bytes).expect("encode");
    assert_eq!(decode_all(&bytes).expect("decode"), seq);
}

#[test]
fn long_plain_string_is_written_as_long_string() {
    let s = "y".repeat(65_536);
    let bytes = Amf0Value::String(s.clone()).to_vec().expect("encode");
    assert_eq!(bytes[0], 0x0C);
    assert_eq!(
        decode_all(&bytes).expect("decode"),
        vec![Amf0Value::LongString(s)]
    );
}

#[test]
fn known_encodings() {
    assert_eq!(
        Amf0Value::Number(1.0).to_vec().expect("enc"),
        [0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        Amf0Value::string("ab").to_vec().expect("enc"),
        [0x02, 0, 2, b'a', b'b']
    );
    assert_eq!(
        Amf0Value::object([("a", Amf0Value::Null)])
            .to_vec()
            .expect("enc"),
        [0x03, 0, 1, b'a', 0x05, 0, 0, 0x09]
    );
    assert_eq!(
        Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Boolean(true))])
            .to_vec()
            .expect("enc"),
        [0x08, 0, 0, 0, 1, 0, 1, b'a', 0x01, 0x01, 0, 0, 0x09]
    );
}

/// The `connect` command ffmpeg sends when publishing, captured on loopback.
#[test]
fn ffmpeg_connect_command_decodes() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/testdata/flv/rtmp_connect_ffmpeg.amf0"
    ))
    .expect("vector");
    let values = decode_all(&body).expect("decode connect");
    assert_eq!(values.len(), 3);
    assert_eq!(values[0].as_str(), Some("connect"));
    assert_eq!(values[1].as_f64(), Some(1.0));
    let obj = &values[2];
    assert_eq!(obj.get("app").and_then(Amf0Value::as_str), Some("live"));
    assert_eq!(
        obj.get("type").and_then(Amf0Value::as_str),
        Some("nonprivate")
    );
    assert!(
        obj.get("flashVer")
            .and_then(Amf0Value::as_str)
            .is_some_and(|s| s.starts_with("FMLE/3.0"))
    );
    assert_eq!(
        obj.get("tcUrl").and_then(Amf0Value::as_str),
        Some("rtmp://127.0.0.1:19350/live")
    );
    // Re-encoding is byte-identical.
    let mut out = Vec::new();
    encode_all(&values, &mut out).expect("encode");
    assert_eq!(out, body);
}

#[test]
fn command_struct() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/testdata/flv/rtmp_connect_ffmpeg.amf0"
    ))
    .expect("vector");
    let cmd = amf0::Command::parse(&body).expect("parse");
    assert_eq!(cmd.name, "connect");
    assert_eq!(cmd.transaction_id, 1.0);
    assert_eq!(
        cmd.command_object.get("app").and_then(Amf0Value::as_str),
        Some("live")
    );
    assert!(cmd.args.is_empty());
    assert_eq!(cmd.to_vec().expect("encode"), body);

    let mut publish = amf0::Command::new("publish", 5.0);
    publish.args = vec![Amf0Value::string("stream"), Amf0Value::string("live")];
    let back = amf0::Command::parse(&publish.to_vec().expect("encode")).expect("parse");
    assert_eq!(back, publish);

    // A bare name + transaction id reads a null command object.
    let mut bytes = Vec::new();
    encode_all(
        &[Amf0Value::string("closeStream"), Amf0Value::Number(0.0)],
        &mut bytes,
    )
    .expect("encode");
    assert_eq!(
        amf0::Command::parse(&bytes).expect("parse").command_object,
        Amf0Value::Null
    );
    assert!(matches!(
        amf0::Command::parse(&[0x05]),
        Err(Error::BadCommand(_))
    ));
    assert!(matches!(
        amf0::Command::parse(&[0x02, 0, 1, b'x', 0x05]),
        Err(Error::BadCommand(_))
    ));
}

/// A hand-built play-side `connect` as an Enhanced RTMP client sends it.
#[test]
fn enhanced_connect_with_fourcc_list() {
    let cmd = vec![
        Amf0Value::string("connect"),
        Amf0Value::Number(1.0),
        Amf0Value::object([
            ("app", Amf0Value::string("live")),
            ("tcUrl", Amf0Value::string("rtmp://127.0.0.1/live")),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(3191.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
            (
                "fourCcList",
                Amf0Value::StrictArray(vec![
                    Amf0Value::string("hvc1"),
                    Amf0Value::string("av01"),
                    Amf0Value::string("vp09"),
                ]),
            ),
        ]),
    ];
    let mut bytes = Vec::new();
    encode_all(&cmd, &mut bytes).expect("encode");
    let back = decode_all(&bytes).expect("decode");
    assert_eq!(back, cmd);
    let list = back[2].get("fourCcList").expect("list");
    assert!(matches!(list, Amf0Value::StrictArray(items) if items.len() == 3));
}

#[test]
fn nesting_bomb_is_rejected() {
    // 100 000 nested strict arrays of one element.
    let mut bomb = Vec::new();
    for _ in 0..100_000 {
        bomb.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
    }
    bomb.push(0x05);
    assert_eq!(
        decode_all(&bomb),
        Err(Error::Amf0TooDeep(amf0::DEFAULT_MAX_DEPTH))
    );
    // Same with objects.
    let mut bomb = Vec::new();
    bomb.push(0x03);
    for _ in 0..100_000 {
        bomb.extend_from_slice(&[0, 1, b'a', 0x03]);
    }
    assert_eq!(
        decode_all(&bomb),
        Err(Error::Amf0TooDeep(amf0::DEFAULT_MAX_DEPTH))
    );
    // Within a custom limit.
    let nested = [0x0A, 0, 0, 0, 1, 0x0A, 0, 0, 0, 1, 0x05];
    assert!(decode_all_with_depth(&nested, 2).is_ok());
    assert!(decode_all_with_depth(&nested, 1).is_err());
    // Encoding refuses what decoding would refuse.
    let mut v = Amf0Value::Null;
    for _ in 0..100 {
        v = Amf0Value::StrictArray(vec![v]);
    }
    assert!(v.to_vec().is_err());
}

#[test]
fn huge_counts_do_not_allocate() {
    // A strict array announcing 4 billion elements, then nothing.
    let data = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(matches!(decode_all(&data), Err(Error::Truncated { .. })));
    // A long string announcing 4 GiB.
    let data = [0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'];
    assert!(matches!(decode_all(&data), Err(Error::Truncated { .. })));
}

#[test]
fn malformed_input_is_an_error() {
    for data in [
        &[0x00, 1, 2][..],
        &[0x02, 0, 5, b'a'],
        &[0x03, 0, 1, b'a'],
        &[0x03, 0, 0],
        &[0x09],
        &[0x11, 0x01],
        &[0x04],
        &[0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x08, 0, 0, 0],
    ] {
        assert!(decode_all(data).is_err(), "{data:02x?}");
    }
    assert_eq!(decode_all(&[0x11]), Err(Error::Amf0Marker(0x11)));
    assert_eq!(decode_all(&[0x09]), Err(Error::Amf0UnexpectedObjectEnd));
}

#[test]
fn invalid_utf8_is_replaced() {
    let data = [0x02, 0, 2, 0xFF, b'a'];
    assert_eq!(
        decode_all(&data).expect("decode"),
        vec![Amf0Value::string("\u{FFFD}a")]
    );
}

#[test]
fn rtmp_set_data_frame_metadata() {
    let mut body = Vec::new();
    encode_all(
        &[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("height".into(), Amf0Value::Number(720.0)),
                // Enhanced RTMP: the FourCC packed in a number.
                (
                    "videocodecid".into(),
                    Amf0Value::Number(f64::from(u32::from_be_bytes(*b"hvc1"))),
                ),
                ("audiocodecid".into(), Amf0Value::string("Opus")),
            ]),
        ],
        &mut body,
    )
    .expect("encode");
    let script = ScriptData::parse(&body).expect("parse");
    assert_eq!(script.name, "onMetaData");
    let meta = script.metadata().expect("metadata");
    assert_eq!(meta.width, Some(1280.0));
    assert_eq!(meta.video_codec, Some(VideoCodec::Hevc));
    assert_eq!(meta.audio_codec, Some(os_flv::AudioCodec::Opus));

    // Building metadata and reading it back.
    let built = Metadata {
        width: Some(640.0),
        height: Some(360.0),
        framerate: Some(30.0),
        video_codec: Some(VideoCodec::Av1),
        audio_codec: Some(os_flv::AudioCodec::Aac),
        stereo: Some(true),
        encoder: Some("open-streamer".into()),
        ..Default::default()
    };
    let body = built.to_script_body().expect("encode");
    let back = ScriptData::parse(&body)
        .expect("parse")
        .metadata()
        .expect("metadata");
    assert_eq!(back, built);
}
