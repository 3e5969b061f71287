//! The `twilio-sms` channel over real HTTP: the REST API and the webhooks on a loopback
//! port, the real Twilio adapters against `FakeTwilio`. SMS in and out, status callbacks
//! (also one before the send's answer), STOP/START/HELP and 21610, segments, Messaging
//! Service senders on both Twilio channels, and one contact across SMS and WhatsApp. On
//! SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_router::Router;
use switchboard_router::media::storage::LocalMediaStore;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use switchboard_twilio::{
    DEFAULT_SMS_WEBHOOK_PATH, DEFAULT_WEBHOOK_PATH, TwilioConfig, TwilioSms, TwilioWhatsApp,
};

use crate::support::api::Reply;
use crate::support::http_site::{HttpSite, serve_acme};
use crate::support::providers::post_twilio_form;
use crate::support::{TestDb, on_each_backend};

const PUBLIC: &str = "https://sb.example.com";
/// The business's SMS number and its WhatsApp number.
const SMS_NUMBER: &str = "+14155550100";
const WA_NUMBER: &str = "+14155238886";
/// Senders that go through a Messaging Service.
const SMS_SERVICE_NUMBER: &str = "+14155550111";
const WA_SERVICE_NUMBER: &str = "+14155550122";
const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
/// The person: +31 6 1234 5678.
const PERSON: &str = "+31612345678";

struct Site {
    http: HttpSite,
    twilio: FakeTwilio,
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
        api_base: twilio.base_url(),
        public_url: PUBLIC.into(),
        webhook_path: webhook_path.into(),
        ..twilio.config()
    }
}

/// Both Twilio channels on one fake, the HTTP app on loopback, one tenant with an SMS and
/// a WhatsApp account on fixed numbers and one of each through a Messaging Service.
async fn site(db: &TestDb) -> Site {
    let twilio = FakeTwilio::start().await;
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let media_dir = tempfile::tempdir().unwrap();
    let router = Router::builder(db.store().await, cipher)
        .media_store(Arc::new(LocalMediaStore::new(media_dir.path())))
        .adapter(Arc::new(TwilioWhatsApp::new(config(
            &twilio,
            DEFAULT_WEBHOOK_PATH,
        ))))
        .adapter(Arc::new(TwilioSms::new(config(
            &twilio,
            DEFAULT_SMS_WEBHOOK_PATH,
        ))))
        .build();
    let http = serve_acme(router).await;
    let creds = json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN});
    let mut service = creds.clone();
    service["messaging_service_sid"] = json!(SERVICE_SID);
    for (channel, address, credentials) in [
        ("twilio-sms", SMS_NUMBER, &creds),
        ("twilio-whatsapp", WA_NUMBER, &creds),
        ("twilio-sms", SMS_SERVICE_NUMBER, &service),
        ("twilio-whatsapp", WA_SERVICE_NUMBER, &service),
    ] {
        http.connect(channel, address, credentials).await;
    }
    Site {
        http,
        twilio,
        _media_dir: media_dir,
    }
}

