//! Fallback: when a message's channel cannot reach its recipient (the adapter says so:
//! `ChannelError::reachable_elsewhere` at send time, `ChannelAdapter::status_error_kind` on a
//! later `failed`/`undelivered` status), the same message goes out on its next channel.
//!
//! The channels still to try live on the message row (`messages.fallback`, JSON), so a
//! restart between the failure and the next send loses nothing. Moving on is the one path
//! that takes a message's status back to `queued`, and it is explicit: in one transaction the
//! failed leg's report goes into the status history (the message row does not take it), the
//! row moves to the next account, channel and conversation with status `queued`, no
//! provider id and the rest of the list, and its outbox entry is queued again for the new
//! account. The forward-only `statuses::record` is never used for it.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use switchboard_core::{ChannelAdapter, Content, MessageStatus, ProviderError, StatusUpdate};

use crate::events::RouterEvent;
use crate::ids::now_ms;
use crate::records::{conversations, statuses};
use crate::store::entity::{messages, outbox};

/// What `messages.fallback` holds: the channels still to try, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fallback {
    /// How long after a message is queued on a channel a `failed`/`undelivered` status from
    /// that channel still moves it on (`DeliveryConfig::fallback_window`), in ms.
    pub(crate) window_ms: i64,
    /// Until when (Unix ms) the current channel's statuses still move the message on.
    pub(crate) until: i64,
    pub(crate) targets: Vec<Target>,
}

/// One channel a message may fall back to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) channel: String,
    pub(crate) account_id: String,
    /// What goes out on this channel when it is not the message's content: the request's
    /// plain text, for content this channel cannot carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<Content>,
}

impl Fallback {
    /// The message's fallback, when it has channels left.
    pub(crate) fn of(message: &messages::Model) -> Option<Self> {
        let fallback: Self = serde_json::from_str(message.fallback.as_deref()?).ok()?;
        (!fallback.targets.is_empty()).then_some(fallback)
    }

    /// The column's value: null when no channel is left.
    pub(crate) fn column(&self) -> Option<String> {
        (!self.targets.is_empty())
            .then(|| serde_json::to_string(self).ok())
            .flatten()
    }
}

/// Why a message moves on.
pub(crate) struct Failure<'a> {
    /// The status the failed leg gets in the history (`failed` or `undelivered`).
    pub(crate) status: MessageStatus,
    pub(crate) error: &'a ProviderError,
    pub(crate) raw: &'a serde_json::Value,
    pub(crate) provider_timestamp: Option<i64>,
    /// Whether the failure is a later status, which moves the message on only until
    /// `Fallback::until`; a send's own error always does.
    pub(crate) from_status: bool,
}

/// Moves `message` to its next channel in `db` (inside the caller's transaction). Returns
/// the event to notify, or `None` when it has no channel left, the status came after
/// `Fallback::until`, or the leg moved already (a concurrent report won). The caller
/// re-queues nothing else: the outbox entry is written here.
pub(crate) async fn move_on<C: ConnectionTrait>(
    db: &C,
    message: &messages::Model,
    failure: &Failure<'_>,
) -> Result<Option<RouterEvent>, DbErr> {
    let Some(mut fallback) = Fallback::of(message) else {
        return Ok(None);
    };
    let now = now_ms();
    if failure.from_status && now > fallback.until {
        return Ok(None);
    }
    let target = fallback.targets.remove(0);
    fallback.until = now.saturating_add(fallback.window_ms);
    let Some(old_conversation) =
        crate::store::entity::conversations::Entity::find_by_id(message.conversation_id.clone())
            .one(db)
            .await?
    else {
        return Ok(None);
    };
    let conversation_id = conversations::touch(
        db,
        &message.tenant_id,
        &old_conversation.contact_id,
        &target.account_id,
        &target.channel,
        now,
        false,
    )
    .await?;
    let mut update = messages::Entity::update_many()
        .col_expr(messages::Column::AccountId, Expr::value(&target.account_id))
        .col_expr(messages::Column::Channel, Expr::value(&target.channel))
        .col_expr(
            messages::Column::ConversationId,
            Expr::value(&conversation_id),
        )
        .col_expr(
            messages::Column::Status,
            Expr::value(MessageStatus::Queued.as_str()),
        )
        .col_expr(
            messages::Column::StatusRank,
            Expr::value(MessageStatus::Queued.rank()),
        )
        .col_expr(
            messages::Column::ProviderMessageId,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            messages::Column::ErrorCode,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            messages::Column::ErrorMessage,
            Expr::value(Option::<String>::None),
        )
        .col_expr(messages::Column::Fallback, Expr::value(fallback.column()))
        .col_expr(messages::Column::UpdatedAt, Expr::value(now));
    if let Some(content) = &target.content {
        update = update.col_expr(
            messages::Column::Content,
            Expr::value(serde_json::to_string(content).unwrap_or_else(|_| "{}".into())),
        );
    }
    // Only the leg that failed moves, and only once: a second report of the same failure
    // (or one racing it) finds the row moved already.
    let moved = update
        .filter(messages::Column::Id.eq(message.id.as_str()))
        .filter(messages::Column::AccountId.eq(message.account_id.as_str()))
        .filter(messages::Column::Fallback.eq(message.fallback.clone().unwrap_or_default()))
        .exec(db)
        .await?;
    if moved.rows_affected == 0 {
        return Ok(None);
    }
    statuses::record_history(
        db,
        message,
        failure.status,
        Some(failure.error),
        failure.raw,
        failure.provider_timestamp,
    )
    .await?;
    outbox::Entity::delete_by_id(message.id.clone())
        .exec(db)
        .await?;
    crate::outbound::queue::enqueue(
        db,
        &message.id,
        &message.tenant_id,
        &target.account_id,
        &conversation_id,
        now,
    )
    .await?;
    tracing::info!(
        message_id = %message.id,
        from = %message.channel,
        to = %target.channel,
        code = %failure.error.code,
        "Message falls back to its next channel."
    );
    Ok(Some(RouterEvent::MessageFallback {
        tenant_id: message.tenant_id.clone(),
        message_id: message.id.clone(),
        conversation_id,
        from_channel: message.channel.clone(),
        to_channel: target.channel,
        error_code: failure.error.code.clone(),
    }))
}

