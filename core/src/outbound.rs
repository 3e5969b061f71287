//! Outbound messages and what a provider answers when it accepts one.

use serde::{Deserialize, Serialize};

use crate::content::Content;
use crate::error::Exchange;
use crate::identity::Bsuid;
use crate::phone::PhoneNumber;
use crate::status::MessageStatus;

/// Who an outbound message goes to: a phone number, or a BSUID where the provider allows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsuid: Option<Bsuid>,
}

impl Recipient {
    pub fn phone(phone: PhoneNumber) -> Self {
        Self {
            phone: Some(phone),
            bsuid: None,
        }
    }
}

/// A message for an adapter to send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Switchboard's own message id. Adapters pass it to the provider where it can be echoed
    /// back with statuses (Twilio status callback URL, Meta `biz_opaque_callback_data`).
    pub id: String,
    pub to: Recipient,
    pub content: Content,
    /// The provider id of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// The provider accepted a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendReceipt {
    pub provider_message_id: String,
    /// The status the provider reported on acceptance (`queued`, `accepted`, `sent`, …).
    pub status: MessageStatus,
    /// The WhatsApp id the provider resolved the recipient to, when it reports one and it
    /// differs from the number sent to (Meta `contacts[].wa_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_wa_id: Option<PhoneNumber>,
    /// The business-scoped user id the provider reports for the recipient (Meta
    /// `contacts[].user_id`, given on sends to a BSUID; for a parent BSUID it is the
    /// person's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_bsuid: Option<Bsuid>,
    /// The HTTP exchange, secrets redacted, for the attempt history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Exchange>,
}
