//! What differs per channel comes from the registered adapters: `POST /v1/accounts` checks
//! credentials against the channel's declared fields, `/openapi.json` lists them, and a
//! channel without a service window accepts free-form messages at any time.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use switchboard_core::testing::{CREDENTIAL_FIELDS, FakeAdapter};
use switchboard_core::{ChannelAdapter, ChannelId};
use switchboard_http::{AppState, app};
use switchboard_router::store::SqliteSync;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::{Router, Store};
use tower::ServiceExt;

/// A channel like the fake but without a service window (as SMS has none).
const NO_WINDOW: ChannelId = ChannelId::new_static("fake-no-window");

struct Api {
    app: axum::Router,
    key: String,
    _dir: tempfile::TempDir,
}

impl Api {
    /// The app over a fresh SQLite file, with the fake channel and one without a window.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("sb.db").display());
        let store = Store::connect(&url, SqliteSync::Normal).await.unwrap();
        store.migrate().await.unwrap();
        let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        let mut no_window = FakeAdapter::new().capabilities().clone();
        no_window.service_window = None;
        let router = Router::builder(store, cipher)
            .adapter(Arc::new(FakeAdapter::new()))
            .adapter(Arc::new(
                FakeAdapter::named(NO_WINDOW).with_capabilities(no_window),
            ))
            .build();
        let key = router.tenants().create("acme").await.unwrap().key;
        Self {
            app: app(AppState::new(router, None)),
            key,
            _dir: dir,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "application/json");
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn connect(
        &self,
        channel: &str,
        address: &str,
        credentials: Value,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"channel": channel, "address": address, "credentials": credentials})),
        )
        .await
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn accounts_are_checked_against_the_channels_declared_credentials() {
    let api = Api::start().await;

    // A name the channel does not declare: refused, naming it and the declared ones.
    let (status, body) = api
        .connect(
            "fake",
            "+14155550100",
            json!({"secret": "s", "api_key": "k"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "invalid_credentials");
    assert!(message(&body).contains("\"api_key\""), "{body}");
    assert!(message(&body).contains("secret"), "{body}");
    assert!(!body.to_string().contains("\"k\""), "{body}");

    // A required one missing, or blank.
    for credentials in [json!({}), json!({"secret": " "})] {
        let (status, body) = api.connect("fake", "+14155550100", credentials).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&body), "invalid_credentials");
        assert!(message(&body).contains("\"secret\" is required"), "{body}");
    }

    // An unknown channel is still the router's answer, and a value the adapter refuses
    // still reaches it.
    let (status, body) = api
        .connect("carrier-pigeon", "+14155550100", json!({"secret": "s"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "unknown_channel")
    );
    let (status, body) = api
        .connect("fake", "+14155550100", json!({"secret": 1}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_credentials")
    );

    // Exactly the declared fields: connected.
    let (status, body) = api
        .connect("fake", "+14155550100", FakeAdapter::credentials("s"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["credential_names"], json!(["secret"]));
}

#[tokio::test]
async fn the_openapi_document_lists_each_channels_declared_credentials() {
    let api = Api::start().await;
    let (status, doc) = api.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["AccountCreate"]["properties"]["channel"]["enum"],
        json!(["fake", "fake-no-window"])
    );
    for channel in ["fake", "fake-no-window"] {
        let credentials = &schemas[format!("Credentials.{channel}")];
        let names: Vec<&str> = credentials["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{channel}: {credentials}"))
            .keys()
            .map(String::as_str)
            .collect();
        let declared: Vec<&str> = CREDENTIAL_FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(names, declared, "{channel}");
        assert_eq!(credentials["required"], json!(declared), "{channel}");
    }
}

#[tokio::test]
async fn a_channel_without_a_service_window_sends_free_form_to_anyone() {
    let api = Api::start().await;
    for channel in ["fake", NO_WINDOW.as_str()] {
        let (status, body) = api
            .connect(channel, "+14155550100", FakeAdapter::credentials("s"))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let send = |channel: &str| json!({"to": "+31612345678", "text": "hi", "channel": channel});

    // The contact never wrote: outside the fake's 24-hour window, but the other channel
    // has none.
    let (status, body) = api
        .call(Method::POST, "/v1/messages", Some(send("fake")))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "outside_service_window"),
        "{body}"
    );
    let (status, body) = api
        .call(Method::POST, "/v1/messages", Some(send(NO_WINDOW.as_str())))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, page) = api.call(Method::GET, "/v1/conversations", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let conversations = page["data"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{page}");
    assert_eq!(conversations[0]["channel"], NO_WINDOW.as_str());
    assert_eq!(conversations[0]["service_window_open"], true, "{page}");
}
