//! A verified, parsed webhook on its way to the database.

use std::sync::Arc;

use serde_json::value::RawValue;
use switchboard_core::{ChannelAdapter, EventKind, InboundEvent, InboundMessage, ParsedWebhook};

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
    /// Per event of `parsed`, in order: a message's columns that are JSON texts.
    pub(crate) texts: Arc<Vec<Option<MessageTexts>>>,
}

/// The JSON texts a message's row stores, each already a JSON string literal as the batch's
/// rows array carries it (`json_rows`): rendered and escaped before the webhook queues, on
/// the request's own task, so that the group commit's one writer, the inbound path's serial
/// part, does neither (BENCHMARKS.md, Session 14).
pub(crate) struct MessageTexts {
    pub(crate) content: Box<RawValue>,
    pub(crate) raw: Box<RawValue>,
    pub(crate) referral: Option<Box<RawValue>>,
}

impl MessageTexts {
    /// The texts as the row stores them: content that will not render is `{}` and a
    /// referral that will not is left out, as the batch stored them before; only quoting a
    /// text as a JSON string can fail, and it does not.
    fn of(event: &InboundEvent, m: &InboundMessage) -> serde_json::Result<Self> {
        let literal = |json: String| serde_json::value::to_raw_value(&json);
        let content = serde_json::to_string(&m.content).unwrap_or_else(|_| "{}".into());
        let referral = m
            .referral
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok());
        Ok(Self {
            content: literal(content)?,
            raw: literal(event.raw.to_string())?,
            referral: referral.map(literal).transpose()?,
        })
    }
}

impl Job {
    pub(crate) fn new(
        channel: &str,
        adapter: Arc<dyn ChannelAdapter>,
        accounts: Vec<Arc<Account>>,
        parsed: ParsedWebhook,
    ) -> Self {
        let texts = parsed
            .events
            .iter()
            .map(|event| match &event.kind {
                // Cannot fail (above); if it did, the batch would refuse the message.
                EventKind::Message(m) => MessageTexts::of(event, m).ok(),
                _ => None,
            })
            .collect();
        Self {
            channel: channel.to_owned(),
            adapter,
            accounts,
            parsed: Arc::new(parsed),
            texts: Arc::new(texts),
        }
    }
}
