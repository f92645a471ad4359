//! Sans-IO MPEG-TS demuxer: bytes in, [`Event`]s out.
//!
//! ```text
//! let mut demux = Demuxer::new();
//! demux.push(&bytes);            // any chunking, even one byte at a time
//! while let Some(ev) = demux.pull() { ... }
//! demux.flush();                 // end of input: emits the last PES of each track
//! ```
//!
//! `push` processes every complete packet immediately and queues the
//! resulting events, so the queue holds at most what one `push` produced:
//! callers bound memory by bounding the chunk they push. Partial packets are
//! kept (at most two packets' worth of bytes) until more data arrives.
//!
//! Access units follow the `os_av` payload conventions: Annex-B video (one
//! AU per PES), raw AAC frames (ADTS headers stripped, one AU per ADTS frame,
//! timestamps `PES PTS + n * samples` rescaled to 90 kHz), one AU per MP3
//! frame / AC-3 syncframe (falling back to one AU per PES payload when the
//! payload does not parse, e.g. E-AC-3), one AU per Opus packet with the TS
//! control header removed. Frames split across PES packets are reassembled.
//! An ADTS frame holding several raw data blocks stays one AU (its duration
//! counts all blocks). MP3 covers MPEG-1/2/2.5 audio layers I–III (stream
//! types 0x03/0x04).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use os_av::time::{Unwrapper, WRAP_33, rescale};
use os_av::{AccessUnit, CLOCK_HZ, Codec, ParamsChanged, Track, TrackKind, TrackParams};

use crate::audio::{self, Frame};
use crate::packet::{PACKET_SIZE, PID_PAT, SYNC_BYTE, parse_packet};
use crate::pes::{PesError, parse_pes_header};
use crate::psi::{MAX_SECTION_LENGTH, Pmt, PsiError, parse_pat, parse_pmt};
use crate::scan::contains_keyframe;

/// Limits and program selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemuxerConfig {
    /// Program number to follow; `None` follows the first program of the PAT.
    pub program: Option<u16>,
    /// Largest video PES accepted; larger ones are dropped and reported.
    pub max_video_pes: usize,
    /// Largest audio PES accepted.
    pub max_audio_pes: usize,
}

impl Default for DemuxerConfig {
    fn default() -> Self {
        Self {
            program: None,
            max_video_pes: 16 << 20,
            max_audio_pes: 1 << 20,
        }
    }
}

/// A program as announced by its PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub program_number: u16,
    pub pmt_pid: u16,
    /// PID carrying the PCR (0x1FFF when none).
    pub pcr_pid: u16,
    pub version: u8,
    /// Supported tracks in PMT order; `Track::id` is the elementary PID.
    pub tracks: Vec<Track>,
    /// Streams of the PMT that open-streamer cannot carry: `(pid, stream_type)`.
    pub unsupported: Vec<(u16, u8)>,
}

/// What kind of damage a [`Event::Corrupt`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// `transport_error_indicator` set: packet dropped.
    TransportError,
    /// Impossible adaptation field length or reserved adaptation field control.
    AdaptationField,
    /// A PES header did not parse; the PES was dropped.
    PesHeader(PesError),
    /// A PAT/PMT section failed to parse (CRC, length, ...).
    Section(PsiError),
    /// Bytes inside an audio PES that are not a frame were skipped.
    AudioFrame { skipped: usize },
}

/// Output of the demuxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The followed program appeared or its set of streams changed.
    ProgramChanged(Program),
    /// Decoder parameters of an audio track appeared or changed (emitted
    /// before the first unit that uses them). Video parameters are in-band.
    Params(ParamsChanged),
    /// One access unit.
    AccessUnit(AccessUnit),
    /// A PCR on the program's PCR PID, 27 MHz, unwrapped (same timeline as AU timestamps * 300).
    Pcr { pid: u16, pcr: i64 },
    /// The continuity counter jumped: packets were lost. The PES in progress
    /// on that PID is dropped and the next AU is flagged `discontinuity`.
    ContinuityError { pid: u16, expected: u8, found: u8 },
    /// The `discontinuity_indicator` was set on this PID.
    Discontinuity { pid: u16 },
    /// A PES grew past the configured limit and was dropped.
    PesOversize { pid: u16, size: usize },
    /// Sync was (re)acquired after skipping bytes that were not packets.
    Resync { skipped: usize },
    /// Malformed data on a PID, skipped.
    Corrupt { pid: u16, kind: Corruption },
}

