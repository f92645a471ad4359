//! Shared by the byte-stream readers (file, S3, HLS, HTTP-TS): realign to
//! whole TS packets, pace them in real time by the stream clock, and, for
//! looped sources, rewrite PCR/PTS/DTS and continuity counters so every pass
//! continues the timeline of the one before.
//!
//! [`TsPipe`] owns one byte buffer: bytes go in (`feed`, or read straight into
//! [`TsPipe::buffer`]), whole packets go out to the [`TsEmitter`] as zero-copy
//! slices of that buffer. Memory is bounded by what the caller feeds at once
//! plus at most [`MAX_UNSYNCED`] bytes of unsynchronised input.
//!
//! Pacing: the clock is the PCR of the first PID that carries one; until a
//! PCR shows up (or in streams without any) it is the DTS (else PTS) of the
//! first PID with PES timestamps. The first clock value maps to "now"; data
//! whose clock maps to the future waits (tokio sleep) before it is written.
//! The mapping is reset when the clock jumps by more than [`MAX_CLOCK_STEP`]
//! or goes backwards, and when the source falls more than [`MAX_LATE`] behind
//! (so a stall never turns into a long burst).
//!
//! Looping: see [`Looper`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use os_mpegts::packet::{PID_NULL, parse_packet, write_pcr};
use os_mpegts::pes::{parse_timestamp, write_timestamp};
use os_mpegts::{Demuxer, Event, PACKET_SIZE, SYNC_BYTE};
use tokio::time::Instant;

use crate::emit::TsEmitter;
use crate::error::IngestError;
use crate::stats::InputStats;

/// Bytes skipped without finding sync after which the source is declared
/// not to be MPEG-TS.
pub(crate) const MAX_UNSYNCED: usize = 64 << 10;
/// A sync byte is taken as a packet start when the next this-many packets
/// start with one too (fewer let periodic text false-lock).
const SYNC_CONFIRMATIONS: usize = 4;
/// A clock step larger than this (or any step backwards) restarts the mapping.
const MAX_CLOCK_STEP: u64 = PCR_HZ;
/// Falling further behind the clock than this restarts the mapping.
const MAX_LATE: Duration = Duration::from_secs(1);
/// Data due less than this far in the future is written without sleeping.
const MIN_SLEEP: Duration = Duration::from_millis(2);
/// How much [`TsPipe::buffer`] makes room for before each read.
pub(crate) const READ_SIZE: usize = 64 << 10;

const PCR_HZ: u64 = 27_000_000;
/// PCR values wrap at 2^33 * 300 (27 MHz).
const PCR_MODULUS: u64 = (1 << 33) * 300;
/// PTS/DTS wrap at 2^33 (90 kHz).
const TS_MODULUS: u64 = 1 << 33;
const TS_MASK: u64 = TS_MODULUS - 1;
const NUM_PIDS: usize = 0x2000;
/// "No value" in the per-PID continuity tables.
const CC_NONE: u8 = 0xFF;

/// Realigns, paces and (when looping) rewrites one source's packets.
pub(crate) struct TsPipe<'a> {
    stats: &'a InputStats,
    buf: BytesMut,
    /// `buf` starts at a confirmed packet boundary.
    locked: bool,
    /// Bytes skipped since the last sync.
    unsynced: usize,
    /// Packets written in the current pass.
    pass_packets: u64,
    clock: Option<Clock>,
    looper: Option<Box<Looper>>,
}

impl<'a> TsPipe<'a> {
    /// `pace`: hold data back to real time. `looping`: the source will be
    /// replayed with [`TsPipe::next_pass`].
    pub(crate) fn new(stats: &'a InputStats, pace: bool, looping: bool) -> Self {
        Self {
            stats,
            buf: BytesMut::new(),
            locked: false,
            unsynced: 0,
            pass_packets: 0,
            clock: pace.then(Clock::default),
            looper: looping.then(|| Box::new(Looper::new())),
        }
    }

