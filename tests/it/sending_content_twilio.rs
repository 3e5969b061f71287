//! The content model on Twilio through the real HTTP API: interactive messages and
//! locations on `twilio-whatsapp` go out as Content API resources (created once, found again
//! after a restart), templates carry `ContentVariables` by position or by name, what Twilio
//! would refuse is answered before anything is queued, typing indicators mark a message
//! read, and `twilio-sms` refuses all of it with 422. The real Twilio adapters against
//! `FakeTwilio`, which checks every body it receives. On SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_router::media::storage::LocalMediaStore;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::{DeliveryConfig, Router};
use switchboard_twilio::testing::{
    self as twilio, FakeTwilio, RecordedRequest, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN,
    TEST_TEMPLATE_SID,
};
use switchboard_twilio::{
    DEFAULT_SMS_WEBHOOK_PATH, DEFAULT_WEBHOOK_PATH, TwilioConfig, TwilioSms, TwilioWhatsApp,
};

use crate::support::api::Reply;
use crate::support::http_site::{HttpSite, serve_built};
use crate::support::providers::post_twilio_form;
use crate::support::{TestDb, on_each_backend};

const PUBLIC: &str = "https://sb.example.com";
const WA_NUMBER: &str = "+14155238886";
const SMS_NUMBER: &str = "+14155550100";
const PERSON: &str = "+31612345678";
/// The person's message on WhatsApp, and on SMS: Twilio message SIDs.
const INBOUND_WA: &str = "SM7a1b2c3d4e5f60718293a4b5c6d7e8f9";
const INBOUND_SMS: &str = "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const SENDER_LEASE: Duration = Duration::from_millis(600);

/// The HTTP app on loopback over a router with both Twilio channels on one fake.
struct Site {
    http: HttpSite,
    _media_dir: tempfile::TempDir,
}

impl std::ops::Deref for Site {
    type Target = HttpSite;
    fn deref(&self) -> &HttpSite {
        &self.http
    }
}

fn config(twilio: &FakeTwilio, webhook_path: &str) -> TwilioConfig {
    TwilioConfig {
        public_url: PUBLIC.into(),
        webhook_path: webhook_path.into(),
        ..twilio.config()
    }
}

/// Serves a router over `db` (credentials under `key`) with fresh Twilio adapters on
/// `twilio`: a process of its own, sharing the database and Twilio with any other.
async fn serve(db: &TestDb, key: &str, twilio: &FakeTwilio, admin: String) -> Site {
    let media_dir = tempfile::tempdir().unwrap();
    let store = db.store().await;
    let mut http = serve_built(|base| {
        Router::builder(store, CredentialCipher::from_base64(key).unwrap())
            // Short sender leases: a restarted process takes the senders over soon.
            .delivery(DeliveryConfig {
                lease: SENDER_LEASE,
                ..DeliveryConfig::default()
            })
            .adapter(Arc::new(TwilioWhatsApp::new(config(
                twilio,
                DEFAULT_WEBHOOK_PATH,
            ))))
            .adapter(Arc::new(TwilioSms::new(config(
                twilio,
                DEFAULT_SMS_WEBHOOK_PATH,
            ))))
            .media_store(Arc::new(LocalMediaStore::new(media_dir.path())))
            // Signed media links point at this server.
            .public_url(base)
            .build()
    })
    .await;
    http.admin = admin;
    Site {
        http,
        _media_dir: media_dir,
    }
}

/// One tenant with a WhatsApp and an SMS account on `twilio`, the person having written on
/// both (the WhatsApp window is open).
async fn site(db: &TestDb, key: &str, twilio: &FakeTwilio) -> Site {
    let mut site = serve(db, key, twilio, String::new()).await;
    site.http.create_acme().await;
    let creds = json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN});
    for (channel, address) in [("twilio-whatsapp", WA_NUMBER), ("twilio-sms", SMS_NUMBER)] {
        site.connect(channel, address, &creds).await;
    }
    let wa = twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, WA_NUMBER, "hi", INBOUND_WA);
    site.webhook(DEFAULT_WEBHOOK_PATH, &wa).await;
    let sms = twilio::inbound_sms_form(
        TEST_ACCOUNT_SID,
        PERSON,
        SMS_NUMBER,
        "hi",
        INBOUND_SMS,
        None,
    );
    site.webhook(DEFAULT_SMS_WEBHOOK_PATH, &sms).await;
    site
}

