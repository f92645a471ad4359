//! The one error type of the API and its JSON envelope:
//! `{"error":{"code":"UPPER_SNAKE","message":"…","details":[{"path","message"}]}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use os_coordinator::CoordError;
use os_domain::FieldError;
use os_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `VALIDATION_FAILED`.
    #[schema(example = "VALIDATION_FAILED")]
    pub code: &'static str,
    pub message: String,
    /// Per-field problems (validation errors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// Error envelope of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                details: Vec::new(),
            },
        }
    }

    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => one.to_string(),
            many => format!("{} problems; see details", many.len()),
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                code: "VALIDATION_FAILED",
                message,
                details,
            },
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorResponse { error: self.body })).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "CONFLICT", e.to_string())
            }
            StoreError::Unavailable(_) => {
                tracing::error!(error = %e, "storage failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STORE_UNAVAILABLE",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<CoordError> for ApiError {
    fn from(e: CoordError) -> Self {
        match e {
            CoordError::Store(s) => s.into(),
            CoordError::Disabled(_) => {
                Self::new(StatusCode::CONFLICT, "STREAM_DISABLED", e.to_string())
            }
            CoordError::NoInputs(_) => Self::new(StatusCode::CONFLICT, "NO_INPUTS", e.to_string()),
            CoordError::NotRunning(_) => {
                Self::new(StatusCode::CONFLICT, "STREAM_NOT_RUNNING", e.to_string())
            }
            CoordError::UnknownInput { .. } => {
                Self::new(StatusCode::NOT_FOUND, "INPUT_NOT_FOUND", e.to_string())
            }
            CoordError::Conflict(_) => Self::new(StatusCode::CONFLICT, "CONFLICT", e.to_string()),
            CoordError::Transcoder(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "TRANSCODER_UNAVAILABLE",
                e.to_string(),
            ),
            CoordError::InputNotHealthy(_) => {
                Self::new(StatusCode::CONFLICT, "INPUT_NOT_HEALTHY", e.to_string())
            }
        }
    }
}
