//! DVR: one recorder task per stream with `dvr.enabled`.
//!
//! The recorder reads a hub buffer handed to it by the coordinator (reader
//! `"dvr"`; the stream buffer `<code>`, or the raw input buffer once a
//! transcoder runs), cuts MPEG-TS segments at access points with the
//! segmenter of `os-hls`, and keeps under `{root}/{code}/`:
//!
//! - `000000.ts`, `000001.ts`, …: written to a hidden temp file and renamed,
//!   so a listed name is always a complete segment that starts with PAT +
//!   PMT and a keyframe;
//! - `index.json` ([`index::DvrIndex`]): segment list, count, bytes, gaps,
//!   next number; replaced atomically after every change;
//! - `playlist.m3u8`: `EVENT` while recording, `VOD` + `#EXT-X-ENDLIST`
//!   once stopped, `#EXT-X-PROGRAM-DATE-TIME` before every segment;
//!   replaced atomically after the index.
//!
//! Resume: a recorder started on a directory with an index continues its
//! numbering (`next_seq` never decreases, so a number is never reused even
//! after retention deleted the segments before it); its first segment is
//! marked `#EXT-X-DISCONTINUITY` and the hole is appended to `gaps`. A pause
//! in the input (no chunk for twice the segment duration) closes the
//! segment in progress; when data comes back after a hole longer than that,
//! the same discontinuity + gap marking applies.
//!
//! Retention runs after each segment: the oldest segments go while older
//! than `retention_sec` or while the total is over `max_size_gb`; the
//! newest always stays. Index and playlist are rewritten before the files
//! are deleted, so the playlist never lists a missing file.
//!
//! Errors: a write that fails (disk full, directory not writable) stops the
//! recorder with state `failed`, the error in its status and a
//! `recording.stopped` event with the reason. The files already listed stay
//! valid (the playlist on disk still names only complete segments). The
//! recorder is only a reader of the hub: the live outputs never wait for it.

pub mod index;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use os_domain::DvrConfig;
use os_events::{EventBus, EventType};
use os_hls::playlist::{parse_segment_name, recording_segment_name, seconds};
use os_hls::{Finished, Input, Segmenter};
use os_hub::{Buffer, Item};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

pub use index::{DvrIndex, Gap, INDEX, PLAYLIST, SegmentMeta};

/// Root used when `dvr.storage_path` is empty.
pub const DEFAULT_ROOT: &str = "./dvr";

/// Recorder settings of one stream (from its `dvr` config).
#[derive(Debug, Clone, PartialEq)]
pub struct DvrSettings {
    /// The recording directory (`{storage_path or ./dvr}/{code}`, absolute).
    pub dir: PathBuf,
    /// Minimum segment length, seconds.
    pub segment_duration: f64,
    /// 0 = keep forever.
    pub retention_sec: u64,
    /// 0 = unlimited.
    pub max_bytes: u64,
}

/// The recording directory of stream `code` under `config`, made absolute.
pub fn recording_dir(config: &DvrConfig, code: &str) -> PathBuf {
    let root = config.storage_path.trim();
    let root = if root.is_empty() { DEFAULT_ROOT } else { root };
    let dir = Path::new(root).join(code);
    std::path::absolute(&dir).unwrap_or(dir)
}

impl DvrSettings {
    pub fn new(config: &DvrConfig, code: &str) -> Self {
        let max_bytes = if config.max_size_gb.is_finite() && config.max_size_gb > 0.0 {
            (config.max_size_gb * (1u64 << 30) as f64) as u64
        } else {
            0
        };
        Self {
            dir: recording_dir(config, code),
            segment_duration: f64::from(config.segment_duration.max(1)),
            retention_sec: config.retention_sec,
            max_bytes,
        }
    }
}

/// Recorder state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DvrState {
    /// Opening the directory / waiting for the first keyframe.
    Starting,
    Recording,
    Stopped,
    /// Stopped by an error (see `last_error`).
    Failed,
}

/// The `dvr` section of a stream's status.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DvrStatus {
    pub state: DvrState,
    /// Recording directory.
    pub dir: String,
    /// Hub buffer recorded.
    pub source: String,
    /// Segments on disk.
    pub segments: u64,
    /// Their total size, bytes.
    pub bytes: u64,
    /// Number the next segment gets.
    pub next_segment: u64,
    /// Segments written by this recorder run.
    pub written: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How a recorder run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to stop, or the buffer closed (stream stopped).
    Stopped,
    /// Stopped by an error.
    Failed(String),
}

