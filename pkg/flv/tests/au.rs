//! Tag bodies ↔ access units, on the ffmpeg vectors.

use std::process::Command;

use bytes::{Bytes, BytesMut};
use os_av::{AccessUnit, Codec, TrackParams};
use os_codecs::annexb::nal_units;
use os_codecs::{h265, nal::ParameterSets};
use os_flv::au::{audio_frame, audio_sequence_header, video_frame, video_sequence_header};
use os_flv::{
    DemuxEvent, FlvDemuxer, FlvHeader, FlvReader, Tag, TagType, VideoCodec, VideoPacketType,
    VideoTag,
};

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../data/testdata/flv/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn tags(name: &str) -> Vec<Tag> {
    let mut reader = FlvReader::new();
    reader.push(&load(name));
    let mut out = Vec::new();
    while let Some(t) = reader.pull().expect("valid") {
        out.push(t);
    }
    out
}

fn demux(tags: &[Tag]) -> Vec<DemuxEvent> {
    let mut demuxer = FlvDemuxer::new(256, 257);
    let mut events = Vec::new();
    for t in tags {
        demuxer.push_tag(t, &mut events).expect("demux");
    }
    events
}

#[test]
fn h264_aac_to_access_units() {
    let events = demux(&tags("h264_aac.flv"));
    let params: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Params(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(params.len(), 2);
    let TrackParams::Video(v) = &params[0].params else {
        panic!("video params first")
    };
    assert_eq!((v.width, v.height, v.profile), (320, 240, 100));
    assert_eq!(v.frame_rate, Some((25, 1)));
    let TrackParams::Audio(a) = &params[1].params else {
        panic!("audio params second")
    };
    assert_eq!((a.sample_rate, a.channels, a.object_type), (44_100, 2, 2));

    // Metadata from the params matches what ffmpeg wrote for these fields.
    let meta = os_flv::au::metadata_for(Some((Codec::H264, v)), Some((Codec::Aac, a)));
    let original = os_flv::ScriptData::parse(&tags("h264_aac.flv")[0].data)
        .expect("script")
        .metadata()
        .expect("metadata");
    assert_eq!(meta.width, original.width);
    assert_eq!(meta.height, original.height);
    assert_eq!(meta.framerate, original.framerate);
    assert_eq!(meta.video_codec, original.video_codec);
    assert_eq!(meta.audio_codec, original.audio_codec);
    assert_eq!(meta.audio_sample_rate, original.audio_sample_rate);
    assert_eq!(meta.stereo, original.stereo);
    let body = meta.to_script_body().expect("encode");
    let back = os_flv::ScriptData::parse(&body).expect("parse").metadata();
    assert_eq!(back, Some(meta));

    let units: Vec<&AccessUnit> = events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Unit(u) => Some(u),
            _ => None,
        })
        .collect();
    let video: Vec<_> = units.iter().filter(|u| u.codec == Codec::H264).collect();
    assert_eq!(video.len(), 50);
    // Compare timestamps with ffprobe's (ms → 90 kHz).
    let csv = String::from_utf8(load("h264_aac.packets.csv")).expect("csv");
    let mut expected = csv
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .into_iter();
    for u in &units {
        let f = expected.next().expect("packet");
        assert_eq!(
            f[0],
            if u.codec == Codec::H264 {
                "video"
            } else {
                "audio"
            }
        );
        assert_eq!(u.pts, f[1].parse::<i64>().expect("pts") * 90);
        assert_eq!(u.dts, f[2].parse::<i64>().expect("dts") * 90);
        assert_eq!(u.keyframe, f[5].starts_with('K'));
    }
    assert!(expected.next().is_none());
    // Key frames start with the SPS and PPS from the sequence header.
    for u in &video {
        assert!(u.payload.starts_with(&[0, 0, 0, 1]));
        let types: Vec<u8> = nal_units(&u.payload).map(|n| n[0] & 0x1F).collect();
        assert_eq!(u.keyframe, types.starts_with(&[7, 8]), "{types:?}");
        assert_eq!(u.keyframe, types.contains(&5));
    }
}

