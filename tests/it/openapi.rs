//! The OpenAPI document: OpenAPI 3, listing every route the app serves and api.md names.

use reqwest::Method;

use crate::support::api::start;

/// Every operation api.md fixes (and the key-management extension).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/webhooks/{channel}"),
    ("get", "/webhooks/{channel}"),
    ("post", "/webhooks/{channel}/{rest}"),
    ("get", "/health"),
    ("get", "/health/channels"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/accounts"),
    ("get", "/v1/accounts"),
    ("post", "/v1/accounts/{id}/verify"),
    ("delete", "/v1/accounts/{id}"),
    // Templates.
    ("post", "/v1/accounts/{id}/templates/sync"),
    ("get", "/v1/templates"),
    ("post", "/v1/templates"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("put", "/v1/notifications"),
    ("delete", "/v1/notifications"),
    ("post", "/v1/messages"),
    ("get", "/v1/messages/{id}"),
    ("post", "/v1/messages/{id}/read"),
    ("get", "/v1/conversations"),
    ("get", "/v1/conversations/{id}/messages"),
    ("get", "/v1/contacts"),
    ("get", "/v1/usage"),
    // Media.
    ("post", "/v1/media"),
    ("get", "/v1/media/{id}"),
    ("get", "/media/{id}"),
];

#[tokio::test]
async fn openapi_document_is_openapi_3_and_lists_every_route_the_app_serves() {
    let db = crate::support::fresh_db(crate::support::Backend::Sqlite).await;
    let api = start(&db).await;
    let doc = api
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200, None)
        .body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(doc["components"]["schemas"]["Error"].is_object());
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" || method == "summary" || method == "description" {
                continue;
            }
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"));
            assert!(!responses.is_empty());
            for (status, response) in responses {
                assert!(
                    status == "default" || status.parse::<u16>().is_ok(),
                    "{method} {path} {status}"
                );
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {status}"
                );
            }
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut expected: Vec<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    expected.sort();
    assert_eq!(documented, expected);

    // Every documented operation is routed by the app: it answers something other than the
    // unknown-route 404 or a 405.
    for (method, path) in &documented {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = api.call(method.clone(), &concrete, None, None).await;
        assert_ne!(r.status, 405, "{method} {concrete}: {}", r.text);
        assert_ne!(r.code(), Some("route_not_found"), "{method} {concrete}");
        if concrete.starts_with("/v1/") {
            assert_eq!(r.status, 401, "{method} {concrete} needs a key");
        }
    }
    drop(api);
    db.cleanup().await;
}

#[tokio::test]
async fn the_send_request_schema_names_every_content_field_the_api_accepts() {
    let db = crate::support::fresh_db(crate::support::Backend::Sqlite).await;
    let api = start(&db).await;
    let doc = api
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200, None)
        .body;
    let schemas = &doc["components"]["schemas"];
    let send = &schemas["SendRequest"]["properties"];
    let mut fields: Vec<&str> = send
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "channel",
            "contacts",
            "fallback",
            "from",
            "idempotency_key",
            "interactive",
            "location",
            "media",
            "reaction",
            "reply_to",
            "template",
            "text",
            "to"
        ]
    );
    let template = &send["template"]["properties"];
    assert!(template["header"].is_object() && template["buttons"]["items"].is_object());
    let interactive = &schemas["Interactive"]["properties"];
    assert_eq!(
        interactive["type"]["enum"],
        serde_json::json!(["buttons", "list", "cta_url", "flow", "location_request"])
    );
    assert_eq!(interactive["buttons"]["maxItems"], 3);
    assert_eq!(
        schemas["ContactCard"]["properties"]["name"]["required"],
        serde_json::json!(["formatted_name"])
    );
    assert!(schemas["Content"]["properties"]["interactive_message"].is_object());
    // Every field the schema names is one the API reads: a body with all of them is
    // refused for its content (one kind per message), not for an unknown field.
    let everything = serde_json::json!({"to": "+31612345678", "text": "x", "channel": "fake",
        "from": "+14155238886", "media": [], "location": {"latitude": 1, "longitude": 2},
        "contacts": [{"name": {"formatted_name": "A"}}], "reaction": {"message_id": "msg_x"},
        "interactive": {"type": "location_request", "body": "where?"},
        "template": {"name": "t"}, "reply_to": "msg_y", "idempotency_key": "k", "fallback": []});
    let r = api.post("/v1/messages", &api.admin, everything).await;
    assert_ne!(r.code(), Some("invalid_json"), "{}", r.text);
    drop(api);
    db.cleanup().await;
}

