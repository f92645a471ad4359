//! AAC helpers: ADTS headers, AudioSpecificConfig, ADTS ↔ raw conversion.
//!
//! Access units carry raw AAC frames (no ADTS header, see `os_av`); the
//! decoder configuration travels as an AudioSpecificConfig ("ASC") in
//! [`os_av::AudioParams::asc`]. This module converts between the two worlds:
//!
//! - ADTS → raw: [`AdtsHeader::parse`], [`strip_adts`] and the [`AdtsFrames`]
//!   iterator split an ADTS byte stream (e.g. an MPEG-TS PES payload) into raw
//!   frames.
//! - raw → ADTS: [`AdtsWriter`] (built once from the ASC) prepends a 7-byte
//!   header to each raw frame; [`write_adts`] is the one-shot form.
//! - ASC: [`AudioSpecificConfig::parse`] / [`AudioSpecificConfig::to_bytes`],
//!   [`AudioSpecificConfig::from_adts`] (an ASC for a stream that only had
//!   ADTS headers) and [`AudioSpecificConfig::audio_params`].
//!
//! Nothing here panics on malformed input; every parser returns [`AacError`].

use bytes::Bytes;
use os_av::AudioParams;

/// Sampling frequencies by `sampling_frequency_index` (ISO/IEC 14496-3, 1.6.3.4).
/// Indexes 13 and 14 are reserved; 15 means "explicit 24-bit rate follows" in an ASC.
pub const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Samples per frame of AAC-LC and the other core profiles (without the 960 flag).
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// Length of an ADTS header without CRC.
pub const ADTS_HEADER_LEN: usize = 7;

/// Largest value of the 13-bit ADTS `frame_length` field (header included).
pub const ADTS_MAX_FRAME_LEN: usize = 0x1FFF;

/// Audio object type of AAC-LC.
pub const AOT_AAC_LC: u8 = 2;
/// Audio object type of SBR (HE-AAC v1).
pub const AOT_SBR: u8 = 5;
/// Audio object type of PS (HE-AAC v2).
pub const AOT_PS: u8 = 29;

/// Sampling frequency for an index, `None` for reserved/escape values.
pub fn sample_rate_from_index(index: u8) -> Option<u32> {
    SAMPLE_RATES.get(usize::from(index)).copied()
}

/// Index of a sampling frequency, `None` if the rate has no index (then an
/// ASC must carry it explicitly and ADTS cannot carry it at all).
pub fn sample_rate_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES
        .iter()
        .position(|&r| r == rate)
        .and_then(|i| u8::try_from(i).ok())
}

/// Number of output channels of a `channel_configuration` value.
/// 0 ("defined in a program config element") yields 0.
pub fn channels_from_config(config: u8) -> u8 {
    match config {
        1..=6 => config,
        7 | 12 | 14 => 8,
        11 => 7,
        13 => 24,
        _ => 0,
    }
}

/// Errors of the AAC parsers and writers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AacError {
    #[error("need {needed} bytes, have {have}")]
    TooShort { needed: usize, have: usize },
    #[error("no ADTS syncword")]
    NoSync,
    #[error("ADTS layer field is {0}, must be 0")]
    BadLayer(u8),
    #[error("reserved sampling frequency index {0}")]
    BadSampleRateIndex(u8),
    #[error("sample rate {0} Hz cannot be signalled in ADTS")]
    UnsupportedSampleRate(u32),
    #[error("audio object type {0} cannot be signalled in ADTS")]
    UnsupportedObjectType(u8),
    #[error("channel configuration {0} cannot be signalled in ADTS")]
    UnsupportedChannelConfig(u8),
    #[error("ADTS frame length {0} is smaller than its header")]
    BadFrameLength(usize),
    #[error("raw frame of {0} bytes does not fit in one ADTS frame")]
    FrameTooLarge(usize),
    #[error("audio object type 0 is invalid")]
    BadObjectType,
}

