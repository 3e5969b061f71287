//! The adapter against `testing::FakeTwilio` over real HTTP on 127.0.0.1.

use std::time::Duration;

use serde_json::json;
use switchboard_core::{
    AccountContext, ChannelAdapter, Content, ErrorKind, HealthStatus, MediaItem, MediaKind,
    MessageStatus, OutboundMessage, PhoneNumber, Recipient, Template,
};
use switchboard_twilio::testing::{self, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp};

const BUSINESS: &str = "+14155238886";
const PERSON: &str = "+31612345678";

fn adapter_for(base: &str, timeout: Duration) -> TwilioWhatsApp {
    TwilioWhatsApp::new(TwilioConfig {
        api_base: base.to_owned(),
        public_url: "https://sb.example.com".into(),
        request_timeout: timeout,
        ..TwilioConfig::default()
    })
}

fn adapter(fake: &FakeTwilio) -> TwilioWhatsApp {
    adapter_for(&fake.base_url(), Duration::from_secs(5))
}

fn account() -> AccountContext {
    testing::account(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, BUSINESS)
}

fn text(id: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        id: id.into(),
        to: Recipient::phone(PhoneNumber::parse(PERSON).unwrap()),
        content: Content::text(body),
        reply_to: None,
    }
}

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json")
}

#[tokio::test]
async fn send_text_posts_every_field() {
    let fake = FakeTwilio::start().await;
    let receipt = adapter(&fake)
        .send(&account(), &text("msg-42", "Hello"))
        .await
        .unwrap();

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, messages_path());
    assert_eq!(r.basic_user.as_deref(), Some(TEST_ACCOUNT_SID));
    assert_eq!(r.basic_password.as_deref(), Some(TEST_AUTH_TOKEN));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        r.header("user-agent")
            .unwrap()
            .starts_with("switchboard-twilio/")
    );
    assert_eq!(
        r.form,
        vec![
            ("To".to_owned(), format!("whatsapp:{PERSON}")),
            ("From".into(), format!("whatsapp:{BUSINESS}")),
            ("Body".into(), "Hello".into()),
            (
                "StatusCallback".into(),
                "https://sb.example.com/webhooks/twilio-whatsapp/status/msg-42".into()
            ),
        ]
    );

    // 201 parsing.
    assert_eq!(
        fake.created_message_sids(),
        vec![receipt.provider_message_id.clone()]
    );
    assert!(receipt.provider_message_id.starts_with("SM"));
    assert_eq!(receipt.provider_message_id.len(), 34);
    assert_eq!(receipt.status, MessageStatus::Accepted);
    assert!(receipt.recipient_wa_id.is_none());
    let ex = receipt.exchange.unwrap();
    assert_eq!(ex.http_status, Some(201));
    assert_eq!(ex.request.as_ref().unwrap()["Body"], "Hello");
    assert_eq!(
        ex.response.as_ref().unwrap()["sid"],
        receipt.provider_message_id.as_str()
    );
    // Nothing secret is kept in the exchange.
    let stored = serde_json::to_string(&ex).unwrap();
    assert!(!stored.contains(TEST_AUTH_TOKEN), "{stored}");
}

#[tokio::test]
async fn send_media_and_template() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    let mut image = MediaItem::from_url(MediaKind::Image, "https://cdn.example.com/a.jpg");
    image.caption = Some("a cat".into());
    let mut m = text("m-media", "");
    m.content = Content {
        media: vec![image],
        ..Content::default()
    };
    a.send(&account(), &m).await.unwrap();

    let mut t = Template {
        name: testing::TEST_TEMPLATE_SID.into(),
        ..Template::default()
    };
    t.variables.insert("1".into(), "12/1".into());
    t.variables.insert("2".into(), "3pm".into());
    let mut tm = text("m-template", "");
    tm.content = Content {
        template: Some(t),
        ..Content::default()
    };
    a.send(&account(), &tm).await.unwrap();

    let reqs = fake.requests();
    assert_eq!(
        reqs[0].form_values("MediaUrl"),
        vec!["https://cdn.example.com/a.jpg"]
    );
    assert_eq!(reqs[0].form_value("Body"), Some("a cat"));
    assert_eq!(
        reqs[1].form_value("ContentSid"),
        Some(testing::TEST_TEMPLATE_SID)
    );
    let vars: serde_json::Value =
        serde_json::from_str(reqs[1].form_value("ContentVariables").unwrap()).unwrap();
    assert_eq!(vars, json!({"1": "12/1", "2": "3pm"}));
    assert_eq!(reqs[1].form_value("Body"), None);
    assert_eq!(
        reqs[1].form_value("StatusCallback"),
        Some("https://sb.example.com/webhooks/twilio-whatsapp/status/m-template")
    );
}