    /// The input buffer with room for [`READ_SIZE`] more bytes, for readers
    /// that read straight into it; call [`TsPipe::drain`] after each read.
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        self.buf.reserve(READ_SIZE);
        &mut self.buf
    }

    /// Append bytes (any chunking) and write out the whole packets.
    pub(crate) async fn feed(
        &mut self,
        data: &[u8],
        out: &mut TsEmitter,
    ) -> Result<(), IngestError> {
        self.buf.extend_from_slice(data);
        self.drain(out).await
    }

    /// Write out the whole packets in the buffer, pacing them.
    pub(crate) async fn drain(&mut self, out: &mut TsEmitter) -> Result<(), IngestError> {
        self.drain_inner(out, false).await
    }

    /// The source (or one pass of a looped source) ended: write what is
    /// left, drop a trailing partial packet. Fails when the whole pass held
    /// no TS packet.
    pub(crate) async fn end_pass(&mut self, out: &mut TsEmitter) -> Result<(), IngestError> {
        self.drain_inner(out, true).await?;
        if !self.buf.is_empty() {
            self.stats.record_skipped(self.buf.len());
            self.buf.clear();
        }
        self.locked = false;
        if self.pass_packets == 0 {
            return Err(IngestError::protocol(
                "no MPEG-TS packets found (not an MPEG-TS source?)",
            ));
        }
        Ok(())
    }

    /// Start the next pass of a looped source: later packets get their
    /// timestamps shifted to continue where this pass ended. Fails when the
    /// pass had no timestamps to continue from.
    pub(crate) fn next_pass(&mut self) -> Result<(), IngestError> {
        self.pass_packets = 0;
        match &mut self.looper {
            Some(l) => l.next_pass(),
            None => Ok(()),
        }
    }

    /// The next bytes start a new timeline (HLS discontinuity, skipped
    /// segment): drop any partial packet and restart the clock mapping.
    pub(crate) fn restart(&mut self) {
        if !self.buf.is_empty() {
            self.stats.record_skipped(self.buf.len());
            self.buf.clear();
        }
        self.locked = false;
        self.unsynced = 0;
        if let Some(c) = &mut self.clock {
            *c = Clock::default();
        }
    }

    async fn drain_inner(&mut self, out: &mut TsEmitter, at_end: bool) -> Result<(), IngestError> {
        loop {
            if !self.locked && !self.sync(at_end)? {
                return Ok(());
            }
            // Whole packets from the start of `buf` that keep sync.
            let mut whole = 0;
            while whole + PACKET_SIZE <= self.buf.len() && self.buf[whole] == SYNC_BYTE {
                whole += PACKET_SIZE;
            }
            if whole == 0 {
                if self.buf.len() >= PACKET_SIZE {
                    // Sync lost at the buffer start: search again.
                    self.locked = false;
                    continue;
                }
                return Ok(());
            }
            self.write_packets(whole, out).await?;
            if self.buf.len() < PACKET_SIZE || self.buf[0] == SYNC_BYTE {
                // Only a partial packet (or nothing) is left.
                return Ok(());
            }
            self.locked = false;
        }
    }

    /// Process and write the first `whole` bytes of `buf` (whole packets),
    /// sleeping before packets whose clock is ahead of the wall clock.
    async fn write_packets(
        &mut self,
        mut whole: usize,
        out: &mut TsEmitter,
    ) -> Result<(), IngestError> {
        let mut i = 0;
        while i < whole {
            let Some(pkt) = self
                .buf
                .get_mut(i..i + PACKET_SIZE)
                .and_then(|p| <&mut [u8; PACKET_SIZE]>::try_from(p).ok())
            else {
                break;
            };
            if let Some(l) = &mut self.looper {
                l.process(pkt);
            }
            let due = match &mut self.clock {
                Some(c) => c.due(pkt, Instant::now()),
                None => None,
            };
            if let Some(due) = due {
                if i > 0 {
                    let chunk = self.buf.split_to(i).freeze();
                    whole -= i;
                    i = 0;
                    self.write(chunk, out)?;
                }
                tokio::time::sleep_until(due).await;
            }
            i += PACKET_SIZE;
        }
        if whole > 0 {
            let chunk = self.buf.split_to(whole).freeze();
            self.write(chunk, out)?;
        }
        Ok(())
    }

    fn write(&mut self, chunk: Bytes, out: &mut TsEmitter) -> Result<(), IngestError> {
        self.pass_packets += (chunk.len() / PACKET_SIZE) as u64;
        if let Some(l) = &mut self.looper {
            l.observe(&chunk);
        }
        out.push_bytes(chunk)
    }

    /// Find a packet boundary: a sync byte confirmed by the sync bytes of the
    /// next [`SYNC_CONFIRMATIONS`] packets (at the end of the source, by
    /// those that exist). Drops the bytes before it. Returns false when more
    /// data is needed.
    fn sync(&mut self, at_end: bool) -> Result<bool, IngestError> {
        let len = self.buf.len();
        let mut found = None;
        let mut start = 0;
        while start < len {
            if self.buf[start] == SYNC_BYTE {
                let last = start + SYNC_CONFIRMATIONS * PACKET_SIZE;
                if (start..=last)
                    .step_by(PACKET_SIZE)
                    .all(|p| p >= len || self.buf[p] == SYNC_BYTE)
                {
                    let complete = last < len;
                    if complete || (at_end && start + PACKET_SIZE <= len) {
                        found = Some(start);
                    }
                    // Otherwise wait for more bytes to confirm this one.
                    break;
                }
            }
            start += 1;
        }
        if start > 0 {
            self.stats.record_skipped(start);
            let _ = self.buf.split_to(start);
            self.unsynced += start;
        }
        if self.unsynced > MAX_UNSYNCED {
            return Err(IngestError::protocol(format!(
                "no MPEG-TS sync in {} bytes (not an MPEG-TS source?)",
                self.unsynced
            )));
        }
        if found.is_some() {
            self.locked = true;
            self.unsynced = 0;
        }
        Ok(found.is_some())
    }
}