impl Site {
    /// POSTs a form signed as Twilio signs it; returns the answer's status and content type.
    async fn webhook(&self, path: &str, form: &[(String, String)]) -> (u16, String) {
        let res = post_twilio_form(self, path, form).await;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, content_type)
    }

    /// An inbound SMS from `from` to `to`, stored.
    async fn sms_in(&self, from: &str, to: &str, body: &str, sid: &str, opt: Option<&str>) {
        let form = twilio::inbound_sms_form(TEST_ACCOUNT_SID, from, to, body, sid, opt);
        let (status, content_type) = self.webhook(DEFAULT_SMS_WEBHOOK_PATH, &form).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/xml");
    }

    /// `POST /v1/messages`; the reply as it came.
    async fn send(&self, body: Value) -> Reply {
        self.call(Method::POST, "/v1/messages", Some(body)).await
    }

    /// The person writes on WhatsApp (inbound SID `inbound_sid`), so its window is open;
    /// then a text goes to them on WhatsApp with SMS as its fallback. Returns its id.
    async fn whatsapp_with_sms_fallback(&self, inbound_sid: &str) -> String {
        let wa =
            twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, WA_NUMBER, "hello", inbound_sid);
        assert_eq!(self.webhook(DEFAULT_WEBHOOK_PATH, &wa).await.0, 200);
        let sent = self
            .send(json!({
                "to": PERSON, "channel": "twilio-whatsapp", "from": WA_NUMBER,
                "text": "your order shipped",
                "fallback": [{"channel": "twilio-sms", "from": SMS_NUMBER}],
            }))
            .await
            .expect(202, None);
        sent.body["id"].as_str().unwrap().to_owned()
    }

    /// Sends a text on `channel` from `from`; returns the message id.
    async fn send_text(&self, channel: &str, from: &str, text: &str) -> String {
        let sent = self
            .send(json!({"to": PERSON, "channel": channel, "from": from, "text": text}))
            .await
            .expect(202, None);
        sent.body["id"].as_str().unwrap().to_owned()
    }

    /// Starts a delivery round while Twilio answers creates slowly (800 ms), and returns
    /// once the create is on its way: the round, and the SID the fake gives its first
    /// message (SM…01), so a callback can be sent before the answer.
    async fn deliver_with_a_slow_answer(&self) -> (tokio::task::JoinHandle<usize>, String) {
        self.twilio.set_delay(Duration::from_millis(800));
        let deliver = {
            let router = self.router.clone();
            tokio::spawn(async move { router.delivery().deliver_due().await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        (deliver, format!("SM{:032x}", 1))
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

    /// The Messages API creates the fake received, as forms.
    fn creates(&self) -> Vec<twilio::RecordedRequest> {
        self.twilio
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
            .collect()
    }

    /// A status callback for our message `id` (Twilio SID `sid`), sent to the callback
    /// path the send gave Twilio.
    async fn status(&self, id: &str, sid: &str, status: &str, error: Option<&str>) {
        let form =
            twilio::sms_status_form(TEST_ACCOUNT_SID, SMS_NUMBER, PERSON, sid, status, error);
        let path = format!("{DEFAULT_SMS_WEBHOOK_PATH}/status/{id}");
        assert_eq!(self.webhook(&path, &form).await.0, 200);
    }
}

#[tokio::test]
async fn sms_in_and_out_with_statuses() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "Is my order ready?",
            "SM00000000000000000000000000000a01",
            None,
        )
        .await;
        let conversations = s
            .call(Method::GET, "/v1/conversations", None)
            .await
            .expect(200, None);
        let conv = &conversations.body["data"][0];
        assert_eq!(conv["channel"], "twilio-sms");
        assert_eq!(conv["contact"]["phone"], PERSON);
        // No service window on SMS: free-form is always open.
        assert_eq!(conv["service_window_open"], true);
        let conv_id = conv["id"].as_str().unwrap();
        let messages = s
            .call(
                Method::GET,
                &format!("/v1/conversations/{conv_id}/messages"),
                None,
            )
            .await
            .expect(200, None);
        let inbound = &messages.body["data"][0];
        assert_eq!(inbound["direction"], "inbound");
        assert_eq!(inbound["content"]["text"], "Is my order ready?");
        assert_eq!(inbound["segments"], 1);

        let id = s.send_text("twilio-sms", SMS_NUMBER, "Yes, it is.").await;
        s.deliver_all().await;
        let creates = s.creates();
        assert_eq!(creates.len(), 1);
        let create = &creates[0];
        // SMS addresses are bare E.164, never `whatsapp:`.
        assert_eq!(create.form_value("To"), Some(PERSON));
        assert_eq!(create.form_value("From"), Some(SMS_NUMBER));
        assert_eq!(create.form_value("Body"), Some("Yes, it is."));
        assert_eq!(
            create.form_value("StatusCallback").map(str::to_owned),
            Some(format!("{PUBLIC}{DEFAULT_SMS_WEBHOOK_PATH}/status/{id}"))
        );
        let sid = s.twilio.created_message_sids()[0].clone();
        let view = s.message(&id).await;
        assert_eq!(view["channel"], "twilio-sms");
        assert_eq!(view["provider_message_id"], sid.as_str());
        assert_eq!(view["status"], "accepted");

        for status in ["sent", "delivered"] {
            s.status(&id, &sid, status, None).await;
        }
        // A redelivered callback changes nothing.
        s.status(&id, &sid, "sent", None).await;
        let view = s.message(&id).await;
        assert_eq!(view["status"], "delivered");
        let history: Vec<&str> = view["status_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert!(
            history.contains(&"sent") && history.contains(&"delivered"),
            "{history:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_sms_status_that_arrives_before_the_send_response_is_applied() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let id = s
            .send_text("twilio-sms", SMS_NUMBER, "Your code is 1234")
            .await;
        // Twilio answers the create slowly; its callback for the message comes first.
        let (deliver, sid) = s.deliver_with_a_slow_answer().await;
        s.status(&id, &sid, "delivered", None).await;
        assert_eq!(deliver.await.unwrap(), 1);
        s.twilio.set_delay(Duration::ZERO);
        assert_eq!(s.twilio.created_message_sids(), vec![sid.clone()]);
        let view = s.message(&id).await;
        assert_eq!(view["provider_message_id"], sid.as_str());
        assert_eq!(view["status"], "delivered");
    })
    .await;
}