impl Site {
    async fn webhook(&self, path: &str, form: &[(String, String)]) {
        let res = post_twilio_form(self, path, form).await;
        assert_eq!(res.status(), 200);
    }

    /// `POST /v1/messages` on WhatsApp with `content` merged in.
    async fn send_whatsapp(&self, content: Value) -> Reply {
        let mut body = json!({"to": PERSON, "channel": "twilio-whatsapp", "from": WA_NUMBER});
        for (k, v) in content.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.call(Method::POST, "/v1/messages", Some(body)).await
    }

    /// Sends on WhatsApp, delivers, and returns the message as the API shows it.
    async fn deliver_whatsapp(&self, content: Value) -> Value {
        let accepted = self.send_whatsapp(content.clone()).await.expect(202, None);
        self.deliver_all().await;
        let id = accepted.body["id"].as_str().unwrap();
        self.message(id).await
    }

    async fn deliver_all(&self) {
        while self.router.delivery().deliver_due().await.unwrap() > 0 {}
    }

    async fn message(&self, id: &str) -> Value {
        self.call(Method::GET, &format!("/v1/messages/{id}"), None)
            .await
            .expect(200, None)
            .body
    }

    /// Switchboard's id of the inbound message Twilio named `sid`.
    async fn inbound_id(&self, sid: &str) -> String {
        let convs = self
            .call(Method::GET, "/v1/conversations", None)
            .await
            .expect(200, None);
        for conv in convs.body["data"].as_array().unwrap() {
            let path = format!(
                "/v1/conversations/{}/messages",
                conv["id"].as_str().unwrap()
            );
            let msgs = self.call(Method::GET, &path, None).await.expect(200, None);
            if let Some(m) = msgs.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["provider_message_id"] == sid)
            {
                return m["id"].as_str().unwrap().to_owned();
            }
        }
        panic!("no inbound message {sid}");
    }
}

fn message_creates(twilio: &FakeTwilio) -> Vec<RecordedRequest> {
    twilio
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
        .collect()
}

fn buttons() -> Value {
    json!({"type": "buttons", "body": "Change or cancel your booking?", "footer": "Lucky Shrub",
        "buttons": [{"id": "change", "title": "Change"}, {"id": "cancel", "title": "Cancel"}]})
}

#[tokio::test]
async fn interactive_messages_and_locations_go_out_as_content_resources() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        let cases = [
            (json!({"interactive": buttons()}), "whatsapp/card"),
            (
                json!({"interactive": {"type": "buttons", "body": "Did it arrive?",
                    "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]}}),
                "twilio/quick-reply",
            ),
            (
                json!({"interactive": {"type": "list", "body": "Which shipping option?", "button": "Options",
                    "sections": [{"title": "Fast", "rows": [{"id": "x", "title": "Express", "description": "1 day"}]},
                                 {"title": "Slow", "rows": [{"id": "y", "title": "Ground"}]}]}}),
                "twilio/list-picker",
            ),
            (
                json!({"interactive": {"type": "cta_url", "body": "Track your parcel",
                    "url": {"display_text": "Track", "url": "https://shop.example.com/track/1"}}}),
                "twilio/call-to-action",
            ),
            (
                json!({"interactive": {"type": "flow", "body": "Book a table",
                    "flow": {"id": "1234567890", "cta": "Book", "token": "t-1", "action": "navigate", "screen": "DATE"}}}),
                "whatsapp/flows",
            ),
            (
                json!({"location": {"latitude": 52.3731, "longitude": 4.8922,
                    "name": "Dam Square", "address": "Dam, Amsterdam"}}),
                "twilio/location",
            ),
        ];
        for (i, (content, content_type)) in cases.iter().enumerate() {
            let m = s.deliver_whatsapp(content.clone()).await;
            assert_eq!(m["status"], "accepted", "{content_type}: {m}");
            assert!(m["provider_message_id"].as_str().unwrap().starts_with("SM"));
            // The API reads back what it was given.
            match content.get("interactive") {
                Some(i) => assert_eq!(m["content"]["interactive_message"], *i),
                None => assert_eq!(m["content"]["location"], content["location"]),
            }
            let created = twilio.created_contents();
            assert_eq!(created.len(), i + 1, "{content_type}");
            let resource = created.last().unwrap();
            assert!(resource["types"].get(*content_type).is_some(), "{resource}");
            let send = message_creates(&twilio).pop().unwrap();
            assert_eq!(send.form_value("ContentSid"), resource["sid"].as_str());
            assert_eq!(send.form_value("Body"), None);
            assert_eq!(send.form_value("To"), Some(format!("whatsapp:{PERSON}").as_str()));
        }
        let list = &twilio.created_contents()[2]["types"]["twilio/list-picker"];
        assert_eq!(
            list["items"],
            json!([{"id": "x", "item": "Express", "description": "1 day"}, {"id": "y", "item": "Ground"}])
        );

        // The same content again: no Content API request at all.
        let content_requests = twilio.content_requests().len();
        let first_sid = twilio.created_contents()[0]["sid"].clone();
        s.deliver_whatsapp(json!({"interactive": buttons()})).await;
        assert_eq!(twilio.content_requests().len(), content_requests);
        assert_eq!(
            message_creates(&twilio).pop().unwrap().form_value("ContentSid"),
            first_sid.as_str()
        );
    })
    .await;
}

