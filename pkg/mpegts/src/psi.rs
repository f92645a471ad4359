//! Program-specific information: PAT and PMT sections, stream types.

use os_av::Codec;

use crate::crc::crc32_mpeg2;

/// `stream_type` values open-streamer reads and writes.
pub mod stream_type {
    pub const MPEG1_AUDIO: u8 = 0x03;
    pub const MPEG2_AUDIO: u8 = 0x04;
    pub const PRIVATE_PES: u8 = 0x06;
    pub const AAC_ADTS: u8 = 0x0F;
    pub const H264: u8 = 0x1B;
    pub const H265: u8 = 0x24;
    pub const AC3: u8 = 0x81;
}

/// Descriptor tags used to identify codecs carried as private PES data.
pub mod descriptor {
    pub const REGISTRATION: u8 = 0x05;
    pub const AC3: u8 = 0x6A;
    pub const EXTENSION: u8 = 0x7F;
}

/// Largest `section_length` of a PAT/PMT section.
pub const MAX_SECTION_LENGTH: usize = 1021;

/// Errors of the section parsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PsiError {
    #[error("section truncated")]
    Truncated,
    #[error("section CRC mismatch")]
    Crc,
    #[error("unexpected table id {0:#04x}")]
    TableId(u8),
    #[error("section syntax indicator not set")]
    Syntax,
}

/// Checks the common long-form section header and CRC; returns the bytes
/// between the 8-byte header and the CRC.
fn section_body(section: &[u8], table_id: u8) -> Result<(&[u8], [u8; 8]), PsiError> {
    let head: &[u8; 8] = section.first_chunk().ok_or(PsiError::Truncated)?;
    if head[0] != table_id {
        return Err(PsiError::TableId(head[0]));
    }
    if head[1] & 0x80 == 0 {
        return Err(PsiError::Syntax);
    }
    let len = (usize::from(head[1] & 0x0F) << 8) | usize::from(head[2]);
    if !(9..=MAX_SECTION_LENGTH).contains(&len) {
        return Err(PsiError::Truncated);
    }
    let whole = section.get(..3 + len).ok_or(PsiError::Truncated)?;
    if crc32_mpeg2(whole) != 0 {
        return Err(PsiError::Crc);
    }
    let body = whole.get(8..whole.len() - 4).ok_or(PsiError::Truncated)?;
    Ok((body, *head))
}

/// One entry of a PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    pub program_number: u16,
    pub pmt_pid: u16,
}

/// Parse a PAT section (table id 0); the network PID entry (program 0) is skipped.
pub fn parse_pat(section: &[u8]) -> Result<Vec<PatEntry>, PsiError> {
    let (body, _) = section_body(section, 0x00)?;
    Ok(body
        .chunks_exact(4)
        .filter_map(|e| {
            let program_number = u16::from_be_bytes([e.first().copied()?, e.get(1).copied()?]);
            let pmt_pid = u16::from_be_bytes([e.get(2).copied()? & 0x1F, e.get(3).copied()?]);
            (program_number != 0).then_some(PatEntry {
                program_number,
                pmt_pid,
            })
        })
        .collect())
}

/// One elementary stream of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
    /// The codec, when open-streamer supports this stream.
    pub codec: Option<Codec>,
}

/// A parsed PMT section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub version: u8,
    pub pcr_pid: u16,
    pub streams: Vec<PmtStream>,
}

/// Iterate `(tag, body)` over a descriptor loop.
fn descriptors(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let body = rest.get(..usize::from(len))?;
        data = rest.get(usize::from(len)..).unwrap_or_default();
        Some((tag, body))
    })
}

/// Map a stream type (and its ES descriptors) to a codec.
pub fn codec_for_stream(stream_type: u8, es_info: &[u8]) -> Option<Codec> {
    match stream_type {
        stream_type::H264 => Some(Codec::H264),
        stream_type::H265 => Some(Codec::H265),
        stream_type::AAC_ADTS => Some(Codec::Aac),
        stream_type::MPEG1_AUDIO | stream_type::MPEG2_AUDIO => Some(Codec::Mp3),
        stream_type::AC3 => Some(Codec::Ac3),
        stream_type::PRIVATE_PES => {
            descriptors(es_info).find_map(|(tag, body)| match (tag, body) {
                (descriptor::AC3, _) => Some(Codec::Ac3),
                (descriptor::REGISTRATION, [b'A', b'C', b'-', b'3', ..]) => Some(Codec::Ac3),
                (descriptor::REGISTRATION, [b'O', b'p', b'u', b's', ..]) => Some(Codec::Opus),
                _ => None,
            })
        }
        _ => None,
    }
}

