//! Twilio WhatsApp's interactive messages, locations, templates and typing indicators
//! against `testing::FakeTwilio` over real HTTP on 127.0.0.1: the Content API resources
//! created on the fly and found again, their errors, and the fake's own checks.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{
    AccountContext, ChannelAdapter, Content, ErrorKind, InteractiveMessage, Location,
    OutboundMessage, PhoneNumber, Recipient, Template,
};
use switchboard_twilio::content_api::interactive_spec;
use switchboard_twilio::testing::{
    self, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_TEMPLATE_SID,
};
use switchboard_twilio::{TwilioConfig, TwilioSms, TwilioWhatsApp};

const BUSINESS: &str = "+14155238886";
const PERSON: &str = "+31612345678";
const INBOUND_SID: &str = "SM1f0e2d3c4b5a69788796a5b4c3d2e1f0";

fn account() -> AccountContext {
    testing::account(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, BUSINESS)
}

fn adapter(fake: &FakeTwilio) -> TwilioWhatsApp {
    TwilioWhatsApp::new(fake.config())
}

fn adapter_with_timeout(fake: &FakeTwilio, timeout: Duration) -> TwilioWhatsApp {
    TwilioWhatsApp::new(TwilioConfig {
        request_timeout: timeout,
        ..fake.config()
    })
}

fn interactive(v: Value) -> InteractiveMessage {
    serde_json::from_value(v).unwrap()
}

fn message(id: &str, content: Content) -> OutboundMessage {
    OutboundMessage {
        id: id.into(),
        to: Recipient::phone(PhoneNumber::parse(PERSON).unwrap()),
        content,
        reply_to: None,
    }
}

fn send_interactive(id: &str, v: Value) -> OutboundMessage {
    message(
        id,
        Content {
            interactive_message: Some(interactive(v)),
            ..Content::default()
        },
    )
}

fn buttons() -> Value {
    json!({"type": "buttons", "body": "Did your order arrive?",
        "buttons": [{"id": "arrived_yes", "title": "Yes"}, {"id": "arrived_no", "title": "No"}]})
}

fn message_creates(fake: &FakeTwilio) -> Vec<testing::RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
        .collect()
}

fn content_creates(fake: &FakeTwilio) -> Vec<testing::RecordedRequest> {
    fake.content_requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

#[tokio::test]
async fn buttons_are_created_as_a_quick_reply_and_sent_by_content_sid() {
    let fake = FakeTwilio::start().await;
    let receipt = adapter(&fake)
        .send(&account(), &send_interactive("msg-1", buttons()))
        .await
        .unwrap();
    assert!(receipt.provider_message_id.starts_with("SM"));

    let spec = interactive_spec(&interactive(buttons())).unwrap();
    let name = spec.friendly_name();
    let content = fake.content_requests();
    assert_eq!(content.len(), 2, "a look-up, then a create: {content:?}");
    let lookup = &content[0];
    assert_eq!(
        (lookup.method.as_str(), lookup.path.as_str()),
        ("GET", "/v2/Content")
    );
    assert_eq!(
        lookup.query.as_deref(),
        Some(format!("ContentName={name}").as_str())
    );
    assert_eq!(lookup.basic_user.as_deref(), Some(TEST_ACCOUNT_SID));
    assert_eq!(lookup.basic_password.as_deref(), Some(TEST_AUTH_TOKEN));
    let create = &content[1];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/v1/Content")
    );
    assert_eq!(create.header("content-type"), Some("application/json"));
    assert_eq!(create.basic_password.as_deref(), Some(TEST_AUTH_TOKEN));
    assert_eq!(
        create.json().unwrap(),
        json!({"friendly_name": name, "language": "en", "types": {"twilio/quick-reply": {
            "body": "Did your order arrive?",
            "actions": [
                {"type": "QUICK_REPLY", "title": "Yes", "id": "arrived_yes"},
                {"type": "QUICK_REPLY", "title": "No", "id": "arrived_no"}]}}})
    );
    let created = fake.created_contents();
    assert_eq!(created.len(), 1);
    let sid = created[0]["sid"].as_str().unwrap();
    assert!(
        switchboard_twilio::content_api::is_content_sid(sid),
        "{sid}"
    );
    assert_eq!(created[0]["account_sid"], TEST_ACCOUNT_SID);

    let sends = message_creates(&fake);
    assert_eq!(sends.len(), 1);
    let form = &sends[0];
    assert_eq!(form.form_value("ContentSid"), Some(sid));
    assert_eq!(
        form.form_value("To"),
        Some(format!("whatsapp:{PERSON}").as_str())
    );
    assert_eq!(form.form_value("Body"), None);
    assert_eq!(form.form_value("MediaUrl"), None);
    assert_eq!(form.form_value("ContentVariables"), None);
    // The exchange stored with the receipt is the message's, without secrets.
    let exchange = serde_json::to_string(&receipt.exchange).unwrap();
    assert!(
        exchange.contains(sid) && !exchange.contains(TEST_AUTH_TOKEN),
        "{exchange}"
    );
}