/// Byte offsets of the PTS and DTS fields of a PES header that starts in
/// this packet, when the whole timestamp part of the header is inside it.
fn pes_timestamps(
    pkt: &[u8; PACKET_SIZE],
    payload_offset: usize,
) -> Option<(usize, Option<usize>)> {
    let p = payload_offset;
    let h = pkt.get(p..p + 9)?;
    if h[..3] != [0, 0, 1] || matches!(h[3], 0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF)
    {
        return None;
    }
    if h[6] & 0xC0 != 0x80 {
        return None;
    }
    let flags = h[7] >> 6;
    let header_data = usize::from(h[8]);
    match flags {
        0b10 if header_data >= 5 && p + 14 <= PACKET_SIZE => Some((p + 9, None)),
        0b11 if header_data >= 10 && p + 19 <= PACKET_SIZE => Some((p + 9, Some(p + 14))),
        _ => None,
    }
}

fn read_ts(pkt: &[u8; PACKET_SIZE], at: usize) -> u64 {
    parse_timestamp([pkt[at], pkt[at + 1], pkt[at + 2], pkt[at + 3], pkt[at + 4]])
}

fn write_ts(pkt: &mut [u8; PACKET_SIZE], at: usize, ts: u64) {
    let prefix = pkt[at] >> 4;
    pkt[at..at + 5].copy_from_slice(&write_timestamp(prefix, ts));
}

/// The PCR field of a packet, if it has one, is at bytes 6..12.
const PCR_AT: usize = 6;

