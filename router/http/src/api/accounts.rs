//! `/v1/accounts` and `/v1/keys`: admin keys only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_core::HealthReport;

use super::{Admin, ApiJson, ApiResult};
use crate::AppState;
use switchboard_router::error::RouterError;
use switchboard_router::tenancy::accounts::AccountView;
use switchboard_router::tenancy::tenants::{ApiKeyView, NewApiKey, Role};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectBody {
    channel: String,
    address: String,
    credentials: serde_json::Value,
    rate_per_second: Option<i32>,
}

pub(super) async fn connect(
    State(state): State<AppState>,
    Admin(p): Admin,
    ApiJson(body): ApiJson<ConnectBody>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let view = state
        .router
        .accounts()
        .connect(
            &p.tenant_id,
            &body.channel,
            &body.address,
            &body.credentials,
            body.rate_per_second,
        )
        .await?;
    // The new account's template catalog, fetched by the template worker.
    state.router.templates().queue_sync(&p.tenant_id, &view.id);
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Serialize)]
pub(super) struct AccountList {
    data: Vec<AccountView>,
    /// Always `null`: a tenant has few accounts, so they come in one page; present so every
    /// list has the same shape.
    next_cursor: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> ApiResult<Json<AccountList>> {
    Ok(Json(AccountList {
        data: state.router.accounts().list(&p.tenant_id).await?,
        next_cursor: None,
    }))
}

pub(super) async fn disconnect(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountView>> {
    Ok(Json(
        state
            .router
            .accounts()
            .disconnect(&p.tenant_id, &id)
            .await?,
    ))
}

/// The outcome of checking an account against its provider.
#[derive(Serialize)]
pub(super) struct Verification {
    account_id: String,
    status: &'static str,
    latency_ms: u64,
    checked_at: String,
    detail: Option<String>,
}

pub(super) async fn verify(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Verification>> {
    let HealthReport {
        status,
        latency,
        checked_at,
        detail,
        ..
    } = state.router.accounts().verify(&p.tenant_id, &id).await?;
    Ok(Json(Verification {
        account_id: id,
        status: status.as_str(),
        latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        checked_at: checked_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        detail,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyBody {
    /// `agent` (the default: least privilege) or `admin`.
    role: Option<String>,
    name: Option<String>,
}

pub(super) async fn create_key(
    State(state): State<AppState>,
    Admin(p): Admin,
    ApiJson(body): ApiJson<KeyBody>,
) -> ApiResult<(StatusCode, Json<NewApiKey>)> {
    let role = match body.role.as_deref() {
        None => Role::Agent,
        Some(r) => Role::parse(r).ok_or_else(|| {
            RouterError::invalid("invalid_role", "role must be \"agent\" or \"admin\"")
        })?,
    };
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 200) {
        return Err(RouterError::invalid(
            "invalid_name",
            "a key name may have at most 200 characters",
        )
        .into());
    }
    let key = state
        .router
        .tenants()
        .create_api_key(&p.tenant_id, role, name)
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[derive(Serialize)]
pub(super) struct KeyList {
    data: Vec<ApiKeyView>,
    next_cursor: Option<String>,
}

/// The tenant's API keys, revoked ones included; never their secrets.
pub(super) async fn list_keys(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> ApiResult<Json<KeyList>> {
    Ok(Json(KeyList {
        data: state.router.tenants().list_api_keys(&p.tenant_id).await?,
        next_cursor: None,
    }))
}

/// Revokes a key: requests with it answer 401 from now on (the caller's own key too).
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyView>> {
    Ok(Json(
        state
            .router
            .tenants()
            .revoke_api_key(Some(&p.tenant_id), &id)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotificationsBody {
    url: String,
}

/// Where the tenant's signed event notifications go, and the secret that signs them
/// (shown once; `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the body>`).
#[derive(Serialize)]
pub(super) struct NotificationSettings {
    url: String,
    secret: String,
}

pub(super) async fn set_notifications(
    State(state): State<AppState>,
    Admin(p): Admin,
    ApiJson(body): ApiJson<NotificationsBody>,
) -> ApiResult<Json<NotificationSettings>> {
    let secret = state
        .router
        .notifications()
        .set_notify_url(&p.tenant_id, Some(body.url.trim()))
        .await?
        .unwrap_or_default();
    Ok(Json(NotificationSettings {
        url: body.url.trim().to_owned(),
        secret,
    }))
}

pub(super) async fn clear_notifications(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> ApiResult<StatusCode> {
    state
        .router
        .notifications()
        .set_notify_url(&p.tenant_id, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
