//! Splicing MPEG-TS sources into one continuous stream.
//!
//! A live stream whose input changes (failover, failback, a publisher that
//! reconnects, an encoder that restarts its clock) must keep one timeline
//! for the players reading it: timestamps that keep rising and continuity
//! counters that never skip. [`Splicer`] rewrites packets so that they do:
//!
//! - Until the first splice it only *observes* (last timestamps, continuity
//!   counters, frame duration) and hands chunks back untouched (zero copy).
//! - [`Splicer::splice`] says "the next packets come from another source".
//!   The first PES timestamp after it fixes a 90 kHz offset so that the new
//!   source continues one frame after the last output timestamp; the offset
//!   is applied to every PTS, DTS and PCR from then on (33-bit wrap aware).
//! - After a splice each PID restarts at its first payload unit start
//!   (fragments of a PES begun before the switch are dropped), and a PES
//!   whose rebased DTS would not move its PID forward (audio muxed slightly
//!   ahead of the keyframe, for instance) is dropped, so every PID stays
//!   monotonic.
//! - Continuity counters are renumbered per PID so they run on across the
//!   splice.
//! - A timestamp that jumps by more than [`JUMP_TICKS`] within one source
//!   (a clock reset) is treated as a splice of its own.
//!
//! Sans-IO: [`Splicer::process`] takes a chunk of whole 188-byte packets and
//! returns the chunk to write. Bytes that are not whole packets are passed
//! through unchanged.

use bytes::{Bytes, BytesMut};

use crate::packet::{PACKET_SIZE, SYNC_BYTE, parse_pcr, write_pcr};
use crate::pes::{parse_timestamp, write_timestamp};
use crate::pidmap::PidMap;

/// 33-bit timestamp space.
const TS_MOD: u64 = 1 << 33;
const TS_MASK: u64 = TS_MOD - 1;
/// PCR space in 27 MHz units.
const PCR_MOD: u64 = TS_MOD * 300;

/// A DTS jump (either way) larger than this within one source is a clock
/// reset: 10 s.
pub const JUMP_TICKS: u64 = 10 * 90_000;

/// Frame duration assumed before one was measured (25 fps).
const DEFAULT_FRAME: u64 = 3600;
/// Longest frame duration believed when measuring (10 fps).
const MAX_FRAME: u64 = 9000;
/// Longest PES duration believed when measuring (0.5 s).
const MAX_PES_STEP: u64 = 45_000;

/// Figures of a [`Splicer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpliceStats {
    /// Splices applied (explicit and clock resets).
    pub splices: u64,
    /// Of those, clock resets found inside one source.
    pub clock_resets: u64,
    /// Packets dropped to keep PIDs aligned and monotonic.
    pub dropped_packets: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct PidState {
    /// Continuity counter of the last packet written with a payload.
    cc_out: Option<u8>,
    /// Last input DTS (for clock-reset detection within a source).
    last_in: Option<u64>,
    /// Last output DTS.
    last_out: Option<u64>,
    /// Largest step between two PES of this PID (a bound on how long one
    /// PES lasts: several audio frames share one PES).
    max_step: u64,
    /// The first PES after a splice must start after the last one output
    /// ended.
    guard: bool,
    /// After a splice: drop packets until the next payload unit start.
    wait_start: bool,
    /// The current PES is being dropped.
    dropping: bool,
}

/// Keeps one continuous MPEG-TS timeline across source switches.
#[derive(Debug, Default)]
pub struct Splicer {
    /// Added (mod 2^33) to every 90 kHz timestamp.
    offset: u64,
    /// Packets are rewritten (from the first splice on).
    rewriting: bool,
    /// The next timestamp fixes `offset`.
    pending: bool,
    /// Latest output DTS over all PIDs (wrap-aware maximum).
    last_out: Option<u64>,
    /// Latest output DTS of video.
    last_video: Option<u64>,
    /// Measured video frame duration, 90 kHz ticks.
    frame: Option<u64>,
    pids: PidMap<PidState>,
    stats: SpliceStats,
}

