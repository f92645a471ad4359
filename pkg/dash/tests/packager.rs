//! End-to-end tests: real MPEG-TS vectors → demuxer → packager → files on
//! disk, checked structurally and decoded by ffprobe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use os_av::AccessUnit;
use os_dash::{DashConfig, DashError, DashPackager, MANIFEST_NAME, Output};
use os_mpegts::{Demuxer, Event};

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/testdata")
        .join(name)
}

fn tool(name: &str) -> Command {
    if Command::new(name).arg("-version").output().is_err() {
        panic!(
            "{name} is required by this test but was not found in PATH; install ffmpeg and re-run"
        );
    }
    Command::new(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("os-dash-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn demux(path: &Path) -> Vec<Event> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut d = Demuxer::new();
    d.push(&data);
    d.flush();
    let mut events = Vec::new();
    while let Some(e) = d.pull() {
        events.push(e);
    }
    events
}

/// 20 s of 320x240 25 fps H.264 High (GOP 50, B-frames) + mono AAC, made by ffmpeg.
fn long_vector(dir: &Path) -> PathBuf {
    let out = dir.join("live.ts");
    let st = tool("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-g",
            "50",
            "-keyint_min",
            "50",
        ])
        .args([
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "200k",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ])
        .args(["-f", "mpegts"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg failed to make the test vector");
    out
}

/// Applies packager outputs to a directory and remembers every file ever written.
struct Sink {
    dir: PathBuf,
    all: HashMap<String, Vec<u8>>,
    order: Vec<String>,
    deleted: Vec<String>,
    manifests: usize,
}

impl Sink {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            all: HashMap::new(),
            order: Vec::new(),
            deleted: Vec::new(),
            manifests: 0,
        }
    }

    fn apply(&mut self, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::WriteFile { name, bytes } => {
                    std::fs::write(self.dir.join(&name), &bytes).unwrap();
                    self.order.push(name.clone());
                    self.all.insert(name, bytes.to_vec());
                }
                Output::DeleteFile { name } => {
                    std::fs::remove_file(self.dir.join(&name)).unwrap();
                    self.deleted.push(name);
                }
                Output::Manifest { bytes } => {
                    let tmp = self.dir.join("index.mpd.tmp");
                    std::fs::write(&tmp, &bytes).unwrap();
                    std::fs::rename(&tmp, self.dir.join(MANIFEST_NAME)).unwrap();
                    self.manifests += 1;
                }
            }
        }
    }

    fn mpd(&self) -> String {
        std::fs::read_to_string(self.dir.join(MANIFEST_NAME)).unwrap()
    }

    /// Concatenate files (from the archive) into `name` in the directory.
    fn concat(&self, name: &str, parts: &[String]) -> PathBuf {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(
                self.all
                    .get(p)
                    .unwrap_or_else(|| panic!("{p} never written")),
            );
        }
        let path = self.dir.join(name);
        std::fs::write(&path, v).unwrap();
        path
    }

    fn segments(&self, prefix: &str) -> Vec<String> {
        self.order
            .iter()
            .filter(|n| n.starts_with(prefix) && n.ends_with(".m4s"))
            .cloned()
            .collect()
    }
}

fn now0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Feed demuxer events; `now` advances with the media (deterministic).
fn feed(
    p: &mut DashPackager,
    sink: &mut Sink,
    events: &[Event],
    disc_first: bool,
) -> (usize, usize) {
    let (mut v, mut a) = (0, 0);
    let mut first = [disc_first, disc_first];
    for e in events {
        match e {
            Event::Params(pc) => p.push_params(pc).unwrap(),
            Event::AccessUnit(au) => {
                let mut au: AccessUnit = au.clone();
                let k = usize::from(au.codec.kind() == os_av::TrackKind::Audio);
                au.discontinuity |= std::mem::take(&mut first[k]);
                if k == 0 {
                    v += 1
                } else {
                    a += 1
                }
                let now =
                    now0() + Duration::from_millis(u64::try_from(au.dts.max(0) / 90).unwrap());
                sink.apply(p.push(au, now).unwrap());
            }
            _ => {}
        }
    }
    (v, a)
}

