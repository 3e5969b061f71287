//! Graph API calls against `FakeGraph` on 127.0.0.1.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use switchboard_core::{
    AccountContext, ChannelAdapter, Content, ErrorKind, HealthStatus, MediaItem, MediaKind,
    MessageStatus, OutboundMessage, PhoneNumber, Reaction, Recipient, Template, TemplateButton,
};
use switchboard_meta_cloud::testing::{FakeGraph, account, error_envelope};
use switchboard_meta_cloud::{MetaCloud, MetaConfig};

const PNID: &str = "106540352242922";
const TOKEN: &str = "EAAG-test-token";

async fn setup() -> (FakeGraph, MetaCloud, AccountContext) {
    let graph = FakeGraph::start().await;
    graph.add_number(PNID, TOKEN);
    let meta = MetaCloud::new(graph.config());
    let acct = account(PNID, "+15550783881", TOKEN, "secret", "verify");
    (graph, meta, acct)
}

fn message(content: Content) -> OutboundMessage {
    OutboundMessage {
        id: "msg_01".into(),
        to: Recipient::phone(PhoneNumber::parse("+16505551234").unwrap()),
        content,
        reply_to: None,
    }
}

#[tokio::test]
async fn send_text_exact_request() {
    let (graph, meta, acct) = setup().await;
    let receipt = meta
        .send(&acct, &message(Content::text("Hello https://example.com")))
        .await
        .unwrap();
    let reqs = graph.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/v25.0/{PNID}/messages"));
    assert_eq!(
        r.query, None,
        "no token or anything else in the query string"
    );
    assert_eq!(r.bearer.as_deref(), Some(TOKEN));
    let expected = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"preview_url": true, "body": "Hello https://example.com"},
        "biz_opaque_callback_data": "msg_01",
    });
    assert_eq!(r.body.as_ref().unwrap(), &expected);
    assert!(receipt.provider_message_id.starts_with("wamid."));
    assert_eq!(receipt.status, MessageStatus::Accepted);
    assert_eq!(
        receipt.recipient_wa_id, None,
        "same number: nothing to report"
    );
    let exchange = receipt.exchange.unwrap();
    assert_eq!(exchange.http_status, Some(200));
    assert_eq!(exchange.request.unwrap(), expected);
    assert_eq!(
        exchange.response.unwrap()["messages"][0]["id"],
        json!(receipt.provider_message_id)
    );
}

#[tokio::test]
async fn api_version_is_configurable() {
    let graph = FakeGraph::start().await;
    graph.add_number(PNID, TOKEN);
    let meta = MetaCloud::new(MetaConfig {
        api_version: "v23.0".into(),
        ..graph.config()
    });
    let acct = account(PNID, "+15550783881", TOKEN, "s", "v");
    meta.send(&acct, &message(Content::text("hi")))
        .await
        .unwrap();
    assert_eq!(graph.requests()[0].path, format!("/v23.0/{PNID}/messages"));
}

#[tokio::test]
async fn media_by_link_and_by_id() {
    let (graph, meta, acct) = setup().await;
    let mut doc = MediaItem::from_url(MediaKind::Document, "https://files.example/invoice.pdf");
    doc.filename = Some("invoice.pdf".into());
    doc.caption = Some("Your invoice".into());
    meta.send(
        &acct,
        &message(Content {
            media: vec![doc],
            ..Content::default()
        }),
    )
    .await
    .unwrap();
    meta.send(
        &acct,
        &message(Content {
            media: vec![MediaItem::from_provider_id(
                MediaKind::Image,
                "1003383421387256",
            )],
            ..Content::default()
        }),
    )
    .await
    .unwrap();
    let reqs = graph.requests();
    let b0 = reqs[0].body.as_ref().unwrap();
    assert_eq!(b0["type"], "document");
    assert_eq!(
        b0["document"],
        json!({"link": "https://files.example/invoice.pdf", "filename": "invoice.pdf",
               "caption": "Your invoice"})
    );
    let b1 = reqs[1].body.as_ref().unwrap();
    assert_eq!(b1["type"], "image");
    assert_eq!(b1["image"], json!({"id": "1003383421387256"}));
}

