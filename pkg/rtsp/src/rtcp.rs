//! RTCP (RFC 3550): the compound sender report (SR + SDES CNAME) a sender
//! emits per track, and a tolerant reader of compound packets.

use bytes::{BufMut, Bytes, BytesMut};

/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp of a wall-clock time.
pub fn ntp_timestamp(t: std::time::SystemTime) -> u64 {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// What a sender report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

impl SenderReport {
    /// SR followed by an SDES with the CNAME (a compound packet).
    pub fn to_bytes(&self, cname: &str) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_u8(0x80);
        b.put_u8(200);
        b.put_u16(6);
        b.put_u32(self.ssrc);
        b.put_u64(self.ntp);
        b.put_u32(self.rtp_timestamp);
        b.put_u32(self.packets);
        b.put_u32(self.octets);
        let name = cname.as_bytes().get(..255).unwrap_or(cname.as_bytes());
        // SSRC + item(type, len, text) + end marker, padded to 32 bits.
        let chunk = 4 + 2 + name.len() + 1;
        let words = chunk.div_ceil(4);
        b.put_u8(0x81);
        b.put_u8(202);
        b.put_u16(words as u16);
        b.put_u32(self.ssrc);
        b.put_u8(1);
        b.put_u8(name.len() as u8);
        b.put_slice(name);
        for _ in 0..(words * 4 - (chunk - 1)) {
            b.put_u8(0);
        }
        b.freeze()
    }
}

/// The packets of a compound RTCP packet: `(packet type, body)`; stops at
/// the first malformed one.
pub fn packets(data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(&[b0, pt, hi, lo]) = rest.get(..4) {
        if b0 >> 6 != 2 {
            break;
        }
        let len = (usize::from(u16::from_be_bytes([hi, lo])) + 1) * 4;
        let Some(p) = rest.get(..len) else { break };
        out.push((pt, p));
        rest = rest.get(len..).unwrap_or_default();
    }
    out
}

/// Parse a sender report packet (as returned by [`packets`]).
pub fn parse_sender_report(p: &[u8]) -> Option<SenderReport> {
    if p.get(1) != Some(&200) || p.len() < 28 {
        return None;
    }
    let u32_at =
        |o: usize| -> Option<u32> { Some(u32::from_be_bytes(p.get(o..o + 4)?.try_into().ok()?)) };
    Some(SenderReport {
        ssrc: u32_at(4)?,
        ntp: (u64::from(u32_at(8)?) << 32) | u64::from(u32_at(12)?),
        rtp_timestamp: u32_at(16)?,
        packets: u32_at(20)?,
        octets: u32_at(24)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_round_trips() {
        let sr = SenderReport {
            ssrc: 0xDEAD_BEEF,
            ntp: ntp_timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1500)),
            rtp_timestamp: 90000,
            packets: 10,
            octets: 12345,
        };
        assert_eq!(sr.ntp >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(sr.ntp & 0xFFFF_FFFF, 1 << 31);
        let b = sr.to_bytes("open-streamer");
        assert_eq!(b.len() % 4, 0);
        let ps = packets(&b);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].0, 200);
        assert_eq!(ps[1].0, 202);
        assert_eq!(parse_sender_report(ps[0].1), Some(sr));
        assert_eq!(&ps[1].1[10..23], b"open-streamer");
        assert!(packets(&[0x80, 200, 0, 50]).is_empty());
        assert!(parse_sender_report(&[0x80, 201, 0, 1, 0, 0, 0, 0]).is_none());
    }
}
