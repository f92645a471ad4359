//! PES packet headers: parsing and writing.

/// Errors of [`parse_pes_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PesError {
    #[error("PES header truncated")]
    Truncated,
    #[error("no PES start code prefix")]
    NoStartCode,
    #[error("PES optional header has bad marker bits")]
    BadMarker,
}

/// The fields of a PES header open-streamer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    pub stream_id: u8,
    /// `PES_packet_length`: bytes after this field, 0 = unbounded (video).
    pub packet_length: u16,
    /// Raw 33-bit presentation timestamp.
    pub pts: Option<u64>,
    /// Raw 33-bit decode timestamp.
    pub dts: Option<u64>,
    pub data_alignment: bool,
    /// Offset of the elementary-stream payload from the start of the PES packet.
    pub header_len: usize,
}

impl PesHeader {
    /// End of the PES packet (from its start) when the length is bounded.
    pub fn total_len(&self) -> Option<usize> {
        (self.packet_length != 0).then(|| 6 + usize::from(self.packet_length))
    }
}

/// Stream ids whose PES packets have no optional header.
fn has_no_optional_header(stream_id: u8) -> bool {
    matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

/// Decode a 5-byte PTS/DTS field.
pub fn parse_timestamp(b: [u8; 5]) -> u64 {
    (u64::from((b[0] >> 1) & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | (u64::from(b[4]) >> 1)
}

/// Encode a 33-bit timestamp with the 4-bit `prefix` ('0010' PTS only,
/// '0011' PTS followed by DTS, '0001' DTS).
pub fn write_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & ((1 << 33) - 1);
    [
        (prefix << 4) | (((ts >> 29) as u8) & 0x0E) | 1,
        (ts >> 22) as u8,
        (((ts >> 14) as u8) & 0xFE) | 1,
        (ts >> 7) as u8,
        (((ts << 1) as u8) & 0xFE) | 1,
    ]
}

fn ts_at(data: &[u8], at: usize) -> Option<u64> {
    data.get(at..at + 5)
        .and_then(|s| <[u8; 5]>::try_from(s).ok())
        .map(parse_timestamp)
}

/// Parse the header at the start of a PES packet. Needs the whole optional
/// header (9 + `PES_header_data_length` bytes).
pub fn parse_pes_header(data: &[u8]) -> Result<PesHeader, PesError> {
    let fixed: &[u8; 6] = data.first_chunk().ok_or(PesError::Truncated)?;
    if fixed[0] != 0 || fixed[1] != 0 || fixed[2] != 1 {
        return Err(PesError::NoStartCode);
    }
    let stream_id = fixed[3];
    let packet_length = u16::from_be_bytes([fixed[4], fixed[5]]);
    let mut header = PesHeader {
        stream_id,
        packet_length,
        pts: None,
        dts: None,
        data_alignment: false,
        header_len: 6,
    };
    if has_no_optional_header(stream_id) {
        return Ok(header);
    }
    let opt: &[u8; 9] = data.first_chunk().ok_or(PesError::Truncated)?;
    if opt[6] & 0xC0 != 0x80 {
        return Err(PesError::BadMarker);
    }
    header.data_alignment = opt[6] & 0x04 != 0;
    let flags = opt[7] >> 6;
    header.header_len = 9 + usize::from(opt[8]);
    if data.len() < header.header_len {
        return Err(PesError::Truncated);
    }
    if flags & 0x02 != 0 {
        header.pts = ts_at(data, 9);
        if header.pts.is_none() || header.header_len < 14 {
            return Err(PesError::Truncated);
        }
        if flags == 0x03 {
            header.dts = ts_at(data, 14);
            if header.dts.is_none() || header.header_len < 19 {
                return Err(PesError::Truncated);
            }
        }
    }
    Ok(header)
}

/// Largest PES header written by [`write_pes_header`].
pub const MAX_PES_HEADER_LEN: usize = 19;

/// Write a PES header into `out` (which must hold [`MAX_PES_HEADER_LEN`]
/// bytes); returns its length. `payload_len` is the number of bytes that
/// follow the header; when the resulting `PES_packet_length` would exceed
/// 65535 (or `bounded` is false) the length field is 0.
pub fn write_pes_header(
    out: &mut [u8; MAX_PES_HEADER_LEN],
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: usize,
    bounded: bool,
) -> usize {
    let ts_len = if dts.is_some() { 10 } else { 5 };
    let header_len = 9 + ts_len;
    let pes_len = header_len - 6 + payload_len;
    let length_field = if bounded && pes_len <= 0xFFFF {
        pes_len as u16
    } else {
        0
    };
    out[0] = 0;
    out[1] = 0;
    out[2] = 1;
    out[3] = stream_id;
    out[4..6].copy_from_slice(&length_field.to_be_bytes());
    out[6] = 0x84; // '10' marker, data_alignment_indicator
    out[7] = if dts.is_some() { 0xC0 } else { 0x80 };
    out[8] = ts_len as u8;
    match dts {
        Some(dts) => {
            out[9..14].copy_from_slice(&write_timestamp(0x3, pts));
            out[14..19].copy_from_slice(&write_timestamp(0x1, dts));
        }
        None => out[9..14].copy_from_slice(&write_timestamp(0x2, pts)),
    }
    header_len
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut buf = [0u8; MAX_PES_HEADER_LEN];
        let n = write_pes_header(&mut buf, 0xE0, (1 << 33) - 1, Some(12345), 1000, true);
        assert_eq!(n, 19);
        let h = parse_pes_header(&buf[..n]).unwrap();
        assert_eq!(h.stream_id, 0xE0);
        assert_eq!(h.pts, Some((1 << 33) - 1));
        assert_eq!(h.dts, Some(12345));
        assert_eq!(h.header_len, 19);
        assert_eq!(h.total_len(), Some(6 + 13 + 1000));
        let n = write_pes_header(&mut buf, 0xC0, 90_000, None, 100_000, true);
        let h = parse_pes_header(&buf[..n]).unwrap();
        assert_eq!((h.pts, h.dts, h.packet_length), (Some(90_000), None, 0));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse_pes_header(&[0, 0, 1]), Err(PesError::Truncated));
        assert_eq!(
            parse_pes_header(&[0, 0, 2, 0xE0, 0, 0]),
            Err(PesError::NoStartCode)
        );
        assert_eq!(
            parse_pes_header(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21]),
            Err(PesError::Truncated)
        );
        assert_eq!(
            parse_pes_header(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 2, 0, 0]),
            Err(PesError::Truncated)
        );
        // Padding stream: no optional header.
        assert_eq!(
            parse_pes_header(&[0, 0, 1, 0xBE, 0, 4]).unwrap().header_len,
            6
        );
    }
}