/// A parsed ADTS fixed + variable header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// `ID` bit: true for MPEG-2 AAC, false for MPEG-4.
    pub mpeg2: bool,
    /// True when no CRC follows the header (7-byte header), false for a 9-byte header.
    pub protection_absent: bool,
    /// Audio object type (ADTS `profile` + 1): 1 = Main, 2 = LC, 3 = SSR, 4 = LTP.
    pub object_type: u8,
    /// `sampling_frequency_index` (0..=12).
    pub sample_rate_index: u8,
    /// `channel_configuration` (0..=7).
    pub channel_config: u8,
    /// Whole frame length, header and CRC included.
    pub frame_length: u16,
    /// `adts_buffer_fullness` (0x7FF = variable bit rate).
    pub buffer_fullness: u16,
    /// `number_of_raw_data_blocks_in_frame` (0 means one block).
    pub raw_blocks: u8,
}

impl AdtsHeader {
    /// Parse the header at the start of `data`. Needs 7 bytes (9 when a CRC
    /// is signalled, so that [`AdtsHeader::header_len`] bytes are present).
    /// Does not require the whole frame to be present.
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let h: &[u8; 7] = match data.first_chunk::<7>() {
            Some(h) => h,
            None => {
                return Err(AacError::TooShort {
                    needed: ADTS_HEADER_LEN,
                    have: data.len(),
                });
            }
        };
        if h[0] != 0xFF || h[1] & 0xF0 != 0xF0 {
            return Err(AacError::NoSync);
        }
        let layer = (h[1] >> 1) & 0x03;
        if layer != 0 {
            return Err(AacError::BadLayer(layer));
        }
        let sample_rate_index = (h[2] >> 2) & 0x0F;
        if usize::from(sample_rate_index) >= SAMPLE_RATES.len() {
            return Err(AacError::BadSampleRateIndex(sample_rate_index));
        }
        let frame_length =
            (u16::from(h[3] & 0x03) << 11) | (u16::from(h[4]) << 3) | (u16::from(h[5]) >> 5);
        let header = Self {
            mpeg2: h[1] & 0x08 != 0,
            protection_absent: h[1] & 0x01 != 0,
            object_type: (h[2] >> 6) + 1,
            sample_rate_index,
            channel_config: ((h[2] & 0x01) << 2) | (h[3] >> 6),
            frame_length,
            buffer_fullness: (u16::from(h[5] & 0x1F) << 6) | (u16::from(h[6]) >> 2),
            raw_blocks: h[6] & 0x03,
        };
        let header_len = header.header_len();
        if usize::from(frame_length) < header_len {
            return Err(AacError::BadFrameLength(usize::from(frame_length)));
        }
        if data.len() < header_len {
            return Err(AacError::TooShort {
                needed: header_len,
                have: data.len(),
            });
        }
        Ok(header)
    }

    /// Header length: 7, or 9 with CRC.
    pub fn header_len(&self) -> usize {
        if self.protection_absent { 7 } else { 9 }
    }

    /// Length of the raw payload following the header.
    pub fn payload_len(&self) -> usize {
        usize::from(self.frame_length).saturating_sub(self.header_len())
    }

    /// Sampling frequency in Hz (0 for an invalid index, which `parse` rejects).
    pub fn sample_rate(&self) -> u32 {
        sample_rate_from_index(self.sample_rate_index).unwrap_or(0)
    }

    /// Number of output channels (0 when a PCE defines them).
    pub fn channels(&self) -> u8 {
        channels_from_config(self.channel_config)
    }

    /// PCM samples (per channel) decoded from this frame.
    pub fn samples(&self) -> u32 {
        SAMPLES_PER_FRAME * (u32::from(self.raw_blocks) + 1)
    }

    /// Build a CRC-less header for a raw frame of `payload_len` bytes.
    pub fn for_payload(
        object_type: u8,
        sample_rate_index: u8,
        channel_config: u8,
        payload_len: usize,
    ) -> Result<Self, AacError> {
        if !(1..=4).contains(&object_type) {
            return Err(AacError::UnsupportedObjectType(object_type));
        }
        if usize::from(sample_rate_index) >= SAMPLE_RATES.len() {
            return Err(AacError::BadSampleRateIndex(sample_rate_index));
        }
        if channel_config > 7 {
            return Err(AacError::UnsupportedChannelConfig(channel_config));
        }
        let total = payload_len + ADTS_HEADER_LEN;
        let frame_length = u16::try_from(total)
            .ok()
            .filter(|&l| usize::from(l) <= ADTS_MAX_FRAME_LEN)
            .ok_or(AacError::FrameTooLarge(payload_len))?;
        Ok(Self {
            mpeg2: false,
            protection_absent: true,
            object_type,
            sample_rate_index,
            channel_config,
            frame_length,
            buffer_fullness: 0x7FF,
            raw_blocks: 0,
        })
    }

    /// Serialize the first 7 bytes of the header (the CRC, if signalled, is
    /// not computed; callers writing headers should keep `protection_absent`).
    pub fn to_bytes(&self) -> [u8; 7] {
        let profile = self.object_type.saturating_sub(1) & 0x03;
        let len = self.frame_length & 0x1FFF;
        let fullness = self.buffer_fullness & 0x7FF;
        [
            0xFF,
            0xF0 | (u8::from(self.mpeg2) << 3) | u8::from(self.protection_absent),
            (profile << 6)
                | ((self.sample_rate_index & 0x0F) << 2)
                | ((self.channel_config >> 2) & 0x01),
            ((self.channel_config & 0x03) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            (((len & 0x07) as u8) << 5) | ((fullness >> 6) as u8 & 0x1F),
            (((fullness & 0x3F) as u8) << 2) | (self.raw_blocks & 0x03),
        ]
    }
}

