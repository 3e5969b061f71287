//! Every content kind through `POST /v1/messages` to a `meta-whatsapp` account: the real
//! Meta adapter against `FakeGraph`, which checks each body against Meta's documented shapes
//! and limits (protocols/meta.md §5, §10, §12, §13.4) and refuses a wrong one as Meta does.
//! Texts with reply context, media, locations, contact cards, reactions, the five
//! interactive types and templates with header, named parameters and buttons go out with
//! the documented bodies; a BSUID-only contact is sent to by `recipient`, a contact with a
//! number by `to`; what WhatsApp's limits or the channel refuse is refused before anything
//! is queued. On SQLite and PostgreSQL.

use std::sync::Arc;

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use switchboard_meta_cloud::MetaCloud;
use switchboard_meta_cloud::testing::{self as meta, FakeGraph};
use switchboard_router::Router;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::{contacts, messages};
use switchboard_twilio::testing::{FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use switchboard_twilio::{DEFAULT_SMS_WEBHOOK_PATH, TwilioConfig, TwilioSms};

use crate::support::http_site::{HttpSite, serve_acme};
use crate::support::providers::{
    APP_SECRET, META_DISPLAY, META_NUMBER, META_TOKEN, PERSON, PERSON_WA, PNID, PUBLIC,
    meta_inbound, now_ts,
};
use crate::support::{TestDb, on_each_backend};

/// The business's SMS number, for content a channel cannot carry.
const SMS_NUMBER: &str = "+14155550100";
/// A person known only by their business-scoped user id.
const BSUID: &str = "US.13491208655302741918";
/// A person known by number and BSUID.
const BOTH_WA: &str = "972987654321";
const BOTH_BSUID: &str = "IL.77001122334455667788";

/// The HTTP app on loopback over the real Meta and Twilio SMS adapters on their fakes, one
/// tenant with an admin key, its Meta account and an SMS account.
struct Site {
    http: HttpSite,
    graph: FakeGraph,
    _twilio: FakeTwilio,
}

impl std::ops::Deref for Site {
    type Target = HttpSite;
    fn deref(&self) -> &HttpSite {
        &self.http
    }
}

async fn site(db: &TestDb) -> Site {
    let graph = FakeGraph::start().await;
    graph.add_number(PNID, META_TOKEN);
    let twilio = FakeTwilio::start().await;
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let router = Router::builder(db.store().await, cipher)
        .adapter(Arc::new(MetaCloud::new(graph.config())))
        .adapter(Arc::new(TwilioSms::new(TwilioConfig {
            public_url: PUBLIC.into(),
            webhook_path: DEFAULT_SMS_WEBHOOK_PATH.into(),
            ..twilio.config()
        })))
        .build();
    let http = serve_acme(router).await;
    http.connect(
        "meta-whatsapp",
        META_NUMBER,
        &json!({"phone_number_id": PNID, "access_token": META_TOKEN,
               "app_secret": APP_SECRET, "verify_token": "vt"}),
    )
    .await;
    http.connect(
        "twilio-sms",
        SMS_NUMBER,
        &json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}),
    )
    .await;
    Site {
        http,
        graph,
        _twilio: twilio,
    }
}

impl Site {
    /// `POST /v1/messages` on the Meta channel, expecting `202`: the message id.
    async fn send(&self, mut body: Value) -> String {
        body["channel"] = json!("meta-whatsapp");
        let accepted = self
            .call(Method::POST, "/v1/messages", Some(body))
            .await
            .expect(202, None);
        assert_eq!(
            accepted.body["channel"], "meta-whatsapp",
            "{}",
            accepted.text
        );
        accepted.body["id"].as_str().unwrap().to_owned()
    }

    /// A Meta webhook, signed as Meta signs it, through the HTTP app.
    async fn meta_webhook(&self, body: &str) {
        let res = self
            .client
            .post(format!("{}/webhooks/meta-whatsapp", self.base))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                meta::sign(APP_SECRET, body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "{}",
            res.text().await.unwrap_or_default()
        );
    }

