//! FFmpeg command lines, built from a stream's `transcoder` block.
//!
//! Pure functions: the same config always gives the same argument list
//! (the program name excluded), pinned by the unit tests below for every
//! hardware backend.
//!
//! Shape of a `per_profile` command (one rendition):
//!
//! ```text
//! -hide_banner -loglevel warning -nostats -fflags +genpts+discardcorrupt -copyts
//! [hwaccel input flags] -f mpegts -i pipe:0
//! -map 0:v:0? -map 0:a:0? [-vf chain] -c:v ENC [-preset P] [-profile:v P] [-level:v L]
//! -b:v Nk -maxrate Mk -bufsize 2Mk [-r fps] [-g G -keyint_min G]
//! -force_key_frames expr:… [encoder keyframe flags]
//! (-c:a copy | -c:a ENC -b:a Nk [-ar R] [-ac C]) -f mpegts pipe:1
//! ```
//!
//! A `multi` command has the same input part and one such output block per
//! rendition, each ending in its own output URL (see [`multi_args`]).
//!
//! Keyframes are aligned across renditions by time, not by frame count:
//! `-copyts` keeps the input timestamps, and `-force_key_frames` forces a
//! keyframe on the first frame at or after every multiple of the keyframe
//! interval of *input* time. FFmpeg's expression variable `t` counts from
//! the first frame the process encodes, so the supervisor passes that
//! frame's input timestamp as the time origin `T0` (it feeds the process
//! from an access point and reads the keyframe's PTS first): keyframes fall
//! where `floor((t + T0) / K)` changes — the same instants in every
//! rendition and in a restarted process. Scene-cut keyframes are off.

use os_domain::{AudioCodec, HwAccel, TranscoderConfig, VideoCodec, VideoProfile};

/// VAAPI render node used for `hw_accel: vaapi`.
pub const VAAPI_DEVICE: &str = "/dev/dri/renderD128";

/// Keyframe interval (seconds) when a profile sets none.
pub const DEFAULT_KEYFRAME_INTERVAL: u32 = 2;

/// The video encoder FFmpeg uses for `codec` on backend `hw`.
pub fn video_encoder(hw: HwAccel, codec: VideoCodec) -> &'static str {
    match (hw, codec) {
        (HwAccel::None, VideoCodec::H264) => "libx264",
        (HwAccel::None, VideoCodec::H265) => "libx265",
        (HwAccel::Nvenc, VideoCodec::H264) => "h264_nvenc",
        (HwAccel::Nvenc, VideoCodec::H265) => "hevc_nvenc",
        (HwAccel::Vaapi, VideoCodec::H264) => "h264_vaapi",
        (HwAccel::Vaapi, VideoCodec::H265) => "hevc_vaapi",
        (HwAccel::Qsv, VideoCodec::H264) => "h264_qsv",
        (HwAccel::Qsv, VideoCodec::H265) => "hevc_qsv",
        (HwAccel::Videotoolbox, VideoCodec::H264) => "h264_videotoolbox",
        (HwAccel::Videotoolbox, VideoCodec::H265) => "hevc_videotoolbox",
    }
}

/// The audio encoder FFmpeg uses for `codec`.
pub fn audio_encoder(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Aac => "aac",
        AudioCodec::Mp3 => "libmp3lame",
        AudioCodec::Opus => "libopus",
        AudioCodec::Ac3 => "ac3",
    }
}

