//! Cheap access-point scanner: finds the packets that start a keyframe PES
//! without demuxing.
//!
//! For each packet on the video PID that starts a PES
//! (`payload_unit_start_indicator`), the packet is reported when its
//! adaptation field has `random_access_indicator` set, or when the NAL units
//! in that packet's payload reach an IDR (H.264 type 5) / IRAP (H.265 types
//! 16..=23) slice before any other slice. Only the first packet of the PES is
//! inspected, so a keyframe whose first slice starts in a later packet (very
//! large SEI/parameter sets) is found only through the indicator.

use os_av::Codec;
use os_codecs::annexb::find_start_code;

use crate::packet::{PACKET_SIZE, PID_PAT, SYNC_BYTE};
use crate::pes::parse_pes_header;
use crate::psi::{parse_pat, parse_pmt};

/// Whether an Annex-B buffer's first picture is a random access point: the
/// NAL units are walked until the first slice, which decides.
pub fn contains_keyframe(codec: Codec, annexb: &[u8]) -> bool {
    let mut from = 0;
    while let Some((_, nal)) = find_start_code(annexb, from) {
        let Some(&b) = annexb.get(nal) else {
            return false;
        };
        match codec {
            Codec::H264 => match b & 0x1F {
                5 => return true,
                1..=4 => return false,
                _ => {}
            },
            Codec::H265 => match (b >> 1) & 0x3F {
                16..=23 => return true,
                0..=31 => return false,
                _ => {}
            },
            _ => return false,
        }
        from = nal;
    }
    false
}

/// Finds keyframe starts in chunks of TS. Keeps the video PID (given or
/// learned from PAT/PMT) across calls.
#[derive(Debug, Clone, Default)]
pub struct KeyframeScanner {
    video: Option<(u16, Codec)>,
    learn: bool,
    program: Option<u16>,
    pmt_pid: Option<u16>,
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

    /// Append to `out` the offsets (within `chunk`) of the packets that start
    /// a keyframe PES. `chunk` should be packet aligned; if it is not, or sync
    /// is lost inside it, scanning resumes at the next confirmed sync byte.
    pub fn scan(&mut self, chunk: &[u8], out: &mut Vec<usize>) {
        let mut pos = 0;
        while let Some(rest) = chunk.get(pos..).filter(|r| r.len() >= PACKET_SIZE) {
            let mut advanced = 0;
            let mut lost = false;
            for pkt in rest.chunks_exact(PACKET_SIZE) {
                let Some(head) = pkt.first_chunk::<4>() else {
                    break;
                };
                let w = u32::from_be_bytes(*head);
                if (w >> 24) as u8 != SYNC_BYTE {
                    lost = true;
                    break;
                }
                // PUSI set: the only packets of interest.
                if w & 0x0040_0000 != 0 {
                    let pid = ((w >> 8) & 0x1FFF) as u16;
                    match self.video {
                        Some((vpid, codec)) if vpid == pid => {
                            if packet_is_keyframe(pkt, codec) {
                                out.push(pos + advanced);
                            }
                        }
                        _ if self.learn => self.psi(pid, pkt),
                        _ => {}
                    }
                }
                advanced += PACKET_SIZE;
            }
            pos += advanced;
            if !lost {
                return;
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

    fn psi(&mut self, pid: u16, pkt: &[u8]) {
        if pid != PID_PAT && Some(pid) != self.pmt_pid {
            return;
        }
        let Some(section) = single_section(pkt) else {
            return;
        };
        if pid == PID_PAT {
            if let Ok(entries) = parse_pat(section) {
                if let Some(e) = entries.first() {
                    self.program = Some(e.program_number);
                    self.pmt_pid = Some(e.pmt_pid);
                }
            }
        } else if let Ok(pmt) = parse_pmt(section) {
            if Some(pmt.program_number) == self.program {
                self.video = pmt.streams.iter().find_map(|s| match s.codec {
                    Some(c @ (Codec::H264 | Codec::H265)) => Some((s.pid, c)),
                    _ => None,
                });
            }
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

fn packet_is_keyframe(pkt: &[u8], codec: Codec) -> bool {
    let afc = (pkt.get(3).copied().unwrap_or(0) >> 4) & 0x03;
    if afc & 2 != 0
        && pkt.get(4).copied().unwrap_or(0) > 0
        && pkt.get(5).is_some_and(|f| f & 0x40 != 0)
    {
        return true;
    }
    let Some(pes) = payload(pkt) else {
        return false;
    };
    match parse_pes_header(pes) {
        Ok(h) => pes
            .get(h.header_len..)
            .is_some_and(|es| contains_keyframe(codec, es)),
        Err(_) => false,
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
