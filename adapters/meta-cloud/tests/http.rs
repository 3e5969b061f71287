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
            "fields=health_status,quality_rating,status,throughput,name_status,display_phone_number,verified_name"
        )
    );
    assert_eq!(r.bearer.as_deref(), Some(TOKEN));
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
