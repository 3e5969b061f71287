//! The content model through `POST /v1/messages`, whatever the channel: every kind reaches
//! the channel intact, one kind per message, WhatsApp's interactive limits and card rules
//! checked before anything is queued, kinds a channel cannot carry refused with 422, `to` as
//! a contact id or a BSUID, and `POST /v1/messages/{id}/read`. On SQLite and PostgreSQL,
//! over the fake channel (the provider wire formats are tested in `sending_content_meta` and
//! `sending_content_twilio`).

use sea_orm::EntityTrait;
use serde_json::{Value, json};
use switchboard_core::testing::FakeAdapter;
use switchboard_core::{Bsuid, Capabilities, ChannelId, ContactIdentity, Header, MediaKind};
use switchboard_router::store::entity::{messages, outbox};
use switchboard_router::{RouterError, SendRequest};

use crate::support::api::{ALICE, Api, BOB, start};
use crate::support::fake::{inbound, phone, receive};
use crate::support::{count, fake_site_with, on_each_backend};

const BSUID: &str = "US.13491208655302741918";

/// Alice writes (opening the window); returns the id of her message.
async fn alice_writes(api: &Api) -> String {
    api.inbound("in-1", ALICE, "hello").await;
    inbound_message_id(api, "in-1").await
}

async fn inbound_message_id(api: &Api, provider_id: &str) -> String {
    let convs = api
        .get("/v1/conversations", &api.admin)
        .await
        .expect(200, None);
    for conv in convs.body["data"].as_array().unwrap() {
        let path = format!(
            "/v1/conversations/{}/messages",
            conv["id"].as_str().unwrap()
        );
        let msgs = api.get(&path, &api.admin).await.expect(200, None);
        if let Some(m) = msgs.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["provider_message_id"] == provider_id)
        {
            return m["id"].as_str().unwrap().to_owned();
        }
    }
    panic!("no message {provider_id}");
}

/// Sends `body` (with `to: ALICE` unless given), delivers, and returns the content the
/// channel was asked to send and the stored message.
async fn send_and_deliver(api: &Api, mut body: Value) -> (switchboard_core::Content, Value) {
    if body.get("to").is_none() {
        body["to"] = ALICE.into();
    }
    let accepted = api
        .post("/v1/messages", &api.admin, body)
        .await
        .expect(202, None);
    let before = api.fake.sent().len();
    api.deliver_all().await;
    let sent = api.fake.sent();
    assert_eq!(sent.len(), before + 1);
    let id = accepted.body["id"].as_str().unwrap();
    let stored = api
        .get(&format!("/v1/messages/{id}"), &api.admin)
        .await
        .expect(200, None);
    (sent.last().unwrap().1.content.clone(), stored.body)
}

#[tokio::test]
async fn every_content_kind_reaches_the_channel_and_reads_back_as_sent() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let first = alice_writes(&api).await;

        let buttons = json!({"type": "buttons", "header": {"type": "image", "url": "https://cdn.test/a.png"},
            "body": "Change or cancel?", "footer": "Lucky Shrub",
            "buttons": [{"id": "change", "title": "Change"}, {"id": "cancel", "title": "Cancel"}]});
        let (content, stored) = send_and_deliver(&api, json!({"interactive": buttons})).await;
        let sent = content.interactive_message.unwrap();
        assert_eq!(sent.buttons[1].id, "cancel");
        assert!(matches!(&sent.header, Some(Header::Media(m)) if m.kind == MediaKind::Image));
        // The API reads back what it was given.
        assert_eq!(stored["content"]["interactive_message"], buttons);

        let list = json!({"type": "list", "body": "Which shipping option?", "button": "Options",
            "sections": [{"title": "Fast", "rows": [{"id": "x", "title": "Express", "description": "1 day"}]},
                         {"title": "Slow", "rows": [{"id": "y", "title": "Ground"}]}]});
        let (content, _) = send_and_deliver(&api, json!({"interactive": list})).await;
        assert_eq!(content.interactive_message.unwrap().sections.len(), 2);

        let card = json!([{"name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara"},
            "phones": [{"phone": "+16505559999", "type": "Home", "wa_id": "16505559999"}],
            "emails": [{"email": "b@luckyshrub.test", "type": "Work"}],
            "org": {"company": "Lucky Shrub"}, "birthday": "1999-01-23"}]);
        let (content, stored) = send_and_deliver(&api, json!({"contacts": card})).await;
        assert_eq!(content.contacts[0].name.formatted_name, "Barbara J. Johnson");
        assert_eq!(stored["content"]["contacts"], card);

        let location = json!({"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Hacker Way"});
        let (content, _) = send_and_deliver(&api, json!({"location": location})).await;
        assert_eq!(content.location.unwrap().name.as_deref(), Some("HQ"));

        let template = json!({"name": "order_update", "language": "en_US",
            "variables": {"first_name": "Ana"},
            "header": {"type": "location", "latitude": 1.5, "longitude": 2.5, "name": "Shop"},
            "buttons": [{"index": 0, "type": "quick_reply", "payload": "STOP"},
                        {"index": 1, "type": "url", "text": "860198"},
                        {"index": 2, "type": "copy_code", "text": "SUMMER20"}]});
        let (content, _) = send_and_deliver(&api, json!({"template": template})).await;
        let t = content.template.unwrap();
        assert!(matches!(t.header, Some(Header::Location(l)) if l.name.as_deref() == Some("Shop")));
        let kinds: Vec<_> = t.buttons.iter().map(|b| (b.index, b.sub_type.as_str(), b.value.as_str())).collect();
        assert_eq!(kinds, [(0, "quick_reply", "STOP"), (1, "url", "860198"), (2, "copy_code", "SUMMER20")]);

        // A reaction and a reply name Switchboard ids; the channel gets the provider's.
        let (content, _) =
            send_and_deliver(&api, json!({"reaction": {"message_id": first, "emoji": "👍"}})).await;
        assert_eq!(content.reaction.unwrap().message_id, "in-1");
        send_and_deliver(&api, json!({"text": "answering", "reply_to": first})).await;
        assert_eq!(api.fake.sent().last().unwrap().1.reply_to.as_deref(), Some("in-1"));
    })
    .await;
}

