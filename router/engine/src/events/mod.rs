//! What subscribers hear after a change is committed.
//!
//! Two streams leave the bus: [`RouterEvent`]s, the committed changes in full, heard only in
//! the process that committed them; and [`Change`]s, what live views (the console) need to
//! re-fetch, heard in every process on one PostgreSQL database through the [`relay`].

pub mod relay;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
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

/// What changed, for a live view to re-fetch: a conversation of a tenant, or an account.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Change {
    /// Empty for a [`ChangeKind::Resync`] of every tenant.
    #[serde(rename = "t")]
    pub tenant_id: String,
    #[serde(rename = "k")]
    pub kind: ChangeKind,
    /// The conversation; the account for [`ChangeKind::Account`]; empty for a resync.
    #[serde(rename = "s")]
    pub subject: String,
}

/// How a [`Change`] changed its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A message was stored (received, or an echo of one sent elsewhere).
    Message,
    /// A message's status moved, or it fell back to another channel.
    Status,
    /// An account's quality, limit or restrictions changed.
    Account,
    /// Changes may have been missed: reload what is shown.
    Resync,
}

impl Change {
    /// The change a committed event makes to what live views show.
    pub fn of(event: &RouterEvent) -> Self {
        let kind = match event {
            RouterEvent::MessageReceived { .. } => ChangeKind::Message,
            RouterEvent::StatusChanged { .. } | RouterEvent::MessageFallback { .. } => {
                ChangeKind::Status
            }
            RouterEvent::AccountStateChanged { .. } => ChangeKind::Account,
        };
        Self {
            tenant_id: event.tenant_id().to_owned(),
            kind,
            subject: event.conversation_id().to_owned(),
        }
    }

    /// Changes were missed, for every tenant.
    pub(crate) fn resync_all() -> Self {
        Self {
            tenant_id: String::new(),
            kind: ChangeKind::Resync,
            subject: String::new(),
        }
    }

    /// Whether a view of `tenant`'s data must hear it.
    pub fn concerns(&self, tenant: &str) -> bool {
        self.tenant_id == tenant || (self.kind == ChangeKind::Resync && self.tenant_id.is_empty())
    }
}

/// Hands committed events to subscribers and wakes the workers that may have work from
/// them. Components that commit events publish them here after their commit.
pub(crate) struct EventBus {
    subscribers: broadcast::Sender<RouterEvent>,
    /// Every process's changes: this one's as they are published, the others' as the relay
    /// hears them.
    changes: broadcast::Sender<Change>,
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
        let (changes, _) = broadcast::channel(Self::CAPACITY);
        Self {
            subscribers,
            changes,
            on_any,
            on_received,
            on_requeued,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.subscribers.subscribe()
    }

    pub(crate) fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Hands changes to live views: this process's (from its events) and other processes'
    /// (heard by the relay).
    pub(crate) fn publish_changes(&self, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            // An error only means nobody watches right now.
            if self.changes.send(change).is_err() {
                break;
            }
        }
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
        if self.changes.receiver_count() > 0 {
            self.publish_changes(events.iter().map(Change::of));
        }
        for e in events {
            // An error only means nobody subscribes right now.
            if self.subscribers.send(e).is_err() {
                break;
            }
        }
    }
}
