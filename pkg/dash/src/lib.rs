//! Live MPEG-DASH packager, sans-IO.
//!
//! [`DashPackager`] takes access units ([`os_av::AccessUnit`]) and track
//! parameters ([`os_av::ParamsChanged`]) and returns what the caller must do
//! with files: [`Output::WriteFile`] (init and media segments),
//! [`Output::Manifest`] (the MPD, to be written atomically) and
//! [`Output::DeleteFile`] (segments that left the live window plus a grace).
//! It does no I/O and reads no clock: the wall-clock time is a parameter.
//!
//! Layout (one directory per stream):
//! - `init_v.mp4`, `init_a.mp4`: one init segment per track (`init_v_<p>.mp4`
//!   for Period `p` ≥ 1);
//! - `seg_v_<n>.m4s`, `seg_a_<n>.m4s`: media segments, numbered from 1 per track;
//! - `index.mpd`: dynamic MPD with one `SegmentTimeline` per adaptation set.
//!
//! Segmenting: video is cut at a keyframe once the segment reaches the target
//! duration (a long GOP gives a longer segment, never a cut mid-GOP). Audio is
//! cut at the same media times, so audio and video segment numbers line up;
//! an audio-only stream is cut by duration.
//!
//! Timeline: timestamps are mapped onto one continuous output timeline that
//! starts at 0. A jump of the input clock (failover, encoder restart) is
//! spliced so that decode times continue after the last written sample;
//! units whose decode time goes backwards are rejected with
//! [`DashError::NonMonotonic`].
//!
//! Parameter changes (new codec, resolution, AudioSpecificConfig) start a new
//! Period at the next video keyframe: an adaptation set cannot change codec in
//! place, and a new Period with its own init segment is what players support
//! for that. The media timeline still continues (Period start = its first
//! decode time), so segment numbers and times never go back.
//!
//! ABR: renditions of one transcoder (same input timestamps) are packaged by
//! one packager each, with distinct representation ids and one time origin
//! ([`DashPackager::set_time_origin`]), so the same output time is the same
//! instant in every rendition; [`abr_manifest`] then lists their video
//! representations in one adaptation set, each with its own
//! `SegmentTemplate` + `SegmentTimeline`.

pub mod mpd;

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use os_av::time::rescale;
use os_av::{AccessUnit, CLOCK_HZ, Codec, ParamsChanged, TrackId, TrackKind, TrackParams};
use os_codecs::codec_string;
use os_codecs::params::ParamTracker;
use os_fmp4::{SegmentOptions, TrackConfig, TrackRun, write_init_segment, write_media_segment};

use mpd::{AdaptationSet, ContentType, Mpd, Period, Representation, SegmentTemplate};
pub use mpd::{UtcTiming, abr_manifest};

/// Errors of the packager. The offending unit or parameters are dropped; the
/// packager stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DashError {
    /// Invalid [`DashConfig`].
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// A unit arrived before the parameters needed to package it.
    #[error("no parameters known for the {0} track")]
    MissingParams(Codec),
    /// The codec cannot be packaged in DASH/fMP4 here.
    #[error("codec {0} is not supported")]
    UnsupportedCodec(Codec),
    /// Decode time went backwards within a track.
    #[error("decode time of track {track} went backwards: {prev} then {next}")]
    NonMonotonic {
        track: TrackId,
        prev: i64,
        next: i64,
    },
    /// In-band parameter sets could not be parsed.
    #[error("parameter sets: {0}")]
    Codec(#[from] os_codecs::error::CodecError),
    /// fMP4 writing failed.
    #[error("fMP4: {0}")]
    Fmp4(#[from] os_fmp4::Fmp4Error),
}

/// Packager settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashConfig {
    /// Target segment duration (segments are at least this long, except at a
    /// Period change or flush).
    pub target_duration: Duration,
    /// Number of segments listed in the MPD.
    pub window: usize,
    /// Segments kept on disk after leaving the window before [`Output::DeleteFile`].
    pub delete_grace: usize,
    /// Representation id of the video track (used in file names).
    pub video_id: String,
    /// Representation id of the audio track (used in file names).
    pub audio_id: String,
    /// Optional `UTCTiming` element.
    pub utc_timing: Option<UtcTiming>,
    /// Largest input decode-time jump (90 kHz ticks) treated as continuous.
    pub max_gap: i64,
}

