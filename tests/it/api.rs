//! The product REST API, driven over a real loopback socket on SQLite and
//! PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
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
use switchboard_router::store::entity::{api_keys, messages};

use crate::support::{TestDb, on_each_backend};

const SECRET: &str = "fake-webhook-secret-7f3a";
const BUSINESS: &str = "+14155238886";
const ALICE: &str = "+31612345678";
const BOB: &str = "+31612345679";
const CAROL: &str = "+31612345670";

/// The app on a loopback port, one tenant with an admin key and a connected fake account.
pub(crate) struct Api {
    pub(crate) base: String,
    client: reqwest::Client,
    pub(crate) router: Router,
    fake: FakeAdapter,
    pub(crate) admin: String,
    account_id: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A response: status and JSON body (`Value::String` when the body is not JSON).
pub(crate) struct Reply {
    status: u16,
    pub(crate) body: Value,
    text: String,
}

impl Reply {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// Asserts the status and, for errors, the api.md error shape and code.
    #[track_caller]
    pub(crate) fn expect(self, status: u16, code: Option<&str>) -> Self {
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

pub(crate) async fn start(db: &TestDb) -> Api {
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

fn connect_body(address: &str) -> Value {
    json!({"channel": "fake", "address": address, "credentials": FakeAdapter::credentials(SECRET)})
}

impl Api {
    pub(crate) async fn call(
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

    pub(crate) async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub(crate) async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// A person writes to the business through a signed webhook (opens the 24-hour window).
    pub(crate) async fn inbound(&self, event_key: &str, from: &str, text: &str) {
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
                timestamp: Utc::now(),
                content: Content::text(text),
                reply_to: None,
                forwarded: None,
                referral: None,
            }),
            raw: json!({"id": event_key}),
        };
        self.webhook(&[event]).await;
    }

    async fn status(&self, event_key: &str, provider_id: &str, status: MessageStatus) {
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
            }),
            raw: json!({"status": status.as_str()}),
        };
        self.webhook(&[event]).await;
    }

    pub(crate) async fn webhook(&self, events: &[InboundEvent]) {
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
    async fn deliver_all(&self) -> usize {
        let mut total = 0;
        loop {
            match self.router.delivery().deliver_due().await.unwrap() {
                0 => return total,
                n => total += n,
            }
        }
    }

    async fn message_count(&self) -> u64 {
        messages::Entity::find()
            .count(self.router.store().conn())
            .await
            .unwrap()
    }

    /// Follows `next_cursor` from `path` to the end; returns every page's ids.
    async fn pages(&self, path: &str, limit: u32) -> Vec<Vec<String>> {
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

async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Reply { status, body, text }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn text_message(to: &str, text: &str) -> Value {
    json!({"to": to, "text": text})
}

#[tokio::test]
async fn requests_without_a_valid_key_are_401_and_agent_keys_cannot_manage_accounts_or_keys() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        for key in [None, Some("sbk_not_a_real_key"), Some("")] {
            let r = api
                .call(Method::GET, "/v1/conversations", key, None)
                .await
                .expect(401, Some("unauthorized"));
            assert!(r.text.contains("unauthorized"));
        }
        // A scheme other than Bearer is no key at all.
        let res = api
            .client
            .get(format!("{}/v1/conversations", api.base))
            .header("authorization", format!("Basic {}", api.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        reply(res).await.expect(401, Some("unauthorized"));

        let created = api
            .post(
                "/v1/keys",
                &api.admin,
                json!({"role": "agent", "name": "support desk"}),
            )
            .await
            .expect(201, None);
        assert_eq!(created.body["role"], "agent");
        let agent = created.body["key"].as_str().unwrap().to_owned();
        assert!(agent.starts_with("sbk_"));
        // Stored hashed: the key itself is in no row.
        let rows = api_keys::Entity::find()
            .all(api.router.store().conn())
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|r| r.key_hash != agent && !r.key_hash.contains(&agent))
        );

        api.post("/v1/accounts", &agent, connect_body("+14155550100"))
            .await
            .expect(403, Some("forbidden"));
        api.get("/v1/accounts", &agent)
            .await
            .expect(403, Some("forbidden"));
        let verify = format!("/v1/accounts/{}/verify", api.account_id);
        api.post(&verify, &agent, json!({}))
            .await
            .expect(403, Some("forbidden"));
        let one = format!("/v1/accounts/{}", api.account_id);
        api.call(Method::DELETE, &one, Some(&agent), None)
            .await
            .expect(403, Some("forbidden"));
        api.post("/v1/keys", &agent, json!({"role": "admin"}))
            .await
            .expect(403, Some("forbidden"));
        // An agent still sends and reads.
        api.get("/v1/conversations", &agent).await.expect(200, None);
        api.inbound("in-1", ALICE, "hi").await;
        api.post("/v1/messages", &agent, text_message(ALICE, "hello"))
            .await
            .expect(202, None);
        // The account is untouched by the refused calls.
        let accounts = api.get("/v1/accounts", &api.admin).await.expect(200, None);
        assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
        assert_eq!(accounts.body["data"][0]["active"], true);
        api.post("/v1/keys", &api.admin, json!({"role": "owner"}))
            .await
            .expect(400, Some("invalid_role"));
    })
    .await;
}

