//! Conversion between FLV / RTMP tag bodies and [`os_av::AccessUnit`]s.
//!
//! - [`FlvDemuxer`] (ingest): sequence headers become [`ParamsChanged`]
//!   events, coded frames become access units with Annex-B payloads (H.264,
//!   H.265) or raw frames (AAC, MP3, Opus, AC-3), timestamps on the 90 kHz clock.
//! - [`video_sequence_header`], [`audio_sequence_header`], [`video_frame`],
//!   [`audio_frame`] (play / push-out): the reverse, building tag bodies from
//!   track parameters and access units.

use bytes::{Bytes, BytesMut};
use os_av::{AccessUnit, AudioParams, Codec, ParamsChanged, TrackId, VideoParams};
use os_codecs::aac::AudioSpecificConfig;
use os_codecs::nal::{DEFAULT_LENGTH_SIZE, annexb_to_length_prefixed_filtered, push_annexb};
use os_codecs::params::ParamTracker;
use os_codecs::{h264, h265};

use crate::audio::{AudioCodec, AudioPacketType, AudioTag, aac_frame, aac_sequence_header};
use crate::error::{Error, Result};
use crate::script::Metadata;
use crate::tag::{Tag, TagType};
use crate::time::{MsUnwrapper, composition_time_ms, ms_to_ticks, tag_timestamp};
use crate::video::{VideoCodec, VideoPacketType, VideoTag, avc_sequence_header};

/// What the demuxer produced from one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// A track's decoder parameters appeared or changed (from a sequence header).
    Params(ParamsChanged),
    /// One frame.
    Unit(AccessUnit),
}

#[derive(Debug, Clone)]
struct VideoState {
    codec: Codec,
    length_size: u8,
    /// Parameter sets as Annex-B, put in front of key frames that lack them.
    parameter_sets: Bytes,
}

/// Turns FLV tags / RTMP audio and video message bodies into access units.
///
/// Video codecs other than H.264/H.265 and audio codecs other than AAC, MP3,
/// Opus and AC-3 are skipped. Timestamps are unwrapped across the 32-bit
/// millisecond wrap on one clock shared by audio and video.
#[derive(Debug, Clone)]
pub struct FlvDemuxer {
    video_track: TrackId,
    audio_track: TrackId,
    insert_parameter_sets: bool,
    tracker: ParamTracker,
    video: Option<VideoState>,
    clock: MsUnwrapper,
}

impl FlvDemuxer {
    /// A demuxer that numbers its tracks `video_track` and `audio_track`.
    pub fn new(video_track: TrackId, audio_track: TrackId) -> Self {
        Self {
            video_track,
            audio_track,
            insert_parameter_sets: true,
            tracker: ParamTracker::new(),
            video: None,
            clock: MsUnwrapper::new(),
        }
    }

    /// Whether key frames without in-band parameter sets get the ones from the
    /// last sequence header prepended (default: yes, as MPEG-TS output needs them).
    pub fn set_insert_parameter_sets(&mut self, on: bool) {
        self.insert_parameter_sets = on;
    }

    /// Handles one FLV tag (script tags are ignored).
    pub fn push_tag(&mut self, tag: &Tag, out: &mut Vec<DemuxEvent>) -> Result<()> {
        match tag.tag_type {
            TagType::Video => self.push_video(tag.timestamp, &tag.data, out),
            TagType::Audio => self.push_audio(tag.timestamp, &tag.data, out),
            _ => Ok(()),
        }
    }

