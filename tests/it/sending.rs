//! Sending: a send is stored before it is delivered, free-form outside the customer-service
//! window is refused, idempotency keys send once, media beyond a channel's limit is split;
//! through the engine and through `POST /v1/messages`. On SQLite and PostgreSQL.

use sea_orm::EntityTrait;
use serde_json::json;
use switchboard_core::{MessageStatus, PhoneNumber};
use switchboard_router::RouterError;
use switchboard_router::store::entity::{contacts, messages, outbox, send_attempts};

use crate::support::api::{ALICE, BOB, reply, start, text_message};
use crate::support::fake::{inbound, phone, receive, status, text_to};
use crate::support::{count, fake_setup, on_each_backend};

#[tokio::test]
async fn send_persists_then_delivers_and_records_the_receipt() {
    on_each_backend(|db| async move {
        let (router, fake, tenant) = fake_setup(&db).await;
        receive(&router, &[inbound("in", phone("+31612345678"), "hi")]).await;
        let accepted = router
            .send(&tenant, text_to("+31612345678", "hello back"))
            .await
            .unwrap();
        assert_eq!(accepted.status, "queued");
        assert!(fake.sent().is_empty(), "send() returns before delivery");
        assert_eq!(count(&router, outbox::Entity).await, 1);
        assert_eq!(router.delivery().deliver_due().await.unwrap(), 1);
        let sent = fake.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.id, accepted.id);
        assert_eq!(
            sent[0].1.to.phone.as_ref().map(PhoneNumber::as_str),
            Some("+31612345678")
        );
        assert_eq!(sent[0].1.content.text.as_deref(), Some("hello back"));
        let row = messages::Entity::find_by_id(accepted.id.clone())
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.provider_message_id.as_deref(), Some("fake-1"));
        assert_eq!(row.status, "accepted");
        assert_eq!(count(&router, outbox::Entity).await, 0);
        assert_eq!(count(&router, send_attempts::Entity).await, 1);
        // A status that names our id before the provider id is known, and late regressions.
        let evs = [
            status("s-read", "fake-1", None, MessageStatus::Read),
            status("s-sent", "fake-1", None, MessageStatus::Sent),
            status("s-deliv", "fake-1", None, MessageStatus::Delivered),
        ];
        receive(&router, &evs).await;
        let row = messages::Entity::find_by_id(accepted.id)
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "read");
    })
    .await;
}

#[tokio::test]
async fn outside_the_window_free_form_is_refused_and_nothing_is_stored() {
    on_each_backend(|db| async move {
        let (router, fake, tenant) = fake_setup(&db).await;
        let err = router
            .send(&tenant, text_to("+31612345678", "cold"))
            .await
            .unwrap_err();
        assert!(matches!(err, RouterError::OutsideServiceWindow));
        assert_eq!(err.code(), "outside_service_window");
        assert_eq!(count(&router, messages::Entity).await, 0);
        assert_eq!(count(&router, contacts::Entity).await, 0);
        router.delivery().deliver_due().await.unwrap();
        assert!(fake.sent().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_text_inside_the_window_is_accepted_delivered_and_shows_its_status_history() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hello?").await;
        // Any spelling of the number reaches the conversation the person opened.
        let accepted = api
            .post(
                "/v1/messages",
                &api.admin,
                text_message("whatsapp:+31 6 1234 5678", "hi Alice"),
            )
            .await
            .expect(202, None);
        assert_eq!(accepted.body["status"], "queued");
        assert_eq!(accepted.body["channel"], "fake");
        assert!(
            accepted.body.get("parts").is_none(),
            "no parts for a single message"
        );
        let id = accepted.body["id"].as_str().unwrap().to_owned();
        let conversation_id = accepted.body["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();

        let queued = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None);
        assert_eq!(queued.body["status"], "queued");
        assert!(queued.body["provider_message_id"].is_null());
        assert_eq!(queued.body["attempts"], json!([]));

        assert_eq!(api.router.delivery().deliver_due().await.unwrap(), 1);
        let sent = api.fake.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.content.text.as_deref(), Some("hi Alice"));

        let m = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None)
            .body;
        assert_eq!(m["id"], id.as_str());
        assert_eq!(m["conversation_id"], conversation_id.as_str());
        assert_eq!(m["direction"], "outbound");
        assert_eq!(m["channel"], "fake");
        assert_eq!(m["status"], "accepted");
        assert_eq!(m["provider_message_id"], "fake-1");
        assert!(m["error_code"].is_null());
        assert_eq!(m["content"]["text"], "hi Alice");
        assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
        let attempts = m["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{m}");
        assert_eq!(attempts[0]["attempt"], 1);
        assert!(attempts[0]["outcome"].is_string());

        // Status webhooks move it forward; the history keeps every report in order.
        api.status("st-1", "fake-1", MessageStatus::Delivered).await;
        api.status("st-2", "fake-1", MessageStatus::Read).await;
        api.status("st-3", "fake-1", MessageStatus::Sent).await; // late: recorded, no regression
        let m = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None)
            .body;
        assert_eq!(m["status"], "read");
        let history: Vec<&str> = m["status_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert_eq!(history, ["accepted", "delivered", "read", "sent"]);
        assert!(m["status_history"][1]["at"].is_string());

        // A reaction names the message by its Switchboard id; the provider gets its own id.
        let first = api
            .get(
                &format!("/v1/conversations/{conversation_id}/messages?limit=1"),
                &api.admin,
            )
            .await
            .expect(200, None);
        let inbound_message = first.body["data"][0]["id"].as_str().unwrap().to_owned();
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": ALICE, "reaction": {"message_id": inbound_message, "emoji": "👍"}}),
        )
        .await
        .expect(202, None);
        api.deliver_all().await;
        let reaction = api
            .fake
            .sent()
            .last()
            .unwrap()
            .1
            .content
            .reaction
            .clone()
            .unwrap();
        assert_eq!(reaction.message_id, "in-1");
        assert_eq!(reaction.emoji.as_deref(), Some("👍"));
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": ALICE, "reaction": {"message_id": "msg_unknown", "emoji": "x"}}),
        )
        .await
        .expect(404, Some("not_found"));

        api.get("/v1/messages/msg_unknown", &api.admin)
            .await
            .expect(404, Some("not_found"));
    })
    .await;
}

