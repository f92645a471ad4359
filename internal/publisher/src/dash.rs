//! The DASH task of one stream: hub reader → MPEG-TS demuxer → DASH
//! packager (`os-dash`) → files on disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use os_av::TrackKind;
use os_dash::{
    DashConfig as PackagerConfig, DashError, DashPackager, MANIFEST_NAME, Output, UtcTiming,
};
use os_hub::{Buffer, Item};
use os_mpegts::{Demuxer, Event};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hls::write_atomic;

/// Segments kept on disk after they left the MPD window, for players that
/// fetched the MPD just before.
pub const GRACE_SEGMENTS: usize = 2;

/// `publisher.dash.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DashConfig {
    /// Root directory; each stream writes to `{dir}/{code}/`.
    pub dir: PathBuf,
    /// Target segment length, seconds (video is cut at the first keyframe
    /// past it).
    pub segment_duration: f64,
    /// Segments listed in the MPD, per track.
    pub live_window: usize,
}

impl Default for DashConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./dash"),
            segment_duration: 2.0,
            live_window: 6,
        }
    }
}

impl DashConfig {
    /// Packager settings; `run` (the UNIX time the task started) is part of
    /// the representation ids, so file names never repeat across restarts
    /// of a stream and caches may treat segments as immutable.
    pub(crate) fn packager(&self, run: i64) -> PackagerConfig {
        let secs = if self.segment_duration.is_finite() && self.segment_duration >= 0.1 {
            self.segment_duration
        } else {
            2.0
        };
        PackagerConfig {
            target_duration: Duration::from_secs_f64(secs),
            window: self.live_window.max(1),
            delete_grace: GRACE_SEGMENTS,
            video_id: format!("v{run}"),
            audio_id: format!("a{run}"),
            // Players sync their clock from the MPD itself, never from a
            // time server on the internet (dash.js' default).
            utc_timing: Some(UtcTiming::Direct),
            ..PackagerConfig::default()
        }
    }
}

/// Start the DASH task of stream `code` reading `buffer`. It runs until
/// `cancel` fires or the buffer is closed, then removes its directory.
pub fn spawn_dash(
    code: String,
    buffer: Arc<Buffer>,
    config: DashConfig,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(code, buffer, config, cancel))
}

async fn run(code: String, buffer: Arc<Buffer>, config: DashConfig, cancel: CancellationToken) {
    let dir = config.dir.join(&code);
    // Leftovers of an earlier run (crash) are replaced.
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::error!(stream = %code, dir = %dir.display(), error = %e, "dash: cannot create directory");
        return;
    }
    let mut packager = match DashPackager::new(config.packager(chrono::Utc::now().timestamp())) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(stream = %code, error = %e, "dash: invalid settings");
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return;
        }
    };
    let mut reader = buffer.subscribe("dash");
    let mut feed = Feed::new(code.clone(), None, dir.clone());
    tracing::info!(stream = %code, dir = %dir.display(), "dash publisher started");
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break,
            item = reader.recv() => match item {
                Ok(item) => item,
                Err(_closed) => break,
            },
        };
        let outs = feed.item(&mut packager, item, None);
        feed.apply(outs).await;
    }
    drop(reader);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(stream = %code, error = %e, "dash: cannot remove directory");
    }
    tracing::info!(
        stream = %code,
        lost_chunks = feed.lost,
        dropped_units = packager.dropped,
        errors = feed.errors,
        "dash publisher stopped"
    );
}

/// Shared time origin of ABR renditions: input decode time and wall clock
/// of the first unit any rendition saw.
pub(crate) type Origin = Option<(i64, SystemTime)>;

/// Demuxing state between the hub and the packager.
pub(crate) struct Feed {
    code: String,
    /// Rendition (`track_N`) of a transcoded stream, for logs.
    rendition: Option<String>,
    /// Drop audio (ABR renditions after the first: audio is packaged once).
    pub(crate) video_only: bool,
    dir: PathBuf,
    demuxer: Demuxer,
    /// The next video / audio unit follows a break (source switch, lag).
    break_pending: [bool; 2],
    pub(crate) lost: u64,
    pub(crate) errors: u64,
    write_errors: u64,
}

