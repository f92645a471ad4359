//! Media files: `GET|HEAD /{code}/{file}` serves the packagers' output.
//!
//! `.m3u8`/`.ts` come from `{publisher.hls.dir}/{code}/`, `.mpd`/`.m4s`/
//! `.mp4` from `{publisher.dash.dir}/{code}/`. The route needs no API token
//! (players cannot send one) and is not logged per request. Every answer
//! carries `Access-Control-Allow-Origin: *` so browser players on any origin
//! can read it (the files are public).
//!
//! Content types: `application/vnd.apple.mpegurl`, `video/mp2t`,
//! `application/dash+xml`, `video/iso.segment` / `video/mp4` for video and
//! `audio/mp4` for audio (`seg_a*`, `init_a*`) DASH segments.
//!
//! Path safety: the code must be a valid stream code and the file name one
//! path segment of `[A-Za-z0-9_.-]` that does not start with a dot
//! (optionally under a rendition directory `track_<N>/` of a transcoded
//! stream's HLS output), so
//! neither can leave the stream directory (`..`, `/`, `\`, NUL and percent
//! escapes of them are all rejected after decoding).
//!
//! Caching: playlists/manifests are `no-cache`; segment names are never
//! reused (see the publisher), so segments are `immutable`. Every response
//! has an `ETag` from the file's size and modification time; a matching
//! `If-None-Match` gets 304. A single `Range: bytes=…` gets 206 (416 when
//! unsatisfiable).
//!
//! Memory: file contents are kept in a bounded cache ([`CACHE_BYTES`],
//! oldest entries evicted first) keyed by path, size and modification time,
//! so the live window of every stream is served from memory. Playlists are
//! checked on disk at every request (a rewritten one is read again);
//! segments at most once a second ([`TRUST`]), so a deleted segment turns
//! into a 404 within a second. Measured against reading the file per request in
//! `docs/BENCHMARKS.md` (HLS serving).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// Where the packagers write, and the cache of what was served.
#[derive(Debug)]
pub struct MediaDirs {
    pub hls: PathBuf,
    pub dash: PathBuf,
    cache: FileCache,
}

impl MediaDirs {
    pub fn new(hls: PathBuf, dash: PathBuf) -> Self {
        Self {
            hls,
            dash,
            cache: FileCache::new(CACHE_BYTES),
        }
    }
}

/// Bytes of file contents kept in memory (all streams together).
pub const CACHE_BYTES: usize = 128 << 20;
/// How long a segment checked on disk is served from memory without
/// checking again (a deleted segment may be served for this long).
const TRUST: Duration = Duration::from_secs(1);
/// Larger files are never cached.
const CACHE_MAX_FILE: usize = 16 << 20;

/// (size, modification time in ns): a file's version.
type Version = (u64, u128);

#[derive(Debug, Default)]
struct CacheInner {
    /// path → (version, generation, contents, last checked on disk)
    map: HashMap<PathBuf, (Version, u64, Bytes, Instant)>,
    /// Insertion order: (path, generation); stale generations are skipped.
    order: VecDeque<(PathBuf, u64)>,
    bytes: usize,
    generation: u64,
}

/// A bounded map of file contents, oldest insertion evicted first (live
/// segments are requested while new, then never again).
#[derive(Debug)]
struct FileCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

impl FileCache {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The contents of `path` at `version` (just checked on disk).
    fn get(&self, path: &std::path::Path, version: Version) -> Option<Bytes> {
        let mut inner = self.inner.lock().ok()?;
        match inner.map.get_mut(path) {
            Some((v, _, data, checked)) if *v == version => {
                *checked = Instant::now();
                Some(data.clone())
            }
            _ => None,
        }
    }

    /// The cached version and contents of `path` if it was checked on disk
    /// within `max_age`.
    fn fresh(&self, path: &std::path::Path, max_age: Duration) -> Option<(Version, Bytes)> {
        let inner = self.inner.lock().ok()?;
        match inner.map.get(path) {
            Some((v, _, data, checked)) if checked.elapsed() < max_age => Some((*v, data.clone())),
            _ => None,
        }
    }

    fn insert(&self, path: PathBuf, version: Version, data: Bytes) {
        if data.len() > CACHE_MAX_FILE || data.len() > self.budget {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.generation += 1;
        let generation = inner.generation;
        let len = data.len();
        if let Some((_, _, old, _)) = inner
            .map
            .insert(path.clone(), (version, generation, data, Instant::now()))
        {
            inner.bytes -= old.len();
        }
        inner.bytes += len;
        inner.order.push_back((path, generation));
        while inner.bytes > self.budget {
            let Some((p, g)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&p).is_some_and(|(_, eg, _, _)| *eg == g)
                && let Some((_, _, old, _)) = inner.map.remove(&p)
            {
                inner.bytes -= old.len();
            }
        }
        // Stale order entries of replaced files: drop them once they dominate.
        if inner.order.len() > 2 * inner.map.len() + 64 {
            let CacheInner { map, order, .. } = &mut *inner;
            order.retain(|(p, g)| map.get(p).is_some_and(|(_, eg, _, _)| eg == g));
        }
    }

    fn forget(&self, path: &std::path::Path) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some((_, _, old, _)) = inner.map.remove(path)
        {
            inner.bytes -= old.len();
        }
    }
}

