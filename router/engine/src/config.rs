//! Settings of the background workers (delivery, notifications, media fetching).

use std::time::Duration;

/// Delivery engine settings.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// How long a claimed outbox entry stays leased to this process.
    pub lease: Duration,
    /// Entries claimed per round.
    pub batch: u64,
    /// Transient failures before a message fails for good.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt (full jitter), capped by `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How often a worker looks again while work is due that it could not take (held by
    /// another process, or waiting for an older message to the same contact).
    pub poll_interval: Duration,
    /// Longest sleep of a worker with nothing due: work of this process wakes it at once
    /// and a retry at its due time, so this only bounds how late it sees work that another
    /// process queued. Looking only reads.
    pub idle_poll: Duration,
    /// Outbound messages without a final status for this long are asked about
    /// (`ChannelAdapter::fetch_status`).
    pub reconcile_after: Duration,
    /// How often the engine looks for such messages.
    pub reconcile_every: Duration,
    /// How long a status for a message not known here is kept for its message to appear
    /// (the send's answer may come after the status); then it is deleted. A status for a
    /// message sent by another system on the same number never finds one.
    pub pending_statuses_kept: Duration,
    /// How long an entry whose send may have begun in a process that died (claimed, lease
    /// expired, outcome never recorded) waits for a provider status naming it before it is
    /// sent again. A status that arrives meanwhile proves the provider has the message, and
    /// it is not resent (see `delivery`).
    pub in_doubt_grace: Duration,
    /// How long after a message is queued on a channel a `failed` or `undelivered` status
    /// from that channel (the recipient unreachable there) still sends it on its next
    /// fallback channel; after it, such a status only fails the message. A send's own error
    /// always falls back.
    pub fallback_window: Duration,
    /// How often every active account's template catalog is synced with its provider
    /// (besides on connect, on demand and on a template webhook).
    pub template_sync_every: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            batch: 256,
            max_attempts: 8,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            poll_interval: Duration::from_millis(250),
            idle_poll: Duration::from_secs(2),
            reconcile_after: Duration::from_secs(15 * 60),
            reconcile_every: Duration::from_secs(60),
            pending_statuses_kept: Duration::from_secs(7 * 24 * 60 * 60),
            in_doubt_grace: Duration::from_secs(120),
            fallback_window: Duration::from_secs(24 * 60 * 60),
            template_sync_every: Duration::from_secs(6 * 60 * 60),
        }
    }
}

impl DeliveryConfig {
    /// Retry delays of the outbox and of notifications.
    pub(crate) fn backoff(&self) -> crate::store::queue::Backoff {
        crate::store::queue::Backoff {
            base: self.base_backoff,
            max: self.max_backoff,
        }
    }
}