    /// Runs the delivery engine until nothing is due.
    async fn deliver(&self) {
        while self.router.delivery().deliver_due().await.unwrap() > 0 {}
    }

    async fn message(&self, id: &str) -> Value {
        self.call(Method::GET, &format!("/v1/messages/{id}"), None)
            .await
            .expect(200, None)
            .body
    }

    /// The Switchboard id of the inbound message with this wamid.
    async fn inbound_id(&self, wamid: &str) -> String {
        messages::Entity::find()
            .filter(messages::Column::ProviderMessageId.eq(wamid))
            .one(self.router.store().conn())
            .await
            .unwrap()
            .unwrap()
            .id
    }

    /// The id of the contact with this BSUID.
    async fn contact_id(&self, bsuid: &str) -> String {
        contacts::Entity::find()
            .filter(contacts::Column::Bsuid.eq(bsuid))
            .one(self.router.store().conn())
            .await
            .unwrap()
            .unwrap()
            .id
    }

    async fn message_count(&self) -> u64 {
        messages::Entity::find()
            .count(self.router.store().conn())
            .await
            .unwrap()
    }
}

/// The body Meta documents for a message of `kind` to [`PERSON`], with Switchboard's id as
/// the callback data.
fn to_person(id: &str, kind: &str, payload: Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PERSON,
        "type": kind,
        kind: payload,
        "biz_opaque_callback_data": id,
    })
}

/// An inbound text from a person with a BSUID, and a number when `wa_id` is given.
fn bsuid_inbound(bsuid: &str, wa_id: Option<&str>, wamid: &str) -> String {
    let mut contact = json!({"profile": {"name": "Ann"}, "user_id": bsuid});
    let mut message = json!({"from_user_id": bsuid, "id": wamid, "timestamp": now_ts(),
                             "type": "text", "text": {"body": "hi"}});
    if let Some(wa_id) = wa_id {
        contact["wa_id"] = json!(wa_id);
        message["from"] = json!(wa_id);
    }
    meta::envelope(&[(
        PNID,
        META_DISPLAY,
        "messages",
        json!({"contacts": [contact], "messages": [message]}),
    )])
}