/// `(codec_name, decoded frame count)` of the first stream, and ffprobe's stderr.
fn probe_frames(path: &Path) -> (String, u64, String) {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut f = stdout.split(',');
    let codec = f.next().unwrap_or_default().to_owned();
    let n = f.next().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    (codec, n, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Values of attribute `attr` on every `<tag ...>` element.
fn attrs(xml: &str, tag: &str, attr: &str) -> Vec<Option<String>> {
    let mut res = Vec::new();
    let open = format!("<{tag} ");
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let el = &rest[i..];
        let end = el.find('>').unwrap();
        let el = &el[..end];
        let key = format!(" {attr}=\"");
        res.push(el.find(&key).map(|j| {
            let v = &el[j + key.len()..];
            v[..v.find('"').unwrap()].to_owned()
        }));
        rest = &rest[i + end..];
    }
    res
}

/// Parse one adaptation set's timeline: `(startNumber, [(t, d)])` expanded.
/// `(contentType, startNumber, [(t, d)])` of one adaptation set.
type Timeline = (String, u64, Vec<(u64, u64)>);

fn timelines(xml: &str) -> Vec<Timeline> {
    let mut res = Vec::new();
    for set in xml.split("<AdaptationSet ").skip(1) {
        let set = &set[..set.find("</AdaptationSet>").unwrap()];
        let ct = attrs(&format!("<X {set}"), "X", "contentType")[0]
            .clone()
            .unwrap();
        let start: u64 = attrs(set, "SegmentTemplate", "startNumber")[0]
            .as_ref()
            .unwrap()
            .parse()
            .unwrap();
        let ts = attrs(set, "S", "t");
        let ds = attrs(set, "S", "d");
        let rs = attrs(set, "S", "r");
        let mut segs = Vec::new();
        for ((t, d), r) in ts.iter().zip(&ds).zip(&rs) {
            let t: u64 = t.as_ref().expect("every S has t").parse().unwrap();
            let d: u64 = d.as_ref().unwrap().parse().unwrap();
            let r: u64 = r.as_ref().map_or(0, |r| r.parse().unwrap());
            for k in 0..=r {
                segs.push((t + k * d, d));
            }
        }
        res.push((ct, start, segs));
    }
    res
}

fn assert_continuous(segs: &[(u64, u64)], what: &str) {
    for w in segs.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0 + w[0].1,
            "{what}: timeline gap/overlap at t={}",
            w[1].0
        );
    }
}

