//! The product REST API on a loopback port (the engine behind `switchboard_http::app`), one
//! tenant with an admin key and a connected fake account, and a client that reads every
//! answer in api.md's shapes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use switchboard_core::testing::{FakeAdapter, SIGNATURE_HEADER};
use switchboard_core::{
    ContactIdentity, Content, Direction, EventKind, InboundEvent, InboundMessage, MessageStatus,
    PhoneNumber, PhoneParser, StatusUpdate,
};
use switchboard_http as http;
use switchboard_router::Router;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::messages;

use super::TestDb;
use super::fake::{BUSINESS, SECRET};

pub const ALICE: &str = "+31612345678";

pub const BOB: &str = "+31612345679";

pub const CAROL: &str = "+31612345670";

pub const DAVE: &str = "+31612345671";

/// The app on a loopback port, one tenant with an admin key and a connected fake account.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub router: Router,
    pub fake: FakeAdapter,
    pub admin: String,
    pub account_id: String,
    pub server: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A response: status and JSON body (`Value::String` when the body is not JSON).
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// Asserts the status and, for errors, the api.md error shape and code.
    #[track_caller]
    pub fn expect(self, status: u16, code: Option<&str>) -> Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        if let Some(code) = code {
            assert_eq!(self.code(), Some(code), "body: {}", self.text);
            assert!(
                self.body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{}",
                self.text
            );
        }
        self
    }
}

pub async fn start(db: &TestDb) -> Api {
    let fake = FakeAdapter::new();
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let router = Router::builder(db.store().await, cipher)
        .adapter(Arc::new(fake.clone()))
        .phone_parser(PhoneParser::with_region("NL").unwrap())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = http::app(http::AppState::new(router.clone(), None));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let admin = router.tenants().create("acme").await.unwrap().key;
    let mut api = Api {
        base,
        client: reqwest::Client::new(),
        router,
        fake,
        admin,
        account_id: String::new(),
        server,
    };
    let key = api.admin.clone();
    let created = api
        .call(
            Method::POST,
            "/v1/accounts",
            Some(&key),
            Some(connect_body(BUSINESS)),
        )
        .await
        .expect(201, None);
    api.account_id = created.body["id"].as_str().unwrap().to_owned();
    api
}

pub fn connect_body(address: &str) -> Value {
    json!({"channel": "fake", "address": address, "credentials": FakeAdapter::credentials(SECRET)})
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// A person writes to the business through a signed webhook (opens the 24-hour window).
    pub async fn inbound(&self, event_key: &str, from: &str, text: &str) {
        self.inbound_at(event_key, from, text, Utc::now()).await;
    }

    /// [`Api::inbound`], with the provider's timestamp `at`.
    pub async fn inbound_at(&self, event_key: &str, from: &str, text: &str, at: DateTime<Utc>) {
        let ident = ContactIdentity {
            profile_name: Some(format!("person {from}")),
            ..ContactIdentity::from_phone(PhoneNumber::parse(from).unwrap())
        };
        let event = InboundEvent {
            routing_key: BUSINESS.into(),
            event_key: event_key.into(),
            kind: EventKind::Message(InboundMessage {
                provider_message_id: event_key.into(),
                direction: Direction::Inbound,
                contact: ident,
                timestamp: at,
                content: Content::text(text),
                reply_to: None,
                forwarded: None,
                referral: None,
                opt: Default::default(),
            }),
            raw: json!({"id": event_key}),
        };
        self.webhook(&[event]).await;
    }

    pub async fn status(&self, event_key: &str, provider_id: &str, status: MessageStatus) {
        let event = InboundEvent {
            routing_key: BUSINESS.into(),
            event_key: event_key.into(),
            kind: EventKind::Status(StatusUpdate {
                provider_message_id: provider_id.into(),
                message_ref: None,
                status,
                timestamp: Utc::now(),
                error: None,
                recipient: None,
                pricing: None,
            }),
            raw: json!({"status": status.as_str()}),
        };
        self.webhook(&[event]).await;
    }

    pub async fn webhook(&self, events: &[InboundEvent]) {
        let res = self
            .client
            .post(format!("{}/webhooks/fake", self.base))
            .header(SIGNATURE_HEADER, SECRET)
            .body(FakeAdapter::webhook_body(BUSINESS, events))
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

    /// Runs the delivery engine until nothing is due (it sends one message per conversation
    /// per round, to keep each conversation's order).
    pub async fn deliver_all(&self) -> usize {
        let mut total = 0;
        loop {
            match self.router.delivery().deliver_due().await.unwrap() {
                0 => return total,
                n => total += n,
            }
        }
    }

    pub async fn message_count(&self) -> u64 {
        messages::Entity::find()
            .count(self.router.store().conn())
            .await
            .unwrap()
    }

    /// Follows `next_cursor` from `path` to the end; returns every page's ids.
    pub async fn pages(&self, path: &str, limit: u32) -> Vec<Vec<String>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={}", encode(c)));
            }
            let page = self.get(&url, &self.admin).await.expect(200, None);
            let ids = page.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            out.push(ids);
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    assert!(
                        page.body["next_cursor"].is_null(),
                        "next_cursor is present and null on the last page"
                    );
                    return out;
                }
            }
            assert!(out.len() < 50, "pagination does not end");
        }
    }
}

pub async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Reply { status, body, text }
}

pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn text_message(to: &str, text: &str) -> Value {
    json!({"to": to, "text": text})
}