/// `a` is later than `b` in 33-bit wrapping time.
fn later(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b) & TS_MASK;
    d != 0 && d < TS_MOD / 2
}

/// Distance between two 33-bit timestamps, either direction.
fn distance(a: u64, b: u64) -> u64 {
    let d = a.wrapping_sub(b) & TS_MASK;
    d.min(TS_MOD - d)
}

/// Where the PTS/DTS of a PES start in a packet, if it has them.
struct PesTimes {
    stream_id: u8,
    /// Offset of the PTS field in the packet.
    pts_at: Option<usize>,
    /// Offset of the DTS field in the packet.
    dts_at: Option<usize>,
}

fn pes_times(pkt: &[u8], payload: usize) -> Option<PesTimes> {
    let p = pkt.get(payload..)?;
    if p.len() < 9 || p[0] != 0 || p[1] != 0 || p[2] != 1 {
        return None;
    }
    let stream_id = p[3];
    // Streams without the optional header (padding, private_2, ...).
    if matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    ) {
        return None;
    }
    if p[6] & 0xC0 != 0x80 {
        return None;
    }
    let flags = p[7] >> 6;
    let header_len = usize::from(p[8]);
    let base = payload + 9;
    let need = match flags {
        2 => 5,
        3 => 10,
        _ => 0,
    };
    if need == 0 || header_len < need || base + need > pkt.len() {
        return Some(PesTimes {
            stream_id,
            pts_at: None,
            dts_at: None,
        });
    }
    Some(PesTimes {
        stream_id,
        pts_at: Some(base),
        dts_at: (flags == 3).then_some(base + 5),
    })
}

fn read_ts(pkt: &[u8], at: usize) -> Option<u64> {
    pkt.get(at..at + 5)
        .and_then(|s| <[u8; 5]>::try_from(s).ok())
        .map(parse_timestamp)
}

fn is_video(stream_id: u8) -> bool {
    (0xE0..=0xEF).contains(&stream_id)
}