/// A running recorder.
pub struct Recorder {
    cancel: CancellationToken,
    status: Arc<Mutex<DvrStatus>>,
    task: JoinHandle<Outcome>,
}

impl Recorder {
    pub fn status(&self) -> DvrStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn status_handle(&self) -> Arc<Mutex<DvrStatus>> {
        self.status.clone()
    }

    /// Ask it to stop (it closes the segment in progress and turns the
    /// playlist into VOD) and hand back the task to await.
    pub fn stop(self) -> JoinHandle<Outcome> {
        self.cancel.cancel();
        self.task
    }

    /// Split into its parts (token, status, task), e.g. to watch the task.
    pub fn into_parts(
        self,
    ) -> (
        CancellationToken,
        Arc<Mutex<DvrStatus>>,
        JoinHandle<Outcome>,
    ) {
        (self.cancel, self.status, self.task)
    }
}

/// Start recording stream `code` from `buffer`.
pub fn spawn_recorder(
    code: String,
    buffer: Arc<Buffer>,
    settings: DvrSettings,
    events: Arc<EventBus>,
    cancel: CancellationToken,
) -> Recorder {
    let status = Arc::new(Mutex::new(DvrStatus {
        state: DvrState::Starting,
        dir: settings.dir.display().to_string(),
        source: buffer.id().to_string(),
        segments: 0,
        bytes: 0,
        next_segment: 0,
        written: 0,
        last_error: None,
    }));
    let task = tokio::spawn(run(
        code,
        buffer,
        settings,
        events,
        cancel.clone(),
        status.clone(),
    ));
    Recorder {
        cancel,
        status,
        task,
    }
}

async fn run(
    code: String,
    buffer: Arc<Buffer>,
    settings: DvrSettings,
    events: Arc<EventBus>,
    cancel: CancellationToken,
    status: Arc<Mutex<DvrStatus>>,
) -> Outcome {
    let set =
        |f: &dyn Fn(&mut DvrStatus)| f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
    let mut rec = match Writer::open(&code, &settings).await {
        Ok(w) => w,
        Err(e) => {
            let why = format!("cannot open {}: {e}", settings.dir.display());
            tracing::error!(stream = %code, error = %why, "dvr: recording not started");
            set(&|s| {
                s.state = DvrState::Failed;
                s.last_error = Some(why.clone());
            });
            events.emit(
                EventType::RecordingStopped,
                &code,
                serde_json::json!({"recording_id": code, "reason": "error", "error": why}),
            );
            return Outcome::Failed(why);
        }
    };
    let resumed = rec.resume;
    set(&|s| {
        s.state = DvrState::Recording;
        s.segments = rec.index.segment_count;
        s.bytes = rec.index.total_size_bytes;
        s.next_segment = rec.index.next_seq;
    });
    tracing::info!(stream = %code, dir = %settings.dir.display(), source = %buffer.id(), resumed, next_segment = rec.index.next_seq, "dvr: recording started");
    events.emit(
        EventType::RecordingStarted,
        &code,
        serde_json::json!({
            "recording_id": code,
            "resumed": resumed,
            "next_segment": rec.index.next_seq,
            "source": buffer.id(),
        }),
    );
    let mut reader = buffer.subscribe("dvr");
    let mut segmenter = Segmenter::new(settings.segment_duration);
    // A pause this long closes the segment in progress.
    let idle = Duration::from_secs_f64((2.0 * settings.segment_duration).max(2.0));
    let mut failure: Option<String> = None;
    loop {
        let step = tokio::select! {
            () = cancel.cancelled() => break,
            r = tokio::time::timeout(idle, reader.recv()) => r,
        };
        let done = match step {
            Err(_idle) => segmenter.flush(Instant::now()),
            Ok(Err(_closed)) => break,
            Ok(Ok(item)) => {
                let input = match item {
                    Item::Lagged { lost } => Input::Lost { lost },
                    Item::Chunk(c) => Input::Chunk {
                        data: c.data,
                        access_point: c.access_point,
                        discontinuity: c.discontinuity,
                    },
                };
                segmenter.push(input, Instant::now(), Utc::now())
            }
        };
        if let Some(seg) = done {
            if let Err(e) = rec.add(seg, idle).await {
                failure = Some(e.to_string());
                break;
            }
            set(&|s| {
                s.segments = rec.index.segment_count;
                s.bytes = rec.index.total_size_bytes;
                s.next_segment = rec.index.next_seq;
                s.written = rec.written;
            });
        }
    }
    drop(reader);
    // The segment in progress starts at a keyframe: it is kept.
    if failure.is_none()
        && let Some(seg) = segmenter.flush(Instant::now())
        && let Err(e) = rec.add(seg, idle).await
    {
        failure = Some(e.to_string());
    }
    // The playlist becomes VOD. After a failure this may fail too (disk
    // full): the previous playlist on disk stays valid.
    if let Err(e) = rec.finish().await {
        tracing::warn!(stream = %code, error = %e, "dvr: cannot finalise the playlist");
        failure.get_or_insert_with(|| e.to_string());
    }
    let outcome = match &failure {
        None => Outcome::Stopped,
        Some(e) => Outcome::Failed(e.clone()),
    };
    set(&|s| {
        s.state = if failure.is_some() {
            DvrState::Failed
        } else {
            DvrState::Stopped
        };
        s.last_error = failure.clone();
        s.segments = rec.index.segment_count;
        s.bytes = rec.index.total_size_bytes;
        s.next_segment = rec.index.next_seq;
        s.written = rec.written;
    });
    match &failure {
        None => {
            tracing::info!(stream = %code, segments = rec.index.segment_count, "dvr: recording stopped")
        }
        Some(e) => {
            tracing::error!(stream = %code, error = %e, "dvr: recording stopped by an error; live outputs continue")
        }
    }
    events.emit(
        EventType::RecordingStopped,
        &code,
        match &failure {
            None => serde_json::json!({"recording_id": code, "reason": "stopped", "segments": rec.index.segment_count}),
            Some(e) => serde_json::json!({"recording_id": code, "reason": "error", "error": e, "segments": rec.index.segment_count}),
        },
    );
    outcome
}