/// Which clock the pacer follows, and the mapping of that clock to wall time.
#[derive(Default)]
struct Clock {
    source: Source,
    /// Last clock value (27 MHz, wrapping at [`PCR_MODULUS`]).
    last: Option<u64>,
    /// Clock position, unwrapped (27 MHz since the first value).
    pos: u64,
    /// `pos` that maps to the instant.
    anchor: Option<(u64, Instant)>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Source {
    #[default]
    Unknown,
    Pcr(u16),
    Pes(u16),
}

impl Clock {
    /// When this packet may be written, if that is later than `now`.
    fn due(&mut self, pkt: &[u8; PACKET_SIZE], now: Instant) -> Option<Instant> {
        let value = self.value(pkt)?;
        let due = self.map(value, now);
        (due > now + MIN_SLEEP).then_some(due)
    }

    /// The clock value (27 MHz) this packet carries for the followed source.
    fn value(&mut self, pkt: &[u8; PACKET_SIZE]) -> Option<u64> {
        let p = parse_packet(pkt)?;
        let pid = p.header.pid;
        if let Some(pcr) = p.adaptation.pcr {
            match self.source {
                Source::Pcr(followed) if followed != pid => return None,
                Source::Pcr(_) => {}
                _ => {
                    // PCR wins over PES timestamps as soon as one appears.
                    self.source = Source::Pcr(pid);
                    self.last = None;
                    self.anchor = None;
                }
            }
            return Some(pcr);
        }
        if matches!(self.source, Source::Pcr(_)) || !p.header.payload_unit_start {
            return None;
        }
        let (pts_at, dts_at) = pes_timestamps(pkt, p.payload_offset)?;
        match self.source {
            Source::Pes(followed) if followed != pid => return None,
            Source::Unknown => self.source = Source::Pes(pid),
            _ => {}
        }
        Some(read_ts(pkt, dts_at.unwrap_or(pts_at)) * 300)
    }

    /// The instant at which clock `value` is due.
    fn map(&mut self, value: u64, now: Instant) -> Instant {
        if let Some(last) = self.last {
            let step = (value + PCR_MODULUS - last) % PCR_MODULUS;
            if step > MAX_CLOCK_STEP {
                // A jump forward, or any step backwards: restart the mapping.
                self.anchor = None;
            } else {
                self.pos += step;
            }
        }
        self.last = Some(value);
        let (at_pos, at) = *self.anchor.get_or_insert((self.pos, now));
        let due = at + Duration::from_nanos((self.pos - at_pos) * 1000 / 27);
        if due + MAX_LATE < now {
            self.anchor = Some((self.pos, now));
            return now;
        }
        due
    }
}

/// Continuous timestamps for looped sources.
///
/// From the second pass on, PCR, PTS and DTS are shifted by `offset` (90 kHz,
/// modulo 2^33) and the continuity counters are shifted per PID so that the
/// first packet of a PID in the new pass follows the last one written in the
/// previous pass. The hub and the players downstream therefore see one
/// uninterrupted stream: no discontinuity flag, no timestamp jump, no
/// continuity error.
///
/// The shift grows each pass by the pass's period: per track, the end of its
/// last frame (`max PTS + one frame`) minus its first PTS; the longest track
/// wins, so it continues exactly one frame after its last frame, and shorter
/// tracks leave a gap rather than overlap. The period is at least each
/// track's DTS span and the PCR span (every clock stays strictly
/// increasing). Frame-level timestamps come from demuxing what is written
/// (audio PES carry several frames), "one frame" being a track's smallest
/// DTS step (40 ms when unknown).
struct Looper {
    /// Added to every timestamp of the current pass (90 kHz).
    offset: u64,
    pass: u32,
    /// Demuxes the written stream of the current pass for its timing.
    demux: Demuxer,
    times: PassTimes,
    /// Continuity counter of the last packet written, per PID.
    last_cc: Box<[u8; NUM_PIDS]>,
    /// Shift of the continuity counters in this pass, per PID.
    cc_shift: Box<[u8; NUM_PIDS]>,
}

/// Timing of one pass (90 kHz, as demuxed: unwrapped).
#[derive(Default)]
struct PassTimes {
    pcr: Option<(i64, i64)>,
    tracks: Vec<TrackTimes>,
}

struct TrackTimes {
    id: u16,
    pts: (i64, i64),
    dts: (i64, i64),
    last_dts: i64,
    /// Smallest positive DTS step: the frame duration.
    frame: Option<i64>,
}

/// Frame duration assumed when none could be measured (40 ms).
const DEFAULT_FRAME: i64 = 3600;

impl PassTimes {
    fn observe(&mut self, event: Event) {
        match event {
            Event::AccessUnit(au) => self.unit(au.track, au.pts, au.dts),
            Event::Pcr { pcr, .. } => {
                let v = pcr / 300;
                self.pcr = Some(self.pcr.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
            }
            _ => {}
        }
    }

    fn unit(&mut self, id: u16, pts: i64, dts: i64) {
        match self.tracks.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.pts = (t.pts.0.min(pts), t.pts.1.max(pts));
                t.dts = (t.dts.0.min(dts), t.dts.1.max(dts));
                let step = dts - t.last_dts;
                if step > 0 && t.frame.is_none_or(|f| step < f) {
                    t.frame = Some(step);
                }
                t.last_dts = dts;
            }
            None => self.tracks.push(TrackTimes {
                id,
                pts: (pts, pts),
                dts: (dts, dts),
                last_dts: dts,
                frame: None,
            }),
        }
    }

