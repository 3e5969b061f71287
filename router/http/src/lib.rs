//! The HTTP surface (axum): provider webhooks, monitors, the product API.
//!
//! Every route is bounded: bodies over 1 MiB answer 413, requests time out, panics become
//! 500s, every error answers in the JSON error shape (`errors.rs`), and `Authorization`,
//! `Cookie` and the headers each registered channel declares (its webhook signature) are
//! marked sensitive so access logs never show them. `serve.rs` bounds connections and the
//! time to send headers. Nothing here names a channel: what differs per channel is read
//! from the adapters the router has.

mod api;
mod console;
mod errors;
mod health;
mod serve;
mod webhooks;

use std::sync::Arc;
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
use switchboard_router::tenancy::registry::AdapterRegistry;

pub use console::StreamCloser;
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

/// Shared state of the HTTP handlers: one `Arc`, since every request clones it (once per
/// extractor and middleware that takes it) and a clone of the fields was an atomic count per
/// field (BENCHMARKS.md, "Session 11").
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// What [`AppState`] shares (read through `Deref`).
#[derive(Clone)]
pub struct SharedState {
    pub router: Router,
    pub metrics: Option<PrometheusHandle>,
    pub(crate) health_cache: health::ChannelHealthCache,
    /// `GET /openapi.json`, built from the router's channels once.
    pub(crate) openapi: bytes::Bytes,
    request_timeout: Duration,
    upload_timeout: Duration,
    /// Ends the console's event streams when the server begins to stop.
    pub(crate) stream_closer: StreamCloser,
}

impl AppState {
    pub fn new(router: Router, metrics: Option<PrometheusHandle>) -> Self {
        Self(Arc::new(SharedState {
            openapi: api::openapi::serialized(router.adapters()),
            router,
            metrics,
            health_cache: health::ChannelHealthCache::default(),
            request_timeout: REQUEST_TIMEOUT,
            upload_timeout: UPLOAD_TIMEOUT,
            stream_closer: StreamCloser::default(),
        }))
    }

    /// What ends the console's open event streams (Server-Sent Events never finish on
    /// their own): call [`StreamCloser::close`] when shutdown begins, so a graceful
    /// shutdown does not wait for browsers to leave.
    pub fn stream_closer(&self) -> StreamCloser {
        self.stream_closer.clone()
    }

    /// Other timeouts than [`REQUEST_TIMEOUT`] and [`UPLOAD_TIMEOUT`] (tests).
    #[must_use]
    pub fn with_timeouts(mut self, request: Duration, upload: Duration) -> Self {
        let shared = Arc::make_mut(&mut self.0);
        shared.request_timeout = request;
        shared.upload_timeout = upload;
        self
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The whole application.
pub fn app(state: AppState) -> AxumRouter {
    let request_id = HeaderName::from_static("x-request-id");
    let (request_timeout, upload_timeout) = (state.request_timeout, state.upload_timeout);
    let sensitive = sensitive_headers(state.router.adapters());
    // The 1 MiB limit and the 30 s timeout wrap every route but media uploads, which
    // bound their size themselves and may take minutes on a slow link.
    let limited = AxumRouter::new()
        .merge(health::routes())
        .merge(webhooks::routes())
        .merge(console::routes())
        .merge(api::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ));
    let uploads = api::upload_routes()
        .merge(
            console::upload_routes()
                .layer(axum::extract::DefaultBodyLimit::max(
                    console::MAX_FORM_BYTES,
                ))
                .layer(RequestBodyLimitLayer::new(console::MAX_FORM_BYTES)),
        )
        .layer(TimeoutLayer::with_status_code(
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
        // Log the path only: query strings carry secrets (a webhook handshake's verify
        // token) and personal data (?phone=).
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<axum::body::Body>| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }).on_failure(log_failure))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(sensitive)
}

/// Marks the request headers that carry secrets as sensitive, so no log shows them:
/// `Authorization`, `Cookie`, and every header a registered channel declares
/// ([`switchboard_core::ChannelAdapter::sensitive_headers`]).
fn sensitive_headers(adapters: &AdapterRegistry) -> SetSensitiveRequestHeadersLayer {
    let mut names = vec![header::AUTHORIZATION, header::COOKIE];
    for adapter in adapters.iter() {
        for declared in adapter.sensitive_headers() {
            match HeaderName::from_bytes(declared.as_bytes()) {
                Ok(name) if !names.contains(&name) => names.push(name),
                Ok(_) => {}
                // No request can carry a header with this name, so there is nothing to hide.
                Err(_) => tracing::error!(
                    channel = %adapter.channel(),
                    header = declared,
                    "An adapter declares a sensitive header that is not a valid header name."
                ),
            }
        }
    }
    SetSensitiveRequestHeadersLayer::new(names)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use switchboard_core::ChannelId;
    use switchboard_core::testing::{FakeAdapter, SIGNATURE_HEADER};
    use tower::{Layer, ServiceExt};

    use super::*;

    /// The headers the layer built from a registry marks sensitive, of those in `request`.
    async fn marked(adapters: &AdapterRegistry, request: Request<Body>) -> Vec<String> {
        let service = sensitive_headers(adapters).layer(tower::service_fn(
            |request: Request<Body>| async move {
                let names: Vec<String> = request
                    .headers()
                    .iter()
                    .filter(|(_, value)| value.is_sensitive())
                    .map(|(name, _)| name.as_str().to_owned())
                    .collect();
                Ok::<_, std::convert::Infallible>(axum::http::Response::new(names))
            },
        ));
        service.oneshot(request).await.unwrap().into_body()
    }

    fn request() -> Request<Body> {
        Request::builder()
            .header("authorization", "Bearer sbk_x")
            .header("cookie", "c=1")
            .header(SIGNATURE_HEADER, "s3cr3t")
            .header("x-other-signature", "s3cr3t")
            .header("user-agent", "provider")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn the_redacted_headers_are_the_registered_adapters_declarations() {
        let mut registry = AdapterRegistry::new();
        assert_eq!(
            marked(&registry, request()).await,
            ["authorization", "cookie"]
        );
        registry.register(Arc::new(FakeAdapter::new()));
        // A second channel declaring the same header adds nothing twice.
        registry.register(Arc::new(FakeAdapter::named(ChannelId::new_static(
            "fake-2",
        ))));
        assert_eq!(
            marked(&registry, request()).await,
            ["authorization", "cookie", SIGNATURE_HEADER]
        );
    }
}
