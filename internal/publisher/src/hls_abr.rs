//! HLS for a transcoded stream: one media playlist per rendition plus a
//! master playlist.
//!
//! Layout under `{publisher.hls.dir}/{code}/`:
//!
//! - `index.m3u8`: the master playlist, one `#EXT-X-STREAM-INF` per
//!   rendition in track order, written once every rendition has a segment
//!   (or, after [`MASTER_WAIT`], with those that have one) and rewritten
//!   atomically when an attribute changes;
//! - `track_N/index.m3u8` and `track_N/seg_<n>.ts`: each rendition exactly
//!   like the single-rendition publisher (same segmenter, window, grace).
//!
//! Attributes come from the rendition itself: `RESOLUTION` and `CODECS`
//! (video and audio, RFC 6381) from its parameter sets, `FRAME-RATE` from
//! its video timestamps, `AVERAGE-BANDWIDTH` from the bytes and durations
//! of the listed segments, and `BANDWIDTH` = the larger of the declared
//! peak (the profile's max bitrate + audio bitrate) and the measured peak
//! segment bitrate.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use os_av::TrackParams;
use os_codecs::params::ParamTracker;
use os_hub::{Buffer, Item};
use os_mpegts::{Demuxer, Event};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hls::{HlsConfig, PLAYLIST, Writer, write_atomic};
use crate::playlist::Playlist;
use crate::segmenter::Segmenter;

/// Longest wait for every rendition before the master lists the ready ones.
pub const MASTER_WAIT: Duration = Duration::from_secs(15);

/// One rendition to publish.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// Directory and URI name, e.g. `track_1`.
    pub name: String,
    pub buffer: Arc<Buffer>,
    /// Declared peak bitrate (video max + audio), bit/s; 0 = unknown.
    pub declared_bandwidth: u64,
}

/// What the master knows about one rendition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenditionInfo {
    pub width: u32,
    pub height: u32,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub frame_rate: Option<f64>,
    /// (bits, seconds) of the segments in the window.
    pub segments: VecDeque<(u64, f64)>,
}

impl RenditionInfo {
    fn average(&self) -> Option<u64> {
        let (bits, secs) = self
            .segments
            .iter()
            .fold((0u64, 0f64), |(b, s), (bb, ss)| (b + bb, s + ss));
        (secs > 0.0).then(|| (bits as f64 / secs) as u64)
    }

    fn peak(&self) -> Option<u64> {
        self.segments
            .iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(b, s)| (*b as f64 / s) as u64)
            .max()
    }
}

/// Render the master playlist (pure). `entries`: (uri, declared bit/s, info).
pub fn render_master(entries: &[(String, u64, &RenditionInfo)]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (uri, declared, info) in entries {
        let average = info.average().unwrap_or(*declared);
        let peak = info.peak().unwrap_or(0).max(*declared).max(average);
        let mut attrs = format!("BANDWIDTH={peak},AVERAGE-BANDWIDTH={average}");
        if info.width > 0 && info.height > 0 {
            attrs.push_str(&format!(",RESOLUTION={}x{}", info.width, info.height));
        }
        let codecs: Vec<&str> = [info.video_codec.as_deref(), info.audio_codec.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !codecs.is_empty() {
            attrs.push_str(&format!(",CODECS=\"{}\"", codecs.join(",")));
        }
        if let Some(fps) = info.frame_rate {
            attrs.push_str(&format!(",FRAME-RATE={fps:.3}"));
        }
        out.push_str(&format!("#EXT-X-STREAM-INF:{attrs}\n{uri}\n"));
    }
    out
}

/// Start the ABR HLS task of stream `code`. It runs until `cancel` fires
/// or every rendition buffer is closed, then removes the stream directory.
pub fn spawn_hls_abr(
    code: String,
    renditions: Vec<Rendition>,
    config: HlsConfig,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(code, renditions, config, cancel))
}

async fn run(
    code: String,
    renditions: Vec<Rendition>,
    config: HlsConfig,
    cancel: CancellationToken,
) {
    let dir = config.dir.join(&code);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    for r in &renditions {
        if let Err(e) = tokio::fs::create_dir_all(dir.join(&r.name)).await {
            tracing::error!(stream = %code, dir = %dir.display(), error = %e, "hls: cannot create directory");
            return;
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, RenditionInfo)>();
    let mut tasks = Vec::new();
    for (i, r) in renditions.iter().enumerate() {
        tasks.push(tokio::spawn(run_rendition(
            code.clone(),
            r.clone(),
            dir.join(&r.name),
            config.clone(),
            cancel.clone(),
            i,
            tx.clone(),
        )));
    }
    drop(tx);
    tracing::info!(stream = %code, dir = %dir.display(), renditions = renditions.len(), "hls publisher started (ABR)");
    let base = config.base_url.trim().trim_end_matches('/').to_string();
    let mut infos: Vec<Option<RenditionInfo>> = vec![None; renditions.len()];
    let started = Instant::now();
    let mut written = String::new();
    loop {
        let msg = tokio::select! {
            () = cancel.cancelled() => break,
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => break,
            },
            // Re-check the MASTER_WAIT deadline even without news.
            () = tokio::time::sleep(Duration::from_secs(1)) => None,
        };
        if let Some((i, info)) = msg
            && let Some(slot) = infos.get_mut(i)
        {
            *slot = Some(info);
        }
        let ready = infos.iter().all(Option::is_some);
        if !ready && (started.elapsed() < MASTER_WAIT || infos.iter().all(Option::is_none)) {
            continue;
        }
        let entries: Vec<(String, u64, &RenditionInfo)> = renditions
            .iter()
            .zip(&infos)
            .filter_map(|(r, info)| {
                let info = info.as_ref()?;
                let uri = if base.is_empty() {
                    format!("{}/{PLAYLIST}", r.name)
                } else {
                    format!("{base}/{code}/{}/{PLAYLIST}", r.name)
                };
                Some((uri, r.declared_bandwidth, info))
            })
            .collect();
        let text = render_master(&entries);
        if text != written {
            match write_atomic(&dir, PLAYLIST, text.as_bytes()).await {
                Ok(()) => written = text,
                Err(e) => {
                    tracing::warn!(stream = %code, error = %e, "hls: cannot write master playlist")
                }
            }
        }
    }
    cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(stream = %code, error = %e, "hls: cannot remove directory");
    }
    tracing::info!(stream = %code, "hls publisher stopped (ABR)");
}

