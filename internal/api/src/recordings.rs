//! DVR recordings: `POST /streams/{code}/recordings/start|stop`,
//! `GET /streams/{code}/recordings`, `GET|DELETE /recordings/{rid}`,
//! `GET /recordings/{rid}/info` (token routes) and the playback routes
//! `GET /recordings/{rid}/playlist.m3u8`, `/timeshift.m3u8` and `/{file}`
//! (open, like the live media route: players cannot send a token).
//!
//! The recording ID is the stream code. Files are read from the recording's
//! `segment_dir` (from the store); `{file}` must be a segment name of the
//! recording (`%06d.ts`, digits only), so no other path can be named: `..`,
//! `/`, `\`, percent-encoded forms of them, absolute paths and the files of
//! other streams are all refused. `Range: bytes=…` is honoured on segments.
//!
//! Timeshift (`from=RFC3339` or `offset_sec=N`, optional `duration=S`) is
//! computed per request from the on-disk `playlist.m3u8` by
//! [`os_hls::timeshift`].

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use os_domain::{Recording, RecordingStatus, stream::validate_code};
use os_dvr::{DvrIndex, Gap};
use os_hls::MediaPlaylist;
use os_hls::playlist::parse_segment_name;
use os_hls::timeshift::{TimeshiftError, Window, WindowError, timeshift};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorResponse};
use crate::media::{RangeSpec, parse_range};

/// `{"data": Recording}`
#[derive(Serialize, ToSchema)]
pub struct RecordingResponse {
    pub data: Recording,
}

/// `{"data": [Recording], "total": N}`
#[derive(Serialize, ToSchema)]
pub struct RecordingListResponse {
    pub data: Vec<Recording>,
    pub total: usize,
}

/// Wall-clock span of the segments on disk.
#[derive(Serialize, ToSchema)]
pub struct DvrRange {
    /// Start of the oldest segment.
    pub started_at: Option<DateTime<Utc>>,
    /// End of the newest segment.
    pub last_segment_at: Option<DateTime<Utc>>,
}

/// `GET /recordings/{rid}/info`.
#[derive(Serialize, ToSchema)]
pub struct RecordingInfo {
    pub stream_code: String,
    pub status: RecordingStatus,
    pub dvr_range: DvrRange,
    pub gaps: Vec<Gap>,
    /// Segments listed in the playlist.
    pub segment_count: u64,
    /// Their total size, bytes.
    pub total_size_bytes: u64,
    /// Bytes of every file in the recording directory (segments, index,
    /// playlist).
    pub disk_usage: u64,
    /// Number the next segment will get.
    pub next_segment: u64,
}

/// `{"data": RecordingInfo}`
#[derive(Serialize, ToSchema)]
pub struct RecordingInfoResponse {
    pub data: RecordingInfo,
}

fn check_code(code: &str, what: &str) -> Result<(), ApiError> {
    validate_code(code).map_err(|msg| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_CODE",
            format!("{what} {code:?} {msg}"),
        )
    })
}

/// Start recording a running stream (sets `dvr.enabled`, so the recording
/// resumes after a restart). Files go to `{dvr.storage_path or ./dvr}/{code}/`.
#[utoipa::path(post, path = "/streams/{code}/recordings/start", tag = "recordings",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 200, body = RecordingResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Stream not running", body = ErrorResponse),
    ))]
pub async fn start_recording(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<RecordingResponse>, ApiError> {
    check_code(&code, "stream code")?;
    let data = app.coordinator.recording_start(&code).await?;
    Ok(Json(RecordingResponse { data }))
}

/// Stop recording (clears `dvr.enabled`); the playlist becomes VOD.
#[utoipa::path(post, path = "/streams/{code}/recordings/stop", tag = "recordings",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 200, body = RecordingResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, description = "Unknown stream, or it was never recorded", body = ErrorResponse),
    ))]
pub async fn stop_recording(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<RecordingResponse>, ApiError> {
    check_code(&code, "stream code")?;
    let data = app.coordinator.recording_stop(&code).await?;
    Ok(Json(RecordingResponse { data }))
}

/// The recordings of a stream (at most one: its ID is the stream code).
#[utoipa::path(get, path = "/streams/{code}/recordings", tag = "recordings",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 200, body = RecordingListResponse),
        (status = 400, body = ErrorResponse),
    ))]
