//! A small model of a dynamic MPD and its XML writer.
//!
//! The model is what [`crate::DashPackager`] fills in, but it stands on its
//! own: an [`AdaptationSet`] holds any number of [`Representation`]s. The
//! [`SegmentTemplate`] (names built from `$RepresentationID$`) sits either on
//! the adaptation set, shared by its representations, or on each
//! representation with its own `SegmentTimeline`: what ABR renditions that
//! are packaged separately use (see [`crate::abr_manifest`]).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How clients synchronise their clock with the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtcTiming {
    /// `urn:mpeg:dash:utc:http-iso:2014`: the URL answers the current time in ISO 8601.
    HttpIso(String),
    /// `urn:mpeg:dash:utc:direct:2014`: the manifest's own publish time.
    Direct,
}

/// Video or audio adaptation set content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Video,
    Audio,
}

/// One `<S>` element: `r + 1` segments of duration `d` from time `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineRun {
    pub t: u64,
    pub d: u64,
    pub r: u32,
}

/// Compress `(t, d)` segments into `<S>` runs: consecutive contiguous
/// segments of equal duration share a run.
pub fn compress_timeline(segments: impl IntoIterator<Item = (u64, u64)>) -> Vec<TimelineRun> {
    let mut runs: Vec<TimelineRun> = Vec::new();
    for (t, d) in segments {
        if let Some(last) = runs.last_mut() {
            let end = last.t + last.d * (u64::from(last.r) + 1);
            if last.d == d && end == t && last.r < u32::MAX {
                last.r += 1;
                continue;
            }
        }
        runs.push(TimelineRun { t, d, r: 0 });
    }
    runs
}

/// `SegmentTemplate` with a `SegmentTimeline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTemplate {
    pub timescale: u32,
    pub presentation_time_offset: u64,
    /// e.g. `init_$RepresentationID$.mp4`
    pub initialization: String,
    /// e.g. `seg_$RepresentationID$_$Number$.m4s`
    pub media: String,
    pub start_number: u64,
    pub timeline: Vec<TimelineRun>,
}

/// One `Representation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Representation {
    pub id: String,
    pub bandwidth: u64,
    pub codecs: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `(numerator, denominator)`.
    pub frame_rate: Option<(u32, u32)>,
    pub audio_sampling_rate: Option<u32>,
    pub audio_channels: Option<u8>,
    /// The representation's own template (overrides the adaptation set's).
    pub template: Option<SegmentTemplate>,
}

/// One `AdaptationSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptationSet {
    pub id: u32,
    pub content_type: ContentType,
    /// Template shared by the representations that have none of their own.
    pub template: Option<SegmentTemplate>,
    pub representations: Vec<Representation>,
}

/// One `Period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub id: String,
    /// Start relative to `availabilityStartTime`.
    pub start: Duration,
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// A dynamic (live) MPD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mpd {
    pub availability_start_time: SystemTime,
    pub publish_time: SystemTime,
    pub minimum_update_period: Duration,
    pub time_shift_buffer_depth: Duration,
    pub suggested_presentation_delay: Duration,
    pub min_buffer_time: Duration,
    pub max_segment_duration: Duration,
    pub periods: Vec<Period>,
    pub utc_timing: Option<UtcTiming>,
}

/// Escape text for use inside a double-quoted XML attribute.
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `xs:duration` with millisecond precision: `PT2S`, `PT1.92S`, `PT0S`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("PT{s}S")
    } else {
        let f = format!("{frac:03}");
        format!("PT{s}.{}S", f.trim_end_matches('0'))
    }
}

/// `xs:dateTime` in UTC with milliseconds, e.g. `2024-05-01T12:00:00.250Z`.
/// Times before 1970 are written as the epoch.
pub fn format_datetime(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let ms = since.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Mpd {
    /// Serialise to XML.
    pub fn to_xml(&self) -> String {
        let mut x = String::with_capacity(2048);
        // Writing into a String cannot fail; results are ignored.
        let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            x,
            r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="{}" publishTime="{}" minimumUpdatePeriod="{}" timeShiftBufferDepth="{}" suggestedPresentationDelay="{}" minBufferTime="{}" maxSegmentDuration="{}">"#,
            format_datetime(self.availability_start_time),
            format_datetime(self.publish_time),
            format_duration(self.minimum_update_period),
            format_duration(self.time_shift_buffer_depth),
            format_duration(self.suggested_presentation_delay),
            format_duration(self.min_buffer_time),
            format_duration(self.max_segment_duration),
        );
        for p in &self.periods {
            let _ = writeln!(
                x,
                r#"  <Period id="{}" start="{}">"#,
                escape_attr(&p.id),
                format_duration(p.start)
            );
            for a in &p.adaptation_sets {
                write_adaptation_set(&mut x, a);
            }
            let _ = writeln!(x, "  </Period>");
        }
        match &self.utc_timing {
            Some(UtcTiming::HttpIso(url)) => {
                let _ = writeln!(
                    x,
                    r#"  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="{}"/>"#,
                    escape_attr(url)
                );
            }
            Some(UtcTiming::Direct) => {
                let _ = writeln!(
                    x,
                    r#"  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="{}"/>"#,
                    format_datetime(self.publish_time)
                );
            }
            None => {}
        }
        let _ = writeln!(x, "</MPD>");
        x
    }
}

