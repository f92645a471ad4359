//! The REST API.
//!
//! Routes (all JSON; see `api/openapi.json` or `/swagger/` for the schema):
//!
//! | route                               | auth  | module      |
//! |-------------------------------------|-------|-------------|
//! | `GET /streams`, `GET\|PUT\|DELETE /streams/{code}` | token | [`streams`] |
//! | `POST /streams/{code}/start\|stop`, `GET /streams/{code}/status` | token | [`streams`] |
//! | `GET\|POST /hooks`, `GET\|PUT\|DELETE /hooks/{hid}`, `POST /hooks/{hid}/test` | token | [`hooks`] |
//! | `GET /healthz`, `GET /readyz`       | open  | [`health`]  |
//! | `GET /swagger/`, `GET /swagger/openapi.json` | open | Swagger UI |
//! | `GET\|HEAD /{code}/{file}` (`.m3u8 .ts .mpd .m4s .mp4`) | open | [`media`] |
//! | `POST /streams/{code}/recordings/start\|stop`, `GET /streams/{code}/recordings`, `GET\|DELETE /recordings/{rid}`, `GET /recordings/{rid}/info` | token | [`recordings`] |
//! | `GET /recordings/{rid}/playlist.m3u8\|timeshift.m3u8\|{file}` | open | [`recordings`] |
//!
//! "token" routes need `Authorization: Bearer <server.api_token>` when a
//! token is configured. Every error is `{"error":{"code","message","details"}}`
//! ([`error`]); bodies are JSON of at most 1 MiB ([`body`]).

pub mod body;
pub mod config;
pub mod error;
pub mod health;
pub mod hooks;
pub mod media;
pub mod recordings;
pub mod streams;

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use os_coordinator::Coordinator;
use os_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any as AnyOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDoc, SecurityRequirement};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use health::Readiness;

use crate::error::ApiError;

/// Everything a handler needs. Cheap to clone (all shared).
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub coordinator: Arc<Coordinator>,
    pub readiness: Arc<Readiness>,
    /// `server.api_token`; `None` = API open.
    pub api_token: Option<Arc<str>>,
    /// Serialises read-modify-write updates of one stream within this
    /// process, so concurrent merge patches queue instead of exhausting their
    /// optimistic retries. The store's version check still guards against
    /// writers in other processes.
    update_locks: Arc<[tokio::sync::Mutex<()>]>,
    /// Packager output directories for the media route; `None` = not served.
    pub(crate) media: Option<Arc<media::MediaDirs>>,
    /// The hook dispatcher, for `POST /hooks/{hid}/test`; `None` = not running.
    pub hooks: Option<Arc<os_hooks::Dispatcher>>,
    /// Runtime configuration (`GET|POST /config`); `None` = not available.
    pub config: Option<Arc<dyn config::ConfigControl>>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        coordinator: Arc<Coordinator>,
        readiness: Arc<Readiness>,
        api_token: Option<Arc<str>>,
    ) -> Self {
        Self {
            store,
            coordinator,
            readiness,
            api_token,
            update_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            media: None,
            hooks: None,
            config: None,
        }
    }

    /// Attach the runtime configuration control (enables `GET|POST /config`).
    pub fn with_config(mut self, control: Arc<dyn config::ConfigControl>) -> Self {
        self.config = Some(control);
        self
    }

    /// Serve `{hls}/{code}/*.m3u8|ts` and `{dash}/{code}/*.mpd|m4s|mp4`
    /// at `GET /{code}/{file}`.
    pub fn with_media_dirs(mut self, hls: std::path::PathBuf, dash: std::path::PathBuf) -> Self {
        self.media = Some(Arc::new(media::MediaDirs::new(hls, dash)));
        self
    }

    /// Attach the hook dispatcher (enables `POST /hooks/{hid}/test`).
    pub fn with_hooks(mut self, dispatcher: Arc<os_hooks::Dispatcher>) -> Self {
        self.hooks = Some(dispatcher);
        self
    }

    /// The update lock of one stream (striped: codes may share a lock).
    pub(crate) fn update_lock(&self, code: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(code);
        &self.update_locks[(hash as usize) % self.update_locks.len()]
    }
}