/// Backend name as written in the config (`none`, `nvenc`, …).
pub fn backend_name(hw: HwAccel) -> &'static str {
    match hw {
        HwAccel::None => "none",
        HwAccel::Nvenc => "nvenc",
        HwAccel::Vaapi => "vaapi",
        HwAccel::Qsv => "qsv",
        HwAccel::Videotoolbox => "videotoolbox",
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

/// Input part, shared by both modes.
pub fn input_args(cfg: &TranscoderConfig) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostats",
        "-fflags",
        "+genpts+discardcorrupt",
        "-copyts",
    ]
    .map(s)
    .to_vec();
    if !cfg.video.copy {
        match cfg.global.hw_accel {
            HwAccel::None => {}
            HwAccel::Nvenc => {
                a.extend(["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"].map(s));
            }
            HwAccel::Vaapi => a.extend(["-vaapi_device", VAAPI_DEVICE].map(s)),
            HwAccel::Qsv => {
                a.extend(["-hwaccel", "qsv", "-hwaccel_output_format", "qsv"].map(s));
            }
            HwAccel::Videotoolbox => a.extend(["-hwaccel", "videotoolbox"].map(s)),
        }
    }
    a.extend(["-f", "mpegts", "-i", "pipe:0"].map(s));
    a
}

/// The scaling (and upload) filter chain for one profile; `None` when the
/// frames go to the encoder unchanged.
pub fn video_filter(hw: HwAccel, p: &VideoProfile) -> Option<String> {
    let (w, h) = (p.width, p.height);
    let size = match (w, h) {
        (0, 0) => None,
        (w, 0) => Some((w.to_string(), "-2".to_string(), false)),
        (0, h) => Some(("-2".to_string(), h.to_string(), false)),
        (w, h) => Some((w.to_string(), h.to_string(), true)),
    };
    match hw {
        HwAccel::None | HwAccel::Videotoolbox => size.map(|(w, h, both)| {
            if both {
                // Fit inside W×H keeping the aspect ratio, then letterbox to
                // exactly W×H.
                format!(
                    "scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,pad={w}:{h}:-1:-1,setsar=1"
                )
            } else {
                format!("scale={w}:{h},setsar=1")
            }
        }),
        HwAccel::Nvenc => size.map(|(w, h, _)| format!("scale_cuda={w}:{h}")),
        HwAccel::Qsv => size.map(|(w, h, _)| format!("scale_qsv=w={w}:h={h}")),
        HwAccel::Vaapi => Some(match size {
            Some((w, h, _)) => format!("format=nv12,hwupload,scale_vaapi=w={w}:h={h}"),
            None => "format=nv12,hwupload".to_string(),
        }),
    }
}

/// The preset as the encoder understands it (`None`: not passed).
///
/// x264 names map to NVENC `p1`…`p7` and back; VAAPI and VideoToolbox
/// take no preset; QSV knows `veryfast`…`veryslow`.
pub fn preset_for(hw: HwAccel, preset: &str) -> Option<String> {
    if preset.is_empty() {
        return None;
    }
    let x264 = match preset {
        "p1" => "ultrafast",
        "p2" => "veryfast",
        "p3" => "fast",
        "p4" => "medium",
        "p5" => "slow",
        "p6" => "slower",
        "p7" => "veryslow",
        other => other,
    };
    match hw {
        HwAccel::None => Some(x264.to_string()),
        HwAccel::Qsv => Some(
            match x264 {
                "ultrafast" | "superfast" => "veryfast",
                "placebo" => "veryslow",
                other => other,
            }
            .to_string(),
        ),
        HwAccel::Nvenc => Some(
            match preset {
                "ultrafast" | "superfast" => "p1",
                "veryfast" => "p2",
                "faster" | "fast" => "p3",
                "medium" => "p4",
                "slow" => "p5",
                "slower" => "p6",
                "veryslow" | "placebo" => "p7",
                other => other,
            }
            .to_string(),
        ),
        HwAccel::Vaapi | HwAccel::Videotoolbox => None,
    }
}

/// Frames per second the profile is encoded at, when known from the config.
pub fn output_fps(cfg: &TranscoderConfig, p: &VideoProfile) -> Option<f64> {
    if p.framerate > 0.0 {
        Some(p.framerate)
    } else if cfg.global.fps > 0 {
        Some(f64::from(cfg.global.fps))
    } else {
        None
    }
}