#[tokio::test]
async fn texts_media_locations_contacts_and_reactions_reach_meta_as_documented() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.meta_webhook(&meta_inbound(PERSON_WA, "wamid.in1", "Does it come in blue?"))
            .await;
        let question = s.inbound_id("wamid.in1").await;
        let reply = s
            .send(json!({"to": PERSON, "text": "Yes: https://shop.test/blue",
                         "reply_to": question}))
            .await;
        let image = s
            .send(json!({"to": PERSON, "media": [{"url": "https://cdn.test/blue.jpg",
                         "kind": "image", "caption": "Blue"}]}))
            .await;
        let document = s
            .send(json!({"to": PERSON, "media": [{"url": "https://cdn.test/specs.pdf",
                         "kind": "document", "filename": "specs.pdf"}]}))
            .await;
        let place = s
            .send(json!({"to": PERSON, "location": {"latitude": 37.483307,
                         "longitude": -122.148981, "name": "Philz Coffee",
                         "address": "101 Forest Ave, Palo Alto, CA 94301"}}))
            .await;
        let card = json!({
            "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara",
                     "last_name": "Johnson"},
            "phones": [{"phone": "+16505559999", "type": "Home", "wa_id": "19175559999"}],
            "emails": [{"email": "bjohnson@luckyshrub.com", "type": "Work"}],
            "addresses": [{"street": "1 Lucky Shrub Way", "city": "Menlo Park",
                           "country_code": "US", "type": "Office"}],
            "org": {"company": "Lucky Shrub", "title": "Lead Counsel"},
            "urls": [{"url": "https://www.luckyshrub.com", "type": "Company"}],
            "birthday": "1999-01-23",
        });
        let contacts = s.send(json!({"to": PERSON, "contacts": [card]})).await;
        let reaction = s
            .send(json!({"to": PERSON, "reaction": {"message_id": question, "emoji": "👍"}}))
            .await;
        let unreact = s
            .send(json!({"to": PERSON, "reaction": {"message_id": question, "emoji": ""}}))
            .await;
        s.deliver().await;

        assert!(s.graph.refusals().is_empty(), "{:?}", s.graph.refusals());
        let mut with_context = to_person(
            &reply,
            "text",
            json!({"preview_url": true, "body": "Yes: https://shop.test/blue"}),
        );
        with_context["context"] = json!({"message_id": "wamid.in1"});
        assert_eq!(
            s.graph.sent_messages(),
            [
                with_context,
                to_person(
                    &image,
                    "image",
                    json!({"link": "https://cdn.test/blue.jpg", "caption": "Blue"})
                ),
                to_person(
                    &document,
                    "document",
                    json!({"link": "https://cdn.test/specs.pdf", "filename": "specs.pdf"})
                ),
                to_person(
                    &place,
                    "location",
                    json!({"latitude": 37.483307, "longitude": -122.148981,
                           "name": "Philz Coffee", "address": "101 Forest Ave, Palo Alto, CA 94301"})
                ),
                to_person(&contacts, "contacts", json!([card])),
                to_person(
                    &reaction,
                    "reaction",
                    json!({"message_id": "wamid.in1", "emoji": "👍"})
                ),
                to_person(
                    &unreact,
                    "reaction",
                    json!({"message_id": "wamid.in1", "emoji": ""})
                ),
            ]
        );
        for id in [&reply, &image, &document, &place, &contacts, &reaction, &unreact] {
            let m = s.message(id).await;
            assert_eq!(m["status"], "accepted", "{m}");
            assert!(
                m["provider_message_id"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("wamid.")),
                "{m}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_five_interactive_types_reach_meta_as_documented() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.meta_webhook(&meta_inbound(PERSON_WA, "wamid.in1", "I want to book"))
            .await;
        let question = s.inbound_id("wamid.in1").await;
        let buttons = s
            .send(json!({"to": PERSON, "reply_to": question, "interactive": {
                "type": "buttons",
                "header": {"type": "image", "url": "https://cdn.test/workshop.png"},
                "body": "Your gardening workshop is at 9am tomorrow.",
                "footer": "Lucky Shrub",
                "buttons": [{"id": "change-button", "title": "Change"},
                            {"id": "cancel-button", "title": "Cancel"}]}}))
            .await;
        let list = s
            .send(json!({"to": PERSON, "interactive": {
                "type": "list",
                "header": {"type": "text", "text": "Choose Shipping Option"},
                "body": "Which shipping option do you prefer?",
                "button": "Shipping Options",
                "sections": [
                    {"title": "I want it ASAP!", "rows": [
                        {"id": "priority_express", "title": "Priority Mail Express",
                         "description": "Next Day to 2 Days"}]},
                    {"title": "I can wait a bit", "rows": [
                        {"id": "media_mail", "title": "Media Mail"}]}]}}))
            .await;
        let cta = s
            .send(json!({"to": PERSON, "interactive": {
                "type": "cta_url",
                "header": {"type": "document", "url": "https://cdn.test/dates.pdf",
                           "filename": "dates.pdf"},
                "body": "Tap the button below to see available dates.",
                "footer": "Dates subject to change.",
                "url": {"display_text": "See Dates", "url": "https://www.luckyshrub.com/dates"}}}))
            .await;
        let location = s
            .send(json!({"to": PERSON, "interactive": {
                "type": "location_request", "body": "Where should we pick you up?"}}))
            .await;
        let flow = s
            .send(json!({"to": PERSON, "interactive": {
                "type": "flow", "body": "Book your table", "footer": "Lucky Shrub",
                "flow": {"name": "booking", "cta": "Book!", "screen": "WHEN",
                         "data": {"party": 2}}}}))
            .await;
        s.deliver().await;

        assert!(s.graph.refusals().is_empty(), "{:?}", s.graph.refusals());
        let mut button_message = to_person(
            &buttons,
            "interactive",
            json!({
                "type": "button",
                "header": {"type": "image", "image": {"link": "https://cdn.test/workshop.png"}},
                "body": {"text": "Your gardening workshop is at 9am tomorrow."},
                "footer": {"text": "Lucky Shrub"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                    {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}}]},
            }),
        );
        button_message["context"] = json!({"message_id": "wamid.in1"});
        assert_eq!(
            s.graph.sent_messages(),
            [
                button_message,
                to_person(
                    &list,
                    "interactive",
                    json!({
                        "type": "list",
                        "header": {"type": "text", "text": "Choose Shipping Option"},
                        "body": {"text": "Which shipping option do you prefer?"},
                        "action": {"button": "Shipping Options", "sections": [
                            {"title": "I want it ASAP!", "rows": [
                                {"id": "priority_express", "title": "Priority Mail Express",
                                 "description": "Next Day to 2 Days"}]},
                            {"title": "I can wait a bit", "rows": [
                                {"id": "media_mail", "title": "Media Mail"}]}]},
                    })
                ),
                to_person(
                    &cta,
                    "interactive",
                    json!({
                        "type": "cta_url",
                        "header": {"type": "document", "document": {
                            "link": "https://cdn.test/dates.pdf", "filename": "dates.pdf"}},
                        "body": {"text": "Tap the button below to see available dates."},
                        "footer": {"text": "Dates subject to change."},
                        "action": {"name": "cta_url", "parameters": {
                            "display_text": "See Dates",
                            "url": "https://www.luckyshrub.com/dates"}},
                    })
                ),
                to_person(
                    &location,
                    "interactive",
                    json!({"type": "location_request_message",
                           "body": {"text": "Where should we pick you up?"},
                           "action": {"name": "send_location"}})
                ),
                to_person(
                    &flow,
                    "interactive",
                    json!({
                        "type": "flow",
                        "body": {"text": "Book your table"},
                        "footer": {"text": "Lucky Shrub"},
                        "action": {"name": "flow", "parameters": {
                            "flow_message_version": "3", "flow_name": "booking",
                            "flow_cta": "Book!", "flow_token": "unused",
                            "flow_action": "navigate",
                            "flow_action_payload": {"screen": "WHEN", "data": {"party": 2}}}},
                    })
                ),
            ]
        );
        for id in [&buttons, &list, &cta, &location, &flow] {
            assert_eq!(s.message(id).await["status"], "accepted");
        }
    })
    .await;
}

