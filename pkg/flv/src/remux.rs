//! MPEG-TS → FLV messages (RTMP play and push-out), sans-IO.
//!
//! [`TsToFlv`] demuxes MPEG-TS bytes (any chunking), follows the first video
//! (H.264 / H.265) and first audio (AAC, MP3, Opus, AC-3) track of the
//! program, and produces [`FlvMessage`]s: `onMetaData` and sequence headers
//! whenever a track's parameters appear or change, then frames.
//!
//! - Nothing is produced before the first video keyframe whose parameters are
//!   known (audio-only programs: before the audio parameters), so the output
//!   always starts decodable.
//! - Timestamps start near 0 at the first message and are kept monotonic
//!   across source switches: a jump larger than [`MAX_GAP_MS`] (or an explicit
//!   [`TsToFlv::discontinuity`]) splices the timeline.
//! - [`TsToFlv::headers`] gives the current `onMetaData` and sequence headers
//!   for a consumer that joins mid-stream.

use bytes::Bytes;
use os_av::time::Rebaser;
use os_av::{AccessUnit, AudioParams, Codec, TrackId, TrackKind, TrackParams, VideoParams};
use os_codecs::params::ParamTracker;
use os_mpegts::{Demuxer, Event};

use crate::au::{
    audio_frame, audio_sequence_header, metadata_for, video_frame, video_sequence_header,
};
use crate::tag::TagType;

/// Largest timestamp jump (ms) accepted as continuous.
pub const MAX_GAP_MS: i64 = 10_000;
/// Room (ms) below the first timestamp, so that units slightly earlier than
/// the first one (audio/video interleave) do not go negative.
const HEADROOM_MS: i64 = 500;
const TICKS_PER_MS: i64 = 90;

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvKind {
    /// `onMetaData` (script data).
    Metadata,
    VideoHeader,
    AudioHeader,
    Video,
    Audio,
}

impl FlvKind {
    pub fn tag_type(self) -> TagType {
        match self {
            FlvKind::Metadata => TagType::Script,
            FlvKind::VideoHeader | FlvKind::Video => TagType::Video,
            FlvKind::AudioHeader | FlvKind::Audio => TagType::Audio,
        }
    }

    /// Metadata or a sequence header.
    pub fn is_header(self) -> bool {
        matches!(
            self,
            FlvKind::Metadata | FlvKind::VideoHeader | FlvKind::AudioHeader
        )
    }
}

/// One FLV tag body / RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvMessage {
    pub kind: FlvKind,
    /// Milliseconds (decode time).
    pub timestamp: u32,
    /// A point where a consumer can start: a video keyframe, or any audio
    /// frame of an audio-only program.
    pub keyframe: bool,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
struct VideoTrack {
    id: TrackId,
    codec: Codec,
    params: Option<VideoParams>,
}

#[derive(Debug, Clone)]
struct AudioTrack {
    id: TrackId,
    codec: Codec,
    params: Option<AudioParams>,
}

/// The converter. See the module docs.
pub struct TsToFlv {
    demux: Demuxer,
    tracker: ParamTracker,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// The program has a video track we can carry.
    started: bool,
    rebaser: Rebaser,
    /// Output ms = rebased ms - base.
    base: Option<i64>,
    /// Last timestamp out (any track), for headers.
    last_ts: u32,
    /// Last timestamp per track kind (video, audio): each stays monotonic.
    last_track_ts: [u32; 2],
    metadata: Option<Bytes>,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    /// Frames dropped because they could not be converted.
    pub bad_units: u64,
    /// Bumped whenever a header changes.
    generation: u64,
}

impl Default for TsToFlv {
    fn default() -> Self {
        Self::new()
    }
}

impl TsToFlv {
    pub fn new() -> Self {
        Self {
            demux: Demuxer::new(),
            tracker: ParamTracker::new(),
            video: None,
            audio: None,
            started: false,
            rebaser: Rebaser::new(MAX_GAP_MS * TICKS_PER_MS, 40 * TICKS_PER_MS),
            base: None,
            last_ts: 0,
            last_track_ts: [0; 2],
            metadata: None,
            video_header: None,
            audio_header: None,
            bad_units: 0,
            generation: 0,
        }
    }