/// The on-disk side of a recording.
struct Writer {
    dir: PathBuf,
    index: DvrIndex,
    settings: DvrSettings,
    /// The next segment follows a hole (resume after restart).
    resume: bool,
    pending_gap: bool,
    written: u64,
    target: u64,
}

impl Writer {
    async fn open(code: &str, settings: &DvrSettings) -> std::io::Result<Self> {
        let dir = settings.dir.clone();
        tokio::fs::create_dir_all(&dir).await?;
        // `trusted`: the index was read; otherwise it is rebuilt from the
        // playlist and no segment file is ever deleted.
        let (mut index, trusted) = match index::load(&dir).await {
            Ok(Some(ix)) => (ix, true),
            Ok(None) => (from_playlist(code, &dir).await, false),
            Err(e) => {
                // A damaged index: kept aside, rebuilt from the playlist.
                tracing::warn!(stream = %code, error = %e, "dvr: index.json unreadable; rebuilding it from playlist.m3u8");
                let _ = tokio::fs::rename(dir.join(INDEX), dir.join("index.json.damaged")).await;
                (from_playlist(code, &dir).await, false)
            }
        };
        index.stream_code = code.to_string();
        // Leftovers of a run that was killed: temp files, and a segment the
        // index does not list yet (renamed, not yet indexed). Numbers
        // continue after every segment file present.
        let mut entries = tokio::fs::read_dir(&dir).await?;
        let mut listed_missing = Vec::new();
        while let Some(e) = entries.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = tokio::fs::remove_file(e.path()).await;
            } else if let Some(seq) = parse_segment_name(&name) {
                index.next_seq = index.next_seq.max(seq + 1);
                if trusted && !index.segments.iter().any(|s| s.seq == seq) {
                    let _ = tokio::fs::remove_file(e.path()).await;
                }
            }
        }
        for s in &index.segments {
            if tokio::fs::metadata(dir.join(recording_segment_name(s.seq)))
                .await
                .is_err()
            {
                listed_missing.push(s.seq);
            }
        }
        let before = index.segments.len();
        index.segments.retain(|s| !listed_missing.contains(&s.seq));
        index.media_sequence += (before - index.segments.len()) as u64;
        index.refresh();
        let resume = !index.segments.is_empty();
        let target = index
            .segments
            .iter()
            .map(|s| s.duration.ceil() as u64)
            .max()
            .unwrap_or(0)
            .max(settings.segment_duration.ceil() as u64);
        let mut w = Self {
            dir,
            index,
            settings: settings.clone(),
            resume,
            pending_gap: resume,
            written: 0,
            target,
        };
        // Recording again: the playlist is EVENT (it may have been VOD).
        w.save(true).await?;
        Ok(w)
    }

    /// Write a closed segment, index it, apply retention.
    async fn add(&mut self, seg: Finished, idle: Duration) -> std::io::Result<()> {
        let seq = self.index.next_seq;
        let name = recording_segment_name(seq);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let size: u64 = seg.data.iter().map(|b| b.len() as u64).sum();
        let write = async {
            let mut f = tokio::fs::File::create(&tmp).await?;
            for b in &seg.data {
                tokio::io::AsyncWriteExt::write_all(&mut f, b).await?;
            }
            tokio::io::AsyncWriteExt::flush(&mut f).await?;
            f.sync_data().await?;
            drop(f);
            tokio::fs::rename(&tmp, self.dir.join(&name)).await
        }
        .await;
        if let Err(e) = write {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        // The number is taken even if indexing fails below.
        self.index.next_seq = seq + 1;
        os_metrics::dvr_segment_written(&self.index.stream_code, size);
        // Millisecond dates and durations: exactly what the playlist says.
        let start = chrono::SubsecRound::trunc_subsecs(seg.program_date_time, 3);
        let duration = (seg.duration * 1000.0).round() / 1000.0;
        let mut discontinuity = seg.discontinuity;
        if let Some(last) = self.index.segments.last() {
            let from = last.end();
            let hole = start - from;
            let threshold = chrono::Duration::from_std(idle).unwrap_or_default();
            if self.pending_gap || hole > threshold {
                let duration_sec = (hole.num_milliseconds().max(0)) as f64 / 1000.0;
                self.index.gaps.push(Gap {
                    from,
                    to: start.max(from),
                    duration_sec,
                });
                discontinuity = true;
            }
        }
        self.pending_gap = false;
        // Dates never run backwards (a wall clock step, or a segment timed
        // shorter than real time): the next one starts at the earliest at
        // the end of the previous one.
        // (Only small overlaps are smoothed: a large step back of the wall
        // clock is taken as it is.)
        let program_date_time = match self.index.segments.last() {
            Some(last)
                if start < last.end()
                    && last.end() - start
                        <= chrono::Duration::from_std(2 * idle).unwrap_or_default() =>
            {
                last.end()
            }
            _ => start,
        };
        self.target = self.target.max(duration.ceil() as u64);
        self.index.segments.push(SegmentMeta {
            seq,
            duration,
            program_date_time,
            size,
            discontinuity,
        });
        self.index.refresh();
        self.written += 1;
        let removed = self.index.apply_retention(
            Utc::now(),
            self.settings.retention_sec,
            self.settings.max_bytes,
        );
        self.save(true).await?;
        for seq in removed {
            let _ = tokio::fs::remove_file(self.dir.join(recording_segment_name(seq))).await;
        }
        Ok(())
    }

    /// Index, then playlist (both atomic).
    async fn save(&mut self, recording: bool) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.index)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        index::write_atomic(&self.dir, INDEX, &json).await?;
        let text = self.index.playlist(recording, self.target).render();
        index::write_atomic(&self.dir, PLAYLIST, text.as_bytes()).await
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        self.save(false).await
    }
}

