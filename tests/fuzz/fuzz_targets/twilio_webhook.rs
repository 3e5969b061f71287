//! The Twilio inbound path on arbitrary bytes: routing keys, signature verification, then
//! parsing. The body is also signed correctly, so the parser behind the signature check is
//! reached with whatever the form holds.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_core::{AccountContext, ChannelAdapter, Credentials, PhoneNumber, WebhookRequest};
use switchboard_twilio::testing::sign_form;
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp};

const TOKEN: &str = "fuzz-token";
const PUBLIC: &str = "https://sb.example.com";

// Built once: an adapter builds an HTTP client, which is far slower than one input.
static ADAPTER: std::sync::LazyLock<TwilioWhatsApp> = std::sync::LazyLock::new(|| {
    TwilioWhatsApp::new(TwilioConfig {
        public_url: PUBLIC.to_owned(),
        ..Default::default()
    })
});

fuzz_target!(|data: &[u8]| {
    let adapter = &*ADAPTER;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let signature = sign_form(TOKEN, &format!("{PUBLIC}/webhooks/twilio-whatsapp"), &pairs);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&signature) {
        headers.insert("x-twilio-signature", v);
    }
    let request = WebhookRequest {
        method: http::Method::POST,
        path: "/webhooks/twilio-whatsapp".to_owned(),
        query: None,
        headers,
        body: Bytes::copy_from_slice(data),
        memo: Default::default(),
    };
    let Ok(keys) = adapter.routing_keys(&request) else {
        return;
    };
    let mut credentials = Credentials::default();
    credentials.insert(
        "account_sid",
        pairs
            .iter()
            .find(|(k, _)| k == "AccountSid")
            .map_or("AC00000000000000000000000000000001", |(_, v)| v.as_str()),
    );
    credentials.insert("auth_token", TOKEN);
    for key in keys {
        let Ok(address) = PhoneNumber::parse(&key) else {
            continue;
        };
        let account = AccountContext {
            account_id: "acct_fuzz".to_owned(),
            tenant_id: "tenant_fuzz".to_owned(),
            address,
            routing_key: key,
            credentials: credentials.clone(),
        };
        if adapter.verify_webhook(&request, &account).is_ok() {
            let _ = adapter.parse_webhook(&request, &[&account]);
        }
    }
});