impl Default for DashConfig {
    fn default() -> Self {
        Self {
            target_duration: Duration::from_secs(2),
            window: 5,
            delete_grace: 2,
            video_id: "v".to_owned(),
            audio_id: "a".to_owned(),
            utc_timing: None,
            max_gap: i64::from(CLOCK_HZ) * 2,
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write a file (init or media segment) in the stream directory.
    WriteFile { name: String, bytes: Bytes },
    /// Remove a file that is no longer referenced.
    DeleteFile { name: String },
    /// Replace `index.mpd` (write to a temporary name, then rename).
    Manifest { bytes: Bytes },
}

/// Name of the manifest file.
pub const MANIFEST_NAME: &str = "index.mpd";

#[derive(Debug, Clone)]
struct SegEntry {
    number: u64,
    period: usize,
    /// Start and duration in the track timescale.
    t: u64,
    d: u64,
    size: usize,
    name: String,
}

/// Parameters of one track within one Period.
#[derive(Debug, Clone)]
struct TrackSetup {
    codec: Codec,
    params: TrackParams,
    config: TrackConfig,
    /// Generation of the parameters (audio units carry the one they belong to).
    generation: u32,
}

#[derive(Debug, Clone)]
struct PeriodState {
    /// Start on the output timeline (90 kHz).
    start: i64,
    video: Option<TrackSetup>,
    audio: Option<TrackSetup>,
}

#[derive(Debug, Default)]
struct Track {
    id: Option<TrackId>,
    /// Parameters waiting to take effect (at the next Period).
    next: Option<TrackSetup>,
    generation: u32,
    /// Pending units (output timeline) with their parameter generation.
    pending: Vec<(u32, AccessUnit)>,
    seg_start: Option<i64>,
    next_number: u64,
    /// Period whose init segment was last written.
    init_written: Option<usize>,
    window: VecDeque<SegEntry>,
    retired: VecDeque<SegEntry>,
    last_in: Option<i64>,
    last_out: Option<i64>,
    /// End (decode time + last duration) of the last unit, output timeline.
    end: i64,
    last_step: i64,
    epoch: u32,
}

/// The live DASH packager of one stream (one video and/or one audio track).
#[derive(Debug)]
pub struct DashPackager {
    cfg: DashConfig,
    params: ParamTracker,
    video: Track,
    audio: Track,
    periods: Vec<PeriodState>,
    /// A parameter change waits for the next boundary to open a Period.
    switch_pending: bool,
    video_started: bool,
    audio_only: bool,
    /// Audio cut points (output 90 kHz) still waiting for audio to pass them.
    audio_cuts: VecDeque<(i64, usize)>,
    offset: Option<i64>,
    epoch: u32,
    availability_start: Option<SystemTime>,
    /// Set by [`DashPackager::set_time_origin`]: units before it are dropped.
    fixed_origin: bool,
    /// Units dropped because they could not be placed (before start, stale params).
    pub dropped: u64,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn ticks(d: Duration) -> i64 {
    i64::try_from(d.as_micros() * u128::from(CLOCK_HZ) / 1_000_000).unwrap_or(i64::MAX)
}

impl DashPackager {
    pub fn new(cfg: DashConfig) -> Result<Self, DashError> {
        if cfg.target_duration < Duration::from_millis(100) {
            return Err(DashError::InvalidConfig("target_duration below 100 ms"));
        }
        if cfg.window == 0 {
            return Err(DashError::InvalidConfig("window must be at least 1"));
        }
        if !valid_id(&cfg.video_id) || !valid_id(&cfg.audio_id) || cfg.video_id == cfg.audio_id {
            return Err(DashError::InvalidConfig(
                "representation ids must be distinct [A-Za-z0-9_-]+",
            ));
        }
        if cfg.max_gap <= 0 {
            return Err(DashError::InvalidConfig("max_gap must be positive"));
        }
        let mut video = Track {
            next_number: 1,
            ..Track::default()
        };
        video.last_step = i64::from(CLOCK_HZ / 25);
        let mut audio = Track {
            next_number: 1,
            ..Track::default()
        };
        audio.last_step = 1920;
        Ok(Self {
            cfg,
            params: ParamTracker::new(),
            video,
            audio,
            periods: vec![PeriodState {
                start: 0,
                video: None,
                audio: None,
            }],
            switch_pending: false,
            video_started: false,
            audio_only: false,
            audio_cuts: VecDeque::new(),
            offset: None,
            epoch: 0,
            availability_start: None,
            fixed_origin: false,
            dropped: 0,
        })
    }

    /// Put output time 0 at input decode time `dts`, wall-clock time `at`
    /// (`availabilityStartTime`), instead of at the first unit pushed.
    ///
    /// Packagers of renditions that share input timestamps (ABR renditions
    /// of one transcoder) given the same origin produce the same output
    /// times for the same instants, so their timelines can be listed side
    /// by side in one adaptation set. Units before the origin are dropped.
    /// Has no effect once a unit was pushed.
    pub fn set_time_origin(&mut self, dts: i64, at: SystemTime) {
        if self.offset.is_some() {
            return;
        }
        self.offset = Some(-dts);
        self.availability_start = Some(at);
        self.fixed_origin = true;
    }

    /// Index of the current Period (0 for the first).
    pub fn period(&self) -> usize {
        self.periods.len() - 1
    }

    fn target(&self) -> i64 {
        ticks(self.cfg.target_duration)
    }

    fn track_mut(&mut self, kind: TrackKind) -> &mut Track {
        match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        }
    }

    fn current(&self, kind: TrackKind) -> Option<&TrackSetup> {
        let p = self.periods.last()?;
        match kind {
            TrackKind::Video => p.video.as_ref(),
            TrackKind::Audio => p.audio.as_ref(),
        }
    }

    /// Announce new or changed parameters of a track. The first parameters of
    /// a kind take effect at once; a change opens a new Period at the next
    /// boundary (video keyframe, or the next audio frame of an audio-only stream).
    pub fn push_params(&mut self, p: &ParamsChanged) -> Result<(), DashError> {
        let kind = p.codec.kind();
        if !matches!(p.codec, Codec::H264 | Codec::H265 | Codec::Aac) {
            return Err(DashError::UnsupportedCodec(p.codec));
        }
        if let Some(cur) = self.current(kind)
            && cur.codec == p.codec
            && cur.params == p.params
        {
            // Back to the current parameters: cancel a pending change of this kind.
            self.track_mut(kind).next = None;
            return Ok(());
        }
        let config = TrackConfig::new(1, p.codec, &p.params)?;
        let track = self.track_mut(kind);
        track.id = Some(p.track);
        track.generation += 1;
        let setup = TrackSetup {
            codec: p.codec,
            params: p.params.clone(),
            config,
            generation: track.generation,
        };
        let nothing_pending = track.pending.is_empty();
        let period = self.periods.len() - 1;
        let slot = match kind {
            TrackKind::Video => &mut self.periods[period].video,
            TrackKind::Audio => &mut self.periods[period].audio,
        };
        if slot.is_none() && nothing_pending {
            *slot = Some(setup);
        } else {
            self.track_mut(kind).next = Some(setup);
            self.switch_pending = true;
        }
        Ok(())
    }

    /// Map an input decode time onto the output timeline, splicing jumps.
    fn map_time(&mut self, kind: TrackKind, dts: i64, disc: bool) -> i64 {
        let max_gap = self.cfg.max_gap;
        let epoch = self.epoch;
        let max_end = self.video.end.max(self.audio.end);
        let t = match kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        };
        let splice = match (t.last_in, self.offset) {
            (Some(li), Some(_)) if t.epoch == epoch => {
                let jump = dts - li;
                jump > max_gap || jump < -max_gap || (disc && jump <= 0)
            }
            _ => false,
        };
        let offset = match self.offset {
            None => -dts,
            Some(_) if splice => {
                self.epoch += 1;
                max_end - dts
            }
            Some(o) => o,
        };
        self.offset = Some(offset);
        let epoch = self.epoch;
        let t = self.track_mut(kind);
        t.epoch = epoch;
        t.last_in = Some(dts);
        dts + offset
    }

    /// Package one access unit.
    pub fn push(&mut self, au: AccessUnit, now: SystemTime) -> Result<Vec<Output>, DashError> {
        let kind = au.codec.kind();
        if !matches!(au.codec, Codec::H264 | Codec::H265 | Codec::Aac) {
            return Err(DashError::UnsupportedCodec(au.codec));
        }
        {
            let t = self.track_mut(kind);
            match t.id {
                None => t.id = Some(au.track),
                Some(id) if id != au.track => {
                    // A second track of the same kind: not packaged.
                    self.dropped += 1;
                    return Ok(Vec::new());
                }
                Some(_) => {}
            }
        }
        if kind == TrackKind::Video
            && let Some(change) = self.params.observe(&au)?
        {
            self.push_params(&change)?;
        }
        if kind == TrackKind::Video && self.audio_only {
            self.dropped += 1;
            return Ok(Vec::new());
        }
        if self.availability_start.is_none() {
            self.availability_start = Some(now);
        }
        if kind == TrackKind::Video && au.keyframe {
            self.start_at_first_keyframe(au.dts);
        }
        let out_dts = self.map_time(kind, au.dts, au.discontinuity);
        if self.fixed_origin && out_dts < 0 {
            // Before the shared origin.
            self.dropped += 1;
            return Ok(Vec::new());
        }
        let t = match kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        };
        if let Some(prev) = t.last_out
            && out_dts <= prev
        {
            self.dropped += 1;
            return Err(DashError::NonMonotonic {
                track: au.track,
                prev,
                next: out_dts,
            });
        }
        let shift = out_dts - au.dts;
        let unit = AccessUnit {
            pts: au.pts.saturating_add(shift),
            dts: out_dts,
            ..au
        };
        let mut outs = Vec::new();
        match kind {
            TrackKind::Video => self.push_video(unit, &mut outs)?,
            TrackKind::Audio => self.push_audio(unit, &mut outs)?,
        }
        self.finish(outs, now)
    }

