//! The Meta inbound path on arbitrary bytes, correctly signed, so the JSON parser behind
//! the signature check sees every input.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_core::{ChannelAdapter, WebhookRequest};
use switchboard_meta_cloud::testing::{account, sign};
use switchboard_meta_cloud::{MetaCloud, MetaConfig};

const SECRET: &str = "fuzz-secret";

// Built once: an adapter builds an HTTP client, which is far slower than one input.
static ADAPTER: std::sync::LazyLock<MetaCloud> =
    std::sync::LazyLock::new(|| MetaCloud::new(MetaConfig::default()));

fuzz_target!(|data: &[u8]| {
    let adapter = &*ADAPTER;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&sign(SECRET, data)) {
        headers.insert("x-hub-signature-256", v);
    }
    let request = WebhookRequest {
        method: http::Method::POST,
        path: "/webhooks/meta-whatsapp".to_owned(),
        query: None,
        headers,
        body: Bytes::copy_from_slice(data),
        memo: Default::default(),
    };
    let Ok(routes) = adapter.webhook_routes(&request) else {
        return;
    };
    let mut accounts: Vec<_> = routes
        .keys
        .iter()
        .map(|k| account(k, "+15550783881", "token", SECRET, "verify"))
        .collect();
    // Account-level items are attributed among every account that verified.
    if routes.channel_wide {
        accounts.push(account(
            "106540352242999",
            "+15550000007",
            "token",
            SECRET,
            "verify",
        ));
    }
    let verified: Vec<_> = accounts
        .iter()
        .filter(|a| adapter.verify_webhook(&request, a).is_ok())
        .collect();
    if !verified.is_empty() {
        let _ = adapter.parse_webhook(&request, &verified);
    }
});