#[tokio::test]
async fn an_uploaded_image_heads_a_card_by_its_signed_link() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        let png: Vec<u8> = [0x89, b'P', b'N', b'G']
            .into_iter()
            .chain((0..2000).map(|i| i as u8))
            .collect();
        let uploaded = s
            .client
            .post(format!("{}/v1/media", s.base))
            .bearer_auth(&s.admin)
            .header("content-type", "image/png")
            .body(png.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), 201);
        let media_id = uploaded.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let m = s
            .deliver_whatsapp(
                json!({"interactive": {"type": "buttons", "body": "Is this yours?",
                "header": {"type": "image", "media_id": media_id},
                "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]}}),
            )
            .await;
        assert_eq!(m["status"], "accepted", "{m}");
        let card = &twilio.created_contents()[0]["types"]["whatsapp/card"];
        let link = card["media"][0].as_str().unwrap();
        assert!(link.starts_with(&s.base), "{card}");
        // The link serves the upload, without credentials, as Twilio fetches it.
        let fetched = reqwest::get(link).await.unwrap();
        assert_eq!(fetched.status(), 200);
        assert_eq!(fetched.bytes().await.unwrap().to_vec(), png);
    })
    .await;
}

#[tokio::test]
async fn text_beside_a_location_is_the_sms_alternative_and_whatsapp_sends_the_location() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        let location = json!({"latitude": 52.3731, "longitude": 4.8922, "name": "Dam Square"});
        // Without a fallback channel, text beside a location is a second kind.
        s.send_whatsapp(json!({"location": location, "text": "We are at the dam."}))
            .await
            .expect(400, Some("conflicting_content"));
        let m = s
            .deliver_whatsapp(json!({"location": location, "text": "We are at the dam.",
                "fallback": [{"channel": "twilio-sms", "from": SMS_NUMBER}]}))
            .await;
        assert_eq!((m["channel"].as_str(), m["status"].as_str()), (Some("twilio-whatsapp"), Some("accepted")), "{m}");
        let send = message_creates(&twilio).pop().unwrap();
        assert_eq!(send.form_value("To"), Some(format!("whatsapp:{PERSON}").as_str()));
        assert_eq!(send.form_value("ContentSid"), twilio.created_contents()[0]["sid"].as_str());
        assert_eq!(send.form_value("Body"), None, "the text is the SMS alternative");
        assert_eq!(
            twilio.created_contents()[0]["types"],
            json!({"twilio/location": {"latitude": 52.3731, "longitude": 4.8922, "label": "Dam Square"}})
        );
    })
    .await;
}

#[tokio::test]
async fn a_restarted_server_finds_the_content_it_created_and_creates_nothing() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let key = CredentialCipher::generate_key();
        let first = site(&db, &key, &twilio).await;
        let m = first
            .deliver_whatsapp(json!({"interactive": buttons()}))
            .await;
        assert_eq!(m["status"], "accepted");
        assert_eq!(twilio.created_contents().len(), 1);
        let sid = twilio.created_contents()[0]["sid"].clone();
        let admin = first.admin.clone();
        drop(first);
        // The first process's sender lease runs out.
        tokio::time::sleep(SENDER_LEASE * 2).await;

        let restarted = serve(&db, &key, &twilio, admin).await;
        let before = twilio.content_requests().len();
        let m = restarted
            .deliver_whatsapp(json!({"interactive": buttons()}))
            .await;
        assert_eq!(m["status"], "accepted");
        assert_eq!(
            twilio.created_contents().len(),
            1,
            "found by name, not created again"
        );
        let looked_up = &twilio.content_requests()[before..];
        assert_eq!(looked_up.len(), 1);
        assert_eq!(
            (looked_up[0].method.as_str(), looked_up[0].path.as_str()),
            ("GET", "/v2/Content")
        );
        assert_eq!(
            message_creates(&twilio)
                .pop()
                .unwrap()
                .form_value("ContentSid"),
            sid.as_str()
        );
    })
    .await;
}