/// AUs → tag bodies reproduces the ffmpeg file, and the result plays in ffprobe.
#[test]
fn access_units_back_to_flv() {
    let original = tags("h264_aac.flv");
    let events = demux(&original);
    let mut rebuilt = Vec::new();
    let mut audio_params = None;
    for e in &events {
        match e {
            DemuxEvent::Params(p) => match &p.params {
                TrackParams::Video(v) => {
                    rebuilt.push((0, TagType::Video, video_sequence_header(p.codec, v, false)))
                }
                TrackParams::Audio(a) => {
                    audio_params = Some(a.clone());
                    let body = audio_sequence_header(p.codec, a)
                        .expect("aac")
                        .expect("some");
                    rebuilt.push((0, TagType::Audio, Ok(body)));
                }
            },
            DemuxEvent::Unit(u) if u.codec == Codec::H264 => {
                let (ts, body) = video_frame(u, false).expect("video frame");
                rebuilt.push((ts, TagType::Video, Ok(body)));
            }
            DemuxEvent::Unit(u) => {
                let (ts, body) = audio_frame(u, audio_params.as_ref()).expect("audio frame");
                rebuilt.push((ts, TagType::Audio, Ok(body)));
            }
        }
    }
    // Every original audio/video tag except the end-of-sequence one comes back
    // with the same timestamp and body.
    let originals: Vec<&Tag> = original
        .iter()
        .filter(|t| t.tag_type != TagType::Script)
        .filter(|t| {
            t.tag_type != TagType::Video
                || VideoTag::parse(&t.data).map(|v| v.packet_type)
                    != Ok(VideoPacketType::SequenceEnd)
        })
        .collect();
    assert_eq!(originals.len(), rebuilt.len());
    for (o, (ts, kind, body)) in originals.iter().zip(&rebuilt) {
        let body = body.as_ref().expect("body");
        assert_eq!(o.tag_type, *kind);
        assert_eq!(o.timestamp, *ts);
        assert_eq!(&o.data, body, "tag at {ts} ms");
    }

    if Command::new("ffprobe").arg("-version").output().is_err() {
        return;
    }
    let mut file = BytesMut::new();
    FlvHeader::default().write(&mut file);
    for (ts, kind, body) in &rebuilt {
        let body = body.clone().expect("body");
        Tag::new(*kind, *ts, body).write(&mut file).expect("write");
    }
    let path = std::env::temp_dir().join(format!("os-flv-au-{}.flv", std::process::id()));
    std::fs::write(&path, &file).expect("write temp");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=pts",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let _ = std::fs::remove_file(&path);
    assert_eq!(String::from_utf8_lossy(&probe.stderr), "");
    let csv = String::from_utf8(load("h264_aac.packets.csv")).expect("csv");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).lines().count(),
        csv.lines().count()
    );
}

/// Splits an Annex-B elementary stream with access unit delimiters into AUs.
fn hevc_access_units(es: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut aus: Vec<Vec<&[u8]>> = Vec::new();
    for nal in nal_units(es) {
        if h265::nal_type(nal[0]) == h265::NAL_AUD || aus.is_empty() {
            aus.push(Vec::new());
        }
        if let Some(au) = aus.last_mut() {
            au.push(nal);
        }
    }
    aus
}

/// HEVC through Enhanced RTMP (`hvc1`) and legacy codec id 12: params →
/// sequence header → demuxer gives the same params; AUs → frame bodies →
/// demuxer gives the same NAL units back.
#[test]
fn hevc_round_trip_enhanced_and_legacy() {
    let es = load("hevc_aud.h265");
    let aus = hevc_access_units(&es);
    assert_eq!(aus.len(), 10);
    let mut sets = ParameterSets::default();
    for nal in &aus[0] {
        let list = match h265::nal_type(nal[0]) {
            h265::NAL_VPS => &mut sets.vps,
            h265::NAL_SPS => &mut sets.sps,
            h265::NAL_PPS => &mut sets.pps,
            _ => continue,
        };
        list.push(Bytes::copy_from_slice(nal));
    }
    let params = os_codecs::params::video_params(Codec::H265, &sets).expect("params");
    assert_eq!((params.width, params.height), (160, 120));

    for enhanced in [true, false] {
        let header = video_sequence_header(Codec::H265, &params, enhanced).expect("header");
        let parsed = VideoTag::parse(&header).expect("parse");
        assert_eq!(parsed.enhanced, enhanced);
        assert_eq!(parsed.codec, VideoCodec::Hevc);

        let mut demuxer = FlvDemuxer::new(1, 2);
        demuxer.set_insert_parameter_sets(false);
        let mut events = Vec::new();
        demuxer
            .push_video(0, &header, &mut events)
            .expect("demux header");
        let [DemuxEvent::Params(p)] = &events[..] else {
            panic!("expected params, got {events:?}")
        };
        assert_eq!(p.params, TrackParams::Video(params.clone()));

        for (i, au) in aus.iter().enumerate() {
            let mut payload = Vec::new();
            for nal in au {
                payload.extend_from_slice(&[0, 0, 0, 1]);
                payload.extend_from_slice(nal);
            }
            let keyframe = au.iter().any(|n| h265::is_irap(h265::nal_type(n[0])));
            let dts = i as i64 * 3600;
            let unit = AccessUnit {
                track: 1,
                codec: Codec::H265,
                pts: dts + (i as i64 % 3) * 3600,
                dts,
                keyframe,
                discontinuity: false,
                payload: Bytes::from(payload),
            };
            let (ts, body) = video_frame(&unit, enhanced).expect("frame");
            let tag = VideoTag::parse(&body).expect("parse frame");
            assert_eq!(tag.enhanced, enhanced);
            if enhanced && i % 3 == 0 {
                assert_eq!(tag.packet_type, VideoPacketType::CodedFramesX);
            }
            let mut events = Vec::new();
            demuxer.push_video(ts, &body, &mut events).expect("demux");
            let [DemuxEvent::Unit(back)] = &events[..] else {
                panic!("expected one unit, got {events:?}")
            };
            assert_eq!(
                (back.pts, back.dts, back.keyframe),
                (unit.pts, unit.dts, keyframe)
            );
            // Same NAL units minus AUD and parameter sets.
            let want: Vec<&[u8]> = au
                .iter()
                .copied()
                .filter(|n| !(h265::NAL_VPS..=h265::NAL_AUD).contains(&h265::nal_type(n[0])))
                .collect();
            let got: Vec<&[u8]> = nal_units(&back.payload).collect();
            assert_eq!(got, want, "AU {i}");
        }
    }
}
