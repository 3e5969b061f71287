//! Issues 3 and 4 through the router: the real Twilio and Meta adapters against fake
//! provider servers on loopback, on SQLite and PostgreSQL.

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use switchboard_core::{Content, Template};
use switchboard_meta_cloud::testing::{self as meta, FakeGraph};
use switchboard_router::store::entity::{contacts, conversations, messages, outbox};
use switchboard_router::{Router, SendRequest};
use switchboard_twilio_whatsapp::testing::{
    self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN,
};

use crate::support::providers::{
    META_DISPLAY, PERSON, PNID, PUBLIC, TWILIO_NUMBER, TWILIO_PATH, builder, connect_both, fakes,
    set,
};
use crate::support::{TestDb, on_each_backend};

const APP_SECRET: &str = "router_test_app_secret";

struct Env {
    router: Router,
    tenant: String,
    twilio: FakeTwilio,
    graph: FakeGraph,
}

async fn env(db: &TestDb) -> Env {
    let (twilio, graph) = fakes().await;
    let router = builder(db, &twilio, &graph).await.build();
    let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
    connect_both(&router, &tenant, APP_SECRET).await;
    Env {
        router,
        tenant,
        twilio,
        graph,
    }
}

fn twilio_webhook(params: &[(String, String)]) -> switchboard_core::WebhookRequest {
    twilio::signed_webhook_request(PUBLIC, TWILIO_PATH, None, TEST_AUTH_TOKEN, params)
}

fn now_ts() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// A Meta inbound text with the current time (the window counts from the provider's time).
fn meta_inbound(from_wa_id: &str, wamid: &str, text: &str) -> String {
    meta::envelope(&[(
        PNID,
        META_DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": from_wa_id}],
            "messages": [{"from": from_wa_id, "id": wamid, "timestamp": now_ts(), "type": "text", "text": {"body": text}}],
        }),
    )])
}

async fn stored(router: &Router) -> Vec<messages::Model> {
    messages::Entity::find()
        .order_by_asc(messages::Column::Id)
        .all(router.store().conn())
        .await
        .unwrap()
}

fn content(m: &messages::Model) -> Value {
    serde_json::from_str(&m.content).unwrap()
}

async fn count_contacts(router: &Router) -> u64 {
    contacts::Entity::find()
        .count(router.store().conn())
        .await
        .unwrap()
}

fn twilio_sends(t: &FakeTwilio) -> usize {
    t.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
        .count()
}

fn graph_sends(g: &FakeGraph) -> usize {
    g.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .count()
}