#[tokio::test]
async fn templates_carry_their_header_named_parameters_and_buttons() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        // A template needs no open window.
        let named = s
            .send(json!({"to": PERSON, "template": {
                "name": "order_confirmation", "language": "en_US",
                "variables": {"first_name": "Jessica", "order_number": "SKBUP2-4CPIG9"},
                "header": {"type": "image", "url": "https://cdn.test/banner.jpg"},
                "buttons": [
                    {"index": 0, "type": "quick_reply", "payload": "STOP_PROMOS"},
                    {"index": 1, "type": "url", "text": "860198"},
                    {"index": 2, "type": "copy_code", "text": "SUMMER20"}]}}))
            .await;
        let positional = s
            .send(json!({"to": PERSON, "template": {
                "name": "pickup_ready", "language": "en",
                "variables": {"2": "Counter 3", "1": "Pablo"},
                "header": {"type": "location", "latitude": 37.48, "longitude": -122.15,
                           "name": "Lucky Shrub", "address": "1 Hacker Way"}}}))
            .await;
        s.deliver().await;

        assert!(s.graph.refusals().is_empty(), "{:?}", s.graph.refusals());
        assert_eq!(
            s.graph.sent_messages(),
            [
                to_person(
                    &named,
                    "template",
                    json!({
                        "name": "order_confirmation",
                        "language": {"code": "en_US"},
                        "components": [
                            {"type": "header", "parameters": [
                                {"type": "image", "image": {"link": "https://cdn.test/banner.jpg"}}]},
                            {"type": "body", "parameters": [
                                {"type": "text", "parameter_name": "first_name", "text": "Jessica"},
                                {"type": "text", "parameter_name": "order_number",
                                 "text": "SKBUP2-4CPIG9"}]},
                            {"type": "button", "sub_type": "quick_reply", "index": "0",
                             "parameters": [{"type": "payload", "payload": "STOP_PROMOS"}]},
                            {"type": "button", "sub_type": "url", "index": "1",
                             "parameters": [{"type": "text", "text": "860198"}]},
                            {"type": "button", "sub_type": "copy_code", "index": "2",
                             "parameters": [{"type": "coupon_code", "coupon_code": "SUMMER20"}]},
                        ],
                    })
                ),
                to_person(
                    &positional,
                    "template",
                    json!({
                        "name": "pickup_ready",
                        "language": {"code": "en"},
                        "components": [
                            {"type": "header", "parameters": [{"type": "location", "location": {
                                "latitude": 37.48, "longitude": -122.15,
                                "name": "Lucky Shrub", "address": "1 Hacker Way"}}]},
                            {"type": "body", "parameters": [
                                {"type": "text", "text": "Pablo"},
                                {"type": "text", "text": "Counter 3"}]},
                        ],
                    })
                ),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_bsuid_only_contact_gets_recipient_and_a_known_number_is_used_instead() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.meta_webhook(&bsuid_inbound(BSUID, None, "wamid.b1"))
            .await;
        s.meta_webhook(&bsuid_inbound(BOTH_BSUID, Some(BOTH_WA), "wamid.b2"))
            .await;
        let only_bsuid = s.contact_id(BSUID).await;
        let both = s.contact_id(BOTH_BSUID).await;
        let mut ids = Vec::new();
        // By BSUID or by contact id alike; known by both, the number is used (api.md).
        for to in [BSUID, only_bsuid.as_str(), BOTH_BSUID, both.as_str()] {
            ids.push(
                s.send(json!({"to": to, "text": "Your order has shipped."}))
                    .await,
            );
            s.deliver().await;
        }

        assert!(s.graph.refusals().is_empty(), "{:?}", s.graph.refusals());
        let sent = s.graph.sent_messages();
        assert_eq!(sent.len(), 4);
        for (i, body) in sent[..2].iter().enumerate() {
            assert_eq!(
                body,
                &json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "recipient": BSUID,
                    "type": "text",
                    "text": {"preview_url": false, "body": "Your order has shipped."},
                    "biz_opaque_callback_data": ids[i],
                })
            );
        }
        for body in &sent[2..] {
            assert_eq!(body["to"], format!("+{BOTH_WA}"));
            assert!(body.get("recipient").is_none(), "{body}");
        }
        for id in &ids {
            assert_eq!(s.message(id).await["status"], "accepted");
        }
    })
    .await;
}