impl Feed {
    pub(crate) fn new(code: String, rendition: Option<String>, dir: PathBuf) -> Self {
        Self {
            code,
            rendition,
            video_only: false,
            dir,
            demuxer: Demuxer::new(),
            break_pending: [false; 2],
            lost: 0,
            errors: 0,
            write_errors: 0,
        }
    }

    /// Feed one reader item; returns what the packager asks for. With
    /// `origin` (ABR), the packager's time origin is the shared one, set by
    /// the first keyframe of any rendition (units before it are skipped).
    pub(crate) fn item(
        &mut self,
        packager: &mut DashPackager,
        item: Item,
        mut origin: Option<&mut Origin>,
    ) -> Vec<Output> {
        let chunk = match item {
            Item::Lagged { lost } => {
                // The next chunk resumes at an access point; the units in
                // between are gone.
                self.lost += lost;
                self.demuxer = Demuxer::new();
                self.break_pending = [true; 2];
                return Vec::new();
            }
            Item::Chunk(chunk) => chunk,
        };
        if chunk.discontinuity {
            // A new source: PIDs and clocks may differ.
            self.demuxer = Demuxer::new();
            self.break_pending = [true; 2];
        }
        self.demuxer.push(&chunk.data);
        let mut outs = Vec::new();
        while let Some(event) = self.demuxer.pull() {
            let result = match event {
                Event::Params(p) if self.video_only && p.codec.kind() == TrackKind::Audio => {
                    continue;
                }
                Event::Params(p) => packager.push_params(&p).map(|()| Vec::new()),
                Event::AccessUnit(au) if self.video_only && au.codec.kind() == TrackKind::Audio => {
                    continue;
                }
                Event::AccessUnit(mut au) => {
                    let k = usize::from(au.codec.kind() == TrackKind::Audio);
                    au.discontinuity |= std::mem::take(&mut self.break_pending[k]);
                    let now = SystemTime::now();
                    if let Some(origin) = origin.as_deref_mut() {
                        // The shared origin is the first keyframe any
                        // rendition sees: audio read ahead of it at a join
                        // would put that keyframe before the origin.
                        let key = au.codec.kind() == TrackKind::Video && au.keyframe;
                        if origin.is_none() && !key {
                            continue;
                        }
                        let (dts, at) = *origin.get_or_insert((au.dts, now));
                        packager.set_time_origin(dts, at);
                    }
                    packager.push(au, now)
                }
                _ => Ok(Vec::new()),
            };
            match result {
                Ok(o) => outs.extend(o),
                Err(e) => self.packager_error(&e),
            }
        }
        outs
    }

    fn packager_error(&mut self, e: &DashError) {
        self.errors += 1;
        // The same cause repeats for every unit: log the first and then sparsely.
        if self.errors == 1 || self.errors.is_power_of_two() {
            tracing::warn!(stream = %self.code, rendition = ?self.rendition, error = %e, count = self.errors, "dash: unit not packaged");
        }
    }

    /// Carry out the packager's file operations, in order.
    pub(crate) async fn apply(&mut self, outs: Vec<Output>) {
        for out in outs {
            let result = match &out {
                Output::WriteFile { name, bytes } => {
                    tokio::fs::write(self.dir.join(name), bytes).await
                }
                Output::Manifest { bytes } => write_atomic(&self.dir, MANIFEST_NAME, bytes).await,
                Output::DeleteFile { name } => {
                    match tokio::fs::remove_file(self.dir.join(name)).await {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        r => r,
                    }
                }
            };
            if let Err(e) = result {
                self.write_errors += 1;
                if self.write_errors == 1 || self.write_errors.is_power_of_two() {
                    tracing::warn!(stream = %self.code, error = %e, "dash: file operation failed");
                }
            }
        }
    }
}
