//! Access-point detection on the write path.
//!
//! Every chunk written to a buffer goes through one [`Splitter`] (owned by
//! the buffer's write state). It
//!
//! - finds the packets that start a keyframe PES with the
//!   [`os_mpegts::KeyframeScanner`] (which learns the video PID from PAT/PMT),
//! - cuts the chunk (zero-copy `Bytes::slice`) so that each keyframe starts a
//!   piece of its own: the piece begins with the run of PAT/PMT packets that
//!   immediately precede the keyframe packet (ffmpeg and our muxer put them
//!   there), or with the keyframe packet itself,
//! - keeps the latest PAT and PMT packets, and for an access point whose piece
//!   does not already start with both, prepares an *entry* form of the piece
//!   (`PAT + PMT + piece`, one small copy per GOP) that is given only to a
//!   reader that starts there (late join, resync after lag). Readers that are
//!   in step get the original bytes, so the stream they see is exactly what
//!   the writer wrote.
//!
//! A program without video (audio only) has no keyframes; once its PMT is
//! known, every piece is an access point (audio frames are independent).

use bytes::{Bytes, BytesMut};
use os_av::Codec;
use os_mpegts::psi::parse_pat;
use os_mpegts::{KeyframeScanner, PACKET_SIZE, SYNC_BYTE};

/// PID of the program association table.
const PID_PAT: u16 = 0;

/// One piece of a written chunk, ready for the ring.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub data: Bytes,
    pub access_point: bool,
    /// What a reader starting at this piece receives instead of `data`
    /// (`PAT + PMT + data`), when `data` does not begin with them.
    pub entry: Option<Bytes>,
}

/// Per-buffer write-path state: keyframe scanner and PSI cache.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    scanner: KeyframeScanner,
    offsets: Vec<usize>,
    /// Latest PAT packet (188 bytes).
    pat: Option<Bytes>,
    /// PMT PID of the first program, from the latest PAT.
    pmt_pid: Option<u16>,
    /// Latest PMT packet (188 bytes) on `pmt_pid`.
    pmt: Option<Bytes>,
    /// Offset (within the chunk being split) up to which PSI has been cached.
    psi_pos: usize,
}

fn pid_of(pkt: &[u8]) -> Option<(u16, bool)> {
    let h = pkt.first_chunk::<4>()?;
    if h[0] != SYNC_BYTE {
        return None;
    }
    Some((
        (u16::from(h[1] & 0x1F) << 8) | u16::from(h[2]),
        h[1] & 0x40 != 0,
    ))
}

/// The section starting in a PUSI packet (pointer field honoured).
fn section(pkt: &[u8]) -> Option<&[u8]> {
    let afc = (pkt.get(3)? >> 4) & 0x03;
    if afc & 1 == 0 {
        return None;
    }
    let start = if afc & 2 != 0 {
        5 + usize::from(*pkt.get(4)?)
    } else {
        4
    };
    let payload = pkt.get(start..)?;
    let (&ptr, rest) = payload.split_first()?;
    rest.get(usize::from(ptr)..)
}

impl Splitter {
    pub fn new() -> Self {
        Self {
            scanner: KeyframeScanner::new(),
            ..Self::default()
        }
    }

    /// The video PID and codec, once learned from the PMT.
    pub fn video(&self) -> Option<(u16, Codec)> {
        self.scanner.video()
    }

    /// Video frames (PES starts) split since the last call.
    pub fn take_pictures(&mut self) -> u64 {
        self.scanner.take_pictures()
    }

    fn is_psi(&self, pid: u16) -> bool {
        pid == PID_PAT || Some(pid) == self.pmt_pid
    }

