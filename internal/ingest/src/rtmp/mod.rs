//! RTMP: pull reader ([`run`]) and the shared listener ([`serve_listener_with`]):
//! push ingest and play ([`fanout`]).
//!
//! Both sides use `rml_rtmp` for the handshake and the chunk/command layer and
//! hand audio/video message bodies to [`FlvToTs`], which turns them into
//! access units (`os_flv::au::FlvDemuxer`) and muxes those to MPEG-TS.

mod client;
pub(crate) mod fanout;
mod server;

pub use client::run;
pub use server::{serve_listener, serve_listener_with};

use bytes::{Bytes, BytesMut};
use os_av::{Codec, Track, TrackId, TrackKind, TrackParams};
use os_flv::au::{DemuxEvent, FlvDemuxer};
use os_mpegts::Muxer;

use crate::emit::{CHUNK_TARGET, TsEmitter};
use crate::error::IngestError;

/// Track id (and PID) of the video track in the TS we produce.
pub const VIDEO_TRACK: TrackId = 0x100;
/// Track id (and PID) of the audio track.
pub const AUDIO_TRACK: TrackId = 0x101;

/// Events held back while waiting for both sequence headers.
const MAX_PENDING: usize = 256;
/// Bytes of media held back at most while waiting for the track layout.
const MAX_PENDING_BYTES: usize = 8 << 20;
/// Media time (90 kHz) held back at most: a kind not seen by then is absent.
const MAX_PENDING_SPAN: i64 = 90_000;

/// Which tracks the stream metadata announced (when it came).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Announced {
    pub video: Option<bool>,
    pub audio: Option<bool>,
}

impl Announced {
    pub(crate) fn from_metadata(m: &rml_rtmp::sessions::StreamMetadata) -> Self {
        // onMetaData lists the codec ids of the tracks that will come.
        Self {
            video: Some(m.video_codec_id.is_some() || m.video_width.is_some()),
            audio: Some(m.audio_codec_id.is_some() || m.audio_sample_rate.is_some()),
        }
    }
}

/// RTMP audio/video message bodies in, MPEG-TS out.
///
/// The track layout is declared once both sequence headers were seen (or the
/// metadata said a kind will not come, or too much media waited); units
/// arriving before that are held back so the first PMT is complete. A track
/// that shows up later is added with a PMT update.
pub(crate) struct FlvToTs {
    demux: FlvDemuxer,
    muxer: Muxer,
    scratch: BytesMut,
    events: Vec<DemuxEvent>,
    announced: Announced,
    /// Tracks known so far (codec + latest parameters).
    known: Vec<Track>,
    /// Tracks declared to the muxer.
    declared: Vec<(TrackId, Codec)>,
    pending: Vec<DemuxEvent>,
    pending_bytes: usize,
    /// First and last DTS of the units held back.
    pending_span: Option<(i64, i64)>,
    settled: bool,
    /// Media messages handled (for logs).
    pub messages: u64,
    /// Demux errors skipped (bad tag bodies).
    pub bad_messages: u64,
}

impl FlvToTs {
    pub(crate) fn new() -> Self {
        Self {
            demux: FlvDemuxer::new(VIDEO_TRACK, AUDIO_TRACK),
            muxer: Muxer::new(Default::default()),
            scratch: BytesMut::with_capacity(64 << 10),
            events: Vec::new(),
            announced: Announced::default(),
            known: Vec::new(),
            declared: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            pending_span: None,
            settled: false,
            messages: 0,
            bad_messages: 0,
        }
    }

    pub(crate) fn announce(&mut self, a: Announced) {
        self.announced = a;
    }

    pub(crate) fn video(
        &mut self,
        timestamp: u32,
        body: &Bytes,
        out: &mut TsEmitter,
    ) -> Result<(), IngestError> {
        self.messages += 1;
        let mut events = std::mem::take(&mut self.events);
        if self.demux.push_video(timestamp, body, &mut events).is_err() {
            // One bad tag (truncated NAL, broken sequence header) does not end
            // the session; the next key frame recovers.
            self.bad_messages += 1;
        }
        let r = self.handle(&mut events, out);
        self.events = events;
        r
    }

    pub(crate) fn audio(
        &mut self,
        timestamp: u32,
        body: &Bytes,
        out: &mut TsEmitter,
    ) -> Result<(), IngestError> {
        self.messages += 1;
        let mut events = std::mem::take(&mut self.events);
        if self.demux.push_audio(timestamp, body, &mut events).is_err() {
            self.bad_messages += 1;
        }
        let r = self.handle(&mut events, out);
        self.events = events;
        r
    }