impl Splicer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The packets after this call come from a different source.
    pub fn splice(&mut self) {
        self.pending = true;
        self.rewriting = true;
        self.stats.splices += 1;
        for st in self.pids.values_mut() {
            st.wait_start = true;
            st.dropping = false;
            st.last_in = None;
            st.guard = true;
        }
    }

    pub fn stats(&self) -> SpliceStats {
        self.stats
    }

    /// Frame duration used to continue the timeline after a splice.
    pub fn frame_ticks(&self) -> u64 {
        self.frame.unwrap_or(DEFAULT_FRAME)
    }

    /// Take a chunk of packets; return the chunk to write (the same bytes
    /// before the first splice, a rewritten copy after).
    pub fn process(&mut self, data: Bytes) -> Bytes {
        let mut from = 0;
        if !self.rewriting {
            match self.observe(&data) {
                None => return data,
                // A clock reset at `at`: the packets before it stay as they
                // are, the rest is rewritten.
                Some(at) => from = at,
            }
        }
        let mut out = BytesMut::with_capacity(data.len());
        out.extend_from_slice(&data[..from]);
        let mut pos = from;
        while pos + PACKET_SIZE <= data.len() && data[pos] == SYNC_BYTE {
            let mut pkt = [0u8; PACKET_SIZE];
            pkt.copy_from_slice(&data[pos..pos + PACKET_SIZE]);
            if self.rewrite(&mut pkt) {
                out.extend_from_slice(&pkt);
            } else {
                self.stats.dropped_packets += 1;
            }
            pos += PACKET_SIZE;
        }
        out.extend_from_slice(&data[pos..]);
        out.freeze()
    }

    /// Identity mode: learn counters and timestamps. Returns the offset of
    /// the packet where a clock reset starts (not learnt), which switches
    /// to rewriting.
    fn observe(&mut self, data: &[u8]) -> Option<usize> {
        let mut pos = 0;
        while pos + PACKET_SIZE <= data.len() && data[pos] == SYNC_BYTE {
            let pkt = &data[pos..pos + PACKET_SIZE];
            let Some((pid, pusi, has_payload, cc, payload)) = header(pkt) else {
                pos += PACKET_SIZE;
                continue;
            };
            if let Some(pes) = pusi.then(|| pes_times(pkt, payload)).flatten()
                && let Some(dts) = pes.dts_at.or(pes.pts_at).and_then(|at| read_ts(pkt, at))
            {
                let st = self.pids.entry(pid);
                if st
                    .last_in
                    .is_some_and(|prev| distance(dts, prev) > JUMP_TICKS)
                {
                    self.rewriting = true;
                    return Some(pos);
                }
                note(
                    st,
                    &mut self.frame,
                    &mut self.last_out,
                    &mut self.last_video,
                    pes.stream_id,
                    dts,
                    dts,
                );
            }
            if has_payload {
                self.pids.entry(pid).cc_out = Some(cc);
            }
            pos += PACKET_SIZE;
        }
        None
    }

    /// Rewrite one packet in place; `false` = drop it.
    fn rewrite(&mut self, pkt: &mut [u8; PACKET_SIZE]) -> bool {
        let Some((pid, pusi, has_payload, _cc, payload)) = header(pkt) else {
            return true;
        };
        let mut st = self.pids.get(pid).copied().unwrap_or(PidState {
            // A PID first seen after a splice starts at a unit start too.
            wait_start: self.pending,
            ..PidState::default()
        });
        let keep = self.rewrite_with(pkt, &mut st, pusi, has_payload, payload);
        self.pids.insert(pid, st);
        keep
    }

    fn rewrite_with(
        &mut self,
        pkt: &mut [u8; PACKET_SIZE],
        st: &mut PidState,
        pusi: bool,
        has_payload: bool,
        payload: usize,
    ) -> bool {
        if pusi {
            st.wait_start = false;
            st.dropping = false;
            if let Some(pes) = pes_times(pkt, payload)
                && let Some(dts_in) = pes.dts_at.or(pes.pts_at).and_then(|at| read_ts(pkt, at))
            {
                if !self.pending
                    && st
                        .last_in
                        .is_some_and(|prev| distance(dts_in, prev) > JUMP_TICKS)
                {
                    self.stats.clock_resets += 1;
                    self.stats.splices += 1;
                    self.pending = true;
                    // The other PIDs jumped too: their next timestamps are
                    // judged against the new offset, not their old clock.
                    for other in self.pids.values_mut() {
                        other.last_in = None;
                    }
                    st.last_in = None;
                }
                if self.pending {
                    let video = is_video(pes.stream_id);
                    if !video && self.last_video.is_some() {
                        // The new source is placed by its first video frame
                        // (its keyframe); audio before it is dropped.
                        st.dropping = true;
                        return false;
                    }
                    let last = if video {
                        self.last_video
                    } else {
                        self.last_out
                    };
                    let target = match last {
                        Some(last) => (last + self.frame_ticks()) & TS_MASK,
                        None => dts_in,
                    };
                    self.offset = target.wrapping_sub(dts_in) & TS_MASK;
                    self.pending = false;
                }
                let dts_out = (dts_in + self.offset) & TS_MASK;
                let overlaps = st.last_out.is_some_and(|prev| {
                    // Right after a splice the previous PES of this PID may
                    // still be playing: start after it ended.
                    let end = if st.guard {
                        (prev + st.max_step.max(1)) & TS_MASK
                    } else {
                        (prev + 1) & TS_MASK
                    };
                    dts_out != end && !later(dts_out, end)
                });
                if overlaps {
                    // Would go backwards on this PID: drop the whole PES.
                    st.dropping = true;
                } else {
                    for at in [pes.pts_at, pes.dts_at].into_iter().flatten() {
                        if let Some(ts) = read_ts(pkt, at) {
                            let prefix = pkt[at] >> 4;
                            let fixed = write_timestamp(prefix, ts + self.offset);
                            pkt[at..at + 5].copy_from_slice(&fixed);
                        }
                    }
                    note(
                        st,
                        &mut self.frame,
                        &mut self.last_out,
                        &mut self.last_video,
                        pes.stream_id,
                        dts_in,
                        dts_out,
                    );
                }
            }
        }
        if st.wait_start || st.dropping {
            return false;
        }
        // PCR (in the adaptation field).
        if pkt[3] & 0x20 != 0 && pkt[4] >= 7 && pkt[5] & 0x10 != 0 {
            if self.pending {
                // No timestamp yet to place the new source: a PCR now would
                // be off the timeline. Drop a PCR-only packet; a packet with
                // payload keeps it, with the PCR flag cleared.
                if !has_payload {
                    return false;
                }
                pkt[5] &= !0x10;
            } else {
                let pcr = parse_pcr([pkt[6], pkt[7], pkt[8], pkt[9], pkt[10], pkt[11]]);
                let fixed = write_pcr((pcr + self.offset * 300) % PCR_MOD);
                pkt[6..12].copy_from_slice(&fixed);
            }
        }
        if has_payload {
            let cc = st.cc_out.map_or(pkt[3] & 0x0F, |c| (c + 1) & 0x0F);
            pkt[3] = (pkt[3] & 0xF0) | cc;
            st.cc_out = Some(cc);
        } else if let Some(c) = st.cc_out {
            pkt[3] = (pkt[3] & 0xF0) | c;
        }
        true
    }
}

