//! Status truth: outbound statuses only move forward, whatever order and however often
//! providers report them, and every report is kept in the message's history.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QueryTrait,
};
use switchboard_core::{MessageStatus, Pricing, StatusUpdate};

use crate::events::RouterEvent;
use crate::ids::now_ms;
use crate::store::entity::{message_status_events, messages, outbox, pending_statuses};

/// What became of a status report.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The message moved to this status.
    Advanced(RouterEvent),
    /// Kept in the history; the message already had this status or a later one.
    Stale,
    /// The message is not known yet; kept until its provider id is recorded.
    Pending,
}

impl Applied {
    /// The event to publish, when the message moved.
    pub(crate) fn into_event(self) -> Option<RouterEvent> {
        match self {
            Self::Advanced(ev) => Some(ev),
            Self::Stale | Self::Pending => None,
        }
    }
}

fn raw_text(raw: &serde_json::Value) -> Option<String> {
    (!raw.is_null()).then(|| raw.to_string())
}

/// The message `update` (reported on `channel`) is about: by our id when the provider
/// echoed it, else by the provider's id.
pub(crate) async fn find_message<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    update: &StatusUpdate,
) -> Result<Option<messages::Model>, DbErr> {
    let by_ref = match &update.message_ref {
        Some(id) => {
            messages::Entity::find_by_id(id.clone())
                .filter(messages::Column::Channel.eq(channel))
                .one(db)
                .await?
        }
        None => None,
    };
    match by_ref {
        Some(m) => Ok(Some(m)),
        None => {
            messages::Entity::find()
                .filter(messages::Column::Channel.eq(channel))
                .filter(messages::Column::ProviderMessageId.eq(update.provider_message_id.as_str()))
                .one(db)
                .await
        }
    }
}

/// Applies `update` (reported on `channel`) to its message.
pub(crate) async fn apply<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    update: &StatusUpdate,
    raw: &serde_json::Value,
) -> Result<Applied, DbErr> {
    let Some(message) = find_message(db, channel, update).await? else {
        pending_statuses::Entity::insert(pending_statuses::ActiveModel {
            channel: Set(channel.to_owned()),
            provider_message_id: Set(update.provider_message_id.clone()),
            status: Set(update.status.as_str().to_owned()),
            error_code: Set(update.error.as_ref().map(|e| e.code.clone())),
            error_message: Set(update.error.as_ref().and_then(error_text)),
            raw: Set(raw_text(raw)),
            provider_timestamp: Set(Some(update.timestamp.timestamp_millis())),
            received_at: Set(now_ms()),
            pricing: Set(pricing_text(update.pricing.as_ref())),
            ..Default::default()
        })
        .exec_without_returning(db)
        .await?;
        return Ok(Applied::Pending);
    };
    if message.provider_message_id.is_none() {
        // The status beat the send's response here (it carried our id): record the
        // provider id now so later reports find the message directly.
        messages::Entity::update_many()
            .col_expr(
                messages::Column::ProviderMessageId,
                Expr::value(update.provider_message_id.as_str()),
            )
            .filter(messages::Column::Id.eq(message.id.as_str()))
            .filter(messages::Column::ProviderMessageId.is_null())
            .exec(db)
            .await?;
        // The provider has the message, so it must not be sent again: this is what keeps
        // a send that began before a crash from going twice (`DeliveryConfig::in_doubt_grace`).
        // A worker sending it right now writes its outcome all the same.
        outbox::Entity::delete_by_id(message.id.clone())
            .exec(db)
            .await?;
    }
    record_priced(
        db,
        &message,
        update.status,
        update.error.as_ref(),
        raw,
        Some(update.timestamp.timestamp_millis()),
        pricing_text(update.pricing.as_ref()),
    )
    .await
}

/// A status's pricing as stored (`messages.pricing`), when it has any.
fn pricing_text(pricing: Option<&Pricing>) -> Option<String> {
    pricing
        .filter(|p| !p.is_empty())
        .and_then(|p| serde_json::to_string(p).ok())
}

fn error_text(e: &switchboard_core::ProviderError) -> Option<String> {
    match (&e.message, &e.details) {
        (Some(m), Some(d)) if m != d => Some(format!("{m}: {d}")),
        (Some(m), _) => Some(m.clone()),
        (None, d) => d.clone(),
    }
}

