//! What this host's FFmpeg can do: encoders (`ffmpeg -hide_banner
//! -encoders`), hardware acceleration methods (`-hwaccels`) and the devices
//! the hardware backends need. Run at start-up, logged, shown in
//! `GET /config`, and checked before a stream's FFmpeg is started so that a
//! missing backend is a clear error naming it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use os_domain::{HwAccel, TranscoderConfig};
use serde::Serialize;
use utoipa::ToSchema;

use crate::args::{audio_encoder, backend_name, video_encoder};

const ALL_BACKENDS: [HwAccel; 5] = [
    HwAccel::None,
    HwAccel::Nvenc,
    HwAccel::Vaapi,
    HwAccel::Qsv,
    HwAccel::Videotoolbox,
];

/// One hardware backend (`global.hw_accel` value) and whether it is usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Backend {
    /// `none`, `nvenc`, `vaapi`, `qsv` or `videotoolbox`.
    pub name: String,
    /// Usable here: FFmpeg has its encoder and acceleration method, and the
    /// device exists.
    pub available: bool,
    /// Its H.264/H.265 encoders that FFmpeg has.
    pub encoders: Vec<String>,
    /// Why it is not usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Result of probing the FFmpeg binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Probe {
    pub ffmpeg_path: String,
    /// First line of `ffmpeg -version`.
    pub version: String,
    /// Hardware acceleration methods (`ffmpeg -hwaccels`).
    pub hwaccels: Vec<String>,
    /// Every backend with its availability.
    pub backends: Vec<Backend>,
    /// Audio encoders available for `transcoder.audio.codec`.
    pub audio_encoders: Vec<String>,
    #[serde(skip)]
    pub encoders: BTreeSet<String>,
}

/// Devices the hardware backends need (detected, or given in tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    pub nvidia: bool,
    pub dri_render: bool,
    pub intel_gpu: bool,
    pub macos: bool,
}

impl Devices {
    /// Look at this host: `/dev/nvidia0`, the VAAPI render node, the GPU's
    /// PCI vendor (Intel = 0x8086 for QSV), the OS.
    pub fn detect() -> Self {
        let render = Path::new(crate::args::VAAPI_DEVICE);
        let vendor =
            std::fs::read_to_string("/sys/class/drm/renderD128/device/vendor").unwrap_or_default();
        Self {
            nvidia: Path::new("/dev/nvidia0").exists(),
            dri_render: render.exists(),
            intel_gpu: vendor.trim() == "0x8086",
            macos: cfg!(target_os = "macos"),
        }
    }
}

/// Why the probe failed or a stream's config cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot run FFmpeg \"{path}\" (transcoder.ffmpeg_path): {reason}")]
    Unusable { path: String, reason: String },
    #[error(
        "hardware backend \"{backend}\" (transcoder.global.hw_accel) is not available on this host: {reason}"
    )]
    MissingBackend { backend: String, reason: String },
    #[error("FFmpeg at \"{path}\" has no encoder \"{encoder}\" (needed for {what})")]
    MissingEncoder {
        path: String,
        encoder: String,
        what: String,
    },
}

/// Encoder names from `ffmpeg -encoders` output.
pub fn parse_encoders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut past_header = false;
    for line in text.lines() {
        let t = line.trim();
        if !past_header {
            past_header = t.starts_with("------");
            continue;
        }
        let mut parts = t.split_whitespace();
        let (Some(flags), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        if flags.len() == 6 && flags.chars().all(|c| c.is_ascii_alphabetic() || c == '.') {
            out.insert(name.to_string());
        }
    }
    out
}