/// Remember an output timestamp of a PID and refine the frame duration.
fn note(
    st: &mut PidState,
    frame: &mut Option<u64>,
    last_out: &mut Option<u64>,
    last_video: &mut Option<u64>,
    stream_id: u8,
    dts_in: u64,
    dts_out: u64,
) {
    if let Some(prev) = st.last_out
        && later(dts_out, prev)
        && !st.guard
    {
        let d = distance(dts_out, prev);
        if is_video(stream_id) && (1..=MAX_FRAME).contains(&d) {
            *frame = Some(d);
        }
        if d <= MAX_PES_STEP {
            st.max_step = st.max_step.max(d);
        }
    }
    st.guard = false;
    st.last_in = Some(dts_in);
    st.last_out = Some(dts_out);
    if is_video(stream_id) {
        *last_video = Some(dts_out);
    }
    if last_out.is_none_or(|l| later(dts_out, l)) {
        *last_out = Some(dts_out);
    }
}

/// `(pid, payload_unit_start, has_payload, cc, payload_offset)`, or `None`
/// for packets with an impossible adaptation field.
fn header(pkt: &[u8]) -> Option<(u16, bool, bool, u8, usize)> {
    let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
    let pusi = pkt[1] & 0x40 != 0;
    let has_af = pkt[3] & 0x20 != 0;
    let has_payload = pkt[3] & 0x10 != 0;
    let cc = pkt[3] & 0x0F;
    let mut payload = 4;
    if has_af {
        let len = usize::from(pkt[4]);
        if len > 183 {
            return None;
        }
        payload = 5 + len;
    }
    if !has_payload || payload >= PACKET_SIZE {
        payload = PACKET_SIZE;
    }
    Some((pid, pusi && has_payload, has_payload, cc, payload))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::type_complexity)]
mod tests {
    use super::*;

