//! Twilio's wire shapes: the form-encoded webhooks and API calls, the JSON error body, and
//! the message status vocabulary shared by webhooks, send receipts and status look-ups.

use serde::Deserialize;
use serde_json::Value;
use switchboard_core::MessageStatus;

/// A decoded form, every pair in order, repeated keys kept.
#[derive(Clone, Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Decodes `application/x-www-form-urlencoded` bytes (lossy on invalid UTF-8).
    pub fn parse(bytes: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(bytes).into_owned().collect(),
        }
    }

    /// A form from already-decoded pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, when it is not blank.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// The form as a JSON object of strings; a repeated key becomes an array of its values.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.pairs {
            match map.get_mut(k) {
                None => {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
                Some(Value::Array(items)) => items.push(Value::String(v.clone())),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::String(v.clone())]);
                }
            }
        }
        Value::Object(map)
    }

    /// Whether it is a status callback: `MessageStatus` present and not an inbound one.
    pub fn is_status_callback(&self) -> bool {
        self.get("MessageStatus")
            .is_some_and(|s| !matches!(s, "received" | "receiving"))
    }
}

/// Twilio's 2010 API error body: `{"code":21211,"message":"…","more_info":"…","status":400}`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct TwilioErrorBody {
    #[serde(default)]
    pub code: Option<u32>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub more_info: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
}

/// Maps Twilio's message status. `queued` (Twilio holds it, not yet sent) is the provider's
/// acceptance, so it maps to [`MessageStatus::Accepted`]; core's `Queued` is Switchboard's
/// own outbox state. `partially_delivered` counts as delivered.
pub fn map_status(status: &str) -> Option<MessageStatus> {
    Some(match status.trim().to_ascii_lowercase().as_str() {
        "queued" | "accepted" | "scheduled" => MessageStatus::Accepted,
        "sending" => MessageStatus::Sending,
        "sent" => MessageStatus::Sent,
        "delivered" | "partially_delivered" => MessageStatus::Delivered,
        "undelivered" => MessageStatus::Undelivered,
        "failed" => MessageStatus::Failed,
        "read" => MessageStatus::Read,
        "canceled" => MessageStatus::Canceled,
        "received" | "receiving" => MessageStatus::Received,
        _ => return None,
    })
}
