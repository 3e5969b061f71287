//! A verified, parsed webhook on its way to the database.

use std::sync::Arc;

use switchboard_core::{ChannelAdapter, ParsedWebhook};

use crate::events::RouterEvent;
use crate::tenancy::accounts::Account;

/// What storing one webhook produced: (stored, duplicates) and the events to publish.
pub(crate) type Stored = ((usize, usize), Vec<RouterEvent>);

/// One verified, parsed webhook to store.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) channel: String,
    /// The channel's adapter (its statuses' errors are classified by it).
    pub(crate) adapter: Arc<dyn ChannelAdapter>,
    pub(crate) accounts: Vec<Arc<Account>>,
    pub(crate) parsed: Arc<ParsedWebhook>,
}