/// Split one ADTS frame at the start of `data` into its header and raw payload.
/// Fails with [`AacError::TooShort`] if the frame is not complete.
pub fn strip_adts(data: &[u8]) -> Result<(AdtsHeader, &[u8]), AacError> {
    let header = AdtsHeader::parse(data)?;
    let end = usize::from(header.frame_length);
    let payload = data
        .get(header.header_len()..end)
        .ok_or(AacError::TooShort {
            needed: end,
            have: data.len(),
        })?;
    Ok((header, payload))
}

/// Iterator over the frames of an ADTS byte stream: yields `(offset, header,
/// raw payload)` where `offset` is the position of the header in the input.
///
/// Bytes that do not start a valid header are skipped until the next syncword
/// (resync); a truncated last frame ends the iteration and is reported by
/// [`AdtsFrames::remainder`].
#[derive(Debug, Clone)]
pub struct AdtsFrames<'a> {
    data: &'a [u8],
    pos: usize,
    skipped: usize,
}

impl<'a> AdtsFrames<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            skipped: 0,
        }
    }

    /// Bytes not consumed yet (a truncated trailing frame, or nothing).
    pub fn remainder(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// Number of bytes skipped so far while hunting for a syncword.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

impl<'a> Iterator for AdtsFrames<'a> {
    type Item = (usize, AdtsHeader, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.data.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            match strip_adts(rest) {
                Ok((header, payload)) => {
                    let offset = self.pos;
                    self.pos += usize::from(header.frame_length);
                    return Some((offset, header, payload));
                }
                Err(AacError::TooShort { .. }) if rest.first() == Some(&0xFF) => {
                    // Possibly a frame cut at the end of the buffer: stop here
                    // and leave it in the remainder.
                    return None;
                }
                Err(_) => {
                    // Resync: skip to the next 0xFF byte.
                    let skip = rest
                        .get(1..)
                        .and_then(|r| r.iter().position(|&b| b == 0xFF))
                        .map_or(rest.len(), |p| p + 1);
                    self.pos += skip;
                    self.skipped += skip;
                }
            }
        }
    }
}

/// Iterate the ADTS frames of `data`.
pub fn adts_frames(data: &[u8]) -> AdtsFrames<'_> {
    AdtsFrames::new(data)
}