    /// How far the next pass must be shifted past this one (90 kHz).
    fn period(&self) -> Option<u64> {
        let tracks = self.tracks.iter().map(|t| {
            let frame = t.frame.unwrap_or(DEFAULT_FRAME).min(90_000);
            (t.pts.1 + frame - t.pts.0).max(t.dts.1 - t.dts.0 + 1)
        });
        let pcr = self.pcr.map(|(lo, hi)| hi - lo + 1);
        tracks.chain(pcr).max().filter(|p| *p > 0).map(|p| p as u64)
    }
}

impl Looper {
    fn new() -> Self {
        Self {
            offset: 0,
            pass: 0,
            demux: Demuxer::new(),
            times: PassTimes::default(),
            last_cc: Box::new([CC_NONE; NUM_PIDS]),
            cc_shift: Box::new([CC_NONE; NUM_PIDS]),
        }
    }

    /// Take note of packets as written (after [`Looper::process`]).
    fn observe(&mut self, chunk: &[u8]) {
        self.demux.push(chunk);
        while let Some(ev) = self.demux.pull() {
            self.times.observe(ev);
        }
    }

    fn next_pass(&mut self) -> Result<(), IngestError> {
        self.demux.flush();
        while let Some(ev) = self.demux.pull() {
            self.times.observe(ev);
        }
        let period = self.times.period().ok_or_else(|| {
            IngestError::protocol("cannot loop: the source has no PCR/PTS/DTS to continue from")
        })?;
        self.offset = (self.offset + period) & TS_MASK;
        self.pass += 1;
        self.demux = Demuxer::new();
        self.times = PassTimes::default();
        self.cc_shift.fill(CC_NONE);
        tracing::debug!(pass = self.pass, period_ms = period / 90, "looping");
        Ok(())
    }

