//! Canonical events and signed webhooks for the fake channel (`FakeAdapter`).

use chrono::Utc;
use switchboard_core::testing::{self, FakeAdapter};
use switchboard_core::{
    ContactIdentity, Content, EventKind, InboundEvent, MessageStatus, PhoneNumber, StatusUpdate,
    Template, WebhookRequest,
};
use switchboard_router::{Router, SendRequest, WebhookAck};

/// The fake account's webhook secret.
pub const SECRET: &str = "fake-webhook-secret";
/// The fake account's business number (its routing key).
pub const BUSINESS: &str = "+14155238886";

/// An inbound text from `contact`, keyed (and provider-id'd) by `key`.
pub fn inbound(key: &str, contact: ContactIdentity, text: &str) -> InboundEvent {
    testing::inbound_text(BUSINESS, key, contact, text)
}

/// An inbound text from the phone number `from`.
pub fn inbound_from(key: &str, from: &str, text: &str) -> InboundEvent {
    inbound(key, phone(from), text)
}

/// A contact known by a phone number.
pub fn phone(number: &str) -> ContactIdentity {
    ContactIdentity::from_phone(PhoneNumber::parse(number).unwrap())
}

/// A status report for the provider id `provider_id` (and our id, when the provider
/// echoed it back).
pub fn status(
    key: &str,
    provider_id: &str,
    message_ref: Option<&str>,
    status: MessageStatus,
) -> InboundEvent {
    InboundEvent {
        routing_key: BUSINESS.into(),
        event_key: key.into(),
        kind: EventKind::Status(StatusUpdate {
            provider_message_id: provider_id.into(),
            message_ref: message_ref.map(str::to_owned),
            status,
            timestamp: Utc::now(),
            error: None,
            recipient: None,
            pricing: None,
        }),
        raw: serde_json::json!({"status": status.as_str()}),
    }
}

/// A webhook carrying `events`, with `signature` in the signature header (none: unsigned).
pub fn webhook(events: &[InboundEvent], signature: Option<&str>) -> WebhookRequest {
    FakeAdapter::webhook(BUSINESS, events, signature)
}

/// A webhook carrying `events`, correctly signed.
pub fn signed(events: &[InboundEvent]) -> WebhookRequest {
    webhook(events, Some(SECRET))
}

/// Stores `events` through a correctly signed webhook.
pub async fn receive(router: &Router, events: &[InboundEvent]) -> WebhookAck {
    router
        .receive_webhook("fake", signed(events))
        .await
        .unwrap()
}

/// A text to `to`, on whichever channel the router picks.
pub fn text_to(to: &str, text: &str) -> SendRequest {
    SendRequest {
        to: to.into(),
        content: Content::text(text),
        ..Default::default()
    }
}

/// The approved template `order_update` (en_US) to `to`: allowed outside the window.
pub fn template_to(to: &str) -> SendRequest {
    SendRequest {
        to: to.into(),
        content: Content {
            template: Some(Template {
                name: "order_update".into(),
                language: Some("en_US".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}