/// A decoded AudioSpecificConfig (the fields open-streamer needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Signalled audio object type (5 = SBR, 29 = PS for explicit HE-AAC).
    pub object_type: u8,
    /// Sampling frequency of the core decoder, Hz.
    pub sample_rate: u32,
    /// `channel_configuration` (0 = defined by a PCE).
    pub channel_config: u8,
    /// For explicit SBR/PS signalling: the underlying core object type (usually 2).
    pub core_object_type: Option<u8>,
    /// For explicit SBR/PS signalling: the output sampling frequency, Hz.
    pub extension_sample_rate: Option<u32>,
    /// GASpecificConfig `frameLengthFlag`: 960-sample frames instead of 1024.
    pub frame_length_960: bool,
}

/// Minimal MSB-first bit reader over a byte slice.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u32, AacError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).ok_or(AacError::TooShort {
                needed: self.pos / 8 + 1,
                have: self.data.len(),
            })?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, AacError> {
        let aot = self.read(5)?;
        let aot = if aot == 31 { 32 + self.read(6)? } else { aot };
        u8::try_from(aot).map_err(|_| AacError::BadObjectType)
    }

    fn sample_rate(&mut self) -> Result<u32, AacError> {
        let index = self.read(4)? as u8;
        if index == 0x0F {
            return self.read(24);
        }
        sample_rate_from_index(index).ok_or(AacError::BadSampleRateIndex(index))
    }
}

/// Minimal MSB-first bit writer.
struct BitWriter {
    out: Vec<u8>,
    bits: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, n: u32) {
        for i in (0..n).rev() {
            if self.bits & 7 == 0 {
                self.out.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.out.last_mut() {
                *last |= bit << (7 - (self.bits % 8));
            }
            self.bits += 1;
        }
    }

    fn object_type(&mut self, aot: u8) {
        if aot >= 31 {
            self.put(31, 5);
            self.put(u32::from(aot - 32), 6);
        } else {
            self.put(u32::from(aot), 5);
        }
    }

    fn sample_rate(&mut self, rate: u32) {
        match sample_rate_index(rate) {
            Some(i) => self.put(u32::from(i), 4),
            None => {
                self.put(0x0F, 4);
                self.put(rate & 0xFF_FFFF, 24);
            }
        }
    }
}

/// Object types whose ASC continues with a GASpecificConfig.
fn has_ga_specific_config(aot: u8) -> bool {
    matches!(aot, 1..=4 | 6 | 7 | 17 | 19..=23)
}

impl AudioSpecificConfig {
    /// A plain (non-SBR) config.
    pub fn new(object_type: u8, sample_rate: u32, channel_config: u8) -> Self {
        Self {
            object_type,
            sample_rate,
            channel_config,
            core_object_type: None,
            extension_sample_rate: None,
            frame_length_960: false,
        }
    }

