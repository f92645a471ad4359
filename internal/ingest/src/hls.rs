//! HLS pull (`http(s)://…/*.m3u8`) with MPEG-TS segments.
//!
//! - Master playlist: the variant with the highest `BANDWIDTH` (I-frame-only
//!   variants ignored); relative URIs resolve against the playlist's final
//!   URL (after redirects).
//! - Media playlist: a live playlist starts [`LIVE_EDGE_SEGMENTS`] segments
//!   before its end; a VOD/ended playlist (`EXT-X-ENDLIST` or
//!   `PLAYLIST-TYPE:VOD`) from its first segment. It is reloaded every half
//!   target duration (at least [`MIN_RELOAD`]) and each new segment is
//!   fetched once, by media sequence number.
//! - A failed segment is retried [`SEGMENT_RETRIES`] times with backoff, then
//!   skipped: logged, recorded as the input's last error, and the next
//!   segment is marked as a discontinuity. [`MAX_FAILED_IN_A_ROW`] failures in
//!   a row end the session with the last error, as does an ended playlist of
//!   which no segment could be fetched.
//! - Segments are written to the hub paced in real time (the file pacer).
//!   `EXT-X-DISCONTINUITY` → [`TsEmitter::discontinuity`].
//! - `EXT-X-ENDLIST` → `Ok` after the last segment. A live playlist without
//!   a new segment for 3 target durations → `timeout`.
//! - Memory: one segment being written, at most one waiting, one being
//!   fetched; segments over [`MAX_SEGMENT`] are refused.
//! - Not supported (error `protocol`): encrypted segments (`EXT-X-KEY`),
//!   fMP4 segments (`EXT-X-MAP`), I-frame playlists. Alternative renditions
//!   (`EXT-X-MEDIA` with their own URI) are not fetched: the chosen variant
//!   must carry its audio.
//! - Headers and credentials as for HTTP-TS (basic auth only to the
//!   playlist's origin).

use std::time::Duration;

use bytes::Bytes;
use m3u8_rs::{KeyMethod, MediaPlaylist, MediaPlaylistType, Playlist};
use tokio::sync::mpsc;
use tokio::time::Instant;
use url::Url;

use crate::Session;
use crate::emit::TsEmitter;
use crate::error::IngestError;
use crate::http::Http;
use crate::pace::TsPipe;

/// A live playlist starts this many segments before its end.
pub const LIVE_EDGE_SEGMENTS: usize = 3;
/// Shortest playlist reload interval.
pub const MIN_RELOAD: Duration = Duration::from_millis(500);
/// Retries of a failed segment before it is skipped.
pub const SEGMENT_RETRIES: u32 = 2;
/// Skipped segments in a row that end the session.
pub const MAX_FAILED_IN_A_ROW: u32 = 3;
/// Largest playlist accepted.
const MAX_PLAYLIST: usize = 4 << 20;
/// Largest segment accepted.
pub const MAX_SEGMENT: usize = 128 << 20;
/// First retry delay; doubles per retry.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// What the fetcher hands to the writer.
enum Msg {
    Segment { data: Bytes, discontinuity: bool },
    End(Result<(), IngestError>),
}

/// One session of an HLS input.
pub async fn run(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    let (http, url) = Http::new(s)?;
    let (media_url, playlist) = open_media_playlist(&http, url).await?;
    // Capacity 1: one segment waits while one is written and the next is
    // fetched; the fetcher blocks until the writer catches up.
    let (tx, rx) = mpsc::channel(1);
    let fetch = async {
        let result = fetch_segments(s, &http, media_url, playlist, &tx).await;
        let _ = tx.send(Msg::End(result)).await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        r = write_segments(s, rx, out) => r,
        () = fetch => Ok(()),
    }
}

