//! What subscribers hear after a change is committed.

use std::sync::Arc;

use serde::Serialize;
use switchboard_core::{Direction, MessageStatus, Referral};
use tokio::sync::{Notify, broadcast};

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
        /// The click-to-WhatsApp ad the person came from, when the provider said (boxed:
        /// rare, and large beside the other events).
        #[serde(skip_serializing_if = "Option::is_none")]
        referral: Option<Box<Referral>>,
    },
    /// An outbound message's status moved forward.
    StatusChanged {
        tenant_id: String,
        message_id: String,
        conversation_id: String,
        status: MessageStatus,
    },
    /// An outbound message could not reach its recipient on `from_channel` and was queued
    /// again, the same message, on `to_channel` (its next fallback channel). `error_code`
    /// is why (the provider's code, or `outside_service_window` when `send()` chose the
    /// fallback channel at once); `conversation_id` is the new channel's conversation.
    MessageFallback {
        tenant_id: String,
        message_id: String,
        conversation_id: String,
        from_channel: String,
        to_channel: String,
        error_code: String,
    },
    /// What the provider reports about an account changed: its quality rating, messaging
    /// limit tier or restrictions (the whole new state, as `GET /v1/accounts` shows it).
    AccountStateChanged {
        tenant_id: String,
        account_id: String,
        quality: crate::tenancy::account_state::Quality,
        messaging_limit: Option<String>,
        restrictions: Vec<crate::tenancy::account_state::Restriction>,
    },
}

impl RouterEvent {
    /// The event telling the product an account's reported state is now `state`.
    pub(crate) fn account_state_changed(
        tenant_id: &str,
        account_id: &str,
        state: &crate::tenancy::account_state::AccountState,
    ) -> Self {
        Self::AccountStateChanged {
            tenant_id: tenant_id.to_owned(),
            account_id: account_id.to_owned(),
            quality: state.quality,
            messaging_limit: state.messaging_limit.clone(),
            restrictions: state.restrictions.clone(),
        }
    }

    pub fn tenant_id(&self) -> &str {
        match self {
            Self::MessageReceived { tenant_id, .. }
            | Self::StatusChanged { tenant_id, .. }
            | Self::MessageFallback { tenant_id, .. }
            | Self::AccountStateChanged { tenant_id, .. } => tenant_id,
        }
    }

    /// The conversation the event is about; for an account's event, the account id (the
    /// key outgoing notifications keep their order by).
    pub fn conversation_id(&self) -> &str {
        match self {
            Self::MessageReceived {
                conversation_id, ..
            }
            | Self::StatusChanged {
                conversation_id, ..
            }
            | Self::MessageFallback {
                conversation_id, ..
            } => conversation_id,
            Self::AccountStateChanged { account_id, .. } => account_id,
        }
    }
}

/// Hands committed events to subscribers and wakes the workers that may have work from
/// them. Components that commit events publish them here after their commit.
pub(crate) struct EventBus {
    subscribers: broadcast::Sender<RouterEvent>,
    /// Woken by events that may have queued notifications (any, unless the publisher
    /// knows: [`EventBus::publish_queued`]).
    on_any: Arc<Notify>,
    /// Woken by inbound messages that may have queued media to fetch.
    on_received: Arc<Notify>,
    /// Woken by fallbacks (they queue the message again): the delivery engine.
    on_requeued: Arc<Notify>,
}

impl EventBus {
    /// How far a subscriber may fall behind before it sees `Lagged`.
    pub(crate) const CAPACITY: usize = 4096;

    pub(crate) fn new(
        on_any: Arc<Notify>,
        on_received: Arc<Notify>,
        on_requeued: Arc<Notify>,
    ) -> Self {
        let (subscribers, _) = broadcast::channel(Self::CAPACITY);
        Self {
            subscribers,
            on_any,
            on_received,
            on_requeued,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.subscribers.subscribe()
    }

    pub(crate) fn publish(&self, events: Vec<RouterEvent>) {
        let received = events
            .iter()
            .any(|e| matches!(e, RouterEvent::MessageReceived { .. }));
        self.publish_queued(events, true, received);
    }

    /// Publishes events whose transaction said what it queued: the notifier is woken only
    /// when it queued notifications, the media fetcher only when it queued media.
    pub(crate) fn publish_queued(&self, events: Vec<RouterEvent>, notifier: bool, media: bool) {
        if events.is_empty() {
            return;
        }
        if notifier {
            self.on_any.notify_one();
        }
        if media {
            self.on_received.notify_one();
        }
        let mut requeued = false;
        for e in &events {
            if let RouterEvent::MessageFallback {
                from_channel,
                to_channel,
                ..
            } = e
            {
                requeued = true;
                metrics::counter!(
                    "switchboard_fallbacks_total",
                    "from" => from_channel.clone(),
                    "to" => to_channel.clone()
                )
                .increment(1);
            }
        }
        if requeued {
            self.on_requeued.notify_one();
        }
        for e in events {
            // An error only means nobody subscribes right now.
            if self.subscribers.send(e).is_err() {
                break;
            }
        }
    }
}
