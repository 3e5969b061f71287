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
