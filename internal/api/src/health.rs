//! Liveness and readiness probes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// Components that must be up before the server reports ready (listeners
/// register here and flip to ready once bound).
#[derive(Debug, Default)]
pub struct Readiness {
    /// Component name → ready. A std mutex: held for a map access only.
    checks: Mutex<BTreeMap<String, bool>>,
}

impl Readiness {
    pub fn set(&self, component: &str, ready: bool) {
        if let Ok(mut c) = self.checks.lock() {
            c.insert(component.to_string(), ready);
        }
    }

    fn snapshot(&self) -> BTreeMap<String, bool> {
        self.checks.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` / `ready` / `not_ready`.
    pub status: &'static str,
    /// Per-component readiness (readyz only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, bool>,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

/// Readiness: the store answers and every listener is bound.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, body = HealthResponse),
        (status = 503, body = HealthResponse),
    ))]
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let mut checks = app.readiness.snapshot();
    let store_ok = match app.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            false
        }
    };
    checks.insert("store".into(), store_ok);
    let ready = checks.values().all(|ok| *ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(HealthResponse {
            status: if ready { "ready" } else { "not_ready" },
            checks,
        }),
    )
}