    /// Before the first picture, put output time 0 at the first keyframe.
    ///
    /// The origin is first taken from whichever unit arrives first. When
    /// that is audio muxed a little after the keyframe it belongs with (a
    /// reader joining a live stream at an access point sees such audio
    /// first), the keyframe would land before 0 and its segment could not be
    /// written. Nothing is written before the first picture, so the origin
    /// can still move: the audio waiting for it moves along.
    fn start_at_first_keyframe(&mut self, dts: i64) {
        if self.video_started || self.audio_only || self.fixed_origin {
            return;
        }
        let Some(offset) = self.offset else {
            return;
        };
        let shift = -(dts + offset);
        if shift == 0 {
            return;
        }
        self.offset = Some(offset + shift);
        let audio = &mut self.audio;
        for (_, a) in &mut audio.pending {
            a.dts += shift;
            a.pts = a.pts.saturating_add(shift);
        }
        audio.last_out = audio.last_out.map(|t| t + shift);
        audio.seg_start = audio.seg_start.map(|t| t + shift);
        audio.end += shift;
        let video = &mut self.video;
        video.last_out = video.last_out.map(|t| t + shift);
        video.end += shift;
    }

    fn note_time(track: &mut Track, dts: i64) {
        if let Some(prev) = track.last_out {
            let step = dts - prev;
            if step > 0 {
                track.last_step = step;
            }
        }
        track.last_out = Some(dts);
        track.end = dts + track.last_step;
    }