#[tokio::test]
async fn twilio_inbound_kinds_become_canonical_messages_on_one_contact() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let base = |sid: &str, body: &str| twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, body, sid);
        e.router.receive_webhook("twilio-whatsapp", twilio_webhook(&base("SM0001", "hello"))).await.unwrap();
        let mut media = base("MM0002", "three photos");
        set(&mut media, "NumMedia", "3");
        for i in 0..3 {
            set(&mut media, &format!("MediaUrl{i}"), &format!("https://api.twilio.com/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages/MM0002/Media/ME{i}"));
            set(&mut media, &format!("MediaContentType{i}"), if i == 1 { "image/png" } else { "image/jpeg" });
        }
        e.router.receive_webhook("twilio-whatsapp", twilio_webhook(&media)).await.unwrap();
        let mut location = base("SM0003", "");
        for (k, v) in [("Latitude", "52.3676"), ("Longitude", "4.9041"), ("Address", "Dam 1, Amsterdam"), ("Label", "Office"), ("MessageType", "location")] {
            set(&mut location, k, v);
        }
        e.router.receive_webhook("twilio-whatsapp", twilio_webhook(&location)).await.unwrap();
        let mut button = base("SM0004", "Yes");
        for (k, v) in [("ButtonPayload", "confirm-42"), ("ButtonText", "Yes"), ("MessageType", "button")] {
            set(&mut button, k, v);
        }
        e.router.receive_webhook("twilio-whatsapp", twilio_webhook(&button)).await.unwrap();

        assert_eq!(count_contacts(&e.router).await, 1, "one person, one contact");
        let msgs = stored(&e.router).await;
        assert_eq!(msgs.len(), 4);
        assert!(msgs.iter().all(|m| m.direction == "inbound" && m.conversation_id == msgs[0].conversation_id));
        assert_eq!(content(&msgs[0])["text"], "hello");
        let media = content(&msgs[1])["media"].as_array().unwrap().clone();
        assert_eq!(media.len(), 3);
        for (i, m) in media.iter().enumerate() {
            assert!(m["url"].as_str().unwrap().ends_with(&format!("/ME{i}")), "media {i} in order");
            assert_eq!(m["kind"], "image");
        }
        assert_eq!(media[1]["mime_type"], "image/png");
        let loc = &content(&msgs[2])["location"];
        assert_eq!(loc["latitude"], 52.3676);
        assert_eq!(loc["longitude"], 4.9041);
        let reply = &content(&msgs[3])["interactive"];
        assert_eq!(reply["id"], "confirm-42");
        assert_eq!(reply["title"], "Yes");
        let contact = e.router.records().find_contact(&e.tenant, "whatsapp:+1 650 555 1234").await.unwrap();
        assert_eq!(contact.profile_name.as_deref(), Some("Test User"));
    })
    .await;
}

#[tokio::test]
async fn twilio_forged_signatures_are_refused_and_port_variants_accepted_as_the_sdks_do() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let form =
            twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, "hi", "SM0100");
        let forged =
            twilio::signed_webhook_request(PUBLIC, TWILIO_PATH, None, "not-the-token", &form);
        let err = e
            .router
            .receive_webhook("twilio-whatsapp", forged)
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert!(
            stored(&e.router).await.is_empty(),
            "a forged webhook stores nothing"
        );
        // Twilio sometimes signs the URL with the default port: the SDKs accept both forms.
        let with_port = twilio::signed_webhook_request(
            "https://sb.example.com:443",
            TWILIO_PATH,
            None,
            TEST_AUTH_TOKEN,
            &form,
        );
        e.router
            .receive_webhook("twilio-whatsapp", with_port)
            .await
            .unwrap();
        // A non-default port is a different URL: refused.
        let other_port = twilio::signed_webhook_request(
            "https://sb.example.com:8443",
            TWILIO_PATH,
            None,
            TEST_AUTH_TOKEN,
            &form,
        );
        assert_eq!(
            e.router
                .receive_webhook("twilio-whatsapp", other_port)
                .await
                .unwrap_err()
                .http_status(),
            403
        );
        assert_eq!(stored(&e.router).await.len(), 1);
    })
    .await;
}