pub async fn list_recordings(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<RecordingListResponse>, ApiError> {
    check_code(&code, "stream code")?;
    let data = app.store.list_recordings(Some(&code)).await?;
    Ok(Json(RecordingListResponse {
        total: data.len(),
        data,
    }))
}

async fn recording(app: &AppState, rid: &str) -> Result<Recording, ApiError> {
    check_code(rid, "recording id")?;
    Ok(app.store.get_recording(rid).await?)
}

/// Lifecycle metadata of a recording.
#[utoipa::path(get, path = "/recordings/{rid}", tag = "recordings",
    params(("rid" = String, Path, description = "Recording ID (= stream code)")),
    responses(
        (status = 200, body = RecordingResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn get_recording(
    State(app): State<AppState>,
    Path(rid): Path<String>,
) -> Result<Json<RecordingResponse>, ApiError> {
    let data = recording(&app, &rid).await?;
    Ok(Json(RecordingResponse { data }))
}

/// Delete a recording: its files and its metadata. Refused (409) while it
/// records; stop it first.
#[utoipa::path(delete, path = "/recordings/{rid}", tag = "recordings",
    params(("rid" = String, Path, description = "Recording ID (= stream code)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Still recording", body = ErrorResponse),
    ))]
pub async fn delete_recording(
    State(app): State<AppState>,
    Path(rid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let rec = recording(&app, &rid).await?;
    if app.coordinator.is_recording(&rid).await {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "RECORDING_ACTIVE",
            format!("recording \"{rid}\" is running; POST /streams/{rid}/recordings/stop first"),
        ));
    }
    let dir = PathBuf::from(&rec.segment_dir);
    // Only a directory that is this recording's (ends with its ID).
    if dir.file_name().and_then(|n| n.to_str()) == Some(rid.as_str()) {
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "DELETE_FAILED",
                    format!("cannot remove {}: {e}", dir.display()),
                ));
            }
        }
    }
    app.store.delete_recording(&rid).await?;
    tracing::info!(stream = %rid, "recording deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn read_index(dir: &FsPath) -> Result<DvrIndex, ApiError> {
    match os_dvr::index::load(dir).await {
        Ok(Some(ix)) => Ok(ix),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NO_DATA",
            "the recording has no data yet",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INDEX_READ_FAILED",
            format!("cannot read index.json: {e}"),
        )),
    }
}

async fn disk_usage(dir: &FsPath) -> u64 {
    let mut total = 0;
    if let Ok(mut rd) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            if let Ok(m) = e.metadata().await
                && m.is_file()
            {
                total += m.len();
            }
        }
    }
    total
}

/// DVR range, gaps, segment count and disk usage.
#[utoipa::path(get, path = "/recordings/{rid}/info", tag = "recordings",
    params(("rid" = String, Path, description = "Recording ID (= stream code)")),
    responses(
        (status = 200, body = RecordingInfoResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, description = "Unknown recording, or no data yet (`NO_DATA`)", body = ErrorResponse),
        (status = 500, description = "`INDEX_READ_FAILED`", body = ErrorResponse),
    ))]
pub async fn recording_info(
    State(app): State<AppState>,
    Path(rid): Path<String>,
) -> Result<Json<RecordingInfoResponse>, ApiError> {
    let rec = recording(&app, &rid).await?;
    let dir = PathBuf::from(&rec.segment_dir);
    let ix = read_index(&dir).await?;
    let range = os_dvr::range(&ix);
    Ok(Json(RecordingInfoResponse {
        data: RecordingInfo {
            stream_code: rec.stream_code,
            status: rec.status,
            dvr_range: DvrRange {
                started_at: range.map(|r| r.0),
                last_segment_at: range.map(|r| r.1),
            },
            gaps: ix.gaps,
            segment_count: ix.segment_count,
            total_size_bytes: ix.total_size_bytes,
            disk_usage: disk_usage(&dir).await,
            next_segment: ix.next_seq,
        },
    }))
}

fn with_cors(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

fn playlist_response(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

/// The recording's playlist as stored: `EVENT` while recording, `VOD` with
/// `#EXT-X-ENDLIST` once stopped.
async fn read_playlist(app: &AppState, rid: &str) -> Result<MediaPlaylistText, ApiError> {
    let rec = recording(app, rid).await?;
    let path = PathBuf::from(&rec.segment_dir).join(os_dvr::PLAYLIST);
    let text = tokio::fs::read_to_string(&path).await.map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NO_PLAYLIST",
            format!("recording \"{rid}\" has no playlist"),
        )
    })?;
    Ok(MediaPlaylistText(text))
}

struct MediaPlaylistText(String);

/// Full playlist of the recording (`EVENT` while recording, `VOD` once stopped).
#[utoipa::path(get, path = "/recordings/{rid}/playlist.m3u8", tag = "recordings",
    params(("rid" = String, Path, description = "Recording ID (= stream code)")),
    responses(
        (status = 200, description = "HLS media playlist", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 400, body = ErrorResponse),
        (status = 404, description = "Unknown recording, `NO_PLAYLIST` or `NO_SEGMENTS`", body = ErrorResponse),
    ))]
pub async fn recording_playlist(State(app): State<AppState>, Path(rid): Path<String>) -> Response {
    let result = async {
        let text = read_playlist(&app, &rid).await?.0;
        if MediaPlaylist::parse(&text).segments.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NO_SEGMENTS",
                format!("recording \"{rid}\" has no segments yet"),
            ));
        }
        Ok(playlist_response(text))
    }
    .await;
    with_cors(result.unwrap_or_else(IntoResponse::into_response))
}

