//! Audio elementary-stream framing: splits PES payloads into frames.
//!
//! - AAC: ADTS frames; the header (and CRC) is stripped from the payload.
//! - MP3 (MPEG-1/2/2.5 audio layers I–III): whole frames, header kept.
//! - AC-3: whole syncframes. E-AC-3 is not split (bsid > 10 is "invalid",
//!   the demuxer then falls back to one unit per PES payload).
//! - Opus (ETSI TS 102 366 style TS mapping): the `opus_control_header` is
//!   removed, the payload is one Opus packet.

use bytes::Bytes;
use os_av::{AudioParams, Codec};
use os_codecs::aac::{AdtsHeader, AudioSpecificConfig};

/// One frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    /// Bytes of container framing to strip (ADTS header, Opus control header).
    pub skip: usize,
    /// Total frame length, `skip` included.
    pub len: usize,
    /// Samples per channel in this frame.
    pub samples: u32,
    /// Sampling rate of `samples`.
    pub rate: u32,
    /// Changes whenever the decoder configuration changes.
    pub key: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    Ok(FrameInfo),
    /// A plausible header whose frame extends past the buffer.
    NeedMore,
    Invalid,
}

/// The byte every frame of `codec` starts with (used to resync).
pub(crate) fn sync_byte(codec: Codec) -> u8 {
    match codec {
        Codec::Ac3 => 0x0B,
        Codec::Opus => 0x7F,
        _ => 0xFF,
    }
}

pub(crate) fn frame(codec: Codec, data: &[u8]) -> Frame {
    let f = match codec {
        Codec::Aac => aac(data),
        Codec::Mp3 => mp3(data),
        Codec::Ac3 => ac3(data),
        Codec::Opus => opus(data),
        Codec::H264 | Codec::H265 => return Frame::Invalid,
    };
    match f {
        Some(info) if info.len > data.len() => Frame::NeedMore,
        Some(info) => Frame::Ok(info),
        None if data.len() < min_header(codec) && data.first() == Some(&sync_byte(codec)) => {
            Frame::NeedMore
        }
        None => Frame::Invalid,
    }
}

fn min_header(codec: Codec) -> usize {
    match codec {
        Codec::Aac => 9,
        Codec::Mp3 => 4,
        Codec::Ac3 => 8,
        _ => 16,
    }
}

fn aac(data: &[u8]) -> Option<FrameInfo> {
    let h = AdtsHeader::parse(data).ok()?;
    Some(FrameInfo {
        skip: h.header_len(),
        len: usize::from(h.frame_length),
        samples: h.samples(),
        rate: h.sample_rate(),
        key: (u32::from(h.object_type) << 16)
            | (u32::from(h.sample_rate_index) << 8)
            | u32::from(h.channel_config),
    })
}

const MP3_RATES: [u32; 3] = [44_100, 48_000, 32_000];
const MP3_V1_L1: [u16; 15] = [
    0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
];
const MP3_V1_L2: [u16; 15] = [
    0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
];
const MP3_V1_L3: [u16; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const MP3_V2_L1: [u16; 15] = [
    0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
];
const MP3_V2_L23: [u16; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

fn mp3(data: &[u8]) -> Option<FrameInfo> {
    let h: &[u8; 4] = data.first_chunk()?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03; // 0: 2.5, 2: MPEG-2, 3: MPEG-1
    let layer = (h[1] >> 1) & 0x03; // 1: III, 2: II, 3: I
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 0x03);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 {
        return None;
    }
    let base_rate = *MP3_RATES.get(rate_index)?;
    let rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    let table = match (version == 3, layer) {
        (true, 3) => &MP3_V1_L1,
        (true, 2) => &MP3_V1_L2,
        (true, _) => &MP3_V1_L3,
        (false, 3) => &MP3_V2_L1,
        (false, _) => &MP3_V2_L23,
    };
    let bitrate = u32::from(*table.get(bitrate_index)?) * 1000;
    let padding = u32::from((h[2] >> 1) & 0x01);
    let (len, samples) = match layer {
        3 => ((12 * bitrate / rate + padding) * 4, 384),
        2 => (144 * bitrate / rate + padding, 1152),
        _ if version == 3 => (144 * bitrate / rate + padding, 1152),
        _ => (72 * bitrate / rate + padding, 576),
    };
    let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
    Some(FrameInfo {
        skip: 0,
        len: len as usize,
        samples,
        rate,
        key: (rate << 8) | channels,
    })
}

const AC3_BITRATES: [u32; 19] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640,
];
const AC3_RATES: [u32; 3] = [48_000, 44_100, 32_000];

