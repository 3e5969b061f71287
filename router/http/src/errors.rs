//! One error shape for every answer (api.md, "Errors"): whatever produced an error response
//! — a handler, an axum extractor's rejection, tower-http's 408 and 413, a routing miss, a
//! caught panic — it leaves the app as `{"error":{"code","message"}}`. Handlers answer
//! JSON errors themselves; [`json_errors`] reshapes the rest in one place. hyper's own
//! answers to unparsable requests are reshaped at the socket (`serve.rs`).

use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

/// Largest error body read to reuse its text as the message; such bodies are a line.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The counter of requests and connections refused before a handler could answer them.
pub const REFUSALS_METRIC: &str = "switchboard_http_refusals_total";

/// Counts one refusal of `status` in [`REFUSALS_METRIC`].
pub(crate) fn count_refusal(status: u16) {
    metrics::counter!(REFUSALS_METRIC, "status" => status.to_string()).increment(1);
}

/// The JSON error body.
pub(crate) fn error_body(code: &str, message: &str) -> Vec<u8> {
    json!({"error": {"code": code, "message": message}})
        .to_string()
        .into_bytes()
}

/// An error response in the JSON shape.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = Response::new(Body::from(error_body(code, message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The code and default message of an error status that arrived without a JSON body.
fn code_for(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "the request is not valid"),
        401 => (
            "unauthorized",
            "send an API key as `Authorization: Bearer <key>`",
        ),
        403 => ("forbidden", "this request is not allowed"),
        404 => ("route_not_found", "no such route; see GET /openapi.json"),
        405 => (
            "method_not_allowed",
            "this route does not take that method; see GET /openapi.json",
        ),
        408 => ("request_timeout", "the request was not completed in time"),
        409 => ("conflict", "the request conflicts with the current state"),
        413 => ("body_too_large", "the request body is too large"),
        414 => ("uri_too_long", "the request's URI is too long"),
        415 => (
            "unsupported_media_type",
            "the body's content type is not accepted",
        ),
        422 => ("unprocessable", "the request cannot be processed"),
        429 => ("rate_limited", "too many requests; retry later"),
        431 => ("headers_too_large", "the request's headers are too large"),
        503 => ("unavailable", "the service is unavailable; retry later"),
        s if s >= 500 => ("internal_error", "the server failed to answer; retry later"),
        _ => ("error", "the request failed"),
    }
}

/// Counts 408 and 413 refusals, and gives every error response that is not JSON the JSON
/// error shape, keeping its status and headers and, when it is short text, its message.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if matches!(status.as_u16(), 408 | 413) {
        count_refusal(status.as_u16());
    }
    if !(status.is_client_error() || status.is_server_error())
        || is_json(&response)
        || is_page(&response)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let (code, default_message) = code_for(status);
    // A compressed body (the console's routes gzip) is not text to quote; the new body is
    // not compressed.
    let compressed = parts.headers.remove(header::CONTENT_ENCODING).is_some();
    let text = if compressed {
        bytes::Bytes::new()
    } else {
        to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default()
    };
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => default_message,
        t => t,
    };
    let body = error_body(code, message);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// An HTML page (the operator console's error pages answer people, not programs).
fn is_page(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("text/html")
        })
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reshaped(response: Response) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = json_errors(response).await;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), MAX_ERROR_BODY)
            .await
            .unwrap();
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, content_type, json)
    }

    fn plain(status: StatusCode, content_type: Option<&str>, body: &'static str) -> Response {
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        if let Some(ct) = content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        response
    }

    #[tokio::test]
    async fn a_text_or_empty_error_gets_the_json_shape_and_keeps_its_status() {
        let (status, ct, json) = reshaped(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("text/plain; charset=utf-8"),
            "Service panicked",
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ct.as_deref(), Some("application/json"));
        assert_eq!(json["error"]["code"], "internal_error");
        assert_eq!(json["error"]["message"], "Service panicked");

        let (status, _, json) = reshaped(plain(StatusCode::REQUEST_TIMEOUT, None, "")).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(json["error"]["code"], "request_timeout");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    #[tokio::test]
    async fn json_answers_and_successes_pass_untouched() {
        let health = r#"{"status":"unavailable"}"#;
        let (status, _, json) = reshaped(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("application/json"),
            health,
        ))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json, serde_json::json!({"status": "unavailable"}));
        let response = json_errors(plain(StatusCode::OK, Some("text/xml"), "<Response/>")).await;
        let body = to_bytes(response.into_body(), MAX_ERROR_BODY)
            .await
            .unwrap();
        assert_eq!(&body[..], b"<Response/>");
    }
}