#[tokio::test]
async fn each_kind_maps_to_its_content_type_and_the_fake_accepts_it() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    let rows = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("row-{i}"), "title": format!("Option {i}"), "description": "d".repeat(72)}))
            .collect()
    };
    let cases: Vec<(Content, &str, Value)> = vec![
        (
            Content {
                interactive_message: Some(interactive(
                    json!({"type": "list", "body": "Pick a slot",
                    "button": "Slots", "sections": [{"title": "Morning", "rows": rows(4)},
                    {"title": "Afternoon", "rows": [{"id": "pm", "title": "x".repeat(24)}]}]}),
                )),
                ..Content::default()
            },
            "twilio/list-picker",
            json!({"body": "Pick a slot", "button": "Slots",
                "items": rows(4).into_iter().map(|r| json!({"id": r["id"], "item": r["title"], "description": r["description"]}))
                    .chain([json!({"id": "pm", "item": "x".repeat(24)})]).collect::<Vec<_>>()}),
        ),
        (
            Content {
                interactive_message: Some(interactive(
                    json!({"type": "cta_url", "body": "Track it",
                    "url": {"display_text": "Track", "url": "https://shop.example.com/t/1"}}),
                )),
                ..Content::default()
            },
            "twilio/call-to-action",
            json!({"body": "Track it", "actions": [{"type": "URL", "title": "Track", "url": "https://shop.example.com/t/1"}]}),
        ),
        (
            Content {
                interactive_message: Some(interactive(
                    json!({"type": "cta_url", "body": "Track it",
                    "header": {"type": "text", "text": "Shipped"}, "footer": "Thanks",
                    "url": {"display_text": "Track", "url": "https://shop.example.com/t/1"}}),
                )),
                ..Content::default()
            },
            "whatsapp/card",
            json!({"body": "Track it", "header_text": "Shipped", "footer": "Thanks",
                "actions": [{"type": "URL", "title": "Track", "url": "https://shop.example.com/t/1"}]}),
        ),
        (
            Content {
                interactive_message: Some(interactive(
                    json!({"type": "buttons", "body": "Like it?",
                    "header": {"type": "image", "url": "https://cdn.example.com/p.png"},
                    "buttons": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}, {"id": "m", "title": "Maybe"}]}),
                )),
                ..Content::default()
            },
            "whatsapp/card",
            json!({"body": "Like it?", "media": ["https://cdn.example.com/p.png"], "actions": [
                {"type": "QUICK_REPLY", "title": "Yes", "id": "y"},
                {"type": "QUICK_REPLY", "title": "No", "id": "n"},
                {"type": "QUICK_REPLY", "title": "Maybe", "id": "m"}]}),
        ),
        (
            Content {
                interactive_message: Some(interactive(
                    json!({"type": "flow", "body": "Book a table",
                    "flow": {"id": "1234567890", "cta": "Book", "token": "booking-7", "screen": "DATE"}}),
                )),
                ..Content::default()
            },
            "whatsapp/flows",
            json!({"body": "Book a table", "button_text": "Book", "flow_id": "1234567890",
                "flow_token": "booking-7", "flow_first_page_id": "DATE"}),
        ),
        (
            Content {
                location: Some(Location {
                    latitude: 52.3731,
                    longitude: 4.8922,
                    name: Some("Dam Square".into()),
                    address: Some("Dam, 1012 JS Amsterdam".into()),
                    url: None,
                }),
                ..Content::default()
            },
            "twilio/location",
            json!({"latitude": 52.3731, "longitude": 4.8922, "label": "Dam Square",
                "address": "Dam, 1012 JS Amsterdam"}),
        ),
    ];
    for (i, (content, content_type, fields)) in cases.into_iter().enumerate() {
        a.send(&account(), &message(&format!("msg-{i}"), content))
            .await
            .unwrap_or_else(|e| panic!("{content_type}: {e}"));
        let created = fake.created_contents();
        assert_eq!(created.len(), i + 1, "{content_type}");
        let resource = created.last().unwrap();
        assert_eq!(
            resource["types"],
            json!({content_type: fields}),
            "{content_type}"
        );
        let sends = message_creates(&fake);
        assert_eq!(
            sends.last().unwrap().form_value("ContentSid"),
            resource["sid"].as_str(),
            "{content_type}"
        );
        assert_eq!(sends.last().unwrap().form_value("Body"), None);
        assert_eq!(sends.last().unwrap().form_value("PersistentAction"), None);
    }
}

