//! `GET /config` and `POST /config`: the server's effective configuration,
//! and changes to it at runtime. The server binary implements
//! [`ConfigControl`] (it owns the listeners); this module only routes.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorResponse};

/// What a configuration change did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ConfigApplied {
    /// Changed keys, all applied (e.g. `listeners.rtmp.port`).
    pub applied: Vec<String>,
}

/// A boxed future (keeps the trait object-safe without extra crates).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads and changes the running server's configuration.
pub trait ConfigControl: Send + Sync {
    /// The effective configuration (secrets redacted) and the bound
    /// listener addresses.
    fn effective(&self) -> ConfigView;
    /// Merge `patch` (RFC 7396) onto the effective configuration, validate
    /// it, and apply it: a listener whose address changed is rebound (the
    /// new socket is bound before the old one is released; a bind failure
    /// changes nothing).
    fn apply(&self, patch: Value) -> BoxFuture<'_, Result<(ConfigView, ConfigApplied), ApiError>>;
}

/// `GET /config` data.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConfigView {
    /// The effective configuration (same keys as `config.yaml`); secrets
    /// (`server.api_token`, passwords in DSNs/URIs) replaced by `"***"`.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Where each listener is bound now (`null` when disabled).
    pub listeners: ListenerAddrs,
    /// Hardware backends (`transcoder.global.hw_accel` values) usable on
    /// this host, from the FFmpeg probe at start-up.
    pub hw_accels: Vec<String>,
    /// The FFmpeg probe at start-up: version, hwaccels, every backend with
    /// why it is unavailable (`null` when FFmpeg could not be run).
    pub transcoder: Option<os_coordinator::Probe>,
}

impl ConfigView {
    /// Add the transcoder probe of `app`.
    fn with_probe(mut self, app: &AppState) -> Self {
        let probe = app.coordinator.transcoders().probe();
        self.hw_accels = probe.as_ref().map(|p| p.available()).unwrap_or_default();
        self.transcoder = probe.map(|p| (*p).clone());
        self
    }
}

/// Bound addresses of the listeners.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ListenerAddrs {
    pub http: Option<String>,
    pub rtmp: Option<String>,
    pub srt: Option<String>,
    pub rtsp: Option<String>,
}

/// `{"data": ConfigView}`
#[derive(Serialize, ToSchema)]
pub struct ConfigResponse {
    pub data: ConfigView,
}

/// `{"data": ConfigView, "applied": ConfigApplied}`
#[derive(Serialize, ToSchema)]
pub struct ConfigUpdateResponse {
    pub data: ConfigView,
    pub changes: ConfigApplied,
}

fn control(app: &AppState) -> Result<&dyn ConfigControl, ApiError> {
    app.config.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CONFIG_UNAVAILABLE",
            "runtime configuration is not available in this server",
        )
    })
}

/// The effective server configuration and bound listeners.
#[utoipa::path(get, path = "/config", tag = "config",
    responses((status = 200, body = ConfigResponse)))]
pub async fn get_config(State(app): State<AppState>) -> Result<Json<ConfigResponse>, ApiError> {
    Ok(Json(ConfigResponse {
        data: control(&app)?.effective().with_probe(&app),
    }))
}

/// Change the server configuration at runtime with a merge patch of it
/// (e.g. `{"listeners":{"rtmp":{"port":1936}}}`). A listener whose address
/// (or `enabled`, or SRT latency) changed is rebound without touching the
/// others or any stream. Keys that cannot change while the server runs
/// (storage, buffer, publisher, …) are refused with 409 `RESTART_REQUIRED`
/// naming them, and nothing is applied. Changes last until the server
/// restarts (put them in `config.yaml` to keep them).
#[utoipa::path(post, path = "/config", tag = "config",
    request_body(content = Object, content_type = "application/json",
        description = "RFC 7396 merge patch of the configuration"),
    responses(
        (status = 200, body = ConfigUpdateResponse),
        (status = 400, description = "Invalid key or value (`VALIDATION_FAILED` with the key path)", body = ErrorResponse),
        (status = 409, description = "A new listener address cannot be bound (`ADDRESS_IN_USE`), or a key needs a restart (`RESTART_REQUIRED`); nothing changed", body = ErrorResponse),
    ))]
pub async fn post_config(
    State(app): State<AppState>,
    JsonBody(patch): JsonBody,
) -> Result<Json<ConfigUpdateResponse>, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "request body must be a JSON object",
        ));
    }
    let (data, changes) = control(&app)?.apply(patch).await?;
    Ok(Json(ConfigUpdateResponse {
        data: data.with_probe(&app),
        changes,
    }))
}