fn ac3(data: &[u8]) -> Option<FrameInfo> {
    let h: &[u8; 8] = data.first_chunk()?;
    if h[0] != 0x0B || h[1] != 0x77 {
        return None;
    }
    let bsid = h[5] >> 3;
    if bsid > 10 {
        return None;
    }
    let fscod = usize::from(h[4] >> 6);
    let frmsizecod = usize::from(h[4] & 0x3F);
    let rate = *AC3_RATES.get(fscod)?;
    let kbps = *AC3_BITRATES.get(frmsizecod >> 1)?;
    let words = match fscod {
        0 => kbps * 2,
        1 => kbps * 1_536_000 / 44_100 / 16 + (frmsizecod as u32 & 1),
        _ => kbps * 3,
    };
    // acmod and lfeon, for the channel count.
    let acmod = h[6] >> 5;
    let mut bit = 3u32; // bits consumed after acmod within byte 6
    if acmod & 1 != 0 && acmod != 1 {
        bit += 2;
    }
    if acmod & 4 != 0 {
        bit += 2;
    }
    if acmod == 2 {
        bit += 2;
    }
    let word = u16::from_be_bytes([h[6], h[7]]);
    let lfe = u32::from((word >> (15 - bit)) & 1);
    let channels = [2u32, 1, 2, 3, 3, 4, 4, 5]
        .get(usize::from(acmod))
        .copied()
        .unwrap_or(2)
        + lfe;
    Some(FrameInfo {
        skip: 0,
        len: words as usize * 2,
        samples: 1536,
        rate,
        key: (rate << 8) | channels,
    })
}

fn opus(data: &[u8]) -> Option<FrameInfo> {
    let h: &[u8; 2] = data.first_chunk()?;
    if h[0] != 0x7F || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let start_trim = h[1] & 0x10 != 0;
    let end_trim = h[1] & 0x08 != 0;
    let extension = h[1] & 0x04 != 0;
    let mut pos = 2;
    let mut size = 0usize;
    loop {
        let b = *data.get(pos)?;
        pos += 1;
        size += usize::from(b);
        if b != 0xFF {
            break;
        }
    }
    if start_trim {
        pos += 2;
    }
    if end_trim {
        pos += 2;
    }
    if extension {
        pos += 1 + usize::from(*data.get(pos)?);
    }
    let toc = *data.get(pos)?;
    let config = toc >> 3;
    let frame_samples: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let count = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(data.get(pos + 1).copied().unwrap_or(0) & 0x3F),
    };
    let channels = if toc & 0x04 != 0 { 2 } else { 1 };
    Some(FrameInfo {
        skip: pos,
        len: pos + size,
        samples: frame_samples * count,
        rate: 48_000,
        key: (48_000 << 8) | channels,
    })
}

/// Decoder parameters for the frame at the start of `data` (which parsed as
/// `info`).
pub(crate) fn params(codec: Codec, data: &[u8], info: &FrameInfo) -> Option<AudioParams> {
    match codec {
        Codec::Aac => {
            let h = AdtsHeader::parse(data).ok()?;
            Some(AudioSpecificConfig::from_adts(&h).to_audio_params())
        }
        Codec::Mp3 | Codec::Ac3 | Codec::Opus => Some(AudioParams {
            sample_rate: info.rate,
            channels: (info.key & 0xFF) as u8,
            object_type: 0,
            asc: Bytes::new(),
            samples_per_frame: match codec {
                Codec::Opus => 960,
                _ => info.samples,
            },
        }),
        Codec::H264 | Codec::H265 => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp3_frame_length() {
        // MPEG-1 layer III, 128 kbps, 44.1 kHz, no padding: 417 bytes.
        let h = [0xFF, 0xFB, 0x90, 0x44];
        let mut data = h.to_vec();
        data.resize(417, 0);
        match frame(Codec::Mp3, &data) {
            Frame::Ok(f) => assert_eq!((f.len, f.samples, f.rate), (417, 1152, 44_100)),
            other => panic!("{other:?}"),
        }
        assert_eq!(frame(Codec::Mp3, &data[..100]), Frame::NeedMore);
    }

    #[test]
    fn ac3_frame_length() {
        // 48 kHz, frmsizecod 0x14 (192 kbps): 768 bytes; bsid 8, acmod 2 (stereo).
        let mut data = vec![0x0B, 0x77, 0, 0, 0x14, 0x40, 0x40, 0x00];
        data.resize(768, 0);
        match frame(Codec::Ac3, &data) {
            Frame::Ok(f) => assert_eq!(
                (f.len, f.samples, f.rate, f.key & 0xFF),
                (768, 1536, 48_000, 2)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn opus_control_header() {
        // Size 300 = 0xFF + 45, TOC config 31 (20 ms CELT), code 0, stereo.
        let mut data = vec![0x7F, 0xE0, 0xFF, 45, (31 << 3) | 0x04];
        data.resize(4 + 300, 0);
        match frame(Codec::Opus, &data) {
            Frame::Ok(f) => assert_eq!((f.skip, f.len, f.samples, f.key & 0xFF), (4, 304, 960, 2)),
            other => panic!("{other:?}"),
        }
    }
}
