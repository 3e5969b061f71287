//! Inbound events: what a verified webhook means, in canonical form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::content::Content;
use crate::identity::ContactIdentity;
use crate::status::MessageStatus;

/// What one verified webhook delivery carried: the events that parsed and the items that
/// did not. A malformed item never loses the others (providers retry a failed delivery for
/// days, and would keep re-sending the good items with the bad one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParsedWebhook {
    pub events: Vec<InboundEvent>,
    pub problems: Vec<ParseProblem>,
}

impl ParsedWebhook {
    /// Removes U+0000 from every text of the events and problems, except their raw
    /// payloads, which keep what came (stored as JSON text, where it is spelled `\u0000`).
    /// PostgreSQL's `text` cannot hold U+0000, and a provider retries a refused webhook for
    /// days: the text is stored cleaned instead, the same on every backend.
    pub fn strip_nul_chars(&mut self) {
        for event in &mut self.events {
            let raw = std::mem::take(&mut event.raw);
            if let Some(cleaned) = without_nul(&*event) {
                *event = cleaned;
            }
            event.raw = raw;
        }
        for problem in &mut self.problems {
            let raw = std::mem::take(&mut problem.raw);
            if let Some(cleaned) = without_nul(&*problem) {
                *problem = cleaned;
            }
            problem.raw = raw;
        }
    }
}

/// `value` with U+0000 removed from every string in it, through its serde form (`None` in
/// the unexpected case that the cleaned form does not deserialize).
fn without_nul<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> Option<T> {
    fn clean(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(clean),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(value).ok()?;
    clean(&mut json);
    serde_json::from_value(json).ok()
}

/// An item of a webhook that could not be understood; stored, counted, never fatal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParseProblem {
    /// The account the item was addressed to, when that much was readable.
    pub routing_key: Option<String>,
    pub detail: String,
    pub raw: serde_json::Value,
}

/// One event from a provider, addressed to one connected account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// The account this event belongs to, in the adapter's routing-key terms (Twilio: the
    /// business number in E.164; Meta: the `phone_number_id`).
    pub routing_key: String,
    /// Unique per channel for this event; a redelivery has the same key, so storing it
    /// twice is a no-op (Twilio: `MessageSid`; Meta: the wamid, or wamid and status).
    pub event_key: String,
    pub kind: EventKind,
    /// The provider's own payload for this item, kept beside the canonical form.
    pub raw: serde_json::Value,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
// Events are built once and moved, never stored in bulk: boxing would cost an allocation
// per event for nothing.
#[allow(clippy::large_enum_variant)]
pub enum EventKind {
    /// A message from a person, or an echo of one the business typed on its phone.
    Message(InboundMessage),
    /// A status update for an outbound message.
    Status(StatusUpdate),
    /// An account-level error the provider reported (Meta `value.errors[]`).
    ProviderError(ProviderError),
    /// Something the provider reported that is not a 1:1 message or a status: an
    /// account-level notification (template, quality, account updates and alerts), or an
    /// item of a group chat. Stored as it came for the account it names; never filed into a
    /// conversation.
    Notification(ProviderNotification),
}

/// A provider notification for one account: one per (provider item, account it concerns),
/// so an item that concerns several accounts is several events with their own keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderNotification {
    /// What it is, in the provider's words (Meta: the webhook field, e.g.
    /// `message_template_status_update`), or `group_message` / `group_status` for an item
    /// of a group chat.
    pub kind: String,
    /// The provider entity it is about: the business account (Meta: `entry[].id`, the
    /// WABA id), or the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// When the provider says it happened, when it says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the person to the business.
    Inbound,
    /// From the business through Switchboard.
    Outbound,
    /// From the business, typed on its own phone app on the same number (coexistence).
    /// Stored as outbound in the conversation; never treated as inbound (it does not open
    /// the service window and does not trigger opt-out handling).
    Echo,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Echo => "echo",
        }
    }

    /// Parses `inbound`, `outbound` or `echo`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Self::Inbound),
            "outbound" => Some(Self::Outbound),
            "echo" => Some(Self::Echo),
            _ => None,
        }
    }
}

/// A message a person sent, or an echo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub provider_message_id: String,
    pub direction: Direction,
    /// The person: the sender of an inbound message, the recipient of an echo.
    pub contact: ContactIdentity,
    /// When the provider says it was sent.
    pub timestamp: DateTime<Utc>,
    pub content: Content,
    /// The provider id of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<Forwarded>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
    /// What this message does to the contact's opt-out from the sender, as the channel
    /// reads it.
    #[serde(default, skip_serializing_if = "OptChange::is_by_keyword")]
    pub opt: OptChange,
}

/// What an inbound message does to its contact's opt-out from the sender. Channels differ:
/// on WhatsApp writing again is consent, on SMS only an opt-in keyword is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptChange {
    /// The router's convention where writing is consent: a bare STOP keyword (`STOP`,
    /// `UNSUBSCRIBE`, `STOPALL`, `CANCEL`, `END`, `QUIT`) opts out, any other message opts
    /// back in.
    #[default]
    ByKeyword,
    /// The contact opted out of messages from this sender.
    OptOut,
    /// The contact opted back in.
    OptIn,
    /// No change, whatever the text says.
    Unchanged,
}

impl OptChange {
    pub fn is_by_keyword(&self) -> bool {
        *self == Self::ByKeyword
    }
}

/// Forwarding flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// Forwarded more than five times.
    pub frequently: bool,
}

/// Where a conversation started from a click-to-WhatsApp ad or post.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// The provider's id of the ad's media (Twilio `ReferralMediaId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// Click-to-WhatsApp click id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    /// The ad's welcome message, as the person saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_message: Option<String>,
}

/// How the provider says an outbound message is billed (Meta: `statuses[].pricing`). Prices
/// are not in Meta's webhooks; `price` and `currency` are for providers that report them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// Whether the message is charged (Meta says this flag will be deprecated; `type` and
    /// `category` say it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    /// e.g. `marketing`, `utility`, `authentication`, `service`, `referral_conversion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The pricing model, e.g. `PMP` (per message) or `CBP` (per conversation, before July
    /// 2025).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// e.g. `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The amount charged, as the provider spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// ISO 4217.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl Pricing {
    /// Whether it says nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A status update for an outbound message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    /// Switchboard's own message id, when the provider echoed it back (Twilio: in the status
    /// callback URL; Meta: `biz_opaque_callback_data`). Lets a status that arrives before the
    /// send's response find its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ref: Option<String>,
    pub status: MessageStatus,
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProviderError>,
    /// The recipient as the provider reports it (may carry a different `wa_id` or a BSUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<ContactIdentity>,
    /// How the message is billed, when this report says (Meta puts it on one of `sent`,
    /// `delivered` or `read`): stored on the message, a later report replacing it only when
    /// it carries pricing too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

/// An error as the provider reported it: its code is kept verbatim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}
