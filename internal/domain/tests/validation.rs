//! Every validation rule of the stream model, checked through its JSON form.

use os_domain::{FieldError, Hook, Stream};
use serde_json::json;

fn parse(v: serde_json::Value) -> Stream {
    match serde_json::from_value(v) {
        Ok(s) => s,
        Err(e) => panic!("does not deserialize: {e}"),
    }
}

fn problems(v: serde_json::Value) -> Vec<String> {
    match parse(v).validate() {
        Ok(()) => Vec::new(),
        Err(errs) => errs.iter().map(FieldError::to_string).collect(),
    }
}

#[test]
fn contract_example_is_valid() {
    let s = parse(json!({
        "code": "channel-1",
        "name": "Morning Show",
        "inputs": [
            {"url": "rtmp://encoder.studio.local/live/mykey", "priority": 0,
             "net": {"reconnect": true, "reconnect_delay_sec": 2, "reconnect_max_delay_sec": 30}},
            {"url": "udp://239.1.1.1:5000", "priority": 1}
        ],
        "transcoder": {
            "video": {"profiles": [
                {"width": 1920, "height": 1080, "bitrate": 4000, "codec": "h264", "preset": "fast"},
                {"width": 1280, "height": 720, "bitrate": 2000, "codec": "h264", "preset": "fast"},
                {"width": 854, "height": 480, "bitrate": 800, "codec": "h264", "preset": "fast"}
            ]},
            "audio": {"codec": "aac", "bitrate": 128, "channels": 2},
            "global": {"hw_accel": "nvenc"}
        },
        "protocols": {"hls": true, "dash": true, "rtsp": true},
        "push": [{"url": "rtmp://a.rtmp.youtube.com/live2/xxxx", "enabled": true, "comment": "YouTube Live"}],
        "dvr": {"enabled": true, "segment_duration": 6, "retention_sec": 172800}
    }));
    assert_eq!(s.validate(), Ok(()));
    assert_eq!(
        s.inputs[1].net.timeout_sec, 10,
        "defaults fill missing fields"
    );
}

#[test]
fn code_rules() {
    assert!(problems(json!({"code": ""}))[0].starts_with("code: must not be empty"));
    assert!(problems(json!({"code": "a b"}))[0].starts_with("code: invalid character ' '"));
    assert!(problems(json!({"code": "a$b"}))[0].contains("invalid character '$'"));
    assert!(problems(json!({"code": "x".repeat(129)}))[0].contains("at most 128"));
    assert!(problems(json!({"code": "x".repeat(128)})).is_empty());
    assert!(problems(json!({"code": "Cam_01-hd"})).is_empty());
}

