//! The SDP (RFC 4566) a server answers to DESCRIBE: one media section per
//! track, with the codec parameters clients need before the first packet
//! (H.264 `sprop-parameter-sets` + `profile-level-id`, H.265
//! `sprop-vps/sps/pps`, AAC `config`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use os_av::{AudioParams, Codec, VideoParams};

/// One media section.
#[derive(Debug, Clone)]
pub enum Media {
    Video {
        codec: Codec,
        payload_type: u8,
        control: String,
        params: VideoParams,
    },
    Audio {
        payload_type: u8,
        control: String,
        params: AudioParams,
    },
}

fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

fn join(sets: &[bytes::Bytes]) -> String {
    sets.iter().map(|s| b64(s)).collect::<Vec<_>>().join(",")
}

/// The RTP clock rate of a media section.
pub fn clock_rate(m: &Media) -> u32 {
    match m {
        Media::Video { .. } => os_av::CLOCK_HZ,
        Media::Audio { params, .. } => params.sample_rate.max(1),
    }
}

/// A session description. `origin_ip` is the server address the client
/// connected to; `name` the stream.
pub fn build(name: &str, origin_ip: &str, session_id: u64, media: &[Media]) -> String {
    let family = if origin_ip.contains(':') {
        "IP6"
    } else {
        "IP4"
    };
    let mut s = String::with_capacity(512);
    s.push_str("v=0\r\n");
    s.push_str(&format!("o=- {session_id} 1 IN {family} {origin_ip}\r\n"));
    s.push_str(&format!("s={name}\r\n"));
    s.push_str(&format!(
        "c=IN {family} {}\r\n",
        if family == "IP6" { "::" } else { "0.0.0.0" }
    ));
    s.push_str("t=0 0\r\n");
    s.push_str("a=tool:open-streamer\r\n");
    s.push_str("a=range:npt=0-\r\n");
    s.push_str("a=control:*\r\n");
    for m in media {
        match m {
            Media::Video {
                codec,
                payload_type: pt,
                control,
                params,
            } => {
                s.push_str(&format!("m=video 0 RTP/AVP {pt}\r\n"));
                if *codec == Codec::H265 {
                    s.push_str(&format!("a=rtpmap:{pt} H265/90000\r\n"));
                    s.push_str(&format!(
                        "a=fmtp:{pt} sprop-vps={};sprop-sps={};sprop-pps={}\r\n",
                        join(&params.vps),
                        join(&params.sps),
                        join(&params.pps)
                    ));
                } else {
                    s.push_str(&format!("a=rtpmap:{pt} H264/90000\r\n"));
                    let mut fmtp = format!("a=fmtp:{pt} packetization-mode=1");
                    if let Some(plid) = params.sps.first().and_then(|sps| sps.get(1..4)) {
                        fmtp.push_str(&format!(";profile-level-id={}", hex(plid)));
                    }
                    fmtp.push_str(&format!(
                        ";sprop-parameter-sets={}",
                        join(
                            &params
                                .sps
                                .iter()
                                .chain(&params.pps)
                                .cloned()
                                .collect::<Vec<_>>()
                        )
                    ));
                    s.push_str(&fmtp);
                    s.push_str("\r\n");
                }
                if params.width > 0 && params.height > 0 {
                    s.push_str(&format!(
                        "a=framesize:{pt} {}-{}\r\n",
                        params.width, params.height
                    ));
                }
                s.push_str(&format!("a=control:{control}\r\n"));
            }
            Media::Audio {
                payload_type: pt,
                control,
                params,
            } => {
                s.push_str(&format!("m=audio 0 RTP/AVP {pt}\r\n"));
                s.push_str(&format!(
                    "a=rtpmap:{pt} MPEG4-GENERIC/{}/{}\r\n",
                    params.sample_rate,
                    params.channels.max(1)
                ));
                s.push_str(&format!(
                    "a=fmtp:{pt} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={}\r\n",
                    hex(&params.asc)
                ));
                s.push_str(&format!("a=control:{control}\r\n"));
            }
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn h264_and_aac() {
        // SPS/PPS of data/testdata/h264_aac.ts (x264 High, 320x240).
        let sps = Bytes::from_static(&[0x67, 0x64, 0x00, 0x0D, 0xAC, 0xD9]);
        let pps = Bytes::from_static(&[0x68, 0xEB, 0xE3, 0xCB]);
        let v = Media::Video {
            codec: Codec::H264,
            payload_type: 96,
            control: "trackID=0".into(),
            params: VideoParams {
                width: 320,
                height: 240,
                sps: vec![sps],
                pps: vec![pps],
                ..VideoParams::default()
            },
        };
        let a = Media::Audio {
            payload_type: 97,
            control: "trackID=1".into(),
            params: AudioParams {
                sample_rate: 48000,
                channels: 2,
                object_type: 2,
                asc: Bytes::from_static(&[0x11, 0x90]),
                samples_per_frame: 1024,
            },
        };
        let s = build("demo", "127.0.0.1", 42, &[v, a]);
        assert!(s.starts_with("v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=demo\r\n"));
        assert!(s.contains("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"));
        assert!(s.contains(
            "a=fmtp:96 packetization-mode=1;profile-level-id=64000D;sprop-parameter-sets=Z2QADazZ,aOvjyw==\r\n"
        ));
        assert!(s.contains("a=control:trackID=0\r\n"));
        assert!(s.contains("a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n"));
        assert!(s.contains(
            "mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n"
        ));
        assert!(s.ends_with("a=control:trackID=1\r\n"));
    }

    #[test]
    fn h265() {
        let v = Media::Video {
            codec: Codec::H265,
            payload_type: 96,
            control: "trackID=0".into(),
            params: VideoParams {
                vps: vec![Bytes::from_static(&[0x40, 0x01])],
                sps: vec![Bytes::from_static(&[0x42, 0x01])],
                pps: vec![Bytes::from_static(&[0x44, 0x01])],
                ..VideoParams::default()
            },
        };
        let s = build("x", "::1", 1, &[v]);
        assert!(s.contains("IN IP6 ::1"));
        assert!(s.contains("a=rtpmap:96 H265/90000\r\n"));
        assert!(s.contains("a=fmtp:96 sprop-vps=QAE=;sprop-sps=QgE=;sprop-pps=RAE=\r\n"));
    }
}