#[tokio::test]
async fn accounts_connect_without_echoing_credentials_refuse_duplicates_and_bad_numbers_and_disconnect_softly()
 {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let key = api.admin.clone();
        let created = api
            .post(
                "/v1/accounts",
                &key,
                json!({"channel": "fake", "address": "+1 (415) 555-0100",
                "credentials": {"secret": "s3cr3t-value-never-echoed"}, "rate_per_second": 20}),
            )
            .await
            .expect(201, None);
        assert!(
            !created.text.contains("s3cr3t-value-never-echoed"),
            "{}",
            created.text
        );
        assert_eq!(created.body["address"], "+14155550100");
        assert_eq!(created.body["channel"], "fake");
        assert_eq!(created.body["active"], true);
        assert_eq!(created.body["rate_per_second"], 20);
        assert_eq!(created.body["credential_names"], json!(["secret"]));
        let id = created.body["id"].as_str().unwrap().to_owned();

        api.post("/v1/accounts", &key, connect_body("+14155550100"))
            .await
            .expect(409, Some("account_exists"));
        api.post("/v1/accounts", &key, connect_body("not a number"))
            .await
            .expect(400, Some("invalid_address"));
        api.post(
            "/v1/accounts",
            &key,
            json!({"channel": "carrier-pigeon", "address": "+14155550101", "credentials": {}}),
        )
        .await
        .expect(400, Some("unknown_channel"));
        api.post(
            "/v1/accounts",
            &key,
            json!({"channel": "fake", "address": "+14155550101", "credentials": {"token": "x"}}),
        )
        .await
        .expect(400, Some("invalid_credentials"));
        api.post(
            "/v1/accounts",
            &key,
            json!({"channel": "fake", "address": "+14155550101", "credentials": "x"}),
        )
        .await
        .expect(400, Some("invalid_credentials"));

        let list = api.get("/v1/accounts", &key).await.expect(200, None);
        assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
        assert!(list.body["next_cursor"].is_null() && list.body.get("next_cursor").is_some());
        assert!(!list.text.contains("s3cr3t-value-never-echoed") && !list.text.contains(SECRET));

        let verified = api
            .post(&format!("/v1/accounts/{id}/verify"), &key, json!({}))
            .await
            .expect(200, None);
        assert_eq!(verified.body["status"], "up");
        assert_eq!(verified.body["account_id"], id.as_str());
        assert!(verified.body["latency_ms"].is_u64() && verified.body["checked_at"].is_string());

        let gone = api
            .call(
                Method::DELETE,
                &format!("/v1/accounts/{id}"),
                Some(&key),
                None,
            )
            .await
            .expect(200, None);
        assert_eq!(gone.body["active"], false);
        assert!(gone.body["disconnected_at"].is_string());
        let list = api.get("/v1/accounts", &key).await.expect(200, None);
        let row = list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(row["active"], false, "soft: still listed, inactive");
        api.call(Method::DELETE, "/v1/accounts/acc_unknown", Some(&key), None)
            .await
            .expect(404, Some("not_found"));
    })
    .await;
}