/// GOP length in frames: `global.gop`, else keyframe interval × frame rate
/// when the frame rate is configured; `None` leaves it to the forced
/// keyframes.
pub fn gop_frames(cfg: &TranscoderConfig, p: &VideoProfile) -> Option<u32> {
    if cfg.global.gop > 0 {
        return Some(cfg.global.gop);
    }
    let k = keyframe_interval(p);
    output_fps(cfg, p).map(|fps| ((f64::from(k) * fps).round() as u32).max(1))
}

fn keyframe_interval(p: &VideoProfile) -> u32 {
    if p.keyframe_interval == 0 {
        DEFAULT_KEYFRAME_INTERVAL
    } else {
        p.keyframe_interval
    }
}

fn fmt_fps(fps: f64) -> String {
    if fps.fract() == 0.0 {
        format!("{}", fps as u64)
    } else {
        format!("{fps:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The `-force_key_frames` expression for a keyframe interval of `k`
/// seconds; `origin`: input timestamp (seconds) of the first frame the
/// process encodes.
pub fn keyframe_expr(k: u32, origin: Option<f64>) -> String {
    match origin {
        None => {
            format!("expr:if(isnan(prev_forced_t),1,gte(floor(t/{k})-floor(prev_forced_t/{k}),1))")
        }
        // The small bias keeps frames that sit exactly on a boundary on the
        // same side in every process despite float rounding.
        Some(o) => format!(
            "expr:if(isnan(prev_forced_t),1,gte(floor((t+{o:.6})/{k}+0.0001)-floor((prev_forced_t+{o:.6})/{k}+0.0001),1))"
        ),
    }
}

/// Output options for one rendition (`index` into `video.profiles`; ignored
/// with `video.copy` or no profiles), without the output target. `origin`:
/// see [`keyframe_expr`].
pub fn output_args(cfg: &TranscoderConfig, index: usize, origin: Option<f64>) -> Vec<String> {
    let mut a: Vec<String> = ["-map", "0:v:0?", "-map", "0:a:0?"].map(s).to_vec();
    let profile = if cfg.video.copy {
        None
    } else {
        cfg.video.profiles.get(index)
    };
    match profile {
        // `video.copy`, or no profile at all: a passthrough rendition.
        None => a.extend(["-c:v", "copy"].map(s)),
        Some(p) => {
            let hw = cfg.global.hw_accel;
            let enc = video_encoder(hw, p.codec);
            if let Some(vf) = video_filter(hw, p) {
                a.extend([s("-vf"), vf]);
            }
            a.extend([s("-c:v"), s(enc)]);
            if let Some(preset) = preset_for(hw, &p.preset) {
                a.extend([s("-preset"), preset]);
            }
            if !p.profile.is_empty() {
                let prof = match (hw, p.profile.as_str()) {
                    (HwAccel::None, "constrained_baseline") => "baseline",
                    (_, other) => other,
                };
                a.extend([s("-profile:v"), s(prof)]);
            }
            if !p.level.is_empty() {
                a.extend([s("-level:v"), p.level.clone()]);
            }
            let peak = if p.max_bitrate > 0 {
                p.max_bitrate
            } else {
                p.bitrate
            };
            a.extend([
                s("-b:v"),
                format!("{}k", p.bitrate),
                s("-maxrate"),
                format!("{peak}k"),
                s("-bufsize"),
                format!("{}k", u64::from(peak) * 2),
            ]);
            if let Some(fps) = output_fps(cfg, p) {
                a.extend([s("-r"), fmt_fps(fps)]);
            }
            if let Some(g) = gop_frames(cfg, p) {
                a.extend([s("-g"), g.to_string(), s("-keyint_min"), g.to_string()]);
            }
            let k = keyframe_interval(p);
            a.extend([s("-force_key_frames"), keyframe_expr(k, origin)]);
            match enc {
                "libx264" => a.extend(["-sc_threshold", "0"].map(s)),
                "libx265" => a.extend(["-x265-params", "scenecut=0"].map(s)),
                "h264_nvenc" | "hevc_nvenc" => a.extend(["-forced-idr", "1"].map(s)),
                "h264_qsv" | "hevc_qsv" => a.extend(["-forced_idr", "1"].map(s)),
                _ => {}
            }
        }
    }
    if cfg.audio.copy {
        a.extend(["-c:a", "copy"].map(s));
    } else {
        a.extend([
            s("-c:a"),
            s(audio_encoder(cfg.audio.codec)),
            s("-b:a"),
            format!("{}k", cfg.audio.bitrate),
        ]);
        let rate = match (cfg.audio.sample_rate, cfg.audio.codec) {
            // Opus only runs at 48 kHz (and a few lower rates).
            (0, AudioCodec::Opus) => 48_000,
            (r, _) => r,
        };
        if rate > 0 {
            a.extend([s("-ar"), rate.to_string()]);
        }
        if cfg.audio.channels > 0 {
            a.extend([s("-ac"), cfg.audio.channels.to_string()]);
        }
    }
    a
}

/// Full argument list of a `per_profile` process for rendition `index`
/// (0-based; `track_{index+1}`): TS on stdin, TS on stdout.
pub fn per_profile_args(cfg: &TranscoderConfig, index: usize, origin: Option<f64>) -> Vec<String> {
    let mut a = input_args(cfg);
    a.extend(output_args(cfg, index, origin));
    a.extend(["-f", "mpegts", "pipe:1"].map(s));
    a
}

/// Full argument list of a `multi` process: TS on stdin, one output per
/// rendition, rendition `i` written to `outputs[i]` (the supervisor passes
/// `tcp://127.0.0.1:<port>` URLs of loopback listeners it accepts on, one
/// per rendition, so each rendition arrives on its own byte stream).
pub fn multi_args(cfg: &TranscoderConfig, outputs: &[String], origin: Option<f64>) -> Vec<String> {
    let mut a = input_args(cfg);
    for (i, url) in outputs.iter().enumerate() {
        a.extend(output_args(cfg, i, origin));
        a.extend([s("-f"), s("mpegts"), url.clone()]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use os_domain::{AudioTranscode, TranscodeGlobal, TranscodeMode, VideoTranscode};

    fn ladder(hw: HwAccel) -> TranscoderConfig {
        TranscoderConfig {
            mode: TranscodeMode::PerProfile,
            video: VideoTranscode {
                copy: false,
                profiles: vec![
                    VideoProfile {
                        width: 640,
                        height: 360,
                        bitrate: 800,
                        preset: "veryfast".into(),
                        ..VideoProfile::default()
                    },
                    VideoProfile {
                        width: 320,
                        height: 180,
                        bitrate: 300,
                        max_bitrate: 400,
                        framerate: 25.0,
                        keyframe_interval: 1,
                        codec: VideoCodec::H265,
                        preset: "p7".into(),
                        profile: "main".into(),
                        level: "3.1".into(),
                    },
                ],
            },
            audio: AudioTranscode::default(),
            global: TranscodeGlobal {
                hw_accel: hw,
                fps: 0,
                gop: 0,
            },
        }
    }

    fn join(a: &[String]) -> String {
        a.join(" ")
    }

    const INPUT: &str =
        "-hide_banner -loglevel warning -nostats -fflags +genpts+discardcorrupt -copyts";
    const KF2: &str = "-force_key_frames expr:if(isnan(prev_forced_t),1,gte(floor(t/2)-floor(prev_forced_t/2),1))";
    const KF1: &str = "-force_key_frames expr:if(isnan(prev_forced_t),1,gte(floor(t/1)-floor(prev_forced_t/1),1))";
    const AUDIO: &str = "-c:a aac -b:a 128k";

    #[test]
    fn software_backend() {
        let cfg = ladder(HwAccel::None);
        assert_eq!(
            join(&per_profile_args(&cfg, 0, None)),
            format!(
                "{INPUT} -f mpegts -i pipe:0 -map 0:v:0? -map 0:a:0? \
                 -vf scale=640:360:force_original_aspect_ratio=decrease:force_divisible_by=2,pad=640:360:-1:-1,setsar=1 \
                 -c:v libx264 -preset veryfast -b:v 800k -maxrate 800k -bufsize 1600k \
                 {KF2} -sc_threshold 0 {AUDIO} -f mpegts pipe:1"
            )
        );
        assert_eq!(
            join(&per_profile_args(&cfg, 1, None)),
            format!(
                "{INPUT} -f mpegts -i pipe:0 -map 0:v:0? -map 0:a:0? \
                 -vf scale=320:180:force_original_aspect_ratio=decrease:force_divisible_by=2,pad=320:180:-1:-1,setsar=1 \
                 -c:v libx265 -preset veryslow -profile:v main -level:v 3.1 -b:v 300k -maxrate 400k -bufsize 800k \
                 -r 25 -g 25 -keyint_min 25 {KF1} -x265-params scenecut=0 {AUDIO} -f mpegts pipe:1"
            )
        );
    }

    #[test]
    fn nvenc_backend() {
        let cfg = ladder(HwAccel::Nvenc);
        assert_eq!(
            join(&per_profile_args(&cfg, 0, None)),
            format!(
                "{INPUT} -hwaccel cuda -hwaccel_output_format cuda -f mpegts -i pipe:0 \
                 -map 0:v:0? -map 0:a:0? -vf scale_cuda=640:360 -c:v h264_nvenc -preset p2 \
                 -b:v 800k -maxrate 800k -bufsize 1600k {KF2} -forced-idr 1 {AUDIO} -f mpegts pipe:1"
            )
        );
        assert_eq!(
            join(&per_profile_args(&cfg, 1, None)),
            format!(
                "{INPUT} -hwaccel cuda -hwaccel_output_format cuda -f mpegts -i pipe:0 \
                 -map 0:v:0? -map 0:a:0? -vf scale_cuda=320:180 -c:v hevc_nvenc -preset p7 \
                 -profile:v main -level:v 3.1 -b:v 300k -maxrate 400k -bufsize 800k \
                 -r 25 -g 25 -keyint_min 25 {KF1} -forced-idr 1 {AUDIO} -f mpegts pipe:1"
            )
        );
    }

    #[test]
    fn vaapi_backend() {
        let cfg = ladder(HwAccel::Vaapi);
        assert_eq!(
            join(&per_profile_args(&cfg, 0, None)),
            format!(
                "{INPUT} -vaapi_device /dev/dri/renderD128 -f mpegts -i pipe:0 \
                 -map 0:v:0? -map 0:a:0? -vf format=nv12,hwupload,scale_vaapi=w=640:h=360 \
                 -c:v h264_vaapi -b:v 800k -maxrate 800k -bufsize 1600k {KF2} {AUDIO} -f mpegts pipe:1"
            )
        );
        let mut no_scale = cfg.clone();
        no_scale.video.profiles[0].width = 0;
        no_scale.video.profiles[0].height = 0;
        assert!(
            join(&per_profile_args(&no_scale, 0, None)).contains("-vf format=nv12,hwupload -c:v")
        );
    }

    #[test]
    fn qsv_backend() {
        let cfg = ladder(HwAccel::Qsv);
        assert_eq!(
            join(&per_profile_args(&cfg, 0, None)),
            format!(
                "{INPUT} -hwaccel qsv -hwaccel_output_format qsv -f mpegts -i pipe:0 \
                 -map 0:v:0? -map 0:a:0? -vf scale_qsv=w=640:h=360 -c:v h264_qsv -preset veryfast \
                 -b:v 800k -maxrate 800k -bufsize 1600k {KF2} -forced_idr 1 {AUDIO} -f mpegts pipe:1"
            )
        );
    }

    #[test]
    fn videotoolbox_backend() {
        let cfg = ladder(HwAccel::Videotoolbox);
        assert_eq!(
            join(&per_profile_args(&cfg, 0, None)),
            format!(
                "{INPUT} -hwaccel videotoolbox -f mpegts -i pipe:0 -map 0:v:0? -map 0:a:0? \
                 -vf scale=640:360:force_original_aspect_ratio=decrease:force_divisible_by=2,pad=640:360:-1:-1,setsar=1 \
                 -c:v h264_videotoolbox -b:v 800k -maxrate 800k -bufsize 1600k {KF2} {AUDIO} -f mpegts pipe:1"
            )
        );
    }

    #[test]
    fn copy_and_audio_variants() {
        let mut cfg = ladder(HwAccel::Nvenc);
        cfg.video.copy = true;
        cfg.audio = AudioTranscode {
            copy: false,
            codec: AudioCodec::Opus,
            bitrate: 96,
            sample_rate: 0,
            channels: 2,
        };
        // Video copy: no hwaccel, no filters, the profile is ignored.
        assert_eq!(
            join(&per_profile_args(&cfg, 0, None)),
            format!(
                "{INPUT} -f mpegts -i pipe:0 -map 0:v:0? -map 0:a:0? -c:v copy \
                 -c:a libopus -b:a 96k -ar 48000 -ac 2 -f mpegts pipe:1"
            )
        );
        cfg.audio.copy = true;
        assert!(
            join(&per_profile_args(&cfg, 0, None))
                .ends_with("-c:v copy -c:a copy -f mpegts pipe:1")
        );
    }

    #[test]
    fn single_axis_and_fps() {
        let mut cfg = ladder(HwAccel::None);
        cfg.global.fps = 30;
        cfg.video.profiles[0].height = 0;
        let a = join(&per_profile_args(&cfg, 0, None));
        assert!(a.contains("-vf scale=640:-2,setsar=1 "), "{a}");
        assert!(a.contains("-r 30 -g 60 -keyint_min 60 "), "{a}");
        cfg.global.gop = 48;
        assert!(join(&per_profile_args(&cfg, 0, None)).contains("-g 48 -keyint_min 48 "));
        cfg.video.profiles[0].framerate = 29.97;
        cfg.global.gop = 0;
        assert!(join(&per_profile_args(&cfg, 0, None)).contains("-r 29.97 -g 60 "));
    }

    #[test]
    fn multi_has_one_output_block_per_rendition() {
        let cfg = ladder(HwAccel::None);
        let outs = vec![
            "tcp://127.0.0.1:5001".to_string(),
            "tcp://127.0.0.1:5002".to_string(),
        ];
        let a = multi_args(&cfg, &outs, None);
        let text = join(&a);
        assert_eq!(text.matches("-i pipe:0").count(), 1);
        assert_eq!(text.matches("-map 0:v:0?").count(), 2);
        let first = join(&output_args(&cfg, 0, None));
        let second = join(&output_args(&cfg, 1, None));
        assert!(text.ends_with(&format!(
            "{first} -f mpegts tcp://127.0.0.1:5001 {second} -f mpegts tcp://127.0.0.1:5002"
        )));
    }

    #[test]
    fn keyframes_are_phased_to_the_input_time_origin() {
        let cfg = ladder(HwAccel::None);
        let a = join(&per_profile_args(&cfg, 0, Some(1008.7)));
        assert!(a.contains(
            " -force_key_frames expr:if(isnan(prev_forced_t),1,gte(floor((t+1008.700000)/2+0.0001)-floor((prev_forced_t+1008.700000)/2+0.0001),1)) -sc_threshold 0 "
        ), "{a}");
    }

    #[test]
    fn presets_per_backend() {
        assert_eq!(preset_for(HwAccel::None, "p4").as_deref(), Some("medium"));
        assert_eq!(preset_for(HwAccel::Nvenc, "slow").as_deref(), Some("p5"));
        assert_eq!(
            preset_for(HwAccel::Qsv, "ultrafast").as_deref(),
            Some("veryfast")
        );
        assert_eq!(preset_for(HwAccel::Vaapi, "fast"), None);
        assert_eq!(preset_for(HwAccel::Videotoolbox, "fast"), None);
        assert_eq!(preset_for(HwAccel::None, ""), None);
    }
}