/// An index rebuilt from `dir/playlist.m3u8` (segment sizes from the files;
/// an empty index when there is no usable playlist).
async fn from_playlist(code: &str, dir: &Path) -> DvrIndex {
    let mut ix = DvrIndex::new(code, Utc::now());
    let Ok(text) = tokio::fs::read_to_string(dir.join(PLAYLIST)).await else {
        return ix;
    };
    let pl = os_hls::MediaPlaylist::parse(&text);
    ix.media_sequence = pl.media_sequence;
    ix.discontinuity_sequence = pl.discontinuity_sequence;
    for seg in pl.segments {
        let (Some(seq), Some(at)) = (parse_segment_name(&seg.uri), seg.program_date_time) else {
            continue;
        };
        let Ok(meta) = tokio::fs::metadata(dir.join(&seg.uri)).await else {
            continue;
        };
        ix.segments.push(SegmentMeta {
            seq,
            duration: seg.duration,
            program_date_time: at,
            size: meta.len(),
            discontinuity: seg.discontinuity,
        });
    }
    if let Some(first) = ix.segments.first() {
        ix.started_at = first.program_date_time;
    }
    ix.refresh();
    ix
}

/// Wall-clock end of a segment list (for callers reading an index).
pub fn range(index: &DvrIndex) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let first = index.segments.first()?;
    let last = index.segments.last()?;
    Some((
        first.program_date_time,
        last.program_date_time + seconds(last.duration),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use os_hls::MediaPlaylist;

    fn seg(at: DateTime<Utc>, disc: bool) -> Finished {
        Finished {
            data: vec![
                Bytes::from_static(&[0x47; 188]),
                Bytes::from_static(&[0x47; 188]),
            ],
            duration: 2.0,
            discontinuity: disc,
            program_date_time: at,
        }
    }

    fn settings(dir: &Path) -> DvrSettings {
        DvrSettings {
            dir: dir.join("cam"),
            segment_duration: 2.0,
            retention_sec: 0,
            max_bytes: 0,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn resume_continues_numbering_with_one_gap_and_one_discontinuity() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let idle = Duration::from_secs(4);
        let t0 = Utc::now();
        let mut w = Writer::open("cam", &s).await.unwrap();
        assert!(!w.resume);
        for i in 0..3 {
            w.add(seg(t0 + seconds(2.0 * f64::from(i)), false), idle)
                .await
                .unwrap();
        }
        w.finish().await.unwrap();
        let vod = std::fs::read_to_string(s.dir.join(PLAYLIST)).unwrap();
        assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
        // A run killed mid-write leaves a temp file and an unlisted segment.
        std::fs::write(s.dir.join(".000003.ts.tmp"), b"half").unwrap();
        std::fs::write(s.dir.join("000003.ts"), b"unlisted").unwrap();
        let mut w = Writer::open("cam", &s).await.unwrap();
        assert!(w.resume);
        assert_eq!(w.index.next_seq, 4, "never reuses 3, even unlisted");
        let live = std::fs::read_to_string(s.dir.join(PLAYLIST)).unwrap();
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !live.contains("ENDLIST"));
        let t1 = t0 + seconds(60.0);
        w.add(seg(t1, false), idle).await.unwrap();
        w.add(seg(t1 + seconds(2.0), false), idle).await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(
            files(&s.dir),
            [
                "000000.ts",
                "000001.ts",
                "000002.ts",
                "000004.ts",
                "000005.ts",
                INDEX,
                PLAYLIST
            ]
        );
        let ix = index::load(&s.dir).await.unwrap().unwrap();
        assert_eq!(ix.gaps.len(), 1);
        assert!(
            (ix.gaps[0].duration_sec - 54.0).abs() < 0.01,
            "{:?}",
            ix.gaps
        );
        assert_eq!(ix.segment_count, 5);
        assert_eq!(ix.total_size_bytes, 5 * 376);
        let pl = MediaPlaylist::parse(&std::fs::read_to_string(s.dir.join(PLAYLIST)).unwrap());
        let disc: Vec<String> = pl
            .segments
            .iter()
            .filter(|x| x.discontinuity)
            .map(|x| x.uri.clone())
            .collect();
        assert_eq!(disc, ["000004.ts"]);
        assert_eq!(pl.media_sequence, 0);
        assert_eq!(
            pl.segments
                .iter()
                .map(|x| x.uri.as_str())
                .collect::<Vec<_>>(),
            [
                "000000.ts",
                "000001.ts",
                "000002.ts",
                "000004.ts",
                "000005.ts"
            ]
        );
    }

    #[tokio::test]
    async fn a_hole_in_the_input_is_a_gap_and_dates_never_overlap() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let idle = Duration::from_secs(4);
        let t0 = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
        let mut w = Writer::open("cam", &s).await.unwrap();
        w.add(seg(t0, false), idle).await.unwrap();
        // Arrived 0.5 s early (GOP cache at the start): dated at the end of
        // the previous one, no gap.
        w.add(seg(t0 + seconds(1.5), false), idle).await.unwrap();
        // 3 s late: under the 4 s threshold, jitter, no gap.
        w.add(seg(t0 + seconds(7.0), false), idle).await.unwrap();
        // 20 s of silence: a gap and a discontinuity.
        w.add(seg(t0 + seconds(29.0), false), idle).await.unwrap();
        let ix = &w.index;
        let dates: Vec<_> = ix.segments.iter().map(|x| x.program_date_time).collect();
        assert_eq!(
            dates,
            [t0, t0 + seconds(2.0), t0 + seconds(7.0), t0 + seconds(29.0)]
        );
        let disc: Vec<bool> = ix.segments.iter().map(|x| x.discontinuity).collect();
        assert_eq!(disc, [false, false, false, true]);
        assert_eq!(ix.gaps.len(), 1);
        assert_eq!(ix.gaps[0].from, t0 + seconds(9.0));
        assert_eq!(ix.gaps[0].to, t0 + seconds(29.0));
        assert!((ix.gaps[0].duration_sec - 20.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn a_lost_or_damaged_index_is_rebuilt_from_the_playlist() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let idle = Duration::from_secs(4);
        let t0 = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
        let mut w = Writer::open("cam", &s).await.unwrap();
        for i in 0..3 {
            w.add(seg(t0 + seconds(2.0 * f64::from(i)), false), idle)
                .await
                .unwrap();
        }
        let before = w.index.segments.clone();
        drop(w);
        std::fs::write(s.dir.join(INDEX), b"{ damaged").unwrap();
        let w = Writer::open("cam", &s).await.unwrap();
        assert_eq!(w.index.segments, before, "nothing recorded is lost");
        assert_eq!(w.index.next_seq, 3);
        assert!(s.dir.join("index.json.damaged").is_file());
        drop(w);
        std::fs::remove_file(s.dir.join(INDEX)).unwrap();
        std::fs::remove_file(s.dir.join(PLAYLIST)).unwrap();
        // Neither index nor playlist: the files stay, numbering continues.
        let w = Writer::open("cam", &s).await.unwrap();
        assert_eq!(w.index.next_seq, 3);
        assert!(s.dir.join("000002.ts").is_file());
    }

    #[tokio::test]
    async fn retention_deletes_oldest_files_after_the_playlist_moved_on() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = settings(tmp.path());
        s.max_bytes = 3 * 376;
        let idle = Duration::from_secs(4);
        let t0 = Utc::now();
        let mut w = Writer::open("cam", &s).await.unwrap();
        for i in 0..6 {
            w.add(seg(t0 + seconds(2.0 * f64::from(i)), false), idle)
                .await
                .unwrap();
        }
        assert_eq!(
            files(&s.dir),
            ["000003.ts", "000004.ts", "000005.ts", INDEX, PLAYLIST]
        );
        let pl = MediaPlaylist::parse(&std::fs::read_to_string(s.dir.join(PLAYLIST)).unwrap());
        assert_eq!(pl.media_sequence, 3);
        assert_eq!(pl.segments.len(), 3);
        // Numbering continues after a restart although 0..2 are gone.
        drop(w);
        let w = Writer::open("cam", &s).await.unwrap();
        assert_eq!(w.index.next_seq, 6);
    }

    #[tokio::test]
    async fn unwritable_directory_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let s = DvrSettings {
            dir: file.join("cam"),
            ..settings(tmp.path())
        };
        assert!(Writer::open("cam", &s).await.is_err());
    }

    #[test]
    fn settings_from_config() {
        let cfg = DvrConfig {
            enabled: true,
            segment_duration: 3,
            retention_sec: 60,
            storage_path: String::new(),
            max_size_gb: 0.5,
        };
        let s = DvrSettings::new(&cfg, "cam");
        assert!(s.dir.is_absolute() && s.dir.ends_with("dvr/cam"));
        assert_eq!(s.max_bytes, 1 << 29);
        assert_eq!(s.segment_duration, 3.0);
    }
}
