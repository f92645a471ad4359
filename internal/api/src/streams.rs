//! `/streams` routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use os_coordinator::StreamStatus;
use os_domain::{FieldError, Stream, stream::validate_code};
use os_events::EventType;
use os_store::{Precondition, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::body::{JsonBody, merge_patch};
use crate::error::{ApiError, ErrorResponse};

/// `{"data": Stream}`, plus `"reload"` when a running stream was updated.
#[derive(Serialize, ToSchema)]
pub struct StreamResponse {
    pub data: Stream,
    /// What the update did to the running stream (only for a running stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload: Option<os_coordinator::ReloadReport>,
}

/// `{"data": [Stream], "total": N}`
#[derive(Serialize, ToSchema)]
pub struct StreamListResponse {
    pub data: Vec<Stream>,
    pub total: usize,
}

/// `{"data": StreamStatus}`
#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    pub data: StreamStatus,
}

/// How often a merge-patch update is retried when another writer got in between.
const MAX_UPDATE_ATTEMPTS: usize = 8;

fn check_code(code: &str) -> Result<(), ApiError> {
    validate_code(code).map_err(|msg| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_CODE",
            format!("stream code {code:?} {msg}"),
        )
    })
}

/// List all streams, sorted by code.
#[utoipa::path(get, path = "/streams", tag = "streams",
    responses(
        (status = 200, body = StreamListResponse),
        (status = 401, body = ErrorResponse),
        (status = 503, body = ErrorResponse),
    ))]
pub async fn list_streams(
    State(app): State<AppState>,
) -> Result<Json<StreamListResponse>, ApiError> {
    let data: Vec<Stream> = app
        .store
        .list_streams()
        .await?
        .into_iter()
        .map(|s| s.stream)
        .collect();
    Ok(Json(StreamListResponse {
        total: data.len(),
        data,
    }))
}

/// Get one stream.
#[utoipa::path(get, path = "/streams/{code}", tag = "streams",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 200, body = StreamResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn get_stream(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<StreamResponse>, ApiError> {
    check_code(&code)?;
    let stored = app.store.get_stream(&code).await?;
    Ok(Json(StreamResponse {
        reload: None,
        data: stored.stream,
    }))
}

/// Create (201) or update (200) a stream.
///
/// The body is an RFC 7396 JSON merge patch applied to the stored stream
/// (objects merge, arrays replace, `null` removes a field); for a new stream
/// it is the whole document. The code in the path wins over the body.
/// Every validation problem is reported with its JSON path.
#[utoipa::path(put, path = "/streams/{code}", tag = "streams",
    params(("code" = String, Path, description = "Stream code (`A-Za-z0-9_-`, 1-128)")),
    request_body(content = Stream, content_type = "application/json",
        description = "Whole stream (create) or a merge patch of it (update)"),
    responses(
        (status = 200, description = "Updated", body = StreamResponse),
        (status = 201, description = "Created", body = StreamResponse),
        (status = 400, description = "Bad code, malformed JSON, or validation failed (`VALIDATION_FAILED` with every problem and its JSON path in `details`)", body = ErrorResponse),
        (status = 409, description = "Too many concurrent updates", body = ErrorResponse),
        (status = 413, description = "Body over 1 MiB", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    ))]