    fn push_video(&mut self, au: AccessUnit, outs: &mut Vec<Output>) -> Result<(), DashError> {
        if !self.video_started {
            if !au.keyframe {
                self.dropped += 1;
                return Ok(());
            }
            if self.current(TrackKind::Video).is_none() {
                if self.video.next.is_some() {
                    self.open_period(au.dts)?;
                } else {
                    self.dropped += 1;
                    return Err(DashError::MissingParams(au.codec));
                }
            }
            self.video_started = true;
            // Audio before the first picture is not published.
            let start = au.dts;
            let before = self.audio.pending.len();
            self.audio.pending.retain(|(_, a)| a.dts >= start);
            self.dropped += (before - self.audio.pending.len()) as u64;
            self.audio.seg_start = self.audio.pending.first().map(|(_, a)| a.dts);
        } else if au.keyframe {
            let start = self.video.seg_start.unwrap_or(au.pts);
            if self.switch_pending {
                self.cut_video(au.dts, outs)?;
                self.open_period(au.dts)?;
            } else if au.pts - start + self.video.last_step / 2 >= self.target() {
                self.cut_video(au.dts, outs)?;
            }
        }
        Self::note_time(&mut self.video, au.dts);
        if self.video.seg_start.is_none() {
            // Video segments are measured in presentation time: keyframe decode
            // times are skewed by reordering delay.
            self.video.seg_start = Some(au.pts);
        }
        let generation = self.current(TrackKind::Video).map_or(0, |s| s.generation);
        self.video.pending.push((generation, au));
        // Audio waiting for a cut that passed long ago (audio stalled): cut anyway.
        while self.audio_cuts.len() > 2 {
            self.cut_audio_front(None, outs)?;
        }
        Ok(())
    }

