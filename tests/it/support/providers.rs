//! The real Twilio and Meta adapters wired to their fake servers on loopback, with one
//! account of each connected: the set-up of the provider tests, and the webhooks, sends and
//! reads they share.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use switchboard_core::Content;
use switchboard_meta_cloud::MetaCloud;
use switchboard_meta_cloud::testing::{self as meta, FakeGraph};
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::messages;
use switchboard_router::{Router, RouterBuilder, SendRequest};
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp};

use super::TestDb;

/// The public base URL Twilio signs.
pub const PUBLIC: &str = "https://sb.example.com";
pub const TWILIO_PATH: &str = "/webhooks/twilio-whatsapp";
pub const TWILIO_NUMBER: &str = "+14155238886";
pub const META_NUMBER: &str = "+15550783881";
pub const META_DISPLAY: &str = "15550783881";
/// The Meta account's phone_number_id (its routing key).
pub const PNID: &str = "106540352242922";
pub const META_TOKEN: &str = "meta-access-token";
/// The person on the other side, E.164 and as a WhatsApp id.
pub const PERSON: &str = "+16505551234";
pub const PERSON_WA: &str = "16505551234";

/// Both fakes, the number and token registered at the Graph fake.
pub async fn fakes() -> (FakeTwilio, FakeGraph) {
    let twilio = FakeTwilio::start().await;
    let graph = FakeGraph::start().await;
    graph.add_number(PNID, META_TOKEN);
    (twilio, graph)
}

/// A router builder over `db` with both real adapters pointed at the fakes.
pub async fn builder(db: &TestDb, twilio: &FakeTwilio, graph: &FakeGraph) -> RouterBuilder {
    builder_with_key(db, twilio, graph, &CredentialCipher::generate_key()).await
}

/// [`builder`] with a given credentials key: what a restarted process builds.
pub async fn builder_with_key(
    db: &TestDb,
    twilio: &FakeTwilio,
    graph: &FakeGraph,
    key: &str,
) -> RouterBuilder {
    let cipher = CredentialCipher::from_base64(key).unwrap();
    Router::builder(db.store().await, cipher)
        .adapter(Arc::new(TwilioWhatsApp::new(TwilioConfig {
            api_base: twilio.base_url(),
            public_url: PUBLIC.into(),
            request_timeout: Duration::from_secs(2),
            ..TwilioConfig::default()
        })))
        .adapter(Arc::new(MetaCloud::new(graph.config())))
}

/// Connects the Twilio and the Meta account for `tenant_id`.
pub async fn connect_both(router: &Router, tenant_id: &str, app_secret: &str) {
    router
        .accounts()
        .connect(
            tenant_id,
            "twilio-whatsapp",
            TWILIO_NUMBER,
            &json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}),
            None,
        )
        .await
        .unwrap();
    router
        .accounts().connect(
            tenant_id,
            "meta-whatsapp",
            META_NUMBER,
            &json!({"phone_number_id": PNID, "access_token": META_TOKEN, "app_secret": app_secret, "verify_token": "vt"}),
            None,
        )
        .await
        .unwrap();
}

/// Sets (or replaces) one field of a Twilio form.
pub fn set(form: &mut Vec<(String, String)>, key: &str, value: &str) {
    form.retain(|(k, _)| k != key);
    form.push((key.to_owned(), value.to_owned()));
}

pub const APP_SECRET: &str = "router_test_app_secret";

/// A router with both real adapters on their fakes, one tenant (`acme`) and both its
/// accounts connected.
pub struct ProviderSite {
    pub router: Router,
    pub tenant: String,
    pub twilio: FakeTwilio,
    pub graph: FakeGraph,
}

/// [`ProviderSite`] on `db`, the Meta account's app secret [`APP_SECRET`].
pub async fn site(db: &TestDb) -> ProviderSite {
    let (twilio, graph) = fakes().await;
    let router = builder(db, &twilio, &graph).await.build();
    let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
    connect_both(&router, &tenant, APP_SECRET).await;
    ProviderSite {
        router,
        tenant,
        twilio,
        graph,
    }
}

pub fn twilio_webhook(params: &[(String, String)]) -> switchboard_core::WebhookRequest {
    twilio::signed_webhook_request(PUBLIC, TWILIO_PATH, None, TEST_AUTH_TOKEN, params)
}

pub fn now_ts() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// A Meta inbound text with the current time (the window counts from the provider's time).
pub fn meta_inbound(from_wa_id: &str, wamid: &str, text: &str) -> String {
    meta::envelope(&[(
        PNID,
        META_DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": from_wa_id}],
            "messages": [{"from": from_wa_id, "id": wamid, "timestamp": now_ts(), "type": "text", "text": {"body": text}}],
        }),
    )])
}

pub async fn stored(router: &Router) -> Vec<messages::Model> {
    messages::Entity::find()
        .order_by_asc(messages::Column::Id)
        .all(router.store().conn())
        .await
        .unwrap()
}

pub fn content(m: &messages::Model) -> Value {
    serde_json::from_str(&m.content).unwrap()
}

pub fn twilio_sends(t: &FakeTwilio) -> usize {
    t.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
        .count()
}

pub fn graph_sends(g: &FakeGraph) -> usize {
    g.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .count()
}

pub async fn open_window_via_twilio(e: &ProviderSite) {
    let form = twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, "hi", "SM0900");
    e.router
        .receive_webhook("twilio-whatsapp", twilio_webhook(&form))
        .await
        .unwrap();
}

pub fn send_text(to: &str, channel: &str, text: &str) -> SendRequest {
    SendRequest {
        to: to.into(),
        channel: Some(channel.into()),
        content: Content::text(text),
        ..Default::default()
    }
}

/// Stores `body` as a Meta webhook signed with [`APP_SECRET`].
pub async fn receive_meta(router: &Router, body: &str) {
    router
        .receive_webhook(
            "meta-whatsapp",
            meta::webhook_request(body, Some(APP_SECRET)),
        )
        .await
        .unwrap();
}

/// POSTs `form` to `path` on `site` signed as Twilio signs it for [`PUBLIC`] (the test
/// account's auth token).
pub async fn post_twilio_form(
    site: &super::http_site::HttpSite,
    path: &str,
    form: &[(String, String)],
) -> reqwest::Response {
    let signature = twilio::sign_form(TEST_AUTH_TOKEN, &format!("{PUBLIC}{path}"), form);
    site.client
        .post(format!("{}{path}", site.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(twilio::form_body(form))
        .send()
        .await
        .unwrap()
}

/// POSTs `body` to the Meta webhook on `site`, signed with `secret` as Meta signs it
/// (unsigned with `None`).
pub async fn post_meta_webhook(
    site: &super::http_site::HttpSite,
    body: &str,
    secret: Option<&str>,
) -> super::api::Reply {
    let mut req = site
        .client
        .post(format!("{}/webhooks/meta-whatsapp", site.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(secret) = secret {
        req = req.header("x-hub-signature-256", meta::sign(secret, body.as_bytes()));
    }
    super::api::reply(req.send().await.unwrap()).await
}
