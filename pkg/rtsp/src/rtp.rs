//! RTP packetizers, sans-IO.
//!
//! One [`Packetizer`] per track turns access units ([`os_av`] payload
//! conventions: Annex-B video, raw AAC frames) into RTP packets of at most
//! [`MAX_PAYLOAD`] payload bytes:
//!
//! - H.264 (RFC 6184, packetization-mode 1): single NAL unit packets and
//!   FU-A fragments. Access unit delimiters are dropped; SPS and PPS are
//!   sent in-band before every IDR that does not carry them.
//! - H.265 (RFC 7798): single NAL unit packets and FU fragments (type 49);
//!   VPS/SPS/PPS in-band before every IRAP picture that does not carry them.
//! - AAC (RFC 3640, `mpeg4-generic` AAC-hbr): one access unit per packet with
//!   a 16-bit AU header (13-bit size, 3-bit index); larger frames are
//!   fragmented with the marker on the last fragment.
//!
//! The marker bit is set on the last packet of each access unit.

use bytes::{BufMut, Bytes, BytesMut};
use os_av::Codec;

/// Largest RTP payload, bytes (a 1500-byte MTU minus IP/UDP/RTP headers, with room).
pub const MAX_PAYLOAD: usize = 1400;
/// RTP fixed header size.
pub const HEADER_LEN: usize = 12;

const H264_STAP_FU_A: u8 = 28;
const H265_FU: u8 = 49;

/// A parsed RTP fixed header (for clients and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Offset of the payload in the packet.
    pub payload_offset: usize,
}

impl RtpHeader {
    /// Parse the fixed header (with CSRCs and extension skipped); `None` if
    /// the bytes are not an RTP version 2 packet.
    pub fn parse(p: &[u8]) -> Option<RtpHeader> {
        let b0 = *p.first()?;
        if b0 >> 6 != 2 {
            return None;
        }
        let b1 = *p.get(1)?;
        let cc = usize::from(b0 & 0x0F);
        let mut off = HEADER_LEN + cc * 4;
        if b0 & 0x10 != 0 {
            let ext = p.get(off + 2..off + 4)?;
            off += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
        }
        if off > p.len() {
            return None;
        }
        Some(RtpHeader {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7F,
            sequence: u16::from_be_bytes([*p.get(2)?, *p.get(3)?]),
            timestamp: u32::from_be_bytes(p.get(4..8)?.try_into().ok()?),
            ssrc: u32::from_be_bytes(p.get(8..12)?.try_into().ok()?),
            payload_offset: off,
        })
    }
}

/// Packetizes the access units of one track.
#[derive(Debug, Clone)]
pub struct Packetizer {
    codec: Codec,
    payload_type: u8,
    ssrc: u32,
    /// Next sequence number.
    sequence: u16,
    /// Parameter sets sent before keyframes that lack them (VPS, SPS, PPS).
    vps: Vec<Bytes>,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    /// Packets and payload bytes produced (for sender reports).
    pub packets: u64,
    pub octets: u64,
}