pub async fn put_stream(
    State(app): State<AppState>,
    Path(code): Path<String>,
    JsonBody(patch): JsonBody,
) -> Result<(StatusCode, Json<StreamResponse>), ApiError> {
    check_code(&code)?;
    if !patch.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "request body must be a JSON object",
        ));
    }
    let _serialised = app.update_lock(&code).lock().await;
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let (mut doc, pre, created_at) = match app.store.get_stream(&code).await {
            Ok(cur) => (
                serde_json::to_value(&cur.stream).map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
                })?,
                Precondition::Version(cur.version),
                cur.stream.created_at,
            ),
            Err(StoreError::NotFound { .. }) => (
                Value::Object(Default::default()),
                Precondition::Absent,
                None,
            ),
            Err(e) => return Err(e.into()),
        };
        merge_patch(&mut doc, &patch);
        if let Value::Object(map) = &mut doc {
            map.insert("code".into(), Value::String(code.clone()));
            // Server-managed fields are never taken from the client.
            map.remove("created_at");
            map.remove("updated_at");
        }
        let mut stream: Stream = serde_path_to_error::deserialize(&doc).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ApiError::validation(vec![FieldError::new(path, e.into_inner().to_string())])
        })?;
        stream.validate().map_err(ApiError::validation)?;
        // What the running server could not apply is refused before
        // anything is saved or touched.
        app.coordinator.check_update(&stream)?;
        let now = Utc::now();
        stream.created_at = Some(created_at.unwrap_or(now));
        stream.updated_at = Some(now);

        match app.store.put_stream(&stream, pre).await {
            Ok(_) => {
                let created = pre == Precondition::Absent;
                let reload = app.coordinator.stream_saved(&stream).await;
                tracing::info!(stream = %code, created, "stream saved");
                if created {
                    app.coordinator.events().emit(
                        EventType::StreamCreated,
                        &code,
                        serde_json::json!({"name": stream.name}),
                    );
                }
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                return Ok((
                    status,
                    Json(StreamResponse {
                        data: stream,
                        reload,
                    }),
                ));
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "CONFLICT",
        format!("stream \"{code}\" is being changed concurrently; retry"),
    ))
}

/// Delete a stream (stopping it first).
#[utoipa::path(delete, path = "/streams/{code}", tag = "streams",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn delete_stream(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_code(&code)?;
    app.store.get_stream(&code).await?;
    app.coordinator.stream_deleted(&code).await;
    app.store.delete_stream(&code).await?;
    tracing::info!(stream = %code, "stream deleted");
    app.coordinator
        .events()
        .emit(EventType::StreamDeleted, &code, serde_json::json!({}));
    Ok(StatusCode::NO_CONTENT)
}

/// Start ingest and publishing. The stream is started again after a server restart.
#[utoipa::path(post, path = "/streams/{code}/start", tag = "streams",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 200, body = StatusResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Disabled or without inputs", body = ErrorResponse),
    ))]
pub async fn start_stream(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    check_code(&code)?;
    let data = app.coordinator.start(&code).await?;
    Ok(Json(StatusResponse { data }))
}

/// Stop a stream. It stays stopped across server restarts.
#[utoipa::path(post, path = "/streams/{code}/stop", tag = "streams",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 200, body = StatusResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn stop_stream(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    check_code(&code)?;
    let data = app.coordinator.stop(&code).await?;
    Ok(Json(StatusResponse { data }))
}

/// Switch a running stream to one of its inputs now (manual failover).
/// A healthy input takes over at its next keyframe and stays active while it
/// is healthy; a cold backup is started first. 409 when the input is not
/// healthy or the stream is not running, 404 for an unknown priority.
#[utoipa::path(post, path = "/streams/{code}/inputs/{priority}/activate", tag = "streams",
    params(
        ("code" = String, Path, description = "Stream code"),
        ("priority" = u32, Path, description = "Priority of the input"),
    ),
    responses(
        (status = 200, body = StatusResponse),
        (status = 404, description = "Unknown stream or input", body = ErrorResponse),
        (status = 409, description = "Input degraded / not connected, or stream not running", body = ErrorResponse),
    ))]
pub async fn activate_input(
    State(app): State<AppState>,
    Path((code, priority)): Path<(String, String)>,
) -> Result<Json<StatusResponse>, ApiError> {
    check_code(&code)?;
    let priority: u32 = priority.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PRIORITY",
            format!("input priority must be a non-negative integer, got \"{priority}\""),
        )
    })?;
    let data = app.coordinator.activate(&code, priority).await?;
    Ok(Json(StatusResponse { data }))
}

/// Live runtime status.
#[utoipa::path(get, path = "/streams/{code}/status", tag = "streams",
    params(("code" = String, Path, description = "Stream code")),
    responses(
        (status = 200, body = StatusResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn stream_status(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    check_code(&code)?;
    let data = app.coordinator.status(&code).await?;
    Ok(Json(StatusResponse { data }))
}