#[tokio::test]
async fn templates_send_content_variables_by_position_or_by_name() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let named = twilio.add_content(
            TEST_ACCOUNT_SID,
            &json!({"friendly_name": "welcome", "language": "en",
                "types": {"twilio/text": {"body": "Welcome, {{first_name}}"}}}),
        );
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        for (name, variables) in [
            (
                TEST_TEMPLATE_SID.to_owned(),
                json!({"1": "12/1", "2": "3pm"}),
            ),
            (named, json!({"first_name": "Ana"})),
        ] {
            let m = s
                .deliver_whatsapp(
                    json!({"template": {"name": name, "language": "en", "variables": variables}}),
                )
                .await;
            assert_eq!(m["status"], "accepted", "{m}");
            let send = message_creates(&twilio).pop().unwrap();
            assert_eq!(send.form_value("ContentSid"), Some(name.as_str()));
            let sent: Value =
                serde_json::from_str(send.form_value("ContentVariables").unwrap()).unwrap();
            assert_eq!(sent, variables);
        }
        assert!(twilio.content_requests().is_empty());
    })
    .await;
}

#[tokio::test]
async fn what_twilio_would_refuse_is_answered_before_anything_is_queued() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        let requests = twilio.requests().len();
        let template = |variables: Value| {
            json!({"template": {"name": TEST_TEMPLATE_SID, "language": "en", "variables": variables}})
        };
        let refused = [
            (
                json!({"interactive": {"type": "flow", "body": "Book", "flow": {"name": "booking", "cta": "Book"}}}),
                422,
                "unsupported_content",
                "by its `id`",
            ),
            (
                json!({"interactive": {"type": "location_request", "body": "Where are you?"}}),
                422,
                "unsupported_content",
                "location_request",
            ),
            (
                json!({"interactive": {"type": "list", "body": "b", "button": "Open", "footer": "f",
                    "sections": [{"rows": [{"id": "1", "title": "One"}]}]}}),
                422,
                "unsupported_content",
                "header or footer",
            ),
            (
                json!({"template": {"name": TEST_TEMPLATE_SID, "header": {"type": "text", "text": "Hi"}}}),
                422,
                "unsupported_content",
                "template header",
            ),
            (
                json!({"contacts": [{"name": {"formatted_name": "Ann"}}]}),
                422,
                "unsupported_content",
                "contacts",
            ),
            (template(json!({"1": "two\nlines"})), 400, "invalid_content", "newline"),
            (template(json!({"1": ""})), 400, "invalid_content", "empty"),
            (template(json!({"1": "wide     gap"})), 400, "invalid_content", "four consecutive spaces"),
            (template(json!({"a_very_long_variable": "x"})), 400, "invalid_content", "1 to 16 characters"),
            (
                json!({"template": {"name": "welcome", "language": "en"}}),
                400,
                "invalid_content",
                "Content SID",
            ),
        ];
        for (content, status, code, says) in refused {
            let r = s.send_whatsapp(content.clone()).await.expect(status, Some(code));
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{content}: {message}");
            assert!(message.contains("twilio-whatsapp"), "{content}: {message}");
        }
        let too_many: serde_json::Map<String, Value> =
            (0..101).map(|i| (i.to_string(), json!("x"))).collect();
        s.send_whatsapp(template(Value::Object(too_many)))
            .await
            .expect(400, Some("invalid_content"));
        s.deliver_all().await;
        assert_eq!(twilio.requests().len(), requests, "nothing reached Twilio");
    })
    .await;
}