    /// A packet of `pid` starting a PES with `dts` (PTS = DTS + 3600) and an
    /// optional PCR.
    fn pes_packet(pid: u16, stream_id: u8, dts: u64, cc: u8, pcr: Option<u64>) -> Vec<u8> {
        let mut p = vec![SYNC_BYTE, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | cc];
        if let Some(pcr) = pcr {
            p[3] |= 0x20;
            p.extend_from_slice(&[7, 0x10]);
            p.extend_from_slice(&write_pcr(pcr));
        }
        p.extend_from_slice(&[0, 0, 1, stream_id, 0, 0, 0x80, 0xC0, 10]);
        p.extend_from_slice(&write_timestamp(3, dts + 3600));
        p.extend_from_slice(&write_timestamp(1, dts));
        p.resize(PACKET_SIZE, 0xAB);
        p
    }

    fn cont_packet(pid: u16, cc: u8) -> Vec<u8> {
        let mut p = vec![SYNC_BYTE, (pid >> 8) as u8, pid as u8, 0x10 | cc];
        p.resize(PACKET_SIZE, 0xCD);
        p
    }

    /// (pid, cc, dts, pts, pcr) of every packet.
    fn read(data: &[u8]) -> Vec<(u16, u8, Option<u64>, Option<u64>, Option<u64>)> {
        data.chunks(PACKET_SIZE)
            .map(|pkt| {
                let (pid, pusi, _, cc, payload) = header(pkt).unwrap();
                let (mut dts, mut pts) = (None, None);
                if pusi && let Some(t) = pes_times(pkt, payload) {
                    pts = t.pts_at.and_then(|a| read_ts(pkt, a));
                    dts = t.dts_at.and_then(|a| read_ts(pkt, a));
                }
                let pcr = (pkt[3] & 0x20 != 0 && pkt[4] >= 7 && pkt[5] & 0x10 != 0)
                    .then(|| parse_pcr(pkt[6..12].try_into().unwrap()));
                (pid, cc, dts, pts, pcr)
            })
            .collect()
    }

    /// A source: `frames` video PES (each 2 packets) from `dts0`, audio PES
    /// between them, counters from `cc0`.
    fn source(dts0: u64, frames: u64, cc0: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cc_v = cc0;
        let mut cc_a = cc0;
        for i in 0..frames {
            let dts = (dts0 + i * 3000) & TS_MASK;
            out.extend(pes_packet(0x100, 0xE0, dts, cc_v, Some(dts * 300)));
            cc_v = (cc_v + 1) & 15;
            out.extend(cont_packet(0x100, cc_v));
            cc_v = (cc_v + 1) & 15;
            out.extend(pes_packet(0x101, 0xC0, (dts + 1000) & TS_MASK, cc_a, None));
            cc_a = (cc_a + 1) & 15;
        }
        out
    }

