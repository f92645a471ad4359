//! `/hooks` routes: where lifecycle events are delivered.
//!
//! `POST /hooks` creates (the id comes from the body), `PUT /hooks/{hid}`
//! updates an existing hook with an RFC 7396 JSON merge patch (like
//! `PUT /streams/{code}`; omit `secret` to keep it). Changes apply to the
//! next event: the dispatcher reads the hooks from the store for every event.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use os_domain::{FieldError, Hook, stream::validate_code};
use os_store::Precondition;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::body::{JsonBody, merge_patch};
use crate::error::{ApiError, ErrorResponse};

/// `{"data": Hook}`
#[derive(Serialize, ToSchema)]
pub struct HookResponse {
    pub data: Hook,
}

/// `{"data": [Hook], "total": N}`
#[derive(Serialize, ToSchema)]
pub struct HookListResponse {
    pub data: Vec<Hook>,
    pub total: usize,
}

/// Result of a test delivery (all attempts).
#[derive(Serialize, ToSchema)]
pub struct TestDelivery {
    /// The receiver answered 2xx.
    pub delivered: bool,
    /// HTTP status of the last answer; `null` when none came.
    pub status: Option<u16>,
    /// Attempts made (1 + retries, per the hook's `max_retries`).
    pub attempts: u32,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `{"data": TestDelivery}`
#[derive(Serialize, ToSchema)]
pub struct TestDeliveryResponse {
    pub data: TestDelivery,
}

fn check_id(id: &str) -> Result<(), ApiError> {
    validate_code(id).map_err(|msg| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ID",
            format!("hook id {id:?} {msg}"),
        )
    })
}

/// Decode and validate a hook document, reporting every problem with its path.
fn decode(doc: &Value) -> Result<Hook, ApiError> {
    if !doc.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "request body must be a JSON object",
        ));
    }
    let hook: Hook = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ApiError::validation(vec![FieldError::new(path, e.into_inner().to_string())])
    })?;
    hook.validate().map_err(ApiError::validation)?;
    Ok(hook)
}

/// List all hooks, sorted by id.
#[utoipa::path(get, path = "/hooks", tag = "hooks",
    responses(
        (status = 200, body = HookListResponse),
        (status = 401, body = ErrorResponse),
        (status = 503, body = ErrorResponse),
    ))]
pub async fn list_hooks(State(app): State<AppState>) -> Result<Json<HookListResponse>, ApiError> {
    let data = app.store.list_hooks().await?;
    Ok(Json(HookListResponse {
        total: data.len(),
        data,
    }))
}

/// Register a hook. The id is taken from the body.
#[utoipa::path(post, path = "/hooks", tag = "hooks",
    request_body(content = Hook, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = HookResponse),
        (status = 400, description = "Malformed JSON or validation failed (`VALIDATION_FAILED` with every problem and its JSON path in `details`)", body = ErrorResponse),
        (status = 409, description = "A hook with this id exists", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    ))]
pub async fn create_hook(
    State(app): State<AppState>,
    JsonBody(doc): JsonBody,
) -> Result<(StatusCode, Json<HookResponse>), ApiError> {
    let hook = decode(&doc)?;
    app.store.put_hook(&hook, Precondition::Absent).await?;
    tracing::info!(hook = %hook.id, kind = ?hook.hook_type, "hook created");
    Ok((StatusCode::CREATED, Json(HookResponse { data: hook })))
}

/// Get one hook.
#[utoipa::path(get, path = "/hooks/{hid}", tag = "hooks",
    params(("hid" = String, Path, description = "Hook id")),
    responses(
        (status = 200, body = HookResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn get_hook(
    State(app): State<AppState>,
    Path(hid): Path<String>,
) -> Result<Json<HookResponse>, ApiError> {
    check_id(&hid)?;
    Ok(Json(HookResponse {
        data: app.store.get_hook(&hid).await?,
    }))
}

/// Update a hook with an RFC 7396 JSON merge patch (objects merge, arrays
/// replace, `null` resets a field to its default). The id in the path wins.
#[utoipa::path(put, path = "/hooks/{hid}", tag = "hooks",
    params(("hid" = String, Path, description = "Hook id")),
    request_body(content = Hook, content_type = "application/json",
        description = "A merge patch of the hook"),
    responses(
        (status = 200, body = HookResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 415, body = ErrorResponse),
    ))]
pub async fn update_hook(
    State(app): State<AppState>,
    Path(hid): Path<String>,
    JsonBody(patch): JsonBody,
) -> Result<Json<HookResponse>, ApiError> {
    check_id(&hid)?;
    if !patch.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "request body must be a JSON object",
        ));
    }
    let _serialised = app.update_lock(&hid).lock().await;
    let current = app.store.get_hook(&hid).await?;
    let mut doc = serde_json::to_value(&current)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    merge_patch(&mut doc, &patch);
    if let Value::Object(map) = &mut doc {
        map.insert("id".into(), Value::String(hid.clone()));
    }
    let hook = decode(&doc)?;
    // Existence was checked under the update lock.
    app.store.put_hook(&hook, Precondition::Any).await?;
    tracing::info!(hook = %hid, "hook updated");
    Ok(Json(HookResponse { data: hook }))
}

/// Delete a hook. Events already queued for it are still delivered.
#[utoipa::path(delete, path = "/hooks/{hid}", tag = "hooks",
    params(("hid" = String, Path, description = "Hook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ))]
pub async fn delete_hook(
    State(app): State<AppState>,
    Path(hid): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&hid)?;
    app.store.get_hook(&hid).await?;
    app.store.delete_hook(&hid).await?;
    tracing::info!(hook = %hid, "hook deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test event to the hook now and report the outcome.
///
/// The event is `stream.created` with `stream_code "_test_"` and
/// `data {"test": true, "hook_id"}`, sent directly (not queued) with the
/// hook's timeout and retries, whether the hook is enabled or not. A failed
/// delivery is still a 200 answer: `delivered` is false and `error` says why.
#[utoipa::path(post, path = "/hooks/{hid}/test", tag = "hooks",
    params(("hid" = String, Path, description = "Hook id")),
    responses(
        (status = 200, description = "Delivery attempted; see `delivered`", body = TestDeliveryResponse),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 503, description = "The hook dispatcher is not running", body = ErrorResponse),
    ))]
pub async fn test_hook(
    State(app): State<AppState>,
    Path(hid): Path<String>,
) -> Result<Json<TestDeliveryResponse>, ApiError> {
    check_id(&hid)?;
    let hook = app.store.get_hook(&hid).await?;
    let Some(dispatcher) = &app.hooks else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "HOOKS_UNAVAILABLE",
            "the hook dispatcher is not running",
        ));
    };
    let r = dispatcher.test(&hook).await;
    tracing::info!(hook = %hid, delivered = r.delivered, attempts = r.attempts, "hook test");
    Ok(Json(TestDeliveryResponse {
        data: TestDelivery {
            delivered: r.delivered,
            status: r.status,
            attempts: r.attempts,
            error: r.error,
        },
    }))
}