    /// Parse an AudioSpecificConfig. Trailing fields this module does not
    /// model (program config elements, extension payloads) are ignored.
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let mut r = Bits { data, pos: 0 };
        let mut object_type = r.object_type()?;
        if object_type == 0 {
            return Err(AacError::BadObjectType);
        }
        let sample_rate = r.sample_rate()?;
        let channel_config = r.read(4)? as u8;
        let mut asc = Self::new(object_type, sample_rate, channel_config);
        if object_type == AOT_SBR || object_type == AOT_PS {
            asc.extension_sample_rate = Some(r.sample_rate()?);
            object_type = r.object_type()?;
            asc.core_object_type = Some(object_type);
        }
        if has_ga_specific_config(object_type) {
            // frameLengthFlag is the first GASpecificConfig bit; tolerate its absence.
            asc.frame_length_960 = r.read(1).map(|b| b == 1).unwrap_or(false);
        }
        Ok(asc)
    }

    /// Serialize (2 bytes for the common cases).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = BitWriter {
            out: Vec::with_capacity(5),
            bits: 0,
        };
        w.object_type(self.object_type);
        w.sample_rate(self.sample_rate);
        w.put(u32::from(self.channel_config & 0x0F), 4);
        let mut core = self.object_type;
        let explicit_ext = self.object_type == AOT_SBR || self.object_type == AOT_PS;
        match (self.extension_sample_rate, self.core_object_type) {
            (Some(ext_rate), Some(core_aot)) if explicit_ext => {
                w.sample_rate(ext_rate);
                w.object_type(core_aot);
                core = core_aot;
            }
            _ => {}
        }
        if has_ga_specific_config(core) {
            // frameLengthFlag, dependsOnCoreCoder = 0, extensionFlag = 0.
            w.put(u32::from(self.frame_length_960), 1);
            w.put(0, 2);
        }
        w.out
    }

    /// The config equivalent to an ADTS header.
    pub fn from_adts(header: &AdtsHeader) -> Self {
        Self::new(
            header.object_type,
            header.sample_rate(),
            header.channel_config,
        )
    }

    /// The object type carried in ADTS (the core type for explicit SBR/PS).
    pub fn adts_object_type(&self) -> u8 {
        self.core_object_type.unwrap_or(self.object_type)
    }

    /// Output sampling frequency (the SBR rate when signalled).
    pub fn output_sample_rate(&self) -> u32 {
        self.extension_sample_rate.unwrap_or(self.sample_rate)
    }

    /// Output channel count (PS always decodes to stereo).
    pub fn channels(&self) -> u8 {
        if self.object_type == AOT_PS && self.channel_config == 1 {
            2
        } else {
            channels_from_config(self.channel_config)
        }
    }

    /// Samples per frame at the output sampling frequency.
    pub fn samples_per_frame(&self) -> u32 {
        let core = if self.frame_length_960 {
            960
        } else {
            SAMPLES_PER_FRAME
        };
        if self.extension_sample_rate.is_some() && self.output_sample_rate() > self.sample_rate {
            core * 2
        } else {
            core
        }
    }

    /// Track parameters for this config. `asc` should be the serialized form
    /// (pass the original bytes when the config came from a container).
    pub fn audio_params(&self, asc: Bytes) -> AudioParams {
        AudioParams {
            sample_rate: self.output_sample_rate(),
            channels: self.channels(),
            object_type: self.object_type,
            asc,
            samples_per_frame: self.samples_per_frame(),
        }
    }

    /// Track parameters with a freshly serialized ASC.
    pub fn to_audio_params(&self) -> AudioParams {
        self.audio_params(Bytes::from(self.to_bytes()))
    }
}

/// Prepends ADTS headers to raw AAC frames of one track.
///
/// Build it once per track from the ASC; [`AdtsWriter::header`] then only
/// patches the frame length, so writing is allocation free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsWriter {
    template: AdtsHeader,
}

impl AdtsWriter {
    /// Writer for a track described by `asc`. Fails if ADTS cannot signal the
    /// config (object type > 4, sampling rate without index, channel config > 7).
    pub fn new(asc: &AudioSpecificConfig) -> Result<Self, AacError> {
        let index = sample_rate_index(asc.sample_rate)
            .ok_or(AacError::UnsupportedSampleRate(asc.sample_rate))?;
        let template =
            AdtsHeader::for_payload(asc.adts_object_type(), index, asc.channel_config, 0)?;
        Ok(Self { template })
    }

    /// Writer from the serialized ASC bytes of an [`AudioParams`].
    pub fn from_asc_bytes(asc: &[u8]) -> Result<Self, AacError> {
        Self::new(&AudioSpecificConfig::parse(asc)?)
    }

    /// The 7-byte header for a raw frame of `payload_len` bytes.
    pub fn header(&self, payload_len: usize) -> Result<[u8; 7], AacError> {
        let total = payload_len + ADTS_HEADER_LEN;
        if total > ADTS_MAX_FRAME_LEN {
            return Err(AacError::FrameTooLarge(payload_len));
        }
        let mut h = self.template;
        h.frame_length = total as u16;
        Ok(h.to_bytes())
    }

    /// Append header + raw frame to `out`.
    pub fn write(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), AacError> {
        out.extend_from_slice(&self.header(raw.len())?);
        out.extend_from_slice(raw);
        Ok(())
    }
}

