//! Transport packet header and adaptation field parsing.

/// Size of one transport packet.
pub const PACKET_SIZE: usize = 188;
/// First byte of every transport packet.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table.
pub const PID_PAT: u16 = 0x0000;
/// PID of null (stuffing) packets.
pub const PID_NULL: u16 = 0x1FFF;
/// Largest valid PID.
pub const PID_MAX: u16 = 0x1FFF;

/// The fixed 4-byte header of a transport packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    pub transport_error: bool,
    pub payload_unit_start: bool,
    pub pid: u16,
    pub scrambling: u8,
    pub has_adaptation_field: bool,
    pub has_payload: bool,
    pub continuity_counter: u8,
}

impl PacketHeader {
    /// Decode the header bytes (the sync byte is not checked).
    pub fn parse(h: [u8; 4]) -> Self {
        Self {
            transport_error: h[1] & 0x80 != 0,
            payload_unit_start: h[1] & 0x40 != 0,
            pid: (u16::from(h[1] & 0x1F) << 8) | u16::from(h[2]),
            scrambling: h[3] >> 6,
            has_adaptation_field: h[3] & 0x20 != 0,
            has_payload: h[3] & 0x10 != 0,
            continuity_counter: h[3] & 0x0F,
        }
    }
}

/// The adaptation field flags open-streamer cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdaptationField {
    pub discontinuity: bool,
    pub random_access: bool,
    /// Program clock reference in 27 MHz units (33-bit base * 300 + extension).
    pub pcr: Option<u64>,
}

/// Parsed view of one packet: header, adaptation field, payload offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub header: PacketHeader,
    pub adaptation: AdaptationField,
    /// Offset of the payload within the packet (188 when there is none).
    pub payload_offset: usize,
}

/// Decode a 6-byte PCR field into 27 MHz units.
pub fn parse_pcr(b: [u8; 6]) -> u64 {
    let base = (u64::from(b[0]) << 25)
        | (u64::from(b[1]) << 17)
        | (u64::from(b[2]) << 9)
        | (u64::from(b[3]) << 1)
        | (u64::from(b[4]) >> 7);
    let ext = (u64::from(b[4] & 0x01) << 8) | u64::from(b[5]);
    base * 300 + ext
}

/// Encode a 27 MHz PCR value (wrapped to 33 bits of base) into 6 bytes.
pub fn write_pcr(pcr: u64) -> [u8; 6] {
    let base = (pcr / 300) & ((1 << 33) - 1);
    let ext = pcr % 300;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        (((base & 1) as u8) << 7) | 0x7E | ((ext >> 8) as u8 & 0x01),
        ext as u8,
    ]
}

/// Parse a 188-byte packet. Returns `None` when the adaptation field length
/// is impossible or the adaptation field control is reserved (`00`).
#[inline]
pub fn parse_packet(pkt: &[u8; PACKET_SIZE]) -> Option<Packet> {
    let header = PacketHeader::parse([pkt[0], pkt[1], pkt[2], pkt[3]]);
    if !header.has_adaptation_field && !header.has_payload {
        return None;
    }
    let mut adaptation = AdaptationField::default();
    let mut payload_offset = 4;
    if header.has_adaptation_field {
        let len = usize::from(pkt[4]);
        if len > 183 || (header.has_payload && len > 182) {
            return None;
        }
        payload_offset = 5 + len;
        if len > 0 {
            let flags = pkt[5];
            adaptation.discontinuity = flags & 0x80 != 0;
            adaptation.random_access = flags & 0x40 != 0;
            if flags & 0x10 != 0 && len >= 7 {
                adaptation.pcr = Some(parse_pcr([
                    pkt[6], pkt[7], pkt[8], pkt[9], pkt[10], pkt[11],
                ]));
            }
        }
    }
    if !header.has_payload {
        payload_offset = PACKET_SIZE;
    }
    Some(Packet {
        header,
        adaptation,
        payload_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_round_trip() {
        for pcr in [0u64, 299, 300, 27_000_000, ((1u64 << 33) - 1) * 300 + 299] {
            assert_eq!(parse_pcr(write_pcr(pcr)), pcr);
        }
    }
}
