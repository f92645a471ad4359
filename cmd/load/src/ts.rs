//! MPEG-TS as an SRT reader sees it: continuity-counter gaps (lost
//! packets) and the decode timestamps of video PES packets (frames).

const PACKET: usize = 188;
const NULL_PID: u16 = 0x1FFF;

/// Scans TS packets as they arrive (messages need not be packet aligned).
#[derive(Debug, Default, Clone)]
pub struct TsScan {
    /// (pid, last continuity counter).
    cc: Vec<(u16, u8)>,
    /// The first PID that carried a video PES (stream id 0xE0..=0xEF).
    video_pid: Option<u16>,
    partial: Vec<u8>,
    /// Packets that did not start with the sync byte.
    pub sync_errors: u64,
}

/// 33-bit PES timestamp at `b[0..5]`.
fn pes_timestamp(b: &[u8]) -> Option<u64> {
    let b: &[u8; 5] = b.get(..5)?.try_into().ok()?;
    Some(
        (u64::from(b[0] >> 1) & 7) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1),
    )
}

impl TsScan {
    /// Scan `data`; pushes the media time (ms, from the DTS or else the PTS;
    /// `None` without either) of every video frame that starts in it onto
    /// `frames`, and returns the packets lost before it (continuity gaps).
    pub fn push(&mut self, data: &[u8], frames: &mut Vec<Option<f64>>) -> u64 {
        let mut lost = 0;
        if self.partial.is_empty() {
            let whole = data.len() / PACKET * PACKET;
            for p in data[..whole].chunks_exact(PACKET) {
                lost += self.packet(p, frames);
            }
            self.partial.extend_from_slice(&data[whole..]);
        } else {
            self.partial.extend_from_slice(data);
            let buf = std::mem::take(&mut self.partial);
            let whole = buf.len() / PACKET * PACKET;
            for p in buf[..whole].chunks_exact(PACKET) {
                lost += self.packet(p, frames);
            }
            self.partial.extend_from_slice(&buf[whole..]);
        }
        lost
    }

    fn packet(&mut self, p: &[u8], frames: &mut Vec<Option<f64>>) -> u64 {
        if p[0] != 0x47 {
            self.sync_errors += 1;
            return 0;
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
        if pid == NULL_PID {
            return 0;
        }
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0F;
        let has_payload = afc & 1 != 0;
        let mut payload_start = 4;
        let mut discontinuity = false;
        if afc & 2 != 0 {
            let af_len = usize::from(p[4]);
            discontinuity = af_len > 0 && p.get(5).is_some_and(|f| f & 0x80 != 0);
            payload_start = 5 + af_len;
        }
        let lost = match self.cc.iter_mut().find(|(q, _)| *q == pid) {
            Some((_, last)) => {
                let expected = if has_payload {
                    (*last + 1) & 0x0F
                } else {
                    *last
                };
                let gap = if discontinuity || cc == *last {
                    // A signalled discontinuity, or a duplicate packet.
                    0
                } else {
                    u64::from(cc.wrapping_sub(expected) & 0x0F)
                };
                *last = cc;
                gap
            }
            None => {
                self.cc.push((pid, cc));
                0
            }
        };
        if pusi && has_payload {
            let pes = p.get(payload_start..).unwrap_or_default();
            if pes.len() >= 9 && pes[..3] == [0, 0, 1] && (0xE0..=0xEF).contains(&pes[3]) {
                let video = *self.video_pid.get_or_insert(pid);
                if video == pid {
                    let flags = pes[7] >> 6;
                    let ts = match flags {
                        3 => pes.get(14..19).and_then(pes_timestamp),
                        2 => pes.get(9..14).and_then(pes_timestamp),
                        _ => None,
                    };
                    frames.push(ts.map(|t| t as f64 / 90.0));
                }
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_ts(marker: u8, t: u64) -> [u8; 5] {
        [
            marker << 4 | ((t >> 29) & 0x0E) as u8 | 1,
            (t >> 22) as u8,
            ((t >> 14) & 0xFE) as u8 | 1,
            (t >> 7) as u8,
            ((t << 1) & 0xFE) as u8 | 1,
        ]
    }

    /// A packet of `pid` with counter `cc`; a video PES start with `pts`
    /// and `dts` (90 kHz) when given.
    fn packet(pid: u16, cc: u8, pes: Option<(u64, u64)>) -> Vec<u8> {
        let mut p = vec![0x47, (pid >> 8) as u8 & 0x1F, pid as u8, 0x10 | cc];
        if let Some((pts, dts)) = pes {
            p[1] |= 0x40;
            p.extend_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 10]);
            p.extend_from_slice(&encode_ts(3, pts));
            p.extend_from_slice(&encode_ts(1, dts));
        }
        p.resize(PACKET, 0xFF);
        p
    }

    #[test]
    fn continuity_gaps_are_lost_packets() {
        let mut s = TsScan::default();
        let mut f = Vec::new();
        let mut data = Vec::new();
        for cc in [14u8, 15, 0, 1] {
            data.extend(packet(0x100, cc, None));
        }
        // 2, 3 missing; 4 duplicated (not a loss).
        for cc in [4u8, 4, 5] {
            data.extend(packet(0x100, cc, None));
        }
        // Another PID has its own counter.
        data.extend(packet(0x101, 9, None));
        data.extend(packet(0x101, 10, None));
        // Wrap: 15 -> 1 loses 0.
        data.extend(packet(0x101, 15, None));
        data.extend(packet(0x101, 1, None));
        assert_eq!(s.push(&data, &mut f), 2 + 4 + 1);
        assert!(f.is_empty());
    }

    #[test]
    fn video_frames_carry_their_decode_time_across_split_messages() {
        let mut s = TsScan::default();
        let mut f = Vec::new();
        let mut data = packet(0x100, 0, Some((90_000 + 3_600, 90_000)));
        data.extend(packet(0x100, 1, None));
        data.extend(packet(0x100, 2, Some((93_600 + 3_600, 93_600))));
        // Split mid-packet.
        let (a, b) = data.split_at(250);
        assert_eq!(s.push(a, &mut f), 0);
        assert_eq!(f, vec![Some(1000.0)]);
        assert_eq!(s.push(b, &mut f), 0);
        assert_eq!(f, vec![Some(1000.0), Some(1040.0)]);
        // A large timestamp (33 bits) decodes exactly.
        let mut s = TsScan::default();
        let mut f = Vec::new();
        let big = (1u64 << 33) - 90;
        s.push(&packet(0x200, 0, Some((big, big))), &mut f);
        assert_eq!(f, vec![Some(big as f64 / 90.0)]);
    }
}
