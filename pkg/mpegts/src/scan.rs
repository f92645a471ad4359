//! Cheap access-point scanner: finds the packets that start a keyframe PES
//! without demuxing.
//!
//! For each packet on the video PID that starts a PES
//! (`payload_unit_start_indicator`), the packet is reported when its
//! adaptation field has `random_access_indicator` set, or when the NAL units
//! in that packet's payload reach an IDR (H.264 type 5) / IRAP (H.265 types
//! 16..=23) slice before any other slice. When the first packet holds only
//! parameter sets / SEI, the following packets of the PES (up to 16, within
//! the same chunk) are inspected until the first slice is reached.

use os_av::Codec;
use os_codecs::annexb::find_start_code;

use crate::packet::{PACKET_SIZE, PID_PAT, SYNC_BYTE};
use crate::pes::parse_pes_header;
use crate::psi::{parse_pat, parse_pmt};

/// Whether an Annex-B buffer's first picture is a random access point: the
/// NAL units are walked until the first slice, which decides.
pub fn contains_keyframe(codec: Codec, annexb: &[u8]) -> bool {
    first_picture_is_key(codec, annexb).unwrap_or(false)
}

/// `Some(is_random_access)` once the first slice NAL unit is reached, `None`
/// if `annexb` ends before any slice.
fn first_picture_is_key(codec: Codec, annexb: &[u8]) -> Option<bool> {
    let mut from = 0;
    while let Some((_, nal)) = find_start_code(annexb, from) {
        let b = *annexb.get(nal)?;
        match codec {
            Codec::H264 => match b & 0x1F {
                5 => return Some(true),
                1..=4 => return Some(false),
                _ => {}
            },
            Codec::H265 => match (b >> 1) & 0x3F {
                16..=23 => return Some(true),
                0..=31 => return Some(false),
                _ => {}
            },
            _ => return Some(false),
        }
        from = nal;
    }
    None
}

/// Bytes kept from one packet's payload so that a start code split across
/// packets is still seen.
const TAIL: usize = 4;
/// Packets examined per pass-1 block (bits of the mask).
const BLOCK: usize = 64;
/// How many continuation packets are inspected before giving up on a PES.
const MAX_FOLLOW: u8 = 16;

/// A PES start whose first slice has not been reached yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    offset: usize,
    tail: [u8; TAIL],
    tail_len: usize,
    packets: u8,
}

impl Pending {
    fn new(offset: usize, es: &[u8]) -> Self {
        let mut p = Self {
            offset,
            tail: [0; TAIL],
            tail_len: 0,
            packets: 0,
        };
        p.keep_tail(es);
        p
    }

    fn keep_tail(&mut self, es: &[u8]) {
        let n = es.len().min(TAIL);
        if let (Some(dst), Some(src)) = (self.tail.get_mut(..n), es.get(es.len() - n..)) {
            dst.copy_from_slice(src);
        }
        self.tail_len = n;
    }

    /// Inspect the next payload of the PES; `Some(decision)` when reached.
    fn follow(&mut self, codec: Codec, payload: &[u8]) -> Option<bool> {
        let mut buf = [0u8; TAIL + PACKET_SIZE];
        let tail = self.tail.get(..self.tail_len).unwrap_or_default();
        let total = tail.len() + payload.len();
        let dst = buf.get_mut(..total)?;
        let (a, b) = dst.split_at_mut(tail.len());
        a.copy_from_slice(tail);
        b.copy_from_slice(payload);
        let decision = first_picture_is_key(codec, dst);
        if decision.is_none() {
            self.packets += 1;
            if self.packets >= MAX_FOLLOW {
                return Some(false);
            }
            self.keep_tail(payload);
        }
        decision
    }
}

/// Finds keyframe starts in chunks of TS. Keeps the video PID (given or
/// learned from PAT/PMT) across calls.
#[derive(Debug, Clone, Default)]
pub struct KeyframeScanner {
    video: Option<(u16, Codec)>,
    learn: bool,
    program: Option<u16>,
    pmt_pid: Option<u16>,
    /// CRCs of the last PAT and PMT parsed: repetitions are skipped.
    last_crc: [Option<[u8; 4]>; 2],
    /// Video PES starts seen (≈ frames), since the last `take_pictures`.
    pictures: u64,
}

impl KeyframeScanner {
    /// A scanner that learns the video PID from the PAT/PMT in the stream
    /// (first program, first H.264/H.265 stream) and follows PMT changes.
    pub fn new() -> Self {
        Self {
            learn: true,
            ..Self::default()
        }
    }

    /// A scanner for a known video PID.
    pub fn with_video(pid: u16, codec: Codec) -> Self {
        Self {
            video: Some((pid, codec)),
            ..Self::default()
        }
    }