#[tokio::test]
async fn an_authentication_template_to_a_bsuid_fails_with_131062() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.graph.authentication_template("login_code");
        s.meta_webhook(&bsuid_inbound(BSUID, None, "wamid.b1"))
            .await;
        let id = s
            .send(
                json!({"to": BSUID, "template": {"name": "login_code", "language": "en_US",
                         "variables": {"1": "123456"}}}),
            )
            .await;
        s.deliver().await;
        let m = s.message(&id).await;
        assert_eq!(m["status"], "failed", "{m}");
        assert_eq!(m["error_code"], "131062", "{m}");
        assert!(s.graph.sent_messages().is_empty());
        // Permanent: nothing is left to retry.
        s.deliver().await;
        let sends = s
            .graph
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/messages"))
            .count();
        assert_eq!(sends, 1);
    })
    .await;
}

#[tokio::test]
async fn interactive_over_whatsapp_limits_is_refused_before_anything_is_queued() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.meta_webhook(&meta_inbound(PERSON_WA, "wamid.in1", "hi"))
            .await;
        let before = s.message_count().await;
        let rows: Vec<Value> = (0..11)
            .map(|i| json!({"id": format!("r{i}"), "title": format!("Row {i}")}))
            .collect();
        for (interactive, words) in [
            (
                json!({"type": "buttons", "body": "Pick one", "buttons": [
                    {"id": "1", "title": "One"}, {"id": "2", "title": "Two"},
                    {"id": "3", "title": "Three"}, {"id": "4", "title": "Four"}]}),
                "1 to 3 buttons",
            ),
            (
                json!({"type": "buttons", "body": "Pick one",
                       "buttons": [{"id": "1", "title": "A title of 21 chars.."}]}),
                "title",
            ),
            (
                json!({"type": "list", "body": "b", "button": "Open",
                       "sections": [{"title": "All", "rows": rows}]}),
                "1 to 10 rows",
            ),
            (
                json!({"type": "list", "body": "b", "button": "Open", "sections": [
                    {"title": "s".repeat(25), "rows": [{"id": "r", "title": "t"}]}]}),
                "sections[0].title",
            ),
            (
                json!({"type": "buttons", "header": {"type": "text", "text": "h".repeat(61)},
                       "body": "b", "buttons": [{"id": "1", "title": "One"}]}),
                "header text",
            ),
            (
                json!({"type": "cta_url", "body": "b",
                       "url": {"display_text": "d".repeat(21), "url": "https://x.test"}}),
                "display_text",
            ),
            (
                json!({"type": "flow", "body": "b",
                       "flow": {"id": "1", "name": "booking", "cta": "Book"}}),
                "exactly one",
            ),
        ] {
            let refused = s
                .call(
                    Method::POST,
                    "/v1/messages",
                    Some(json!({"to": PERSON, "interactive": interactive})),
                )
                .await
                .expect(400, Some("invalid_interactive"));
            let message = refused.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(words), "{words:?} not in {message:?}");
        }
        assert_eq!(s.message_count().await, before, "nothing was stored");
        s.deliver().await;
        assert!(s.graph.requests().is_empty(), "nothing reached Meta");
    })
    .await;
}

