//! A small model of a dynamic MPD and its XML writer.
//!
//! The model is what [`crate::DashPackager`] fills in, but it stands on its
//! own: an [`AdaptationSet`] holds any number of [`Representation`]s sharing
//! one [`SegmentTemplate`] (names built from `$RepresentationID$`), which is
//! how aligned ABR renditions are described.

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
}

/// One `AdaptationSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptationSet {
    pub id: u32,
    pub content_type: ContentType,
    pub template: SegmentTemplate,
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
    let t = &a.template;
    let _ = writeln!(
        x,
        r#"      <SegmentTemplate timescale="{}" presentationTimeOffset="{}" initialization="{}" media="{}" startNumber="{}">"#,
        t.timescale,
        t.presentation_time_offset,
        escape_attr(&t.initialization),
        escape_attr(&t.media),
        t.start_number
    );
    let _ = writeln!(x, "        <SegmentTimeline>");
    for s in &t.timeline {
        if s.r == 0 {
            let _ = writeln!(x, r#"          <S t="{}" d="{}"/>"#, s.t, s.d);
        } else {
            let _ = writeln!(x, r#"          <S t="{}" d="{}" r="{}"/>"#, s.t, s.d, s.r);
        }
    }
    let _ = writeln!(x, "        </SegmentTimeline>");
    let _ = writeln!(x, "      </SegmentTemplate>");
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
        match r.audio_channels {
            Some(ch) => {
                let _ = writeln!(x, ">");
                let _ = writeln!(
                    x,
                    r#"        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="{ch}"/>"#
                );
                let _ = writeln!(x, "      </Representation>");
            }
            None => {
                let _ = writeln!(x, "/>");
            }
        }
    }
    let _ = writeln!(x, "    </AdaptationSet>");
}

#[cfg(test)]
mod tests {
    use super::*;

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