    /// The source changed or data was lost: the next bytes start a new
    /// demux (they begin with PAT/PMT) and the timeline is spliced.
    pub fn discontinuity(&mut self) {
        self.demux = Demuxer::new();
        self.rebaser.discontinuity();
        self.started = false;
    }

    /// Counter bumped whenever metadata or a sequence header changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The current `onMetaData` and sequence headers, at the last timestamp.
    pub fn headers(&self) -> Vec<FlvMessage> {
        let mut out = Vec::with_capacity(3);
        for (kind, body) in [
            (FlvKind::Metadata, &self.metadata),
            (FlvKind::VideoHeader, &self.video_header),
            (FlvKind::AudioHeader, &self.audio_header),
        ] {
            if let Some(body) = body {
                out.push(FlvMessage {
                    kind,
                    timestamp: self.last_ts,
                    keyframe: false,
                    body: body.clone(),
                });
            }
        }
        out
    }

    /// Feed MPEG-TS bytes; messages are appended to `out`.
    pub fn push(&mut self, ts: &[u8], out: &mut Vec<FlvMessage>) {
        self.demux.push(ts);
        while let Some(ev) = self.demux.pull() {
            match ev {
                Event::ProgramChanged(p) => {
                    let video = p
                        .tracks
                        .iter()
                        .find(|t| matches!(t.codec, Codec::H264 | Codec::H265));
                    let audio = p.tracks.iter().find(|t| {
                        matches!(t.codec, Codec::Aac | Codec::Mp3 | Codec::Opus | Codec::Ac3)
                    });
                    self.video = video.map(|t| VideoTrack {
                        id: t.id,
                        codec: t.codec,
                        params: self
                            .video
                            .as_ref()
                            .filter(|v| v.codec == t.codec)
                            .and_then(|v| v.params.clone()),
                    });
                    self.audio = audio.map(|t| AudioTrack {
                        id: t.id,
                        codec: t.codec,
                        params: match &t.params {
                            Some(TrackParams::Audio(a)) => Some(a.clone()),
                            _ => self
                                .audio
                                .as_ref()
                                .filter(|a| a.codec == t.codec)
                                .and_then(|a| a.params.clone()),
                        },
                    });
                    self.tracker.reset();
                }
                Event::Params(changed) => {
                    if let (Some(a), TrackParams::Audio(p)) = (&mut self.audio, &changed.params)
                        && a.id == changed.track
                        && a.params.as_ref() != Some(p)
                    {
                        a.params = Some(p.clone());
                        self.audio_params_changed(out);
                    }
                }
                Event::AccessUnit(au) => self.unit(au, out),
                _ => {}
            }
        }
    }

    fn timestamp(&mut self, dts: i64, track: usize) -> u32 {
        let ms = self.rebaser.rebase(dts) / TICKS_PER_MS;
        let base = *self.base.get_or_insert(ms - HEADROOM_MS);
        let ts = (ms - base).clamp(0, i64::from(u32::MAX)) as u32;
        // Monotonic per track. Across tracks the order is the demuxer's
        // (a video frame is complete only when the next one starts), so
        // audio may run slightly ahead: players interleave by timestamp.
        let last = self.last_track_ts.get_mut(track).map_or(0, |l| {
            let v = (*l).max(ts);
            *l = v;
            v
        });
        self.last_ts = self.last_ts.max(last);
        last
    }

    fn offset_unit(&self, au: &AccessUnit, ts: u32) -> AccessUnit {
        // Re-express the unit on the output clock, keeping pts - dts.
        let dts = i64::from(ts) * TICKS_PER_MS;
        AccessUnit {
            dts,
            pts: dts + au.cts().max(0),
            ..au.clone()
        }
    }

