//! Conversations and contacts.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{ApiQuery, ApiResult, Auth};
use crate::AppState;
use switchboard_router::error::RouterError;
use switchboard_router::records::contacts::ContactView;
use switchboard_router::records::queries::{ConversationView, MessageView, Page, PageRequest};

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
