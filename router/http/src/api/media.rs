//! `POST /v1/media` (upload), `GET /v1/media/{id}` (the tenant's stored bytes) and the
//! public, signed `GET /media/{id}?expires=…&sig=…` that providers fetch outbound media
//! from (no API key: the HMAC signature is the authorization).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::StreamExt;
use serde::Deserialize;
use switchboard_core::MediaKind;

use super::{ApiError, ApiQuery, ApiResult, Auth};
use crate::AppState;
use switchboard_router::error::RouterError;
use switchboard_router::media::storage::MediaBody;
use switchboard_router::media::view::MediaView;
use switchboard_router::store::entity::media;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadQuery {
    filename: Option<String>,
    kind: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignedQuery {
    expires: i64,
    sig: String,
}

/// Size and type refusals get their own HTTP statuses (413, 415); the code says which.
fn upload_error(e: RouterError) -> ApiError {
    let status = match e.code() {
        "media_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => return e.into(),
    };
    ApiError::plain(status, e.code(), e.to_string())
}

/// Stores a file. The type and the kind's size limit are checked from the headers before
/// the body is read: a declared `Content-Length` over the limit is `413` at once, and a body
/// that passes the limit while streaming is `413` without reading the rest, so memory
/// holds at most one file within its kind's limit.
pub(super) async fn upload(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<MediaView>)> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = match q.kind.as_deref() {
        Some(k) => Some(MediaKind::parse(k).ok_or_else(|| {
            RouterError::invalid(
                "invalid_media_kind",
                "kind must be image, video, audio, document or sticker",
            )
        })?),
        None => None,
    };
    let target = state
        .router
        .media()
        .upload_target(mime, kind)
        .map_err(upload_error)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > target.max_bytes) {
        return Err(upload_error(target.too_large(Some(n))));
    }
    // Not sized from Content-Length: a client declaring a large body and sending nothing
    // must not hold memory.
    let mut buf = BytesMut::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::plain(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()))?;
        if (buf.len() + chunk.len()) as u64 > target.max_bytes {
            return Err(upload_error(target.too_large(None)));
        }
        buf.extend_from_slice(&chunk);
    }
    let view = state
        .router
        .media()
        .store_upload(&p.tenant_id, &target, buf.freeze(), q.filename.as_deref())
        .await
        .map_err(upload_error)?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) fn stream_response(row: &media::Model, body: MediaBody) -> Response {
    let mime = row
        .mime_type
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut resp = Body::from_stream(body.stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, mime);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len));
    // Customer files served from our origin must never run as a page.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    resp
}

pub(super) async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (row, body) = state.router.media().content(&p.tenant_id, &id).await?;
    Ok(stream_response(&row, body))
}

pub(super) async fn public(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SignedQuery>,
) -> ApiResult<Response> {
    let (row, body) = state.router.media().public(&id, q.expires, &q.sig).await?;
    Ok(stream_response(&row, body))
}
