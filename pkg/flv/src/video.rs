//! Video tag bodies (also the body of an RTMP video message), legacy and
//! Enhanced RTMP (`ExVideoTagHeader`).
//!
//! Legacy layout: `frame_type(4) codec_id(4)`, then for AVC (7) and the
//! common non-standard HEVC id (12): `packet_type(8) composition_time(SI24)`.
//!
//! Enhanced layout: `1 frame_type(3) packet_type(4)`, `FourCC`, then for
//! `CodedFrames` of `avc1`/`hvc1` a `composition_time(SI24)`; `CodedFramesX`
//! carries frames whose composition time is zero.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

const IS_EX_HEADER: u8 = 0x80;

/// Video frame type (`VideoFrameType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 1: key frame (a seekable frame; IDR / IRAP for AVC / HEVC).
    Key,
    /// 2: inter frame.
    Inter,
    /// 3: disposable inter frame (H.263 only).
    DisposableInter,
    /// 4: generated key frame (server use).
    Generated,
    /// 5: video info / command frame.
    Command,
}

impl FrameType {
    pub fn from_u8(v: u8) -> Result<FrameType> {
        Ok(match v {
            1 => FrameType::Key,
            2 => FrameType::Inter,
            3 => FrameType::DisposableInter,
            4 => FrameType::Generated,
            5 => FrameType::Command,
            other => return Err(Error::InvalidFrameType(other)),
        })
    }

    pub fn to_u8(self) -> u8 {
        match self {
            FrameType::Key => 1,
            FrameType::Inter => 2,
            FrameType::DisposableInter => 3,
            FrameType::Generated => 4,
            FrameType::Command => 5,
        }
    }
}

/// The video codec of a tag: from the legacy 4-bit codec id or the Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Legacy codec id 7 or FourCC `avc1`.
    Avc,
    /// Legacy (non-standard) codec id 12 or FourCC `hvc1`.
    Hevc,
    /// FourCC `av01`.
    Av1,
    /// FourCC `vp09`.
    Vp9,
    /// Any other legacy codec id (2 = Sorenson H.263, 4 = VP6, ...); body is opaque.
    Legacy(u8),
    /// Any other FourCC.
    FourCc([u8; 4]),
    /// Enhanced command frames carry no codec.
    Unspecified,
}

impl VideoCodec {
    /// Maps a legacy codec id.
    pub fn from_codec_id(id: u8) -> VideoCodec {
        match id {
            7 => VideoCodec::Avc,
            12 => VideoCodec::Hevc,
            other => VideoCodec::Legacy(other),
        }
    }

    /// Maps an Enhanced RTMP FourCC.
    pub fn from_fourcc(cc: [u8; 4]) -> VideoCodec {
        match &cc {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            _ => VideoCodec::FourCc(cc),
        }
    }

    /// The legacy codec id, if this codec has one.
    pub fn codec_id(self) -> Option<u8> {
        match self {
            VideoCodec::Avc => Some(7),
            VideoCodec::Hevc => Some(12),
            VideoCodec::Legacy(id) => Some(id & 0x0F),
            _ => None,
        }
    }

    /// The Enhanced RTMP FourCC, if this codec has one.
    pub fn fourcc(self) -> Option<[u8; 4]> {
        match self {
            VideoCodec::Avc => Some(*b"avc1"),
            VideoCodec::Hevc => Some(*b"hvc1"),
            VideoCodec::Av1 => Some(*b"av01"),
            VideoCodec::Vp9 => Some(*b"vp09"),
            VideoCodec::FourCc(cc) => Some(cc),
            _ => None,
        }
    }

    /// The matching access-unit codec, for the codecs open-streamer carries.
    pub fn av_codec(self) -> Option<os_av::Codec> {
        match self {
            VideoCodec::Avc => Some(os_av::Codec::H264),
            VideoCodec::Hevc => Some(os_av::Codec::H265),
            _ => None,
        }
    }

    /// Whether coded frames of this codec carry NAL units with a composition time.
    fn has_composition_time(self) -> bool {
        matches!(self, VideoCodec::Avc | VideoCodec::Hevc)
    }
}

