//! Track parameter tracking: turns in-band parameter sets (and out-of-band
//! configuration from containers and SDP) into [`ParamsChanged`] events.
//!
//! Usage by producers:
//! - MPEG-TS demuxer: call [`ParamTracker::observe`] for every access unit;
//!   for AAC, call [`ParamTracker::set_audio`] with the params derived from
//!   the ADTS header (cheap: unchanged params return `None`).
//! - RTMP ingest: feed the AVC/HEVC sequence header with
//!   [`ParamTracker::set_video_config_record`], the AAC sequence header with
//!   [`ParamTracker::set_audio`], then [`ParamTracker::observe`] access units
//!   (which catches in-band changes too).
//! - RTSP ingest: feed SDP `sprop-parameter-sets` / `sprop-vps/sps/pps` with
//!   [`ParamTracker::set_video_parameter_sets`], the AAC `config=` with
//!   [`ParamTracker::set_audio`], then [`ParamTracker::observe`].

use std::collections::HashMap;

use bytes::Bytes;
use os_av::{AccessUnit, AudioParams, Codec, ParamsChanged, TrackId, TrackParams, VideoParams};

use crate::error::CodecError;
use crate::nal::{ParameterSets, extract_parameter_sets};
use crate::{h264, h265};

/// Build [`VideoParams`] for an H.264 track from its SPS/PPS NAL units.
pub fn h264_video_params(sps: &[Bytes], pps: &[Bytes]) -> Result<VideoParams, CodecError> {
    let first = sps.first().ok_or(CodecError::MissingParameterSet("SPS"))?;
    if pps.is_empty() {
        return Err(CodecError::MissingParameterSet("PPS"));
    }
    let parsed = h264::parse_sps(first)?;
    Ok(VideoParams {
        width: parsed.width,
        height: parsed.height,
        profile: parsed.profile_idc,
        compatibility: u32::from(parsed.constraint_flags),
        level: parsed.level_idc,
        frame_rate: parsed.frame_rate(),
        vps: Vec::new(),
        sps: sps.to_vec(),
        pps: pps.to_vec(),
    })
}

/// Build [`VideoParams`] for an H.265 track from its VPS/SPS/PPS NAL units.
pub fn h265_video_params(
    vps: &[Bytes],
    sps: &[Bytes],
    pps: &[Bytes],
) -> Result<VideoParams, CodecError> {
    if vps.is_empty() {
        return Err(CodecError::MissingParameterSet("VPS"));
    }
    let first = sps.first().ok_or(CodecError::MissingParameterSet("SPS"))?;
    if pps.is_empty() {
        return Err(CodecError::MissingParameterSet("PPS"));
    }
    let parsed = h265::parse_sps(first)?;
    Ok(VideoParams {
        width: parsed.width,
        height: parsed.height,
        profile: parsed.ptl.profile_idc,
        compatibility: parsed.ptl.compatibility_flags,
        level: parsed.ptl.level_idc,
        frame_rate: parsed.frame_rate(),
        vps: vps.to_vec(),
        sps: sps.to_vec(),
        pps: pps.to_vec(),
    })
}

/// Build [`VideoParams`] from parameter sets of `codec` (H.264 or H.265).
pub fn video_params(codec: Codec, sets: &ParameterSets) -> Result<VideoParams, CodecError> {
    match codec {
        Codec::H264 => h264_video_params(&sets.sps, &sets.pps),
        Codec::H265 => h265_video_params(&sets.vps, &sets.sps, &sets.pps),
        _ => Err(CodecError::Unsupported("not a video codec")),
    }
}

#[derive(Debug, Clone)]
struct TrackState {
    codec: Codec,
    /// Latest parameter sets seen (possibly incomplete).
    sets: ParameterSets,
    /// Last reported parameters.
    params: Option<TrackParams>,
}

/// Watches the tracks of one program and reports when a track's decoder
/// parameters first appear or change. Sans-IO and cheap on the steady state:
/// an access unit without parameter sets costs one NAL scan.
#[derive(Debug, Clone, Default)]
pub struct ParamTracker {
    tracks: HashMap<TrackId, TrackState>,
}