#[test]
fn h264_aac_live_window_and_decode() {
    let dir = temp_dir("h264");
    let src = long_vector(&dir);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut sink = Sink::new(out.clone());
    let mut p = DashPackager::new(DashConfig {
        window: 4,
        delete_grace: 2,
        ..DashConfig::default()
    })
    .unwrap();
    let events = demux(&src);
    let (_v, a) = feed(&mut p, &mut sink, &events, false);
    let mpd_before_flush = sink.mpd();
    sink.apply(p.flush(now0() + Duration::from_secs(30)).unwrap());
    let mpd = sink.mpd();

    // 20 s with a 2 s GOP → 10 segments per track, numbers aligned.
    let vsegs = sink.segments("seg_v_");
    let asegs = sink.segments("seg_a_");
    assert_eq!(vsegs.len(), 10, "{vsegs:?}");
    assert_eq!(asegs.len(), 10, "{asegs:?}");
    // Window 4 + grace 2: segments 1..=4 deleted.
    let mut deleted = sink.deleted.clone();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            "seg_a_1.m4s",
            "seg_a_2.m4s",
            "seg_a_3.m4s",
            "seg_a_4.m4s",
            "seg_v_1.m4s",
            "seg_v_2.m4s",
            "seg_v_3.m4s",
            "seg_v_4.m4s"
        ]
    );
    assert!(!out.join("seg_v_4.m4s").exists() && out.join("seg_v_5.m4s").exists());

    // Structure of the MPD.
    for needle in [
        r#"type="dynamic""#,
        r#"profiles="urn:mpeg:dash:profile:isoff-live:2011""#,
        // The clock given with the first unit (1.4 s of media time in).
        r#"availabilityStartTime="2023-11-14T22:13:21.400Z""#,
        r#"minimumUpdatePeriod="PT2S""#,
        r#"timeShiftBufferDepth="PT8S""#,
        r#"suggestedPresentationDelay="PT6S""#,
        r#"minBufferTime="PT4S""#,
        r#"maxSegmentDuration="PT2"#,
        r#"initialization="init_$RepresentationID$.mp4""#,
        r#"media="seg_$RepresentationID$_$Number$.m4s""#,
        r#"timescale="90000""#,
        r#"timescale="48000""#,
        r#"width="320" height="240""#,
        r#"audioSamplingRate="48000""#,
        r#"<AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="1"/>"#,
        r#"codecs="mp4a.40.2""#,
    ] {
        assert!(mpd.contains(needle), "MPD lacks {needle}:\n{mpd}");
    }
    assert_eq!(mpd.matches("<Period ").count(), 1);
    let codecs = attrs(&mpd, "Representation", "codecs");
    assert!(
        codecs[0].as_ref().unwrap().starts_with("avc1.64"),
        "{codecs:?}"
    );
    let bw: Vec<u64> = attrs(&mpd, "Representation", "bandwidth")
        .into_iter()
        .map(|b| b.unwrap().parse().unwrap())
        .collect();
    assert!(
        (150_000..400_000).contains(&bw[0]),
        "video bandwidth {}",
        bw[0]
    );
    assert!(
        (40_000..120_000).contains(&bw[1]),
        "audio bandwidth {}",
        bw[1]
    );
    let tl = timelines(&mpd);
    assert_eq!(tl.len(), 2);
    for (ct, start, segs) in &tl {
        assert_eq!(segs.len(), 4, "{ct}: window of 4 segments");
        assert_eq!(*start, 7, "{ct}: startNumber follows the window");
        assert_continuous(segs, ct);
    }
    assert_eq!(
        tl[0].2[0],
        (6 * 180_000, 180_000),
        "video segment 7 at 12 s, 2 s long"
    );
    // Before flush, the window ended at segment 9 (segment 10 still open).
    assert_eq!(timelines(&mpd_before_flush)[0].1, 6);

    // ffmpeg reads the MPD itself.
    let probe = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(out.join(MANIFEST_NAME))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&probe.stdout);
    assert!(
        names.contains("h264") && names.contains("aac"),
        "ffprobe on the MPD: {names} / {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // Every segment ever written decodes, with every frame.
    let mut parts = vec!["init_v.mp4".to_owned()];
    parts.extend(vsegs);
    let (codec, n, err) = probe_frames(&sink.concat("all_v.mp4", &parts));
    assert_eq!((codec.as_str(), n), ("h264", 500), "{err}");
    assert!(err.is_empty(), "decode errors: {err}");
    let mut parts = vec!["init_a.mp4".to_owned()];
    parts.extend(asegs);
    let (codec, n, err) = probe_frames(&sink.concat("all_a.mp4", &parts));
    assert_eq!(codec, "aac");
    assert_eq!(
        n,
        (a as u64) - p.dropped,
        "audio frames: pushed {a}, dropped {}",
        p.dropped
    );
    assert!(
        p.dropped <= 10,
        "only audio outside the pictures' span is dropped: {}",
        p.dropped
    );
    assert!(err.is_empty(), "decode errors: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn h265_aac_decodes() {
    let dir = temp_dir("h265");
    let mut sink = Sink::new(dir.clone());
    let mut p = DashPackager::new(DashConfig {
        target_duration: Duration::from_secs(1),
        ..DashConfig::default()
    })
    .unwrap();
    feed(&mut p, &mut sink, &demux(&vector("h265_aac.ts")), false);
    sink.apply(p.flush(now0()).unwrap());
    let mpd = sink.mpd();
    let codecs = attrs(&mpd, "Representation", "codecs");
    assert!(
        codecs[0].as_ref().unwrap().starts_with("hvc1.1."),
        "{codecs:?}"
    );
    let vsegs = sink.segments("seg_v_");
    assert_eq!(vsegs.len(), 3, "3 s with 1 s GOPs");
    let tl = timelines(&mpd);
    assert_continuous(&tl[0].2, "video");
    assert_continuous(&tl[1].2, "audio");
    let mut parts = vec!["init_v.mp4".to_owned()];
    parts.extend(vsegs);
    let (codec, n, err) = probe_frames(&sink.concat("all_v.mp4", &parts));
    assert_eq!((codec.as_str(), n), ("hevc", 75), "{err}");
    assert!(err.is_empty(), "decode errors: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn discontinuity_with_same_params_keeps_timeline() {
    let dir = temp_dir("disc");
    let mut sink = Sink::new(dir.clone());
    let mut p = DashPackager::new(DashConfig {
        target_duration: Duration::from_secs(1),
        window: 10,
        ..DashConfig::default()
    })
    .unwrap();
    let events = demux(&vector("h264_aac.ts"));
    feed(&mut p, &mut sink, &events, false);
    // The same source again: timestamps jump back by 3 s, flagged as a discontinuity.
    feed(&mut p, &mut sink, &events, true);
    sink.apply(p.flush(now0()).unwrap());
    let mpd = sink.mpd();
    assert_eq!(mpd.matches("<Period ").count(), 1, "{mpd}");
    assert_eq!(p.period(), 0);
    let tl = timelines(&mpd);
    assert_eq!(tl[0].2.len(), 6, "{mpd}");
    assert_continuous(&tl[0].2, "video");
    assert_continuous(&tl[1].2, "audio");
    // The second part follows the end of the first (3 s of video; audio ends a bit later).
    assert!((270_000..290_000).contains(&tl[0].2[3].0), "{:?}", tl[0].2);
    let mut parts = vec!["init_v.mp4".to_owned()];
    parts.extend(sink.segments("seg_v_"));
    let (_, n, err) = probe_frames(&sink.concat("all_v.mp4", &parts));
    assert_eq!(n, 150, "{err}");
    assert!(err.is_empty(), "decode errors: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn params_change_opens_new_period() {
    let dir = temp_dir("period");
    let mut sink = Sink::new(dir.clone());
    let mut p = DashPackager::new(DashConfig {
        target_duration: Duration::from_secs(1),
        window: 10,
        ..DashConfig::default()
    })
    .unwrap();
    feed(&mut p, &mut sink, &demux(&vector("h264_aac.ts")), false);
    feed(&mut p, &mut sink, &demux(&vector("h265_aac.ts")), true);
    sink.apply(p.flush(now0()).unwrap());
    let mpd = sink.mpd();
    assert_eq!(p.period(), 1);
    assert_eq!(
        attrs(&mpd, "Period", "id"),
        [Some("p0".to_owned()), Some("p1".to_owned())]
    );
    let starts = attrs(&mpd, "Period", "start");
    assert_eq!(starts[0].as_deref(), Some("PT0S"));
    assert!(
        starts[1].as_deref().unwrap().starts_with("PT3"),
        "{starts:?}"
    );
    assert!(
        mpd.contains(r#"initialization="init_$RepresentationID$_1.mp4""#),
        "{mpd}"
    );
    let codecs: Vec<String> = attrs(&mpd, "Representation", "codecs")
        .into_iter()
        .flatten()
        .collect();
    assert!(
        codecs[0].starts_with("avc1.") && codecs[2].starts_with("hvc1."),
        "{codecs:?}"
    );
    // The media timeline continues across the Period boundary.
    let tl = timelines(&mpd);
    let video: Vec<(u64, u64)> = tl
        .iter()
        .filter(|t| t.0 == "video")
        .flat_map(|t| t.2.clone())
        .collect();
    assert_eq!(video.len(), 6);
    assert_continuous(&video, "video across periods");
    let pto: u64 = attrs(&mpd, "SegmentTemplate", "presentationTimeOffset")[2]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        pto, video[3].0,
        "presentationTimeOffset = first decode time of the Period"
    );
    // Split the written files at the second init segment; each part decodes.
    let split = sink
        .order
        .iter()
        .position(|n| n == "init_v_1.mp4")
        .expect("init_v_1.mp4 written");
    let before: Vec<String> = sink.order[..split]
        .iter()
        .filter(|n| n.starts_with("seg_v_"))
        .cloned()
        .collect();
    let after: Vec<String> = sink.order[split..]
        .iter()
        .filter(|n| n.starts_with("seg_v_"))
        .cloned()
        .collect();
    for (init, segs, codec, frames) in [
        ("init_v.mp4", before, "h264", 75),
        ("init_v_1.mp4", after, "hevc", 75),
    ] {
        let mut parts = vec![init.to_owned()];
        parts.extend(segs);
        let (c, n, err) = probe_frames(&sink.concat(&format!("{init}.all.mp4"), &parts));
        assert_eq!((c.as_str(), n), (codec, frames), "{err}");
        assert!(err.is_empty(), "decode errors: {err}");
    }
    assert!(sink.all.contains_key("init_a_1.mp4"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn odd_input_gives_typed_errors() {
    use bytes::Bytes;
    use os_av::{AudioParams, Codec, ParamsChanged, TrackParams};
    assert!(matches!(
        DashPackager::new(DashConfig {
            window: 0,
            ..DashConfig::default()
        }),
        Err(DashError::InvalidConfig(_))
    ));
    assert!(matches!(
        DashPackager::new(DashConfig {
            video_id: "a/b".into(),
            ..DashConfig::default()
        }),
        Err(DashError::InvalidConfig(_))
    ));
    let mut p = DashPackager::new(DashConfig::default()).unwrap();
    let au = |codec, dts: i64, keyframe, payload: &'static [u8]| AccessUnit {
        track: if codec == Codec::Aac { 2 } else { 1 },
        codec,
        pts: dts,
        dts,
        keyframe,
        discontinuity: false,
        payload: Bytes::from_static(payload),
    };
    let t = now0();
    // Units before any parameters.
    assert_eq!(
        p.push(au(Codec::Aac, 0, true, &[1, 2, 3]), t),
        Err(DashError::MissingParams(Codec::Aac))
    );
    assert_eq!(
        p.push(au(Codec::H264, 0, true, &[0, 0, 1, 0x65, 0x88]), t),
        Err(DashError::MissingParams(Codec::H264))
    );
    assert_eq!(
        p.push(au(Codec::Mp3, 0, true, &[0xff]), t),
        Err(DashError::UnsupportedCodec(Codec::Mp3))
    );
    // Broken in-band SPS.
    assert!(matches!(
        p.push(
            au(
                Codec::H264,
                3600,
                true,
                &[0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce]
            ),
            t
        ),
        Err(DashError::Codec(_))
    ));
    // Audio params without an AudioSpecificConfig are refused.
    let bad = ParamsChanged {
        track: 2,
        codec: Codec::Aac,
        params: TrackParams::Audio(AudioParams {
            sample_rate: 48_000,
            channels: 2,
            ..AudioParams::default()
        }),
    };
    assert!(matches!(p.push_params(&bad), Err(DashError::Fmp4(_))));
    let good = ParamsChanged {
        track: 2,
        codec: Codec::Aac,
        params: TrackParams::Audio(AudioParams {
            sample_rate: 48_000,
            channels: 2,
            object_type: 2,
            asc: Bytes::from_static(&[0x11, 0x90]),
            samples_per_frame: 1024,
        }),
    };
    p.push_params(&good).unwrap();
    p.push(au(Codec::Aac, 10_000, true, &[1, 2, 3]), t).unwrap();
    p.push(au(Codec::Aac, 11_920, true, &[1, 2, 3]), t).unwrap();
    // Backwards by less than the splice threshold: rejected, not packaged.
    assert!(matches!(
        p.push(au(Codec::Aac, 11_000, true, &[1]), t),
        Err(DashError::NonMonotonic { .. })
    ));
    assert!(matches!(
        p.push(au(Codec::Aac, 11_920, true, &[1]), t),
        Err(DashError::NonMonotonic { .. })
    ));
    // Still usable afterwards; extreme timestamps do not panic.
    p.push(au(Codec::Aac, 13_840, true, &[1, 2, 3]), t).unwrap();
    let _ = p.push(au(Codec::Aac, i64::MAX / 4, true, &[1]), t);
    let _ = p.push(au(Codec::Aac, i64::MIN / 4, true, &[1]), t);
    let _ = p.flush(t);
}

/// Two renditions of the same timestamps, packaged separately with a shared
/// time origin: the second starts 5 s later (and without audio), yet its
/// segments carry the same times as the first's, and the merged MPD lists
/// both in one video adaptation set that ffprobe reads.
#[test]
fn abr_renditions_share_the_timeline() {
    let dir = temp_dir("abr");
    let src = long_vector(&dir);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let events = demux(&src);
    let origin = events
        .iter()
        .find_map(|e| match e {
            Event::AccessUnit(au) => Some(au.dts),
            _ => None,
        })
        .unwrap();
    let cfg = |v: &str| DashConfig {
        window: 4,
        video_id: v.to_owned(),
        ..DashConfig::default()
    };
    let mut first = DashPackager::new(cfg("v_1")).unwrap();
    let mut second = DashPackager::new(cfg("v_2")).unwrap();
    first.set_time_origin(origin, now0());
    second.set_time_origin(origin, now0());
    let mut sink1 = Sink::new(out.clone());
    let mut sink2 = Sink::new(out.clone());
    feed(&mut first, &mut sink1, &events, false);
    // The second joins 5 s in, mid-GOP, video only.
    let late: Vec<Event> = events
        .iter()
        .filter(|e| match e {
            Event::AccessUnit(au) => {
                au.codec.kind() == os_av::TrackKind::Video && au.dts >= origin + 5 * 90_000
            }
            Event::Params(p) => p.codec.kind() == os_av::TrackKind::Video,
            _ => false,
        })
        .cloned()
        .collect();
    feed(&mut second, &mut sink2, &late, false);
    let now = now0() + Duration::from_secs(20);
    let (m1, m2) = (first.manifest(now).unwrap(), second.manifest(now).unwrap());
    let t1 = timelines(&m1.to_xml());
    let t2 = timelines(&m2.to_xml());
    assert_eq!(t2.len(), 1, "second rendition has video only");
    // Same window of segments at the same times (numbers may differ).
    assert_eq!(t1[0].2, t2[0].2);
    assert!(t2[0].1 < t1[0].1, "the late rendition numbered from 1");
    // Its first segment starts at the first keyframe after 5 s (GOP 2 s).
    let first_seg2 = sink2.segments("seg_v_2_")[0].clone();
    assert_eq!(first_seg2, "seg_v_2_1.m4s");

    let merged = os_dash::abr_manifest(vec![m1, m2]).unwrap();
    let xml = merged.to_xml();
    std::fs::write(out.join(MANIFEST_NAME), &xml).unwrap();
    assert_eq!(xml.matches("<AdaptationSet ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<Representation ").count(), 3, "{xml}");
    let probe = tool("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=index,codec_name"])
        .args(["-of", "csv=p=0"])
        .arg(out.join(MANIFEST_NAME))
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&probe.stdout);
    // Streams are listed once per program too: count distinct indices.
    let distinct: std::collections::HashSet<&str> =
        streams.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        distinct.iter().filter(|l| l.ends_with("h264")).count(),
        2,
        "ffprobe on the ABR MPD: {streams} / {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(streams.contains("aac"), "{streams}");
    // The late rendition's segments decode.
    let mut parts = vec!["init_v_2.mp4".to_owned()];
    parts.extend(sink2.segments("seg_v_2_"));
    let (codec, n, err) = probe_frames(&sink2.concat("all_v_2.mp4", &parts));
    assert_eq!(codec, "h264", "{err}");
    assert!(n >= 300, "frames of the late rendition: {n}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader that joins a live stream at an access point can meet audio muxed
/// just after the keyframe before the keyframe itself. The timeline must
/// still start at the keyframe, and the first segment must be written (it
/// used to land before time 0 and fail, so the first video segment spanned
/// two GOPs and audio started a GOP before video).
#[test]
fn audio_ahead_of_the_first_keyframe_at_a_join() {
    let dir = temp_dir("join");
    let src = long_vector(&dir);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let events = demux(&src);
    let is_key = |e: &Event| matches!(e, Event::AccessUnit(au) if au.codec.kind() == os_av::TrackKind::Video && au.keyframe);
    // Join at the second keyframe.
    let start = events
        .iter()
        .enumerate()
        .filter(|(_, e)| is_key(e))
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    let Event::AccessUnit(key) = &events[start] else {
        unreachable!()
    };
    let key_dts = key.dts;
    // What a joiner at that access point reads: no audio from before the
    // keyframe, and the first audio frames after it ahead of it.
    let audio_after = |e: &Event, after: i64| matches!(e, Event::AccessUnit(au) if au.codec.kind() == os_av::TrackKind::Audio && au.dts > after);
    let is_audio = |e: &Event| matches!(e, Event::AccessUnit(au) if au.codec.kind() == os_av::TrackKind::Audio);
    let rest: Vec<Event> = events[start..]
        .iter()
        .filter(|e| !is_audio(e) || audio_after(e, key_dts))
        .cloned()
        .collect();
    let lead: Vec<usize> = rest
        .iter()
        .enumerate()
        .filter(|(_, e)| is_audio(e))
        .map(|(i, _)| i)
        .take(3)
        .collect();
    assert_eq!(lead.len(), 3);
    let mut joined: Vec<Event> = events[..start]
        .iter()
        .filter(|e| matches!(e, Event::Params(_)))
        .cloned()
        .collect();
    joined.extend(lead.iter().map(|&i| rest[i].clone()));
    joined.extend(
        rest.iter()
            .enumerate()
            .filter(|(i, _)| !lead.contains(i))
            .map(|(_, e)| e.clone()),
    );

    let mut sink = Sink::new(out.clone());
    let mut p = DashPackager::new(DashConfig {
        window: 4,
        ..DashConfig::default()
    })
    .unwrap();
    // About three segments: the window still starts at the first one.
    joined.retain(|e| !matches!(e, Event::AccessUnit(au) if au.dts > key_dts + 7 * 90_000));
    // `feed` fails the test on any packager error.
    feed(&mut p, &mut sink, &joined, false);
    let xml = p
        .manifest(now0() + Duration::from_secs(20))
        .unwrap()
        .to_xml();
    let timescales: Vec<u64> = attrs(&xml, "SegmentTemplate", "timescale")
        .into_iter()
        .map(|t| t.unwrap().parse().unwrap())
        .collect();
    let sets = timelines(&xml);
    assert_eq!(sets.len(), 2, "{xml}");
    for ((kind, number, segs), scale) in sets.iter().zip(&timescales) {
        assert_eq!(*number, 1, "{kind}: window starts at the first segment");
        let (t, d) = segs[0];
        let (t, d) = (t as f64 / *scale as f64, d as f64 / *scale as f64);
        assert!(t < 0.05, "{kind}: the first segment starts at {t} s");
        if kind == "video" {
            assert!(
                (d - 2.0).abs() < 0.05,
                "video: the first segment lasts {d} s"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