#[tokio::test]
async fn too_long_text_is_refused_without_a_request() {
    let fake = FakeTwilio::start().await;
    let err = adapter(&fake)
        .send(&account(), &text("m", &"x".repeat(1601)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(fake.requests().is_empty());
}

async fn send_with_scripted(
    status: u16,
    code: Option<u32>,
    headers: &[(&str, &str)],
) -> switchboard_core::ChannelError {
    let fake = FakeTwilio::start().await;
    let body = match code {
        Some(c) => testing::error_json(status, c, "scripted"),
        None => json!({"message": "scripted"}),
    };
    fake.respond_next(status, body, headers);
    let err = adapter(&fake)
        .send(&account(), &text("m", "hi"))
        .await
        .unwrap_err();
    assert_eq!(fake.requests().len(), 1);
    err
}

#[tokio::test]
async fn twilio_errors_are_classified_with_code_and_exchange() {
    let e = send_with_scripted(400, Some(21211), &[]).await;
    assert_eq!(e.kind(), ErrorKind::Permanent);
    assert!(e.is_permanent());
    assert_eq!(e.provider_code(), Some("21211"));
    let ex = e.exchange().unwrap();
    assert_eq!(ex.http_status, Some(400));
    assert_eq!(ex.response.as_ref().unwrap()["code"], 21211);

    let e = send_with_scripted(400, Some(21610), &[]).await;
    assert!(e.is_opted_out());
    assert_eq!(e.provider_code(), Some("21610"));

    let e = send_with_scripted(400, Some(63016), &[]).await;
    assert!(e.is_outside_window());
    assert_eq!(e.provider_code(), Some("63016"));

    let e = send_with_scripted(429, Some(20429), &[("Retry-After", "7")]).await;
    assert!(e.is_rate_limited());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    let e = send_with_scripted(500, None, &[]).await;
    assert!(e.is_ambiguous());

    let e = send_with_scripted(503, None, &[]).await;
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.is_transient());
}

#[tokio::test]
async fn wrong_credentials_are_auth_errors() {
    let fake = FakeTwilio::start().await;
    let mut acc = account();
    acc.credentials.insert("auth_token", "wrong");
    let e = adapter(&fake)
        .send(&acc, &text("m", "hi"))
        .await
        .unwrap_err();
    assert!(e.is_auth());
    assert_eq!(e.provider_code(), Some("20003"));
    assert!(!e.to_string().contains("wrong"));
}

#[tokio::test]
async fn fake_rejects_missing_fields() {
    // The fake validates like Twilio, so a broken form cannot pass unnoticed.
    let fake = FakeTwilio::start().await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}{}", fake.base_url(), messages_path()))
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .form(&[
            ("To", "whatsapp:+31612345678"),
            ("From", "whatsapp:+14155238886"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 21619);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let a = adapter_for(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
    let e = a.send(&account(), &text("m", "hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    // The cause survives into the message the attempt history and logs show.
    assert!(
        e.message().starts_with("could not connect to Twilio: ")
            && e.message().contains("Connection refused"),
        "{}",
        e.message()
    );
    assert!(
        !e.message().contains("127.0.0.1"),
        "no URL: {}",
        e.message()
    );
    let health = a.check_health(&account()).await;
    assert_eq!(health.status, HealthStatus::Down);
    let detail = health.detail.unwrap();
    assert!(
        detail.starts_with("unreachable: could not connect to Twilio: ")
            && detail.contains("Connection refused"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_host_that_does_not_resolve_says_so() {
    let a = adapter_for("http://switchboard-test.invalid", Duration::from_secs(5));
    let e = a.send(&account(), &text("m", "hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    assert!(
        e.message().starts_with("could not connect to Twilio: ")
            && e.message().contains("dns error"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn timeout_after_sending_is_ambiguous() {
    let fake = FakeTwilio::start().await;
    fake.set_delay(Duration::from_secs(2));
    let a = adapter_for(&fake.base_url(), Duration::from_millis(300));
    let e = a.send(&account(), &text("m", "hi")).await.unwrap_err();
    assert!(e.is_ambiguous(), "{e:?}");
    assert_eq!(fake.requests().len(), 1, "the request reached Twilio");
}

#[tokio::test]
async fn health_reports() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    let up = a.check_health(&account()).await;
    assert_eq!(up.status, HealthStatus::Up);
    assert_eq!(
        fake.requests()[0].path,
        format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}.json")
    );
    assert_eq!(fake.requests()[0].method, "GET");

    fake.set_account_status("suspended");
    let down = a.check_health(&account()).await;
    assert_eq!(down.status, HealthStatus::Down);
    assert!(down.detail.unwrap().contains("suspended"));

    fake.set_account_status("active");
    let mut bad = account();
    bad.credentials.insert("auth_token", "nope-secret");
    let refused = a.check_health(&bad).await;
    assert_eq!(refused.status, HealthStatus::Down);
    let detail = refused.detail.unwrap();
    assert!(
        detail.contains("20003") && !detail.contains("nope-secret"),
        "{detail}"
    );

    fake.respond_error_next(500, 20500, "Internal Server Error");
    assert_eq!(
        a.check_health(&account()).await.status,
        HealthStatus::Degraded
    );

    fake.set_delay(Duration::from_secs(2));
    let slow = adapter_for(&fake.base_url(), Duration::from_millis(300));
    let timed_out = slow.check_health(&account()).await;
    assert_eq!(timed_out.status, HealthStatus::Down);
    let detail = timed_out.detail.unwrap();
    assert!(
        detail.starts_with("unreachable: Twilio did not answer in time: "),
        "{detail}"
    );
}

#[tokio::test]
async fn fetch_status_reads_the_message() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    let receipt = a.send(&account(), &text("m", "hi")).await.unwrap();
    assert!(fake.set_message_status(&receipt.provider_message_id, "delivered"));
    let st = a
        .fetch_status(&account(), &receipt.provider_message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.provider_message_id, receipt.provider_message_id);
    assert_eq!(st.status, MessageStatus::Delivered);
    assert_eq!(st.recipient.unwrap().phone.unwrap().as_str(), PERSON);
    assert!(st.error.is_none());

    let missing = a
        .fetch_status(&account(), "SM0000000000000000000000000000dead")
        .await
        .unwrap();
    assert!(missing.is_none());
    let invalid = a.fetch_status(&account(), "../etc").await.unwrap_err();
    assert_eq!(invalid.kind(), ErrorKind::Invalid);
}

/// twilio.md §10: `price` is null until Twilio fills it in after the message is final, then
/// a negative decimal string with its `price_unit` (lower or upper case).
#[tokio::test]
async fn fetch_status_reports_the_price_once_twilio_has_filled_it_in() {
    let fake = FakeTwilio::start().await;
    let a = adapter(&fake);
    assert!(a.prices_on_fetch());
    let sid = a
        .send(&account(), &text("m", "hi"))
        .await
        .unwrap()
        .provider_message_id;
    assert!(fake.set_message_status(&sid, "delivered"));
    let st = a.fetch_status(&account(), &sid).await.unwrap().unwrap();
    assert!(st.pricing.is_none(), "{:?}", st.pricing);
    assert!(fake.set_message_price(&sid, Some("-0.00750"), "usd"));
    let st = a.fetch_status(&account(), &sid).await.unwrap().unwrap();
    let pricing = st.pricing.unwrap();
    assert_eq!(pricing.price.as_deref(), Some("-0.00750"));
    assert_eq!(pricing.currency.as_deref(), Some("USD"));
    assert_eq!((pricing.category, pricing.kind), (None, None));
    // Something that is no amount is not kept: sums never meet it.
    assert!(fake.set_message_price(&sid, Some("free"), "USD"));
    let st = a.fetch_status(&account(), &sid).await.unwrap().unwrap();
    assert!(st.pricing.is_none(), "{:?}", st.pricing);
    let fetched = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(fetched, 3);
}