#[tokio::test]
async fn content_a_channel_cannot_carry_is_refused_with_422_and_never_queued() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let before = s.message_count().await;
        for (content, part) in [
            (
                json!({"interactive": {"type": "buttons", "body": "Pick one",
                                       "buttons": [{"id": "1", "title": "One"}]}}),
                "interactive buttons",
            ),
            (
                json!({"contacts": [{"name": {"formatted_name": "Ann"}}]}),
                "contacts",
            ),
            (
                json!({"location": {"latitude": 1.0, "longitude": 2.0}}),
                "location",
            ),
        ] {
            let mut body = content;
            body["to"] = json!(PERSON);
            body["channel"] = json!("twilio-sms");
            let refused = s
                .call(Method::POST, "/v1/messages", Some(body))
                .await
                .expect(422, Some("unsupported_content"));
            let message = refused.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("twilio-sms") && message.contains(part),
                "{part:?} on twilio-sms not in {message:?}"
            );
        }
        assert_eq!(s.message_count().await, before);
        s.deliver().await;
        assert!(s.graph.requests().is_empty());
    })
    .await;
}

#[tokio::test]
async fn read_receipts_reach_meta_with_and_without_the_typing_indicator() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.meta_webhook(&meta_inbound(PERSON_WA, "wamid.in1", "hi"))
            .await;
        s.meta_webhook(&meta_inbound(PERSON_WA, "wamid.in2", "are you there?"))
            .await;
        let first = s.inbound_id("wamid.in1").await;
        let second = s.inbound_id("wamid.in2").await;
        s.call(Method::POST, &format!("/v1/messages/{first}/read"), None)
            .await
            .expect(204, None);
        s.call(
            Method::POST,
            &format!("/v1/messages/{second}/read"),
            Some(json!({"typing": true})),
        )
        .await
        .expect(204, None);
        // protocols/meta.md §11.
        assert_eq!(
            s.graph.read_receipts(),
            [
                json!({"messaging_product": "whatsapp", "status": "read",
                       "message_id": "wamid.in1"}),
                json!({"messaging_product": "whatsapp", "status": "read",
                       "message_id": "wamid.in2", "typing_indicator": {"type": "text"}}),
            ]
        );
        assert!(s.graph.refusals().is_empty());
        assert!(s.graph.sent_messages().is_empty());
    })
    .await;
}