/// Write segments to the hub, paced, until the fetcher ends.
async fn write_segments(
    s: &Session<'_>,
    mut rx: mpsc::Receiver<Msg>,
    out: &mut TsEmitter,
) -> Result<(), IngestError> {
    let mut pipe = TsPipe::new(s.stats, true, false);
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Segment {
                data,
                discontinuity,
            } => {
                if discontinuity {
                    pipe.restart();
                    out.discontinuity();
                }
                pipe.feed(&data, out).await?;
            }
            Msg::End(result) => {
                pipe.drain(out).await?;
                return result;
            }
        }
    }
    Ok(())
}

/// Fetch the playlist at `url`; when it is a master playlist, pick the
/// highest-bandwidth variant and fetch that.
async fn open_media_playlist(http: &Http, url: Url) -> Result<(Url, MediaPlaylist), IngestError> {
    let (playlist, url) = fetch_playlist(http, &url).await?;
    match playlist {
        Playlist::MediaPlaylist(m) => Ok((url, m)),
        Playlist::MasterPlaylist(master) => {
            let variant = master
                .variants
                .iter()
                .filter(|v| !v.is_i_frame)
                .max_by_key(|v| v.bandwidth)
                .ok_or_else(|| IngestError::protocol("master playlist has no variant"))?;
            let variant_url = url
                .join(&variant.uri)
                .map_err(|e| IngestError::protocol(format!("variant uri: {e}")))?;
            tracing::info!(
                bandwidth = variant.bandwidth,
                variants = master.variants.len(),
                resolution = ?variant.resolution.map(|r| (r.width, r.height)),
                "hls: chose the highest-bandwidth variant"
            );
            match fetch_playlist(http, &variant_url).await? {
                (Playlist::MediaPlaylist(m), url) => Ok((url, m)),
                (Playlist::MasterPlaylist(_), _) => Err(IngestError::protocol(
                    "variant playlist is a master playlist",
                )),
            }
        }
    }
}

async fn fetch_playlist(http: &Http, url: &Url) -> Result<(Playlist, Url), IngestError> {
    let (body, final_url) = http
        .get_body(url, None, MAX_PLAYLIST)
        .await
        .map_err(|e| context(e, "playlist"))?;
    let playlist = m3u8_rs::parse_playlist_res(&body)
        .map_err(|_| IngestError::protocol("playlist is not a valid m3u8"))?;
    if let Playlist::MediaPlaylist(m) = &playlist {
        check_supported(m)?;
    }
    Ok((playlist, final_url))
}

fn check_supported(m: &MediaPlaylist) -> Result<(), IngestError> {
    if m.i_frames_only {
        return Err(IngestError::protocol(
            "I-frame-only playlists are not supported",
        ));
    }
    for seg in &m.segments {
        if seg
            .key
            .as_ref()
            .is_some_and(|k| k.method != KeyMethod::None)
        {
            return Err(IngestError::protocol(
                "encrypted HLS segments (EXT-X-KEY) are not supported",
            ));
        }
        if seg.map.is_some() {
            return Err(IngestError::protocol(
                "fMP4 HLS segments (EXT-X-MAP) are not supported; MPEG-TS segments only",
            ));
        }
    }
    Ok(())
}

fn context(e: IngestError, what: &str) -> IngestError {
    IngestError::new(e.kind, format!("{what}: {}", e.message))
}

