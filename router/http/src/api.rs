//! The product API under `/v1` (bearer API keys), `GET /openapi.json`, and the JSON 404 for
//! unknown routes.
//!
//! Every error, including a bad key, malformed JSON or an unknown route, answers
//! `{"error":{"code","message"}}`: clients handle one shape, never axum's plain-text
//! rejections.

mod accounts;
pub(crate) mod media;
mod messages;
pub(crate) mod openapi;
mod reads;
mod templates;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router as AxumRouter};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::AppState;
use super::webhooks::error_response;
use switchboard_router::error::RouterError;
use switchboard_router::tenancy::tenants::{Principal, Role};

pub(super) fn routes() -> AxumRouter<AppState> {
    AxumRouter::new()
        .route("/v1/accounts", post(accounts::connect).get(accounts::list))
        .route("/v1/accounts/{id}", delete(accounts::disconnect))
        .route("/v1/accounts/{id}/verify", post(accounts::verify))
        .route("/v1/accounts/{id}/templates/sync", post(templates::sync))
        .route(
            "/v1/templates",
            get(templates::list).post(templates::submit),
        )
        .route(
            "/v1/keys",
            post(accounts::create_key).get(accounts::list_keys),
        )
        .route("/v1/keys/{id}", delete(accounts::revoke_key))
        .route(
            "/v1/notifications",
            put(accounts::set_notifications).delete(accounts::clear_notifications),
        )
        .route("/v1/messages", post(messages::send))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/messages/{id}/read", post(messages::read))
        .route("/v1/conversations", get(reads::conversations))
        .route(
            "/v1/conversations/{id}/messages",
            get(reads::conversation_messages),
        )
        .route("/v1/contacts", get(reads::contact))
        .route("/v1/usage", get(reads::usage))
        .route("/v1/media/{id}", get(media::get))
        .route("/media/{id}", get(media::public))
        .route("/openapi.json", get(openapi::serve))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(route_not_found)
}

/// Routes whose bodies may exceed the global 1 MiB limit: media uploads (up to 100 MB, the
/// kind's limit, checked by the handler from `Content-Length` and while reading).
pub(super) fn upload_routes() -> AxumRouter<AppState> {
    AxumRouter::new().route("/v1/media", post(media::upload))
}

/// An error answer of the API.
#[derive(Debug)]
pub(crate) enum ApiError {
    Router(RouterError),
    Plain {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ApiError {
    pub(crate) fn plain(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Plain {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthorized(message: &str) -> Self {
        Self::plain(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<RouterError> for ApiError {
    fn from(e: RouterError) -> Self {
        Self::Router(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Router(e) => {
                if matches!(e, RouterError::Database(_) | RouterError::Crypto(_)) {
                    tracing::error!(code = e.code(), error = %e, "API request failed.");
                }
                error_response(&e)
            }
            Self::Plain {
                status,
                code,
                message,
            } => {
                let body = Json(json!({"error": {"code": code, "message": message}}));
                if status == StatusCode::UNAUTHORIZED {
                    (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
                } else {
                    (status, body).into_response()
                }
            }
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The caller, authenticated by `Authorization: Bearer <api key>`.
pub(crate) struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .ok_or_else(|| {
                ApiError::unauthorized("send an API key as `Authorization: Bearer <key>`")
            })?;
        match state.router.tenants().authenticate(key).await? {
            Some(principal) => Ok(Self(principal)),
            None => Err(ApiError::unauthorized("the API key is not valid")),
        }
    }
}

/// An admin caller: account and key management. Checked before the body is read, so an
/// agent key learns nothing from validation errors.
pub(crate) struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        if principal.role != Role::Admin {
            return Err(RouterError::Forbidden(
                "manage accounts or API keys (it is not an admin key)",
            )
            .into());
        }
        Ok(Self(principal))
    }
}

/// A JSON body; anything unreadable is `400 invalid_json` in the API's error shape. The
/// content type is not required: the body is JSON or it is refused.
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::plain(status, "body_too_large", "the request body is over 1 MiB")
            } else {
                ApiError::plain(status, "invalid_body", e.body_text())
            }
        })?;
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            ApiError::plain(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid: {e}"),
            )
        })
    }
}

/// A JSON body that may be left out: an empty body is `None`; anything else is read as
/// [`ApiJson`] reads it.
pub(crate) struct OptionalApiJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(Self(None));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::plain(e.status(), "invalid_body", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| Self(Some(v)))
            .map_err(|e| {
                ApiError::plain(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("the body is not valid: {e}"),
                )
            })
    }
}

/// Query parameters; unreadable ones are `400 invalid_query`.
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|e| ApiError::plain(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see GET /openapi.json",
    )
}

async fn route_not_found() -> ApiError {
    ApiError::plain(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route; see GET /openapi.json",
    )
}