#[tokio::test]
async fn template_with_components() {
    let (graph, meta, acct) = setup().await;
    let mut header = MediaItem::from_url(MediaKind::Image, "https://img.example/h.png");
    header.caption = None;
    let t = Template {
        name: "order_shipped".into(),
        language: Some("en_US".into()),
        variables: BTreeMap::from([
            ("1".to_owned(), "Ann".to_owned()),
            ("2".to_owned(), "#1234".to_owned()),
        ]),

        header: Some(switchboard_core::Header::Media(header)),
        buttons: vec![
            TemplateButton {
                index: 0,
                sub_type: "quick_reply".into(),
                value: "TRACK".into(),
            },
            TemplateButton {
                index: 1,
                sub_type: "url".into(),
                value: "1234".into(),
            },
        ],
    };
    meta.send(
        &acct,
        &message(Content {
            template: Some(t),
            ..Content::default()
        }),
    )
    .await
    .unwrap();
    let body = graph.requests()[0].body.clone().unwrap();
    assert_eq!(body["type"], "template");
    assert_eq!(
        body["template"],
        json!({
            "name": "order_shipped",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [
                    {"type": "image", "image": {"link": "https://img.example/h.png"}}]},
                {"type": "body", "parameters": [
                    {"type": "text", "text": "Ann"}, {"type": "text", "text": "#1234"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "TRACK"}]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "1234"}]},
            ],
        })
    );
}

#[tokio::test]
async fn reply_context_and_reaction() {
    let (graph, meta, acct) = setup().await;
    let mut reply = message(Content::text("Yes, in blue"));
    reply.reply_to = Some("wamid.question".into());
    meta.send(&acct, &reply).await.unwrap();
    let react = message(Content {
        reaction: Some(Reaction {
            message_id: "wamid.question".into(),
            emoji: Some("👍".into()),
        }),
        ..Content::default()
    });
    meta.send(&acct, &react).await.unwrap();
    let reqs = graph.requests();
    assert_eq!(
        reqs[0].body.as_ref().unwrap()["context"],
        json!({"message_id": "wamid.question"})
    );
    let b = reqs[1].body.as_ref().unwrap();
    assert_eq!(b["type"], "reaction");
    assert_eq!(
        b["reaction"],
        json!({"message_id": "wamid.question", "emoji": "👍"})
    );
}

#[tokio::test]
async fn too_long_text_is_refused_without_a_request() {
    let (graph, meta, acct) = setup().await;
    let err = meta
        .send(&acct, &message(Content::text("x".repeat(4097))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().contains("4096"), "{}", err.message());
    assert!(graph.requests().is_empty());
}

#[tokio::test]
async fn differing_wa_id_is_reported() {
    let (graph, meta, acct) = setup().await;
    // Brazil: sent with the ninth digit, WhatsApp knows the number without it.
    graph.map_wa_id("+5511987654321", "551187654321");
    let mut m = message(Content::text("Olá"));
    m.to = Recipient::phone(PhoneNumber::parse("+5511987654321").unwrap());
    let receipt = meta.send(&acct, &m).await.unwrap();
    assert_eq!(receipt.recipient_wa_id.unwrap().as_str(), "+551187654321");
}

async fn send_error(status: u16, code: u32) -> switchboard_core::ChannelError {
    let (graph, meta, acct) = setup().await;
    graph.respond_next(status, error_envelope(code, "scripted"));
    meta.send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn error_codes_are_classified() {
    let e = send_error(400, 131047).await;
    assert!(e.is_outside_window() && e.is_permanent());
    assert_eq!(e.provider_code(), Some("131047"));
    let exchange = e.exchange().unwrap();
    assert_eq!(exchange.http_status, Some(400));
    assert_eq!(exchange.response.as_ref().unwrap()["error"]["code"], 131047);
    assert_eq!(exchange.request.as_ref().unwrap()["to"], "+16505551234");

    let e = send_error(429, 130429).await;
    assert!(e.is_rate_limited() && e.is_transient());

    let e = send_error(400, 131056).await;
    assert!(e.is_rate_limited());
    assert_eq!(e.retry_after(), None);
    assert!(e.message().contains("pair rate limit"));

    let e = send_error(400, 131026).await;
    assert_eq!(e.kind(), ErrorKind::Unreachable);

    let e = send_error(500, 131000).await;
    assert_eq!(e.kind(), ErrorKind::Transient);

    let e = send_error(400, 131050).await;
    assert!(e.is_opted_out());
}

#[tokio::test]
async fn wrong_token_is_auth() {
    let (_graph, meta, mut acct) = setup().await;
    acct.credentials.insert("access_token", "expired");
    let e = meta
        .send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err();
    assert!(e.is_auth(), "{e}");
    assert_eq!(e.provider_code(), Some("190"));
    assert!(!e.to_string().contains("expired"), "no token in the error");
}

#[tokio::test]
async fn server_error_without_envelope_is_ambiguous() {
    let (graph, meta, acct) = setup().await;
    graph.respond_next(500, json!("Internal Server Error"));
    let e = meta
        .send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err();
    assert!(e.is_ambiguous(), "{e}");
    graph.respond_next(429, json!({"unexpected": true}));
    let e = meta
        .send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err();
    assert!(e.is_rate_limited(), "{e}");
}

#[tokio::test]
async fn accepted_without_an_id_is_ambiguous() {
    let (graph, meta, acct) = setup().await;
    graph.respond_next(
        200,
        json!({"messaging_product": "whatsapp", "messages": []}),
    );
    let e = meta
        .send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err();
    assert!(e.is_ambiguous(), "{e}");
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // Bind, learn the port, close it: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let meta = MetaCloud::new(MetaConfig {
        graph_base: format!("http://{addr}"),
        request_timeout: Duration::from_secs(2),
        ..MetaConfig::default()
    });
    let acct = account(PNID, "+15550783881", TOKEN, "s", "v");
    let e = meta
        .send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(!e.is_ambiguous());
}