const SLOT_NONE: u8 = 0;
const SLOT_PAT: u8 = 1;
const SLOT_PMT: u8 = 2;
const SLOT_PCR: u8 = 3;
const SLOT_ES: u8 = 4;
const MAX_STREAMS: usize = (u8::MAX - SLOT_ES) as usize;
const CC_UNKNOWN: u8 = 0xFF;
const MAX_AUDIO_CARRY: usize = 64 << 10;
const NUM_PIDS: usize = 0x2000;

/// Reassembly state of one elementary stream.
#[derive(Debug)]
struct Stream {
    pid: u16,
    codec: Codec,
    stream_type: u8,
    max: usize,
    buf: BytesMut,
    in_pes: bool,
    /// Total PES length once known (`usize::MAX`: unbounded).
    expected: Option<usize>,
    rai: bool,
    disc: bool,
    last_size: usize,
    last_ts: Option<(i64, i64)>,
    // Audio framing.
    carry: Vec<u8>,
    base: Option<i64>,
    base_samples: i64,
    base_rate: u32,
    params_key: Option<u32>,
}

impl Stream {
    fn new(pid: u16, codec: Codec, stream_type: u8, config: &DemuxerConfig) -> Self {
        Self {
            pid,
            codec,
            stream_type,
            max: match codec.kind() {
                TrackKind::Video => config.max_video_pes,
                TrackKind::Audio => config.max_audio_pes,
            },
            buf: BytesMut::new(),
            in_pes: false,
            expected: None,
            rai: false,
            disc: false,
            last_size: 0,
            last_ts: None,
            carry: Vec::new(),
            base: None,
            base_samples: 0,
            base_rate: 0,
            params_key: None,
        }
    }

    /// Forget the PES in progress and partial audio frames (after loss).
    fn drop_partial(&mut self) {
        self.in_pes = false;
        self.buf.clear();
        self.carry.clear();
        self.disc = true;
    }

    fn start_pes(&mut self, rai: bool) {
        self.in_pes = true;
        self.rai = rai;
        self.expected = None;
        self.buf.clear();
        // Room for a PES like the last one; allocations are amortized over
        // several PES (units are frozen slices of the same buffer) but stay
        // proportional to the data actually seen on this PID.
        let hint = (self.last_size + self.last_size / 2).clamp(4096, self.max.max(4096));
        if self.buf.capacity() < hint {
            // Several PES per allocation; once the units cut from it are
            // dropped, `reserve` reuses the same memory.
            let chunk = match self.codec.kind() {
                TrackKind::Video => (self.last_size * 8).clamp(64 << 10, 4 << 20),
                TrackKind::Audio => 64 << 10,
            };
            self.buf.reserve(hint.max(chunk));
        }
    }

    fn payload(&mut self, payload: &[u8], out: &mut Output<'_>) {
        if self.buf.len() + payload.len() > self.max {
            out.events.push_back(Event::PesOversize {
                pid: self.pid,
                size: self.buf.len() + payload.len(),
            });
            self.drop_partial();
            return;
        }
        self.buf.extend_from_slice(payload);
        if self.expected.is_none() {
            if let Some(h) = self.buf.first_chunk::<6>() {
                let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
                self.expected = Some(if len == 0 { usize::MAX } else { 6 + len });
            }
        }
        if let Some(expected) = self.expected {
            if self.buf.len() >= expected {
                self.finish(out);
            }
        }
    }