/// Method names from `ffmpeg -hwaccels` output.
pub fn parse_hwaccels(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("Hardware acceleration methods"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Decide which backends are usable (pure).
pub fn analyse(
    ffmpeg_path: &str,
    version: &str,
    encoders: BTreeSet<String>,
    hwaccels: Vec<String>,
    devices: &Devices,
) -> Probe {
    let has_accel = |m: &str| hwaccels.iter().any(|h| h == m);
    let backends = ALL_BACKENDS
        .iter()
        .map(|&hw| {
            let name = backend_name(hw);
            let wanted = [
                video_encoder(hw, os_domain::VideoCodec::H264),
                video_encoder(hw, os_domain::VideoCodec::H265),
            ];
            let present: Vec<String> = wanted
                .iter()
                .filter(|e| encoders.contains(**e))
                .map(|e| (*e).to_string())
                .collect();
            let h264 = wanted[0];
            let reason = if !encoders.contains(h264) {
                Some(format!("FFmpeg has no {h264} encoder"))
            } else {
                match hw {
                    HwAccel::None => None,
                    HwAccel::Nvenc if !has_accel("cuda") => {
                        Some("FFmpeg has no cuda hwaccel".into())
                    }
                    HwAccel::Nvenc if !devices.nvidia => {
                        Some("no NVIDIA device (/dev/nvidia0)".into())
                    }
                    HwAccel::Vaapi if !has_accel("vaapi") => {
                        Some("FFmpeg has no vaapi hwaccel".into())
                    }
                    HwAccel::Vaapi if !devices.dri_render => Some(format!(
                        "no VAAPI render node ({})",
                        crate::args::VAAPI_DEVICE
                    )),
                    HwAccel::Qsv if !has_accel("qsv") => Some("FFmpeg has no qsv hwaccel".into()),
                    HwAccel::Qsv if !(devices.dri_render && devices.intel_gpu) => {
                        Some("no Intel GPU render node".into())
                    }
                    HwAccel::Videotoolbox if !has_accel("videotoolbox") => {
                        Some("FFmpeg has no videotoolbox hwaccel".into())
                    }
                    HwAccel::Videotoolbox if !devices.macos => {
                        Some("VideoToolbox exists only on macOS".into())
                    }
                    _ => None,
                }
            };
            Backend {
                name: name.to_string(),
                available: reason.is_none(),
                encoders: present,
                reason,
            }
        })
        .collect();
    let audio_encoders = ["aac", "libmp3lame", "libopus", "ac3"]
        .iter()
        .filter(|e| encoders.contains(**e))
        .map(|e| (*e).to_string())
        .collect();
    Probe {
        ffmpeg_path: ffmpeg_path.to_string(),
        version: version.to_string(),
        hwaccels,
        backends,
        audio_encoders,
        encoders,
    }
}

impl Probe {
    /// Names of the usable backends.
    pub fn available(&self) -> Vec<String> {
        self.backends
            .iter()
            .filter(|b| b.available)
            .map(|b| b.name.clone())
            .collect()
    }

    /// Whether a stream's transcoder config can run here.
    pub fn check(&self, cfg: &TranscoderConfig) -> Result<(), ProbeError> {
        if !cfg.video.copy {
            let hw = cfg.global.hw_accel;
            let name = backend_name(hw);
            if let Some(b) = self.backends.iter().find(|b| b.name == name)
                && !b.available
                && hw != HwAccel::None
            {
                return Err(ProbeError::MissingBackend {
                    backend: name.to_string(),
                    reason: b.reason.clone().unwrap_or_default(),
                });
            }
            for (i, p) in cfg.video.profiles.iter().enumerate() {
                let enc = video_encoder(hw, p.codec);
                if !self.encoders.contains(enc) {
                    return Err(ProbeError::MissingEncoder {
                        path: self.ffmpeg_path.clone(),
                        encoder: enc.to_string(),
                        what: format!("video.profiles[{i}] on backend \"{name}\""),
                    });
                }
            }
        }
        if !cfg.audio.copy {
            let enc = audio_encoder(cfg.audio.codec);
            if !self.encoders.contains(enc) {
                return Err(ProbeError::MissingEncoder {
                    path: self.ffmpeg_path.clone(),
                    encoder: enc.to_string(),
                    what: "audio".into(),
                });
            }
        }
        Ok(())
    }
}

async fn run(ffmpeg_path: &str, args: &[&str]) -> Result<String, ProbeError> {
    let unusable = |reason: String| ProbeError::Unusable {
        path: ffmpeg_path.to_string(),
        reason,
    };
    let mut cmd = tokio::process::Command::new(ffmpeg_path);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .map_err(|_| unusable(format!("{} did not answer in 10 s", args.join(" "))))?
        .map_err(|e| unusable(e.to_string()))?;
    if !out.status.success() {
        return Err(unusable(format!(
            "{} exited with {}",
            args.join(" "),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Probe the FFmpeg at `ffmpeg_path` on this host.
pub async fn probe(ffmpeg_path: &str) -> Result<Probe, ProbeError> {
    let version = run(ffmpeg_path, &["-hide_banner", "-version"]).await?;
    let encoders = run(ffmpeg_path, &["-hide_banner", "-encoders"]).await?;
    let hwaccels = run(ffmpeg_path, &["-hide_banner", "-hwaccels"]).await?;
    Ok(analyse(
        ffmpeg_path,
        version.lines().next().unwrap_or_default().trim(),
        parse_encoders(&encoders),
        parse_hwaccels(&hwaccels),
        &Devices::detect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCODERS: &str = "Encoders:
 V..... = Video
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V....D h264_vaapi           H.264/AVC (VAAPI) (codec h264)
 V..... h264_qsv             H.264 (Intel Quick Sync Video acceleration) (codec h264)
 V....D libx265              libx265 H.265 / HEVC (codec hevc)
 A..... aac                  AAC (Advanced Audio Coding)
 A....D libopus              libopus Opus (codec opus)
";

    const HWACCELS: &str = "Hardware acceleration methods:\nvdpau\ncuda\nvaapi\nqsv\n\n";

    fn cfg(hw: HwAccel) -> TranscoderConfig {
        let mut c = TranscoderConfig::default();
        c.global.hw_accel = hw;
        c.video.profiles.push(os_domain::VideoProfile::default());
        c
    }

    #[test]
    fn parses_ffmpeg_listings() {
        let e = parse_encoders(ENCODERS);
        assert!(e.contains("libx264") && e.contains("h264_qsv") && e.contains("aac"));
        assert!(!e.contains("Video") && !e.contains("="));
        assert_eq!(parse_hwaccels(HWACCELS), ["vdpau", "cuda", "vaapi", "qsv"]);
        // Partial or garbage input yields what it has, never a panic.
        assert!(parse_encoders("Encoders:\n ---").is_empty());
        assert!(parse_hwaccels("").is_empty());
    }

    #[test]
    fn backends_need_encoder_accel_and_device() {
        let p = analyse(
            "ffmpeg",
            "ffmpeg version x",
            parse_encoders(ENCODERS),
            parse_hwaccels(HWACCELS),
            &Devices::default(),
        );
        assert_eq!(p.available(), ["none"]);
        let nv = p.backends.iter().find(|b| b.name == "nvenc");
        assert_eq!(
            nv.and_then(|b| b.reason.clone()).as_deref(),
            Some("no NVIDIA device (/dev/nvidia0)")
        );
        let vt = p.backends.iter().find(|b| b.name == "videotoolbox");
        assert_eq!(
            vt.and_then(|b| b.reason.clone()).as_deref(),
            Some("FFmpeg has no h264_videotoolbox encoder")
        );
        let with_gpu = analyse(
            "ffmpeg",
            "v",
            parse_encoders(ENCODERS),
            parse_hwaccels(HWACCELS),
            &Devices {
                nvidia: true,
                dri_render: true,
                intel_gpu: true,
                macos: false,
            },
        );
        assert_eq!(with_gpu.available(), ["none", "nvenc", "vaapi", "qsv"]);
    }

    #[test]
    fn missing_backend_is_a_clear_error() {
        let p = analyse(
            "ffmpeg",
            "v",
            parse_encoders(ENCODERS),
            parse_hwaccels(HWACCELS),
            &Devices::default(),
        );
        assert_eq!(p.check(&cfg(HwAccel::None)), Ok(()));
        let err = p.check(&cfg(HwAccel::Nvenc)).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(
                "hardware backend \"nvenc\" (transcoder.global.hw_accel) is not available on this host: no NVIDIA device (/dev/nvidia0)"
            )
        );
        let err = p.check(&cfg(HwAccel::Videotoolbox)).err();
        assert!(
            matches!(err, Some(ProbeError::MissingBackend { ref backend, .. }) if backend == "videotoolbox")
        );
        // Copying video needs no backend.
        let mut copy = cfg(HwAccel::Nvenc);
        copy.video.copy = true;
        assert_eq!(p.check(&copy), Ok(()));
        // A missing audio encoder is named too.
        let mut mp3 = cfg(HwAccel::None);
        mp3.audio.codec = os_domain::AudioCodec::Mp3;
        assert!(
            matches!(p.check(&mp3), Err(ProbeError::MissingEncoder { ref encoder, .. }) if encoder == "libmp3lame")
        );
    }

    #[tokio::test]
    async fn probes_the_real_ffmpeg() {
        let p = probe("ffmpeg").await;
        let Ok(p) = p else {
            panic!("ffmpeg must be installed for this test: {p:?}");
        };
        assert!(p.version.starts_with("ffmpeg version"), "{}", p.version);
        assert!(p.encoders.contains("libx264"));
        assert!(p.available().contains(&"none".to_string()));
        let missing = probe("/nonexistent/ffmpeg").await;
        assert!(matches!(missing, Err(ProbeError::Unusable { .. })));
    }
}