#[tokio::test]
async fn timeout_after_sending_is_ambiguous() {
    let graph = FakeGraph::start().await;
    graph.add_number(PNID, TOKEN);
    graph.set_delay(Duration::from_millis(1500));
    let meta = MetaCloud::new(MetaConfig {
        request_timeout: Duration::from_millis(300),
        ..graph.config()
    });
    let acct = account(PNID, "+15550783881", TOKEN, "s", "v");
    let e = meta
        .send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err();
    assert!(e.is_ambiguous(), "{e}");
    assert_eq!(graph.requests().len(), 1, "the request reached the server");
}

#[tokio::test]
async fn mark_read() {
    let (graph, meta, acct) = setup().await;
    meta.mark_read(&acct, "wamid.in", false).await.unwrap();
    let r = &graph.requests()[0];
    assert_eq!(r.path, format!("/v25.0/{PNID}/messages"));
    assert_eq!(r.bearer.as_deref(), Some(TOKEN));
    assert_eq!(
        r.body.as_ref().unwrap(),
        &json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in"})
    );
    graph.respond_next(400, error_envelope(131009, "Parameter value is not valid"));
    let e = meta
        .mark_read(&acct, "wamid.bogus", false)
        .await
        .unwrap_err();
    assert_eq!(e.provider_code(), Some("131009"));
    graph.respond_next(200, json!({"success": false}));
    assert!(meta.mark_read(&acct, "wamid.in", false).await.is_err());
}

#[tokio::test]
async fn health_available_green_is_up() {
    let (graph, meta, acct) = setup().await;
    let report = meta.check_health(&acct).await;
    assert_eq!(report.status, HealthStatus::Up, "{report:?}");
    // The rating and the limit tier go back for the account's state (§7.1).
    assert_eq!(report.quality.as_deref(), Some("GREEN"));
    assert_eq!(report.messaging_limit.as_deref(), Some("TIER_2K"));
    let detail = report.detail.unwrap();
    assert!(
        detail.contains("AVAILABLE") && detail.contains("GREEN"),
        "{detail}"
    );
    assert!(!detail.contains(TOKEN));
    let r = &graph.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, format!("/v25.0/{PNID}"));
    assert_eq!(
        r.query.as_deref(),
        Some(
            "fields=health_status,quality_rating,messaging_limit_tier,status,throughput,name_status,display_phone_number,verified_name"
        )
    );
    assert_eq!(r.bearer.as_deref(), Some(TOKEN));
}

#[tokio::test]
async fn health_reports_the_numbers_quality_and_limit_tier_as_read() {
    let (graph, meta, acct) = setup().await;
    graph.set_health(json!({
        "health_status": {"can_send_message": "AVAILABLE"},
        "quality_rating": "RED",
        "messaging_limit_tier": "TIER_250",
    }));
    let report = meta.check_health(&acct).await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.quality.as_deref(), Some("RED"));
    assert_eq!(report.messaging_limit.as_deref(), Some("TIER_250"));
    // A node without them reports neither.
    graph.set_health(json!({"health_status": {"can_send_message": "AVAILABLE"}}));
    let report = meta.check_health(&acct).await;
    assert_eq!((report.quality, report.messaging_limit), (None, None));
}

#[tokio::test]
async fn health_limited_is_degraded_with_reason() {
    let (graph, meta, acct) = setup().await;
    graph.set_health(json!({
        "health_status": {"can_send_message": "LIMITED", "entities": [
            {"entity_type": "PHONE_NUMBER", "can_send_message": "LIMITED",
             "additional_info": ["Your display name has not been approved yet."]}]},
        "quality_rating": "GREEN",
    }));
    let report = meta.check_health(&acct).await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert!(
        report
            .detail
            .unwrap()
            .contains("display name has not been approved")
    );
}