#[tokio::test]
async fn content_api_failures_retry_the_message_or_fail_it_with_twilios_code() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        // A refusal: the message fails with Twilio's code; nothing was sent.
        twilio.respond_error_next_to("POST", "/v1/Content", 400, 20001, "Invalid types");
        let refused = s
            .send_whatsapp(json!({"interactive": {"type": "cta_url", "body": "See",
                "url": {"display_text": "Open", "url": "https://x.test/p"}}}))
            .await
            .expect(202, None);
        let refused_id = refused.body["id"].as_str().unwrap().to_owned();
        s.deliver_all().await;
        let m = s.message(&refused_id).await;
        assert_eq!(
            (m["status"].as_str(), m["error_code"].as_str()),
            (Some("failed"), Some("20001")),
            "{m}"
        );
        assert!(message_creates(&twilio).is_empty());
        assert!(twilio.created_contents().is_empty());

        // A server error: the message waits for a retry, and nothing was sent.
        twilio.respond_error_next_to("POST", "/v1/Content", 500, 20500, "Internal Server Error");
        let accepted = s
            .send_whatsapp(json!({"interactive": buttons()}))
            .await
            .expect(202, None);
        let id = accepted.body["id"].as_str().unwrap().to_owned();
        // One round: the retry's delay is full jitter (0 to 500 ms at the first attempt), so
        // draining until nothing is due would sometimes find it due already and send it.
        assert_eq!(s.router.delivery().deliver_due().await.unwrap(), 1);
        let m = s.message(&id).await;
        assert_eq!(m["status"], "queued", "{m}");
        assert_eq!(m["attempts"][0]["outcome"], "transient", "{m}");
        assert_eq!(m["attempts"][0]["error_code"], "20500", "{m}");
        assert!(message_creates(&twilio).is_empty());
        assert!(twilio.created_contents().is_empty());
    })
    .await;
}

#[tokio::test]
async fn typing_marks_an_inbound_whatsapp_message_read() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        let inbound = s.inbound_id(INBOUND_WA).await;
        let path = format!("/v1/messages/{inbound}/read");
        s.call(Method::POST, &path, Some(json!({"typing": true})))
            .await
            .expect(204, None);
        let typing = twilio.typing_requests();
        assert_eq!(typing.len(), 1);
        assert_eq!(typing[0].form_value("messageId"), Some(INBOUND_WA));
        assert_eq!(typing[0].form_value("channel"), Some("whatsapp"));
        assert_eq!(typing[0].basic_user.as_deref(), Some(TEST_ACCOUNT_SID));

        // Twilio cannot mark read without the indicator.
        let r = s
            .call(Method::POST, &path, Some(json!({})))
            .await
            .expect(422, Some("unsupported_content"));
        assert!(r.text.contains("typing"), "{}", r.text);
        // SMS has neither.
        let sms_inbound = s.inbound_id(INBOUND_SMS).await;
        s.call(
            Method::POST,
            &format!("/v1/messages/{sms_inbound}/read"),
            Some(json!({"typing": true})),
        )
        .await
        .expect(422, Some("unsupported_content"));
        assert_eq!(twilio.typing_requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn sms_carries_none_of_it_and_refuses_it_with_422() {
    on_each_backend(|db| async move {
        let twilio = FakeTwilio::start().await;
        let s = site(&db, &CredentialCipher::generate_key(), &twilio).await;
        let requests = twilio.requests().len();
        for (content, part) in [
            (json!({"interactive": buttons()}), "interactive buttons"),
            (
                json!({"interactive": {"type": "list", "body": "b", "button": "Open",
                    "sections": [{"rows": [{"id": "1", "title": "One"}]}]}}),
                "interactive list",
            ),
            (
                json!({"location": {"latitude": 1.0, "longitude": 2.0}}),
                "location",
            ),
            (
                json!({"contacts": [{"name": {"formatted_name": "Ann"}}]}),
                "contacts",
            ),
            (
                json!({"template": {"name": TEST_TEMPLATE_SID, "language": "en"}}),
                "template",
            ),
        ] {
            let mut body = json!({"to": PERSON, "channel": "twilio-sms", "from": SMS_NUMBER});
            for (k, v) in content.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = s
                .call(Method::POST, "/v1/messages", Some(body))
                .await
                .expect(422, Some("unsupported_content"));
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("twilio-sms") && message.contains(part),
                "{message}"
            );
        }
        s.deliver_all().await;
        assert_eq!(twilio.requests().len(), requests);
    })
    .await;
}