#[tokio::test]
async fn a_text_inside_the_window_is_accepted_delivered_and_shows_its_status_history() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hello?").await;
        // Any spelling of the number reaches the conversation the person opened.
        let accepted = api
            .post(
                "/v1/messages",
                &api.admin,
                text_message("whatsapp:+31 6 1234 5678", "hi Alice"),
            )
            .await
            .expect(202, None);
        assert_eq!(accepted.body["status"], "queued");
        assert_eq!(accepted.body["channel"], "fake");
        assert!(
            accepted.body.get("parts").is_none(),
            "no parts for a single message"
        );
        let id = accepted.body["id"].as_str().unwrap().to_owned();
        let conversation_id = accepted.body["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();

        let queued = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None);
        assert_eq!(queued.body["status"], "queued");
        assert!(queued.body["provider_message_id"].is_null());
        assert_eq!(queued.body["attempts"], json!([]));

        assert_eq!(api.router.delivery().deliver_due().await.unwrap(), 1);
        let sent = api.fake.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.content.text.as_deref(), Some("hi Alice"));

        let m = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None)
            .body;
        assert_eq!(m["id"], id.as_str());
        assert_eq!(m["conversation_id"], conversation_id.as_str());
        assert_eq!(m["direction"], "outbound");
        assert_eq!(m["channel"], "fake");
        assert_eq!(m["status"], "accepted");
        assert_eq!(m["provider_message_id"], "fake-1");
        assert!(m["error_code"].is_null());
        assert_eq!(m["content"]["text"], "hi Alice");
        assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
        let attempts = m["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{m}");
        assert_eq!(attempts[0]["attempt"], 1);
        assert!(attempts[0]["outcome"].is_string());

        // Status webhooks move it forward; the history keeps every report in order.
        api.status("st-1", "fake-1", MessageStatus::Delivered).await;
        api.status("st-2", "fake-1", MessageStatus::Read).await;
        api.status("st-3", "fake-1", MessageStatus::Sent).await; // late: recorded, no regression
        let m = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None)
            .body;
        assert_eq!(m["status"], "read");
        let history: Vec<&str> = m["status_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert_eq!(history, ["accepted", "delivered", "read", "sent"]);
        assert!(m["status_history"][1]["at"].is_string());

        // A reaction names the message by its Switchboard id; the provider gets its own id.
        let first = api
            .get(
                &format!("/v1/conversations/{conversation_id}/messages?limit=1"),
                &api.admin,
            )
            .await
            .expect(200, None);
        let inbound_message = first.body["data"][0]["id"].as_str().unwrap().to_owned();
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": ALICE, "reaction": {"message_id": inbound_message, "emoji": "👍"}}),
        )
        .await
        .expect(202, None);
        api.deliver_all().await;
        let reaction = api
            .fake
            .sent()
            .last()
            .unwrap()
            .1
            .content
            .reaction
            .clone()
            .unwrap();
        assert_eq!(reaction.message_id, "in-1");
        assert_eq!(reaction.emoji.as_deref(), Some("👍"));
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": ALICE, "reaction": {"message_id": "msg_unknown", "emoji": "x"}}),
        )
        .await
        .expect(404, Some("not_found"));

        api.get("/v1/messages/msg_unknown", &api.admin)
            .await
            .expect(404, Some("not_found"));
    })
    .await;
}