/// A Twilio webhook names `To` and `From`: it is for the first of them that is a connected
/// account whose token signed it. The customer's number is not looked up at all, and between
/// two tenants' numbers the signature decides whose message it is.
#[tokio::test]
async fn a_twilio_webhook_is_for_the_first_of_to_and_from_whose_token_signed_it() {
    const GLOBEX_NUMBER: &str = "+16502530100";
    const GLOBEX_SID: &str = "AC00000000000000000000000000000002";
    const GLOBEX_TOKEN: &str = "globex-auth-token";
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let globex = e.router.tenants().create("globex").await.unwrap().tenant_id;
        let creds = json!({"account_sid": GLOBEX_SID, "auth_token": GLOBEX_TOKEN});
        e.router
            .accounts()
            .connect(&globex, "twilio-whatsapp", GLOBEX_NUMBER, &creds, None)
            .await
            .unwrap();
        let reads = e.router.accounts().route_reads();
        for (i, person) in ["+16505551234", "+16505551235", "+16505551236"]
            .iter()
            .enumerate()
        {
            let form = twilio::inbound_text_form(
                TEST_ACCOUNT_SID,
                person,
                TWILIO_NUMBER,
                "hi",
                &format!("SM{i:032}"),
            );
            e.router
                .receive_webhook("twilio-whatsapp", twilio_webhook(&form))
                .await
                .unwrap();
        }
        assert_eq!(
            e.router.accounts().route_reads() - reads,
            1,
            "the business number is read once; the customers' numbers never"
        );

        // acme's number writes to globex's. Globex's copy, signed with globex's token, is
        // globex's inbound message; acme's, signed with acme's token, is acme's echo.
        let to_globex = |sid: &str, sid_of: &str| {
            twilio::inbound_text_form(sid_of, TWILIO_NUMBER, GLOBEX_NUMBER, "hello globex", sid)
        };
        let signed = |form: &[(String, String)], token: &str| {
            twilio::signed_webhook_request(PUBLIC, TWILIO_PATH, None, token, form)
        };
        let globex_copy = to_globex("SM00000000000000000000000000000010", GLOBEX_SID);
        e.router
            .receive_webhook("twilio-whatsapp", signed(&globex_copy, GLOBEX_TOKEN))
            .await
            .unwrap();
        let acme_copy = to_globex("SM00000000000000000000000000000011", TEST_ACCOUNT_SID);
        e.router
            .receive_webhook("twilio-whatsapp", signed(&acme_copy, TEST_AUTH_TOKEN))
            .await
            .unwrap();
        let forged = to_globex("SM00000000000000000000000000000012", GLOBEX_SID);
        let err = e
            .router
            .receive_webhook("twilio-whatsapp", signed(&forged, "neither-token"))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);

        let msgs = stored(&e.router).await;
        let of = |tenant: &str, direction: &str| {
            msgs.iter()
                .filter(|m| m.tenant_id == tenant && m.direction == direction)
                .count()
        };
        assert_eq!(msgs.len(), 5);
        assert_eq!(of(&e.tenant, "inbound"), 3);
        assert_eq!(of(&e.tenant, "echo"), 1, "acme's copy is acme's echo");
        assert_eq!(
            of(&globex, "inbound"),
            1,
            "globex's copy is globex's inbound message"
        );
        let from_acme = e
            .router
            .records()
            .find_contact(&globex, TWILIO_NUMBER)
            .await
            .unwrap();
        assert_eq!(from_acme.phone.as_deref(), Some(TWILIO_NUMBER));
    })
    .await;
}

async fn open_window_via_twilio(e: &Env) {
    let form = twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, "hi", "SM0900");
    e.router
        .receive_webhook("twilio-whatsapp", twilio_webhook(&form))
        .await
        .unwrap();
}

fn send_text(to: &str, channel: &str, text: &str) -> SendRequest {
    SendRequest {
        to: to.into(),
        channel: Some(channel.into()),
        content: Content::text(text),
        ..Default::default()
    }
}

#[tokio::test]
async fn twilio_status_callbacks_read_sent_delivered_end_read() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        open_window_via_twilio(&e).await;
        let accepted = e
            .router
            .send(
                &e.tenant,
                send_text(PERSON, "twilio-whatsapp", "your order shipped"),
            )
            .await
            .unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let req = e
            .twilio
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/Messages.json"))
            .unwrap();
        let callback = req.form_value("StatusCallback").unwrap().to_owned();
        assert_eq!(
            callback,
            format!("{PUBLIC}{TWILIO_PATH}/status/{}", accepted.id)
        );
        let sid = e.twilio.created_message_sids()[0].clone();
        let path = callback.strip_prefix(PUBLIC).unwrap().to_owned();
        for status in ["read", "sent", "delivered"] {
            let form =
                twilio::status_form(TEST_ACCOUNT_SID, TWILIO_NUMBER, PERSON, &sid, status, None);
            let req = twilio::signed_webhook_request(PUBLIC, &path, None, TEST_AUTH_TOKEN, &form);
            let ack = e
                .router
                .receive_webhook("twilio-whatsapp", req)
                .await
                .unwrap();
            assert_eq!(ack.reply.content_type, "text/xml");
        }
        let m = messages::Entity::find_by_id(accepted.id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "read");
        assert_eq!(m.provider_message_id.as_deref(), Some(sid.as_str()));
    })
    .await;
}