    fn push_audio(&mut self, au: AccessUnit, outs: &mut Vec<Output>) -> Result<(), DashError> {
        if self.current(TrackKind::Audio).is_none() && self.audio.next.is_none() {
            self.dropped += 1;
            return Err(DashError::MissingParams(au.codec));
        }
        if !self.video_started && !self.audio_only {
            let waited = self
                .audio
                .pending
                .first()
                .map_or(0, |(_, a)| au.dts - a.dts);
            if self.video.id.is_none() && waited >= 3 * self.target() {
                self.audio_only = true;
            }
        }
        if self.audio_only {
            if self.current(TrackKind::Audio).is_none() || self.switch_pending {
                if !self.audio.pending.is_empty() {
                    self.cut_audio_at(au.dts, outs)?;
                }
                self.open_period(au.dts)?;
            } else if let Some(start) = self.audio.seg_start
                && au.dts - start >= self.target()
            {
                self.cut_audio_at(au.dts, outs)?;
            }
        } else {
            while let Some(&(b, _)) = self.audio_cuts.front() {
                if au.dts < b {
                    break;
                }
                self.cut_audio_front(Some(au.dts), outs)?;
            }
        }
        Self::note_time(&mut self.audio, au.dts);
        if self.audio.seg_start.is_none() {
            self.audio.seg_start = Some(au.dts);
        }
        let generation = self.audio.generation;
        self.audio.pending.push((generation, au));
        Ok(())
    }

    /// Start a new Period at `start` with the pending parameters.
    fn open_period(&mut self, start: i64) -> Result<(), DashError> {
        let prev = self.periods.last().cloned();
        let has_segments = self.video.init_written.is_some() || self.audio.init_written.is_some();
        let video = self
            .video
            .next
            .take()
            .or_else(|| prev.as_ref().and_then(|p| p.video.clone()));
        let audio = self
            .audio
            .next
            .take()
            .or_else(|| prev.as_ref().and_then(|p| p.audio.clone()));
        self.switch_pending = false;
        let state = PeriodState {
            start: if has_segments { start } else { 0 },
            video,
            audio,
        };
        if has_segments {
            self.periods.push(state);
        } else if let Some(last) = self.periods.last_mut() {
            *last = state;
        }
        Ok(())
    }