#[tokio::test]
async fn stop_opts_out_only_start_opts_back_in_and_help_is_a_message() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "hello",
            "SM00000000000000000000000000000b01",
            None,
        )
        .await;
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "Stop",
            "SM00000000000000000000000000000b02",
            None,
        )
        .await;
        let refused = s
            .send(json!({"to": PERSON, "channel": "twilio-sms", "from": SMS_NUMBER, "text": "hi"}))
            .await
            .expect(422, Some("opted_out"));
        drop(refused);
        // On SMS, writing again is not consent, and HELP is stored like any message.
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "what?",
            "SM00000000000000000000000000000b03",
            None,
        )
        .await;
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "HELP",
            "SM00000000000000000000000000000b04",
            None,
        )
        .await;
        s.send(json!({"to": PERSON, "channel": "twilio-sms", "from": SMS_NUMBER, "text": "hi"}))
            .await
            .expect(422, Some("opted_out"));
        // The opt-out is per sender: the WhatsApp number may still write (after the contact did).
        let wa = twilio::inbound_text_form(
            TEST_ACCOUNT_SID,
            PERSON,
            WA_NUMBER,
            "hi on WhatsApp",
            "SM00000000000000000000000000000b05",
        );
        assert_eq!(s.webhook(DEFAULT_WEBHOOK_PATH, &wa).await.0, 200);
        s.send_text("twilio-whatsapp", WA_NUMBER, "hello").await;

        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "start",
            "SM00000000000000000000000000000b06",
            None,
        )
        .await;
        s.send_text("twilio-sms", SMS_NUMBER, "welcome back").await;

        // Advanced Opt-Out names the keyword it matched (here a word of another language).
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "arrêt",
            "SM00000000000000000000000000000b07",
            Some("STOP"),
        )
        .await;
        s.send(json!({"to": PERSON, "channel": "twilio-sms", "from": SMS_NUMBER, "text": "hi"}))
            .await
            .expect(422, Some("opted_out"));
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "oui",
            "SM00000000000000000000000000000b08",
            Some("START"),
        )
        .await;
        s.send_text("twilio-sms", SMS_NUMBER, "welcome back again")
            .await;

        // Every keyword message is stored.
        let conversations = s
            .call(Method::GET, "/v1/conversations", None)
            .await
            .expect(200, None);
        let sms_conv = conversations.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == "twilio-sms")
            .unwrap()
            .clone();
        assert_eq!(sms_conv["opted_out"], false);
        let messages = s
            .call(
                Method::GET,
                &format!(
                    "/v1/conversations/{}/messages?limit=100",
                    sms_conv["id"].as_str().unwrap()
                ),
                None,
            )
            .await
            .expect(200, None);
        let texts: Vec<&str> = messages.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "inbound")
            .map(|m| m["content"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            ["hello", "Stop", "what?", "HELP", "start", "arrêt", "oui"]
        );
    })
    .await;
}

