//! Provider webhooks: raw bytes in, the provider's expected answer out.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router as AxumRouter};
use serde_json::json;
use switchboard_core::{HandshakeReply, WebhookRequest};

use super::AppState;
use switchboard_router::error::RouterError;

pub(super) fn routes() -> AxumRouter<AppState> {
    AxumRouter::new()
        .route("/webhooks/{channel}", post(receive).get(handshake))
        .route("/webhooks/{channel}/{*rest}", post(receive_nested))
}

fn request(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> WebhookRequest {
    WebhookRequest {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        memo: Default::default(),
    }
}

async fn receive(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, channel, request(Method::POST, &uri, headers, body)).await
}

async fn receive_nested(
    State(state): State<AppState>,
    Path((channel, _rest)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, channel, request(Method::POST, &uri, headers, body)).await
}

async fn handle(state: AppState, channel: String, req: WebhookRequest) -> Response {
    match state.router.receive_webhook(&channel, req).await {
        Ok(ack) => {
            metrics::counter!("switchboard_webhooks_received_total", "channel" => channel.clone())
                .increment(u64::try_from(ack.stored).unwrap_or(0));
            if ack.duplicates > 0 {
                metrics::counter!("switchboard_webhooks_duplicate_total", "channel" => channel)
                    .increment(u64::try_from(ack.duplicates).unwrap_or(0));
            }
            let status = StatusCode::from_u16(ack.reply.status).unwrap_or(StatusCode::OK);
            (
                status,
                [(header::CONTENT_TYPE, ack.reply.content_type)],
                ack.reply.body,
            )
                .into_response()
        }
        Err(e) => {
            let reason = e.code();
            // Only registered channels become label values: a path segment from anyone on
            // the internet must not create a metric series each.
            let label = if matches!(e, RouterError::NotFound(_)) {
                "unknown".to_owned()
            } else {
                channel.clone()
            };
            metrics::counter!("switchboard_webhooks_rejected_total", "channel" => label, "reason" => reason)
                .increment(1);
            if matches!(e, RouterError::Database(_)) {
                tracing::error!(channel, error = %e, "Webhook could not be stored.");
            } else {
                tracing::info!(channel, reason, "Webhook refused.");
            }
            error_response(&e)
        }
    }
}

async fn handshake(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let req = request(Method::GET, &uri, headers, Bytes::new());
    match state
        .router
        .inbound()
        .answer_handshake(&channel, &req)
        .await
    {
        Ok(HandshakeReply::Accept(challenge)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            challenge,
        )
            .into_response(),
        Ok(HandshakeReply::Reject) => StatusCode::FORBIDDEN.into_response(),
        Ok(HandshakeReply::NotSupported) => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        Err(e) => error_response(&e),
    }
}

/// The JSON error body api.md fixes.
pub(crate) fn error_response(e: &RouterError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match e {
        // Never echo database or crypto internals to callers.
        RouterError::Database(e) if switchboard_router::store::is_data_exception(e) => {
            "the database refused a value of this request".to_owned()
        }
        RouterError::Database(_) => "the database is unavailable; retry later".to_owned(),
        RouterError::Crypto(_) => "stored credentials could not be read".to_owned(),
        other => other.to_string(),
    };
    (
        status,
        Json(json!({"error": {"code": e.code(), "message": message}})),
    )
        .into_response()
}
