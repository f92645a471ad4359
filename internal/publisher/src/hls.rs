//! The HLS task of one stream: hub reader → segmenter → files on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use os_hub::Buffer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::playlist::{Playlist, segment_name};
use crate::segmenter::{Finished, Segmenter};

/// Segments kept on disk after they left the playlist window, for players
/// that fetched the playlist just before.
pub const GRACE_SEGMENTS: usize = 2;

/// Playlist file name in the stream directory.
pub const PLAYLIST: &str = "index.m3u8";

/// `publisher.hls.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsConfig {
    /// Root directory; each stream writes to `{dir}/{code}/`.
    pub dir: PathBuf,
    /// Minimum segment length, seconds (segments are cut at the first
    /// access point past it).
    pub segment_duration: f64,
    /// Segments listed in the live playlist.
    pub live_window: usize,
    /// `publisher.hls.base_url`: absolute URL prefix of segment URIs
    /// (`{base_url}/{code}/seg_<n>.ts`); empty for relative URIs.
    pub base_url: String,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./hls"),
            segment_duration: 2.0,
            live_window: 6,
            base_url: String::new(),
        }
    }
}

/// Start the HLS task of stream `code` reading `buffer`. It runs until
/// `cancel` fires or the buffer is closed, then removes its directory.
pub fn spawn_hls(
    code: String,
    buffer: Arc<Buffer>,
    config: HlsConfig,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(code, buffer, config, cancel))
}

async fn run(code: String, buffer: Arc<Buffer>, config: HlsConfig, cancel: CancellationToken) {
    let dir = config.dir.join(&code);
    // Leftovers of an earlier run (crash) are replaced.
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::error!(stream = %code, dir = %dir.display(), error = %e, "hls: cannot create directory");
        return;
    }
    let mut reader = buffer.subscribe("hls");
    let mut segmenter = Segmenter::new(config.segment_duration);
    let first_seq = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let mut writer = Writer {
        dir: dir.clone(),
        playlist: Playlist::new(config.live_window, first_seq, config.segment_duration)
            .with_base_url(&config.base_url, &code),
        retired: std::collections::VecDeque::new(),
    };
    tracing::info!(stream = %code, dir = %dir.display(), "hls publisher started");
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break,
            item = reader.recv() => match item {
                Ok(item) => item,
                Err(_closed) => break,
            },
        };
        if let Some(done) = segmenter.push(item, Instant::now(), Utc::now()) {
            match writer.add(done).await {
                Ok(()) => os_metrics::segment_written(&code, os_metrics::Format::Hls),
                Err(e) => tracing::warn!(stream = %code, error = %e, "hls: cannot write segment"),
            }
        }
    }
    drop(reader);
    let (lost, lags) = segmenter.lost();
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(stream = %code, error = %e, "hls: cannot remove directory");
    }
    tracing::info!(stream = %code, lost_chunks = lost, lags, "hls publisher stopped");
}

pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) playlist: Playlist,
    /// Sequence numbers of segments that left the window, oldest first.
    pub(crate) retired: std::collections::VecDeque<u64>,
}

impl Writer {
    /// Write the segment, list it, and delete what fell out of the grace.
    pub(crate) async fn add(&mut self, seg: Finished) -> std::io::Result<()> {
        let seq = self.playlist.next_seq();
        let mut bytes = Vec::with_capacity(seg.data.iter().map(|b| b.len()).sum());
        for b in &seg.data {
            bytes.extend_from_slice(b);
        }
        tokio::fs::write(self.dir.join(segment_name(seq)), bytes).await?;
        let (_, gone) = self
            .playlist
            .push(seg.duration, seg.discontinuity, seg.program_date_time);
        write_atomic(&self.dir, PLAYLIST, self.playlist.render().as_bytes()).await?;
        self.retired.extend(gone.iter().map(|e| e.seq));
        while self.retired.len() > GRACE_SEGMENTS {
            if let Some(old) = self.retired.pop_front() {
                let _ = tokio::fs::remove_file(self.dir.join(segment_name(old))).await;
            }
        }
        Ok(())
    }
}

/// Replace `dir/name` in one step: readers see the old or the new file.
pub(crate) async fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, data).await?;
    tokio::fs::rename(&tmp, dir.join(name)).await
}
