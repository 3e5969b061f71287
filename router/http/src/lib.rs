//! The HTTP surface (axum): provider webhooks, monitors, the product API.
//!
//! Every route is bounded: bodies over 1 MiB answer 413, requests time out, panics become
//! 500s, every error answers in the JSON error shape (`errors.rs`), and `Authorization` and
//! signature headers are marked sensitive so access logs never show them. `serve.rs` bounds
//! connections and the time to send headers.

mod api;
mod errors;
mod health;
mod serve;
mod webhooks;

use std::time::Duration;

use axum::Router as AxumRouter;
use axum::http::{HeaderName, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use switchboard_router::router::Router;

pub use errors::REFUSALS_METRIC;
pub use serve::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, ServeLimits, raise_open_files_limit,
    serve,
};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a request may take, body included, before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The same for a media upload (up to 100 MB: 30 s would need 27 Mbit/s).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub router: Router,
    pub metrics: Option<PrometheusHandle>,
    pub(crate) health_cache: health::ChannelHealthCache,
    request_timeout: Duration,
    upload_timeout: Duration,
}

impl AppState {
    pub fn new(router: Router, metrics: Option<PrometheusHandle>) -> Self {
        Self {
            router,
            metrics,
            health_cache: health::ChannelHealthCache::default(),
            request_timeout: REQUEST_TIMEOUT,
            upload_timeout: UPLOAD_TIMEOUT,
        }
    }

    /// Other timeouts than [`REQUEST_TIMEOUT`] and [`UPLOAD_TIMEOUT`] (tests).
    #[must_use]
    pub fn with_timeouts(mut self, request: Duration, upload: Duration) -> Self {
        self.request_timeout = request;
        self.upload_timeout = upload;
        self
    }
}

/// The whole application.
pub fn app(state: AppState) -> AxumRouter {
    let request_id = HeaderName::from_static("x-request-id");
    let (request_timeout, upload_timeout) = (state.request_timeout, state.upload_timeout);
    // The 1 MiB limit and the 30 s timeout wrap every route but media uploads, which
    // bound their size themselves and may take minutes on a slow link.
    let limited = AxumRouter::new()
        .merge(health::routes())
        .merge(webhooks::routes())
        .merge(api::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ));
    let uploads = api::upload_routes().layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        upload_timeout,
    ));
    AxumRouter::new()
        .merge(uploads)
        .merge(limited)
        .with_state(state)
        .layer(axum::middleware::from_fn(refuse_nul_paths))
        .layer(CatchPanicLayer::new())
        // Outside every other source of error responses, so they all leave as JSON.
        .layer(axum::middleware::map_response(errors::json_errors))
        // Log the path only: query strings carry secrets (Meta's hub.verify_token) and
        // personal data (?phone=).
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<axum::body::Body>| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }).on_failure(log_failure))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            HeaderName::from_static("x-twilio-signature"),
            HeaderName::from_static("x-hub-signature-256"),
        ]))
}

/// A path that spells U+0000 (`%00`) names nothing Switchboard has (PostgreSQL's `text`
/// cannot even hold it): 404 before any handler or look-up.
async fn refuse_nul_paths(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if switchboard_core::spells_nul(request.uri().path().as_bytes()) {
        let body =
            serde_json::json!({"error": {"code": "not_found", "message": "no such resource"}});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    next.run(request).await
}

/// The access log's line for a failed response. A 503 is an answer, not an incident: it
/// is what a monitor polling `/health` or `/health/channels` gets while something is down,
/// and the handler logs the cause once (the health checks on each change of state, the API
/// each database error); an `ERROR` line per poll would bury everything else. Other
/// server errors stay `ERROR`.
fn log_failure(
    failure: tower_http::classify::ServerErrorsFailureClass,
    latency: Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    let latency_ms = latency.as_millis();
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms, "answered 503");
        }
        other => tracing::error!(classification = %other, latency_ms, "response failed"),
    }
}