/// A status report from `channel` that moves its message on: a `failed`/`undelivered`
/// status whose provider error `adapter` classifies as reachable elsewhere, for a message
/// with a fallback channel left. `None` when it is not one (the caller applies it as any
/// status). A failure reported before the send's own outcome was recorded moves the
/// message on too: that outcome, written later, finds the message on another leg and only
/// records its attempt (`Outcomes::write_sent`).
pub(crate) async fn on_status<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    adapter: &dyn ChannelAdapter,
    update: &StatusUpdate,
    raw: &serde_json::Value,
) -> Result<Option<RouterEvent>, DbErr> {
    let Some(error) = update.error.as_ref() else {
        return Ok(None);
    };
    if !matches!(
        update.status,
        MessageStatus::Failed | MessageStatus::Undelivered
    ) || !adapter.status_error_kind(error).reachable_elsewhere()
    {
        return Ok(None);
    }
    let Some(message) = statuses::find_message(db, channel, update).await? else {
        return Ok(None);
    };
    if message.fallback.is_none() {
        return Ok(None);
    }
    move_on(
        db,
        &message,
        &Failure {
            status: update.status,
            error,
            raw,
            provider_timestamp: Some(update.timestamp.timestamp_millis()),
            from_status: true,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_with(fallback: Option<String>) -> messages::Model {
        messages::Model {
            id: "msg_1".into(),
            tenant_id: "ten_1".into(),
            conversation_id: "cnv_1".into(),
            account_id: "acc_1".into(),
            channel: "twilio-whatsapp".into(),
            direction: "outbound".into(),
            status: "queued".into(),
            status_rank: MessageStatus::Queued.rank(),
            provider_message_id: None,
            content: "{}".into(),
            reply_to: None,
            error_code: None,
            error_message: None,
            raw: None,
            idempotency_key: None,
            request_hash: None,
            provider_timestamp: None,
            fallback,
            created_at: 0,
            updated_at: 0,
            referral: None,
            pricing: None,
            part_of: None,
        }
    }

    #[test]
    fn the_column_round_trips_and_is_null_when_nothing_is_left() {
        let fallback = Fallback {
            window_ms: 1_000,
            until: 5_000,
            targets: vec![Target {
                channel: "twilio-sms".into(),
                account_id: "acc_2".into(),
                content: Some(Content::text("plain")),
            }],
        };
        let column = fallback.column();
        assert_eq!(Fallback::of(&message_with(column)), Some(fallback));
        let empty = Fallback {
            targets: Vec::new(),
            ..Fallback::default()
        };
        assert_eq!(empty.column(), None);
        assert_eq!(Fallback::of(&message_with(None)), None);
        assert_eq!(
            Fallback::of(&message_with(Some(
                r#"{"window_ms":1,"until":2,"targets":[]}"#.into()
            ))),
            None
        );
        assert_eq!(Fallback::of(&message_with(Some("not json".into()))), None);
    }
}
