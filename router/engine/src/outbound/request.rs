//! What a send asks for and what it is answered: the vocabulary `send()` (`send.rs`) and
//! what it writes (`accept.rs`) share.

use serde::Serialize;
use sha2::{Digest, Sha256};
use switchboard_core::{ContactIdentity, Content};

/// A message the product wants sent.
#[derive(Clone, Debug, Default)]
pub struct SendRequest {
    /// The recipient: a phone number in any spelling, or a BSUID.
    pub to: String,
    /// The channel to send on; when absent, the channel the contact last wrote to.
    pub channel: Option<String>,
    /// The business number to send from; when absent, the one the contact last wrote to.
    pub from: Option<String>,
    pub content: Content,
    /// Switchboard id of the message this one replies to.
    pub reply_to: Option<String>,
    /// Makes a repeated request return the first message instead of sending again.
    pub idempotency_key: Option<String>,
    /// Channels to send on next, in order, when the recipient cannot be reached on the
    /// first (see `outbound::fallback`).
    pub fallback: Vec<FallbackTarget>,
}

/// A channel a message falls back to: the channel and, optionally, the business number to
/// send from (as for `SendRequest::from`; absent: the tenant's account on that channel the
/// contact last wrote to, or its only one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FallbackTarget {
    pub channel: String,
    pub from: Option<String>,
}

/// What `send()` accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SendAccepted {
    pub id: String,
    pub status: String,
    pub channel: String,
    pub conversation_id: String,
    /// When the channel carries fewer media items per message than were given, the further
    /// messages the request was split into, in the order they will be delivered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// The SMS segments the (first) message is billed as, where its channel counts so
    /// (`ChannelAdapter::text_segments`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
}

/// The SHA-256 (hex) of what a request asks for, less its idempotency key: a key reused
/// with another request is refused rather than answered with the first message. The JSON
/// is canonical: object keys sorted (`serde_json::Value` keeps them in a sorted map).
pub(crate) fn request_hash(request: &SendRequest, recipient: &ContactIdentity) -> String {
    // The recipient as parsed: the same number in another spelling is the same request.
    let mut canonical = serde_json::json!({
        "to": recipient,
        "channel": request.channel,
        "from": request.from,
        "content": request.content,
        "reply_to": request.reply_to,
    });
    // Only when given, so requests without one hash as they did before fallback existed.
    if !request.fallback.is_empty() {
        canonical["fallback"] = serde_json::json!(request.fallback);
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}
