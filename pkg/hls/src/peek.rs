//! A cheap timestamp peek on hub chunks: no demux, no PES reassembly.
//!
//! The HLS segmenter needs one figure per chunk: the decode time of the
//! first PES that starts in it on the *reference* PID (the first video
//! stream, or the first audio stream of an audio-only program). That is a
//! walk over the 4-byte packet headers plus one PES-header parse per PES
//! start on that PID; the PAT and PMT are parsed only when they are seen,
//! and their packets are kept so that every segment can start with them.

use bytes::Bytes;
use os_av::TrackKind;
use os_mpegts::PACKET_SIZE;
use os_mpegts::packet::parse_packet;
use os_mpegts::pes::parse_pes_header;
use os_mpegts::psi::{parse_pat, parse_pmt};

const PID_PAT: u16 = 0;

/// Timestamps found in one chunk on the reference PID (90 kHz, 33 bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peek {
    /// Decode time (DTS, else PTS) of the first PES starting in the chunk.
    pub first: Option<u64>,
    /// Decode time of the last PES starting in the chunk.
    pub last: Option<u64>,
}

/// PSI state of one stream as seen by the segmenter.
#[derive(Debug, Default)]
pub struct PtsPeek {
    pmt_pid: Option<u16>,
    /// Latest PAT and PMT packets, as received.
    pat: Option<Bytes>,
    pmt: Option<Bytes>,
    /// The PID whose timestamps time the segments.
    reference: Option<u16>,
}

impl PtsPeek {
    /// Forget everything (source switch: PIDs may change).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// `PAT + PMT` packets to put in front of a segment that does not start
    /// with a PAT, once both are known.
    pub fn psi(&self) -> Option<Bytes> {
        let (pat, pmt) = (self.pat.as_ref()?, self.pmt.as_ref()?);
        let mut v = Vec::with_capacity(2 * PACKET_SIZE);
        v.extend_from_slice(pat);
        v.extend_from_slice(pmt);
        Some(Bytes::from(v))
    }

    /// Walk the packets of `chunk` (`chunk` is a slice of the shared `Bytes`
    /// so PSI packets are kept without copying).
    pub fn scan(&mut self, chunk: &Bytes) -> Peek {
        let mut peek = Peek::default();
        for (i, pkt) in chunk.chunks_exact(PACKET_SIZE).enumerate() {
            let Some(pkt) = pkt.first_chunk::<PACKET_SIZE>() else {
                continue;
            };
            if pkt[0] != os_mpegts::SYNC_BYTE || pkt[1] & 0x40 == 0 {
                continue; // only packets starting a section or a PES matter
            }
            let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
            let Some(parsed) = parse_packet(pkt) else {
                continue;
            };
            let payload = pkt.get(parsed.payload_offset..).unwrap_or_default();
            if pid == PID_PAT {
                if let Some(pmt_pid) = section(payload)
                    .and_then(|s| parse_pat(s).ok())
                    .and_then(|e| e.first().map(|e| e.pmt_pid))
                {
                    self.pmt_pid = Some(pmt_pid);
                    self.pat = Some(chunk.slice(i * PACKET_SIZE..(i + 1) * PACKET_SIZE));
                }
            } else if Some(pid) == self.pmt_pid {
                if let Some(pmt) = section(payload).and_then(|s| parse_pmt(s).ok()) {
                    let kind_pid = |kind: TrackKind| {
                        pmt.streams
                            .iter()
                            .find(|s| s.codec.is_some_and(|c| c.kind() == kind))
                            .map(|s| s.pid)
                    };
                    self.reference =
                        kind_pid(TrackKind::Video).or_else(|| kind_pid(TrackKind::Audio));
                    self.pmt = Some(chunk.slice(i * PACKET_SIZE..(i + 1) * PACKET_SIZE));
                }
            } else if Some(pid) == self.reference
                && let Ok(h) = parse_pes_header(payload)
                && let Some(ts) = h.dts.or(h.pts)
            {
                peek.first.get_or_insert(ts);
                peek.last = Some(ts);
            }
        }
        peek
    }
}

/// Whether `chunk` begins with a PAT packet.
pub fn starts_with_pat(chunk: &[u8]) -> bool {
    matches!(chunk, [0x47, b1, b2, ..] if (u16::from(b1 & 0x1F) << 8 | u16::from(*b2)) == PID_PAT)
}

/// The section starting in a PUSI payload (pointer field honoured).
fn section(payload: &[u8]) -> Option<&[u8]> {
    let (&ptr, rest) = payload.split_first()?;
    rest.get(usize::from(ptr)..)
}

/// `b - a` on the 33-bit 90 kHz clock, in seconds; `None` when `b` is not
/// after `a` (or more than half the clock range after it).
pub fn ts_seconds(a: u64, b: u64) -> Option<f64> {
    const MASK: u64 = (1 << 33) - 1;
    let d = b.wrapping_sub(a) & MASK;
    (d < (1 << 32)).then(|| d as f64 / 90_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_difference_wraps() {
        assert_eq!(ts_seconds(0, 180_000), Some(2.0));
        assert_eq!(ts_seconds((1 << 33) - 90_000, 90_000), Some(2.0));
        assert_eq!(ts_seconds(180_000, 0), None);
    }
}