#[tokio::test]
async fn error_21610_on_send_opts_the_contact_out() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let id = s.send_text("twilio-sms", SMS_NUMBER, "hi").await;
        s.twilio
            .respond_error_next(400, 21610, "Attempt to send to unsubscribed recipient");
        s.deliver_all().await;
        let view = s.message(&id).await;
        assert_eq!(view["status"], "failed");
        assert_eq!(view["error_code"], "21610");
        assert_eq!(s.creates().len(), 1, "not retried");
        s.send(json!({"to": PERSON, "channel": "twilio-sms", "from": SMS_NUMBER, "text": "again"}))
            .await
            .expect(422, Some("opted_out"));
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "UNSTOP",
            "SM00000000000000000000000000000c01",
            None,
        )
        .await;
        s.send_text("twilio-sms", SMS_NUMBER, "again").await;
    })
    .await;
}

#[tokio::test]
async fn segments_are_counted_and_over_1600_characters_is_refused() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let mut sent_ids = Vec::new();
        for (text, segments) in [
            ("a".repeat(160), 1),
            ("a".repeat(161), 2),
            (format!("{}€", "a".repeat(159)), 2),
            ("ж".repeat(70), 1),
            ("ж".repeat(135), 3),
            ("a".repeat(1600), 11),
        ] {
            let sent = s
                .send(json!({"to": PERSON, "channel": "twilio-sms", "from": SMS_NUMBER, "text": text}))
                .await
                .expect(202, None);
            // The send's answer and the message say how many segments it is billed as.
            assert_eq!(sent.body["segments"], segments, "{text}");
            let id = sent.body["id"].as_str().unwrap().to_owned();
            assert_eq!(s.message(&id).await["segments"], segments, "{text}");
            sent_ids.push((id, segments));
        }
        s.deliver_all().await;
        // Twilio (the fake counts as it does) billed the same number of segments.
        for (id, segments) in &sent_ids {
            let view = s.message(id).await;
            assert_eq!(view["segments"], *segments);
            assert_eq!(
                view["attempts"][0]["response"]["num_segments"],
                segments.to_string()
            );
        }
        s.send(json!({"to": PERSON, "channel": "twilio-sms", "from": SMS_NUMBER, "text": "a".repeat(1601)}))
            .await
            .expect(400, Some("text_too_long"));
        assert_eq!(s.creates().len(), 6, "refused at once, never queued");
        // WhatsApp messages have no segments.
        let wa = twilio::inbound_text_form(
            TEST_ACCOUNT_SID,
            PERSON,
            WA_NUMBER,
            "hi",
            "SM00000000000000000000000000000d01",
        );
        assert_eq!(s.webhook(DEFAULT_WEBHOOK_PATH, &wa).await.0, 200);
        let sent = s
            .send(json!({"to": PERSON, "channel": "twilio-whatsapp", "from": WA_NUMBER, "text": "a".repeat(200)}))
            .await
            .expect(202, None);
        assert!(sent.body.get("segments").is_none(), "{}", sent.text);
        let id = sent.body["id"].as_str().unwrap();
        assert!(s.message(id).await.get("segments").is_none());
    })
    .await;
}