    /// Handles one video tag body / RTMP video message at `timestamp` ms.
    pub fn push_video(
        &mut self,
        timestamp: u32,
        body: &Bytes,
        out: &mut Vec<DemuxEvent>,
    ) -> Result<()> {
        let tag = VideoTag::parse(body)?;
        let Some(codec) = tag.codec.av_codec() else {
            return Ok(());
        };
        match tag.packet_type {
            VideoPacketType::SequenceStart => {
                let (length_size, sets) = match codec {
                    Codec::H264 => {
                        let cfg = h264::AvcDecoderConfig::parse(&tag.data)?;
                        (cfg.nal_length_size, [Vec::new(), cfg.sps, cfg.pps])
                    }
                    _ => {
                        let cfg = h265::HevcDecoderConfig::parse(&tag.data)?;
                        let get = |t| cfg.nalus(t).cloned().collect::<Vec<_>>();
                        (
                            cfg.nal_length_size,
                            [get(h265::NAL_VPS), get(h265::NAL_SPS), get(h265::NAL_PPS)],
                        )
                    }
                };
                let mut annexb = BytesMut::new();
                for nal in sets.iter().flatten() {
                    push_annexb(&mut annexb, nal);
                }
                self.video = Some(VideoState {
                    codec,
                    length_size,
                    parameter_sets: annexb.freeze(),
                });
                if let Some(changed) =
                    self.tracker
                        .set_video_config_record(self.video_track, codec, &tag.data)?
                {
                    out.push(DemuxEvent::Params(changed));
                }
            }
            VideoPacketType::CodedFrames | VideoPacketType::CodedFramesX => {
                let dts = ms_to_ticks(self.clock.unwrap(timestamp));
                let state = self.video.as_ref().filter(|s| s.codec == codec);
                let length_size = state.map_or(DEFAULT_LENGTH_SIZE, |s| s.length_size);
                let mut payload = BytesMut::with_capacity(tag.data.len() + 64);
                let mut has_sets = false;
                for nal in os_codecs::nal::length_prefixed_nals(&tag.data, length_size)? {
                    let nal = nal?;
                    has_sets |= match codec {
                        Codec::H264 => h264::is_parameter_set(nal),
                        _ => h265::is_parameter_set(nal),
                    };
                }
                let insert = tag.is_keyframe() && self.insert_parameter_sets && !has_sets;
                if let Some(s) = state.filter(|_| insert) {
                    payload.extend_from_slice(&s.parameter_sets);
                }
                os_codecs::nal::length_prefixed_to_annexb(&tag.data, length_size, &mut payload)?;
                let unit = AccessUnit {
                    track: self.video_track,
                    codec,
                    pts: dts + ms_to_ticks(i64::from(tag.composition_time)),
                    dts,
                    keyframe: tag.is_keyframe(),
                    discontinuity: false,
                    payload: payload.freeze(),
                };
                let changed = if has_sets {
                    self.tracker.observe(&unit)?
                } else {
                    None
                };
                if let Some(changed) = changed {
                    out.push(DemuxEvent::Params(changed));
                }
                out.push(DemuxEvent::Unit(unit));
            }
            _ => {}
        }
        Ok(())
    }

    /// Handles one audio tag body / RTMP audio message at `timestamp` ms.
    pub fn push_audio(
        &mut self,
        timestamp: u32,
        body: &Bytes,
        out: &mut Vec<DemuxEvent>,
    ) -> Result<()> {
        let tag = AudioTag::parse(body)?;
        let Some(codec) = tag.codec.av_codec() else {
            return Ok(());
        };
        match tag.packet_type {
            AudioPacketType::SequenceStart if codec == Codec::Aac => {
                let asc = AudioSpecificConfig::parse(&tag.data)?;
                let params = asc.audio_params(tag.data.clone());
                if let Some(changed) = self.tracker.set_audio(self.audio_track, codec, params) {
                    out.push(DemuxEvent::Params(changed));
                }
            }
            AudioPacketType::CodedFrames | AudioPacketType::Raw => {
                let ts = ms_to_ticks(self.clock.unwrap(timestamp));
                out.push(DemuxEvent::Unit(AccessUnit {
                    track: self.audio_track,
                    codec,
                    pts: ts,
                    dts: ts,
                    keyframe: true,
                    discontinuity: false,
                    payload: tag.data,
                }));
            }
            _ => {}
        }
        Ok(())
    }
}

/// The video sequence header body for a track: avcC for H.264 (legacy header),
/// hvcC for H.265 (Enhanced RTMP `hvc1` when `enhanced`, else legacy codec id 12).
pub fn video_sequence_header(codec: Codec, params: &VideoParams, enhanced: bool) -> Result<Bytes> {
    match codec {
        Codec::H264 => {
            let record = h264::AvcDecoderConfig::from_parameter_sets(&params.sps, &params.pps)?;
            Ok(avc_sequence_header(&record.to_vec()?))
        }
        Codec::H265 => {
            let record = h265::HevcDecoderConfig::from_parameter_sets(
                &params.vps,
                &params.sps,
                &params.pps,
            )?;
            VideoTag::sequence_start(VideoCodec::Hevc, enhanced, Bytes::from(record.to_vec()?))
                .to_bytes()
        }
        _ => Err(Error::UnsupportedCodec("not a video codec FLV carries")),
    }
}

/// The audio sequence header body: `AF 00` + AudioSpecificConfig for AAC.
/// Other codecs need none (`Ok(None)`).
pub fn audio_sequence_header(codec: Codec, params: &AudioParams) -> Result<Option<Bytes>> {
    match codec {
        Codec::Aac if params.asc.is_empty() => Err(Error::UnsupportedCodec(
            "AAC parameters without an AudioSpecificConfig",
        )),
        Codec::Aac => Ok(Some(aac_sequence_header(&params.asc))),
        _ => Ok(None),
    }
}

