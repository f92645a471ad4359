//! Audio tag bodies (also the body of an RTMP audio message), legacy and
//! Enhanced RTMP (`ExAudioTagHeader`, sound format 9).
//!
//! Legacy layout: `sound_format(4) sound_rate(2) sound_size(1) sound_type(1)`,
//! then for AAC (10) an `AACPacketType` byte (0 = AudioSpecificConfig, 1 = raw frame).
//!
//! Enhanced layout: `9(4) packet_type(4)`, `FourCC`, payload.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

const FORMAT_EX_HEADER: u8 = 9;
const FORMAT_MP3: u8 = 2;
const FORMAT_AAC: u8 = 10;

/// The audio codec of a tag: from the legacy sound format or the Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Sound format 10 or FourCC `mp4a`.
    Aac,
    /// Sound format 2 or FourCC `.mp3`.
    Mp3,
    /// FourCC `Opus`.
    Opus,
    /// FourCC `fLaC`.
    Flac,
    /// FourCC `ac-3`.
    Ac3,
    /// FourCC `ec-3`.
    Eac3,
    /// Any other legacy sound format (0 = PCM, 1 = ADPCM, 11 = Speex, 14 = MP3 8 kHz, ...).
    Legacy(u8),
    /// Any other FourCC.
    FourCc([u8; 4]),
}

impl AudioCodec {
    /// Maps a legacy sound format (not 9, which announces an enhanced header).
    pub fn from_sound_format(format: u8) -> AudioCodec {
        match format {
            FORMAT_MP3 => AudioCodec::Mp3,
            FORMAT_AAC => AudioCodec::Aac,
            other => AudioCodec::Legacy(other),
        }
    }

    /// Maps an Enhanced RTMP FourCC.
    pub fn from_fourcc(cc: [u8; 4]) -> AudioCodec {
        match &cc {
            b"mp4a" => AudioCodec::Aac,
            b".mp3" => AudioCodec::Mp3,
            b"Opus" => AudioCodec::Opus,
            b"fLaC" => AudioCodec::Flac,
            b"ac-3" => AudioCodec::Ac3,
            b"ec-3" => AudioCodec::Eac3,
            _ => AudioCodec::FourCc(cc),
        }
    }

    /// The legacy sound format, if this codec has one.
    pub fn sound_format(self) -> Option<u8> {
        match self {
            AudioCodec::Aac => Some(FORMAT_AAC),
            AudioCodec::Mp3 => Some(FORMAT_MP3),
            AudioCodec::Legacy(f) if f & 0x0F != FORMAT_EX_HEADER => Some(f & 0x0F),
            _ => None,
        }
    }

    /// The Enhanced RTMP FourCC, if this codec has one.
    pub fn fourcc(self) -> Option<[u8; 4]> {
        match self {
            AudioCodec::Aac => Some(*b"mp4a"),
            AudioCodec::Mp3 => Some(*b".mp3"),
            AudioCodec::Opus => Some(*b"Opus"),
            AudioCodec::Flac => Some(*b"fLaC"),
            AudioCodec::Ac3 => Some(*b"ac-3"),
            AudioCodec::Eac3 => Some(*b"ec-3"),
            AudioCodec::FourCc(cc) => Some(cc),
            AudioCodec::Legacy(_) => None,
        }
    }

    /// The matching access-unit codec, for the codecs open-streamer carries.
    pub fn av_codec(self) -> Option<os_av::Codec> {
        match self {
            AudioCodec::Aac => Some(os_av::Codec::Aac),
            AudioCodec::Mp3 => Some(os_av::Codec::Mp3),
            AudioCodec::Opus => Some(os_av::Codec::Opus),
            AudioCodec::Ac3 => Some(os_av::Codec::Ac3),
            _ => None,
        }
    }
}

/// What an audio tag body holds. Legacy AAC packet types map onto the
/// Enhanced RTMP names (0 → `SequenceStart`, 1 → `CodedFrames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioPacketType {
    /// Decoder configuration (AAC AudioSpecificConfig, Opus/FLAC headers...).
    SequenceStart,
    /// Coded audio frames (one raw AAC frame for AAC).
    CodedFrames,
    /// Enhanced only: end of sequence.
    SequenceEnd,
    /// Enhanced only: channel layout description (opaque here).
    MultichannelConfig,
    /// Legacy formats other than AAC: the body after the first byte, opaque.
    Raw,
}

/// A parsed audio tag body. `data` is the payload after the headers (a slice
/// of the input, no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    pub codec: AudioCodec,
    /// Whether the body uses the Enhanced RTMP `ExAudioTagHeader`.
    pub enhanced: bool,
    /// Legacy only: 0 = 5.5 kHz, 1 = 11 kHz, 2 = 22 kHz, 3 = 44 kHz (AAC always 3).
    pub sound_rate: u8,
    /// Legacy only: 16-bit samples (AAC always set).
    pub sound_size_16bit: bool,
    /// Legacy only: stereo (AAC always set).
    pub stereo: bool,
    pub packet_type: AudioPacketType,
    pub data: Bytes,
}