fn window_error(e: WindowError) -> ApiError {
    let code = match e {
        WindowError::InvalidFrom(_) => "INVALID_FROM",
        WindowError::InvalidOffset(_) => "INVALID_OFFSET",
        WindowError::InvalidDuration(_) => "INVALID_DURATION",
        WindowError::Both | WindowError::Missing => "INVALID_QUERY",
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
}

/// A window of the recording by wall-clock time, as a VOD playlist:
/// `from=RFC3339` (absolute) or `offset_sec=N` (seconds after the oldest
/// segment's start), plus optional `duration=S` (seconds, > 0). Lists every
/// segment overlapping the window, each with its own
/// `#EXT-X-PROGRAM-DATE-TIME`. Computed per request from the on-disk playlist.
#[utoipa::path(get, path = "/recordings/{rid}/timeshift.m3u8", tag = "recordings",
    params(
        ("rid" = String, Path, description = "Recording ID (= stream code)"),
        ("from" = Option<String>, Query, description = "Window start, RFC 3339 (exclusive with offset_sec)"),
        ("offset_sec" = Option<f64>, Query, description = "Window start, seconds after the recording's oldest segment (>= 0)"),
        ("duration" = Option<f64>, Query, description = "Window length, seconds (> 0); absent = to the end"),
    ),
    responses(
        (status = 200, description = "HLS VOD playlist", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 400, description = "`INVALID_FROM`, `INVALID_OFFSET`, `INVALID_DURATION`, `INVALID_QUERY`", body = ErrorResponse),
        (status = 404, description = "Unknown recording, `NO_PLAYLIST`, `NO_DATA` or `NO_SEGMENTS_IN_RANGE`", body = ErrorResponse),
    ))]
pub async fn recording_timeshift(
    State(app): State<AppState>,
    Path(rid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let window = Window::from_query(
            q.get("from").map(String::as_str),
            q.get("offset_sec").map(String::as_str),
            q.get("duration").map(String::as_str),
        )
        .map_err(window_error)?;
        let text = read_playlist(&app, &rid).await?.0;
        let out = timeshift(&MediaPlaylist::parse(&text), &window).map_err(|e| {
            let code = match e {
                TimeshiftError::NoData => "NO_DATA",
                TimeshiftError::NoSegmentsInRange => "NO_SEGMENTS_IN_RANGE",
            };
            ApiError::new(StatusCode::NOT_FOUND, code, e.to_string())
        })?;
        Ok::<_, ApiError>(playlist_response(out.render()))
    }
    .await;
    with_cors(result.unwrap_or_else(IntoResponse::into_response))
}

/// One segment of the recording (`000042.ts`). Only segment names are
/// served; `Range: bytes=…` gives 206.
#[utoipa::path(get, path = "/recordings/{rid}/{file}", tag = "recordings",
    params(
        ("rid" = String, Path, description = "Recording ID (= stream code)"),
        ("file" = String, Path, description = "Segment name, e.g. `000042.ts`"),
    ),
    responses(
        (status = 200, description = "MPEG-TS segment", content_type = "video/mp2t", body = Vec<u8>),
        (status = 206, description = "Partial content (Range)", content_type = "video/mp2t", body = Vec<u8>),
        (status = 400, description = "Not a segment name (`INVALID_FILE`)", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 416, description = "Range not satisfiable"),
    ))]
pub async fn recording_file(
    State(app): State<AppState>,
    Path((rid, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_cors(
        serve_segment(&app, &rid, &file, &headers)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    )
}

async fn serve_segment(
    app: &AppState,
    rid: &str,
    file: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    check_code(rid, "recording id")?;
    if parse_segment_name(file).is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FILE",
            "not a segment name: six or more digits and \".ts\", e.g. 000042.ts",
        ));
    }
    let rec = app.store.get_recording(rid).await?;
    let path = PathBuf::from(&rec.segment_dir).join(file);
    let not_found = || ApiError::not_found(format!("recording \"{rid}\" has no segment {file}"));
    let data = Bytes::from(tokio::fs::read(&path).await.map_err(|_| not_found())?);
    let mut out = HeaderMap::new();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400, immutable"),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let len = data.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, len));
    Ok(match range {
        None | Some(RangeSpec::Ignore) => (StatusCode::OK, out, data).into_response(),
        Some(RangeSpec::Unsatisfiable) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                out.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::RANGE_NOT_SATISFIABLE, out).into_response()
        }
        Some(RangeSpec::Bytes(start, end)) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                out.insert(header::CONTENT_RANGE, v);
            }
            let body = data.slice(start as usize..=(end.min(len.saturating_sub(1))) as usize);
            (StatusCode::PARTIAL_CONTENT, out, body).into_response()
        }
    })
}