    /// Cache the PAT/PMT packets of `data[self.psi_pos..to]` (packet aligned
    /// walk; bytes that are not at a sync byte are skipped).
    fn cache_psi(&mut self, data: &Bytes, to: usize) {
        let mut pos = self.psi_pos;
        while pos + PACKET_SIZE <= to {
            let Some(pkt) = data.get(pos..pos + PACKET_SIZE) else {
                break;
            };
            let Some((pid, pusi)) = pid_of(pkt) else {
                pos += 1;
                continue;
            };
            if pusi && pid == PID_PAT {
                if let Some(first) = section(pkt)
                    .and_then(|s| parse_pat(s).ok())
                    .and_then(|e| e.first().copied())
                {
                    if self.pmt_pid != Some(first.pmt_pid) {
                        self.pmt = None;
                    }
                    self.pmt_pid = Some(first.pmt_pid);
                    self.pat = Some(data.slice(pos..pos + PACKET_SIZE));
                }
            } else if pusi && Some(pid) == self.pmt_pid {
                self.pmt = Some(data.slice(pos..pos + PACKET_SIZE));
            }
            pos += PACKET_SIZE;
        }
        self.psi_pos = self.psi_pos.max(to);
    }

    /// Whether `data` starts with a PAT and a PMT packet (in the run of PSI
    /// packets at its head).
    fn starts_with_psi(&self, data: &[u8]) -> bool {
        let (mut pat, mut pmt) = (false, false);
        for pkt in data.chunks_exact(PACKET_SIZE) {
            match pid_of(pkt) {
                Some((PID_PAT, _)) => pat = true,
                Some((pid, _)) if Some(pid) == self.pmt_pid => pmt = true,
                _ => break,
            }
        }
        pat && pmt
    }

    fn entry_for(&self, piece: &Bytes) -> Option<Bytes> {
        if self.starts_with_psi(piece) {
            return None;
        }
        let (pat, pmt) = (self.pat.as_ref()?, self.pmt.as_ref()?);
        let mut b = BytesMut::with_capacity(pat.len() + pmt.len() + piece.len());
        b.extend_from_slice(pat);
        b.extend_from_slice(pmt);
        b.extend_from_slice(piece);
        Some(b.freeze())
    }

    /// Split one written chunk into ring pieces, appended to `out`.
    pub fn split(&mut self, data: Bytes, out: &mut Vec<Piece>) {
        let mut offsets = std::mem::take(&mut self.offsets);
        offsets.clear();
        self.scanner.scan(&data, &mut offsets);
        // Cut points: (start offset, starts a keyframe).
        let mut cuts: Vec<(usize, bool)> = Vec::with_capacity(offsets.len() + 1);
        cuts.push((0, false));
        self.psi_pos = 0;
        for &k in &offsets {
            self.cache_psi(&data, k);
            let floor = cuts.last().map_or(0, |c| c.0);
            // Back up over the PAT/PMT packets right before the keyframe.
            let mut s = k;
            while s >= floor + PACKET_SIZE {
                match data.get(s - PACKET_SIZE..s).and_then(pid_of) {
                    Some((pid, _)) if self.is_psi(pid) => s -= PACKET_SIZE,
                    _ => break,
                }
            }
            match cuts.last_mut() {
                Some(last) if last.0 == s => last.1 = true,
                _ => cuts.push((s, true)),
            }
        }
        self.offsets = offsets;
        for (i, &(from, key)) in cuts.iter().enumerate() {
            let to = cuts.get(i + 1).map_or(data.len(), |c| c.0);
            if from >= to {
                continue;
            }
            let piece = data.slice(from..to);
            let (access_point, entry) = if key || self.audio_only() {
                if self.starts_with_psi(&piece) {
                    (true, None)
                } else {
                    match self.entry_for(&piece) {
                        Some(e) => (true, Some(e)),
                        None => (false, None),
                    }
                }
            } else {
                (false, None)
            };
            out.push(Piece {
                data: piece,
                access_point,
                entry,
            });
        }
        self.cache_psi(&data, data.len());
        self.psi_pos = 0;
    }

    /// Whether the program is known and has no video (every piece is then an
    /// access point).
    fn audio_only(&self) -> bool {
        self.pat.is_some() && self.pmt.is_some() && self.scanner.video().is_none()
    }
}