    /// Turn the buffered PES into access units.
    fn finish(&mut self, out: &mut Output<'_>) {
        self.in_pes = false;
        let len = self.buf.len();
        self.last_size = len;
        let header = match parse_pes_header(&self.buf) {
            Ok(h) => h,
            Err(e) => {
                self.buf.clear();
                out.corrupt(self.pid, Corruption::PesHeader(e));
                return;
            }
        };
        let end = header.total_len().map_or(len, |t| t.min(len));
        if header.header_len > end {
            self.buf.clear();
            out.corrupt(self.pid, Corruption::PesHeader(PesError::Truncated));
            return;
        }
        // Cut the payload out of the buffer without an extra reference count
        // round trip: drop the header and any bytes past the PES length.
        let mut data = self.buf.split_to(end);
        self.buf.clear();
        let payload = data.split_off(header.header_len).freeze();
        let ts = header.pts.map(|pts| {
            let raw_dts = header.dts.unwrap_or(pts);
            let dts = out.clock.unwrap(raw_dts);
            let mut cts = (pts.wrapping_sub(raw_dts) & (WRAP_33 as u64 - 1)) as i64;
            if cts >= WRAP_33 / 2 {
                cts -= WRAP_33;
            }
            (dts + cts, dts)
        });
        match self.codec.kind() {
            TrackKind::Video => self.video(payload, ts, out),
            TrackKind::Audio => self.audio(payload, ts.map(|(pts, _)| pts), out),
        }
    }

    fn video(&mut self, payload: Bytes, ts: Option<(i64, i64)>, out: &mut Output<'_>) {
        let Some((pts, dts)) = ts.or(self.last_ts) else {
            return;
        };
        self.last_ts = Some((pts, dts));
        if payload.is_empty() {
            return;
        }
        let keyframe = self.rai || contains_keyframe(self.codec, &payload);
        out.events.push_back(Event::AccessUnit(AccessUnit {
            track: self.pid,
            codec: self.codec,
            pts,
            dts,
            keyframe,
            discontinuity: std::mem::take(&mut self.disc),
            payload,
        }));
    }

    fn audio(&mut self, payload: Bytes, pes_pts: Option<i64>, out: &mut Output<'_>) {
        let carry_len = self.carry.len();
        let data = if carry_len == 0 {
            payload
        } else {
            let mut joined = BytesMut::with_capacity(carry_len + payload.len());
            joined.extend_from_slice(&self.carry);
            joined.extend_from_slice(&payload);
            self.carry.clear();
            joined.freeze()
        };
        let mut pos = 0;
        let mut found = false;
        let mut skipped = 0;
        let mut pes_pts = pes_pts;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            match audio::frame(self.codec, rest) {
                Frame::Ok(info) => {
                    found = true;
                    if pos >= carry_len {
                        if let Some(pts) = pes_pts.take() {
                            self.base = Some(pts);
                            self.base_samples = 0;
                            self.base_rate = info.rate;
                        }
                    }
                    if info.rate != self.base_rate {
                        if let Some(base) = self.base {
                            self.base =
                                Some(base + rescale(self.base_samples, self.base_rate, CLOCK_HZ));
                        }
                        self.base_samples = 0;
                        self.base_rate = info.rate;
                    }
                    if self.params_key != Some(info.key) {
                        if let Some(params) = audio::params(self.codec, rest, &info) {
                            out.events.push_back(Event::Params(ParamsChanged {
                                track: self.pid,
                                codec: self.codec,
                                params: TrackParams::Audio(params),
                            }));
                        }
                        self.params_key = Some(info.key);
                    }
                    let (start, end) = (pos + info.skip, pos + info.len);
                    if let (Some(base), true) = (self.base, start <= end && end <= data.len()) {
                        let ts = base + rescale(self.base_samples, info.rate, CLOCK_HZ);
                        out.events.push_back(Event::AccessUnit(AccessUnit {
                            track: self.pid,
                            codec: self.codec,
                            pts: ts,
                            dts: ts,
                            keyframe: true,
                            discontinuity: std::mem::take(&mut self.disc),
                            payload: data.slice(start..end),
                        }));
                    }
                    self.base_samples += i64::from(info.samples);
                    pos += info.len;
                }
                Frame::NeedMore => {
                    if rest.len() <= MAX_AUDIO_CARRY {
                        self.carry.extend_from_slice(rest);
                    }
                    pos = data.len();
                }
                Frame::Invalid => {
                    let sync = audio::sync_byte(self.codec);
                    let skip = rest
                        .get(1..)
                        .and_then(|r| r.iter().position(|&b| b == sync))
                        .map_or(rest.len(), |p| p + 1);
                    pos += skip;
                    skipped += skip;
                }
            }
        }
        let fallback = matches!(self.codec, Codec::Mp3 | Codec::Ac3);
        if !found && fallback && self.carry.is_empty() && !data.is_empty() {
            // Not splittable (e.g. E-AC-3 under an AC-3 stream type): one AU per PES.
            if let Some(ts) = pes_pts.or(self.base) {
                out.events.push_back(Event::AccessUnit(AccessUnit {
                    track: self.pid,
                    codec: self.codec,
                    pts: ts,
                    dts: ts,
                    keyframe: true,
                    discontinuity: std::mem::take(&mut self.disc),
                    payload: data,
                }));
            }
        } else if skipped > 0 {
            out.corrupt(self.pid, Corruption::AudioFrame { skipped });
        }
    }
}