#[tokio::test]
async fn free_form_outside_the_window_is_422_and_nothing_is_stored_or_sent_but_a_template_is_accepted()
 {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.post("/v1/messages", &api.admin, text_message(BOB, "hi"))
            .await
            .expect(422, Some("outside_service_window"));
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": BOB, "media": [{"url": "https://cdn.test/a.jpg"}]}),
        )
        .await
        .expect(422, Some("outside_service_window"));
        assert_eq!(api.message_count().await, 0);
        assert_eq!(api.router.delivery().deliver_due().await.unwrap(), 0);
        assert!(api.fake.sent().is_empty());

        let template = json!({"to": BOB, "template": {"name": "HXb5b62575e6e4ff6129ad7c8efe1f983e",
            "language": "en", "variables": {"1": "12/1", "2": "3pm"}}});
        let accepted = api
            .post("/v1/messages", &api.admin, template)
            .await
            .expect(202, None);
        api.router.delivery().deliver_due().await.unwrap();
        let sent = api.fake.sent();
        assert_eq!(sent.len(), 1);
        let t = sent[0].1.content.template.as_ref().unwrap();
        assert_eq!(t.name, "HXb5b62575e6e4ff6129ad7c8efe1f983e");
        assert_eq!(t.variables.get("2").map(String::as_str), Some("3pm"));
        let id = accepted.body["id"].as_str().unwrap();
        let m = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None)
            .body;
        assert_eq!(m["content"]["template"]["language"], "en");
        assert!(m["content"].get("text").is_none());
    })
    .await;
}