    fn init_name(&self, kind: TrackKind, period: usize) -> String {
        let id = match kind {
            TrackKind::Video => &self.cfg.video_id,
            TrackKind::Audio => &self.cfg.audio_id,
        };
        if period == 0 {
            format!("init_{id}.mp4")
        } else {
            format!("init_{id}_{period}.mp4")
        }
    }

    fn seg_name(&self, kind: TrackKind, number: u64) -> String {
        let id = match kind {
            TrackKind::Video => &self.cfg.video_id,
            TrackKind::Audio => &self.cfg.audio_id,
        };
        format!("seg_{id}_{number}.m4s")
    }

    /// Write one segment of `kind` from `units` into the current Period.
    fn write_segment(
        &mut self,
        kind: TrackKind,
        period: usize,
        units: &[AccessUnit],
        next_dts: Option<i64>,
        outs: &mut Vec<Output>,
    ) -> Result<(), DashError> {
        let Some(first) = units.first() else {
            return Ok(());
        };
        let setup = self
            .periods
            .get(period)
            .and_then(|p| match kind {
                TrackKind::Video => p.video.clone(),
                TrackKind::Audio => p.audio.clone(),
            })
            .ok_or(DashError::MissingParams(first.codec))?;
        let track = match kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        };
        if track.init_written != Some(period) {
            let mut init = Vec::with_capacity(1024);
            write_init_segment(&mut init, std::slice::from_ref(&setup.config))?;
            outs.push(Output::WriteFile {
                name: self.init_name(kind, period),
                bytes: Bytes::from(init),
            });
        }
        let number = track.next_number;
        let mut buf =
            Vec::with_capacity(units.iter().map(|u| u.payload.len()).sum::<usize>() + 1024);
        let info = write_media_segment(
            &mut buf,
            u32::try_from(number).unwrap_or(u32::MAX),
            &[TrackRun {
                track: &setup.config,
                units,
                next_dts,
            }],
            &SegmentOptions::default(),
        )?;
        let frag = info.fragments.first().copied();
        let name = self.seg_name(kind, number);
        let entry = SegEntry {
            number,
            period,
            t: frag.map_or(0, |f| f.base_media_decode_time),
            d: frag.map_or(0, |f| f.duration),
            size: buf.len(),
            name: name.clone(),
        };
        outs.push(Output::WriteFile {
            name,
            bytes: Bytes::from(buf),
        });
        let window = self.cfg.window;
        let grace = self.cfg.delete_grace;
        let track = self.track_mut(kind);
        track.init_written = Some(period);
        track.next_number += 1;
        track.window.push_back(entry);
        while track.window.len() > window {
            if let Some(old) = track.window.pop_front() {
                track.retired.push_back(old);
            }
        }
        let mut deleted_periods = Vec::new();
        while track.retired.len() > grace {
            if let Some(old) = track.retired.pop_front() {
                outs.push(Output::DeleteFile { name: old.name });
                let still_used = track
                    .retired
                    .iter()
                    .chain(track.window.iter())
                    .any(|s| s.period == old.period);
                if !still_used {
                    deleted_periods.push(old.period);
                }
            }
        }
        for p in deleted_periods {
            outs.push(Output::DeleteFile {
                name: self.init_name(kind, p),
            });
        }
        Ok(())
    }

    /// Cut the pending video at `boundary` (the keyframe that starts the next segment).
    fn cut_video(&mut self, boundary: i64, outs: &mut Vec<Output>) -> Result<(), DashError> {
        let units: Vec<AccessUnit> = std::mem::take(&mut self.video.pending)
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        self.video.seg_start = None;
        if units.is_empty() {
            return Ok(());
        }
        let period = self.periods.len() - 1;
        self.write_segment(TrackKind::Video, period, &units, Some(boundary), outs)?;
        if self.audio.id.is_some() {
            // Audio is cut at the same time, now if it already passed it.
            self.audio_cuts.push_back((boundary, period));
            let passed = self.audio.last_out.is_some_and(|l| l >= boundary);
            if passed {
                let next = self
                    .audio
                    .pending
                    .iter()
                    .find(|(_, a)| a.dts >= boundary)
                    .map(|(_, a)| a.dts);
                self.cut_audio_front(next, outs)?;
            }
        }
        Ok(())
    }

    /// Cut audio at the first queued boundary.
    fn cut_audio_front(
        &mut self,
        next_dts: Option<i64>,
        outs: &mut Vec<Output>,
    ) -> Result<(), DashError> {
        let Some((boundary, period)) = self.audio_cuts.pop_front() else {
            return Ok(());
        };
        self.cut_audio_before(boundary, period, next_dts, outs)
    }

    fn cut_audio_at(&mut self, at: i64, outs: &mut Vec<Output>) -> Result<(), DashError> {
        let period = self.periods.len() - 1;
        self.cut_audio_before(at, period, Some(at), outs)
    }

    fn cut_audio_before(
        &mut self,
        boundary: i64,
        period: usize,
        next_dts: Option<i64>,
        outs: &mut Vec<Output>,
    ) -> Result<(), DashError> {
        let pending = std::mem::take(&mut self.audio.pending);
        let (take, keep): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(_, a)| a.dts < boundary);
        self.audio.pending = keep;
        self.audio.seg_start = self.audio.pending.first().map(|(_, a)| a.dts);
        // Units of other parameter generations belong to no Period here.
        let generation = self
            .periods
            .get(period)
            .and_then(|p| p.audio.as_ref())
            .map(|s| s.generation);
        let before = take.len();
        let units: Vec<AccessUnit> = take
            .into_iter()
            .filter(|(g, _)| Some(*g) == generation)
            .map(|(_, u)| u)
            .collect();
        self.dropped += (before - units.len()) as u64;
        let next = next_dts.or_else(|| self.audio.pending.first().map(|(_, a)| a.dts));
        self.write_segment(TrackKind::Audio, period, &units, next, outs)
    }

    /// Write everything still pending as final segments (end of stream).
    pub fn flush(&mut self, now: SystemTime) -> Result<Vec<Output>, DashError> {
        let mut outs = Vec::new();
        if self.video_started && !self.video.pending.is_empty() {
            let end = self.video.end;
            self.cut_video(end, &mut outs)?;
        }
        while !self.audio_cuts.is_empty() {
            self.cut_audio_front(None, &mut outs)?;
        }
        if self.video_started && !self.audio_only {
            // Audio past the end of the last picture has no segment to go with.
            self.dropped += self.audio.pending.len() as u64;
            self.audio.pending.clear();
        } else if !self.audio.pending.is_empty() && self.audio_only {
            let end = self.audio.end;
            let period = self.periods.len() - 1;
            self.cut_audio_before(end, period, Some(end), &mut outs)?;
        }
        self.finish(outs, now)
    }

    fn finish(&mut self, mut outs: Vec<Output>, now: SystemTime) -> Result<Vec<Output>, DashError> {
        let wrote_segment = outs
            .iter()
            .any(|o| matches!(o, Output::WriteFile { name, .. } if name.ends_with(".m4s")));
        if wrote_segment && let Some(mpd) = self.manifest(now) {
            // Deletions go after the manifest that stops referencing them.
            let split = outs
                .iter()
                .position(|o| matches!(o, Output::DeleteFile { .. }))
                .unwrap_or(outs.len());
            outs.insert(
                split,
                Output::Manifest {
                    bytes: Bytes::from(mpd.to_xml()),
                },
            );
        }
        Ok(outs)
    }

    fn representation(
        &self,
        kind: TrackKind,
        setup: &TrackSetup,
        segs: &[&SegEntry],
    ) -> Representation {
        let timescale = setup.config.timescale.max(1);
        let bytes: u64 = segs.iter().map(|s| s.size as u64).sum();
        let dur: u64 = segs.iter().map(|s| s.d).sum();
        let bandwidth = if dur == 0 {
            0
        } else {
            (u128::from(bytes) * 8 * u128::from(timescale)).div_ceil(u128::from(dur)) as u64
        };
        let codecs = codec_string::for_params(setup.codec, &setup.params)
            .unwrap_or_else(|| setup.config.codec_string());
        let id = match kind {
            TrackKind::Video => self.cfg.video_id.clone(),
            TrackKind::Audio => self.cfg.audio_id.clone(),
        };
        match &setup.params {
            TrackParams::Video(v) => Representation {
                id,
                bandwidth,
                codecs,
                width: Some(v.width),
                height: Some(v.height),
                frame_rate: v.frame_rate,
                audio_sampling_rate: None,
                audio_channels: None,
                template: None,
            },
            TrackParams::Audio(a) => Representation {
                id,
                bandwidth,
                codecs,
                width: None,
                height: None,
                frame_rate: None,
                audio_sampling_rate: Some(a.sample_rate),
                audio_channels: Some(a.channels),
                template: None,
            },
        }
    }

    /// The current MPD, or `None` before the first segment.
    pub fn manifest(&self, now: SystemTime) -> Option<Mpd> {
        let ast = self.availability_start?;
        let mut periods = Vec::new();
        let mut max_seg = 0f64;
        for (pi, p) in self.periods.iter().enumerate() {
            let mut sets = Vec::new();
            for (kind, setup, track, ct) in [
                (TrackKind::Video, &p.video, &self.video, ContentType::Video),
                (TrackKind::Audio, &p.audio, &self.audio, ContentType::Audio),
            ] {
                let Some(setup) = setup else { continue };
                let segs: Vec<&SegEntry> = track.window.iter().filter(|s| s.period == pi).collect();
                let Some(first) = segs.first() else { continue };
                let timescale = setup.config.timescale.max(1);
                for s in &segs {
                    max_seg = max_seg.max(s.d as f64 / f64::from(timescale));
                }
                let init = if pi == 0 {
                    "init_$RepresentationID$.mp4".to_owned()
                } else {
                    format!("init_$RepresentationID$_{pi}.mp4")
                };
                let pto = u64::try_from(rescale(p.start, CLOCK_HZ, timescale)).unwrap_or(0);
                sets.push(AdaptationSet {
                    id: sets.len() as u32,
                    content_type: ct,
                    template: Some(SegmentTemplate {
                        timescale,
                        presentation_time_offset: pto,
                        initialization: init,
                        media: "seg_$RepresentationID$_$Number$.m4s".to_owned(),
                        start_number: first.number,
                        timeline: mpd::compress_timeline(segs.iter().map(|s| (s.t, s.d))),
                    }),
                    representations: vec![self.representation(kind, setup, &segs)],
                });
            }
            if sets.is_empty() {
                continue;
            }
            periods.push(Period {
                id: format!("p{pi}"),
                start: Duration::from_micros(
                    u64::try_from(p.start).unwrap_or(0) * 1_000_000 / u64::from(CLOCK_HZ),
                ),
                adaptation_sets: sets,
            });
        }
        if periods.is_empty() {
            return None;
        }
        let target = self.cfg.target_duration;
        let max_seg = Duration::from_millis((max_seg * 1000.0).ceil() as u64).max(target);
        Some(Mpd {
            availability_start_time: ast,
            publish_time: now,
            minimum_update_period: target,
            time_shift_buffer_depth: target * self.cfg.window as u32,
            suggested_presentation_delay: target * 3,
            min_buffer_time: target * 2,
            max_segment_duration: max_seg,
            periods,
            utc_timing: self.cfg.utc_timing.clone(),
        })
    }
}