#[tokio::test]
async fn content_over_whatsapps_limits_or_mixed_is_refused_before_anything_is_queued() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        alice_writes(&api).await;
        let before = api.message_count().await;
        let four = json!({"type": "buttons", "body": "x", "buttons": [
            {"id": "1", "title": "a"}, {"id": "2", "title": "b"}, {"id": "3", "title": "c"}, {"id": "4", "title": "d"}]});
        let eleven_rows: Vec<Value> = (0..11).map(|i| json!({"id": format!("r{i}"), "title": "t"})).collect();
        let refused = [
            (json!({"to": ALICE, "interactive": four}), "invalid_interactive", "1 to 3 buttons"),
            (json!({"to": ALICE, "interactive": {"type": "buttons", "body": "x",
                "buttons": [{"id": "a", "title": "twenty-one characters"}]}}), "invalid_interactive", "buttons[0].title"),
            (json!({"to": ALICE, "interactive": {"type": "list", "body": "x", "button": "Open",
                "sections": [{"title": "A", "rows": eleven_rows}]}}), "invalid_interactive", "1 to 10 rows"),
            (json!({"to": ALICE, "interactive": {"type": "cta_url", "body": "x",
                "url": {"display_text": "Open", "url": "ftp://x.test"}}}), "invalid_interactive", "http"),
            (json!({"to": ALICE, "interactive": {"type": "flow", "body": "x",
                "flow": {"id": "1", "name": "n", "cta": "Go"}}}), "invalid_interactive", "exactly one"),
            (json!({"to": ALICE, "contacts": [{"name": {"first_name": "Ann"}}]}), "invalid_contacts", "formatted_name"),
            (json!({"to": ALICE, "contacts": [{"name": {"formatted_name": "Ann"}, "birthday": "23/01/1999"}]}), "invalid_contacts", "YYYY-MM-DD"),
            // Meta takes only the zero-padded form: refused here, not at delivery.
            (json!({"to": ALICE, "contacts": [{"name": {"formatted_name": "Ann"}, "birthday": "1999-1-2"}]}), "invalid_contacts", "YYYY-MM-DD"),
            (json!({"to": ALICE, "text": "hi", "location": {"latitude": 1, "longitude": 2}}), "conflicting_content", "text or media and location"),
            (json!({"to": ALICE, "template": {"name": "t", "language": "en",
                "buttons": [{"index": 0, "type": "quick_reply", "text": "x"}]}}), "invalid_template", "payload"),
            (json!({"to": ALICE, "template": {"name": "t", "language": "en",
                "buttons": [{"index": 0, "type": "call", "text": "x"}]}}), "invalid_template", "not quick_reply"),
            (json!({"to": ALICE, "template": {"name": "t", "language": "en",
                "buttons": [{"index": 1, "type": "url", "text": "a"}, {"index": 1, "type": "url", "text": "b"}]}}), "invalid_template", "distinct"),
        ];
        for (body, code, says) in refused {
            let r = api.post("/v1/messages", &api.admin, body.clone()).await.expect(400, Some(code));
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{body}: {message}");
        }
        // Unknown fields and header types are the body's fault too.
        for body in [
            json!({"to": ALICE, "interactive": {"type": "carousel", "body": "x"}}),
            json!({"to": ALICE, "interactive": {"type": "buttons", "body": "x", "buttons": [], "colour": 1}}),
            json!({"to": ALICE, "template": {"name": "t", "header": {"type": "gif", "url": "u"}}}),
        ] {
            api.post("/v1/messages", &api.admin, body).await.expect(400, Some("invalid_json"));
        }
        assert_eq!(api.message_count().await, before);
        assert_eq!(count(&api.router, outbox::Entity).await, 0);
    })
    .await;
}

