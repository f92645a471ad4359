//! RTSP pull (`rtsp://[user:pass@]camera:554/path[?transport=udp|tcp]`).
//!
//! One session: `DESCRIBE`, `SETUP` of the first H.264/H.265 video stream and
//! the first AAC (`mpeg4-generic`) audio stream, `PLAY`, then frames. RTP is
//! carried interleaved on the RTSP connection (TCP) unless the URL asks for
//! `transport=udp`.
//!
//! Frames arrive length-prefixed (AVCC/HVCC) with per-stream RTP clocks. They
//! become access units for the [`AuEmitter`]:
//! - video: Annex-B, access unit delimiters and in-band parameter sets
//!   removed, the current VPS/SPS/PPS put in front of every keyframe (so a
//!   viewer joining at any keyframe can decode); nothing is written before
//!   the first keyframe;
//! - audio: raw AAC frames; the AudioSpecificConfig from the SDP goes to the
//!   muxer as track parameters.
//!
//! Timestamps are the stream's elapsed time since `PLAY` (the RTP-Info
//! `rtptime` of each stream marks the same instant, so audio and video share
//! one origin), rescaled to 90 kHz and shifted by [`TIMELINE_BASE`]. Without
//! RTP-Info (some cameras) each stream starts at its first packet. RTP
//! carries no decode time, so `dts = pts` (cameras do not send B-frames).