#[tokio::test]
async fn the_same_content_is_created_once_and_found_again_after_a_restart() {
    let fake = FakeTwilio::start().await;
    let first = adapter(&fake);
    first
        .send(&account(), &send_interactive("m1", buttons()))
        .await
        .unwrap();
    let sid = fake.created_contents()[0]["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let requests_after_first = fake.content_requests().len();

    // The same content again: remembered, no Content API request at all.
    first
        .send(&account(), &send_interactive("m2", buttons()))
        .await
        .unwrap();
    assert_eq!(fake.content_requests().len(), requests_after_first);
    assert_eq!(
        message_creates(&fake)[1].form_value("ContentSid"),
        Some(sid.as_str())
    );

    // A restarted process (a new adapter) finds it by name and creates nothing.
    let restarted = adapter(&fake);
    restarted
        .send(&account(), &send_interactive("m3", buttons()))
        .await
        .unwrap();
    assert_eq!(fake.created_contents().len(), 1);
    let after_restart = fake.content_requests();
    assert_eq!(after_restart.len(), requests_after_first + 1);
    assert_eq!(after_restart.last().unwrap().method, "GET");
    assert_eq!(
        message_creates(&fake)[2].form_value("ContentSid"),
        Some(sid.as_str())
    );

    // Different content is another resource.
    let mut other = buttons();
    other["body"] = json!("Did your parcel arrive?");
    restarted
        .send(&account(), &send_interactive("m4", other))
        .await
        .unwrap();
    assert_eq!(fake.created_contents().len(), 2);
    assert_ne!(
        message_creates(&fake)[3].form_value("ContentSid"),
        Some(sid.as_str())
    );
}

#[tokio::test]
async fn the_look_up_follows_pages_and_takes_only_the_exact_name() {
    let fake = FakeTwilio::start().await;
    let spec = interactive_spec(&interactive(buttons())).unwrap();
    let name = spec.friendly_name();
    // Names that contain the name, and the name on another type, come first.
    for decoy in [format!("{name}_old"), format!("copy_of_{name}")] {
        fake.add_content(
            TEST_ACCOUNT_SID,
            &json!({"friendly_name": decoy, "language": "en", "types": {spec.content_type(): spec.fields()}}),
        );
    }
    fake.add_content(
        TEST_ACCOUNT_SID,
        &json!({"friendly_name": name, "language": "en", "types": {"twilio/text": {"body": "x"}}}),
    );
    // Another account's resource of that name is not this account's.
    fake.add_account("AC00000000000000000000000000000002", "other-token");
    fake.add_content(
        "AC00000000000000000000000000000002",
        &json!({"friendly_name": name, "language": "en", "types": {spec.content_type(): spec.fields()}}),
    );
    let existing = fake.add_content(
        TEST_ACCOUNT_SID,
        &json!({"friendly_name": name, "language": "en", "types": {spec.content_type(): spec.fields()}}),
    );
    fake.set_content_page_size(1);

    adapter(&fake)
        .send(&account(), &send_interactive("m1", buttons()))
        .await
        .unwrap();
    assert!(fake.created_contents().is_empty());
    let lookups = fake.content_requests();
    assert_eq!(
        lookups.len(),
        4,
        "one page per resource of that name: {lookups:?}"
    );
    assert!(
        lookups
            .iter()
            .all(|r| r.method == "GET" && r.path == "/v2/Content")
    );
    assert!(
        lookups[1]
            .query
            .as_deref()
            .unwrap()
            .contains("PageToken=PT1")
    );
    assert_eq!(
        message_creates(&fake)[0].form_value("ContentSid"),
        Some(existing.as_str())
    );
}

#[tokio::test]
async fn concurrent_sends_of_new_content_create_it_once() {
    let fake = FakeTwilio::start().await;
    fake.hold_next_answer_to("POST", "/v1/Content", Duration::from_millis(300));
    let a = adapter(&fake);
    let (acct, m1, m2) = (
        account(),
        send_interactive("m1", buttons()),
        send_interactive("m2", buttons()),
    );
    let (one, two) = tokio::join!(a.send(&acct, &m1), a.send(&acct, &m2));
    one.unwrap();
    two.unwrap();
    assert_eq!(fake.created_contents().len(), 1);
    assert_eq!(content_creates(&fake).len(), 1);
    let sends = message_creates(&fake);
    assert_eq!(sends.len(), 2);
    assert_eq!(
        sends[0].form_value("ContentSid"),
        sends[1].form_value("ContentSid")
    );
}

#[tokio::test]
async fn content_api_errors_are_classified_and_never_ambiguous() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    let (acct, m) = (account(), send_interactive("m", buttons()));
    let send = || a.send(&acct, &m);

    fake.respond_error_next_to("POST", "/v1/Content", 400, 20001, "Invalid types");
    let e = send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent);
    assert_eq!(e.provider_code(), Some("20001"));
    assert!(
        e.message()
            .starts_with("Twilio's Content API answered HTTP 400"),
        "{e}"
    );
    let exchange = e.exchange().unwrap();
    assert_eq!(exchange.http_status, Some(400));
    assert!(exchange.request.as_ref().unwrap()["types"].is_object());

    fake.respond_next_to(
        "GET",
        "/v2/Content",
        429,
        testing::error_json(429, 20429, "Too Many Requests"),
        &[("Retry-After", "7")],
    );
    let e = send().await.unwrap_err();
    assert!(e.is_rate_limited(), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    fake.respond_error_next_to("POST", "/v1/Content", 500, 20500, "Internal Server Error");
    let e = send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    fake.respond_error_next_to("GET", "/v2/Content", 503, 20503, "Service Unavailable");
    assert_eq!(send().await.unwrap_err().kind(), ErrorKind::Transient);

    // None of these sent a message or created anything; the next try does both, once.
    assert!(message_creates(&fake).is_empty());
    assert!(fake.created_contents().is_empty());
    send().await.unwrap();
    assert_eq!(fake.created_contents().len(), 1);
    assert_eq!(message_creates(&fake).len(), 1);
}