#[tokio::test]
async fn messaging_service_senders_on_both_channels() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let wa = twilio::inbound_text_form(
            TEST_ACCOUNT_SID,
            PERSON,
            WA_SERVICE_NUMBER,
            "hi",
            "SM00000000000000000000000000000e01",
        );
        assert_eq!(s.webhook(DEFAULT_WEBHOOK_PATH, &wa).await.0, 200);
        let sms_id = s.send_text("twilio-sms", SMS_SERVICE_NUMBER, "by SMS").await;
        let wa_id = s.send_text("twilio-whatsapp", WA_SERVICE_NUMBER, "by WhatsApp").await;
        s.deliver_all().await;
        let creates = s.creates();
        assert_eq!(creates.len(), 2);
        let by_body = |body: &str| {
            creates
                .iter()
                .find(|c| c.form_value("Body") == Some(body))
                .unwrap()
                .clone()
        };
        let sms = by_body("by SMS");
        assert_eq!(sms.form_value("MessagingServiceSid"), Some(SERVICE_SID));
        assert_eq!(sms.form_value("From"), None);
        assert_eq!(sms.form_value("To"), Some(PERSON));
        let whatsapp = by_body("by WhatsApp");
        assert_eq!(whatsapp.form_value("MessagingServiceSid"), Some(SERVICE_SID));
        assert_eq!(whatsapp.form_value("From"), None);
        assert_eq!(
            whatsapp.form_value("To").map(str::to_owned),
            Some(format!("whatsapp:{PERSON}"))
        );
        // Twilio answers `accepted` (no sender picked yet); both are on their way.
        for id in [sms_id, wa_id] {
            let view = s.message(&id).await;
            assert_eq!(view["status"], "accepted");
            assert!(view["provider_message_id"].is_string());
        }
        // A bad Messaging Service SID is refused when the account is connected.
        s.call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"channel": "twilio-sms", "address": "+14155550199",
                        "credentials": {"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN,
                                        "messaging_service_sid": "MG123"}})),
        )
        .await
        .expect(400, None);
    })
    .await;
}

#[tokio::test]
async fn one_contact_across_sms_and_whatsapp_with_a_conversation_per_account() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.sms_in(
            PERSON,
            SMS_NUMBER,
            "by SMS",
            "SM00000000000000000000000000000f01",
            None,
        )
        .await;
        let wa = twilio::inbound_text_form(
            TEST_ACCOUNT_SID,
            PERSON,
            WA_NUMBER,
            "by WhatsApp",
            "SM00000000000000000000000000000f02",
        );
        assert_eq!(s.webhook(DEFAULT_WEBHOOK_PATH, &wa).await.0, 200);
        let conversations = s
            .call(Method::GET, "/v1/conversations", None)
            .await
            .expect(200, None);
        let data = conversations.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        let mut channels: Vec<&str> = data
            .iter()
            .map(|c| c["channel"].as_str().unwrap())
            .collect();
        channels.sort_unstable();
        assert_eq!(channels, ["twilio-sms", "twilio-whatsapp"]);
        assert_eq!(data[0]["contact"]["id"], data[1]["contact"]["id"]);
        // Any spelling of the number finds the one contact.
        let contact = s
            .call(
                Method::GET,
                "/v1/contacts?phone=%2B31%206%201234%205678",
                None,
            )
            .await
            .expect(200, None);
        assert_eq!(contact.body["id"], data[0]["contact"]["id"]);
    })
    .await;
}

#[tokio::test]
async fn an_inbound_mms_stores_its_media_like_whatsapp_media() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let msid = "MM00000000000000000000000000000a01";
        let jpeg = b"\xff\xd8\xff\xe0 a photo".repeat(100);
        let vcard = b"BEGIN:VCARD\nFN:Ana\nEND:VCARD\n".to_vec();
        let urls = [
            s.twilio
                .add_media(TEST_ACCOUNT_SID, msid, &jpeg, "image/jpeg"),
            s.twilio
                .add_media(TEST_ACCOUNT_SID, msid, &vcard, "text/vcard"),
        ];
        let mut form = twilio::inbound_sms_form(
            TEST_ACCOUNT_SID,
            PERSON,
            SMS_NUMBER,
            "see these",
            msid,
            None,
        );
        form.retain(|(k, _)| k != "NumMedia");
        form.push(("NumMedia".into(), "2".into()));
        for (i, (url, ct)) in urls.iter().zip(["image/jpeg", "text/vcard"]).enumerate() {
            form.push((format!("MediaUrl{i}"), url.clone()));
            form.push((format!("MediaContentType{i}"), ct.into()));
        }
        assert_eq!(s.webhook(DEFAULT_SMS_WEBHOOK_PATH, &form).await.0, 200);
        let conversations = s
            .call(Method::GET, "/v1/conversations", None)
            .await
            .expect(200, None);
        let conv_id = conversations.body["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let message_id = || async {
            let page = s
                .call(
                    Method::GET,
                    &format!("/v1/conversations/{conv_id}/messages"),
                    None,
                )
                .await
                .expect(200, None);
            page.body["data"][0]["id"].as_str().unwrap().to_owned()
        };
        let id = message_id().await;
        for _ in 0..400 {
            s.router.media_fetcher().fetch_due().await.unwrap();
            let view = s.message(&id).await;
            if view["media"]
                .as_array()
                .is_some_and(|m| m.iter().all(|i| i["state"] == "stored"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let view = s.message(&id).await;
        assert_eq!(
            view["content"]["text"],
            Value::Null,
            "the body is the first caption"
        );
        assert_eq!(view["content"]["media"][0]["caption"], "see these");
        let media = view["media"].as_array().unwrap();
        assert_eq!(media.len(), 2, "{view}");
        for (item, (bytes, ct)) in media
            .iter()
            .zip([(&jpeg, "image/jpeg"), (&vcard, "text/vcard")])
        {
            assert_eq!(item["state"], "stored", "{item}");
            let res = s
                .client
                .get(format!(
                    "{}/v1/media/{}",
                    s.base,
                    item["id"].as_str().unwrap()
                ))
                .bearer_auth(&s.admin)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(
                res.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some(ct)
            );
            assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());
        }
    })
    .await;
}