/// Records a status in the history and moves the message forward if it advances.
pub(crate) async fn record<C: ConnectionTrait>(
    db: &C,
    message: &messages::Model,
    status: MessageStatus,
    error: Option<&switchboard_core::ProviderError>,
    raw: &serde_json::Value,
    provider_timestamp: Option<i64>,
) -> Result<Applied, DbErr> {
    record_priced(db, message, status, error, raw, provider_timestamp, None).await
}

/// [`record`] for a status that may say how the message is billed (`pricing`, stored JSON):
/// the pricing goes into the same guarded `UPDATE` as the status. The provider may put it on
/// any one report (Meta: `sent`, `delivered` or `read`), so a report that does not advance
/// the status still stores its pricing (a second statement, only then); a report without
/// pricing never clears it.
pub(crate) async fn record_priced<C: ConnectionTrait>(
    db: &C,
    message: &messages::Model,
    status: MessageStatus,
    error: Option<&switchboard_core::ProviderError>,
    raw: &serde_json::Value,
    provider_timestamp: Option<i64>,
    pricing: Option<String>,
) -> Result<Applied, DbErr> {
    let now = now_ms();
    message_status_events::Entity::insert(history_row(
        &message.id,
        status,
        error,
        raw,
        provider_timestamp,
        now,
    ))
    .exec_without_returning(db)
    .await?;
    let rank = status.rank();
    let mut update = messages::Entity::update_many()
        .col_expr(messages::Column::Status, Expr::value(status.as_str()))
        .col_expr(messages::Column::StatusRank, Expr::value(rank))
        .col_expr(messages::Column::UpdatedAt, Expr::value(now));
    if let Some(e) = error.filter(|_| status.is_failure()) {
        update = update
            .col_expr(messages::Column::ErrorCode, Expr::value(e.code.as_str()))
            .col_expr(messages::Column::ErrorMessage, Expr::value(error_text(e)));
    }
    if let Some(pricing) = &pricing {
        update = update.col_expr(messages::Column::Pricing, Expr::value(pricing.as_str()));
    }
    // The guard is in the statement, so concurrent reports cannot regress a status.
    let res = update
        .filter(messages::Column::Id.eq(message.id.as_str()))
        .filter(messages::Column::StatusRank.lt(rank))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        if let Some(pricing) = pricing {
            messages::Entity::update_many()
                .col_expr(messages::Column::Pricing, Expr::value(pricing))
                .filter(messages::Column::Id.eq(message.id.as_str()))
                .exec(db)
                .await?;
        }
        return Ok(Applied::Stale);
    }
    Ok(Applied::Advanced(status_changed(message, status)))
}

/// Keeps a status in `message`'s history without moving the message: the report of a leg
/// that fell back to another channel (`outbound::fallback`).
pub(crate) async fn record_history<C: ConnectionTrait>(
    db: &C,
    message: &messages::Model,
    status: MessageStatus,
    error: Option<&switchboard_core::ProviderError>,
    raw: &serde_json::Value,
    provider_timestamp: Option<i64>,
) -> Result<(), DbErr> {
    message_status_events::Entity::insert(history_row(
        &message.id,
        status,
        error,
        raw,
        provider_timestamp,
        now_ms(),
    ))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// A message's status history row.
fn history_row(
    message_id: &str,
    status: MessageStatus,
    error: Option<&switchboard_core::ProviderError>,
    raw: &serde_json::Value,
    provider_timestamp: Option<i64>,
    now: i64,
) -> message_status_events::ActiveModel {
    message_status_events::ActiveModel {
        message_id: Set(message_id.to_owned()),
        status: Set(status.as_str().to_owned()),
        error_code: Set(error.map(|e| e.code.clone())),
        error_message: Set(error.and_then(error_text)),
        raw: Set(raw_text(raw)),
        provider_timestamp: Set(provider_timestamp),
        received_at: Set(now),
        ..Default::default()
    }
}

fn status_changed(message: &messages::Model, status: MessageStatus) -> RouterEvent {
    RouterEvent::StatusChanged {
        tenant_id: message.tenant_id.clone(),
        message_id: message.id.clone(),
        conversation_id: message.conversation_id.clone(),
        status,
    }
}

/// `record` for many messages at once, for statuses that carry no error, payload or
/// provider time (send receipts): one INSERT for the history and one guarded UPDATE per
/// status, whose `RETURNING` says which messages advanced.
pub(crate) async fn record_many<C: ConnectionTrait>(
    db: &C,
    items: &[(&messages::Model, MessageStatus)],
) -> Result<Vec<RouterEvent>, DbErr> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    message_status_events::Entity::insert_many(
        items.iter().map(|(m, status)| {
            history_row(&m.id, *status, None, &serde_json::Value::Null, None, now)
        }),
    )
    .exec_without_returning(db)
    .await?;
    let mut statuses: Vec<MessageStatus> = items.iter().map(|(_, s)| *s).collect();
    statuses.sort_by_key(|s| s.rank());
    statuses.dedup();
    let mut events = Vec::new();
    for status in statuses {
        let rank = status.rank();
        let of_status: Vec<&messages::Model> = items
            .iter()
            .filter(|(_, s)| *s == status)
            .map(|(m, _)| *m)
            .collect();
        for chunk in of_status.chunks(crate::store::IN_LIST_MAX) {
            let mut update = messages::Entity::update_many()
                .col_expr(messages::Column::Status, Expr::value(status.as_str()))
                .col_expr(messages::Column::StatusRank, Expr::value(rank))
                .col_expr(messages::Column::UpdatedAt, Expr::value(now))
                .filter(messages::Column::Id.is_in(chunk.iter().map(|m| m.id.as_str())))
                // The guard is in the statement, as in `record`.
                .filter(messages::Column::StatusRank.lt(rank))
                .into_query();
            update.returning_col(messages::Column::Id);
            let advanced: std::collections::HashSet<String> = db
                .query_all(&update)
                .await?
                .iter()
                .map(|row| row.try_get::<String>("", "id"))
                .collect::<Result<_, _>>()?;
            events.extend(
                chunk
                    .iter()
                    .filter(|m| advanced.contains(&m.id))
                    .map(|m| status_changed(m, status)),
            );
        }
    }
    Ok(events)
}