#[tokio::test]
async fn a_create_that_timed_out_is_found_by_the_retry_instead_of_created_twice() {
    let fake = FakeTwilio::start().await;
    let a = adapter_with_timeout(&fake, Duration::from_millis(500));
    fake.hold_next_answer_to("POST", "/v1/Content", Duration::from_secs(2));
    let e = a
        .send(&account(), &send_interactive("m", buttons()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    assert!(!e.is_ambiguous());
    assert!(message_creates(&fake).is_empty());
    // Twilio did create it.
    assert_eq!(fake.created_contents().len(), 1);
    a.send(&account(), &send_interactive("m", buttons()))
        .await
        .unwrap();
    assert_eq!(fake.created_contents().len(), 1);
    assert_eq!(content_creates(&fake).len(), 1);
    assert_eq!(
        message_creates(&fake)[0].form_value("ContentSid"),
        fake.created_contents()[0]["sid"].as_str()
    );
}

#[tokio::test]
async fn a_remembered_resource_twilio_no_longer_knows_is_looked_up_again() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    a.send(&account(), &send_interactive("m1", buttons()))
        .await
        .unwrap();
    let path = format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json");
    fake.respond_error_next_to("POST", &path, 400, 21655, "The ContentSid is Invalid");
    let e = a
        .send(&account(), &send_interactive("m2", buttons()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    assert_eq!(e.provider_code(), Some("21655"));
    let before = fake.content_requests().len();
    a.send(&account(), &send_interactive("m2", buttons()))
        .await
        .unwrap();
    assert_eq!(fake.content_requests().len(), before + 1, "looked up again");
}

#[tokio::test]
async fn what_twilio_cannot_carry_is_refused_without_a_request() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    let refused = [
        (
            json!({"type": "flow", "body": "Book", "flow": {"name": "booking", "cta": "Book"}}),
            ErrorKind::Unsupported,
            "by its `id`",
        ),
        (
            json!({"type": "location_request", "body": "Where are you?"}),
            ErrorKind::Unsupported,
            "location request",
        ),
        (
            json!({"type": "list", "body": "b", "button": "Open", "footer": "f",
                "sections": [{"rows": [{"id": "1", "title": "One"}]}]}),
            ErrorKind::Unsupported,
            "header or footer",
        ),
        (
            json!({"type": "buttons", "body": "b", "buttons": [{"id": "1", "title": "x".repeat(21)}]}),
            ErrorKind::Invalid,
            "21 characters",
        ),
    ];
    for (v, kind, why) in refused {
        let m = send_interactive("m", v.clone());
        let e = a.send(&account(), &m).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{v}");
        assert!(e.message().contains(why), "{v}: {e}");
        // The router asks the same before queueing.
        let checked = a.check_content(&m.content).unwrap_err();
        assert_eq!(checked.kind(), kind, "{v}");
    }
    let bad_variables = message(
        "t",
        Content {
            template: Some(Template {
                name: TEST_TEMPLATE_SID.into(),
                variables: [("1".to_owned(), "line\nbreak".to_owned())].into(),
                ..Template::default()
            }),
            ..Content::default()
        },
    );
    let e = a.send(&account(), &bad_variables).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("newline"), "{e}");
    assert!(a.check_content(&bad_variables.content).is_err());
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());

    // SMS carries none of it.
    let sms = TwilioSms::new(fake.config());
    assert!(sms.capabilities().interactive.is_empty());
    assert!(!sms.capabilities().contacts && !sms.capabilities().typing_indicator);
    let e = sms
        .send(&account(), &send_interactive("m", buttons()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        sms.check_content(&send_interactive("m", buttons()).content)
            .is_err()
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn templates_send_their_variables_by_position_or_name() {
    let fake = FakeTwilio::start().await;
    let named = fake.add_content(
        TEST_ACCOUNT_SID,
        &json!({"friendly_name": "welcome", "language": "en",
            "types": {"twilio/text": {"body": "Hi {{first_name}}"}}}),
    );
    let a = adapter(&fake);
    for (sid, variables) in [
        (
            TEST_TEMPLATE_SID.to_owned(),
            json!({"1": "12/1", "2": "3pm"}),
        ),
        (named, json!({"first_name": "Ana"})),
    ] {
        let vars: std::collections::BTreeMap<String, String> =
            serde_json::from_value(variables.clone()).unwrap();
        let m = message(
            "t",
            Content {
                template: Some(Template {
                    name: sid.clone(),
                    variables: vars,
                    ..Template::default()
                }),
                ..Content::default()
            },
        );
        a.send(&account(), &m).await.unwrap();
        let sent = message_creates(&fake).pop().unwrap();
        assert_eq!(sent.form_value("ContentSid"), Some(sid.as_str()));
        let got: Value =
            serde_json::from_str(sent.form_value("ContentVariables").unwrap()).unwrap();
        assert_eq!(got, variables);
    }
    assert!(
        fake.content_requests().is_empty(),
        "templates need no Content API call"
    );
    // A template the account does not have: Twilio's 21655, permanent.
    let unknown = message(
        "t",
        Content {
            template: Some(Template {
                name: "HXffffffffffffffffffffffffffffffff".into(),
                ..Template::default()
            }),
            ..Content::default()
        },
    );
    let e = a.send(&account(), &unknown).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.provider_code()),
        (ErrorKind::Permanent, Some("21655"))
    );
}

#[tokio::test]
async fn typing_marks_read_through_the_typing_indicators_resource() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    a.mark_read(&account(), INBOUND_SID, true).await.unwrap();
    let typing = fake.typing_requests();
    assert_eq!(typing.len(), 1);
    let r = &typing[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.basic_user.as_deref(), Some(TEST_ACCOUNT_SID));
    assert_eq!(r.basic_password.as_deref(), Some(TEST_AUTH_TOKEN));
    assert_eq!(r.form_value("messageId"), Some(INBOUND_SID));
    assert_eq!(r.form_value("channel"), Some("whatsapp"));

    // Twilio has no read receipt without the indicator.
    let e = a
        .mark_read(&account(), INBOUND_SID, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("typing"), "{e}");
    let e = a
        .mark_read(&account(), "wamid.abc", true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(fake.typing_requests().len(), 1);

    // Its errors, classified.
    fake.respond_error_next_to("POST", "/v2/Indicators", 400, 20001, "Invalid messageId");
    let e = a
        .mark_read(&account(), INBOUND_SID, true)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.provider_code()),
        (ErrorKind::Permanent, Some("20001"))
    );
    assert!(e.message().contains("Typing Indicators"), "{e}");
    fake.respond_error_next_to("POST", "/v2/Indicators", 429, 20429, "Too Many Requests");
    assert!(
        a.mark_read(&account(), INBOUND_SID, true)
            .await
            .unwrap_err()
            .is_rate_limited()
    );
    fake.respond_error_next_to(
        "POST",
        "/v2/Indicators",
        500,
        20500,
        "Internal Server Error",
    );
    assert_eq!(
        a.mark_read(&account(), INBOUND_SID, true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Transient
    );
    fake.respond_next_to(
        "POST",
        "/v2/Indicators",
        200,
        json!({"success": false}),
        &[],
    );
    assert_eq!(
        a.mark_read(&account(), INBOUND_SID, true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Permanent
    );
    let wrong = testing::account(TEST_ACCOUNT_SID, "wrong-token", BUSINESS);
    assert!(
        a.mark_read(&wrong, INBOUND_SID, true)
            .await
            .unwrap_err()
            .is_auth()
    );
}

/// The fake refuses what Twilio documents as wrong, so a test against it fails when the
/// adapter sends it.
#[tokio::test]
async fn the_fake_refuses_malformed_requests_with_twilios_error_body() {
    let fake = FakeTwilio::start().await;
    let client = reqwest::Client::new();
    let base = fake.base_url();
    let post_json = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
            .json(&body)
            .send()
    };
    let expect_error = |status: u16, code: u64| {
        move |(got, body): (u16, Value)| {
            assert_eq!(got, status, "{body}");
            assert_eq!(body["code"], code, "{body}");
            assert_eq!(body["status"], status, "{body}");
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
            assert!(
                body["more_info"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://www.twilio.com/docs/errors/")
            );
        }
    };
    async fn read(r: reqwest::Response) -> (u16, Value) {
        (r.status().as_u16(), r.json().await.unwrap())
    }

    // Content: four quick replies, a missing language, an unknown type, a long list item.
    let actions: Vec<Value> = (0..4)
        .map(|i| json!({"type": "QUICK_REPLY", "title": format!("B{i}"), "id": format!("b{i}")}))
        .collect();
    for body in [
        json!({"language": "en", "types": {"twilio/quick-reply": {"body": "b", "actions": actions}}}),
        json!({"types": {"twilio/text": {"body": "b"}}}),
        json!({"language": "en", "types": {"twilio/buttons": {"body": "b"}}}),
        json!({"language": "en", "types": {"twilio/list-picker": {"body": "b", "button": "Open",
            "items": [{"id": "1", "item": "x".repeat(25)}]}}}),
    ] {
        expect_error(400, 20001)(read(post_json("/v1/Content", body).await.unwrap()).await);
    }
    assert!(fake.created_contents().is_empty());
    // A good one is created: 201, the documented shape.
    let (status, created) = read(
        post_json(
            "/v1/Content",
            json!({"friendly_name": "hello", "language": "en", "types": {"twilio/text": {"body": "Hello"}}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let sid = created["sid"].as_str().unwrap().to_owned();
    assert!(switchboard_twilio::content_api::is_content_sid(&sid));
    for field in [
        "account_sid",
        "friendly_name",
        "language",
        "variables",
        "types",
        "url",
        "date_created",
        "date_updated",
        "links",
    ] {
        assert!(created.get(field).is_some(), "{field}: {created}");
    }
    let fetched = client
        .get(format!("{base}/v1/Content/{sid}"))
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(read(fetched).await, (200, created.clone()));
    let listed = client
        .get(format!("{base}/v2/Content?ContentName=hello"))
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    let (status, page) = read(listed).await;
    assert_eq!(status, 200);
    assert_eq!(page["contents"], json!([created]));
    assert_eq!(page["meta"]["key"], "contents");
    assert!(page["meta"]["next_page_url"].is_null());
    // Without credentials: 401.
    let anonymous = client
        .post(format!("{base}/v1/Content"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(401, 20003)(read(anonymous).await);

    // Messages naming content: an unknown SID, Body beside it, variables not an object.
    let messages = format!("{base}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json");
    let post_form = |form: Vec<(&'static str, String)>| {
        client
            .post(&messages)
            .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
            .form(&form)
            .send()
    };
    let to = ("To", format!("whatsapp:{PERSON}"));
    let from = ("From", format!("whatsapp:{BUSINESS}"));
    for (form, status, code) in [
        (
            vec![
                to.clone(),
                from.clone(),
                ("ContentSid", "HXffffffffffffffffffffffffffffffff".into()),
            ],
            400,
            21655,
        ),
        (
            vec![
                to.clone(),
                from.clone(),
                ("ContentSid", sid.clone()),
                ("Body", "hi".into()),
            ],
            400,
            20001,
        ),
        (
            vec![
                to.clone(),
                from.clone(),
                ("ContentSid", sid.clone()),
                ("ContentVariables", "[1]".into()),
            ],
            400,
            21656,
        ),
        (
            vec![
                to.clone(),
                from.clone(),
                ("ContentSid", sid.clone()),
                ("ContentVariables", r#"{"1":""}"#.into()),
            ],
            400,
            21656,
        ),
    ] {
        expect_error(status, code)(read(post_form(form).await.unwrap()).await);
    }
    let ok = post_form(vec![
        to,
        from,
        ("ContentSid", sid),
        ("ContentVariables", r#"{"1":"Ana"}"#.into()),
    ])
    .await
    .unwrap();
    assert_eq!(ok.status().as_u16(), 201);

    // Typing: a channel other than whatsapp, a message id that is not a message SID.
    let typing = format!("{base}/v2/Indicators/Typing.json");
    for form in [
        [("messageId", INBOUND_SID), ("channel", "sms")],
        [("messageId", "SM123"), ("channel", "whatsapp")],
    ] {
        let r = client
            .post(&typing)
            .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
            .form(&form)
            .send()
            .await
            .unwrap();
        expect_error(400, 20001)(read(r).await);
    }
}
