//! Media test kit: ffmpeg sources, ffprobe/ffmpeg checks, status polling.
//! Every program it drives is real; a missing one fails the test with the
//! package to install.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::{Server, call};

/// A child process killed (and reaped) when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test vector under `data/testdata/`.
pub fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/testdata")
        .join(name)
}

/// A free TCP port on loopback (closed again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// A live ffmpeg source: `-re` test pattern (25 fps H.264) + 48 kHz sine
/// (AAC), published as FLV to `url` (an `rtmp://` URL).
pub struct Source<'a> {
    pub url: &'a str,
    /// `WxH`.
    pub size: &'a str,
    pub seconds: u32,
    /// Frames per GOP, fixed (no scene-cut keyframes).
    pub gop: u32,
    /// x264 preset: `ultrafast` (light, no B-frames) or `veryfast` (B-frames).
    pub preset: &'a str,
    /// lavfi test picture: `testsrc` (compresses to small frames) or
    /// `testsrc2` (a 720p keyframe is ~50 KB, over 30 SRT/UDP payloads).
    pub pattern: &'a str,
}

impl Source<'_> {
    pub fn spawn(&self) -> Kill {
        let gop = self.gop.to_string();
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!("{}=size={}:rate=25", self.pattern, self.size),
            ])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", &self.seconds.to_string()])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                self.preset,
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
            .args(["-c:a", "aac", "-f", "flv", self.url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
        Kill(child)
    }
}

/// GET `path` on the test server.
pub async fn get(s: &Server, path: &str) -> reqwest::Response {
    s.client
        .get(s.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Poll `GET /streams/{code}/status` until `pred` holds on its `data`
/// (or fail after `limit`, showing the last status).
pub async fn wait_status(
    s: &Server,
    code: &str,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let (st, body) = call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
        assert_eq!(st, 200, "{body}");
        if pred(&body["data"]) {
            return body["data"].clone();
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("status condition not reached within {limit:?}; last status: {last:#}");
}

/// Codec names ffprobe finds in `target`, each once; fails on any error output.
pub fn ffprobe_codecs(target: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "csv=p=0"])
        .arg(target)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe is required (apt-get install -y ffmpeg): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe {target}: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .fold(Vec::new(), |mut v, c| {
            if !v.contains(&c) {
                v.push(c);
            }
            v
        })
}

/// Decode every frame of the first stream of `path`; returns how many.
/// Fails on any decoder error.
pub fn decoded_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe is required (apt-get install -y ffmpeg): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "decode {}: {stderr}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| panic!("frame count of {}: {e}", path.display()))
}

/// Decode every frame of every stream of `path`; fails on any decoder error.
pub fn ffmpeg_decodes(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "decode {}: {stderr}",
        path.display()
    );
}

/// ffprobe's JSON view of `url`'s streams (codec_type, codec_name, width,
/// height, sample_rate, channels); `input_args` go before the input
/// (e.g. `-rtsp_transport tcp`). Bounded by 30 s.
pub async fn probe_streams(url: &str, input_args: &[&str]) -> Result<Value, String> {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error"])
        .args(input_args)
        .args([
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate,channels",
        ])
        .args(["-of", "json", url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .map_err(|_| format!("{url}: ffprobe did not finish"))?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{url} {input_args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}