/// Deletes the statuses still waiting for their message that arrived before
/// `received_before` (ms); returns how many.
pub(crate) async fn prune_pending<C: ConnectionTrait>(
    db: &C,
    received_before: i64,
) -> Result<u64, DbErr> {
    let done = pending_statuses::Entity::delete_many()
        .filter(pending_statuses::Column::ReceivedAt.lt(received_before))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// A status that waited for its message's provider id, handed back to the caller instead
/// of applied (see [`apply_pending`]).
pub(crate) struct HandedBack {
    pub(crate) status: MessageStatus,
    pub(crate) error: switchboard_core::ProviderError,
    pub(crate) raw: serde_json::Value,
    pub(crate) provider_timestamp: Option<i64>,
}

/// Applies statuses that arrived before `message` had its provider id, in order. The
/// first failure with an error that `hand_back` picks is not applied but handed back (and
/// the statuses after it stay waiting): the caller decides what it means (a fallback).
pub(crate) async fn apply_pending<C: ConnectionTrait>(
    db: &C,
    message: &messages::Model,
    hand_back: impl Fn(MessageStatus, &switchboard_core::ProviderError) -> bool,
) -> Result<(Vec<RouterEvent>, Option<HandedBack>), DbErr> {
    let Some(provider_id) = &message.provider_message_id else {
        return Ok((Vec::new(), None));
    };
    let pending = pending_statuses::Entity::find()
        .filter(pending_statuses::Column::Channel.eq(message.channel.as_str()))
        .filter(pending_statuses::Column::ProviderMessageId.eq(provider_id.as_str()))
        .order_by_asc(pending_statuses::Column::Id)
        .all(db)
        .await?;
    let mut events = Vec::new();
    for p in pending {
        let Ok(status) = p.status.parse::<MessageStatus>() else {
            continue;
        };
        let error = p
            .error_code
            .clone()
            .map(|code| switchboard_core::ProviderError {
                code,
                message: p.error_message.clone(),
                details: None,
            });
        let raw = p
            .raw
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(serde_json::Value::Null);
        pending_statuses::Entity::delete_by_id(p.id)
            .exec(db)
            .await?;
        if let Some(error) = error.as_ref().filter(|e| hand_back(status, e)) {
            let handed = HandedBack {
                status,
                error: error.clone(),
                raw,
                provider_timestamp: p.provider_timestamp,
            };
            return Ok((events, Some(handed)));
        }
        if let Applied::Advanced(ev) = record_priced(
            db,
            message,
            status,
            error.as_ref(),
            &raw,
            p.provider_timestamp,
            p.pricing.clone(),
        )
        .await?
        {
            events.push(ev);
        }
    }
    Ok((events, None))
}
