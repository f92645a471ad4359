//! DASH for a transcoded stream: every rendition is a Representation of one
//! video AdaptationSet, so players switch between them.
//!
//! Layout: flat, in `{publisher.dash.dir}/{code}/` like the single-rendition
//! publisher. Rendition `N` (track order) has the representation id
//! `v<t>_<N>` (`init_v<t>_<N>.mp4`, `seg_v<t>_<N>_<n>.m4s`); audio is
//! packaged once, from the first rendition (`init_a<t>.mp4`,
//! `seg_a<t>_<n>.m4s`, its own AdaptationSet). `<t>` is the UNIX time the
//! task started.
//!
//! Each rendition has its own [`DashPackager`] (same settings as the
//! single-rendition publisher). The transcoder keeps the input timestamps
//! in every rendition and forces keyframes at the same times, so the
//! packagers share one time origin (the first keyframe any rendition delivers,
//! [`DashPackager::set_time_origin`]): the same media time is the same
//! instant in every rendition, and segments are cut at the same keyframes.
//! Each video Representation carries its own `SegmentTemplate` +
//! `SegmentTimeline` (a rendition that joined later, or lost a segment,
//! still lists exactly what it has; numbers are per representation), see
//! [`os_dash::abr_manifest`].
//!
//! `index.mpd` is written (atomically) once every rendition has a segment,
//! or after [`MASTER_WAIT`] with those that have one, and rewritten after
//! every new segment of any rendition.

use std::time::{Instant, SystemTime};

use os_dash::{DashPackager, MANIFEST_NAME, Output, abr_manifest};
use os_hub::Item;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dash::{DashConfig, Feed, Origin};
use crate::hls::write_atomic;
use crate::hls_abr::{MASTER_WAIT, Rendition};

/// Start the ABR DASH task of stream `code`. It runs until `cancel` fires
/// or every rendition buffer is closed, then removes the stream directory.
pub fn spawn_dash_abr(
    code: String,
    renditions: Vec<Rendition>,
    config: DashConfig,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(code, renditions, config, cancel))
}

/// Representation id of rendition `index` (0-based) for the run started at `run`.
fn video_id(run: i64, index: usize) -> String {
    format!("v{run}_{}", index + 1)
}

async fn run(
    code: String,
    renditions: Vec<Rendition>,
    config: DashConfig,
    cancel: CancellationToken,
) {
    let dir = config.dir.join(&code);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::error!(stream = %code, dir = %dir.display(), error = %e, "dash: cannot create directory");
        return;
    }
    let run_at = chrono::Utc::now().timestamp();
    let mut packagers = Vec::with_capacity(renditions.len());
    let mut feeds = Vec::with_capacity(renditions.len());
    for (i, r) in renditions.iter().enumerate() {
        let mut cfg = config.packager(run_at);
        cfg.video_id = video_id(run_at, i);
        match DashPackager::new(cfg) {
            Ok(p) => packagers.push(p),
            Err(e) => {
                tracing::error!(stream = %code, error = %e, "dash: invalid settings");
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return;
            }
        }
        let mut feed = Feed::new(code.clone(), Some(r.name.clone()), dir.clone());
        feed.video_only = i > 0;
        feeds.push(feed);
    }
    // One reader task per rendition; the packaging happens here, in order.
    let (tx, mut rx) = mpsc::channel::<(usize, Item)>(64);
    let mut readers = Vec::with_capacity(renditions.len());
    for (i, r) in renditions.iter().enumerate() {
        let mut reader = r.buffer.subscribe(format!("dash:{}", r.name));
        let tx = tx.clone();
        let cancel = cancel.clone();
        readers.push(tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    () = cancel.cancelled() => break,
                    item = reader.recv() => match item {
                        Ok(item) => item,
                        Err(_closed) => break,
                    },
                };
                if tx.send((i, item)).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    tracing::info!(stream = %code, dir = %dir.display(), renditions = renditions.len(), "dash publisher started (ABR)");
    let mut origin: Origin = None;
    let started = Instant::now();
    let mut manifest_errors = 0u64;
    loop {
        let (i, item) = tokio::select! {
            () = cancel.cancelled() => break,
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
        };
        let (Some(feed), Some(packager)) = (feeds.get_mut(i), packagers.get_mut(i)) else {
            continue;
        };
        let outs = feed.item(packager, item, Some(&mut origin));
        // Files first, then the combined MPD in place of the rendition's
        // own, then the deletions (of segments the MPD no longer lists).
        let Some(split) = outs
            .iter()
            .position(|o| matches!(o, Output::Manifest { .. }))
        else {
            feed.apply(outs).await;
            continue;
        };
        let mut outs = outs;
        let rest: Vec<Output> = outs
            .split_off(split)
            .into_iter()
            .filter(|o| !matches!(o, Output::Manifest { .. }))
            .collect();
        feed.apply(outs).await;
        let now = SystemTime::now();
        let manifests: Vec<_> = packagers.iter().map(|p| p.manifest(now)).collect();
        let all = manifests.iter().all(Option::is_some);
        if (all || started.elapsed() >= MASTER_WAIT)
            && let Some(mpd) = abr_manifest(manifests.into_iter().flatten().collect())
            && let Err(e) = write_atomic(&dir, MANIFEST_NAME, mpd.to_xml().as_bytes()).await
        {
            manifest_errors += 1;
            if manifest_errors == 1 || manifest_errors.is_power_of_two() {
                tracing::warn!(stream = %code, error = %e, "dash: cannot write the MPD");
            }
        }
        if let Some(feed) = feeds.get_mut(i) {
            feed.apply(rest).await;
        }
    }
    cancel.cancel();
    drop(rx);
    for r in readers {
        let _ = r.await;
    }
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(stream = %code, error = %e, "dash: cannot remove directory");
    }
    tracing::info!(
        stream = %code,
        lost_chunks = feeds.iter().map(|f| f.lost).sum::<u64>(),
        dropped_units = packagers.iter().map(|p| p.dropped).sum::<u64>(),
        errors = feeds.iter().map(|f| f.errors).sum::<u64>(),
        "dash publisher stopped (ABR)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representation_ids_are_distinct_from_audio_and_each_other() {
        let cfg = DashConfig::default().packager(1_700_000_000);
        let a = video_id(1_700_000_000, 0);
        let b = video_id(1_700_000_000, 1);
        assert_eq!(a, "v1700000000_1");
        assert_ne!(a, b);
        assert_ne!(a, cfg.audio_id);
        for id in [a, b] {
            let mut c = cfg.clone();
            c.video_id = id;
            assert!(DashPackager::new(c).is_ok());
        }
    }
}
