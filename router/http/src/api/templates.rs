//! `/v1/templates` and `/v1/accounts/{id}/templates/sync` (api.md "Templates").

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Admin, ApiJson, ApiQuery, ApiResult, Auth};
use crate::AppState;
use switchboard_core::TemplateSubmission;
use switchboard_router::error::RouterError;
use switchboard_router::templates::{TemplateFilter, TemplateView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TemplateQuery {
    account_id: Option<String>,
    status: Option<String>,
    name: Option<String>,
}

#[derive(Serialize)]
pub(super) struct TemplateList {
    data: Vec<TemplateView>,
    /// Always `null`: a catalog comes in one page; present so every list has one shape.
    next_cursor: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<TemplateQuery>,
) -> ApiResult<Json<TemplateList>> {
    let filter = TemplateFilter {
        account_id: q.account_id,
        status: q.status,
        name: q.name,
    };
    Ok(Json(TemplateList {
        data: state.router.templates().list(&p.tenant_id, &filter).await?,
        next_cursor: None,
    }))
}

#[derive(Serialize)]
pub(super) struct SyncStarted {
    account_id: String,
    status: &'static str,
}

/// Starts a sync of the account's catalog; `202` at once (the tenant's account, or 404).
pub(super) async fn sync(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<SyncStarted>)> {
    state
        .router
        .accounts()
        .account_view(&p.tenant_id, &id)
        .await?;
    state.router.templates().request_sync(&p.tenant_id, &id);
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncStarted {
            account_id: id,
            status: "syncing",
        }),
    ))
}

/// `POST /v1/templates`: `{"account_id", …}` and the template (api.md "Templates").
pub(super) async fn submit(
    State(state): State<AppState>,
    Admin(p): Admin,
    ApiJson(mut body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    let account_id = match body.remove("account_id") {
        Some(serde_json::Value::String(id)) => id,
        _ => {
            return Err(RouterError::invalid(
                "invalid_template",
                "account_id (a string) is required: the account whose provider reviews the template",
            )
            .into());
        }
    };
    let submission: TemplateSubmission = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| {
            RouterError::invalid(
                "invalid_template",
                format!("the template is not valid: {e}"),
            )
        })?;
    let created = state
        .router
        .templates()
        .submit(&p.tenant_id, &account_id, &submission)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}