/// Every field a message view carries, and every field of its referral, pricing, system
/// notice and unsupported content, is in the document's schemas.
#[tokio::test]
async fn the_message_schema_names_every_field_a_message_carries() {
    use serde_json::{Value, json};
    use switchboard_core::{
        ContactIdentity, Content, Direction, EventKind, InboundEvent, InboundMessage,
        MessageStatus, PhoneNumber, Pricing, ProviderError, Referral, StatusUpdate, SystemNotice,
        Unsupported,
    };

    use crate::support::api::{ALICE, text_message};
    use crate::support::fake::BUSINESS;

    let db = crate::support::fresh_db(crate::support::Backend::Sqlite).await;
    let api = start(&db).await;
    let full = |s: &str| Some(s.to_owned());
    let inbound = InboundEvent {
        routing_key: BUSINESS.into(),
        event_key: "in-1".into(),
        kind: EventKind::Message(InboundMessage {
            provider_message_id: "in-1".into(),
            direction: Direction::Inbound,
            contact: ContactIdentity::from_phone(PhoneNumber::parse(ALICE).unwrap()),
            timestamp: chrono::Utc::now(),
            content: Content {
                unsupported: Some(Unsupported {
                    provider_type: "poll_creation".into(),
                    detail: full("code 131051"),
                    errors: vec![ProviderError {
                        code: "131051".into(),
                        message: full("Message type unknown"),
                        details: full("Message type is currently not supported."),
                    }],
                }),
                ..Content::default()
            },
            reply_to: None,
            forwarded: None,
            referral: Some(Referral {
                source_type: full("ad"),
                source_id: full("1"),
                source_url: full("https://fb.me/x"),
                headline: full("h"),
                body: full("b"),
                media_type: full("image"),
                media_url: full("https://m/x.jpg"),
                media_id: full("ME1"),
                thumbnail_url: full("https://m/t.jpg"),
                ctwa_clid: full("clid"),
                welcome_message: full("Hi"),
            }),
            opt: Default::default(),
        }),
        raw: json!({}),
    };
    // A notice is a message of its own (and opens no window).
    let mut notice = inbound.clone();
    notice.event_key = "in-2".into();
    if let EventKind::Message(m) = &mut notice.kind {
        m.provider_message_id = "in-2".into();
        m.referral = None;
        m.content = Content {
            system: Some(SystemNotice {
                kind: "user_changed_user_id".into(),
                body: full("changed"),
                new_wa_id: None,
                new_user_id: full("US.99991208655302741918"),
            }),
            ..Content::default()
        };
    }
    api.webhook(&[inbound, notice]).await;
    let sent = api
        .post("/v1/messages", &api.admin, text_message(ALICE, "hi"))
        .await
        .expect(202, None);
    assert_eq!(api.deliver_all().await, 1);
    let priced = InboundEvent {
        routing_key: BUSINESS.into(),
        event_key: "st-1".into(),
        kind: EventKind::Status(StatusUpdate {
            provider_message_id: "fake-1".into(),
            message_ref: None,
            status: MessageStatus::Delivered,
            timestamp: chrono::Utc::now(),
            error: None,
            recipient: None,
            pricing: Some(Pricing {
                billable: Some(true),
                category: full("utility"),
                model: full("PMP"),
                kind: full("regular"),
                price: full("0.0034"),
                currency: full("USD"),
            }),
        }),
        raw: json!({}),
    };
    api.webhook(&[priced]).await;

    let doc = api
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200, None)
        .body;
    let schemas = &doc["components"]["schemas"];
    let message = &schemas["Message"]["properties"];
    let names = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let conversation = api
        .get("/v1/conversations", &api.admin)
        .await
        .expect(200, None)
        .body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = api
        .get(
            &format!("/v1/conversations/{conversation}/messages"),
            &api.admin,
        )
        .await
        .expect(200, None)
        .body;
    let inbound_id = listed["data"][0]["id"].as_str().unwrap();
    let notice_id = listed["data"][1]["id"].as_str().unwrap();
    let one = |id: String| {
        let api = &api;
        async move {
            api.get(&format!("/v1/messages/{id}"), &api.admin)
                .await
                .expect(200, None)
                .body
        }
    };
    let inbound = one(inbound_id.to_owned()).await;
    let notice = one(notice_id.to_owned()).await;
    let outbound = one(sent.body["id"].as_str().unwrap().to_owned()).await;
    for view in [
        &inbound,
        &notice,
        &outbound,
        &listed["data"][0],
        &listed["data"][2],
    ] {
        for field in names(view) {
            assert!(message[&field].is_object(), "Message lacks {field}");
        }
    }
    for (part, schema) in [
        (&inbound["referral"], &message["referral"]),
        (&outbound["pricing"], &message["pricing"]),
        (&notice["content"]["system"], &schemas["SystemNotice"]),
        (&inbound["content"]["unsupported"], &schemas["Unsupported"]),
    ] {
        let fields = names(part);
        assert!(!fields.is_empty());
        for field in fields {
            assert!(
                schema["properties"][&field].is_object(),
                "{field} is not documented in {schema}"
            );
        }
    }
    assert_eq!(outbound["pricing"]["price"], "0.0034");
    assert_eq!(inbound["referral"]["welcome_message"], "Hi");
    drop(api);
    db.cleanup().await;
}