#[tokio::test]
async fn twilio_rejected_number_fails_with_21211_and_is_not_retried() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        open_window_via_twilio(&e).await;
        e.twilio
            .respond_error_next(400, 21211, "The 'To' number is not a valid phone number.");
        let accepted = e
            .router
            .send(&e.tenant, send_text(PERSON, "twilio-whatsapp", "hi"))
            .await
            .unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(accepted.id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "failed");
        assert_eq!(m.error_code.as_deref(), Some("21211"));
        assert_eq!(
            twilio_sends(&e.twilio),
            1,
            "a permanent error is not retried"
        );
        assert_eq!(
            outbox::Entity::find()
                .count(e.router.store().conn())
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn twilio_429_is_retried_after_retry_after() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        open_window_via_twilio(&e).await;
        e.twilio.respond_next(
            429,
            twilio::error_json(429, 20429, "Too Many Requests"),
            &[("Retry-After", "1")],
        );
        let accepted = e
            .router
            .send(&e.tenant, send_text(PERSON, "twilio-whatsapp", "hi"))
            .await
            .unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(accepted.id.clone())
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "queued", "still waiting after the 429");
        let entry = outbox::Entity::find_by_id(accepted.id.clone())
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.attempts, 1);
        assert!(
            entry.next_attempt_at > switchboard_router::ids::now_ms() + 500,
            "Retry-After honoured"
        );
        assert_eq!(
            e.router.delivery().deliver_due().await.unwrap(),
            0,
            "not before Retry-After"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(e.router.delivery().deliver_due().await.unwrap(), 1);
        let m = messages::Entity::find_by_id(accepted.id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(m.status, "queued");
        assert!(m.provider_message_id.is_some());
        assert_eq!(twilio_sends(&e.twilio), 2);
    })
    .await;
}

#[tokio::test]
async fn the_same_person_via_twilio_and_meta_is_one_contact() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        open_window_via_twilio(&e).await;
        let body = meta_inbound("16505551234", "wamid.A1", "also me");
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&body, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        assert_eq!(count_contacts(&e.router).await, 1);
        assert_eq!(
            conversations::Entity::find()
                .count(e.router.store().conn())
                .await
                .unwrap(),
            2,
            "one conversation per sender"
        );
        let contact = e
            .router
            .records()
            .find_contact(&e.tenant, PERSON)
            .await
            .unwrap();
        assert_eq!(
            contact.channels,
            vec!["meta-whatsapp".to_owned(), "twilio-whatsapp".to_owned()]
        );
    })
    .await;
}

#[tokio::test]
async fn a_meta_echo_is_stored_as_outbound_and_does_not_open_the_window() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let body = meta::echo(
            PNID,
            META_DISPLAY,
            "16505551234",
            "wamid.ECHO1",
            "typed on the phone",
        );
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&body, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        let msgs = stored(&e.router).await;
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].direction, "echo");
        assert_eq!(content(&msgs[0])["text"], "typed on the phone");
        let conv = conversations::Entity::find()
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert!(
            conv.last_inbound_at.is_none(),
            "an echo never opens the service window"
        );
        let err = e
            .router
            .send(&e.tenant, send_text(PERSON, "meta-whatsapp", "hi"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "outside_service_window");
    })
    .await;
}