/// Parse a PMT section (table id 2).
pub fn parse_pmt(section: &[u8]) -> Result<Pmt, PsiError> {
    let (body, head) = section_body(section, 0x02)?;
    let program_number = u16::from_be_bytes([head[3], head[4]]);
    let version = (head[5] >> 1) & 0x1F;
    let fixed: &[u8; 4] = body.first_chunk().ok_or(PsiError::Truncated)?;
    let pcr_pid = u16::from_be_bytes([fixed[0] & 0x1F, fixed[1]]);
    let info_len = (usize::from(fixed[2] & 0x0F) << 8) | usize::from(fixed[3]);
    let mut rest = body.get(4 + info_len..).ok_or(PsiError::Truncated)?;
    let mut streams = Vec::new();
    while let Some(es) = rest.first_chunk::<5>() {
        let stream_type = es[0];
        let pid = u16::from_be_bytes([es[1] & 0x1F, es[2]]);
        let es_len = (usize::from(es[3] & 0x0F) << 8) | usize::from(es[4]);
        let es_info = rest.get(5..5 + es_len).ok_or(PsiError::Truncated)?;
        streams.push(PmtStream {
            stream_type,
            pid,
            codec: codec_for_stream(stream_type, es_info),
        });
        rest = rest.get(5 + es_len..).unwrap_or_default();
    }
    Ok(Pmt {
        program_number,
        version,
        pcr_pid,
        streams,
    })
}

/// Append a long-form section (header, `body`, CRC) to `out`.
fn build_section(out: &mut Vec<u8>, table_id: u8, id: u16, version: u8, body: &[u8]) {
    let start = out.len();
    let section_length = 5 + body.len() + 4;
    out.push(table_id);
    out.push(0xB0 | ((section_length >> 8) as u8 & 0x0F));
    out.push(section_length as u8);
    out.extend_from_slice(&id.to_be_bytes());
    out.push(0xC1 | ((version & 0x1F) << 1));
    out.push(0); // section_number
    out.push(0); // last_section_number
    out.extend_from_slice(body);
    let crc = crc32_mpeg2(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Build a single-program PAT section.
pub fn build_pat(
    transport_stream_id: u16,
    program_number: u16,
    pmt_pid: u16,
    version: u8,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    let body = [
        (program_number >> 8) as u8,
        program_number as u8,
        0xE0 | ((pmt_pid >> 8) as u8 & 0x1F),
        pmt_pid as u8,
    ];
    build_section(&mut out, 0x00, transport_stream_id, version, &body);
    out
}

/// One stream to list in a PMT built by [`build_pmt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtEntry {
    pub stream_type: u8,
    pub pid: u16,
    pub descriptors: Vec<u8>,
}

/// Build a PMT section.
pub fn build_pmt(program_number: u16, version: u8, pcr_pid: u16, streams: &[PmtEntry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + streams.len() * 16);
    body.push(0xE0 | ((pcr_pid >> 8) as u8 & 0x1F));
    body.push(pcr_pid as u8);
    body.extend_from_slice(&[0xF0, 0x00]);
    for s in streams {
        body.push(s.stream_type);
        body.push(0xE0 | ((s.pid >> 8) as u8 & 0x1F));
        body.push(s.pid as u8);
        let len = s.descriptors.len().min(0x3FF);
        body.push(0xF0 | ((len >> 8) as u8 & 0x0F));
        body.push(len as u8);
        body.extend_from_slice(s.descriptors.get(..len).unwrap_or_default());
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    build_section(&mut out, 0x02, program_number, version, &body);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pat_round_trip() {
        let pat = build_pat(1, 1, 0x1000, 3);
        assert_eq!(
            parse_pat(&pat).unwrap(),
            vec![PatEntry {
                program_number: 1,
                pmt_pid: 0x1000
            }]
        );
        let mut bad = pat.clone();
        bad[9] ^= 1;
        assert_eq!(parse_pat(&bad), Err(PsiError::Crc));
        assert_eq!(parse_pat(&pat[..5]), Err(PsiError::Truncated));
    }

    #[test]
    fn pmt_round_trip_with_descriptors() {
        let streams = vec![
            PmtEntry {
                stream_type: stream_type::H265,
                pid: 0x100,
                descriptors: vec![],
            },
            PmtEntry {
                stream_type: stream_type::PRIVATE_PES,
                pid: 0x101,
                descriptors: vec![5, 4, b'O', b'p', b'u', b's'],
            },
            PmtEntry {
                stream_type: stream_type::PRIVATE_PES,
                pid: 0x102,
                descriptors: vec![0x6A, 1, 0],
            },
            PmtEntry {
                stream_type: 0x99,
                pid: 0x103,
                descriptors: vec![],
            },
        ];
        let pmt = parse_pmt(&build_pmt(7, 2, 0x100, &streams)).unwrap();
        assert_eq!(
            (pmt.program_number, pmt.version, pmt.pcr_pid),
            (7, 2, 0x100)
        );
        let codecs: Vec<_> = pmt.streams.iter().map(|s| (s.pid, s.codec)).collect();
        assert_eq!(
            codecs,
            vec![
                (0x100, Some(Codec::H265)),
                (0x101, Some(Codec::Opus)),
                (0x102, Some(Codec::Ac3)),
                (0x103, None)
            ]
        );
    }
}
