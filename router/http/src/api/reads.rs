//! Conversations, contacts and usage.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{ApiQuery, ApiResult, Auth};
use crate::AppState;
use switchboard_router::error::RouterError;
use switchboard_router::records::contacts::ContactView;
use switchboard_router::records::queries::{ConversationView, MessageView, Page, PageRequest};
use switchboard_router::records::usage::{GroupBy, Range, UsageRow};

#[derive(Deserialize)]
pub(super) struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

impl From<PageQuery> for PageRequest {
    fn from(q: PageQuery) -> Self {
        Self {
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

pub(super) async fn conversations(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<ConversationView>>> {
    Ok(Json(
        state
            .router
            .records()
            .list_conversations(&p.tenant_id, &q.into())
            .await?,
    ))
}

pub(super) async fn conversation_messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<MessageView>>> {
    Ok(Json(
        state
            .router
            .records()
            .list_conversation_messages(&p.tenant_id, &id, &q.into())
            .await?,
    ))
}

#[derive(Deserialize)]
pub(super) struct ContactQuery {
    phone: Option<String>,
}

pub(super) async fn contact(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult<Json<ContactView>> {
    let phone = q
        .phone
        .ok_or_else(|| RouterError::invalid("missing_phone", "give the number as ?phone=…"))?;
    Ok(Json(
        state
            .router
            .records()
            .find_contact(&p.tenant_id, &phone)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

#[derive(serde::Serialize)]
pub(super) struct UsageList {
    data: Vec<UsageRow>,
}

/// The tenant's message counts and costs per channel, account, category or day.
pub(super) async fn usage(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageList>> {
    let group = GroupBy::parse(q.group_by.as_deref())?;
    let range = Range::parse(q.from.as_deref(), q.to.as_deref())?;
    Ok(Json(UsageList {
        data: state
            .router
            .records()
            .usage(&p.tenant_id, group, range)
            .await?,
    }))
}
