//! Inbound webhooks through the router: stored once however often they come, refused
//! (and nothing stored) when unsigned, forged, unknown or malformed, rolled back whole when
//! a write fails; the real Twilio and Meta adapters' inbound kinds, signatures and echoes.
//! On SQLite and PostgreSQL.

use bytes::Bytes;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;
use switchboard_core::MessageStatus;
use switchboard_core::testing::FakeAdapter;
use switchboard_meta_cloud::testing as meta;
use switchboard_router::RouterError;
use switchboard_router::store::entity::{
    contact_identities, contacts, conversations, messages, webhook_events,
};
use switchboard_twilio::testing::{self as twilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};

use crate::support::fake::{inbound, phone, signed, status, webhook};
use crate::support::providers::{
    META_DISPLAY, PERSON, PNID, PUBLIC, TWILIO_NUMBER, TWILIO_PATH, content, receive_meta,
    send_text, set, site, stored, twilio_webhook,
};
use crate::support::{Backend, count, fake_setup, on_each_backend};

#[tokio::test]
async fn a_webhook_delivered_twice_is_stored_once_and_both_are_acknowledged() {
    on_each_backend(|db| async move {
        let (router, _fake, _tenant) = fake_setup(&db).await;
        let events = [
            inbound("SM1", phone("+31612345678"), "hi"),
            status("st-1", "p-unknown", None, MessageStatus::Sent),
        ];
        let first = router
            .receive_webhook("fake", signed(&events))
            .await
            .unwrap();
        assert_eq!((first.stored, first.duplicates), (2, 0));
        let again = router
            .receive_webhook("fake", signed(&events))
            .await
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 2));
        assert_eq!(again.reply.status, 200);
        // Concurrent redeliveries of a new event: exactly one stores it, all acknowledge.
        let racing = [inbound("SM2", phone("+31612345678"), "race")];
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let router = router.clone();
                let req = signed(&racing);
                tokio::spawn(async move { router.receive_webhook("fake", req).await })
            })
            .collect();
        let mut stored = 0;
        for t in tasks {
            let ack = t.await.unwrap().expect("every delivery is acknowledged");
            stored += ack.stored;
        }
        assert_eq!(stored, 1);
        assert_eq!(count(&router, messages::Entity).await, 2);
        assert_eq!(count(&router, webhook_events::Entity).await, 3);
        assert_eq!(count(&router, contacts::Entity).await, 1);
    })
    .await;
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_store_nothing() {
    on_each_backend(|db| async move {
        let (router, _fake, _tenant) = fake_setup(&db).await;
        let events = [inbound("SM9", phone("+31612345678"), "hi")];
        let err = router
            .receive_webhook("fake", webhook(&events, Some("forged")))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        let err = router
            .receive_webhook("fake", webhook(&events, None))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        let mut unknown = signed(&events);
        unknown.body = FakeAdapter::webhook_body("+19999999999", &events);
        assert_eq!(
            router
                .receive_webhook("fake", unknown)
                .await
                .unwrap_err()
                .http_status(),
            404
        );
        let mut garbage = signed(&events);
        garbage.body = Bytes::from_static(b"not json");
        assert_eq!(
            router
                .receive_webhook("fake", garbage)
                .await
                .unwrap_err()
                .http_status(),
            400
        );
        assert_eq!(count(&router, webhook_events::Entity).await, 0);
        assert_eq!(count(&router, messages::Entity).await, 0);
        assert_eq!(count(&router, contacts::Entity).await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_transaction_that_fails_half_way_leaves_nothing_behind() {
    on_each_backend(|db| async move {
        let (router, _fake, _tenant) = fake_setup(&db).await;
        let conn = router.store().conn();
        // A real failure inside the transaction: the second message's insert aborts, after
        // the first event, its contact and conversation were already written.
        match db.backend {
            Backend::Sqlite => {
                conn.execute_unprepared(
                    "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.content LIKE '%boom%' \
                     BEGIN SELECT RAISE(ABORT, 'boom'); END;",
                )
                .await
                .unwrap();
            }
            Backend::Postgres => {
                conn.execute_unprepared(
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN \
                     IF NEW.content LIKE '%boom%' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
                     CREATE TRIGGER boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION boom();",
                )
                .await
                .unwrap();
            }
        }
        let events = [inbound("ok-1", phone("+31612345678"), "fine"), inbound("bad-1", phone("+4915112345678"), "boom")];
        let err = router.receive_webhook("fake", signed(&events)).await.unwrap_err();
        assert!(matches!(err, RouterError::Database(_)), "{err}");
        assert_eq!(err.http_status(), 503, "the provider is told to retry");
        assert_eq!(count(&router, webhook_events::Entity).await, 0);
        assert_eq!(count(&router, contacts::Entity).await, 0);
        assert_eq!(count(&router, contact_identities::Entity).await, 0);
        assert_eq!(count(&router, conversations::Entity).await, 0);
        assert_eq!(count(&router, messages::Entity).await, 0);
        // Once the fault is gone the provider's retry stores everything, once.
        conn.execute_unprepared("DROP TRIGGER boom ON messages").await.or(conn.execute_unprepared("DROP TRIGGER boom").await).unwrap();
        let ack = router.receive_webhook("fake", signed(&events)).await.unwrap();
        assert_eq!(ack.stored, 2);
        assert_eq!(count(&router, messages::Entity).await, 2);
    })
    .await;
}

#[tokio::test]
async fn twilio_inbound_kinds_become_canonical_messages_on_one_contact() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
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

        assert_eq!(count(&e.router, contacts::Entity).await, 1, "one person, one contact");
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
        let e = site(&db).await;
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
        let e = site(&db).await;
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

#[tokio::test]
async fn a_meta_echo_is_stored_as_outbound_and_does_not_open_the_window() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        let body = meta::echo(
            PNID,
            META_DISPLAY,
            "16505551234",
            "wamid.ECHO1",
            "typed on the phone",
        );
        receive_meta(&e.router, &body).await;
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