#[tokio::test]
async fn health_blocked_is_down_with_reason() {
    let (graph, meta, acct) = setup().await;
    graph.set_health(json!({
        "health_status": {"can_send_message": "BLOCKED", "entities": [
            {"entity_type": "WABA", "can_send_message": "BLOCKED", "errors": [
                {"error_code": 141002,
                 "error_description": "Message templates can only be sent out if they are approved.",
                 "possible_solution": "Get a template approved."}]}]},
        "quality_rating": "RED",
    }));
    let report = meta.check_health(&acct).await;
    assert_eq!(report.status, HealthStatus::Down);
    let detail = report.detail.unwrap();
    assert!(detail.contains("141002"), "{detail}");
}

#[tokio::test]
async fn health_with_refused_token_is_down() {
    let (_graph, meta, mut acct) = setup().await;
    acct.credentials.insert("access_token", "revoked-token");
    let report = meta.check_health(&acct).await;
    assert_eq!(report.status, HealthStatus::Down);
    let detail = report.detail.unwrap();
    assert!(detail.contains("190"), "{detail}");
    assert!(!detail.contains("revoked-token"));
}

#[tokio::test]
async fn health_slow_or_unreachable() {
    let (graph, meta, acct) = setup().await;
    graph.respond_next(503, json!("maintenance"));
    assert_eq!(
        meta.check_health(&acct).await.status,
        HealthStatus::Degraded
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let nowhere = MetaCloud::new(MetaConfig {
        graph_base: format!("http://{addr}"),
        ..MetaConfig::default()
    });
    let report = nowhere.check_health(&acct).await;
    assert_eq!(report.status, HealthStatus::Down);
    // The same words as every channel, with the cause.
    let detail = report.detail.unwrap();
    assert!(
        detail.starts_with("unreachable: could not connect to the Graph API: ")
            && detail.contains("Connection refused"),
        "{detail}"
    );
    let err = nowhere
        .send(&acct, &message(Content::text("hi")))
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("could not connect to the Graph API: ")
            && err.message().contains("Connection refused"),
        "{}",
        err.message()
    );
}

fn interactive(v: serde_json::Value) -> Content {
    Content {
        interactive_message: Some(serde_json::from_value(v).unwrap()),
        ..Content::default()
    }
}

/// Sends `content` and answers the body the fake accepted.
async fn sent_body(content: Content) -> serde_json::Value {
    let (graph, meta, acct) = setup().await;
    meta.send(&acct, &message(content)).await.unwrap();
    assert!(graph.refusals().is_empty(), "{:?}", graph.refusals());
    let sent = graph.sent_messages();
    assert_eq!(sent.len(), 1);
    sent[0].clone()
}

fn envelope(kind: &str, payload: serde_json::Value) -> serde_json::Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": kind,
        kind: payload,
        "biz_opaque_callback_data": "msg_01",
    })
}

#[tokio::test]
async fn reply_buttons_are_sent_as_documented() {
    let body = sent_body(interactive(json!({"type": "buttons",
        "header": {"type": "image", "provider_media_id": "2762702990552401"},
        "body": "Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow.",
        "footer": "Lucky Shrub: Your gateway to succulents!™",
        "buttons": [{"id": "change-button", "title": "Change"},
                    {"id": "cancel-button", "title": "Cancel"}]})))
    .await;
    // protocols/meta.md §10.2, field for field.
    assert_eq!(
        body,
        envelope(
            "interactive",
            json!({
                "type": "button",
                "header": {"type": "image", "image": {"id": "2762702990552401"}},
                "body": {"text": "Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow."},
                "footer": {"text": "Lucky Shrub: Your gateway to succulents!™"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                    {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}}]},
            })
        )
    );
}