/// One-shot raw → ADTS: append an ADTS frame for `raw` to `out`.
pub fn write_adts(
    asc: &AudioSpecificConfig,
    raw: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AacError> {
    AdtsWriter::new(asc)?.write(raw, out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sample_rate_tables() {
        assert_eq!(sample_rate_index(48_000), Some(3));
        assert_eq!(sample_rate_index(44_100), Some(4));
        assert_eq!(sample_rate_index(7_350), Some(12));
        assert_eq!(sample_rate_index(12_345), None);
        assert_eq!(sample_rate_from_index(4), Some(44_100));
        assert_eq!(sample_rate_from_index(13), None);
        assert_eq!(sample_rate_from_index(15), None);
    }

    #[test]
    fn adts_header_round_trip() {
        let h = AdtsHeader::for_payload(2, 4, 2, 371).unwrap();
        let bytes = h.to_bytes();
        assert_eq!(bytes[0], 0xFF);
        assert_eq!(bytes[1], 0xF1);
        let parsed = AdtsHeader::parse(&bytes).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(parsed.frame_length, 378);
        assert_eq!(parsed.payload_len(), 371);
        assert_eq!(parsed.sample_rate(), 44_100);
        assert_eq!(parsed.channels(), 2);
        assert_eq!(parsed.samples(), 1024);
    }

    #[test]
    fn known_adts_header() {
        // AAC-LC, 48 kHz, stereo, frame length 0x0172 = 370, VBR, CRC absent.
        let data = [0xFF, 0xF1, 0x4C, 0x80, 0x2E, 0x5F, 0xFC];
        let h = AdtsHeader::parse(&data).unwrap();
        assert_eq!(h.object_type, 2);
        assert_eq!(h.sample_rate_index, 3);
        assert_eq!(h.channel_config, 2);
        assert_eq!(h.frame_length, 370);
        assert_eq!(h.buffer_fullness, 0x7FF);
        assert!(h.protection_absent);
        assert_eq!(h.to_bytes(), data);
    }

    #[test]
    fn adts_rejects_garbage() {
        assert_eq!(
            AdtsHeader::parse(&[0xFF, 0xF1]),
            Err(AacError::TooShort { needed: 7, have: 2 })
        );
        assert_eq!(AdtsHeader::parse(&[0; 7]), Err(AacError::NoSync));
        // Layer != 0 (this is an MP3 header).
        assert_eq!(
            AdtsHeader::parse(&[0xFF, 0xFB, 0x90, 0, 0, 0, 0]),
            Err(AacError::BadLayer(1))
        );
        // Sampling index 13.
        assert_eq!(
            AdtsHeader::parse(&[0xFF, 0xF1, 0x74, 0x80, 0x2E, 0x5F, 0xFC]),
            Err(AacError::BadSampleRateIndex(13))
        );
        // Frame length 3 < header.
        assert_eq!(
            AdtsHeader::parse(&[0xFF, 0xF1, 0x4C, 0x80, 0x00, 0x7F, 0xFC]),
            Err(AacError::BadFrameLength(3))
        );
    }

    #[test]
    fn adts_frames_split_and_resync() {
        let asc = AudioSpecificConfig::new(2, 44_100, 2);
        let w = AdtsWriter::new(&asc).unwrap();
        let mut stream = vec![1, 2, 3];
        w.write(&[10; 20], &mut stream).unwrap();
        stream.extend_from_slice(&[0xFF, 0x00]);
        w.write(&[11; 30], &mut stream).unwrap();
        let mut partial = Vec::new();
        w.write(&[12; 40], &mut partial).unwrap();
        stream.extend_from_slice(&partial[..20]);
        let mut it = adts_frames(&stream);
        let frames: Vec<_> = it.by_ref().collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, 3);
        assert_eq!(frames[0].2, &[10; 20][..]);
        assert_eq!(frames[1].2, &[11; 30][..]);
        assert_eq!(it.remainder().len(), 20);
        assert_eq!(it.skipped(), 5);
    }

    #[test]
    fn strip_needs_whole_frame() {
        let mut out = Vec::new();
        write_adts(&AudioSpecificConfig::new(2, 48_000, 1), &[7; 10], &mut out).unwrap();
        let (h, raw) = strip_adts(&out).unwrap();
        assert_eq!(raw, &[7; 10][..]);
        assert_eq!(h.channel_config, 1);
        assert!(matches!(
            strip_adts(&out[..12]),
            Err(AacError::TooShort { .. })
        ));
    }

    #[test]
    fn asc_lc_round_trip() {
        // 0x12 0x10: AAC-LC, 44.1 kHz, stereo.
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(asc, AudioSpecificConfig::new(2, 44_100, 2));
        assert_eq!(asc.to_bytes(), vec![0x12, 0x10]);
        // 0x11 0x90: AAC-LC, 48 kHz, stereo.
        let asc = AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap();
        assert_eq!((asc.sample_rate, asc.channels()), (48_000, 2));
        let p = asc.to_audio_params();
        assert_eq!(p.sample_rate, 48_000);
        assert_eq!(p.samples_per_frame, 1024);
        assert_eq!(&p.asc[..], &[0x11, 0x90]);
    }

    #[test]
    fn asc_explicit_sbr_and_escape_rate() {
        // AOT 5, core 24 kHz, stereo, extension 48 kHz, core AOT 2.
        let asc = AudioSpecificConfig {
            object_type: AOT_SBR,
            sample_rate: 24_000,
            channel_config: 2,
            core_object_type: Some(2),
            extension_sample_rate: Some(48_000),
            frame_length_960: false,
        };
        let bytes = asc.to_bytes();
        assert_eq!(AudioSpecificConfig::parse(&bytes).unwrap(), asc);
        assert_eq!(asc.output_sample_rate(), 48_000);
        assert_eq!(asc.samples_per_frame(), 2048);
        assert_eq!(asc.adts_object_type(), 2);
        let w = AdtsWriter::new(&asc).unwrap();
        let h = AdtsHeader::parse(&w.header(5).unwrap()).unwrap();
        assert_eq!((h.object_type, h.sample_rate()), (2, 24_000));

        let odd = AudioSpecificConfig::new(2, 12_345, 1);
        let parsed = AudioSpecificConfig::parse(&odd.to_bytes()).unwrap();
        assert_eq!(parsed.sample_rate, 12_345);
        assert_eq!(
            AdtsWriter::new(&odd),
            Err(AacError::UnsupportedSampleRate(12_345))
        );

        let escape = AudioSpecificConfig::new(42, 48_000, 2);
        assert_eq!(
            AudioSpecificConfig::parse(&escape.to_bytes())
                .unwrap()
                .object_type,
            42
        );
    }

    #[test]
    fn asc_rejects_short_and_invalid() {
        assert!(AudioSpecificConfig::parse(&[]).is_err());
        assert!(AudioSpecificConfig::parse(&[0x12]).is_err());
        assert_eq!(
            AudioSpecificConfig::parse(&[0x00, 0x00]),
            Err(AacError::BadObjectType)
        );
        assert!(AudioSpecificConfig::parse(&[0x16, 0x90]).is_err()); // index 13
    }

    #[test]
    fn asc_from_adts_matches() {
        let h = AdtsHeader::parse(&[0xFF, 0xF1, 0x4C, 0x80, 0x2E, 0x5F, 0xFC]).unwrap();
        let asc = AudioSpecificConfig::from_adts(&h);
        assert_eq!(asc.to_bytes(), vec![0x11, 0x90]);
    }

    #[test]
    fn writer_rejects_oversize() {
        let w = AdtsWriter::new(&AudioSpecificConfig::new(2, 48_000, 2)).unwrap();
        assert!(w.header(ADTS_MAX_FRAME_LEN - 7).is_ok());
        assert_eq!(
            w.header(ADTS_MAX_FRAME_LEN - 6),
            Err(AacError::FrameTooLarge(ADTS_MAX_FRAME_LEN - 6))
        );
    }
}
