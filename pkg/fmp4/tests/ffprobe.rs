//! End-to-end checks: fragmented MP4 built from real elementary streams
//! (data/testdata/es) must be accepted and fully decoded by ffprobe.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use os_av::{AccessUnit, Codec, TrackParams};
use os_codecs::aac::{AudioSpecificConfig, adts_frames};
use os_codecs::annexb::nal_units;
use os_codecs::bits::{BitReader, remove_emulation_prevention};
use os_codecs::nal::{extract_parameter_sets, is_keyframe};
use os_codecs::params::ParamTracker;
use os_codecs::{h264, h265};
use os_fmp4::{SegmentOptions, TrackConfig, TrackRun, write_init_segment, write_media_segment};

fn read_es(name: &str) -> Bytes {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/testdata/es")
        .join(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

fn temp_file(name: &str, data: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("os-fmp4-test-{}-{name}", std::process::id()));
    std::fs::write(&p, data).unwrap();
    p
}

/// Run ffprobe with full decoding; returns the stream sections as key/value
/// maps. Fails the test on any ffprobe message (or when ffprobe is missing).
fn ffprobe_decode(name: &str, data: &[u8]) -> Vec<HashMap<String, String>> {
    let path = temp_file(name, data);
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
        ])
        .args(["-of", "default=nw=0"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("this test needs ffprobe (from FFmpeg) on PATH: {e}"));
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed on {name}: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "ffprobe complained about {name}: {stderr}"
    );
    let mut streams = Vec::new();
    let mut cur: Option<HashMap<String, String>> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match line {
            "[STREAM]" => cur = Some(HashMap::new()),
            "[/STREAM]" => streams.extend(cur.take()),
            _ => {
                if let (Some(map), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                    map.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    streams
}

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

/// `pic_order_cnt_lsb` of the first slice of an H.264 access unit (POC type 0).
fn h264_poc_lsb(au: &[u8], sps: &h264::Sps) -> u32 {
    let slice = nal_units(au)
        .find(|n| matches!(n.first().map(|&h| h264::nal_type(h)), Some(1 | 5)))
        .expect("slice in access unit");
    let idr = h264::nal_type(slice[0]) == h264::NAL_IDR;
    let rbsp = remove_emulation_prevention(&slice[1..]);
    let mut r = BitReader::new(&rbsp);
    r.read_ue().unwrap(); // first_mb_in_slice
    r.read_ue().unwrap(); // slice_type
    r.read_ue().unwrap(); // pic_parameter_set_id
    r.read_bits(sps.log2_max_frame_num).unwrap(); // frame_num
    assert!(sps.frame_mbs_only);
    if idr {
        r.read_ue().unwrap(); // idr_pic_id
    }
    assert_eq!(sps.pic_order_cnt_type, 0);
    r.read_bits(sps.log2_max_pic_order_cnt_lsb).unwrap() as u32
}

/// Access units of an Annex-B stream at a constant frame rate. With
/// `reorder`, presentation times come from H.264 picture order counts
/// (decode order != presentation order) and are delayed by `reorder` frames.
fn video_units(name: &str, codec: Codec, frame_ticks: i64, reorder: i64) -> Vec<AccessUnit> {
    let es = read_es(name);
    let aus = split_at_aud(&es, codec);
    let mut pts_rank = (0..aus.len() as i64).collect::<Vec<_>>();
    if reorder > 0 {
        let sets = extract_parameter_sets(codec, &es);
        let sps = h264::parse_sps(&sets.sps[0]).unwrap();
        // Rank pictures by POC within each IDR period.
        let mut start = 0;
        while start < aus.len() {
            let end = (start + 1..aus.len())
                .find(|&i| h264::is_keyframe(&aus[i]))
                .unwrap_or(aus.len());
            let mut order: Vec<(u32, usize)> = (start..end)
                .map(|i| (h264_poc_lsb(&aus[i], &sps), i))
                .collect();
            order.sort();
            for (rank, (_, i)) in order.into_iter().enumerate() {
                pts_rank[i] = (start + rank) as i64;
            }
            start = end;
        }
    }
    aus.into_iter()
        .enumerate()
        .map(|(i, payload)| AccessUnit {
            track: 1,
            codec,
            pts: (pts_rank[i] + reorder) * frame_ticks,
            dts: i as i64 * frame_ticks,
            keyframe: is_keyframe(codec, &payload),
            discontinuity: false,
            payload,
        })
        .collect()
}

fn params_of(units: &[AccessUnit]) -> TrackParams {
    let mut tracker = ParamTracker::new();
    let mut params = None;
    for u in units {
        if let Some(ev) = tracker.observe(u).unwrap() {
            params.get_or_insert(ev.params);
        }
    }
    params.expect("parameter sets in stream")
}

/// Indices where each segment starts: at keyframes.
fn gop_starts(units: &[AccessUnit]) -> Vec<usize> {
    let starts: Vec<usize> = (0..units.len()).filter(|&i| units[i].keyframe).collect();
    assert_eq!(starts.first(), Some(&0));
    starts
}

fn write_segments(out: &mut BytesMut, track: &TrackConfig, units: &[AccessUnit]) -> usize {
    let starts = gop_starts(units);
    for (n, &s) in starts.iter().enumerate() {
        let e = starts.get(n + 1).copied().unwrap_or(units.len());
        let next_dts = units.get(e).map(|u| u.dts);
        let info = write_media_segment(
            out,
            n as u32 + 1,
            &[TrackRun {
                track,
                units: &units[s..e],
                next_dts,
            }],
            &SegmentOptions::default(),
        )
        .unwrap();
        assert_eq!(info.fragments[0].sample_count as usize, e - s);
        assert!(info.fragments[0].starts_with_sync);
    }
    starts.len()
}

fn check_video(name: &str, codec: Codec, reorder: i64, tag: &str, codec_name: &str) {
    let units = video_units(name, codec, 3600, reorder);
    let params = params_of(&units);
    let track = TrackConfig::new(1, codec, &params).unwrap();
    let mut file = BytesMut::new();
    write_init_segment(&mut file, std::slice::from_ref(&track)).unwrap();
    let segments = write_segments(&mut file, &track, &units);
    assert!(segments >= 2, "{name}: {segments} segments");
    let streams = ffprobe_decode(&format!("{name}.mp4"), &file);
    assert_eq!(streams.len(), 1);
    let s = &streams[0];
    assert_eq!(s["codec_name"], codec_name, "{name}");
    assert_eq!(s["codec_tag_string"], tag, "{name}");
    assert_eq!(s["width"], "320", "{name}");
    assert_eq!(s["height"], "240", "{name}");
    assert_eq!(s["nb_read_frames"], units.len().to_string(), "{name}");
    assert_eq!(s["r_frame_rate"], "25/1", "{name}");
    assert!(track.codec_string().starts_with(tag));
}

#[test]
fn h264_fmp4_decodes() {
    check_video(
        "h264_main_nobframes_320x240_25fps.h264",
        Codec::H264,
        0,
        "avc1",
        "h264",
    );
}

#[test]
fn h264_bframes_fmp4_decodes_with_composition_offsets() {
    let units = video_units("h264_high_bframes_320x240_25fps.h264", Codec::H264, 3600, 2);
    assert!(
        units.iter().any(|u| u.pts < u.dts + 2 * 3600),
        "B-frames expected"
    );
    check_video(
        "h264_high_bframes_320x240_25fps.h264",
        Codec::H264,
        2,
        "avc1",
        "h264",
    );
}

#[test]
fn h265_fmp4_decodes() {
    check_video(
        "h265_main_nobframes_320x240_25fps.h265",
        Codec::H265,
        0,
        "hvc1",
        "hevc",
    );
}

#[test]
fn h264_in_band_parameter_sets_use_avc3() {
    let units = video_units(
        "h264_main_nobframes_320x240_25fps.h264",
        Codec::H264,
        3600,
        0,
    );
    let track = TrackConfig::new(7, Codec::H264, &params_of(&units))
        .unwrap()
        .with_in_band_parameter_sets(true);
    let mut file = BytesMut::new();
    write_init_segment(&mut file, std::slice::from_ref(&track)).unwrap();
    write_segments(&mut file, &track, &units);
    let streams = ffprobe_decode("avc3.mp4", &file);
    assert_eq!(streams[0]["codec_tag_string"], "avc3");
    assert_eq!(streams[0]["nb_read_frames"], "50");
}

fn aac_units() -> (TrackParams, Vec<AccessUnit>) {
    let es = read_es("aac_lc_48k_stereo.adts");
    let mut params = None;
    let mut units = Vec::new();
    for (i, (_, header, payload)) in adts_frames(&es).enumerate() {
        params.get_or_insert_with(|| AudioSpecificConfig::from_adts(&header).to_audio_params());
        units.push(AccessUnit {
            track: 2,
            codec: Codec::Aac,
            pts: i as i64 * 1920,
            dts: i as i64 * 1920,
            keyframe: true,
            discontinuity: false,
            payload: es.slice_ref(payload),
        });
    }
    (TrackParams::Audio(params.expect("ADTS frames")), units)
}

#[test]
fn aac_fmp4_decodes() {
    let (params, units) = aac_units();
    assert_eq!(units.len(), 95);
    let track = TrackConfig::new(1, Codec::Aac, &params).unwrap();
    assert_eq!(track.timescale, 48_000);
    assert_eq!(track.codec_string(), "mp4a.40.2");
    let mut file = BytesMut::new();
    write_init_segment(&mut file, std::slice::from_ref(&track)).unwrap();
    for (n, chunk) in units.chunks(24).enumerate() {
        let info = write_media_segment(
            &mut file,
            n as u32 + 1,
            &[TrackRun {
                track: &track,
                units: chunk,
                next_dts: None,
            }],
            &SegmentOptions::default(),
        )
        .unwrap();
        assert_eq!(
            info.fragments[0].base_media_decode_time,
            n as u64 * 24 * 1024
        );
        assert_eq!(info.fragments[0].duration, chunk.len() as u64 * 1024);
    }
    let streams = ffprobe_decode("aac.mp4", &file);
    let s = &streams[0];
    assert_eq!(s["codec_name"], "aac");
    assert_eq!(s["profile"], "LC");
    assert_eq!(s["sample_rate"], "48000");
    assert_eq!(s["channels"], "2");
    assert_eq!(s["nb_read_frames"], "95");
}

#[test]
fn multi_track_fmp4_decodes() {
    let video = video_units(
        "h264_main_nobframes_320x240_25fps.h264",
        Codec::H264,
        3600,
        0,
    );
    let (aparams, audio) = aac_units();
    let vtrack = TrackConfig::new(1, Codec::H264, &params_of(&video)).unwrap();
    let atrack = TrackConfig::new(2, Codec::Aac, &aparams).unwrap();
    let mut file = BytesMut::new();
    write_init_segment(&mut file, &[vtrack.clone(), atrack.clone()]).unwrap();
    let starts = gop_starts(&video);
    for (n, &s) in starts.iter().enumerate() {
        let e = starts.get(n + 1).copied().unwrap_or(video.len());
        let (t0, t1) = (video[s].dts, video.get(e).map_or(i64::MAX, |u| u.dts));
        let a: Vec<AccessUnit> = audio
            .iter()
            .filter(|u| u.dts >= t0 && u.dts < t1)
            .cloned()
            .collect();
        write_media_segment(
            &mut file,
            n as u32 + 1,
            &[
                TrackRun {
                    track: &vtrack,
                    units: &video[s..e],
                    next_dts: video.get(e).map(|u| u.dts),
                },
                TrackRun {
                    track: &atrack,
                    units: &a,
                    next_dts: None,
                },
            ],
            &SegmentOptions::default(),
        )
        .unwrap();
    }
    let streams = ffprobe_decode("multi.mp4", &file);
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0]["codec_name"], "h264");
    assert_eq!(streams[0]["nb_read_frames"], "50");
    assert_eq!(streams[1]["codec_name"], "aac");
    // The last segment takes the remaining audio.
    assert_eq!(streams[1]["nb_read_frames"], "95");
}