/// `max-age` of segments, seconds.
const SEGMENT_MAX_AGE: u32 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Playlist,
    Segment,
}

/// (content type, kind, served from the DASH directory)
fn classify(file: &str) -> Option<(&'static str, Kind, bool)> {
    let ext = file.rsplit_once('.')?.1;
    Some(match ext {
        "m3u8" => ("application/vnd.apple.mpegurl", Kind::Playlist, false),
        "ts" => ("video/mp2t", Kind::Segment, false),
        "mpd" => ("application/dash+xml", Kind::Playlist, true),
        // The DASH publisher names audio representations `a<run>`.
        "m4s" if file.starts_with("seg_a") => ("audio/mp4", Kind::Segment, true),
        "m4s" => ("video/iso.segment", Kind::Segment, true),
        "mp4" if file.starts_with("init_a") => ("audio/mp4", Kind::Segment, true),
        "mp4" => ("video/mp4", Kind::Segment, true),
        _ => return None,
    })
}

fn valid_file_name(file: &str) -> bool {
    !file.is_empty()
        && file.len() <= 255
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A file name, or `track_<N>/<file name>` (a rendition of a transcoded
/// stream's HLS output).
fn valid_media_path(path: &str) -> bool {
    match path.split_once('/') {
        None => valid_file_name(path),
        Some((dir, file)) => {
            dir.strip_prefix("track_").is_some_and(|n| {
                !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
            }) && valid_file_name(file)
        }
    }
}

fn bad_path(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PATH", message)
}

pub async fn serve(
    state: State<AppState>,
    path: Path<(String, String)>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    let mut resp = match serve_file(state, path, method, headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    // Players on other origins (a web page embedding the stream) read these
    // with XHR/fetch, errors included: the files are public, so any origin may.
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

async fn serve_file(
    State(app): State<AppState>,
    Path((code, file)): Path<(String, String)>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Anything without a media extension is not this route's: answer like
    // the router's fallback.
    let Some((content_type, kind, dash)) = classify(&file) else {
        return Err(ApiError::not_found(format!(
            "no route for {} /{code}/{file}",
            method
        )));
    };
    if os_domain::validate_code(&code).is_err() {
        return Err(bad_path("invalid stream code"));
    }
    if !valid_media_path(&file) {
        return Err(bad_path(
            "invalid file name: one path segment of letters, digits, '_', '-' and '.' (optionally under a rendition directory track_N/)",
        ));
    }
    let Some(dirs) = app.media.as_deref() else {
        return Err(ApiError::not_found("media serving is not configured"));
    };
    let root = if dash { &dirs.dash } else { &dirs.hls };
    let path = root.join(&code).join(&file);
    let not_found = || ApiError::not_found(format!("no file \"{file}\" for stream \"{code}\""));
    // A segment checked on disk within the last `TRUST` is served from
    // memory without asking the disk again; playlists are always checked.
    let trusted = match kind {
        Kind::Segment => dirs.cache.fresh(&path, TRUST),
        Kind::Playlist => None,
    };
    let (version, cached) = match trusted {
        Some((version, data)) => (version, Some(data)),
        None => {
            // A stat of a local file is a few microseconds: done in place,
            // handing it to the blocking pool costs more than the call
            // (measured: docs/BENCHMARKS.md, HLS serving).
            let meta = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => {
                    dirs.cache.forget(&path);
                    return Err(not_found());
                }
            };
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let version = (meta.len(), mtime);
            (version, dirs.cache.get(&path, version))
        }
    };
    let etag = format!("\"{:x}-{:x}\"", version.0, version.1);
    let cache = match kind {
        Kind::Playlist => "no-cache".to_string(),
        Kind::Segment => format!("public, max-age={SEGMENT_MAX_AGE}, immutable"),
    };
    let mut out = HeaderMap::new();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&cache) {
        out.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let hit = inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
        if hit {
            return Ok((StatusCode::NOT_MODIFIED, out).into_response());
        }
    }
    let data = match cached {
        Some(data) => data,
        None => {
            // The file may vanish (window slid) between stat and read.
            let data = Bytes::from(tokio::fs::read(&path).await.map_err(|_| not_found())?);
            // Cached under the version read only if the file did not change
            // in between (a playlist replaced right after the stat).
            if data.len() as u64 == version.0 {
                dirs.cache.insert(path.clone(), version, data.clone());
            }
            data
        }
    };
    let len = data.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, len));
    match range {
        None | Some(RangeSpec::Ignore) => Ok((StatusCode::OK, out, data).into_response()),
        Some(RangeSpec::Unsatisfiable) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                out.insert(header::CONTENT_RANGE, v);
            }
            Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response())
        }
        Some(RangeSpec::Bytes(start, end)) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                out.insert(header::CONTENT_RANGE, v);
            }
            let body = if end < len {
                data.slice(start as usize..=end as usize)
            } else {
                Bytes::new()
            };
            Ok((StatusCode::PARTIAL_CONTENT, out, body).into_response())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// Inclusive byte range within the file.
    Bytes(u64, u64),
    Unsatisfiable,
    /// Not a single byte range we understand: serve the whole file.
    Ignore,
}