    /// The video PID and codec in use, once known.
    pub fn video(&self) -> Option<(u16, Codec)> {
        self.video
    }

    /// Video PES starts (one per frame in practice) seen since the last
    /// call; resets the count.
    pub fn take_pictures(&mut self) -> u64 {
        std::mem::take(&mut self.pictures)
    }

    /// Append to `out` the offsets (within `chunk`) of the packets that start
    /// a keyframe PES. `chunk` should be packet aligned; if it is not, or sync
    /// is lost inside it, scanning resumes at the next confirmed sync byte.
    pub fn scan(&mut self, chunk: &[u8], out: &mut Vec<usize>) {
        let mut pos = 0;
        let mut pending: Option<Pending> = None;
        while let Some(rest) = chunk.get(pos..).filter(|r| r.len() >= PACKET_SIZE) {
            let whole = rest.len() / PACKET_SIZE * PACKET_SIZE;
            let mut lost_at = None;
            let mut i = 0;
            'blocks: while i < whole {
                let block = rest
                    .get(i..whole.min(i + BLOCK * PACKET_SIZE))
                    .unwrap_or_default();
                // Pass 1, branch-free so that the header loads overlap: which
                // packets need a look (bad sync, video, PSI while learning).
                let mut mask = self.interesting(block, pending.is_some(), 0);
                // Pass 2: only those.
                while mask != 0 {
                    let j = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let Some(pkt) = block.get(j * PACKET_SIZE..(j + 1) * PACKET_SIZE) else {
                        break;
                    };
                    if pkt.first() != Some(&SYNC_BYTE) {
                        lost_at = Some(i + j * PACKET_SIZE);
                        break 'blocks;
                    }
                    let before = (pending.is_some(), self.pmt_pid, self.video);
                    self.packet(pkt, pos + i + j * PACKET_SIZE, &mut pending, out);
                    if before != (pending.is_some(), self.pmt_pid, self.video) {
                        // New PES to follow or PIDs learned: re-flag the rest
                        // of the block.
                        mask |= self.interesting(block, pending.is_some(), j + 1);
                    }
                }
                i += block.len();
            }
            match lost_at {
                None => return,
                Some(at) => pos += at,
            }
            // Resync: next sync byte confirmed by the following packet (or
            // by the end of the chunk).
            let skip = chunk
                .get(pos + 1..)
                .and_then(|r| {
                    r.iter().enumerate().position(|(i, &b)| {
                        b == SYNC_BYTE && r.get(i + PACKET_SIZE).is_none_or(|&n| n == SYNC_BYTE)
                    })
                })
                .map_or(chunk.len() - pos, |p| p + 1);
            pos += skip;
        }
    }

    /// Bit `j` set when packet `j` of `block` (from packet `from` on) has a
    /// bad sync byte, starts a PES on the video PID (any video packet when
    /// `follow`), or starts a section while the PIDs are being learned.
    #[inline]
    fn interesting(&self, block: &[u8], follow: bool, from: usize) -> u64 {
        let vpid = self.video.map_or(u32::MAX, |(p, _)| u32::from(p));
        let pmt_pid = self.pmt_pid.map_or(u32::MAX, u32::from);
        let learn = self.learn;
        let mut mask = 0u64;
        for (j, pkt) in block.chunks_exact(PACKET_SIZE).enumerate().skip(from) {
            let w = pkt.first_chunk::<4>().map_or(0, |h| u32::from_be_bytes(*h));
            let bad = (w >> 24) != u32::from(SYNC_BYTE);
            let pusi = w & 0x0040_0000 != 0;
            let pid = (w >> 8) & 0x1FFF;
            let video = pid == vpid;
            let psi = (pid == u32::from(PID_PAT)) | (pid == pmt_pid);
            let hit = bad | (video & (pusi | follow)) | (learn & pusi & psi);
            mask |= u64::from(hit) << j;
        }
        mask
    }

    /// Handle one packet flagged by [`KeyframeScanner::interesting`].
    fn packet(
        &mut self,
        pkt: &[u8],
        offset: usize,
        pending: &mut Option<Pending>,
        out: &mut Vec<usize>,
    ) {
        let w = pkt.first_chunk::<4>().map_or(0, |h| u32::from_be_bytes(*h));
        let pid = ((w >> 8) & 0x1FFF) as u16;
        let pusi = w & 0x0040_0000 != 0;
        match self.video {
            Some((vpid, codec)) if vpid == pid => {
                if pusi {
                    self.pictures += 1;
                    *pending = None;
                    match packet_keyframe(pkt, codec) {
                        Inspect::Key => out.push(offset),
                        Inspect::NotKey => {}
                        Inspect::Undecided(es) => *pending = Some(Pending::new(offset, es)),
                    }
                } else if let Some(p) = pending.as_mut() {
                    if let Some(decision) = payload(pkt).and_then(|pl| p.follow(codec, pl)) {
                        if decision {
                            out.push(p.offset);
                        }
                        *pending = None;
                    }
                }
            }
            _ if self.learn && pusi => self.psi(pid, pkt),
            _ => {}
        }
    }

    fn psi(&mut self, pid: u16, pkt: &[u8]) {
        if pid != PID_PAT && Some(pid) != self.pmt_pid {
            return;
        }
        let Some(section) = single_section(pkt) else {
            return;
        };
        // The CRC at the end of the section identifies a repetition.
        let len = section
            .get(1..3)
            .map_or(0, |b| (usize::from(b[0] & 0x0F) << 8) | usize::from(b[1]));
        let crc = section
            .get(len.saturating_sub(1)..len + 3)
            .and_then(|c| <[u8; 4]>::try_from(c).ok());
        let which = usize::from(pid != PID_PAT);
        if crc.is_some() && self.last_crc.get(which).copied().flatten() == crc {
            return;
        }
        let parsed = if pid == PID_PAT {
            parse_pat(section).ok().map(|entries| {
                if let Some(e) = entries.first() {
                    self.program = Some(e.program_number);
                    self.pmt_pid = Some(e.pmt_pid);
                }
            })
        } else {
            parse_pmt(section).ok().map(|pmt| {
                if Some(pmt.program_number) == self.program {
                    self.video = pmt.streams.iter().find_map(|s| match s.codec {
                        Some(c @ (Codec::H264 | Codec::H265)) => Some((s.pid, c)),
                        _ => None,
                    });
                }
            })
        };
        if let Some(slot) = self.last_crc.get_mut(which) {
            *slot = if parsed.is_some() { crc } else { None };
        }
    }
}

