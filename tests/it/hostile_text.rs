//! Text a database cannot hold (U+0000: PostgreSQL's `text` refuses it) is never a 5xx:
//! a webhook carrying it is stored cleaned (its raw payload still shows what came), and an
//! API request naming it is refused with 400 or 404, the same on both backends.

use chrono::Utc;
use reqwest::Method;
use serde_json::json;
use switchboard_core::{
    ContactIdentity, Content, Direction, EventKind, InboundEvent, InboundMessage, PhoneNumber,
};

use crate::support::api::{ALICE, start};
use crate::support::fake::BUSINESS;
use crate::support::on_each_backend;

fn message_with_nul(event_key: &str) -> InboundEvent {
    InboundEvent {
        routing_key: BUSINESS.into(),
        event_key: event_key.into(),
        kind: EventKind::Message(InboundMessage {
            provider_message_id: format!("{event_key}\0id"),
            direction: Direction::Inbound,
            contact: ContactIdentity {
                profile_name: Some("Ali\0ce".into()),
                ..ContactIdentity::from_phone(PhoneNumber::parse(ALICE).unwrap())
            },
            timestamp: Utc::now(),
            content: Content::text("hel\0lo"),
            reply_to: None,
            forwarded: None,
            referral: None,
            opt: Default::default(),
        }),
        raw: json!({"body": "hel\u{0}lo"}),
    }
}

#[tokio::test]
async fn a_webhook_with_nul_characters_is_stored_cleaned() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let admin = api.admin.clone();
        api.webhook(&[message_with_nul("E\0one")]).await;
        // A redelivery is still one message.
        api.webhook(&[message_with_nul("E\0one")]).await;
        let conversations = api.get("/v1/conversations", &admin).await.expect(200, None);
        let list = conversations.body["data"].as_array().unwrap().clone();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["contact"]["profile_name"], "Alice");
        let id = list[0]["id"].as_str().unwrap();
        let messages = api
            .get(&format!("/v1/conversations/{id}/messages"), &admin)
            .await
            .expect(200, None);
        let messages = messages.body["data"].as_array().unwrap().clone();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0]["content"]["text"], "hello");
        assert_eq!(messages[0]["provider_message_id"], "Eoneid");
    })
    .await;
}

#[tokio::test]
async fn api_input_with_nul_characters_is_refused_not_a_5xx() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let admin = api.admin.clone();
        api.inbound("W1", ALICE, "hi").await;
        let sent = api
            .post(
                "/v1/messages",
                &admin,
                json!({"to": ALICE, "text": "hi", "idempotency_key": "k\u{0}1"}),
            )
            .await;
        sent.expect(400, Some("invalid_idempotency_key"));
        let sent = api
            .post(
                "/v1/messages",
                &admin,
                json!({"to": ALICE, "text": "a\u{0}b"}),
            )
            .await;
        sent.expect(400, Some("invalid_text"));
        api.get("/v1/messages/msg_%00x", &admin)
            .await
            .expect(404, Some("not_found"));
        api.get("/v1/conversations/cnv_%00x/messages", &admin)
            .await
            .expect(404, Some("not_found"));
        api.get("/v1/conversations?cursor=%00", &admin)
            .await
            .expect(400, Some("invalid_cursor"));
        api.get("/v1/contacts?phone=%2B31%00612345678", &admin)
            .await
            .expect(400, Some("invalid_phone"));
        api.call(Method::DELETE, "/v1/accounts/acc_%00", Some(&admin), None)
            .await
            .expect(404, Some("not_found"));
        // And the server is healthy afterwards.
        let health = reqwest::get(format!("{}/health", api.base)).await.unwrap();
        assert_eq!(health.status(), 200);
    })
    .await;
}