#[tokio::test]
async fn a_list_is_sent_as_documented() {
    let body = sent_body(interactive(json!({"type": "list",
        "header": {"type": "text", "text": "Choose Shipping Option"},
        "body": "Which shipping option do you prefer?",
        "footer": "Lucky Shrub: Your gateway to succulents™",
        "button": "Shipping Options",
        "sections": [
            {"title": "I want it ASAP!", "rows": [
                {"id": "priority_express", "title": "Priority Mail Express",
                 "description": "Next Day to 2 Days"},
                {"id": "priority_mail", "title": "Priority Mail", "description": "1–3 Days"}]},
            {"title": "I can wait a bit", "rows": [
                {"id": "usps_ground_advantage", "title": "USPS Ground Advantage",
                 "description": "2–5 Days"},
                {"id": "media_mail", "title": "Media Mail"}]}]})))
    .await;
    assert_eq!(
        body,
        envelope(
            "interactive",
            json!({
                "type": "list",
                "header": {"type": "text", "text": "Choose Shipping Option"},
                "body": {"text": "Which shipping option do you prefer?"},
                "footer": {"text": "Lucky Shrub: Your gateway to succulents™"},
                "action": {"button": "Shipping Options", "sections": [
                    {"title": "I want it ASAP!", "rows": [
                        {"id": "priority_express", "title": "Priority Mail Express",
                         "description": "Next Day to 2 Days"},
                        {"id": "priority_mail", "title": "Priority Mail", "description": "1–3 Days"}]},
                    {"title": "I can wait a bit", "rows": [
                        {"id": "usps_ground_advantage", "title": "USPS Ground Advantage",
                         "description": "2–5 Days"},
                        {"id": "media_mail", "title": "Media Mail"}]}]},
            })
        )
    );
}

#[tokio::test]
async fn a_cta_url_and_a_location_request_are_sent_as_documented() {
    let body = sent_body(interactive(json!({"type": "cta_url",
        "header": {"type": "video", "url": "https://www.luckyshrub.com/tour.mp4"},
        "body": "Tap the button below to see available dates.",
        "footer": "Dates subject to change.",
        "url": {"display_text": "See Dates", "url": "https://www.luckyshrub.com?clickID=kqDGWd24Q5"}})))
    .await;
    assert_eq!(
        body,
        envelope(
            "interactive",
            json!({
                "type": "cta_url",
                "header": {"type": "video", "video": {"link": "https://www.luckyshrub.com/tour.mp4"}},
                "body": {"text": "Tap the button below to see available dates."},
                "footer": {"text": "Dates subject to change."},
                "action": {"name": "cta_url", "parameters": {
                    "display_text": "See Dates",
                    "url": "https://www.luckyshrub.com?clickID=kqDGWd24Q5"}},
            })
        )
    );
    let body = sent_body(interactive(json!({"type": "location_request",
        "body": "Let's start with your pickup."})))
    .await;
    assert_eq!(
        body,
        envelope(
            "interactive",
            json!({"type": "location_request_message",
                   "body": {"text": "Let's start with your pickup."},
                   "action": {"name": "send_location"}})
        )
    );
}

#[tokio::test]
async fn flows_are_sent_as_documented() {
    let body = sent_body(interactive(json!({"type": "flow",
        "header": {"type": "text", "text": "Flow message header"},
        "body": "Flow message body", "footer": "Flow message footer",
        "flow": {"id": "123456", "cta": "Book!", "token": "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
                 "screen": "BOOKING", "data": {"product_name": "name"}}})))
    .await;
    assert_eq!(
        body,
        envelope(
            "interactive",
            json!({
                "type": "flow",
                "header": {"type": "text", "text": "Flow message header"},
                "body": {"text": "Flow message body"},
                "footer": {"text": "Flow message footer"},
                "action": {"name": "flow", "parameters": {
                    "flow_message_version": "3",
                    "flow_token": "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
                    "flow_id": "123456",
                    "flow_cta": "Book!",
                    "flow_action": "navigate",
                    "flow_action_payload": {"screen": "BOOKING", "data": {"product_name": "name"}}}},
            })
        )
    );
    // By name, asking the endpoint first: no first screen, the token defaults to "unused".
    let body = sent_body(interactive(json!({"type": "flow", "body": "Sign up",
        "flow": {"name": "signup", "cta": "Start", "action": "data_exchange"}})))
    .await;
    assert_eq!(
        body["interactive"]["action"],
        json!({"name": "flow", "parameters": {
            "flow_message_version": "3", "flow_name": "signup", "flow_cta": "Start",
            "flow_token": "unused", "flow_action": "data_exchange"}})
    );
}