impl ParamTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Last reported parameters of a track.
    pub fn params(&self, track: TrackId) -> Option<&TrackParams> {
        self.tracks.get(&track).and_then(|t| t.params.as_ref())
    }

    /// Forget a track (removed from the program).
    pub fn remove(&mut self, track: TrackId) {
        self.tracks.remove(&track);
    }

    /// Forget everything (new source). The next parameters of every track are
    /// reported again.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    fn state(&mut self, track: TrackId, codec: Codec) -> &mut TrackState {
        let state = self.tracks.entry(track).or_insert_with(|| TrackState {
            codec,
            sets: ParameterSets::default(),
            params: None,
        });
        if state.codec != codec {
            *state = TrackState {
                codec,
                sets: ParameterSets::default(),
                params: None,
            };
        }
        state
    }

    /// Observe one access unit. For H.264/H.265, in-band parameter sets are
    /// merged with the ones already known (a kind present in the unit replaces
    /// that kind); when the resulting set is complete and differs from the last
    /// reported one, the new parameters are returned. Other codecs return `None`
    /// (use [`ParamTracker::set_audio`]).
    ///
    /// An error means the unit carried parameter sets that could not be parsed;
    /// the previous state is kept.
    pub fn observe(&mut self, au: &AccessUnit) -> Result<Option<ParamsChanged>, CodecError> {
        if !matches!(au.codec, Codec::H264 | Codec::H265) {
            return Ok(None);
        }
        let found = extract_parameter_sets(au.codec, &au.payload);
        if found.is_empty() {
            return Ok(None);
        }
        self.merge_sets(au.track, au.codec, found)
    }

    /// Feed parameter sets known out of band (SDP `sprop-*`, container headers).
    /// Kinds left empty keep their current value.
    pub fn set_video_parameter_sets(
        &mut self,
        track: TrackId,
        codec: Codec,
        sets: ParameterSets,
    ) -> Result<Option<ParamsChanged>, CodecError> {
        if !matches!(codec, Codec::H264 | Codec::H265) {
            return Err(CodecError::Unsupported("not a video codec"));
        }
        self.merge_sets(track, codec, sets)
    }

    /// Feed a decoder configuration record: an avcC (H.264, e.g. the RTMP AVC
    /// sequence header) or hvcC (H.265) payload. Replaces all parameter sets.
    pub fn set_video_config_record(
        &mut self,
        track: TrackId,
        codec: Codec,
        record: &[u8],
    ) -> Result<Option<ParamsChanged>, CodecError> {
        let sets = match codec {
            Codec::H264 => {
                let cfg = h264::AvcDecoderConfig::parse(record)?;
                ParameterSets {
                    vps: Vec::new(),
                    sps: cfg.sps,
                    pps: cfg.pps,
                }
            }
            Codec::H265 => {
                let cfg = h265::HevcDecoderConfig::parse(record)?;
                ParameterSets {
                    vps: cfg.nalus(h265::NAL_VPS).cloned().collect(),
                    sps: cfg.nalus(h265::NAL_SPS).cloned().collect(),
                    pps: cfg.nalus(h265::NAL_PPS).cloned().collect(),
                }
            }
            _ => return Err(CodecError::Unsupported("not a video codec")),
        };
        self.merge_sets(track, codec, sets)
    }

    fn merge_sets(
        &mut self,
        track: TrackId,
        codec: Codec,
        found: ParameterSets,
    ) -> Result<Option<ParamsChanged>, CodecError> {
        let state = self.state(track, codec);
        let mut candidate = state.sets.clone();
        if !found.vps.is_empty() {
            candidate.vps = found.vps;
        }
        if !found.sps.is_empty() {
            candidate.sps = found.sps;
        }
        if !found.pps.is_empty() {
            candidate.pps = found.pps;
        }
        if candidate == state.sets && state.params.is_some() {
            return Ok(None);
        }
        let complete = !candidate.sps.is_empty()
            && !candidate.pps.is_empty()
            && (codec == Codec::H264 || !candidate.vps.is_empty());
        if !complete {
            state.sets = candidate;
            return Ok(None);
        }
        let params = TrackParams::Video(video_params(codec, &candidate)?);
        state.sets = candidate;
        Ok(Self::update(state, track, params))
    }

    /// Feed audio parameters (from an ADTS header, an FLV AAC sequence header,
    /// an SDP `config=`, ...). Returns the change event when they differ from
    /// the last reported ones.
    pub fn set_audio(
        &mut self,
        track: TrackId,
        codec: Codec,
        params: AudioParams,
    ) -> Option<ParamsChanged> {
        let state = self.state(track, codec);
        Self::update(state, track, TrackParams::Audio(params))
    }

    fn update(
        state: &mut TrackState,
        track: TrackId,
        params: TrackParams,
    ) -> Option<ParamsChanged> {
        if state.params.as_ref() == Some(&params) {
            return None;
        }
        state.params = Some(params.clone());
        Some(ParamsChanged {
            track,
            codec: state.codec,
            params,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // SPS/PPS of data/testdata/es/h264_main_nobframes_320x240_25fps.h264 (Main, level 1.3).
    const SPS: &[u8] = &[
        0x67, 0x4d, 0x40, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
        0x00, 0x00, 0x0c, 0x83, 0xc5, 0x0a, 0xa8,
    ];
    const PPS: &[u8] = &[0x68, 0xef, 0x0f, 0xc8];

    fn au(payload: Vec<u8>) -> AccessUnit {
        AccessUnit {
            track: 256,
            codec: Codec::H264,
            pts: 0,
            dts: 0,
            keyframe: true,
            discontinuity: false,
            payload: Bytes::from(payload),
        }
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn reports_first_appearance_then_only_changes() {
        let mut t = ParamTracker::new();
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        assert_eq!(t.observe(&au(annexb(&[idr]))).unwrap(), None);
        // SPS alone is incomplete.
        assert_eq!(t.observe(&au(annexb(&[SPS, idr]))).unwrap(), None);
        let ev = t.observe(&au(annexb(&[PPS, idr]))).unwrap().unwrap();
        let TrackParams::Video(v) = &ev.params else {
            panic!("video params expected")
        };
        assert_eq!((v.width, v.height, v.profile, v.level), (320, 240, 77, 13));
        assert_eq!(ev.track, 256);
        assert_eq!(t.observe(&au(annexb(&[SPS, PPS, idr]))).unwrap(), None);
        // A different PPS is a change.
        let pps2: &[u8] = &[0x68, 0xef, 0x0f, 0xc9];
        assert!(t.observe(&au(annexb(&[SPS, pps2, idr]))).unwrap().is_some());
        // A broken SPS is an error and keeps the state.
        assert!(t.observe(&au(annexb(&[&[0x67, 0x42], PPS]))).is_err());
        assert!(t.params(256).is_some());
    }

    #[test]
    fn audio_and_config_records() {
        let mut t = ParamTracker::new();
        let a = AudioParams {
            sample_rate: 48_000,
            channels: 2,
            object_type: 2,
            asc: Bytes::from_static(&[0x11, 0x90]),
            samples_per_frame: 1024,
        };
        assert!(t.set_audio(257, Codec::Aac, a.clone()).is_some());
        assert!(t.set_audio(257, Codec::Aac, a.clone()).is_none());
        let cfg = h264::AvcDecoderConfig::from_parameter_sets(
            &[Bytes::from_static(SPS)],
            &[Bytes::from_static(PPS)],
        )
        .unwrap();
        let rec = cfg.to_vec().unwrap();
        assert!(
            t.set_video_config_record(256, Codec::H264, &rec)
                .unwrap()
                .is_some()
        );
        assert!(
            t.set_video_config_record(256, Codec::H264, &rec)
                .unwrap()
                .is_none()
        );
        t.reset();
        assert!(t.set_audio(257, Codec::Aac, a).is_some());
    }
}