use std::slice;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use os_av::{AccessUnit, AudioParams, Codec, ParamsChanged, Track, TrackParams, VideoParams};
use os_domain::InputAuth;
use retina::client::{
    Credentials, InitialTimestampPolicy, PlayOptions, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use tokio::time::{Instant, timeout};

use crate::emit::{AuEmitter, TsEmitter};
use crate::error::IngestError;
use crate::{Session, redact};

/// Track id (and TS PID) of the video track.
pub const VIDEO_TRACK: u16 = 0x100;
/// Track id (and TS PID) of the audio track.
pub const AUDIO_TRACK: u16 = 0x101;

/// Added to every timestamp so that the first PCR (written some time before
/// the first DTS) is not negative.
pub const TIMELINE_BASE: i64 = 10 * os_av::CLOCK_HZ as i64;

/// Largest frame accepted (a corrupt length would otherwise be copied).
const MAX_FRAME_BYTES: usize = 16 << 20;

/// Where and how to connect, derived from the input.
#[derive(Debug)]
struct Target {
    /// The URL sent to the server: no user info, no `transport` option.
    url: url::Url,
    creds: Option<Credentials>,
    udp: bool,
}

fn target(raw: &str, auth: Option<&InputAuth>) -> Result<Target, IngestError> {
    let mut url =
        url::Url::parse(raw).map_err(|e| IngestError::config(format!("invalid rtsp url: {e}")))?;
    match url.scheme() {
        "rtsp" => {}
        "rtsps" => {
            return Err(IngestError::config(
                "rtsps (RTSP over TLS) is not supported; use rtsp://",
            ));
        }
        other => return Err(IngestError::config(format!("not an rtsp url: {other}"))),
    }
    let mut udp = false;
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in url.query_pairs() {
        if k.eq_ignore_ascii_case("transport") {
            udp = match v.to_ascii_lowercase().as_str() {
                "udp" => true,
                "tcp" => false,
                other => {
                    return Err(IngestError::config(format!(
                        "transport must be tcp or udp, not \"{other}\""
                    )));
                }
            };
        } else {
            kept.push((k.into_owned(), v.into_owned()));
        }
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let from_url = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: percent_decode(url.password().unwrap_or_default()),
    });
    let creds = from_url.or_else(|| {
        auth.filter(|a| !a.username.is_empty())
            .map(|a| Credentials {
                username: a.username.clone(),
                password: a.password.clone(),
            })
    });
    // Credentials travel in the Authorization header only.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(Target { url, creds, udp })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Map a retina error to an ingest error. Only the first line of retina's
/// message is kept (the rest is connection context); the password is never
/// part of it, but is scrubbed anyway.
fn classify(step: &str, e: &retina::Error, creds: Option<&Credentials>) -> IngestError {
    let text = e.to_string();
    let mut first = text.lines().next().unwrap_or_default().trim().to_string();
    if let Some(c) = creds
        && !c.password.is_empty()
    {
        first = first.replace(&c.password, "***");
    }
    let msg = format!("{step}: {first}");
    match e.status_code() {
        Some(401 | 403 | 407) => IngestError::auth(msg),
        Some(404 | 410) => IngestError::not_found(msg),
        // 454 Session Not Found: the server dropped our session.
        Some(454) => IngestError::ended(msg),
        Some(_) => IngestError::protocol(msg),
        None if first.starts_with("Unable to connect") => IngestError::connect(msg),
        None if first.starts_with("Error reading from RTSP peer")
            || first.starts_with("Error writing to RTSP peer") =>
        {
            IngestError::ended(msg)
        }
        None if first.starts_with("Timeout") => IngestError::timeout(msg),
        None if first.starts_with("Error receiving UDP") => IngestError::io(msg),
        None => IngestError::protocol(msg),
    }
}

/// Run one retina future under the session timeout.
async fn step<T>(
    what: &str,
    limit: Duration,
    creds: Option<&Credentials>,
    fut: impl Future<Output = Result<T, retina::Error>>,
) -> Result<T, IngestError> {
    match timeout(limit, fut).await {
        Ok(r) => r.map_err(|e| classify(what, &e, creds)),
        Err(_) => Err(IngestError::timeout(format!(
            "{what}: no answer within {} s",
            limit.as_secs()
        ))),
    }
}

fn video_params(codec: &VideoParametersCodec) -> Option<(Codec, VideoParams)> {
    match codec {
        VideoParametersCodec::H264 { sps, pps } => {
            os_codecs::params::h264_video_params(slice::from_ref(sps), slice::from_ref(pps))
                .ok()
                .map(|p| (Codec::H264, p))
        }
        VideoParametersCodec::H265 { vps, sps, pps } => os_codecs::params::h265_video_params(
            slice::from_ref(vps),
            slice::from_ref(sps),
            slice::from_ref(pps),
        )
        .ok()
        .map(|p| (Codec::H265, p)),
        _ => None,
    }
}

fn audio_params(asc: &[u8]) -> Option<AudioParams> {
    let parsed = os_codecs::aac::AudioSpecificConfig::parse(asc).ok()?;
    Some(parsed.audio_params(Bytes::copy_from_slice(asc)))
}

/// Converts retina's length-prefixed frames to Annex-B access units.
struct VideoConverter {
    codec: Codec,
    params: Option<VideoParams>,
    buf: BytesMut,
    started: bool,
}

impl VideoConverter {
    fn is_parameter_set_or_aud(&self, nal: &[u8]) -> bool {
        let Some(&h) = nal.first() else {
            return true;
        };
        match self.codec {
            Codec::H264 => {
                use os_codecs::h264::{NAL_AUD, NAL_PPS, NAL_SPS};
                matches!(os_codecs::h264::nal_type(h), NAL_SPS | NAL_PPS | NAL_AUD)
            }
            // VPS, SPS, PPS, AUD.
            _ => matches!(os_codecs::h265::nal_type(h), 32..=35),
        }
    }

    /// Annex-B payload of one frame, or `None` before the first keyframe.
    fn convert(&mut self, data: &[u8], keyframe: bool) -> Result<Option<Bytes>, IngestError> {
        if !keyframe && !self.started {
            return Ok(None);
        }
        self.buf.clear();
        if keyframe && let Some(p) = &self.params {
            for nal in p.vps.iter().chain(&p.sps).chain(&p.pps) {
                os_codecs::nal::push_annexb(&mut self.buf, nal);
            }
        }
        let nals = os_codecs::nal::length_prefixed_nals(data, 4)
            .map_err(|e| IngestError::protocol(format!("video frame: {e}")))?;
        for nal in nals {
            let nal = nal.map_err(|e| IngestError::protocol(format!("video frame: {e}")))?;
            // Parameter sets are put in front of keyframes from the current
            // parameters; AUDs are added by the muxer.
            if self.is_parameter_set_or_aud(nal) {
                continue;
            }
            os_codecs::nal::push_annexb(&mut self.buf, nal);
        }
        self.started = true;
        Ok(Some(self.buf.split().freeze()))
    }
}

fn to_90k(ts: retina::Timestamp) -> i64 {
    TIMELINE_BASE + os_av::time::rescale(ts.elapsed(), ts.clock_rate().get(), os_av::CLOCK_HZ)
}

/// One session of an RTSP input.
pub async fn run(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    let t = target(s.url, s.input.auth.as_ref())?;
    let shown = redact(s.url);
    let limit = s.timeout();
    let creds = t.creds.as_ref();
    let options = SessionOptions::default()
        .creds(t.creds.clone())
        .user_agent("open-streamer".to_string());
    let mut session = step(
        "DESCRIBE",
        limit,
        creds,
        retina::client::Session::describe(t.url.clone(), options),
    )
    .await?;

    let mut video: Option<(usize, Codec)> = None;
    let mut audio: Option<usize> = None;
    for (i, st) in session.streams().iter().enumerate() {
        let pick = match (st.media(), st.encoding_name()) {
            ("video", "h264") if video.is_none() => {
                video = Some((i, Codec::H264));
                true
            }
            ("video", "h265") if video.is_none() => {
                video = Some((i, Codec::H265));
                true
            }
            ("audio", "mpeg4-generic") if audio.is_none() => {
                audio = Some(i);
                true
            }
            _ => false,
        };
        if !pick {
            tracing::info!(
                stream = s.stream, input = s.input.priority, url = %shown,
                index = i, media = st.media(), encoding = st.encoding_name(),
                "rtsp: ignoring stream"
            );
        }
    }
    if video.is_none() && audio.is_none() {
        return Err(IngestError::not_found(
            "no usable stream (need H.264/H.265 video or AAC audio)",
        ));
    }
    let transport = if t.udp {
        Transport::Udp(Default::default())
    } else {
        Transport::Tcp(Default::default())
    };
    for i in video.map(|v| v.0).into_iter().chain(audio) {
        let opts = SetupOptions::default()
            .transport(transport.clone())
            .frame_format(FrameFormat::MP4);
        step("SETUP", limit, creds, session.setup(i, opts)).await?;
    }

    // Tracks with what the SDP already told.
    let mut tracks = Vec::new();
    let mut conv = None;
    if let Some((i, codec)) = video {
        let params = match session.streams().get(i).and_then(|st| st.parameters()) {
            Some(ParametersRef::Video(v)) => video_params(v.codec_params()).map(|(_, p)| p),
            _ => None,
        };
        tracks.push(Track {
            id: VIDEO_TRACK,
            codec,
            params: params.clone().map(TrackParams::Video),
        });
        conv = Some(VideoConverter {
            codec,
            params,
            buf: BytesMut::with_capacity(256 << 10),
            started: false,
        });
    }
    let mut audio_sent: Option<AudioParams> = None;
    if let Some(i) = audio {
        let params = match session.streams().get(i).and_then(|st| st.parameters()) {
            Some(ParametersRef::Audio(a)) => audio_params(a.extra_data()),
            _ => None,
        };
        audio_sent = params.clone();
        tracks.push(Track {
            id: AUDIO_TRACK,
            codec: Codec::Aac,
            params: params.map(TrackParams::Audio),
        });
    }

    let play = PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive);
    let playing = step("PLAY", limit, creds, session.play(play)).await?;
    let demuxed = playing.demuxed().map_err(|e| classify("PLAY", &e, creds))?;
    let mut demuxed = std::pin::pin!(demuxed);

    let mut emitter = AuEmitter::new(&mut *out);
    emitter.set_tracks(&tracks)?;
    tracing::info!(
        stream = s.stream, input = s.input.priority, url = %shown,
        transport = if t.udp { "udp" } else { "tcp" },
        video = video.map(|v| v.1.name()).unwrap_or("none"),
        audio = if audio.is_some() { "aac" } else { "none" },
        "rtsp: playing"
    );

    let mut deadline = Instant::now() + limit;
    let mut first = true;
    let mut frames: u64 = 0;
    loop {
        let item = match tokio::time::timeout_at(deadline, demuxed.next()).await {
            Err(_) => {
                return Err(IngestError::timeout(format!(
                    "no frames within {} s",
                    limit.as_secs()
                )));
            }
            Ok(None) => return Err(IngestError::ended("server closed the session")),
            Ok(Some(Err(e))) => return Err(classify("PLAY", &e, creds)),
            Ok(Some(Ok(item))) => item,
        };
        match item {
            CodecItem::VideoFrame(f) if Some(f.stream_id()) == video.map(|v| v.0) => {
                let Some(conv) = conv.as_mut() else { continue };
                deadline = Instant::now() + limit;
                if f.loss() > 0 {
                    tracing::debug!(
                        stream = s.stream,
                        input = s.input.priority,
                        lost = f.loss(),
                        "rtsp: video packets lost"
                    );
                }
                if f.has_new_parameters()
                    && let Some(ParametersRef::Video(v)) = demuxed
                        .streams()
                        .get(f.stream_id())
                        .and_then(|st| st.parameters())
                    && let Some((_, p)) = video_params(v.codec_params())
                    && conv.params.as_ref() != Some(&p)
                {
                    tracing::info!(
                        stream = s.stream, input = s.input.priority, url = %shown,
                        width = p.width, height = p.height, "rtsp: video parameters"
                    );
                    emitter.set_params(&ParamsChanged {
                        track: VIDEO_TRACK,
                        codec: conv.codec,
                        params: TrackParams::Video(p.clone()),
                    })?;
                    conv.params = Some(p);
                }
                if f.data().len() > MAX_FRAME_BYTES {
                    return Err(IngestError::protocol("video frame too large"));
                }
                let pts = to_90k(f.timestamp());
                let keyframe = f.is_random_access_point();
                let Some(payload) = conv.convert(f.data(), keyframe)? else {
                    continue;
                };
                emitter.write(&AccessUnit {
                    track: VIDEO_TRACK,
                    codec: conv.codec,
                    pts,
                    dts: pts,
                    keyframe,
                    discontinuity: std::mem::take(&mut first),
                    payload,
                })?;
                frames += 1;
            }
            CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio => {
                deadline = Instant::now() + limit;
                // Start with the video's first keyframe.
                if conv.as_ref().is_some_and(|c| !c.started) {
                    continue;
                }
                if audio_sent.is_none()
                    && let Some(ParametersRef::Audio(a)) = demuxed
                        .streams()
                        .get(f.stream_id())
                        .and_then(|st| st.parameters())
                    && let Some(p) = audio_params(a.extra_data())
                {
                    emitter.set_params(&ParamsChanged {
                        track: AUDIO_TRACK,
                        codec: Codec::Aac,
                        params: TrackParams::Audio(p.clone()),
                    })?;
                    audio_sent = Some(p);
                }
                if audio_sent.is_none() || f.data().len() > MAX_FRAME_BYTES {
                    continue;
                }
                let pts = to_90k(f.timestamp());
                emitter.write(&AccessUnit {
                    track: AUDIO_TRACK,
                    codec: Codec::Aac,
                    pts,
                    dts: pts,
                    keyframe: true,
                    discontinuity: std::mem::take(&mut first),
                    payload: Bytes::copy_from_slice(f.data()),
                })?;
                frames += 1;
            }
            _ => continue,
        }
        if frames == 1 {
            tracing::info!(stream = s.stream, input = s.input.priority, url = %shown, "rtsp: first frame");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(t: &Target) -> Option<(&str, &str)> {
        t.creds
            .as_ref()
            .map(|c| (c.username.as_str(), c.password.as_str()))
    }

    #[test]
    fn target_takes_credentials_and_transport_out_of_the_url() {
        let t = target(
            "rtsp://ad%40min:p%3Ass@cam:8554/live/main?transport=udp&ch=1",
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.url.as_str(), "rtsp://cam:8554/live/main?ch=1");
        assert_eq!(creds(&t), Some(("ad@min", "p:ss")));
        assert!(t.udp);

        let auth = InputAuth {
            username: "u".into(),
            password: "p".into(),
        };
        let t = target("rtsp://cam/s?transport=TCP", Some(&auth)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.url.as_str(), "rtsp://cam/s");
        assert_eq!(creds(&t), Some(("u", "p")));
        assert!(!t.udp);

        // URL credentials win over the auth block.
        let t = target("rtsp://a:b@cam/s", Some(&auth)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(creds(&t), Some(("a", "b")));
        let t = target("rtsp://cam/s", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(creds(&t), None);
    }

    #[test]
    fn target_rejects_bad_options() {
        for bad in [
            "rtsp://cam/s?transport=sctp",
            "rtsps://cam/s",
            "http://cam/s",
            "::",
        ] {
            let e = target(bad, None)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.kind, crate::ErrorKind::Config, "{bad}");
        }
    }

    fn lp(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
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
    fn keyframes_get_current_parameter_sets_in_front() {
        let sps: &[u8] = &[0x67, 1, 2];
        let pps: &[u8] = &[0x68, 3];
        let old_sps: &[u8] = &[0x67, 9, 9];
        let aud: &[u8] = &[0x09, 0xF0];
        let idr: &[u8] = &[0x65, 0x88, 1];
        let slice: &[u8] = &[0x41, 0x9A, 2];
        let mut c = VideoConverter {
            codec: Codec::H264,
            params: Some(VideoParams {
                sps: vec![Bytes::from_static(sps)],
                pps: vec![Bytes::from_static(pps)],
                ..Default::default()
            }),
            buf: BytesMut::new(),
            started: false,
        };
        // Nothing before the first keyframe.
        assert_eq!(c.convert(&lp(&[slice]), false).ok().flatten(), None);
        // In-band (stale) parameter sets and the AUD are replaced.
        let key = c.convert(&lp(&[aud, old_sps, idr]), true).ok().flatten();
        assert_eq!(key.as_deref(), Some(annexb(&[sps, pps, idr]).as_slice()));
        let next = c.convert(&lp(&[slice]), false).ok().flatten();
        assert_eq!(next.as_deref(), Some(annexb(&[slice]).as_slice()));
        // A length running past the end is an error, not a panic.
        assert!(c.convert(&[0, 0, 0, 9, 0x41], false).is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3Ac"), "a@b:c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