#[tokio::test]
async fn contact_cards_are_sent_with_every_vcard_field() {
    let card: switchboard_core::ContactCard = serde_json::from_value(json!({
        "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara",
                 "last_name": "Johnson", "middle_name": "Joana", "suffix": "Esq.", "prefix": "Dr."},
        "phones": [{"phone": "+16505559999", "type": "Home", "wa_id": "19175559999"}],
        "emails": [{"email": "bjohnson@luckyshrub.com", "type": "Work"}],
        "addresses": [{"street": "1 Lucky Shrub Way", "city": "Menlo Park", "state": "CA",
                       "zip": "94025", "country": "United States", "country_code": "US",
                       "type": "Office"}],
        "org": {"company": "Lucky Shrub", "department": "Legal", "title": "Lead Counsel"},
        "urls": [{"url": "https://www.luckyshrub.com", "type": "Company"}],
        "birthday": "1999-01-23",
    }))
    .unwrap();
    let minimal: switchboard_core::ContactCard =
        serde_json::from_value(json!({"name": {"formatted_name": "Ann"}})).unwrap();
    let body = sent_body(Content {
        contacts: vec![card, minimal],
        ..Content::default()
    })
    .await;
    // protocols/meta.md §10.5.
    assert_eq!(
        body,
        envelope(
            "contacts",
            json!([{
                "addresses": [{"street": "1 Lucky Shrub Way", "city": "Menlo Park", "state": "CA",
                               "zip": "94025", "country": "United States", "country_code": "US",
                               "type": "Office"}],
                "birthday": "1999-01-23",
                "emails": [{"email": "bjohnson@luckyshrub.com", "type": "Work"}],
                "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara",
                         "last_name": "Johnson", "middle_name": "Joana", "suffix": "Esq.",
                         "prefix": "Dr."},
                "org": {"company": "Lucky Shrub", "department": "Legal", "title": "Lead Counsel"},
                "phones": [{"phone": "+16505559999", "type": "Home", "wa_id": "19175559999"}],
                "urls": [{"url": "https://www.luckyshrub.com", "type": "Company"}],
            }, {"name": {"formatted_name": "Ann"}}])
        )
    );
}

#[tokio::test]
async fn a_location_is_sent_as_documented() {
    let body = sent_body(Content {
        location: Some(switchboard_core::Location {
            latitude: 37.483_307,
            longitude: -122.148_981,
            name: Some("Philz Coffee".into()),
            address: Some("101 Forest Ave, Palo Alto, CA 94301".into()),
            url: None,
        }),
        ..Content::default()
    })
    .await;
    assert_eq!(
        body,
        envelope(
            "location",
            json!({"latitude": 37.483_307, "longitude": -122.148_981, "name": "Philz Coffee",
                   "address": "101 Forest Ave, Palo Alto, CA 94301"})
        )
    );
}

#[tokio::test]
async fn templates_carry_named_parameters_a_location_header_and_every_button_kind() {
    let t = Template {
        name: "order_confirmation".into(),
        language: Some("en_US".into()),
        variables: BTreeMap::from([
            ("first_name".to_owned(), "Jessica".to_owned()),
            ("order_number".to_owned(), "SKBUP2-4CPIG9".to_owned()),
        ]),
        header: Some(switchboard_core::Header::Location(
            switchboard_core::Location {
                latitude: 37.48,
                longitude: -122.15,
                name: Some("Pickup point".into()),
                address: None,
                url: None,
            },
        )),
        buttons: vec![
            TemplateButton {
                index: 0,
                sub_type: "quick_reply".into(),
                value: "STOP_PROMOS".into(),
            },
            TemplateButton {
                index: 1,
                sub_type: "url".into(),
                value: "860198".into(),
            },
            TemplateButton {
                index: 2,
                sub_type: "copy_code".into(),
                value: "SUMMER20".into(),
            },
        ],
    };
    let body = sent_body(Content {
        template: Some(t),
        ..Content::default()
    })
    .await;
    // protocols/meta.md §13.4.
    assert_eq!(
        body,
        envelope(
            "template",
            json!({
                "name": "order_confirmation",
                "language": {"code": "en_US"},
                "components": [
                    {"type": "header", "parameters": [{"type": "location", "location": {
                        "latitude": 37.48, "longitude": -122.15, "name": "Pickup point"}}]},
                    {"type": "body", "parameters": [
                        {"type": "text", "parameter_name": "first_name", "text": "Jessica"},
                        {"type": "text", "parameter_name": "order_number", "text": "SKBUP2-4CPIG9"}]},
                    {"type": "button", "sub_type": "quick_reply", "index": "0",
                     "parameters": [{"type": "payload", "payload": "STOP_PROMOS"}]},
                    {"type": "button", "sub_type": "url", "index": "1",
                     "parameters": [{"type": "text", "text": "860198"}]},
                    {"type": "button", "sub_type": "copy_code", "index": "2",
                     "parameters": [{"type": "coupon_code", "coupon_code": "SUMMER20"}]},
                ],
            })
        )
    );
}