/// Follow the media playlist and send each new segment to the writer.
async fn fetch_segments(
    s: &Session<'_>,
    http: &Http,
    url: Url,
    mut playlist: MediaPlaylist,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), IngestError> {
    let vod = playlist.end_list || playlist.playlist_type == Some(MediaPlaylistType::Vod);
    let mut next_seq = if vod {
        playlist.media_sequence
    } else {
        let end = playlist.media_sequence + playlist.segments.len() as u64;
        end.saturating_sub(LIVE_EDGE_SEGMENTS as u64)
            .max(playlist.media_sequence)
    };
    let mut last_new_segment = Instant::now();
    let mut delivered = 0u64;
    let mut failed_in_a_row = 0u32;
    let mut pending_discontinuity = false;
    let mut last_segment_error: Option<IngestError> = None;
    let mut last_reload_error: Option<IngestError> = None;
    // End of the previous byte-range segment, per URI (EXT-X-BYTERANGE
    // without an offset continues from there).
    let mut range_end: Option<(String, u64)> = None;

    loop {
        let first = playlist.media_sequence;
        let end = first + playlist.segments.len() as u64;
        if next_seq < first {
            tracing::warn!(
                stream = s.stream,
                lost = first - next_seq,
                "hls: segments expired before they were fetched"
            );
            next_seq = first;
            pending_discontinuity = true;
        } else if next_seq > end + playlist.segments.len() as u64 + LIVE_EDGE_SEGMENTS as u64 {
            // Media sequence went far back: the playlist restarted.
            tracing::warn!(stream = s.stream, "hls: media sequence restarted");
            next_seq = end.saturating_sub(LIVE_EDGE_SEGMENTS as u64).max(first);
            pending_discontinuity = true;
        }
        let start = usize::try_from(next_seq.saturating_sub(first)).unwrap_or(usize::MAX);
        for (i, seg) in playlist.segments.iter().enumerate().skip(start) {
            let seq = first + i as u64;
            next_seq = seq + 1;
            last_new_segment = Instant::now();
            let seg_url = url
                .join(&seg.uri)
                .map_err(|e| IngestError::protocol(format!("segment uri: {e}")))?;
            let range = seg.byte_range.as_ref().map(|r| {
                let offset = r.offset.unwrap_or(match &range_end {
                    Some((uri, end)) if *uri == seg.uri => *end,
                    _ => 0,
                });
                range_end = Some((seg.uri.clone(), offset + r.length));
                (offset, (offset + r.length).saturating_sub(1))
            });
            match fetch_segment(http, &seg_url, range).await {
                Ok(data) => {
                    delivered += 1;
                    failed_in_a_row = 0;
                    let discontinuity = seg.discontinuity || pending_discontinuity;
                    pending_discontinuity = false;
                    if tx
                        .send(Msg::Segment {
                            data,
                            discontinuity,
                        })
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let e = context(e, &format!("segment {seq}"));
                    tracing::warn!(stream = s.stream, error = %e, "hls: segment skipped");
                    s.stats.record_error(format!("{e} (skipped)"));
                    failed_in_a_row += 1;
                    pending_discontinuity = true;
                    if failed_in_a_row >= MAX_FAILED_IN_A_ROW {
                        return Err(e);
                    }
                    last_segment_error = Some(e);
                }
            }
        }
        if playlist.end_list {
            return match last_segment_error {
                Some(e) if delivered == 0 => Err(e),
                _ => Ok(()),
            };
        }
        let target = Duration::from_secs(playlist.target_duration.max(1));
        if last_new_segment.elapsed() > target * 3 {
            return Err(last_reload_error.unwrap_or_else(|| {
                IngestError::timeout(format!(
                    "playlist did not advance for {} s",
                    (target * 3).as_secs()
                ))
            }));
        }
        tokio::time::sleep((target / 2).max(MIN_RELOAD)).await;
        match fetch_playlist(http, &url).await {
            Ok((Playlist::MediaPlaylist(m), _)) => {
                playlist = m;
                last_reload_error = None;
            }
            Ok((Playlist::MasterPlaylist(_), _)) => {
                return Err(IngestError::protocol(
                    "media playlist became a master playlist",
                ));
            }
            // Transient until the playlist counts as stalled: a server may
            // be caught rewriting the file, or briefly unreachable.
            Err(e) => {
                tracing::warn!(stream = s.stream, error = %e, "hls: playlist reload failed");
                last_reload_error = Some(e);
            }
        }
    }
}

/// GET one segment, retrying with backoff.
async fn fetch_segment(
    http: &Http,
    url: &Url,
    range: Option<(u64, u64)>,
) -> Result<Bytes, IngestError> {
    let mut delay = RETRY_DELAY;
    let mut attempt = 0;
    loop {
        match http.get_body(url, range, MAX_SEGMENT).await {
            Ok((data, _)) => return Ok(data),
            Err(e) if attempt >= SEGMENT_RETRIES => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, attempt, "hls: segment fetch failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
        }
    }
}
