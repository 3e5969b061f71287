//! The outbox as a durable queue: entries leave in order per conversation.

use crate::store::queue::LeaseQueue;

/// Outbox entries, in order per conversation (ids are time-ordered).
pub(crate) const OUTBOX_QUEUE: LeaseQueue = LeaseQueue {
    table: "outbox",
    key: "message_id",
    order_by: "message_id",
    only: "1 = 1",
    in_order_per: Some("conversation_id"),
};