/// Router options taken from the server config.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouterOptions {
    /// Send permissive CORS headers (browser players on other origins).
    pub cors: bool,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "open-streamer",
        description = "REST API of open-streamer, a live media server: streams with prioritised inputs, \
transcoding, HLS/DASH/RTSP/RTMP/SRT outputs, push-out and DVR.\n\n\
Errors are `{\"error\":{\"code\":\"UPPER_SNAKE\",\"message\":\"…\",\"details\":[{\"path\",\"message\"}]}}`.",
        license(name = "MIT")
    ),
    tags(
        (name = "streams", description = "Stream configuration and lifecycle"),
        (name = "recordings", description = "DVR recordings, playback and timeshift"),
        (name = "hooks", description = "Webhooks receiving lifecycle events"),
        (name = "config", description = "Server configuration at runtime"),
        (name = "health", description = "Liveness and readiness probes"),
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Routes that need no token: probes and recording playback.
fn is_open_path(path: &str) -> bool {
    matches!(
        path,
        "/healthz"
            | "/readyz"
            | "/recordings/{rid}/playlist.m3u8"
            | "/recordings/{rid}/timeshift.m3u8"
            | "/recordings/{rid}/{file}"
    )
}

/// Declares the bearer scheme and marks every route outside `health` and
/// recording playback as needing it.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Required when server.api_token is set"))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if is_open_path(path) {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![SecurityRequirement::new::<_, _, &str>("bearer", [])]);
            }
        }
    }
}

fn api_routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let protected = OpenApiRouter::new()
        .routes(routes!(streams::list_streams))
        .routes(routes!(
            streams::get_stream,
            streams::put_stream,
            streams::delete_stream
        ))
        .routes(routes!(streams::start_stream))
        .routes(routes!(streams::stop_stream))
        .routes(routes!(streams::stream_status))
        .routes(routes!(streams::activate_input))
        .routes(routes!(hooks::list_hooks, hooks::create_hook))
        .routes(routes!(
            hooks::get_hook,
            hooks::update_hook,
            hooks::delete_hook
        ))
        .routes(routes!(hooks::test_hook))
        .routes(routes!(config::get_config, config::post_config))
        .routes(routes!(recordings::start_recording))
        .routes(routes!(recordings::stop_recording))
        .routes(routes!(recordings::list_recordings))
        .routes(routes!(
            recordings::get_recording,
            recordings::delete_recording
        ))
        .routes(routes!(recordings::recording_info));
    let open = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        // Playback: players cannot send a token.
        .routes(routes!(recordings::recording_playlist))
        .routes(routes!(recordings::recording_timeshift))
        .routes(routes!(recordings::recording_file));
    (protected, open)
}

/// The OpenAPI document, exactly as served at `/swagger/openapi.json`.
pub fn openapi() -> OpenApiDoc {
    let (protected, open) = api_routes();
    let (_, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(protected)
        .merge(open)
        .split_for_parts();
    doc
}

/// Build the HTTP router.
pub fn router(state: AppState, opts: RouterOptions) -> Router {
    let (protected, open) = api_routes();
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let (routes, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(protected)
        .merge(open)
        .split_for_parts();

    let mut app = routes
        .merge(SwaggerUi::new("/swagger").url("/swagger/openapi.json", doc))
        // Static first segments (`/streams`, `/swagger`, `/healthz`) win over
        // this parameter route; it is deliberately not in the OpenAPI document
        // (a file route, not part of the JSON API).
        .route("/{code}/{*file}", axum::routing::get(media::serve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(log_requests))
        .layer(CatchPanicLayer::custom(panic_response));
    if opts.cors {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AnyOrigin)
                .allow_methods(AnyOrigin)
                .allow_headers(AnyOrigin)
                .expose_headers(AnyOrigin),
        );
    }
    app
}

async fn require_token(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = &app.api_token else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("invalid bearer token"),
        None => unauthorized("missing \"Authorization: Bearer <token>\" header"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

/// Compare without leaking the position of the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

fn panic_response(_err: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        "internal error",
    )
    .into_response()
}

/// Media files are requested many times a second per viewer; they are not logged.
fn is_media_path(path: &str) -> bool {
    const MEDIA: &[&str] = &[".ts", ".m4s", ".mp4", ".m3u8", ".mpd", ".aac", ".vtt"];
    MEDIA.iter().any(|ext| path.ends_with(ext))
}

async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    if !is_media_path(&path) {
        tracing::info!(
            method = %method,
            path = %path,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_paths_are_recognised() {
        assert!(is_media_path("/demo/seg_000001.ts"));
        assert!(is_media_path("/demo/index.m3u8"));
        assert!(!is_media_path("/streams/demo"));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