impl Packetizer {
    /// A packetizer for `codec` (H.264, H.265 or AAC; `None` otherwise).
    pub fn new(codec: Codec, payload_type: u8, ssrc: u32, first_sequence: u16) -> Option<Self> {
        if !matches!(codec, Codec::H264 | Codec::H265 | Codec::Aac) {
            return None;
        }
        Some(Self {
            codec,
            payload_type,
            ssrc,
            sequence: first_sequence,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
            packets: 0,
            octets: 0,
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number of the next packet.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The parameter sets to repeat before keyframes (without start codes).
    pub fn set_parameter_sets(&mut self, vps: &[Bytes], sps: &[Bytes], pps: &[Bytes]) {
        self.vps = vps.to_vec();
        self.sps = sps.to_vec();
        self.pps = pps.to_vec();
    }

    fn packet(&mut self, marker: bool, timestamp: u32, parts: &[&[u8]]) -> Bytes {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut b = BytesMut::with_capacity(HEADER_LEN + len);
        b.put_u8(0x80);
        b.put_u8((u8::from(marker) << 7) | (self.payload_type & 0x7F));
        b.put_u16(self.sequence);
        b.put_u32(timestamp);
        b.put_u32(self.ssrc);
        for p in parts {
            b.put_slice(p);
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.packets += 1;
        self.octets += len as u64;
        b.freeze()
    }

    /// Append the packets of one access unit to `out`.
    pub fn packetize(&mut self, payload: &[u8], timestamp: u32, out: &mut Vec<Bytes>) {
        match self.codec {
            Codec::H264 | Codec::H265 => self.video(payload, timestamp, out),
            Codec::Aac => self.aac(payload, timestamp, out),
            _ => {}
        }
    }

    fn video(&mut self, payload: &[u8], timestamp: u32, out: &mut Vec<Bytes>) {
        let h265 = self.codec == Codec::H265;
        let kind = |nal: &[u8]| -> u8 {
            let b = nal.first().copied().unwrap_or(0);
            if h265 { (b >> 1) & 0x3F } else { b & 0x1F }
        };
        let mut nals: Vec<&[u8]> = os_codecs::annexb::nal_units(payload)
            .filter(|n| n.len() >= if h265 { 3 } else { 2 })
            // Access unit delimiters carry nothing RTP needs.
            .filter(|n| kind(n) != if h265 { 35 } else { 9 })
            .collect();
        let keyframe = nals.iter().any(|n| {
            let t = kind(n);
            if h265 { (16..=21).contains(&t) } else { t == 5 }
        });
        let extra: Vec<Bytes>;
        if keyframe {
            let has = |t: u8| nals.iter().any(|n| kind(n) == t);
            let missing = if h265 {
                !(has(32) && has(33) && has(34))
            } else {
                !(has(7) && has(8))
            };
            if missing {
                extra = self
                    .vps
                    .iter()
                    .chain(&self.sps)
                    .chain(&self.pps)
                    .cloned()
                    .collect();
                let mut all: Vec<&[u8]> = extra.iter().map(|b| &b[..]).collect();
                all.extend(nals.iter().filter(|n| {
                    let t = kind(n);
                    if h265 {
                        !(32..=34).contains(&t)
                    } else {
                        !(7..=8).contains(&t)
                    }
                }));
                nals = all;
            }
        }
        let count = nals.len();
        for (i, nal) in nals.into_iter().enumerate() {
            let last = i + 1 == count;
            if nal.len() <= MAX_PAYLOAD {
                let p = self.packet(last, timestamp, &[nal]);
                out.push(p);
                continue;
            }
            // Fragmentation unit(s).
            let (head_len, chunk) = if h265 {
                (2, MAX_PAYLOAD - 3)
            } else {
                (1, MAX_PAYLOAD - 2)
            };
            let (head, body) = nal.split_at(head_len);
            let pieces = body.len().div_ceil(chunk);
            for (j, piece) in body.chunks(chunk).enumerate() {
                let start = j == 0;
                let end = j + 1 == pieces;
                let flags = (u8::from(start) << 7) | (u8::from(end) << 6);
                if h265 {
                    let ph = [(head[0] & 0x81) | (H265_FU << 1), head[1]];
                    let fu = [flags | ((head[0] >> 1) & 0x3F)];
                    let p = self.packet(last && end, timestamp, &[&ph, &fu, piece]);
                    out.push(p);
                } else {
                    let ind = [(head[0] & 0xE0) | H264_STAP_FU_A];
                    let fu = [flags | (head[0] & 0x1F)];
                    let p = self.packet(last && end, timestamp, &[&ind, &fu, piece]);
                    out.push(p);
                }
            }
        }
    }

    fn aac(&mut self, frame: &[u8], timestamp: u32, out: &mut Vec<Bytes>) {
        // AU-header: 13-bit size, 3-bit index (0); AU-headers-length = 16 bits.
        let size = frame.len().min(0x1FFF) as u16;
        let header = [0x00, 0x10, (size >> 5) as u8, ((size & 0x1F) << 3) as u8];
        let chunk = MAX_PAYLOAD - header.len();
        let frame = frame.get(..usize::from(size)).unwrap_or(frame);
        if frame.is_empty() {
            return;
        }
        let pieces = frame.len().div_ceil(chunk);
        for (i, piece) in frame.chunks(chunk).enumerate() {
            let p = self.packet(i + 1 == pieces, timestamp, &[&header, piece]);
            out.push(p);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use os_av::AccessUnit;
    use os_mpegts::{Demuxer, Event};

    fn units(file: &str) -> Vec<AccessUnit> {
        let path = format!("{}/../../data/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read(&path).unwrap();
        let mut d = Demuxer::new();
        d.push(&data);
        d.flush();
        let mut out = Vec::new();
        while let Some(e) = d.pull() {
            if let Event::AccessUnit(au) = e {
                out.push(au);
            }
        }
        out
    }

    /// Depacketize H.264/H.265 packets of one access unit back into NAL units.
    fn depacketize(packets: &[Bytes], h265: bool) -> Vec<Vec<u8>> {
        let mut nals: Vec<Vec<u8>> = Vec::new();
        for p in packets {
            let h = RtpHeader::parse(p).unwrap();
            let pl = &p[h.payload_offset..];
            let t = if h265 {
                (pl[0] >> 1) & 0x3F
            } else {
                pl[0] & 0x1F
            };
            let fu = if h265 { H265_FU } else { H264_STAP_FU_A };
            if t != fu {
                nals.push(pl.to_vec());
                continue;
            }
            if h265 {
                let fh = pl[2];
                if fh & 0x80 != 0 {
                    nals.push(vec![(pl[0] & 0x81) | ((fh & 0x3F) << 1), pl[1]]);
                }
                nals.last_mut().unwrap().extend_from_slice(&pl[3..]);
            } else {
                let fh = pl[1];
                if fh & 0x80 != 0 {
                    nals.push(vec![(pl[0] & 0xE0) | (fh & 0x1F)]);
                }
                nals.last_mut().unwrap().extend_from_slice(&pl[2..]);
            }
        }
        nals
    }

    fn check_video(file: &str, codec: Codec) {
        let h265 = codec == Codec::H265;
        let aus: Vec<AccessUnit> = units(file)
            .into_iter()
            .filter(|a| a.codec == codec)
            .collect();
        assert_eq!(aus.len(), 75, "{file}");
        let mut p = Packetizer::new(codec, 96, 0x1234, 65530).unwrap();
        let sets = os_codecs::nal::extract_parameter_sets(codec, &aus[0].payload);
        p.set_parameter_sets(&sets.vps, &sets.sps, &sets.pps);
        let mut seq = 65530u16;
        let mut fragmented = 0;
        for (i, au) in aus.iter().enumerate() {
            let mut pk = Vec::new();
            p.packetize(&au.payload, au.pts as u32, &mut pk);
            assert!(!pk.is_empty());
            for (j, b) in pk.iter().enumerate() {
                let h = RtpHeader::parse(b).unwrap();
                assert_eq!(h.sequence, seq, "contiguous sequence numbers");
                seq = seq.wrapping_add(1);
                assert_eq!(h.ssrc, 0x1234);
                assert_eq!(h.payload_type, 96);
                assert_eq!(h.timestamp, au.pts as u32);
                assert_eq!(
                    h.marker,
                    j + 1 == pk.len(),
                    "marker on the last packet only"
                );
                assert!(b.len() <= HEADER_LEN + MAX_PAYLOAD);
            }
            fragmented += pk.len();
            let got = depacketize(&pk, h265);
            let aud = if h265 { 35 } else { 9 };
            let want: Vec<Vec<u8>> = os_codecs::annexb::nal_units(&au.payload)
                .filter(|n| {
                    let t = if h265 {
                        (n[0] >> 1) & 0x3F
                    } else {
                        n[0] & 0x1F
                    };
                    t != aud
                })
                .map(<[u8]>::to_vec)
                .collect();
            if au.keyframe {
                // Parameter sets first (in-band), then the picture.
                let ps = if h265 { vec![32, 33, 34] } else { vec![7, 8] };
                let kinds: Vec<u8> = got
                    .iter()
                    .map(|n| {
                        if h265 {
                            (n[0] >> 1) & 0x3F
                        } else {
                            n[0] & 0x1F
                        }
                    })
                    .collect();
                assert_eq!(kinds[..ps.len()], ps[..], "AU {i}: {kinds:?}");
                let pics: Vec<&Vec<u8>> = want
                    .iter()
                    .filter(|n| {
                        let t = if h265 {
                            (n[0] >> 1) & 0x3F
                        } else {
                            n[0] & 0x1F
                        };
                        !ps.contains(&t)
                    })
                    .collect();
                assert_eq!(got.len() - ps.len(), pics.len());
            } else {
                assert_eq!(got, want, "AU {i} round-trips");
            }
        }
        assert!(
            fragmented > aus.len(),
            "some frames were fragmented ({fragmented} packets)"
        );
    }

    #[test]
    fn h264_round_trips_real_frames() {
        check_video("h264_aac.ts", Codec::H264);
    }

    #[test]
    fn h265_round_trips_real_frames() {
        check_video("h265_aac.ts", Codec::H265);
    }

    #[test]
    fn fu_a_fragments_a_large_nal() {
        let mut p = Packetizer::new(Codec::H264, 96, 1, 0).unwrap();
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend((0..4000u32).map(|i| (i % 251) as u8 + 1));
        let mut out = Vec::new();
        p.packetize(&au, 9000, &mut out);
        assert_eq!(out.len(), 3);
        let first = &out[0][HEADER_LEN..];
        assert_eq!(first[0], 0x60 | 28, "FU indicator keeps NRI");
        assert_eq!(first[1], 0x80 | 5, "start bit + type");
        assert_eq!(out[1][HEADER_LEN + 1], 5);
        assert_eq!(out[2][HEADER_LEN + 1], 0x40 | 5, "end bit");
        assert_eq!(depacketize(&out, false), vec![au[4..].to_vec()]);
    }

    #[test]
    fn aac_hbr_au_headers() {
        let aus: Vec<AccessUnit> = units("h264_aac.ts")
            .into_iter()
            .filter(|a| a.codec == Codec::Aac)
            .collect();
        assert!(aus.len() > 100);
        let mut p = Packetizer::new(Codec::Aac, 97, 7, 10).unwrap();
        for au in &aus {
            let mut out = Vec::new();
            p.packetize(&au.payload, 1, &mut out);
            assert_eq!(out.len(), 1);
            let h = RtpHeader::parse(&out[0]).unwrap();
            assert!(h.marker);
            let pl = &out[0][h.payload_offset..];
            assert_eq!(&pl[..2], &[0, 16], "AU-headers-length = 16 bits");
            let size = (usize::from(pl[2]) << 5) | usize::from(pl[3] >> 3);
            assert_eq!(size, au.payload.len());
            assert_eq!(pl[3] & 7, 0, "AU-index 0");
            assert_eq!(&pl[4..], &au.payload[..]);
        }
        // A frame larger than one packet is fragmented, marker on the last.
        let mut out = Vec::new();
        p.packetize(&vec![1u8; 3000], 2, &mut out);
        assert_eq!(out.len(), 3);
        let marks: Vec<bool> = out
            .iter()
            .map(|b| RtpHeader::parse(b).unwrap().marker)
            .collect();
        assert_eq!(marks, vec![false, false, true]);
    }

    #[test]
    fn rtp_header_rejects_garbage() {
        assert!(RtpHeader::parse(&[]).is_none());
        assert!(RtpHeader::parse(&[0x40; 12]).is_none());
        assert!(RtpHeader::parse(&[0x80, 0, 0]).is_none());
        assert!(Packetizer::new(Codec::Mp3, 14, 0, 0).is_none());
    }
}
