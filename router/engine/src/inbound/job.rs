//! A verified, parsed webhook on its way to the database.

use std::sync::Arc;

use switchboard_core::{ChannelAdapter, ParsedWebhook};

use crate::events::RouterEvent;
use crate::tenancy::accounts::Account;

/// What storing one webhook produced: (stored, duplicates), the events to publish, and the
/// work its transaction queued for other workers.
pub(crate) type Stored = ((usize, usize), Vec<RouterEvent>, QueuedWork);

/// Work a transaction queued for the workers that wait to be woken: each is woken only
/// when there is something for it (a webhook's events alone would wake them all, and each
/// would look through its queue for nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueuedWork {
    /// Rows in the notification queue.
    pub(crate) notifications: bool,
    /// Media to fetch.
    pub(crate) media: bool,
}

/// One verified, parsed webhook to store.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) channel: String,
    /// The channel's adapter (its statuses' errors are classified by it).
    pub(crate) adapter: Arc<dyn ChannelAdapter>,
    pub(crate) accounts: Vec<Arc<Account>>,
    pub(crate) parsed: Arc<ParsedWebhook>,
}
