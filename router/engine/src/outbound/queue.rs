//! The outbox as a durable queue: entries leave in order per conversation.

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use crate::store::entity::outbox;
use crate::store::queue::LeaseQueue;

/// Outbox entries, in order per conversation (ids are time-ordered).
pub(crate) const OUTBOX_QUEUE: LeaseQueue = LeaseQueue {
    table: "outbox",
    key: "message_id",
    order_by: "message_id",
    only: "1 = 1",
    in_order_per: Some("conversation_id"),
};

/// Queues `message_id` for delivery from `account_id`, due at `now`, in the caller's
/// transaction (the one that writes the message, or moves it to its next channel).
pub(crate) async fn enqueue<C: ConnectionTrait>(
    db: &C,
    message_id: &str,
    tenant_id: &str,
    account_id: &str,
    conversation_id: &str,
    now: i64,
) -> Result<(), DbErr> {
    outbox::Entity::insert(outbox::ActiveModel {
        message_id: Set(message_id.to_owned()),
        tenant_id: Set(tenant_id.to_owned()),
        account_id: Set(account_id.to_owned()),
        conversation_id: Set(conversation_id.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_by: Set(None),
        locked_until: Set(None),
        ambiguous: Set(false),
        created_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}