    fn handle(
        &mut self,
        events: &mut Vec<DemuxEvent>,
        out: &mut TsEmitter,
    ) -> Result<(), IngestError> {
        for ev in events.drain(..) {
            self.learn(&ev);
            if self.settled {
                self.apply(ev, out)?;
            } else {
                if let DemuxEvent::Unit(u) = &ev {
                    self.pending_bytes += u.payload.len();
                    let (first, _) = self.pending_span.unwrap_or((u.dts, u.dts));
                    self.pending_span = Some((first, u.dts));
                }
                self.pending.push(ev);
                if self.ready() {
                    self.settle(out)?;
                }
            }
        }
        Ok(())
    }

    /// Remember the codec and parameters of each track.
    fn learn(&mut self, ev: &DemuxEvent) {
        let (id, codec, params) = match ev {
            DemuxEvent::Params(p) => (p.track, p.codec, Some(p.params.clone())),
            DemuxEvent::Unit(u) => (u.track, u.codec, None),
        };
        match self.known.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                if t.codec != codec {
                    t.codec = codec;
                    t.params = None;
                }
                if params.is_some() {
                    t.params = params;
                }
            }
            None => self.known.push(Track { id, codec, params }),
        }
    }

    fn has(&self, kind: TrackKind) -> bool {
        self.known.iter().any(|t| t.codec.kind() == kind)
    }

    fn ready(&self) -> bool {
        let span = self.pending_span.map_or(0, |(a, b)| b.saturating_sub(a));
        if self.pending.len() >= MAX_PENDING
            || self.pending_bytes >= MAX_PENDING_BYTES
            || span >= MAX_PENDING_SPAN
        {
            return true;
        }
        let want = |announced: Option<bool>, kind| match announced {
            Some(false) => true,
            // Announced or not (no metadata): wait until it is seen; the
            // pending limit ends the wait for a kind that never comes.
            _ => self.has(kind),
        };
        want(self.announced.video, TrackKind::Video) && want(self.announced.audio, TrackKind::Audio)
    }

    fn settle(&mut self, out: &mut TsEmitter) -> Result<(), IngestError> {
        self.settled = true;
        self.declare()?;
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.pending_span = None;
        for ev in pending {
            self.apply(ev, out)?;
        }
        Ok(())
    }

    fn declare(&mut self) -> Result<(), IngestError> {
        let mut tracks = self.known.clone();
        // Video first: it carries the PCR.
        tracks.sort_by_key(|t| (t.codec.kind() != TrackKind::Video, t.id));
        self.muxer
            .set_tracks(&tracks)
            .map_err(|e| IngestError::protocol(format!("unsupported track layout: {e}")))?;
        self.declared = tracks.iter().map(|t| (t.id, t.codec)).collect();
        Ok(())
    }

    fn apply(&mut self, ev: DemuxEvent, out: &mut TsEmitter) -> Result<(), IngestError> {
        let id = match &ev {
            DemuxEvent::Params(p) => p.track,
            DemuxEvent::Unit(u) => u.track,
        };
        let declared = self.declared.iter().find(|(t, _)| *t == id).map(|d| d.1);
        let known = self.known.iter().find(|t| t.id == id).map(|t| t.codec);
        if declared != known {
            // A new track or a codec switch: new program.
            self.declare()?;
        }
        match ev {
            DemuxEvent::Params(p) => self
                .muxer
                .set_params(&p)
                .map_err(|e| IngestError::protocol(format!("track parameters: {e}"))),
            DemuxEvent::Unit(au) => {
                if au.codec == Codec::Aac && !self.has_params(au.track) {
                    // ADTS needs the AudioSpecificConfig: drop AAC until it came.
                    return Ok(());
                }
                self.muxer
                    .write(&au, &mut self.scratch)
                    .map_err(|e| IngestError::protocol(format!("muxing: {e}")))?;
                if au.codec.kind() == TrackKind::Video || self.scratch.len() >= CHUNK_TARGET {
                    let chunk = self.scratch.split().freeze();
                    out.push_bytes(chunk)?;
                }
                Ok(())
            }
        }
    }

    fn has_params(&self, id: TrackId) -> bool {
        self.known
            .iter()
            .any(|t| t.id == id && matches!(t.params, Some(TrackParams::Audio(_))))
    }

    /// Write out what is pending (end of session).
    pub(crate) fn flush(&mut self, out: &mut TsEmitter) -> Result<(), IngestError> {
        if !self.settled && !self.pending.is_empty() {
            self.settle(out)?;
        }
        if !self.scratch.is_empty() {
            let chunk = self.scratch.split().freeze();
            out.push_bytes(chunk)?;
        }
        out.flush()
    }
}