/// The case the fallback is for: a WhatsApp message to a number not on WhatsApp (63003)
/// goes out by SMS on the real adapters, as the same message, through the API.
#[tokio::test]
async fn a_whatsapp_message_to_a_number_not_on_whatsapp_goes_out_by_sms() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let id = s
            .whatsapp_with_sms_fallback("SM00000000000000000000000000000f11")
            .await;
        s.twilio
            .respond_error_next(400, 63003, "Channel could not find To address");
        s.deliver_all().await;
        let creates = s.creates();
        assert_eq!(creates.len(), 2, "one try on WhatsApp, one by SMS");
        let to_whatsapp = format!("whatsapp:{PERSON}");
        assert_eq!(creates[0].form_value("To"), Some(to_whatsapp.as_str()));
        assert_eq!(
            creates[1].form_value("To"),
            Some(PERSON),
            "no whatsapp: by SMS"
        );
        assert_eq!(creates[1].form_value("From"), Some(SMS_NUMBER));
        assert_eq!(creates[1].form_value("Body"), Some("your order shipped"));
        let message = s.message(&id).await;
        assert_eq!(message["channel"], "twilio-sms");
        assert_eq!(message["status"], "accepted");
        let channels: Vec<&str> = message["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["channel"].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["twilio-whatsapp", "twilio-sms"]);
        assert!(
            message["status_history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["status"] == "failed" && h["error_code"] == "63003"),
            "{message}"
        );
    })
    .await;
}

/// Twilio names our message in its callback path, so a failure report that comes before
/// the send's answer finds the message at once: it moves on to SMS, and the WhatsApp send's
/// answer, written later, only adds its attempt.
#[tokio::test]
async fn a_whatsapp_failure_reported_before_the_send_answer_moves_the_message_to_sms() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let id = s
            .whatsapp_with_sms_fallback("SM00000000000000000000000000000f21")
            .await;
        let (deliver, sid) = s.deliver_with_a_slow_answer().await;
        let form = twilio::status_form(
            TEST_ACCOUNT_SID,
            WA_NUMBER,
            PERSON,
            &sid,
            "undelivered",
            Some("63003"),
        );
        let path = format!("{DEFAULT_WEBHOOK_PATH}/status/{id}");
        assert_eq!(s.webhook(&path, &form).await.0, 200);
        assert_eq!(deliver.await.unwrap(), 1);
        s.twilio.set_delay(Duration::ZERO);
        s.deliver_all().await;
        let creates = s.creates();
        assert_eq!(creates.len(), 2, "WhatsApp once, then SMS once");
        assert_eq!(creates[1].form_value("To"), Some(PERSON));
        let message = s.message(&id).await;
        assert_eq!(message["channel"], "twilio-sms");
        assert_eq!(message["status"], "accepted");
        assert_ne!(message["provider_message_id"], sid.as_str());
        let channels: Vec<&str> = message["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["channel"].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["twilio-whatsapp", "twilio-sms"]);
    })
    .await;
}
