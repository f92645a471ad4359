//! Writing into the hub.
//!
//! [`TsEmitter`] takes bytes as they come off the wire (any chunking, stray
//! bytes, RTP-free), realigns them to whole 188-byte packets, writes them to
//! the stream's hub buffer in chunks and keeps the input's figures. It also
//! probes the first seconds of each session with the demuxer to report the
//! codecs and resolution found, then stops demuxing (the hub's consumers
//! demux for themselves; ingest stays cheap).
//!
//! [`AuEmitter`] is for sources that deliver frames (RTMP, RTSP): it muxes
//! access units to MPEG-TS with the pkg muxer and hands the result to a
//! [`TsEmitter`].

use std::borrow::BorrowMut;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use os_av::{AccessUnit, ParamsChanged, Track, TrackParams};
use os_hub::Buffer;
use os_mpegts::{Demuxer, Event, Muxer, PACKET_SIZE, SYNC_BYTE};

use crate::error::IngestError;
use crate::stats::{InputStats, TrackInfo};

/// Bytes collected before a chunk is written when data trickles in.
pub const CHUNK_TARGET: usize = 7 * PACKET_SIZE;

/// Stop probing for codec parameters after this many packets.
const PROBE_PACKETS: u64 = 20_000;

/// Realigns a byte stream to TS packets and writes it to a hub buffer.
pub struct TsEmitter {
    buffer: Arc<Buffer>,
    stats: Arc<InputStats>,
    /// Bytes of a packet (or of unsynchronised input) not yet written.
    carry: BytesMut,
    /// Mark the next chunk as the start of a new timeline.
    discontinuity: bool,
    probe: Option<Probe>,
}

struct Probe {
    demux: Demuxer,
    params: os_codecs::params::ParamTracker,
    packets: u64,
    tracks: Vec<TrackInfo>,
}

impl TsEmitter {
    pub fn new(buffer: Arc<Buffer>, stats: Arc<InputStats>) -> Self {
        Self {
            buffer,
            stats,
            carry: BytesMut::new(),
            discontinuity: true,
            probe: Some(Probe::new()),
        }
    }

    /// The next data starts a new timeline (reconnect, new publisher, loop).
    pub fn discontinuity(&mut self) {
        self.discontinuity = true;
        self.carry.clear();
        self.probe = Some(Probe::new());
    }

    /// Write bytes that are already owned (zero copy when they are aligned).
    pub fn push_bytes(&mut self, data: Bytes) -> Result<(), IngestError> {
        if self.carry.is_empty() && is_aligned(&data) {
            return self.emit(data);
        }
        self.push(&data)
    }

    /// Write bytes in any chunking.
    pub fn push(&mut self, data: &[u8]) -> Result<(), IngestError> {
        self.carry.extend_from_slice(data);
        // Find sync: a 0x47 followed by another 0x47 one packet later (or the
        // end of what we have).
        let mut start = 0;
        while start < self.carry.len() {
            if self.carry[start] == SYNC_BYTE
                && self
                    .carry
                    .get(start + PACKET_SIZE)
                    .is_none_or(|b| *b == SYNC_BYTE)
            {
                break;
            }
            start += 1;
        }
        if start > 0 {
            self.stats.record_skipped(start);
            let _ = self.carry.split_to(start);
        }
        // Emit whole packets that are confirmed by the next sync byte (or are
        // the last whole packet). Stop at the first packet that breaks sync;
        // the next push resynchronises from there.
        let mut whole = 0;
        while whole + PACKET_SIZE <= self.carry.len() && self.carry[whole] == SYNC_BYTE {
            whole += PACKET_SIZE;
        }
        if whole >= CHUNK_TARGET || (whole > 0 && whole == self.carry.len()) {
            let chunk = self.carry.split_to(whole).freeze();
            self.emit(chunk)?;
        }
        if self.carry.len() > 64 * PACKET_SIZE {
            // Data that never syncs: drop it rather than grow.
            self.stats.record_skipped(self.carry.len());
            self.carry.clear();
        }
        Ok(())
    }

    /// Write out whatever whole packets are pending.
    pub fn flush(&mut self) -> Result<(), IngestError> {
        let whole = self.carry.len() / PACKET_SIZE * PACKET_SIZE;
        if whole > 0 && self.carry[0] == SYNC_BYTE {
            let chunk = self.carry.split_to(whole).freeze();
            self.emit(chunk)?;
        }
        Ok(())
    }

    fn emit(&mut self, chunk: Bytes) -> Result<(), IngestError> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.discontinuity {
            self.discontinuity = false;
            self.buffer.discontinuity();
        }
        let packets = chunk.len() / PACKET_SIZE;
        if let Some(probe) = &mut self.probe {
            if let Some(tracks) = probe.feed(&chunk) {
                self.stats.set_tracks(tracks);
            }
            if probe.done() {
                self.probe = None;
            }
        }
        self.stats.record_chunk(chunk.len(), packets);
        self.buffer
            .write(chunk)
            .map_err(|_| IngestError::ended("stream buffer closed"))
    }
}

fn is_aligned(data: &[u8]) -> bool {
    !data.is_empty()
        && data.len().is_multiple_of(PACKET_SIZE)
        && data.iter().step_by(PACKET_SIZE).all(|b| *b == SYNC_BYTE)
}