    fn check_continuous(all: &[(u16, u8, Option<u64>, Option<u64>, Option<u64>)]) {
        let mut last_cc: std::collections::HashMap<u16, u8> = Default::default();
        let mut last_dts: std::collections::HashMap<u16, u64> = Default::default();
        for &(pid, cc, dts, _, _) in all {
            if let Some(prev) = last_cc.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) & 15, "cc of pid {pid:#x}");
            }
            if let Some(d) = dts {
                if let Some(prev) = last_dts.insert(pid, d) {
                    assert!(later(d, prev), "pid {pid:#x}: {d} after {prev}");
                    assert!(
                        distance(d, prev) <= 2 * 3000,
                        "pid {pid:#x}: jump {prev} → {d}"
                    );
                }
            }
        }
    }

    #[test]
    fn identity_until_first_splice() {
        let mut s = Splicer::new();
        let a = Bytes::from(source(1000, 10, 0));
        let out = s.process(a.clone());
        assert_eq!(out, a);
        assert_eq!(out.as_ptr(), a.as_ptr(), "no copy before a splice");
        assert_eq!(s.stats(), SpliceStats::default());
        assert_eq!(s.frame_ticks(), 3000);
    }

    #[test]
    fn splice_continues_timestamps_and_counters() {
        let mut s = Splicer::new();
        let mut all = Vec::new();
        all.extend(read(&s.process(Bytes::from(source(1000, 10, 0)))));
        s.splice();
        // The second source has a clock far away and other counters.
        all.extend(read(&s.process(Bytes::from(source(5_000_000, 10, 7)))));
        check_continuous(&all);
        let v: Vec<u64> = all
            .iter()
            .filter(|p| p.0 == 0x100)
            .filter_map(|p| p.2)
            .collect();
        // 10 frames of the first source, then one frame step: the new
        // source is placed by its keyframe.
        assert_eq!(v[10] - v[9], 3000);
        // PCR moved with the timestamps.
        let pcr: Vec<u64> = all.iter().filter_map(|p| p.4).collect();
        assert_eq!(pcr[10], v[10] * 300);
        // PTS keeps its distance to DTS.
        let first_new = all
            .iter()
            .filter(|p| p.0 == 0x100 && p.2.is_some())
            .nth(10)
            .unwrap();
        assert_eq!(first_new.3.unwrap() - first_new.2.unwrap(), 3600);
        assert_eq!(s.stats().splices, 1);
    }

    #[test]
    fn splice_across_33_bit_wrap() {
        let mut s = Splicer::new();
        let mut all = Vec::new();
        all.extend(read(&s.process(Bytes::from(source(
            TS_MOD - 15_000,
            10,
            0,
        )))));
        s.splice();
        all.extend(read(&s.process(Bytes::from(source(42, 10, 3)))));
        check_continuous(&all);
    }

    #[test]
    fn fragments_and_backward_audio_after_splice_are_dropped() {
        let mut s = Splicer::new();
        let mut all = Vec::new();
        all.extend(read(&s.process(Bytes::from(source(1000, 5, 0)))));
        s.splice();
        let mut next = Vec::new();
        // An audio fragment (no unit start) and a video fragment first.
        next.extend(cont_packet(0x101, 9));
        next.extend(cont_packet(0x100, 4));
        // Video keyframe, then audio timed *before* it.
        next.extend(pes_packet(0x100, 0xE0, 900_000, 5, Some(900_000 * 300)));
        next.extend(pes_packet(0x101, 0xC0, 900_000 - 6000, 1, None));
        next.extend(pes_packet(0x101, 0xC0, 900_000 + 2000, 2, None));
        let out = s.process(Bytes::from(next));
        let pkts = read(&out);
        assert_eq!(
            pkts.len(),
            2,
            "fragments and the backward audio PES dropped"
        );
        assert_eq!(s.stats().dropped_packets, 3);
        all.extend(pkts);
        check_continuous(&all);
    }

    #[test]
    fn clock_reset_within_a_source_is_spliced() {
        let mut s = Splicer::new();
        let mut data = source(1000, 5, 0);
        data.extend(source(50 * 90_000, 5, 10));
        let out = s.process(Bytes::from(data));
        check_continuous(&read(&out));
        assert_eq!(s.stats().clock_resets, 1);
    }

    #[test]
    fn pcr_before_first_timestamp_is_not_emitted_off_timeline() {
        let mut s = Splicer::new();
        let _ = s.process(Bytes::from(source(1000, 5, 0)));
        s.splice();
        // A PCR-only packet (adaptation field only) arrives first.
        let mut p = vec![SYNC_BYTE, 0x41, 0x00, 0x20, 183, 0x10];
        p.extend_from_slice(&write_pcr(77 * 300));
        p.resize(PACKET_SIZE, 0xFF);
        let out = s.process(Bytes::from(p));
        assert!(out.is_empty());
    }

    #[test]
    fn garbage_passes_through_without_panic() {
        let mut s = Splicer::new();
        s.splice();
        for data in [vec![0u8; 10], vec![SYNC_BYTE; 500], vec![0xFF; 188 * 3]] {
            let _ = s.process(Bytes::from(data));
        }
    }
}