#[tokio::test]
async fn interactive_replies_carry_the_reply_context_and_reactions_never_do() {
    let (graph, meta, acct) = setup().await;
    let mut m = message(interactive(
        json!({"type": "buttons", "body": "Which size?",
        "buttons": [{"id": "s", "title": "Small"}, {"id": "l", "title": "Large"}]}),
    ));
    m.reply_to = Some("wamid.question".into());
    meta.send(&acct, &m).await.unwrap();
    let mut r = message(Content {
        reaction: Some(Reaction {
            message_id: "wamid.question".into(),
            emoji: None,
        }),
        ..Content::default()
    });
    r.reply_to = Some("wamid.question".into());
    meta.send(&acct, &r).await.unwrap();
    let sent = graph.sent_messages();
    assert_eq!(sent[0]["context"], json!({"message_id": "wamid.question"}));
    assert_eq!(
        sent[1],
        envelope(
            "reaction",
            json!({"message_id": "wamid.question", "emoji": ""})
        )
    );
}

const BSUID: &str = "US.13491208655302741918";

#[tokio::test]
async fn a_bsuid_alone_is_sent_as_recipient_and_the_receipt_reports_the_user_id() {
    let (graph, meta, acct) = setup().await;
    let mut m = message(Content::text("Your order has shipped."));
    m.to = Recipient {
        phone: None,
        bsuid: Some(switchboard_core::Bsuid::parse(BSUID).unwrap()),
    };
    let receipt = meta.send(&acct, &m).await.unwrap();
    let sent = graph.sent_messages();
    // protocols/meta.md §12.1: `recipient`, no `to`.
    assert_eq!(
        sent[0],
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "recipient": BSUID,
            "type": "text",
            "text": {"preview_url": false, "body": "Your order has shipped."},
            "biz_opaque_callback_data": "msg_01",
        })
    );
    assert_eq!(
        receipt.recipient_bsuid.as_ref().map(|b| b.as_str()),
        Some(BSUID)
    );
    assert_eq!(receipt.recipient_wa_id, None, "wa_id is empty for a BSUID");
    // Known by both: the number is used.
    m.to.phone = Some(PhoneNumber::parse("+16505551234").unwrap());
    let receipt = meta.send(&acct, &m).await.unwrap();
    let sent = graph.sent_messages();
    assert_eq!(sent[1]["to"], "+16505551234");
    assert!(sent[1].get("recipient").is_none(), "{}", sent[1]);
    assert_eq!(receipt.recipient_bsuid, None);
}

#[tokio::test]
async fn an_authentication_template_to_a_bsuid_fails_permanently_with_131062() {
    let (graph, meta, acct) = setup().await;
    graph.authentication_template("login_code");
    let mut m = message(Content {
        template: Some(Template {
            name: "login_code".into(),
            language: Some("en_US".into()),
            variables: BTreeMap::from([("1".to_owned(), "123456".to_owned())]),
            ..Template::default()
        }),
        ..Content::default()
    });
    m.to = Recipient {
        phone: None,
        bsuid: Some(switchboard_core::Bsuid::parse(BSUID).unwrap()),
    };
    let e = meta.send(&acct, &m).await.unwrap_err();
    assert_eq!(e.provider_code(), Some("131062"));
    assert_eq!(e.kind(), ErrorKind::Permanent, "{e}");
    assert!(!e.is_transient() && !e.reachable_elsewhere());
    assert!(e.message().contains("phone numbers"), "{}", e.message());
    // The same template to the number goes through.
    m.to = Recipient::phone(PhoneNumber::parse("+16505551234").unwrap());
    meta.send(&acct, &m).await.unwrap();
    assert_eq!(graph.sent_messages().len(), 1);
}

#[tokio::test]
async fn mark_read_with_typing_sends_the_indicator() {
    let (graph, meta, acct) = setup().await;
    meta.mark_read(&acct, "wamid.in", true).await.unwrap();
    meta.mark_read(&acct, "wamid.in2", false).await.unwrap();
    // protocols/meta.md §11.
    assert_eq!(
        graph.read_receipts(),
        [
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in",
                   "typing_indicator": {"type": "text"}}),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in2"}),
        ]
    );
    assert!(
        graph.sent_messages().is_empty(),
        "a read receipt is no message"
    );
}