#[tokio::test]
async fn free_form_outside_the_window_is_422_and_nothing_is_stored_or_sent_but_a_template_is_accepted()
 {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.post("/v1/messages", &api.admin, text_message(BOB, "hi"))
            .await
            .expect(422, Some("outside_service_window"));
        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": BOB, "media": [{"url": "https://cdn.test/a.jpg"}]}),
        )
        .await
        .expect(422, Some("outside_service_window"));
        assert_eq!(api.message_count().await, 0);
        assert_eq!(api.router.delivery().deliver_due().await.unwrap(), 0);
        assert!(api.fake.sent().is_empty());

        let template = json!({"to": BOB, "template": {"name": "HXb5b62575e6e4ff6129ad7c8efe1f983e",
            "language": "en", "variables": {"1": "12/1", "2": "3pm"}}});
        let accepted = api
            .post("/v1/messages", &api.admin, template)
            .await
            .expect(202, None);
        api.router.delivery().deliver_due().await.unwrap();
        let sent = api.fake.sent();
        assert_eq!(sent.len(), 1);
        let t = sent[0].1.content.template.as_ref().unwrap();
        assert_eq!(t.name, "HXb5b62575e6e4ff6129ad7c8efe1f983e");
        assert_eq!(t.variables.get("2").map(String::as_str), Some("3pm"));
        let id = accepted.body["id"].as_str().unwrap();
        let m = api
            .get(&format!("/v1/messages/{id}"), &api.admin)
            .await
            .expect(200, None)
            .body;
        assert_eq!(m["content"]["template"]["language"], "en");
        assert!(m["content"].get("text").is_none());
    })
    .await;
}

#[tokio::test]
async fn an_idempotency_key_in_the_body_or_the_header_returns_the_first_message_and_sends_once() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let body = json!({"to": ALICE, "text": "once", "idempotency_key": "order-42"});
        let first = api
            .post("/v1/messages", &api.admin, body.clone())
            .await
            .expect(202, None);
        let again = api
            .post("/v1/messages", &api.admin, body)
            .await
            .expect(202, None);
        assert_eq!(first.body["id"], again.body["id"]);

        let with_header = || {
            api.client
                .post(format!("{}/v1/messages", api.base))
                .bearer_auth(&api.admin)
                .header("Idempotency-Key", "order-43")
                .json(&text_message(ALICE, "twice?"))
        };
        let h1 = reply(with_header().send().await.unwrap())
            .await
            .expect(202, None);
        let h2 = reply(with_header().send().await.unwrap())
            .await
            .expect(202, None);
        assert_eq!(h1.body["id"], h2.body["id"]);
        assert_ne!(h1.body["id"], first.body["id"]);

        let mismatch = api
            .client
            .post(format!("{}/v1/messages", api.base))
            .bearer_auth(&api.admin)
            .header("Idempotency-Key", "order-44")
            .json(&json!({"to": ALICE, "text": "x", "idempotency_key": "order-45"}))
            .send()
            .await
            .unwrap();
        reply(mismatch)
            .await
            .expect(400, Some("idempotency_key_mismatch"));

        assert_eq!(api.deliver_all().await, 2);
        let texts: Vec<String> = api
            .fake
            .sent()
            .iter()
            .filter_map(|(_, m)| m.content.text.clone())
            .collect();
        assert_eq!(texts, ["once", "twice?"]);
        assert_eq!(api.message_count().await, 3, "one inbound, two outbound");
    })
    .await;
}