    fn unit(&mut self, au: AccessUnit, out: &mut Vec<FlvMessage>) {
        match au.codec.kind() {
            TrackKind::Video => {
                let Some(v) = self.video.as_ref().filter(|v| v.id == au.track) else {
                    return;
                };
                let codec = v.codec;
                if let Ok(Some(changed)) = self.tracker.observe(&au)
                    && let TrackParams::Video(p) = changed.params
                {
                    if let Some(v) = &mut self.video {
                        v.params = Some(p);
                    }
                    if !self.video_params_changed(codec) {
                        self.bad_units += 1;
                        return;
                    }
                    if self.started {
                        self.push_headers(out, FlvKind::VideoHeader);
                    }
                }
                let starting = !self.started;
                if starting && (!au.keyframe || self.video_header.is_none()) {
                    return;
                }
                let ts = self.timestamp(au.dts, 0);
                if starting {
                    self.started = true;
                    out.extend(self.headers());
                }
                match video_frame(&self.offset_unit(&au, ts), false) {
                    Ok((_, body)) => out.push(FlvMessage {
                        kind: FlvKind::Video,
                        timestamp: ts,
                        keyframe: au.keyframe,
                        body,
                    }),
                    Err(_) => self.bad_units += 1,
                }
            }
            TrackKind::Audio => {
                let Some(a) = self.audio.as_ref().filter(|a| a.id == au.track) else {
                    return;
                };
                let audio_only = self.video.is_none();
                let starting = !self.started;
                if starting
                    && (!audio_only || (a.codec == Codec::Aac && self.audio_header.is_none()))
                {
                    return;
                }
                let params = a.params.clone();
                let ts = self.timestamp(au.dts, 1);
                if starting {
                    self.started = true;
                    out.extend(self.headers());
                }
                match audio_frame(&self.offset_unit(&au, ts), params.as_ref()) {
                    Ok((_, body)) => out.push(FlvMessage {
                        kind: FlvKind::Audio,
                        timestamp: ts,
                        keyframe: audio_only,
                        body,
                    }),
                    Err(_) => self.bad_units += 1,
                }
            }
        }
    }

    fn refresh_metadata(&mut self) {
        let video = self
            .video
            .as_ref()
            .and_then(|v| v.params.as_ref().map(|p| (v.codec, p)));
        let audio = self
            .audio
            .as_ref()
            .and_then(|a| a.params.as_ref().map(|p| (a.codec, p)));
        self.metadata = metadata_for(video, audio).to_script_body().ok();
    }

    fn push_headers(&self, out: &mut Vec<FlvMessage>, which: FlvKind) {
        let body = match which {
            FlvKind::VideoHeader => &self.video_header,
            FlvKind::AudioHeader => &self.audio_header,
            _ => &self.metadata,
        };
        for (kind, body) in [(FlvKind::Metadata, &self.metadata), (which, body)] {
            if let Some(body) = body {
                out.push(FlvMessage {
                    kind,
                    timestamp: self.last_ts,
                    keyframe: false,
                    body: body.clone(),
                });
            }
        }
    }

    /// New video parameters: rebuild the header. `false` if they cannot be carried.
    fn video_params_changed(&mut self, codec: Codec) -> bool {
        let Some(p) = self.video.as_ref().and_then(|v| v.params.as_ref()) else {
            return false;
        };
        match video_sequence_header(codec, p, false) {
            Ok(h) => {
                self.video_header = Some(h);
                self.refresh_metadata();
                self.generation += 1;
                true
            }
            Err(_) => false,
        }
    }

    fn audio_params_changed(&mut self, out: &mut Vec<FlvMessage>) {
        let Some(a) = &self.audio else { return };
        let Some(p) = &a.params else { return };
        self.audio_header = audio_sequence_header(a.codec, p).ok().flatten();
        self.refresh_metadata();
        self.generation += 1;
        if self.started {
            self.push_headers(out, FlvKind::AudioHeader);
        }
    }
}