impl Probe {
    fn new() -> Self {
        Self {
            demux: Demuxer::new(),
            params: Default::default(),
            packets: 0,
            tracks: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.packets >= PROBE_PACKETS
            || (!self.tracks.is_empty()
                && self.tracks.iter().all(|t| {
                    if t.kind == "video" {
                        t.width > 0
                    } else {
                        t.sample_rate > 0 || t.codec != "aac"
                    }
                }))
    }

    /// Feed a chunk; returns the track list when it changed.
    fn feed(&mut self, chunk: &[u8]) -> Option<Vec<TrackInfo>> {
        self.packets += (chunk.len() / PACKET_SIZE) as u64;
        self.demux.push(chunk);
        let before = self.tracks.clone();
        while let Some(ev) = self.demux.pull() {
            match ev {
                Event::ProgramChanged(p) => {
                    self.tracks = p.tracks.iter().map(track_info).collect();
                }
                Event::Params(change) => self.apply(&change),
                Event::AccessUnit(au) => {
                    if au.keyframe
                        && let Ok(Some(change)) = self.params.observe(&au)
                    {
                        self.apply(&change);
                    }
                }
                _ => {}
            }
        }
        (self.tracks != before).then(|| self.tracks.clone())
    }

    fn apply(&mut self, change: &ParamsChanged) {
        if let Some(t) = self.tracks.iter_mut().find(|t| t.pid == change.track) {
            match &change.params {
                TrackParams::Video(v) => {
                    t.width = v.width;
                    t.height = v.height;
                }
                TrackParams::Audio(a) => {
                    t.sample_rate = a.sample_rate;
                    t.channels = a.channels;
                }
            }
        }
    }
}

fn track_info(t: &Track) -> TrackInfo {
    TrackInfo {
        pid: t.id,
        kind: match t.codec.kind() {
            os_av::TrackKind::Video => "video",
            os_av::TrackKind::Audio => "audio",
        },
        codec: t.codec.name(),
        width: 0,
        height: 0,
        sample_rate: 0,
        channels: 0,
    }
}

/// Muxes access units to TS and writes them through a [`TsEmitter`], owned
/// (`AuEmitter::new(ts)`) or borrowed (`AuEmitter::new(&mut ts)`, as readers
/// get it in `run`).
pub struct AuEmitter<T = TsEmitter> {
    muxer: Muxer,
    ts: T,
    scratch: BytesMut,
}

impl<T: BorrowMut<TsEmitter>> AuEmitter<T> {
    pub fn new(ts: T) -> Self {
        Self {
            muxer: Muxer::new(Default::default()),
            ts,
            scratch: BytesMut::with_capacity(64 << 10),
        }
    }

    /// Declare the tracks (before the first unit, and whenever they change).
    pub fn set_tracks(&mut self, tracks: &[Track]) -> Result<(), IngestError> {
        self.muxer
            .set_tracks(tracks)
            .map_err(|e| IngestError::protocol(format!("unsupported track layout: {e}")))
    }

    /// Decoder parameters appeared or changed (AAC needs them for ADTS).
    pub fn set_params(&mut self, change: &ParamsChanged) -> Result<(), IngestError> {
        self.muxer
            .set_params(change)
            .map_err(|e| IngestError::protocol(format!("track parameters: {e}")))
    }

    pub fn write(&mut self, au: &AccessUnit) -> Result<(), IngestError> {
        self.muxer
            .write(au, &mut self.scratch)
            .map_err(|e| IngestError::protocol(format!("muxing: {e}")))?;
        // One chunk per video access unit (or when enough audio gathered):
        // the hub cuts at keyframes itself.
        if au.codec.kind() == os_av::TrackKind::Video || self.scratch.len() >= CHUNK_TARGET {
            let chunk = self.scratch.split().freeze();
            self.ts.borrow_mut().push_bytes(chunk)?;
        }
        Ok(())
    }

    /// The next unit starts a new timeline.
    pub fn discontinuity(&mut self) {
        self.scratch.clear();
        self.ts.borrow_mut().discontinuity();
    }

    pub fn flush(&mut self) -> Result<(), IngestError> {
        if !self.scratch.is_empty() {
            let chunk = self.scratch.split().freeze();
            self.ts.borrow_mut().push_bytes(chunk)?;
        }
        self.ts.borrow_mut().flush()
    }

    pub fn ts(&mut self) -> &mut TsEmitter {
        self.ts.borrow_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitter() -> (TsEmitter, Arc<Buffer>, Arc<InputStats>) {
        let buffer = Arc::new(Buffer::new("t", 1000));
        let stats = Arc::new(InputStats::default());
        (TsEmitter::new(buffer.clone(), stats.clone()), buffer, stats)
    }

    fn packets(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            let mut p = [0xFFu8; PACKET_SIZE];
            p[0] = SYNC_BYTE;
            p[1] = 0x1F;
            p[2] = 0xFF;
            p[3] = 0x10 | (i as u8 & 0x0F);
            v.extend_from_slice(&p);
        }
        v
    }

    #[test]
    fn realigns_any_chunking_and_skips_garbage() {
        let (mut e, buffer, stats) = emitter();
        let mut data = vec![1, 2, 3, 0x47, 9];
        data.extend(packets(20));
        for piece in data.chunks(50) {
            e.push(piece).unwrap_or_else(|err| panic!("{err}"));
        }
        e.flush().unwrap_or_else(|err| panic!("{err}"));
        let snap = stats.snapshot();
        assert_eq!(snap.packets, 20);
        assert_eq!(snap.bytes, 20 * PACKET_SIZE as u64);
        assert_eq!(snap.skipped_bytes, 5);
        assert_eq!(buffer.stats().bytes, 20 * PACKET_SIZE as u64);
    }

    #[test]
    fn aligned_bytes_pass_without_copy() {
        let (mut e, buffer, _) = emitter();
        let data = Bytes::from(packets(7));
        e.push_bytes(data).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(buffer.stats().bytes, 7 * PACKET_SIZE as u64);
    }
}