#[tokio::test]
async fn media_beyond_the_channel_limit_are_split_into_parts_in_order() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "send the documents").await;
        let body = json!({"to": ALICE, "text": "here you go", "media": [
            {"url": "https://cdn.test/photo.jpg", "caption": "the house"},
            {"url": "https://cdn.test/contract.pdf?sig=abc", "filename": "contract.pdf"},
            {"url": "https://cdn.test/tour", "kind": "video"}
        ]});
        let accepted = api
            .post("/v1/messages", &api.admin, body)
            .await
            .expect(202, None);
        let parts = accepted.body["parts"].as_array().unwrap().clone();
        assert_eq!(
            parts.len(),
            2,
            "the fake channel carries one media item per message"
        );
        let first = api
            .get(
                &format!("/v1/messages/{}", accepted.body["id"].as_str().unwrap()),
                &api.admin,
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(first["content"]["text"], "here you go");
        assert_eq!(
            first["content"]["media"],
            json!([{"kind": "image", "url": "https://cdn.test/photo.jpg", "caption": "the house"}])
        );
        let second = api
            .get(
                &format!("/v1/messages/{}", parts[0].as_str().unwrap()),
                &api.admin,
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(second["content"]["media"][0]["kind"], "document");
        assert_eq!(second["content"]["media"][0]["filename"], "contract.pdf");
        assert!(second["content"].get("text").is_none());
        let third = api
            .get(
                &format!("/v1/messages/{}", parts[1].as_str().unwrap()),
                &api.admin,
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(third["content"]["media"][0]["kind"], "video");

        assert_eq!(api.deliver_all().await, 3);
        let urls: Vec<String> = api
            .fake
            .sent()
            .iter()
            .map(|(_, m)| m.content.media[0].url.clone().unwrap())
            .collect();
        assert_eq!(
            urls,
            [
                "https://cdn.test/photo.jpg",
                "https://cdn.test/contract.pdf?sig=abc",
                "https://cdn.test/tour"
            ]
        );

        api.post(
            "/v1/messages",
            &api.admin,
            json!({"to": ALICE, "media": [{"url": "https://x/y", "kind": "hologram"}]}),
        )
        .await
        .expect(400, Some("invalid_media_kind"));
    })
    .await;
}

#[tokio::test]
async fn conversations_are_listed_newest_activity_first_and_paginate_without_gaps_or_repeats() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        for (i, who) in [ALICE, BOB, CAROL].into_iter().enumerate() {
            api.inbound(&format!("in-{i}"), who, "hello").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        api.inbound("in-again", ALICE, "me again").await; // Alice is the most recent now

        let all = api
            .get("/v1/conversations", &api.admin)
            .await
            .expect(200, None)
            .body;
        let phones: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["contact"]["phone"].as_str().unwrap())
            .collect();
        assert_eq!(phones, [ALICE, CAROL, BOB]);
        assert!(all["next_cursor"].is_null());
        let alice = &all["data"][0];
        assert_eq!(alice["service_window_open"], true);
        assert_eq!(alice["opted_out"], false);
        assert_eq!(alice["channel"], "fake");
        assert_eq!(alice["account_id"], api.account_id.as_str());
        assert_eq!(alice["contact"]["profile_name"], format!("person {ALICE}"));

        let pages = api.pages("/v1/conversations", 2).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        let flat: Vec<&String> = pages.iter().flatten().collect();
        let expected: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(flat, expected);

        api.get("/v1/conversations?limit=0", &api.admin)
            .await
            .expect(400, Some("invalid_limit"));
        api.get("/v1/conversations?limit=201", &api.admin)
            .await
            .expect(400, Some("invalid_limit"));
        api.get("/v1/conversations?limit=many", &api.admin)
            .await
            .expect(400, Some("invalid_query"));
        api.get("/v1/conversations?cursor=bm9wZQ", &api.admin)
            .await
            .expect(400, Some("invalid_cursor"));
    })
    .await;
}

#[tokio::test]
async fn conversation_messages_are_oldest_first_and_paginate() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        for i in 0..4 {
            api.inbound(&format!("in-{i}"), ALICE, &format!("m{i}"))
                .await;
        }
        let accepted = api
            .post("/v1/messages", &api.admin, text_message(ALICE, "m4"))
            .await
            .expect(202, None);
        let conversation_id = accepted.body["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        api.inbound("in-other", BOB, "not in this conversation")
            .await;

        let path = format!("/v1/conversations/{conversation_id}/messages");
        let all = api.get(&path, &api.admin).await.expect(200, None).body;
        let texts: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"]);
        let directions: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["direction"].as_str().unwrap())
            .collect();
        assert_eq!(
            directions,
            ["inbound", "inbound", "inbound", "inbound", "outbound"]
        );
        assert_eq!(all["data"][0]["status"], "received");
        assert_eq!(all["data"][0]["provider_message_id"], "in-0");
        assert!(
            all["data"][0].get("status_history").is_none(),
            "history only on GET by id"
        );

        let pages = api.pages(&path, 2).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let flat: Vec<&String> = pages.iter().flatten().collect();
        let expected: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(flat, expected);

        api.get("/v1/conversations/cnv_unknown/messages", &api.admin)
            .await
            .expect(404, Some("not_found"));
    })
    .await;
}