    /// Shift continuity counters and timestamps of one packet (from the
    /// second pass on).
    fn process(&mut self, pkt: &mut [u8; PACKET_SIZE]) {
        let Some(p) = parse_packet(pkt) else {
            return;
        };
        let pid = p.header.pid;
        if pid == PID_NULL {
            return;
        }
        let idx = usize::from(pid);
        if self.pass == 0 {
            self.last_cc[idx] = p.header.continuity_counter;
            return;
        }
        let cc = p.header.continuity_counter;
        let mut shift = self.cc_shift[idx];
        if shift == CC_NONE {
            let expected = match self.last_cc[idx] {
                CC_NONE => cc,
                l if p.header.has_payload => (l + 1) & 0x0F,
                l => l,
            };
            shift = expected.wrapping_sub(cc) & 0x0F;
            self.cc_shift[idx] = shift;
        }
        let cc = (cc + shift) & 0x0F;
        pkt[3] = (pkt[3] & 0xF0) | cc;
        self.last_cc[idx] = cc;

        if let Some(pcr) = p.adaptation.pcr {
            let shifted = (pcr + self.offset * 300) % PCR_MODULUS;
            pkt[PCR_AT..PCR_AT + 6].copy_from_slice(&write_pcr(shifted));
        }
        if p.header.payload_unit_start
            && let Some((pts_at, dts_at)) = pes_timestamps(pkt, p.payload_offset)
        {
            let pts = read_ts(pkt, pts_at);
            write_ts(pkt, pts_at, (pts + self.offset) & TS_MASK);
            if let Some(at) = dts_at {
                let dts = read_ts(pkt, at);
                write_ts(pkt, at, (dts + self.offset) & TS_MASK);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(
        pid: u16,
        cc: u8,
        pcr: Option<u64>,
        pes: Option<(u64, Option<u64>)>,
    ) -> [u8; PACKET_SIZE] {
        let mut p = [0xFFu8; PACKET_SIZE];
        p[0] = SYNC_BYTE;
        p[1] = ((pid >> 8) as u8 & 0x1F) | if pes.is_some() { 0x40 } else { 0 };
        p[2] = pid as u8;
        let mut at = 4;
        if let Some(pcr) = pcr {
            p[3] = 0x30 | cc;
            p[4] = 7;
            p[5] = 0x10;
            p[6..12].copy_from_slice(&write_pcr(pcr));
            at = 12;
        } else {
            p[3] = 0x10 | cc;
        }
        if let Some((pts, dts)) = pes {
            let h = [0, 0, 1, 0xE0, 0, 0, 0x80];
            p[at..at + 7].copy_from_slice(&h);
            if let Some(dts) = dts {
                p[at + 7] = 0xC0;
                p[at + 8] = 10;
                p[at + 9..at + 14].copy_from_slice(&write_timestamp(3, pts));
                p[at + 14..at + 19].copy_from_slice(&write_timestamp(1, dts));
            } else {
                p[at + 7] = 0x80;
                p[at + 8] = 5;
                p[at + 9..at + 14].copy_from_slice(&write_timestamp(2, pts));
            }
        }
        p
    }

    #[test]
    fn pes_timestamps_are_found_and_rewritten() {
        let mut pkt = packet(0x100, 0, Some(27_000_000), Some((90_000, Some(87_000))));
        let parsed = parse_packet(&pkt).unwrap_or_else(|| panic!("parse"));
        let (pts_at, dts_at) =
            pes_timestamps(&pkt, parsed.payload_offset).unwrap_or_else(|| panic!("no pes"));
        assert_eq!(read_ts(&pkt, pts_at), 90_000);
        let dts_at = dts_at.unwrap_or_else(|| panic!("no dts"));
        assert_eq!(read_ts(&pkt, dts_at), 87_000);
        write_ts(&mut pkt, dts_at, TS_MASK);
        assert_eq!(read_ts(&pkt, dts_at), TS_MASK);
        assert_eq!(pkt[dts_at] >> 4, 1, "prefix kept");
    }

    /// Three passes of the test vector through the looper, demuxed: every
    /// clock keeps increasing and the continuity counters never break.
    #[test]
    fn looper_continues_timestamps_and_continuity() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/testdata/h264_aac.ts"
        );
        let file = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut l = Looper::new();
        let mut out = Vec::new();
        for round in 0..3 {
            if round > 0 {
                l.next_pass().unwrap_or_else(|e| panic!("{e}"));
            }
            let mut pass = file.clone();
            for pkt in pass.chunks_exact_mut(PACKET_SIZE) {
                let pkt = <&mut [u8; PACKET_SIZE]>::try_from(pkt).unwrap_or_else(|_| panic!());
                l.process(pkt);
            }
            l.observe(&pass);
            out.extend_from_slice(&pass);
        }
        let mut d = Demuxer::new();
        d.push(&out);
        d.flush();
        let mut last: Vec<(u16, i64)> = Vec::new();
        let mut max_step: Vec<(u16, i64)> = Vec::new();
        let mut pcr = i64::MIN;
        while let Some(ev) = d.pull() {
            match ev {
                Event::AccessUnit(au) => {
                    if let Some(prev) = last.iter_mut().find(|t| t.0 == au.track) {
                        let step = au.dts - prev.1;
                        assert!(
                            step > 0,
                            "track {:#x}: DTS {} -> {}",
                            au.track,
                            prev.1,
                            au.dts
                        );
                        match max_step.iter_mut().find(|t| t.0 == au.track) {
                            Some(m) => m.1 = m.1.max(step),
                            None => max_step.push((au.track, step)),
                        }
                        prev.1 = au.dts;
                    } else {
                        last.push((au.track, au.dts));
                    }
                }
                Event::Pcr { pcr: v, .. } => {
                    assert!(v > pcr, "PCR {pcr} -> {v}");
                    pcr = v;
                }
                Event::ContinuityError { pid, .. } => panic!("continuity error on {pid:#x}"),
                Event::Discontinuity { pid } => panic!("discontinuity on {pid:#x}"),
                _ => {}
            }
        }
        // The audio, the longest track (it starts 21 ms before the video and
        // ends 8 ms after it), continues exactly one AAC frame later; the
        // video holds its last frame for the 29 ms difference.
        max_step.sort();
        assert_eq!(max_step, [(0x100, 3600 + 2640), (0x101, 1920)]);
    }

    #[test]
    fn looper_without_timestamps_refuses_to_loop() {
        let mut l = Looper::new();
        let mut p = packet(0x100, 0, None, None);
        l.process(&mut p);
        assert!(l.next_pass().is_err());
    }

    #[test]
    fn clock_maps_pcr_to_wall_time_and_resyncs_on_jumps() {
        let mut c = Clock::default();
        let t0 = Instant::now();
        let pkt = |pcr| packet(0x100, 0, Some(pcr), None);
        assert_eq!(c.due(&pkt(27_000_000), t0), None, "first value maps to now");
        let due = c.due(&pkt(27_000_000 + 13_500_000), t0);
        assert_eq!(due, Some(t0 + Duration::from_millis(500)));
        // A 10 s jump forward restarts the mapping: due now.
        assert_eq!(c.due(&pkt(27_000_000 * 11), t0), None);
        // So does a step backwards.
        assert_eq!(c.due(&pkt(27_000_000), t0), None);
        let due = c.due(&pkt(27_000_000 + 2_700_000), t0);
        assert_eq!(due, Some(t0 + Duration::from_millis(100)));
        // Across the 33-bit wrap the clock keeps counting.
        let mut c = Clock::default();
        c.due(&pkt(PCR_MODULUS - 2_700_000), t0);
        let due = c.due(&pkt(2_700_000), t0);
        assert_eq!(due, Some(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn clock_falls_back_to_pes_timestamps_then_prefers_pcr() {
        let mut c = Clock::default();
        let t0 = Instant::now();
        c.due(&packet(0x101, 0, None, Some((90_000, None))), t0);
        let due = c.due(&packet(0x101, 1, None, Some((90_000 + 9_000, None))), t0);
        assert_eq!(due, Some(t0 + Duration::from_millis(100)));
        // Another PID's timestamps are not followed.
        assert_eq!(
            c.due(&packet(0x102, 0, None, Some((900_000, None))), t0),
            None
        );
        c.due(&packet(0x100, 0, Some(0), None), t0);
        assert!(c.source == Source::Pcr(0x100));
    }
}
