//! Checks against real encoder output (data/testdata/es, see its README) and
//! against what ffprobe reports for the same files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use bytes::Bytes;
use os_av::{AccessUnit, Codec, TrackParams};
use os_codecs::annexb::nal_units;
use os_codecs::nal::{
    annexb_to_length_prefixed, extract_parameter_sets, is_keyframe, length_prefixed_to_annexb,
};
use os_codecs::params::ParamTracker;
use os_codecs::{codec_string, h264, h265};

fn es_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/testdata/es")
        .join(name)
}

fn read_es(name: &str) -> Bytes {
    Bytes::from(std::fs::read(es_path(name)).unwrap_or_else(|e| panic!("read {name}: {e}")))
}

/// `ffprobe -show_streams` of the first stream as key/value pairs. Panics with
/// a clear message when ffprobe is not installed.
fn ffprobe_stream(name: &str) -> HashMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "default=nw=1"])
        .arg(es_path(name))
        .output()
        .unwrap_or_else(|e| panic!("this test needs ffprobe (from FFmpeg) on PATH: {e}"));
    assert!(out.status.success(), "ffprobe failed on {name}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Split an Annex-B elementary stream into access units at access unit delimiters.
fn split_at_aud(es: &Bytes, codec: Codec) -> Vec<Bytes> {
    let is_aud = |nal: &[u8]| match codec {
        Codec::H264 => nal.first().map(|&h| h264::nal_type(h)) == Some(h264::NAL_AUD),
        _ => nal.first().map(|&h| h265::nal_type(h)) == Some(h265::NAL_AUD),
    };
    let mut aus = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for nal in nal_units(es) {
        if is_aud(nal) && !cur.is_empty() {
            aus.push(Bytes::from(std::mem::take(&mut cur)));
        }
        cur.extend_from_slice(&[0, 0, 0, 1]);
        cur.extend_from_slice(nal);
    }
    if !cur.is_empty() {
        aus.push(Bytes::from(cur));
    }
    aus
}

fn h264_profile_idc(name: &str) -> u8 {
    match name {
        "Baseline" | "Constrained Baseline" => 66,
        "Main" => 77,
        "Extended" => 88,
        "High" => 100,
        "High 10" => 110,
        "High 4:2:2" => 122,
        "High 4:4:4 Predictive" => 244,
        other => panic!("unknown H.264 profile {other}"),
    }
}

fn h265_profile_idc(name: &str) -> u8 {
    match name {
        "Main" => 1,
        "Main 10" => 2,
        "Main Still Picture" => 3,
        "Rext" => 4,
        other => panic!("unknown H.265 profile {other}"),
    }
}

const H264_VECTORS: [(&str, (u32, u32)); 3] = [
    ("h264_high_bframes_320x240_25fps.h264", (25, 1)),
    ("h264_main_nobframes_320x240_25fps.h264", (25, 1)),
    ("h264_high444_crop_330x186_30fps.h264", (30, 1)),
];

const H265_VECTORS: [(&str, (u32, u32)); 3] = [
    ("h265_main_nobframes_320x240_25fps.h265", (25, 1)),
    ("h265_main_bframes_320x240_25fps.h265", (25, 1)),
    ("h265_main10_crop_330x186_30fps.h265", (30, 1)),
];

#[test]
fn h264_sps_matches_ffprobe() {
    for (name, fps) in H264_VECTORS {
        let es = read_es(name);
        let probe = ffprobe_stream(name);
        let sets = extract_parameter_sets(Codec::H264, &es);
        let sps_nal = sets.sps.first().expect("SPS in vector");
        let sps = h264::parse_sps(sps_nal).unwrap();
        assert_eq!(sps.width.to_string(), probe["width"], "{name} width");
        assert_eq!(sps.height.to_string(), probe["height"], "{name} height");
        assert_eq!(
            sps.profile_idc,
            h264_profile_idc(&probe["profile"]),
            "{name}"
        );
        assert_eq!(sps.level_idc.to_string(), probe["level"], "{name} level");
        assert_eq!(sps.frame_rate(), Some(fps), "{name} frame rate");
        assert_eq!(probe["r_frame_rate"], format!("{}/{}", fps.0, fps.1));
        // Codec string: the three bytes after the NAL header, in hex.
        let expected = format!(
            "avc1.{:02x}{:02x}{:02x}",
            sps_nal[1], sps_nal[2], sps_nal[3]
        );
        let s = codec_string::avc(sps.profile_idc, sps.constraint_flags, sps.level_idc);
        assert_eq!(s, expected);
        let params = os_codecs::params::h264_video_params(&sets.sps, &sets.pps).unwrap();
        assert_eq!(codec_string::for_h264(&params), expected);
    }
    let sps = first_h264_sps("h264_high444_crop_330x186_30fps.h264");
    assert_eq!(sps.chroma_format_idc, 3);
    assert_eq!(
        codec_string::avc(sps.profile_idc, sps.constraint_flags, sps.level_idc),
        "avc1.f4000d"
    );
}

fn first_h264_sps(name: &str) -> h264::Sps {
    let es = read_es(name);
    let sets = extract_parameter_sets(Codec::H264, &es);
    h264::parse_sps(&sets.sps[0]).unwrap()
}

#[test]
fn h265_sps_matches_ffprobe() {
    for (name, fps) in H265_VECTORS {
        let es = read_es(name);
        let probe = ffprobe_stream(name);
        let sets = extract_parameter_sets(Codec::H265, &es);
        assert_eq!(sets.vps.len(), 1, "{name}");
        let sps = h265::parse_sps(&sets.sps[0]).unwrap();
        assert_eq!(sps.width.to_string(), probe["width"], "{name} width");
        assert_eq!(sps.height.to_string(), probe["height"], "{name} height");
        assert_eq!(
            sps.ptl.profile_idc,
            h265_profile_idc(&probe["profile"]),
            "{name}"
        );
        assert_eq!(
            sps.ptl.level_idc.to_string(),
            probe["level"],
            "{name} level"
        );
        assert_eq!(sps.frame_rate(), Some(fps), "{name} frame rate");
        // x265 signals general_progressive_source_flag + general_frame_only_constraint_flag
        // (first constraint byte 0x90); Main sets compatibility flags 1 and 2, Main 10 flag 2.
        let s = codec_string::hevc("hvc1", &sps.ptl);
        let expected = match sps.ptl.profile_idc {
            1 => "hvc1.1.6.L60.90",
            _ => "hvc1.2.4.L60.90",
        };
        assert_eq!(s, expected, "{name}");
        let params = os_codecs::params::h265_video_params(&sets.vps, &sets.sps, &sets.pps).unwrap();
        assert_eq!(codec_string::for_h265(&params), s);
    }
}

#[test]
fn annexb_avcc_round_trip_on_vectors() {
    for name in H264_VECTORS
        .map(|v| v.0)
        .into_iter()
        .chain(H265_VECTORS.map(|v| v.0))
    {
        let es = read_es(name);
        let mut avcc = Vec::new();
        annexb_to_length_prefixed(&es, &mut avcc).unwrap();
        let mut back = Vec::new();
        length_prefixed_to_annexb(&avcc, 4, &mut back).unwrap();
        let a: Vec<&[u8]> = nal_units(&es).collect();
        let b: Vec<&[u8]> = nal_units(&back).collect();
        assert_eq!(a, b, "{name}");
        assert!(a.len() > 50);
    }
}

#[test]
fn decoder_config_records_round_trip_on_vectors() {
    for (name, _) in H264_VECTORS {
        let sets = extract_parameter_sets(Codec::H264, &read_es(name));
        let cfg = h264::AvcDecoderConfig::from_parameter_sets(&sets.sps, &sets.pps).unwrap();
        let bytes = cfg.to_vec().unwrap();
        assert_eq!(
            h264::AvcDecoderConfig::parse(&bytes).unwrap(),
            cfg,
            "{name}"
        );
        assert_eq!(
            cfg.high_profile_ext.is_some(),
            cfg.profile_idc == 100,
            "{name}"
        );
    }
    for (name, _) in H265_VECTORS {
        let sets = extract_parameter_sets(Codec::H265, &read_es(name));
        let cfg =
            h265::HevcDecoderConfig::from_parameter_sets(&sets.vps, &sets.sps, &sets.pps).unwrap();
        let bytes = cfg.to_vec().unwrap();
        let back = h265::HevcDecoderConfig::parse(&bytes).unwrap();
        assert_eq!(back, cfg, "{name}");
        assert_eq!(
            back.nalus(h265::NAL_PPS).collect::<Vec<_>>(),
            sets.pps.iter().collect::<Vec<_>>()
        );
    }
}

#[test]
fn keyframes_and_param_tracker_on_vectors() {
    for (name, codec, frames, gop) in [
        (
            "h264_main_nobframes_320x240_25fps.h264",
            Codec::H264,
            50,
            25,
        ),
        ("h264_high_bframes_320x240_25fps.h264", Codec::H264, 50, 25),
        (
            "h265_main_nobframes_320x240_25fps.h265",
            Codec::H265,
            50,
            25,
        ),
        ("h265_main_bframes_320x240_25fps.h265", Codec::H265, 50, 25),
    ] {
        let aus = split_at_aud(&read_es(name), codec);
        assert_eq!(aus.len(), frames, "{name}");
        let keys: Vec<usize> = aus
            .iter()
            .enumerate()
            .filter(|(_, au)| is_keyframe(codec, au))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(keys.first(), Some(&0), "{name}");
        assert!(keys.len() >= frames / gop, "{name}: keyframes {keys:?}");
        let mut tracker = ParamTracker::new();
        let mut events = Vec::new();
        for (i, payload) in aus.into_iter().enumerate() {
            let au = AccessUnit {
                track: 1,
                codec,
                pts: i as i64 * 3600,
                dts: i as i64 * 3600,
                keyframe: false,
                discontinuity: false,
                payload,
            };
            if let Some(ev) = tracker.observe(&au).unwrap() {
                events.push((i, ev));
            }
        }
        assert_eq!(events.len(), 1, "{name}");
        let TrackParams::Video(v) = &events[0].1.params else {
            panic!("video params expected")
        };
        assert_eq!(events[0].0, 0);
        assert_eq!((v.width, v.height), (320, 240));
        assert_eq!(v.frame_rate, Some((25, 1)));
    }
}