#[tokio::test]
async fn a_contact_is_found_by_any_spelling_of_its_number() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let mut ids = Vec::new();
        for spelling in [
            "+31612345678",
            "+31 6 1234 5678",
            "whatsapp:+31612345678",
            "0031612345678",
            "31612345678",
            "06-12345678",
        ] {
            let c = api
                .get(
                    &format!("/v1/contacts?phone={}", encode(spelling)),
                    &api.admin,
                )
                .await
                .expect(200, None)
                .body;
            assert_eq!(c["phone"], ALICE, "{spelling}");
            assert_eq!(c["phones"], json!([ALICE]));
            assert_eq!(c["channels"], json!(["fake"]));
            assert_eq!(c["profile_name"], format!("person {ALICE}"));
            ids.push(c["id"].as_str().unwrap().to_owned());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "every spelling names one contact");

        api.get(&format!("/v1/contacts?phone={}", encode(BOB)), &api.admin)
            .await
            .expect(404, Some("not_found"));
        api.get("/v1/contacts?phone=call%20me", &api.admin)
            .await
            .expect(400, Some("invalid_phone"));
        api.get("/v1/contacts", &api.admin)
            .await
            .expect(400, Some("missing_phone"));
    })
    .await;
}

#[tokio::test]
async fn another_tenant_gets_404_for_every_id_and_sees_empty_lists() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let accepted = api
            .post("/v1/messages", &api.admin, text_message(ALICE, "hello"))
            .await
            .expect(202, None);
        api.router.delivery().deliver_due().await.unwrap();
        let message_id = accepted.body["id"].as_str().unwrap().to_owned();
        let conversation_id = accepted.body["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let account_id = api.account_id.clone();

        let other = api.router.tenants().create("globex").await.unwrap().key;
        // The first tenant's ids, on every route that takes one: 404, exactly like unknown ids.
        let routes = [
            (Method::GET, format!("/v1/messages/{message_id}")),
            (
                Method::GET,
                format!("/v1/conversations/{conversation_id}/messages"),
            ),
            (Method::POST, format!("/v1/accounts/{account_id}/verify")),
            (Method::DELETE, format!("/v1/accounts/{account_id}")),
            (Method::GET, format!("/v1/contacts?phone={}", encode(ALICE))),
        ];
        for (method, path) in &routes {
            let r = api
                .call(method.clone(), path, Some(&other), None)
                .await
                .expect(404, Some("not_found"));
            assert!(
                !r.text.contains(ALICE) && !r.text.contains("hello"),
                "{path}: {}",
                r.text
            );
        }
        for list in ["/v1/conversations", "/v1/accounts"] {
            let r = api.get(list, &other).await.expect(200, None);
            assert_eq!(r.body["data"], json!([]), "{list}");
        }
        // Nor can it send through the first tenant's account, or reply to its message.
        api.post("/v1/messages", &other, text_message(ALICE, "hijack"))
            .await
            .expect(400, Some("no_sender"));
        api.post(
            "/v1/messages",
            &other,
            json!({"to": ALICE, "text": "re", "reply_to": message_id}),
        )
        .await
        .expect(400, Some("no_sender"));

        // The owner still sees everything, and the DELETE above changed nothing.
        for (method, path) in routes.iter().filter(|(m, _)| *m != Method::DELETE) {
            api.call(method.clone(), path, Some(&api.admin), None)
                .await
                .expect(200, None);
        }
        let accounts = api.get("/v1/accounts", &api.admin).await.expect(200, None);
        assert_eq!(accounts.body["data"][0]["active"], true);
        assert_eq!(api.fake.sent().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn malformed_bodies_and_unknown_routes_answer_in_the_error_shape() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let raw = |body: &'static str| {
            api.client
                .post(format!("{}/v1/messages", api.base))
                .bearer_auth(&api.admin)
                .header("content-type", "application/json")
                .body(body)
        };
        for body in [
            "{not json",
            "",
            "[]",
            r#"{"to": "+31612345678", "txt": "typo"}"#,
            r#"{"to": 31612345678}"#,
        ] {
            let r = reply(raw(body).send().await.unwrap())
                .await
                .expect(400, Some("invalid_json"));
            assert_eq!(
                r.body.as_object().unwrap().len(),
                1,
                "only `error`: {}",
                r.text
            );
        }
        // Authentication comes first: a bad key with a bad body is a 401.
        let res = api
            .client
            .post(format!("{}/v1/messages", api.base))
            .body("{")
            .send()
            .await
            .unwrap();
        reply(res).await.expect(401, Some("unauthorized"));
        api.get("/v1/nothing-here", &api.admin)
            .await
            .expect(404, Some("route_not_found"));
        api.call(Method::DELETE, "/v1/messages", Some(&api.admin), None)
            .await
            .expect(405, Some("method_not_allowed"));
        api.call(Method::GET, "/nope", None, None)
            .await
            .expect(404, Some("route_not_found"));
        assert_eq!(api.message_count().await, 0);
    })
    .await;
}