/// What a video tag body holds. Legacy AVC/HEVC packet types map onto the
/// Enhanced RTMP names (0 → `SequenceStart`, 1 → `CodedFrames`, 2 → `SequenceEnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoPacketType {
    /// Decoder configuration record (avcC, hvcC, av1C, vpcC).
    SequenceStart,
    /// Coded frames with a composition time (for AVC/HEVC: length-prefixed NAL units).
    CodedFrames,
    /// Enhanced only: coded frames whose composition time is zero.
    CodedFramesX,
    /// End of sequence.
    SequenceEnd,
    /// Enhanced only: AMF-encoded metadata (e.g. `colorInfo`).
    Metadata,
    /// Enhanced only: MPEG-2 TS sequence start (AV1 descriptor).
    Mpeg2TsSequenceStart,
    /// Frame type 5: a one-byte video command / info payload.
    Command,
    /// Legacy codecs other than AVC/HEVC: the body after the first byte, opaque.
    Raw,
}

/// A parsed video tag body. `data` is the payload after the headers (a slice
/// of the input, no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTag {
    pub frame_type: FrameType,
    pub codec: VideoCodec,
    /// Whether the body uses the Enhanced RTMP `ExVideoTagHeader`.
    pub enhanced: bool,
    pub packet_type: VideoPacketType,
    /// Composition time offset (pts - dts) in milliseconds; 0 when absent.
    pub composition_time: i32,
    pub data: Bytes,
}