#[test]
fn input_errors_carry_their_path_and_all_are_reported() {
    let errs = problems(json!({
        "code": "s",
        "inputs": [
            {"url": "rtmp://a/live/k", "priority": 0},
            {"url": "ftp://x/y", "priority": 1},
            {"url": "rtmp://a/live/k", "priority": 0},
            {"url": "", "priority": 3, "net": {"timeout_sec": 0, "reconnect_delay_sec": 10, "reconnect_max_delay_sec": 5}},
            {"url": "video.ts", "priority": 4, "headers": {"Bad Header": "x", "X-Ok": "a\nb"}}
        ]
    }));
    let expected = [
        "inputs[1].url: unsupported scheme \"ftp\"",
        "inputs[2].url: duplicate of inputs[0].url",
        "inputs[2].priority: priority 0 is already used by inputs[0]",
        "inputs[3].url: url is empty",
        "inputs[3].net.reconnect_max_delay_sec: must not be less than reconnect_delay_sec",
        "inputs[3].net.timeout_sec: must be between 1 and 3600, got 0",
        "inputs[4].url: relative file paths are not allowed; use an absolute path or file:///",
        "inputs[4].headers.Bad Header: invalid HTTP header name",
        "inputs[4].headers.X-Ok: header value must not contain line breaks",
    ];
    for e in expected {
        assert!(errs.iter().any(|x| x == e), "missing {e:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

#[test]
fn push_only_rtmp_and_unique() {
    let errs = problems(json!({
        "code": "s",
        "push": [
            {"url": "rtmp://a/live/k"},
            {"url": "srt://a:1"},
            {"url": "rtmp://a/live/k", "timeout_sec": 0},
            {"url": "rtmps://"}
        ]
    }));
    assert_eq!(
        errs,
        vec![
            "push[1].url: unsupported scheme \"srt\": push destinations must be rtmp:// or rtmps://",
            "push[2].url: duplicate of push[0].url",
            "push[2].timeout_sec: must be between 1 and 600, got 0",
            "push[3].url: missing host",
        ]
    );
}

#[test]
fn transcoder_rules() {
    let errs = problems(json!({
        "code": "s",
        "transcoder": {
            "video": {"profiles": [
                {"width": 1921, "height": 1080, "bitrate": 4000, "max_bitrate": 100, "preset": "turbo", "profile": "ultra", "level": "9.9"},
                {"width": 640, "height": 360, "bitrate": 1, "framerate": 500.0, "keyframe_interval": 99}
            ]},
            "audio": {"bitrate": 2, "sample_rate": 12345, "channels": 9},
            "global": {"fps": 1000, "gop": 5000}
        }
    }));
    let expected = [
        "transcoder.video.profiles[0].width: must be even",
        "transcoder.video.profiles[0].max_bitrate: must be 0 or at least bitrate",
        "transcoder.video.profiles[1].bitrate: must be between 16 and 200000, got 1",
        "transcoder.video.profiles[1].framerate: must be between 0 and 240, got 500",
        "transcoder.video.profiles[1].keyframe_interval: must be between 0 and 60, got 99",
        "transcoder.audio.bitrate: must be between 8 and 1024, got 2",
        "transcoder.audio.sample_rate: unsupported sample rate 12345",
        "transcoder.audio.channels: must be between 0 and 8, got 9",
        "transcoder.global.fps: must be between 0 and 240, got 1000",
        "transcoder.global.gop: must be between 0 and 1000, got 5000",
    ];
    for e in expected {
        assert!(errs.iter().any(|x| x == e), "missing {e:?} in {errs:#?}");
    }
    assert!(errs.iter().any(|e| e.starts_with("transcoder.video.profiles[0].preset: unknown preset \"turbo\"")));
    assert!(
        errs.iter()
            .any(|e| e
                .starts_with("transcoder.video.profiles[0].profile: unknown profile \"ultra\""))
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("transcoder.video.profiles[0].level: invalid level \"9.9\""))
    );
    assert_eq!(errs.len(), expected.len() + 3, "{errs:#?}");
}

#[test]
fn enums_and_unknown_fields_are_rejected_by_deserialization() {
    let bad_hw =
        serde_json::from_value::<Stream>(json!({"transcoder": {"global": {"hw_accel": "cuda"}}}));
    assert!(bad_hw.is_err_and(|e| e.to_string().contains("unknown variant `cuda`")));
    let typo = serde_json::from_value::<Stream>(json!({"protocols": {"hsl": true}}));
    assert!(typo.is_err_and(|e| e.to_string().contains("unknown field `hsl`")));
    let alias = parse(json!({"transcoder": {"video": {"profiles": [{"codec": "hevc"}]}}}));
    assert_eq!(
        alias.transcoder.map(|t| t.video.profiles[0].codec),
        Some(os_domain::VideoCodec::H265)
    );
}

#[test]
fn dvr_rules() {
    let errs = problems(json!({
        "code": "s",
        "dvr": {"enabled": true, "segment_duration": 0, "max_size_gb": -1.0, "storage_path": "../etc"}
    }));
    assert_eq!(
        errs,
        vec![
            "dvr.segment_duration: must be between 1 and 60, got 0",
            "dvr.max_size_gb: must be 0 (unlimited) or positive",
            "dvr.storage_path: must not contain '..'",
        ]
    );
}

#[test]
fn hook_rules() {
    let hook: Hook = serde_json::from_value(json!({
        "id": "ops", "name": "Ops", "type": "http", "target": "ftp://x",
        "event_types": ["stream.started", "stream.exploded"], "max_retries": 50, "timeout_sec": 0
    }))
    .unwrap_or_default();
    let errs: Vec<String> = hook
        .validate()
        .err()
        .unwrap_or_default()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        errs,
        vec![
            "target: http hooks need an http:// or https:// URL",
            "event_types[1]: unknown event type \"stream.exploded\"",
            "max_retries: must be between 0 and 10, got 50",
            "timeout_sec: must be between 1 and 300, got 0",
        ]
    );
    let kafka: Hook =
        serde_json::from_value(json!({"id": "k", "type": "kafka", "target": "events-topic"}))
            .unwrap_or_default();
    assert_eq!(kafka.validate(), Ok(()));
}