/// Event sink plus the shared clock, borrowed next to a stream.
struct Output<'a> {
    events: &'a mut VecDeque<Event>,
    clock: &'a mut Unwrapper,
}

impl Output<'_> {
    fn corrupt(&mut self, pid: u16, kind: Corruption) {
        self.events.push_back(Event::Corrupt { pid, kind });
    }
}

/// Reassembly buffer of one PSI PID.
#[derive(Debug, Default)]
struct Section {
    buf: Vec<u8>,
    active: bool,
}

impl Section {
    fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }
}

/// The MPEG-TS demuxer. See the module documentation.
#[derive(Debug)]
pub struct Demuxer {
    config: DemuxerConfig,
    pending: Vec<u8>,
    synced: bool,
    skipped: usize,
    slots: Vec<u8>,
    cc: Vec<u8>,
    pat: Section,
    pmt: Section,
    /// Last PAT/PMT sections applied: repetitions are skipped without a CRC check.
    last_pat: Vec<u8>,
    last_pmt: Vec<u8>,
    pmt_pid: Option<u16>,
    program_number: Option<u16>,
    pmt_content: Option<Pmt>,
    program: Option<Program>,
    pcr_pid: Option<u16>,
    streams: Vec<Stream>,
    clock: Unwrapper,
    events: VecDeque<Event>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    pub fn new() -> Self {
        Self::with_config(DemuxerConfig::default())
    }

    pub fn with_config(config: DemuxerConfig) -> Self {
        let mut slots = vec![SLOT_NONE; NUM_PIDS];
        if let Some(s) = slots.get_mut(usize::from(PID_PAT)) {
            *s = SLOT_PAT;
        }
        Self {
            config,
            pending: Vec::with_capacity(3 * PACKET_SIZE),
            synced: false,
            skipped: 0,
            slots,
            cc: vec![CC_UNKNOWN; NUM_PIDS],
            pat: Section::default(),
            pmt: Section::default(),
            last_pat: Vec::new(),
            last_pmt: Vec::new(),
            pmt_pid: None,
            program_number: None,
            pmt_content: None,
            program: None,
            pcr_pid: None,
            streams: Vec::new(),
            clock: Unwrapper::new(),
            events: VecDeque::new(),
        }
    }