/// Sends racing with one idempotency key store one message and all answer with it; sends
/// without a key never conflict with each other (the key's unique index holds keyed
/// messages only, `m20261210_000001_idempotency_partial`, and a send's insert names its
/// predicate).
#[tokio::test]
async fn sends_racing_with_one_idempotency_key_store_one_message_and_keyless_sends_never_conflict()
{
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let body = json!({"to": ALICE, "text": "once", "idempotency_key": "race-1"});
        let answers = futures::future::join_all(
            (0..8).map(|_| api.post("/v1/messages", &api.admin, body.clone())),
        )
        .await;
        let ids: std::collections::BTreeSet<String> = answers
            .into_iter()
            .map(|a| a.expect(202, None).body["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "every racing send answers the one message: {ids:?}"
        );

        let keyless = futures::future::join_all((0..4).map(|i| {
            api.post(
                "/v1/messages",
                &api.admin,
                text_message(ALICE, &format!("free {i}")),
            )
        }))
        .await;
        let keyless: std::collections::BTreeSet<String> = keyless
            .into_iter()
            .map(|a| a.expect(202, None).body["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keyless.len(), 4);
        assert_eq!(api.deliver_all().await, 5);
        assert_eq!(api.message_count().await, 6, "one inbound, five outbound");
    })
    .await;
}

#[tokio::test]
async fn an_idempotency_key_in_the_body_or_the_header_returns_the_first_message_and_sends_once() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let body = json!({"to": ALICE, "text": "once", "idempotency_key": "order-42"});
        let first = api
            .post("/v1/messages", &api.admin, body.clone())
            .await
            .expect(202, None);
        let again = api
            .post("/v1/messages", &api.admin, body)
            .await
            .expect(202, None);
        assert_eq!(first.body["id"], again.body["id"]);

        let with_header = || {
            api.client
                .post(format!("{}/v1/messages", api.base))
                .bearer_auth(&api.admin)
                .header("Idempotency-Key", "order-43")
                .json(&text_message(ALICE, "twice?"))
        };
        let h1 = reply(with_header().send().await.unwrap())
            .await
            .expect(202, None);
        let h2 = reply(with_header().send().await.unwrap())
            .await
            .expect(202, None);
        assert_eq!(h1.body["id"], h2.body["id"]);
        assert_ne!(h1.body["id"], first.body["id"]);

        let mismatch = api
            .client
            .post(format!("{}/v1/messages", api.base))
            .bearer_auth(&api.admin)
            .header("Idempotency-Key", "order-44")
            .json(&json!({"to": ALICE, "text": "x", "idempotency_key": "order-45"}))
            .send()
            .await
            .unwrap();
        reply(mismatch)
            .await
            .expect(400, Some("idempotency_key_mismatch"));

        assert_eq!(api.deliver_all().await, 2);
        let texts: Vec<String> = api
            .fake
            .sent()
            .iter()
            .filter_map(|(_, m)| m.content.text.clone())
            .collect();
        assert_eq!(texts, ["once", "twice?"]);
        assert_eq!(api.message_count().await, 3, "one inbound, two outbound");
    })
    .await;
}

#[tokio::test]
async fn media_beyond_the_channel_limit_are_split_into_parts_in_order() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "send the documents").await;
        let body = json!({"to": ALICE, "text": "here you go", "media": [
            {"url": "https://cdn.test/photo.jpg", "caption": "the house"},
            {"url": "https://cdn.test/contract.pdf?sig=abc", "filename": "contract.pdf"},
            {"url": "https://cdn.test/tour", "kind": "video"}
        ], "idempotency_key": "split-1"});
        let accepted = api
            .post("/v1/messages", &api.admin, body.clone())
            .await
            .expect(202, None);
        let parts = accepted.body["parts"].as_array().unwrap().clone();
        assert_eq!(
            parts.len(),
            2,
            "the fake channel carries one media item per message"
        );
        // A replay of the key answers the same message with the same parts.
        let replay = api
            .post("/v1/messages", &api.admin, body)
            .await
            .expect(202, None);
        assert_eq!(replay.body["id"], accepted.body["id"]);
        assert_eq!(replay.body["parts"], accepted.body["parts"]);
        let first = api
            .get(
                &format!("/v1/messages/{}", accepted.body["id"].as_str().unwrap()),
                &api.admin,
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(first["content"]["text"], "here you go");
        assert_eq!(
            first["content"]["media"],
            json!([{"kind": "image", "url": "https://cdn.test/photo.jpg", "caption": "the house"}])
        );
        let second = api
            .get(
                &format!("/v1/messages/{}", parts[0].as_str().unwrap()),
                &api.admin,
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(second["content"]["media"][0]["kind"], "document");
        assert_eq!(second["content"]["media"][0]["filename"], "contract.pdf");
        assert!(second["content"].get("text").is_none());
        let third = api
            .get(
                &format!("/v1/messages/{}", parts[1].as_str().unwrap()),
                &api.admin,
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(third["content"]["media"][0]["kind"], "video");

        assert_eq!(api.deliver_all().await, 3);
        let urls: Vec<String> = api
            .fake
            .sent()
            .iter()
            .map(|(_, m)| m.content.media[0].url.clone().unwrap())
            .collect();
        assert_eq!(
            urls,
            [
                "https://cdn.test/photo.jpg",
                "https://cdn.test/contract.pdf?sig=abc",
                "https://cdn.test/tour"
            ]
        );

        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": ALICE, "media": [{"url": "https://x/y", "kind": "hologram"}]}),
        )
        .await
        .expect(400, Some("invalid_media_kind"));
    })
    .await;
}
