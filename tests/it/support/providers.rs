//! The real Twilio and Meta adapters wired to their fake servers on loopback, with one
//! account of each connected: the set-up of the provider tests.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_meta_cloud::MetaCloud;
use switchboard_meta_cloud::testing::FakeGraph;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::{Router, RouterBuilder};
use switchboard_twilio_whatsapp::testing::{FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use switchboard_twilio_whatsapp::{TwilioConfig, TwilioWhatsApp};

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
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
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