/// One MPD for ABR renditions packaged separately, each by its own
/// [`crate::DashPackager`] (with distinct representation ids and a shared
/// time origin, see [`crate::DashPackager::set_time_origin`]).
///
/// The first manifest is the base: its Periods, audio adaptation sets and
/// MPD attributes are kept (`maxSegmentDuration` becomes the largest of
/// all). The video representations of the others join the base's video
/// adaptation set of the Period with the same id, in order; every video
/// representation carries its own `SegmentTemplate` + `SegmentTimeline`, so
/// the renditions need not have cut the same segments or numbered them
/// alike. Periods that only the others have, and their audio, are left out.
/// `None` when `manifests` is empty.
pub fn abr_manifest(manifests: Vec<Mpd>) -> Option<Mpd> {
    let mut iter = manifests.into_iter();
    let mut base = iter.next()?;
    let others: Vec<Mpd> = iter.collect();
    for period in &mut base.periods {
        let Some(set) = period
            .adaptation_sets
            .iter_mut()
            .find(|a| a.content_type == ContentType::Video)
        else {
            continue;
        };
        let shared = set.template.take();
        for r in &mut set.representations {
            if r.template.is_none() {
                r.template.clone_from(&shared);
            }
        }
        for other in &others {
            let Some(p) = other.periods.iter().find(|p| p.id == period.id) else {
                continue;
            };
            for a in p
                .adaptation_sets
                .iter()
                .filter(|a| a.content_type == ContentType::Video)
            {
                for r in &a.representations {
                    let mut r = r.clone();
                    if r.template.is_none() {
                        r.template.clone_from(&a.template);
                    }
                    set.representations.push(r);
                }
            }
        }
    }
    for other in &others {
        base.max_segment_duration = base.max_segment_duration.max(other.max_segment_duration);
    }
    Some(base)
}