/// The section starting in a PUSI packet (pointer field honoured).
fn single_section(pkt: &[u8]) -> Option<&[u8]> {
    let payload = payload(pkt)?;
    let (&ptr, rest) = payload.split_first()?;
    rest.get(usize::from(ptr)..)
}

fn payload(pkt: &[u8]) -> Option<&[u8]> {
    let afc = (pkt.get(3)? >> 4) & 0x03;
    if afc & 1 == 0 {
        return None;
    }
    let start = if afc & 2 != 0 {
        5 + usize::from(*pkt.get(4)?)
    } else {
        4
    };
    pkt.get(start..)
}

enum Inspect<'a> {
    Key,
    NotKey,
    /// No slice in this packet; the elementary-stream bytes seen so far.
    Undecided(&'a [u8]),
}

fn packet_keyframe(pkt: &[u8], codec: Codec) -> Inspect<'_> {
    let afc = (pkt.get(3).copied().unwrap_or(0) >> 4) & 0x03;
    if afc & 2 != 0
        && pkt.get(4).copied().unwrap_or(0) > 0
        && pkt.get(5).is_some_and(|f| f & 0x40 != 0)
    {
        return Inspect::Key;
    }
    let Some(pes) = payload(pkt) else {
        return Inspect::NotKey;
    };
    let Some(es) = parse_pes_header(pes)
        .ok()
        .and_then(|h| pes.get(h.header_len..))
    else {
        return Inspect::NotKey;
    };
    match first_picture_is_key(codec, es) {
        Some(true) => Inspect::Key,
        Some(false) => Inspect::NotKey,
        None => Inspect::Undecided(es),
    }
}

/// One-shot scan of a chunk; `video` is the known `(pid, codec)`, or `None`
/// to learn it from a PAT/PMT inside the chunk.
pub fn scan_keyframes(chunk: &[u8], video: Option<(u16, Codec)>) -> Vec<usize> {
    let mut scanner = match video {
        Some((pid, codec)) => KeyframeScanner::with_video(pid, codec),
        None => KeyframeScanner::new(),
    };
    let mut out = Vec::new();
    scanner.scan(chunk, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_nal_detection() {
        let idr = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 0x88,
        ];
        let p = [0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x41, 0x9A];
        assert!(contains_keyframe(Codec::H264, &idr));
        assert!(!contains_keyframe(Codec::H264, &p));
        // H.265: AUD (35), VPS (32), IDR_W_RADL (19).
        let hevc = [
            0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 1, 0x40, 0x01, 0, 0, 1, 0x26, 0x01,
        ];
        assert!(contains_keyframe(Codec::H265, &hevc));
        let trail = [0, 0, 0, 1, 0x02, 0x01, 0xD0];
        assert!(!contains_keyframe(Codec::H265, &trail));
        assert!(!contains_keyframe(Codec::Aac, &idr));
    }
}
