//! What subscribers hear after a change is committed.

use serde::Serialize;
use switchboard_core::{Direction, MessageStatus};

/// A committed change, for product code (`Router::subscribe`) and outgoing webhooks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RouterEvent {
    /// An inbound message or echo was stored.
    MessageReceived {
        tenant_id: String,
        message_id: String,
        conversation_id: String,
        direction: Direction,
    },
    /// An outbound message's status moved forward.
    StatusChanged {
        tenant_id: String,
        message_id: String,
        conversation_id: String,
        status: MessageStatus,
    },
}

impl RouterEvent {
    pub fn tenant_id(&self) -> &str {
        match self {
            Self::MessageReceived { tenant_id, .. } | Self::StatusChanged { tenant_id, .. } => {
                tenant_id
            }
        }
    }
}