    /// The program currently followed, once its PMT was seen.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_ref()
    }

    /// Feed bytes. Never fails: partial input waits for more, bad input is
    /// skipped and reported as events.
    pub fn push(&mut self, data: &[u8]) {
        let mut data = data;
        while !self.pending.is_empty() && !data.is_empty() {
            let target = if self.synced {
                PACKET_SIZE
            } else {
                2 * PACKET_SIZE + 1
            };
            let want = target.saturating_sub(self.pending.len()).max(1);
            let (head, tail) = data.split_at(want.min(data.len()));
            self.pending.extend_from_slice(head);
            data = tail;
            let pending = std::mem::take(&mut self.pending);
            let used = self.process(&pending);
            self.pending = pending;
            self.pending.drain(..used.min(self.pending.len()));
        }
        if self.pending.is_empty() && !data.is_empty() {
            let used = self.process(data);
            self.pending
                .extend_from_slice(data.get(used..).unwrap_or_default());
        }
    }

    /// Next event, if any.
    pub fn pull(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Number of queued events.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// End of input: process a trailing packet that could not be confirmed
    /// by the next sync byte, then emit the PES in progress on every track.
    pub fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if let Some(pkt) = pending.first_chunk::<PACKET_SIZE>() {
            if pkt[0] == SYNC_BYTE {
                self.packet(pkt);
            }
        }
        let Self {
            streams,
            events,
            clock,
            ..
        } = self;
        let mut out = Output { events, clock };
        for s in streams.iter_mut() {
            if s.in_pes {
                s.finish(&mut out);
            }
            s.carry.clear();
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// Process as many packets of `data` as possible; returns bytes consumed.
    fn process(&mut self, data: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            let Some(rest) = data.get(pos..) else {
                return pos;
            };
            if self.synced {
                // Fast path: aligned packets.
                let mut chunks = rest.chunks_exact(PACKET_SIZE);
                let mut advanced = 0;
                for chunk in chunks.by_ref() {
                    match chunk.first_chunk::<PACKET_SIZE>() {
                        Some(pkt) if pkt[0] == SYNC_BYTE => {
                            self.packet(pkt);
                            advanced += PACKET_SIZE;
                        }
                        _ => {
                            self.synced = false;
                            break;
                        }
                    }
                }
                pos += advanced;
                if self.synced {
                    return pos;
                }
                continue;
            }
            // Hunt for a sync byte confirmed by the next packet's.
            let mut i = 0;
            loop {
                match (rest.get(i), rest.get(i + PACKET_SIZE)) {
                    (Some(&SYNC_BYTE), Some(&SYNC_BYTE)) => {
                        self.synced = true;
                        self.skipped += i;
                        if self.skipped > 0 {
                            self.events.push_back(Event::Resync {
                                skipped: self.skipped,
                            });
                        }
                        self.skipped = 0;
                        pos += i;
                        break;
                    }
                    (Some(_), Some(_)) => i += 1,
                    _ => {
                        // Undecided from here on: keep the rest for later.
                        self.skipped += i;
                        return pos + i;
                    }
                }
            }
        }
    }

    #[inline]
    fn packet(&mut self, pkt: &[u8; PACKET_SIZE]) {
        let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
        let slot = self
            .slots
            .get(usize::from(pid))
            .copied()
            .unwrap_or(SLOT_NONE);
        if slot == SLOT_NONE {
            return;
        }
        let Some(p) = parse_packet(pkt) else {
            self.events.push_back(Event::Corrupt {
                pid,
                kind: Corruption::AdaptationField,
            });
            return;
        };
        if p.header.transport_error {
            self.events.push_back(Event::Corrupt {
                pid,
                kind: Corruption::TransportError,
            });
            return;
        }
        if p.adaptation.discontinuity {
            self.events.push_back(Event::Discontinuity { pid });
            if let Some(s) = self.stream_mut(slot) {
                s.disc = true;
                s.carry.clear();
            }
        }
        if p.header.has_payload {
            let cc = p.header.continuity_counter;
            if let Some(last) = self.cc.get_mut(usize::from(pid)) {
                let prev = *last;
                *last = cc;
                if prev != CC_UNKNOWN && !p.adaptation.discontinuity {
                    if cc == prev {
                        return; // duplicate packet
                    }
                    let expected = (prev + 1) & 0x0F;
                    if cc != expected {
                        self.events.push_back(Event::ContinuityError {
                            pid,
                            expected,
                            found: cc,
                        });
                        match slot {
                            SLOT_PAT => self.pat.reset(),
                            SLOT_PMT => self.pmt.reset(),
                            _ => {
                                if let Some(s) = self.stream_mut(slot) {
                                    s.drop_partial();
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(pcr) = p.adaptation.pcr {
            if Some(pid) == self.pcr_pid {
                let base = self.clock.unwrap(pcr / 300);
                self.events.push_back(Event::Pcr {
                    pid,
                    pcr: base * 300 + (pcr % 300) as i64,
                });
            }
        }
        if !p.header.has_payload {
            return;
        }
        let payload = pkt.get(p.payload_offset..).unwrap_or_default();
        let pusi = p.header.payload_unit_start;
        match slot {
            SLOT_PAT | SLOT_PMT => self.psi_payload(slot, pusi, payload),
            SLOT_PCR => {}
            _ => {
                let Self {
                    streams,
                    events,
                    clock,
                    ..
                } = self;
                let Some(s) = streams.get_mut(usize::from(slot - SLOT_ES)) else {
                    return;
                };
                let mut out = Output { events, clock };
                if pusi {
                    if s.in_pes {
                        s.finish(&mut out);
                    }
                    s.start_pes(p.adaptation.random_access);
                } else if !s.in_pes {
                    return;
                }
                s.payload(payload, &mut out);
            }
        }
    }

    fn stream_mut(&mut self, slot: u8) -> Option<&mut Stream> {
        slot.checked_sub(SLOT_ES)
            .and_then(|i| self.streams.get_mut(usize::from(i)))
    }

    fn psi_payload(&mut self, slot: u8, pusi: bool, payload: &[u8]) {
        let mut sec = std::mem::take(if slot == SLOT_PAT {
            &mut self.pat
        } else {
            &mut self.pmt
        });
        if pusi {
            match payload.split_first() {
                Some((&ptr, rest)) if usize::from(ptr) <= rest.len() => {
                    let (tail, rest) = rest.split_at(usize::from(ptr));
                    if sec.active {
                        sec.buf.extend_from_slice(tail);
                        self.drain_sections(slot, &mut sec);
                    }
                    sec.buf.clear();
                    sec.buf.extend_from_slice(rest);
                    sec.active = true;
                    self.drain_sections(slot, &mut sec);
                }
                _ => {
                    sec.reset();
                    let pid = if slot == SLOT_PAT {
                        PID_PAT
                    } else {
                        self.pmt_pid.unwrap_or_default()
                    };
                    self.events.push_back(Event::Corrupt {
                        pid,
                        kind: Corruption::Section(PsiError::Truncated),
                    });
                }
            }
        } else if sec.active {
            sec.buf.extend_from_slice(payload);
            self.drain_sections(slot, &mut sec);
        }
        *(if slot == SLOT_PAT {
            &mut self.pat
        } else {
            &mut self.pmt
        }) = sec;
    }

    fn drain_sections(&mut self, slot: u8, sec: &mut Section) {
        while let Some(h) = sec.buf.first_chunk::<3>() {
            if h[0] == 0xFF {
                sec.reset();
                return;
            }
            let len = 3 + ((usize::from(h[1] & 0x0F) << 8) | usize::from(h[2]));
            if len > 3 + MAX_SECTION_LENGTH {
                sec.reset();
                return;
            }
            let Some(section) = sec.buf.get(..len) else {
                return;
            };
            if slot == SLOT_PAT {
                self.on_pat(section);
            } else {
                self.on_pmt(section);
            }
            sec.buf.drain(..len);
        }
    }

    fn on_pat(&mut self, section: &[u8]) {
        if section.first() != Some(&0x00) || section == self.last_pat.as_slice() {
            return;
        }
        let entries = match parse_pat(section) {
            Ok(e) => e,
            Err(e) => {
                self.events.push_back(Event::Corrupt {
                    pid: PID_PAT,
                    kind: Corruption::Section(e),
                });
                return;
            }
        };
        let chosen = match self.config.program {
            Some(n) => entries.iter().find(|e| e.program_number == n),
            None => entries.first(),
        };
        self.last_pat.clear();
        self.last_pat.extend_from_slice(section);
        let Some(entry) = chosen.copied() else {
            return;
        };
        self.program_number = Some(entry.program_number);
        if self.pmt_pid == Some(entry.pmt_pid) || entry.pmt_pid == PID_PAT {
            return;
        }
        if let Some(old) = self.pmt_pid {
            self.set_slot(old, SLOT_NONE);
        }
        self.pmt_pid = Some(entry.pmt_pid);
        self.pmt.reset();
        self.last_pmt.clear();
        if let Some(c) = self.cc.get_mut(usize::from(entry.pmt_pid)) {
            *c = CC_UNKNOWN;
        }
        // A PMT PID that was an ES PID of the previous program wins over it.
        self.set_slot(entry.pmt_pid, SLOT_PMT);
    }

    fn on_pmt(&mut self, section: &[u8]) {
        if section.first() != Some(&0x02) || section == self.last_pmt.as_slice() {
            return;
        }
        let pmt = match parse_pmt(section) {
            Ok(p) => p,
            Err(e) => {
                self.events.push_back(Event::Corrupt {
                    pid: self.pmt_pid.unwrap_or_default(),
                    kind: Corruption::Section(e),
                });
                return;
            }
        };
        if Some(pmt.program_number) != self.program_number {
            return;
        }
        self.last_pmt.clear();
        self.last_pmt.extend_from_slice(section);
        let same = self
            .pmt_content
            .as_ref()
            .is_some_and(|old| old.pcr_pid == pmt.pcr_pid && old.streams == pmt.streams);
        if same {
            return;
        }
        self.apply_program(pmt);
    }

    fn set_slot(&mut self, pid: u16, slot: u8) {
        if let Some(s) = self.slots.get_mut(usize::from(pid)) {
            *s = slot;
        }
    }

    fn apply_program(&mut self, pmt: Pmt) {
        let pmt_pid = self.pmt_pid.unwrap_or_default();
        let first_program = self.program.is_none();
        // Keep streams whose PID and codec are unchanged; flush the others.
        let mut old = std::mem::take(&mut self.streams);
        let mut streams = Vec::new();
        let mut tracks = Vec::new();
        let mut unsupported = Vec::new();
        for es in &pmt.streams {
            let valid_pid = es.pid != PID_PAT && es.pid < 0x1FFF && es.pid != pmt_pid;
            let duplicate = streams.iter().any(|s: &Stream| s.pid == es.pid);
            match es.codec {
                Some(codec) if valid_pid && !duplicate && streams.len() < MAX_STREAMS => {
                    let kept = old
                        .iter()
                        .position(|s| {
                            s.pid == es.pid && s.codec == codec && s.stream_type == es.stream_type
                        })
                        .map(|i| old.swap_remove(i));
                    let stream = kept.unwrap_or_else(|| {
                        let mut s = Stream::new(es.pid, codec, es.stream_type, &self.config);
                        s.disc = !first_program;
                        s
                    });
                    tracks.push(Track {
                        id: es.pid,
                        codec,
                        params: None,
                    });
                    streams.push(stream);
                }
                _ => unsupported.push((es.pid, es.stream_type)),
            }
        }
        {
            let mut out = Output {
                events: &mut self.events,
                clock: &mut self.clock,
            };
            for s in old.iter_mut() {
                if s.in_pes {
                    s.finish(&mut out);
                }
            }
        }
        // Rebuild the PID map.
        for s in &old {
            if self
                .slots
                .get(usize::from(s.pid))
                .is_some_and(|&v| v >= SLOT_ES)
            {
                self.set_slot(s.pid, SLOT_NONE);
            }
            if let Some(c) = self.cc.get_mut(usize::from(s.pid)) {
                *c = CC_UNKNOWN;
            }
        }
        if let Some(pcr) = self.pcr_pid {
            if self.slots.get(usize::from(pcr)) == Some(&SLOT_PCR) {
                self.set_slot(pcr, SLOT_NONE);
            }
        }
        for (i, s) in streams.iter().enumerate() {
            self.set_slot(s.pid, SLOT_ES + i as u8);
        }
        self.pcr_pid = (pmt.pcr_pid < 0x1FFF).then_some(pmt.pcr_pid);
        if let Some(pcr) = self.pcr_pid {
            if self.slots.get(usize::from(pcr)) == Some(&SLOT_NONE) {
                self.set_slot(pcr, SLOT_PCR);
            }
        }
        self.streams = streams;
        let program = Program {
            program_number: pmt.program_number,
            pmt_pid,
            pcr_pid: pmt.pcr_pid,
            version: pmt.version,
            tracks,
            unsupported,
        };
        self.program = Some(program.clone());
        self.pmt_content = Some(pmt);
        self.events.push_back(Event::ProgramChanged(program));
    }
}