#[tokio::test]
async fn notifications_are_set_by_admins_and_answer_the_signing_secret_once() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let agent = api
            .post("/v1/keys", &api.admin, json!({"role": "agent"}))
            .await
            .expect(201, None)
            .body["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = json!({"url": "https://product.example/hooks/switchboard"});
        api.call(
            Method::PUT,
            "/v1/notifications",
            Some(&agent),
            Some(body.clone()),
        )
        .await
        .expect(403, Some("forbidden"));
        api.call(
            Method::PUT,
            "/v1/notifications",
            Some(&api.admin),
            Some(json!({"url": "ftp://x"})),
        )
        .await
        .expect(400, Some("invalid_notify_url"));
        let set = api
            .call(
                Method::PUT,
                "/v1/notifications",
                Some(&api.admin),
                Some(body),
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(set["url"], "https://product.example/hooks/switchboard");
        let secret = set["secret"].as_str().unwrap();
        assert!(
            secret.starts_with("whsec_") && secret.len() > 30,
            "{secret}"
        );
        api.call(Method::DELETE, "/v1/notifications", Some(&api.admin), None)
            .await
            .expect(204, None);
    })
    .await;
}

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

/// The API as `switchboard serve` serves it, with a key printed by `switchboard tenant create`.
#[tokio::test]
async fn the_served_binary_answers_the_api_with_a_key_from_tenant_create() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sb.db").display());
    let out = crate::support::binary::command(&url, dir.path())
        .args(["tenant", "create", "acme"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let server = crate::support::binary::Server::start(&url, dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let v1 = |path: &str| format!("{}{path}", server.base_url);

    let r = reply(client.get(v1("/v1/accounts")).send().await.unwrap()).await;
    r.expect(401, Some("unauthorized"));
    let token = "f3c1a9d27be84c6e9d0f5a4b3c2e1d0a";
    let body = json!({"channel": "twilio-whatsapp", "address": "+1 415 523 8886",
        "credentials": {"account_sid": "AC00000000000000000000000000000001", "auth_token": token}});
    let r = reply(
        client
            .post(v1("/v1/accounts"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = r.expect(201, None);
    assert!(!r.text.contains(token), "{}", r.text);
    assert_eq!(r.body["address"], BUSINESS);
    let r = reply(
        client
            .get(v1("/v1/accounts"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.expect(200, None).body["data"].as_array().unwrap().len(),
        1
    );
    let r = reply(client.get(v1("/openapi.json")).send().await.unwrap()).await;
    assert!(r.expect(200, None).body["paths"]["/v1/messages"]["post"].is_object());
    assert!(server.stop().await.success());
}