impl AudioTag {
    /// Parses an audio tag body (or an RTMP audio message body).
    pub fn parse(body: &Bytes) -> Result<AudioTag> {
        let Some(&first) = body.first() else {
            return Err(Error::EmptyBody("audio"));
        };
        let format = first >> 4;
        if format == FORMAT_EX_HEADER {
            let packet_type = match first & 0x0F {
                0 => AudioPacketType::SequenceStart,
                1 => AudioPacketType::CodedFrames,
                2 => AudioPacketType::SequenceEnd,
                4 => AudioPacketType::MultichannelConfig,
                other => return Err(Error::UnsupportedAudioPacketType(other)),
            };
            let Some(h) = body.first_chunk::<5>() else {
                return Err(Error::Truncated {
                    what: "enhanced audio tag header",
                    need: 5,
                    have: body.len(),
                });
            };
            return Ok(AudioTag {
                codec: AudioCodec::from_fourcc([h[1], h[2], h[3], h[4]]),
                enhanced: true,
                sound_rate: 0,
                sound_size_16bit: false,
                stereo: false,
                packet_type,
                data: body.slice(5..),
            });
        }
        let codec = AudioCodec::from_sound_format(format);
        let mut tag = AudioTag {
            codec,
            enhanced: false,
            sound_rate: (first >> 2) & 0x03,
            sound_size_16bit: first & 0x02 != 0,
            stereo: first & 0x01 != 0,
            packet_type: AudioPacketType::Raw,
            data: body.slice(1..),
        };
        if codec == AudioCodec::Aac {
            let Some(&p) = body.get(1) else {
                return Err(Error::Truncated {
                    what: "AAC audio tag header",
                    need: 2,
                    have: body.len(),
                });
            };
            tag.packet_type = match p {
                0 => AudioPacketType::SequenceStart,
                1 => AudioPacketType::CodedFrames,
                other => return Err(Error::InvalidAacPacketType(other)),
            };
            tag.data = body.slice(2..);
        }
        Ok(tag)
    }

    /// Whether the body is a decoder configuration (AAC AudioSpecificConfig).
    pub fn is_sequence_header(&self) -> bool {
        self.packet_type == AudioPacketType::SequenceStart
    }

    /// Legacy sampling-rate field in Hz (5512, 11025, 22050, 44100); AAC and
    /// enhanced bodies carry the real rate in their configuration instead.
    pub fn legacy_sample_rate(&self) -> u32 {
        match self.sound_rate & 0x03 {
            0 => 5512,
            1 => 11_025,
            2 => 22_050,
            _ => 44_100,
        }
    }

    /// Size of the headers [`AudioTag::write`] puts before `data`.
    pub fn header_len(&self) -> usize {
        if self.enhanced {
            5
        } else if self.codec == AudioCodec::Aac {
            2
        } else {
            1
        }
    }

    /// Writes the body: headers then `data`.
    pub fn write<B: BufMut>(&self, out: &mut B) -> Result<()> {
        if self.enhanced {
            let packet = match self.packet_type {
                AudioPacketType::SequenceStart => 0,
                AudioPacketType::CodedFrames => 1,
                AudioPacketType::SequenceEnd => 2,
                AudioPacketType::MultichannelConfig => 4,
                AudioPacketType::Raw => {
                    return Err(Error::Unencodable("raw packets need a legacy header"));
                }
            };
            let Some(cc) = self.codec.fourcc() else {
                return Err(Error::Unencodable("codec has no FourCC"));
            };
            out.put_u8(FORMAT_EX_HEADER << 4 | packet);
            out.put_slice(&cc);
        } else {
            let Some(format) = self.codec.sound_format() else {
                return Err(Error::Unencodable("codec has no legacy sound format"));
            };
            out.put_u8(
                format << 4
                    | (self.sound_rate & 0x03) << 2
                    | u8::from(self.sound_size_16bit) << 1
                    | u8::from(self.stereo),
            );
            match (self.codec, self.packet_type) {
                (AudioCodec::Aac, AudioPacketType::SequenceStart) => out.put_u8(0),
                (AudioCodec::Aac, AudioPacketType::CodedFrames) => out.put_u8(1),
                (AudioCodec::Aac, _) => {
                    return Err(Error::Unencodable("legacy AAC packet type must be 0 or 1"));
                }
                (_, AudioPacketType::Raw) => {}
                _ => {
                    return Err(Error::Unencodable(
                        "packet types only exist for AAC in legacy headers",
                    ));
                }
            }
        }
        out.put_slice(&self.data);
        Ok(())
    }

    /// The encoded body as one buffer.
    pub fn to_bytes(&self) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.header_len() + self.data.len());
        self.write(&mut out)?;
        Ok(out.freeze())
    }

    /// A legacy AAC tag (`0xAF` header byte, as the FLV specification requires for AAC).
    pub fn aac(packet_type: AudioPacketType, data: Bytes) -> AudioTag {
        AudioTag {
            codec: AudioCodec::Aac,
            enhanced: false,
            sound_rate: 3,
            sound_size_16bit: true,
            stereo: true,
            packet_type,
            data,
        }
    }
}

/// AAC sequence header body (`AF 00` + AudioSpecificConfig).
pub fn aac_sequence_header(asc: &[u8]) -> Bytes {
    aac_body(0, asc)
}

/// AAC frame body (`AF 01` + one raw AAC frame, no ADTS header).
pub fn aac_frame(raw: &[u8]) -> Bytes {
    aac_body(1, raw)
}

fn aac_body(packet: u8, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + data.len());
    out.put_u8(0xAF);
    out.put_u8(packet);
    out.put_slice(data);
    out.freeze()
}