/// A video frame body for an H.264/H.265 access unit: Annex-B converted to
/// 4-byte length-prefixed NAL units, with parameter sets and access unit
/// delimiters removed (they travel in the sequence header). Returns the tag
/// timestamp (ms of the DTS) and the body. FLV timestamps are unsigned 32-bit:
/// rebase the timeline (see [`os_av::time::Rebaser`]) so that DTS is not negative.
pub fn video_frame(au: &AccessUnit, enhanced: bool) -> Result<(u32, Bytes)> {
    let (codec, keep): (VideoCodec, fn(&[u8]) -> bool) = match au.codec {
        Codec::H264 => (VideoCodec::Avc, |nal| {
            nal.first().is_some_and(|&h| {
                let t = h264::nal_type(h);
                t != h264::NAL_SPS && t != h264::NAL_PPS && t != h264::NAL_AUD
            })
        }),
        Codec::H265 => (VideoCodec::Hevc, |nal| {
            nal.first().is_some_and(|&h| {
                let t = h265::nal_type(h);
                !(h265::NAL_VPS..=h265::NAL_AUD).contains(&t)
            })
        }),
        _ => return Err(Error::UnsupportedCodec("not a video codec FLV carries")),
    };
    let mut data = BytesMut::with_capacity(au.payload.len() + 16);
    annexb_to_length_prefixed_filtered(&au.payload, DEFAULT_LENGTH_SIZE, &mut data, keep)?;
    let body = VideoTag::coded_frames(
        codec,
        enhanced && codec == VideoCodec::Hevc,
        au.keyframe,
        composition_time_ms(au.pts, au.dts),
        data.freeze(),
    )
    .to_bytes()?;
    Ok((tag_timestamp(au.dts), body))
}

/// An audio frame body for an access unit: AAC (`AF 01` + raw frame), MP3
/// (legacy sound format 2; rate / channel bits from `params` when given),
/// Opus and AC-3 (Enhanced RTMP FourCC audio).
pub fn audio_frame(au: &AccessUnit, params: Option<&AudioParams>) -> Result<(u32, Bytes)> {
    let body = match au.codec {
        Codec::Aac => aac_frame(&au.payload),
        Codec::Mp3 => {
            let rate = params.map_or(44_100, |p| p.sample_rate);
            AudioTag {
                codec: AudioCodec::Mp3,
                enhanced: false,
                sound_rate: match rate {
                    0..=8_000 => 0,
                    8_001..=12_000 => 1,
                    12_001..=24_000 => 2,
                    _ => 3,
                },
                sound_size_16bit: true,
                stereo: params.is_none_or(|p| p.channels >= 2),
                packet_type: AudioPacketType::Raw,
                data: au.payload.clone(),
            }
            .to_bytes()?
        }
        Codec::Opus | Codec::Ac3 => AudioTag {
            codec: if au.codec == Codec::Opus {
                AudioCodec::Opus
            } else {
                AudioCodec::Ac3
            },
            enhanced: true,
            sound_rate: 0,
            sound_size_16bit: false,
            stereo: false,
            packet_type: AudioPacketType::CodedFrames,
            data: au.payload.clone(),
        }
        .to_bytes()?,
        _ => return Err(Error::UnsupportedCodec("not an audio codec FLV carries")),
    };
    Ok((tag_timestamp(au.dts), body))
}

/// `onMetaData` fields describing the given tracks (for RTMP play and push-out;
/// encode with [`Metadata::to_script_body`]).
pub fn metadata_for(
    video: Option<(Codec, &VideoParams)>,
    audio: Option<(Codec, &AudioParams)>,
) -> Metadata {
    let mut meta = Metadata::default();
    if let Some((codec, v)) = video {
        meta.width = Some(f64::from(v.width));
        meta.height = Some(f64::from(v.height));
        meta.framerate = v
            .frame_rate
            .filter(|&(_, d)| d != 0)
            .map(|(n, d)| f64::from(n) / f64::from(d));
        meta.video_codec = match codec {
            Codec::H264 => Some(VideoCodec::Avc),
            Codec::H265 => Some(VideoCodec::Hevc),
            _ => None,
        };
    }
    if let Some((codec, a)) = audio {
        meta.audio_sample_rate = Some(f64::from(a.sample_rate));
        meta.audio_sample_size = Some(16.0);
        meta.stereo = Some(a.channels >= 2);
        meta.audio_codec = match codec {
            Codec::Aac => Some(AudioCodec::Aac),
            Codec::Mp3 => Some(AudioCodec::Mp3),
            Codec::Opus => Some(AudioCodec::Opus),
            Codec::Ac3 => Some(AudioCodec::Ac3),
            _ => None,
        };
    }
    meta
}