/// Media details learnt from a rendition's TS (sans-IO).
#[derive(Default)]
struct Sniffer {
    demuxer: Demuxer,
    params: ParamTracker,
    done: bool,
    first_video_dts: Option<i64>,
    last_video_dts: i64,
    video_frames: u64,
}

impl Sniffer {
    fn feed(&mut self, data: &[u8], info: &mut RenditionInfo) {
        if self.done {
            return;
        }
        self.demuxer.push(data);
        while let Some(ev) = self.demuxer.pull() {
            match ev {
                Event::Params(p) => {
                    if let Some(c) = os_codecs::codec_string::for_params(p.codec, &p.params)
                        && matches!(p.params, TrackParams::Audio(_))
                    {
                        info.audio_codec = Some(c);
                    }
                }
                Event::AccessUnit(au) if au.codec.kind() == os_av::TrackKind::Video => {
                    if let Ok(Some(p)) = self.params.observe(&au) {
                        if let TrackParams::Video(v) = &p.params {
                            info.width = v.width;
                            info.height = v.height;
                        }
                        info.video_codec = os_codecs::codec_string::for_params(p.codec, &p.params);
                    }
                    // Decode times: monotonic, unlike presentation times
                    // with B-frames.
                    let first = *self.first_video_dts.get_or_insert(au.dts);
                    self.last_video_dts = self.last_video_dts.max(au.dts);
                    self.video_frames += 1;
                    let span = self.last_video_dts - first;
                    if self.video_frames >= 100 && span > 0 {
                        let fps = (self.video_frames - 1) as f64 * 90_000.0 / span as f64;
                        info.frame_rate = Some((fps * 1000.0).round() / 1000.0);
                        // Everything known: stop demuxing (saves CPU).
                        self.done = info.video_codec.is_some();
                    }
                }
                _ => {}
            }
        }
    }
}

async fn run_rendition(
    code: String,
    r: Rendition,
    dir: PathBuf,
    config: HlsConfig,
    cancel: CancellationToken,
    index: usize,
    tx: mpsc::UnboundedSender<(usize, RenditionInfo)>,
) {
    let mut reader = r.buffer.subscribe(format!("hls:{}", r.name));
    let mut segmenter = Segmenter::new(config.segment_duration);
    let first_seq = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let mut writer = Writer {
        dir,
        playlist: Playlist::new(config.live_window, first_seq, config.segment_duration)
            .with_base_url(&config.base_url, &format!("{code}/{}", r.name)),
        retired: VecDeque::new(),
    };
    let mut info = RenditionInfo::default();
    let mut sniffer = Sniffer::default();
    let window = config.live_window.max(1);
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break,
            item = reader.recv() => match item {
                Ok(item) => item,
                Err(_closed) => break,
            },
        };
        match &item {
            Item::Chunk(c) => {
                if c.discontinuity {
                    sniffer = Sniffer::default();
                }
                sniffer.feed(&c.data, &mut info);
            }
            Item::Lagged { .. } => sniffer.demuxer = Demuxer::new(),
        }
        if let Some(done) = segmenter.push(item, Instant::now(), Utc::now()) {
            let bits = done.data.iter().map(|b| b.len() as u64).sum::<u64>() * 8;
            let secs = done.duration;
            match writer.add(done).await {
                Ok(()) => {
                    os_metrics::segment_written(&code, os_metrics::Format::Hls);
                    info.segments.push_back((bits, secs));
                    while info.segments.len() > window {
                        info.segments.pop_front();
                    }
                    let _ = tx.send((index, info.clone()));
                }
                Err(e) => {
                    tracing::warn!(stream = %code, rendition = %r.name, error = %e, "hls: cannot write segment");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_lists_every_rendition_with_its_attributes() {
        let a = RenditionInfo {
            width: 640,
            height: 360,
            video_codec: Some("avc1.64001e".into()),
            audio_codec: Some("mp4a.40.2".into()),
            frame_rate: Some(25.0),
            segments: [(2_000_000, 2.0), (1_800_000, 2.0)].into_iter().collect(),
        };
        let b = RenditionInfo {
            segments: VecDeque::new(),
            ..a.clone()
        };
        let text = render_master(&[
            ("track_1/index.m3u8".into(), 900_000, &a),
            ("track_2/index.m3u8".into(), 428_000, &b),
        ]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=950000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",FRAME-RATE=25.000\n\
             track_1/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=428000,AVERAGE-BANDWIDTH=428000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",FRAME-RATE=25.000\n\
             track_2/index.m3u8\n"
        );
    }
}