/// Parse a single `bytes=` range against a file of `len` bytes.
pub(crate) fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeSpec::Ignore,
        // Suffix: the last `b` bytes.
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeSpec::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            Err(_) => return RangeSpec::Ignore,
        },
        (false, true) => match a.parse::<u64>() {
            Ok(s) => (s, len.saturating_sub(1)),
            Err(_) => return RangeSpec::Ignore,
        },
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
            _ => return RangeSpec::Ignore,
        },
    };
    if len == 0 || parsed.0 >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Bytes(parsed.0, parsed.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), RangeSpec::Bytes(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), RangeSpec::Bytes(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), RangeSpec::Bytes(900, 999));
        assert_eq!(
            parse_range("bytes=990-2000", 1000),
            RangeSpec::Bytes(990, 999)
        );
        assert_eq!(parse_range("bytes=1000-", 1000), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 1000), RangeSpec::Ignore);
    }

    #[test]
    fn cache_is_bounded_and_versioned() {
        let c = FileCache::new(100);
        let p = |n: u32| PathBuf::from(format!("/x/seg_{n}.ts"));
        c.insert(p(1), (40, 1), Bytes::from(vec![1; 40]));
        c.insert(p(2), (40, 1), Bytes::from(vec![2; 40]));
        assert_eq!(c.get(&p(1), (40, 1)).map(|b| b[0]), Some(1));
        assert!(c.get(&p(1), (40, 2)).is_none(), "another version is a miss");
        // Over budget: the oldest goes.
        c.insert(p(3), (40, 1), Bytes::from(vec![3; 40]));
        assert!(c.get(&p(1), (40, 1)).is_none());
        assert!(c.get(&p(2), (40, 1)).is_some() && c.get(&p(3), (40, 1)).is_some());
        // Replacing a file keeps one copy; its old order entry is stale.
        for v in 0..200 {
            c.insert(p(2), (40, v), Bytes::from(vec![4; 40]));
        }
        let inner = c.inner.lock().unwrap_or_else(|e| e.into_inner());
        assert!(inner.bytes <= 100, "{} bytes", inner.bytes);
        assert!(inner.order.len() <= 2 * inner.map.len() + 65);
        drop(inner);
        c.forget(&p(2));
        assert!(c.get(&p(2), (40, 199)).is_none());
        assert!(c.fresh(&p(2), Duration::from_secs(60)).is_none());
        c.insert(p(5), (40, 1), Bytes::from(vec![5; 40]));
        assert_eq!(
            c.fresh(&p(5), Duration::from_secs(60)).map(|(v, _)| v),
            Some((40, 1))
        );
        assert!(
            c.fresh(&p(5), Duration::ZERO).is_none(),
            "too old: check the disk"
        );
        // Too large for the budget: not cached.
        c.insert(p(9), (200, 1), Bytes::from(vec![9; 200]));
        assert!(c.get(&p(9), (200, 1)).is_none());
    }

    #[test]
    fn dash_content_types() {
        let ct = |f| classify(f).map(|c| c.0);
        assert_eq!(ct("index.mpd"), Some("application/dash+xml"));
        assert_eq!(ct("init_v1700000000.mp4"), Some("video/mp4"));
        assert_eq!(ct("seg_v1700000000_7.m4s"), Some("video/iso.segment"));
        assert_eq!(ct("init_a1700000000.mp4"), Some("audio/mp4"));
        assert_eq!(ct("seg_a1700000000_7.m4s"), Some("audio/mp4"));
        assert_eq!(ct("seg_7.ts"), Some("video/mp2t"));
    }

    #[test]
    fn file_names() {
        assert!(valid_file_name("seg_17.ts"));
        assert!(valid_file_name("index.m3u8"));
        for bad in [
            "..",
            "../x.ts",
            "a/b.ts",
            "a\\b.ts",
            ".hidden.ts",
            "a\0.ts",
            "",
            "é.ts",
        ] {
            assert!(!valid_file_name(bad), "{bad:?}");
        }
        assert!(valid_media_path("track_2/seg_17.ts"));
        assert!(valid_media_path("track_10/index.m3u8"));
        for bad in [
            "track_/x.ts",
            "track_1/../x.ts",
            "track_1/a/b.ts",
            "other/x.ts",
            "track_x/x.ts",
            "../track_1/x.ts",
        ] {
            assert!(!valid_media_path(bad), "{bad:?}");
        }
    }
}