#[tokio::test]
async fn over_the_limits_interactive_is_refused_without_a_request() {
    let (graph, meta, acct) = setup().await;
    let e = meta
        .send(
            &acct,
            &message(interactive(
                json!({"type": "buttons", "body": "b", "buttons": [
                {"id": "1", "title": "One"}, {"id": "2", "title": "Two"},
                {"id": "3", "title": "Three"}, {"id": "4", "title": "Four"}]}),
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(graph.requests().is_empty());
}

/// POSTs `body` as is to the fake's messages endpoint: (status, answer).
async fn post_by_hand(graph: &FakeGraph, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v25.0/{PNID}/messages", graph.base_url()))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_fake_refuses_malformed_bodies_as_meta_does() {
    let (graph, _meta, _acct) = setup().await;
    let button = |title: &str| json!({"type": "reply", "reply": {"id": title, "title": title}});
    for (body, code, words) in [
        // Meta's name is `button`, and a reply button is {type, reply{id, title}}.
        (
            envelope(
                "interactive",
                json!({"type": "buttons", "body": {"text": "b"},
                       "action": {"buttons": [button("A")]}}),
            ),
            100,
            "interactive.type",
        ),
        (
            envelope(
                "interactive",
                json!({"type": "button", "body": {"text": "b"},
                       "action": {"buttons": [{"id": "a", "title": "A"}]}}),
            ),
            100,
            "interactive.action.buttons[0].id",
        ),
        (
            envelope(
                "interactive",
                json!({"type": "button", "body": {"text": "b"},
                       "action": {"buttons": [button("A"), button("B"), button("C"), button("D")]}}),
            ),
            131_009,
            "interactive.action.buttons",
        ),
        (
            envelope(
                "interactive",
                json!({"type": "button", "body": "b", "action": {"buttons": [button("A")]}}),
            ),
            100,
            "interactive.body",
        ),
        (
            envelope(
                "interactive",
                json!({"type": "flow", "body": {"text": "b"}, "action": {"name": "flow",
                       "parameters": {"flow_id": "1", "flow_cta": "Go"}}}),
            ),
            131_008,
            "flow_message_version",
        ),
        (
            envelope("contacts", json!([{"name": {"first_name": "Ann"}}])),
            131_008,
            "contacts[0].name.formatted_name",
        ),
        (
            envelope(
                "template",
                json!({"name": "t", "language": {"code": "en"}, "components": [
                    {"type": "button", "sub_type": "copy_code", "index": 0,
                     "parameters": [{"type": "coupon_code", "coupon_code": "X"}]}]}),
            ),
            100,
            "index",
        ),
        (
            envelope(
                "template",
                json!({"name": "t", "language": {"code": "en"}, "components": [
                    {"type": "button", "sub_type": "copy_code", "index": "0",
                     "parameters": [{"type": "text", "text": "X"}]}]}),
            ),
            100,
            "type",
        ),
        (
            envelope("template", json!({"name": "t"})),
            131_008,
            "language",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "+16505551234",
                   "recipient": BSUID, "type": "text", "text": {"body": "x"}}),
            100,
            "recipient",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "+16505551234", "type": "text",
                   "text": {"body": "x"}, "image": {"id": "1"}}),
            100,
            "image",
        ),
        (
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1",
                   "typing_indicator": {"type": "audio"}}),
            100,
            "typing_indicator.type",
        ),
        (
            json!({"messaging_product": "whatsapp", "status": "read"}),
            131_008,
            "message_id",
        ),
    ] {
        let (status, answer) = post_by_hand(&graph, &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "OAuthException");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("(#{code}) ")), "{message}");
        let details = answer["error"]["error_data"]["details"].as_str().unwrap();
        assert!(details.contains(words), "{words:?} not in {details:?}");
    }
    assert!(graph.sent_messages().is_empty());
    assert!(graph.read_receipts().is_empty());
    assert_eq!(graph.refusals().len(), 13);
}

#[tokio::test]
async fn a_refusal_of_the_fake_reaches_the_adapter_as_a_permanent_error() {
    let (graph, meta, acct) = setup().await;
    // Placeholder names are lowercase at Meta; the adapter leaves that to Meta.
    let m = message(Content {
        template: Some(Template {
            name: "welcome".into(),
            language: Some("en".into()),
            variables: BTreeMap::from([("First_Name".to_owned(), "Ann".to_owned())]),
            ..Template::default()
        }),
        ..Content::default()
    });
    let e = meta.send(&acct, &m).await.unwrap_err();
    assert_eq!(e.provider_code(), Some("131009"));
    assert_eq!(e.kind(), ErrorKind::Permanent);
    assert_eq!(e.exchange().unwrap().http_status, Some(400));
    assert_eq!(graph.refusals()[0].code, 131_009);
    assert!(graph.sent_messages().is_empty());
}