fn text_only_capabilities() -> Capabilities {
    Capabilities {
        max_text_chars: 1600,
        max_caption_chars: 1600,
        max_media_per_message: 1,
        media_kinds: &[MediaKind::Image],
        templates: true,
        template_components: false,
        interactive: &[switchboard_core::InteractiveType::Buttons],
        contacts: false,
        reactions: false,
        locations: false,
        reply_context: false,
        send_to_bsuid: false,
        read_receipts: false,
        typing_indicator: false,
        default_rate_per_second: 80,
        recipient_pacing: None,
        service_window: None,
    }
}

#[tokio::test]
async fn kinds_a_channel_cannot_carry_are_refused_with_422_naming_the_channel_and_part() {
    on_each_backend(|db| async move {
        let fake = FakeAdapter::named(ChannelId::new_static("fake"))
            .with_capabilities(text_only_capabilities());
        let site = fake_site_with(db.store().await, fake, |b| b).await;
        receive(&site.router, &[inbound("in-1", phone(ALICE), "hi")]).await;
        let with = |content: switchboard_core::Content| SendRequest {
            to: ALICE.into(),
            content,
            ..SendRequest::default()
        };
        let parse = |v: Value| -> switchboard_core::Content { serde_json::from_value(v).unwrap() };
        let cases = [
            (parse(json!({"interactive_message": {"type": "list", "body": "b", "button": "Open",
                "sections": [{"rows": [{"id": "a", "title": "A"}]}]}})), "interactive list"),
            (parse(json!({"contacts": [{"name": {"formatted_name": "Ann"}}]})), "contacts"),
            (parse(json!({"location": {"latitude": 1.0, "longitude": 2.0}})), "location"),
            (parse(json!({"media": [{"kind": "video", "url": "https://x.test/v.mp4"}]})), "video media"),
            (parse(json!({"template": {"name": "t", "header": {"type": "text", "text": "Hi"}}})), "template header"),
            (parse(json!({"template": {"name": "t", "buttons": [{"index": 0, "sub_type": "url", "value": "x"}]}})), "template buttons"),
        ];
        for (content, part) in cases {
            let err = site.router.send(&site.tenant, with(content)).await.unwrap_err();
            assert!(matches!(err, RouterError::UnsupportedContent(_)), "{err:?}");
            assert_eq!(err.code(), "unsupported_content");
            assert_eq!(err.http_status(), 422);
            assert_eq!(err.to_string(), format!("fake cannot carry this message's {part}"));
        }
        // What it does carry goes.
        let buttons = parse(json!({"interactive_message": {"type": "buttons", "body": "b",
            "buttons": [{"id": "a", "title": "A"}]}}));
        site.router.send(&site.tenant, with(buttons)).await.unwrap();
        // A reply's context, and a recipient known by BSUID alone.
        let msg_id = site.router.send(&site.tenant, with(parse(json!({"text": "x"})))).await.unwrap().id;
        let reply = SendRequest { reply_to: Some(msg_id), ..with(parse(json!({"text": "y"}))) };
        let err = site.router.send(&site.tenant, reply).await.unwrap_err();
        assert_eq!(err.code(), "unsupported_content");
        assert!(err.to_string().contains("reply_to"), "{err}");
        let to_bsuid = SendRequest { to: BSUID.into(), ..with(parse(json!({"text": "z"}))) };
        let err = site.router.send(&site.tenant, to_bsuid).await.unwrap_err();
        assert_eq!(err.code(), "unsupported_content");
        assert!(err.to_string().contains("BSUID"), "{err}");
        assert_eq!(count(&site.router, messages::Entity).await, 3, "1 inbound and 2 sent");
    })
    .await;
}