fn write_template(x: &mut String, t: &SegmentTemplate, indent: &str) {
    let _ = writeln!(
        x,
        r#"{indent}<SegmentTemplate timescale="{}" presentationTimeOffset="{}" initialization="{}" media="{}" startNumber="{}">"#,
        t.timescale,
        t.presentation_time_offset,
        escape_attr(&t.initialization),
        escape_attr(&t.media),
        t.start_number
    );
    let _ = writeln!(x, "{indent}  <SegmentTimeline>");
    for s in &t.timeline {
        if s.r == 0 {
            let _ = writeln!(x, r#"{indent}    <S t="{}" d="{}"/>"#, s.t, s.d);
        } else {
            let _ = writeln!(x, r#"{indent}    <S t="{}" d="{}" r="{}"/>"#, s.t, s.d, s.r);
        }
    }
    let _ = writeln!(x, "{indent}  </SegmentTimeline>");
    let _ = writeln!(x, "{indent}</SegmentTemplate>");
}

fn write_adaptation_set(x: &mut String, a: &AdaptationSet) {
    let (ct, mime) = match a.content_type {
        ContentType::Video => ("video", "video/mp4"),
        ContentType::Audio => ("audio", "audio/mp4"),
    };
    let _ = writeln!(
        x,
        r#"    <AdaptationSet id="{}" contentType="{ct}" mimeType="{mime}" segmentAlignment="true" startWithSAP="1">"#,
        a.id
    );
    if let Some(t) = &a.template {
        write_template(x, t, "      ");
    }
    for r in &a.representations {
        let _ = write!(
            x,
            r#"      <Representation id="{}" bandwidth="{}" codecs="{}""#,
            escape_attr(&r.id),
            r.bandwidth,
            escape_attr(&r.codecs)
        );
        if let (Some(w), Some(h)) = (r.width, r.height) {
            let _ = write!(x, r#" width="{w}" height="{h}" sar="1:1""#);
        }
        match r.frame_rate {
            Some((n, 1)) => {
                let _ = write!(x, r#" frameRate="{n}""#);
            }
            Some((n, d)) if d > 0 => {
                let _ = write!(x, r#" frameRate="{n}/{d}""#);
            }
            _ => {}
        }
        if let Some(sr) = r.audio_sampling_rate {
            let _ = write!(x, r#" audioSamplingRate="{sr}""#);
        }
        if r.audio_channels.is_none() && r.template.is_none() {
            let _ = writeln!(x, "/>");
            continue;
        }
        let _ = writeln!(x, ">");
        if let Some(ch) = r.audio_channels {
            let _ = writeln!(
                x,
                r#"        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="{ch}"/>"#
            );
        }
        if let Some(t) = &r.template {
            write_template(x, t, "        ");
        }
        let _ = writeln!(x, "      </Representation>");
    }
    let _ = writeln!(x, "    </AdaptationSet>");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn template(t0: u64, number: u64) -> SegmentTemplate {
        SegmentTemplate {
            timescale: 90_000,
            presentation_time_offset: 0,
            initialization: "init_$RepresentationID$.mp4".into(),
            media: "seg_$RepresentationID$_$Number$.m4s".into(),
            start_number: number,
            timeline: vec![TimelineRun {
                t: t0,
                d: 180_000,
                r: 1,
            }],
        }
    }

    fn rendition(id: &str, width: u32, audio: bool, t0: u64, number: u64) -> Mpd {
        let video = Representation {
            id: id.into(),
            bandwidth: width as u64 * 1000,
            codecs: "avc1.64001e".into(),
            width: Some(width),
            height: Some(width * 9 / 16),
            frame_rate: Some((25, 1)),
            audio_sampling_rate: None,
            audio_channels: None,
            template: None,
        };
        let mut sets = vec![AdaptationSet {
            id: 0,
            content_type: ContentType::Video,
            template: Some(template(t0, number)),
            representations: vec![video],
        }];
        if audio {
            sets.push(AdaptationSet {
                id: 1,
                content_type: ContentType::Audio,
                template: Some(template(t0, number)),
                representations: vec![Representation {
                    id: "a".into(),
                    bandwidth: 128_000,
                    codecs: "mp4a.40.2".into(),
                    width: None,
                    height: None,
                    frame_rate: None,
                    audio_sampling_rate: Some(48_000),
                    audio_channels: Some(2),
                    template: None,
                }],
            });
        }
        Mpd {
            availability_start_time: UNIX_EPOCH + Duration::from_secs(1_714_564_800),
            publish_time: UNIX_EPOCH + Duration::from_secs(1_714_564_810),
            minimum_update_period: Duration::from_secs(2),
            time_shift_buffer_depth: Duration::from_secs(12),
            suggested_presentation_delay: Duration::from_secs(6),
            min_buffer_time: Duration::from_secs(4),
            max_segment_duration: Duration::from_millis(2000 + width as u64),
            periods: vec![Period {
                id: "p0".into(),
                start: Duration::ZERO,
                adaptation_sets: sets,
            }],
            utc_timing: None,
        }
    }

    #[test]
    fn abr_manifest_lists_renditions_in_one_video_set() {
        assert_eq!(abr_manifest(Vec::new()), None);
        let mpd = abr_manifest(vec![
            rendition("v_1", 640, true, 0, 1),
            rendition("v_2", 320, false, 180_000, 2),
        ])
        .unwrap();
        assert_eq!(mpd.max_segment_duration, Duration::from_millis(2640));
        let sets = &mpd.periods[0].adaptation_sets;
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].template, None);
        let reps = &sets[0].representations;
        assert_eq!(reps.len(), 2);
        assert_eq!(reps[0].template, Some(template(0, 1)));
        assert_eq!(reps[1].template, Some(template(180_000, 2)));
        assert_eq!(sets[1].template, Some(template(0, 1)));
        let xml = mpd.to_xml();
        assert_eq!(xml.matches("<AdaptationSet ").count(), 2, "{xml}");
        assert_eq!(xml.matches("<SegmentTemplate ").count(), 3, "{xml}");
        let video = &xml[xml.find("contentType=\"video\"").unwrap()
            ..xml.find("contentType=\"audio\"").unwrap()];
        assert!(
            video.contains(
                "      <Representation id=\"v_2\" bandwidth=\"320000\" codecs=\"avc1.64001e\" width=\"320\" height=\"180\" sar=\"1:1\" frameRate=\"25\">\n        <SegmentTemplate timescale=\"90000\" presentationTimeOffset=\"0\" initialization=\"init_$RepresentationID$.mp4\" media=\"seg_$RepresentationID$_$Number$.m4s\" startNumber=\"2\">\n          <SegmentTimeline>\n            <S t=\"180000\" d=\"180000\" r=\"1\"/>\n          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n"
            ),
            "{video}"
        );
        // A single rendition stays as the packager wrote it (shared template).
        let single = rendition("v", 640, true, 0, 1);
        let xml = single.to_xml();
        assert!(xml.contains("frameRate=\"25\"/>\n"), "{xml}");
        assert_eq!(xml.matches("<SegmentTemplate ").count(), 2);
    }

    #[test]
    fn timeline_runs() {
        let runs = compress_timeline([(0, 10), (10, 10), (20, 10), (30, 5), (40, 5)]);
        assert_eq!(
            runs,
            vec![
                TimelineRun { t: 0, d: 10, r: 2 },
                TimelineRun { t: 30, d: 5, r: 0 },
                TimelineRun { t: 40, d: 5, r: 0 },
            ]
        );
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Duration::from_secs(2)), "PT2S");
        assert_eq!(format_duration(Duration::from_millis(1920)), "PT1.92S");
        assert_eq!(format_duration(Duration::ZERO), "PT0S");
        let t = UNIX_EPOCH + Duration::from_millis(1_714_564_800_250);
        assert_eq!(format_datetime(t), "2024-05-01T12:00:00.250Z");
        assert_eq!(format_datetime(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(escape_attr(r#"a&b<"'>"#), "a&amp;b&lt;&quot;&apos;&gt;");
    }
}