fn sign_extend_24(b: [u8; 3]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

impl VideoTag {
    /// Parses a video tag body (or an RTMP video message body).
    pub fn parse(body: &Bytes) -> Result<VideoTag> {
        let Some(&first) = body.first() else {
            return Err(Error::EmptyBody("video"));
        };
        if first & IS_EX_HEADER != 0 {
            return Self::parse_enhanced(body, first);
        }
        let frame_type = FrameType::from_u8(first >> 4)?;
        let codec = VideoCodec::from_codec_id(first & 0x0F);
        let mut tag = VideoTag {
            frame_type,
            codec,
            enhanced: false,
            packet_type: VideoPacketType::Raw,
            composition_time: 0,
            data: body.slice(1..),
        };
        if frame_type == FrameType::Command {
            tag.packet_type = VideoPacketType::Command;
            return Ok(tag);
        }
        if !codec.has_composition_time() {
            return Ok(tag);
        }
        let Some(h) = body.first_chunk::<5>() else {
            return Err(Error::Truncated {
                what: "AVC video tag header",
                need: 5,
                have: body.len(),
            });
        };
        tag.packet_type = match h[1] {
            0 => VideoPacketType::SequenceStart,
            1 => VideoPacketType::CodedFrames,
            2 => VideoPacketType::SequenceEnd,
            other => return Err(Error::InvalidAvcPacketType(other)),
        };
        tag.composition_time = sign_extend_24([h[2], h[3], h[4]]);
        tag.data = body.slice(5..);
        Ok(tag)
    }

    fn parse_enhanced(body: &Bytes, first: u8) -> Result<VideoTag> {
        let frame_type = FrameType::from_u8((first >> 4) & 0x07)?;
        let packet = first & 0x0F;
        if frame_type == FrameType::Command && packet != 4 {
            return Ok(VideoTag {
                frame_type,
                codec: VideoCodec::Unspecified,
                enhanced: true,
                packet_type: VideoPacketType::Command,
                composition_time: 0,
                data: body.slice(1..),
            });
        }
        let packet_type = match packet {
            0 => VideoPacketType::SequenceStart,
            1 => VideoPacketType::CodedFrames,
            2 => VideoPacketType::SequenceEnd,
            3 => VideoPacketType::CodedFramesX,
            4 => VideoPacketType::Metadata,
            5 => VideoPacketType::Mpeg2TsSequenceStart,
            other => return Err(Error::UnsupportedVideoPacketType(other)),
        };
        let Some(h) = body.first_chunk::<5>() else {
            return Err(Error::Truncated {
                what: "enhanced video tag header",
                need: 5,
                have: body.len(),
            });
        };
        let codec = VideoCodec::from_fourcc([h[1], h[2], h[3], h[4]]);
        let mut tag = VideoTag {
            frame_type,
            codec,
            enhanced: true,
            packet_type,
            composition_time: 0,
            data: body.slice(5..),
        };
        if packet_type == VideoPacketType::CodedFrames && codec.has_composition_time() {
            let Some(h) = body.first_chunk::<8>() else {
                return Err(Error::Truncated {
                    what: "enhanced video composition time",
                    need: 8,
                    have: body.len(),
                });
            };
            tag.composition_time = sign_extend_24([h[5], h[6], h[7]]);
            tag.data = body.slice(8..);
        }
        Ok(tag)
    }

    /// Whether this is a key frame (frame type 1).
    pub fn is_keyframe(&self) -> bool {
        self.frame_type == FrameType::Key
    }

    /// Whether the body is a decoder configuration record.
    pub fn is_sequence_header(&self) -> bool {
        self.packet_type == VideoPacketType::SequenceStart
    }

    /// Whether the body holds coded frames.
    pub fn is_coded_frames(&self) -> bool {
        matches!(
            self.packet_type,
            VideoPacketType::CodedFrames | VideoPacketType::CodedFramesX | VideoPacketType::Raw
        )
    }

    /// Size of the headers [`VideoTag::write`] puts before `data`.
    pub fn header_len(&self) -> usize {
        match (self.enhanced, self.packet_type) {
            (_, VideoPacketType::Command) => 1,
            (false, VideoPacketType::Raw) => 1,
            (false, _) => 5,
            (true, VideoPacketType::CodedFrames) if self.codec.has_composition_time() => 8,
            (true, _) => 5,
        }
    }

    /// Writes the body: headers then `data`.
    pub fn write<B: BufMut>(&self, out: &mut B) -> Result<()> {
        if !(-0x80_0000..=0x7F_FFFF).contains(&self.composition_time) {
            return Err(Error::OutOfRange {
                what: "composition time",
                value: i64::from(self.composition_time),
            });
        }
        let cts = self.composition_time.to_be_bytes();
        let frame_type = self.frame_type.to_u8();
        if self.enhanced {
            let packet = match self.packet_type {
                VideoPacketType::SequenceStart => 0,
                VideoPacketType::CodedFrames => 1,
                VideoPacketType::SequenceEnd => 2,
                VideoPacketType::CodedFramesX => 3,
                VideoPacketType::Metadata => 4,
                VideoPacketType::Mpeg2TsSequenceStart => 5,
                VideoPacketType::Command => {
                    // Any packet type but Metadata marks a command; use 0.
                    out.put_u8(IS_EX_HEADER | frame_type << 4);
                    out.put_slice(&self.data);
                    return Ok(());
                }
                VideoPacketType::Raw => {
                    return Err(Error::Unencodable("raw packets need a legacy header"));
                }
            };
            let Some(cc) = self.codec.fourcc() else {
                return Err(Error::Unencodable("codec has no FourCC"));
            };
            if self.composition_time != 0
                && !(self.packet_type == VideoPacketType::CodedFrames
                    && self.codec.has_composition_time())
            {
                return Err(Error::Unencodable(
                    "composition time only exists in avc1/hvc1 CodedFrames",
                ));
            }
            out.put_u8(IS_EX_HEADER | frame_type << 4 | packet);
            out.put_slice(&cc);
            if self.packet_type == VideoPacketType::CodedFrames && self.codec.has_composition_time()
            {
                out.put_slice(&cts[1..]);
            }
        } else {
            let Some(id) = self.codec.codec_id() else {
                return Err(Error::Unencodable("codec has no legacy codec id"));
            };
            let packet = match self.packet_type {
                VideoPacketType::SequenceStart => Some(0),
                VideoPacketType::CodedFrames => Some(1),
                VideoPacketType::SequenceEnd => Some(2),
                VideoPacketType::Raw if self.codec.has_composition_time() => {
                    return Err(Error::Unencodable("AVC/HEVC bodies need a packet type"));
                }
                VideoPacketType::Command | VideoPacketType::Raw => None,
                _ => return Err(Error::Unencodable("packet type needs an enhanced header")),
            };
            out.put_u8(frame_type << 4 | id);
            match packet {
                Some(p) if self.codec.has_composition_time() => {
                    out.put_u8(p);
                    out.put_slice(&cts[1..]);
                }
                None => {}
                Some(_) => {
                    return Err(Error::Unencodable(
                        "packet types only exist for AVC/HEVC in legacy headers",
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

    /// A sequence-start tag carrying a decoder configuration record.
    /// `enhanced` selects the FourCC header (required for AV1/VP9).
    pub fn sequence_start(codec: VideoCodec, enhanced: bool, config: Bytes) -> VideoTag {
        VideoTag {
            frame_type: FrameType::Key,
            codec,
            enhanced,
            packet_type: VideoPacketType::SequenceStart,
            composition_time: 0,
            data: config,
        }
    }

    /// A coded-frames tag. For enhanced AVC/HEVC a zero composition time is
    /// sent as `CodedFramesX`. `data` holds length-prefixed NAL units for AVC/HEVC.
    pub fn coded_frames(
        codec: VideoCodec,
        enhanced: bool,
        keyframe: bool,
        composition_time: i32,
        data: Bytes,
    ) -> VideoTag {
        let packet_type = if enhanced && composition_time == 0 && codec.has_composition_time() {
            VideoPacketType::CodedFramesX
        } else {
            VideoPacketType::CodedFrames
        };
        VideoTag {
            frame_type: if keyframe {
                FrameType::Key
            } else {
                FrameType::Inter
            },
            codec,
            enhanced,
            packet_type,
            composition_time,
            data,
        }
    }

    /// An end-of-sequence tag.
    pub fn sequence_end(codec: VideoCodec, enhanced: bool) -> VideoTag {
        VideoTag {
            frame_type: FrameType::Key,
            codec,
            enhanced,
            packet_type: VideoPacketType::SequenceEnd,
            composition_time: 0,
            data: Bytes::new(),
        }
    }
}

/// Legacy AVC sequence header body (`17 00 000000` + avcC record).
pub fn avc_sequence_header(avcc: &[u8]) -> Bytes {
    config_body(&[0x17, 0, 0, 0, 0], avcc)
}

/// Enhanced RTMP HEVC sequence start body (`90 'hvc1'` + hvcC record).
pub fn hevc_sequence_header(hvcc: &[u8]) -> Bytes {
    config_body(&[IS_EX_HEADER | 0x10, b'h', b'v', b'c', b'1'], hvcc)
}

/// Legacy (non-standard codec id 12) HEVC sequence header body (`1c 00 000000` + hvcC record).
pub fn hevc_sequence_header_legacy(hvcc: &[u8]) -> Bytes {
    config_body(&[0x1C, 0, 0, 0, 0], hvcc)
}

fn config_body(header: &[u8], config: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header.len() + config.len());
    out.put_slice(header);
    out.put_slice(config);
    out.freeze()
}

/// Legacy AVC frame body: length-prefixed NAL units with composition time in ms.
pub fn avc_frame(keyframe: bool, composition_time: i32, avcc_nalus: Bytes) -> Result<Bytes> {
    VideoTag::coded_frames(
        VideoCodec::Avc,
        false,
        keyframe,
        composition_time,
        avcc_nalus,
    )
    .to_bytes()
}

/// HEVC frame body, enhanced (`hvc1`, `CodedFramesX` when the composition
/// time is 0) or legacy codec id 12.
pub fn hevc_frame(
    enhanced: bool,
    keyframe: bool,
    composition_time: i32,
    hvcc_nalus: Bytes,
) -> Result<Bytes> {
    VideoTag::coded_frames(
        VideoCodec::Hevc,
        enhanced,
        keyframe,
        composition_time,
        hvcc_nalus,
    )
    .to_bytes()
}