#[tokio::test]
async fn to_may_be_a_contact_id_or_a_bsuid_and_a_known_number_wins() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        // Bob is known by number and BSUID; Carol only by BSUID.
        let bob = ContactIdentity {
            bsuid: Some(Bsuid::parse(BSUID).unwrap()),
            ..phone(BOB)
        };
        let carol_bsuid = "NL.998877665544";
        let carol = ContactIdentity {
            bsuid: Some(Bsuid::parse(carol_bsuid).unwrap()),
            ..ContactIdentity::default()
        };
        api.webhook(&[
            inbound("in-bob", bob, "hi"),
            inbound("in-carol", carol, "hey"),
        ])
        .await;
        let found = api
            .get(
                &format!("/v1/contacts?phone={}", crate::support::api::encode(BOB)),
                &api.admin,
            )
            .await
            .expect(200, None);
        let bob_id = found.body["id"].as_str().unwrap().to_owned();

        for to in [bob_id.as_str(), BSUID] {
            api.post(
                "/v1/messages",
                &api.admin,
                json!({"to": to, "text": "by number"}),
            )
            .await
            .expect(202, None);
            api.deliver_all().await;
            let sent = api.fake.sent();
            let to_sent = &sent.last().unwrap().1.to;
            assert_eq!(
                to_sent.phone.as_ref().map(|p| p.as_str()),
                Some(BOB),
                "{to}"
            );
        }
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": carol_bsuid, "text": "by BSUID"}),
        )
        .await
        .expect(202, None);
        api.deliver_all().await;
        let sent = api.fake.sent();
        let to_sent = &sent.last().unwrap().1.to;
        assert!(to_sent.phone.is_none());
        assert_eq!(to_sent.bsuid.as_ref().map(Bsuid::as_str), Some(carol_bsuid));

        // Unknown contact ids, and another tenant's, are 404.
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": "ctc_0000", "text": "x"}),
        )
        .await
        .expect(404, Some("not_found"));
        let other = api.router.tenants().create("globex").await.unwrap().key;
        api.post("/v1/messages", &other, json!({"to": bob_id, "text": "x"}))
            .await
            .expect(404, Some("not_found"));
    })
    .await;
}

#[tokio::test]
async fn read_receipts_mark_an_inbound_message_with_or_without_typing() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let inbound_id = alice_writes(&api).await;
        let path = format!("/v1/messages/{inbound_id}/read");
        let r = api
            .client
            .post(format!("{}{path}", api.base))
            .bearer_auth(&api.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "no body at all is a plain read receipt");
        api.post(&path, &api.admin, json!({"typing": true}))
            .await
            .expect(204, None);
        api.post(&path, &api.admin, json!({}))
            .await
            .expect(204, None);
        let reads: Vec<_> = api
            .fake
            .reads()
            .into_iter()
            .map(|(acc, id, typing)| {
                assert_eq!(acc, api.account_id);
                (id, typing)
            })
            .collect();
        assert_eq!(
            reads,
            [
                ("in-1".to_owned(), false),
                ("in-1".to_owned(), true),
                ("in-1".to_owned(), false)
            ]
        );

        // Refusals: a body of the wrong shape, an outbound message, unknown and foreign ids.
        api.post(&path, &api.admin, json!({"typing": "yes"}))
            .await
            .expect(400, Some("invalid_json"));
        api.post(&path, &api.admin, json!({"typin": true}))
            .await
            .expect(400, Some("invalid_json"));
        let sent = api
            .post(
                "/v1/messages",
                &api.admin,
                json!({"to": ALICE, "text": "hi"}),
            )
            .await
            .expect(202, None);
        let outbound_read = format!("/v1/messages/{}/read", sent.body["id"].as_str().unwrap());
        api.post(&outbound_read, &api.admin, json!({}))
            .await
            .expect(400, Some("not_inbound"));
        api.post("/v1/messages/msg_nope/read", &api.admin, json!({}))
            .await
            .expect(404, Some("not_found"));
        let other = api.router.tenants().create("globex").await.unwrap().key;
        api.post(&path, &other, json!({}))
            .await
            .expect(404, Some("not_found"));
        assert_eq!(
            api.fake.reads().len(),
            3,
            "no refused request reached the channel"
        );

        // A disconnected account cannot mark anything.
        api.call(
            reqwest::Method::DELETE,
            &format!("/v1/accounts/{}", api.account_id),
            Some(&api.admin),
            None,
        )
        .await;
        api.post(&path, &api.admin, json!({}))
            .await
            .expect(409, Some("account_disconnected"));
    })
    .await;
}

#[tokio::test]
async fn a_channel_without_read_receipts_refuses_them_with_422() {
    on_each_backend(|db| async move {
        let fake = FakeAdapter::named(ChannelId::new_static("fake"))
            .with_capabilities(text_only_capabilities());
        let site = fake_site_with(db.store().await, fake.clone(), |b| b).await;
        receive(&site.router, &[inbound("in-1", phone(ALICE), "hi")]).await;
        let id = messages::Entity::find()
            .one(site.router.store().conn())
            .await
            .unwrap()
            .unwrap()
            .id;
        for typing in [false, true] {
            let err = site
                .router
                .read_receipts()
                .mark_read(&site.tenant, &id, typing)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "unsupported_content");
            assert_eq!(err.http_status(), 422);
        }
        assert!(fake.reads().is_empty());
    })
    .await;
}