#[tokio::test]
async fn meta_statuses_in_shuffled_order_end_at_the_highest_for_each_message() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let body = meta_inbound("16505551234", "wamid.IN1", "hi");
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&body, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(
                e.router
                    .send(
                        &e.tenant,
                        send_text(PERSON, "meta-whatsapp", &format!("m{i}")),
                    )
                    .await
                    .unwrap()
                    .id,
            );
        }
        while e.router.delivery().deliver_due().await.unwrap() > 0 {}
        let rows = stored(&e.router).await;
        let wamid = |id: &str| {
            rows.iter()
                .find(|m| m.id == id)
                .unwrap()
                .provider_message_id
                .clone()
                .unwrap()
        };
        let (w0, w1, w2, w3) = (
            wamid(&ids[0]),
            wamid(&ids[1]),
            wamid(&ids[2]),
            wamid(&ids[3]),
        );
        // One batch, shuffled; expected final: read, delivered, failed, delivered.
        let batch = meta::statuses(
            PNID,
            &[
                (&w0, "read", "16505551234"),
                (&w1, "delivered", "16505551234"),
                (&w2, "sent", "16505551234"),
                (&w0, "sent", "16505551234"),
                (&w3, "delivered", "16505551234"),
                (&w1, "sent", "16505551234"),
                (&w0, "delivered", "16505551234"),
            ],
        );
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&batch, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        let failed = meta::status(PNID, &w2, "failed", "16505551234", Some(131026));
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&failed, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        let late_failure = meta::status(PNID, &w3, "failed", "16505551234", Some(131000));
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&late_failure, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        let rows = stored(&e.router).await;
        let status = |id: &str| rows.iter().find(|m| m.id == id).unwrap().status.clone();
        assert_eq!(status(&ids[0]), "read");
        assert_eq!(status(&ids[1]), "delivered");
        assert_eq!(status(&ids[2]), "failed");
        assert_eq!(
            rows.iter()
                .find(|m| m.id == ids[2])
                .unwrap()
                .error_code
                .as_deref(),
            Some("131026")
        );
        assert_eq!(
            status(&ids[3]),
            "delivered",
            "a failure never overwrites delivered"
        );
    })
    .await;
}

#[tokio::test]
async fn meta_131047_fails_a_free_form_send_without_retry() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let body = meta_inbound("16505551234", "wamid.IN2", "hi");
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&body, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        e.graph
            .respond_next(400, meta::error_envelope(131047, "Re-engagement message"));
        let id = e
            .router
            .send(&e.tenant, send_text(PERSON, "meta-whatsapp", "hi"))
            .await
            .unwrap()
            .id;
        e.router.delivery().deliver_due().await.unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "failed");
        assert_eq!(m.error_code.as_deref(), Some("131047"));
        assert_eq!(graph_sends(&e.graph), 1, "not retried");
    })
    .await;
}

#[tokio::test]
async fn meta_130429_is_retried() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let body = meta_inbound("16505551234", "wamid.IN3", "hi");
        e.router
            .receive_webhook(
                "meta-whatsapp",
                meta::webhook_request(&body, Some(APP_SECRET)),
            )
            .await
            .unwrap();
        e.graph
            .respond_next(400, meta::error_envelope(130429, "Rate limit hit"));
        let id = e
            .router
            .send(
                &e.tenant,
                SendRequest {
                    to: PERSON.into(),
                    channel: Some("meta-whatsapp".into()),
                    content: Content {
                        template: Some(Template {
                            name: "order_update".into(),
                            language: Some("en_US".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        e.router.delivery().deliver_due().await.unwrap();
        let entry = outbox::Entity::find_by_id(id.clone())
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.attempts, 1, "kept for a retry");
        tokio::time::sleep(Duration::from_millis(600)).await;
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert!(
            m.provider_message_id.is_some(),
            "sent on the retry: {}",
            m.status
        );
        assert_eq!(graph_sends(&e.graph), 2);
        let failed_in_outbox = outbox::Entity::find()
            .filter(outbox::Column::Attempts.gt(0))
            .count(e.router.store().conn())
            .await
            .unwrap();
        assert_eq!(failed_in_outbox, 0);
    })
    .await;
}
