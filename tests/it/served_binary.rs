//! The real `switchboard serve` binary on a free port, driven over HTTP only, on SQLite and
//! PostgreSQL, against fake Twilio and Graph servers on loopback.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_meta_cloud::testing::{self as meta, FakeGraph};
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};

use crate::support::api::reply;
use crate::support::binary::Server;
use crate::support::fake::BUSINESS;
use crate::support::providers::{META_NUMBER, PNID, PUBLIC, TWILIO_NUMBER};
use crate::support::{Backend, binary, on_each_backend, post_oversized};

/// Secrets this test looks for in the logs and the database file, so each its own.
const META_TOKEN: &str = "EAAG-meta-access-token-e2e";
const APP_SECRET: &str = "meta-app-secret-e2e";
const VERIFY_TOKEN: &str = "meta-verify-token-e2e";

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_end_to_end_over_http_with_every_error_path() {
    on_each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let key = CredentialCipher::generate_key();
        let tw = FakeTwilio::start().await;
        let graph = FakeGraph::start().await;
        graph.add_number(PNID, META_TOKEN);

        // A tenant and its admin key, from the CLI.
        let api_key = binary::create_tenant_with(
            &db.url,
            dir.path(),
            "acme",
            &[("SWITCHBOARD_ENCRYPTION_KEY", key.as_str())],
        )
        .await;

        let log = dir.path().join("switchboard.log");
        let (twilio_base, graph_base) = (tw.base_url(), graph.base_url());
        let envs = [
            ("SWITCHBOARD_PUBLIC_URL", PUBLIC),
            ("SWITCHBOARD_ENCRYPTION_KEY", key.as_str()),
            ("SWITCHBOARD_TWILIO_API_BASE", twilio_base.as_str()),
            ("SWITCHBOARD_META_GRAPH_BASE", graph_base.as_str()),
            // Debug logs too: secrets must not appear at any level.
            ("SWITCHBOARD_LOG", "debug"),
        ];
        let server = Server::start_logging_to(&db.url, dir.path(), &envs, &log).await;
        let http = reqwest::Client::new();
        let base = server.base_url.clone();
        let auth = format!("Bearer {api_key}");

        // Connect both accounts; credentials are never echoed.
        let r = http.post(format!("{base}/v1/accounts")).header("authorization", &auth)
            .json(&json!({"channel": "twilio-whatsapp", "address": TWILIO_NUMBER, "credentials": {"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}}))
            .send().await.unwrap();
        assert_eq!(r.status(), 201);
        let text = r.text().await.unwrap();
        assert!(!text.contains(TEST_AUTH_TOKEN), "{text}");
        let r = http.post(format!("{base}/v1/accounts")).header("authorization", &auth)
            .json(&json!({"channel": "meta-whatsapp", "address": META_NUMBER, "credentials": {"phone_number_id": PNID, "access_token": META_TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}}))
            .send().await.unwrap();
        assert_eq!(r.status(), 201);
        let text = r.text().await.unwrap();
        for secret in [META_TOKEN, APP_SECRET, VERIFY_TOKEN] {
            assert!(!text.contains(secret), "{text}");
        }

        // Signed webhooks from both providers, over HTTP.
        let form = twilio::inbound_text_form(TEST_ACCOUNT_SID, "+16505551234", TWILIO_NUMBER, "Hi from Twilio", "SMe2e00000000000000000000000000001");
        let url = format!("{PUBLIC}/webhooks/twilio-whatsapp");
        let r = http.post(format!("{base}/webhooks/twilio-whatsapp"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", twilio::sign_form(TEST_AUTH_TOKEN, &url, &form))
            .body(twilio::form_body(&form)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/xml");
        assert_eq!(r.text().await.unwrap(), r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#);
        // The same delivery again: acknowledged, stored once.
        let r = http.post(format!("{base}/webhooks/twilio-whatsapp"))
            .header("x-twilio-signature", twilio::sign_form(TEST_AUTH_TOKEN, &url, &form))
            .body(twilio::form_body(&form)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ts = chrono::Utc::now().timestamp().to_string();
        let body = meta::envelope(&[(PNID, "15550783881", "messages", json!({
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
            "messages": [{"from": "16505551234", "id": "wamid.E2E1", "timestamp": ts, "type": "text", "text": {"body": "caf\u{e9} / menu"}}],
        }))]);
        let r = http.post(format!("{base}/webhooks/meta-whatsapp"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", meta::sign(APP_SECRET, body.as_bytes()))
            .body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200);

        // The handshake.
        let r = http.get(format!("{base}/webhooks/meta-whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "1158201444");
        let r = http.get(format!("{base}/webhooks/meta-whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong")).send().await.unwrap();
        assert_eq!(r.status(), 403);

        // Conversations: one contact, a conversation per sender.
        let convs: Value = http.get(format!("{base}/v1/conversations")).header("authorization", &auth).send().await.unwrap().json().await.unwrap();
        let data = convs["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{convs}");
        let contact: Value = http.get(format!("{base}/v1/contacts?phone=%2B1%20650%20555%201234")).header("authorization", &auth).send().await.unwrap().json().await.unwrap();
        assert_eq!(contact["phone"], "+16505551234", "{contact}");

        // A reply through Twilio; its status arrives through the status callback.
        let r = http.post(format!("{base}/v1/messages")).header("authorization", &auth)
            .json(&json!({"to": "+16505551234", "channel": "twilio-whatsapp", "text": "Thanks, we are on it"}))
            .send().await.unwrap();
        assert_eq!(r.status(), 202);
        let accepted: Value = r.json().await.unwrap();
        let id = accepted["id"].as_str().unwrap().to_owned();
        wait_for("the send to reach FakeTwilio", || !tw.created_message_sids().is_empty()).await;
        let sid = tw.created_message_sids()[0].clone();
        let sent = tw.requests().into_iter().find(|r| r.path.ends_with("/Messages.json")).unwrap();
        assert_eq!(sent.form_value("Body"), Some("Thanks, we are on it"));
        let callback = sent.form_value("StatusCallback").unwrap().to_owned();
        let path = callback.strip_prefix(PUBLIC).unwrap().to_owned();
        let status = twilio::status_form(TEST_ACCOUNT_SID, TWILIO_NUMBER, "+16505551234", &sid, "delivered", None);
        let r = http.post(format!("{base}{path}"))
            .header("x-twilio-signature", twilio::sign_form(TEST_AUTH_TOKEN, &callback, &status))
            .body(twilio::form_body(&status)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}: {}", r.text().await.unwrap_or_default(), std::fs::read_to_string(&log).unwrap_or_default());
        let msg: Value = http.get(format!("{base}/v1/messages/{id}")).header("authorization", &auth).send().await.unwrap().json().await.unwrap();
        assert_eq!(msg["status"], "delivered", "{msg}");
        assert_eq!(msg["provider_message_id"], sid.as_str());

        // Error paths.
        let forged = http.post(format!("{base}/webhooks/twilio-whatsapp"))
            .header("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
            .body(twilio::form_body(&form)).send().await.unwrap();
        assert_eq!(forged.status(), 403);
        let unsigned = http.post(format!("{base}/webhooks/meta-whatsapp")).body(body.clone()).send().await.unwrap();
        assert_eq!(unsigned.status(), 403);
        let unknown_form = twilio::inbound_text_form(TEST_ACCOUNT_SID, "+16505551234", "+14155550000", "to nobody", "SMe2e00000000000000000000000000002");
        let unknown = http.post(format!("{base}/webhooks/twilio-whatsapp"))
            .header("x-twilio-signature", twilio::sign_form(TEST_AUTH_TOKEN, &url, &unknown_form))
            .body(twilio::form_body(&unknown_form)).send().await.unwrap();
        assert_eq!(unknown.status(), 404);
        let malformed = http.post(format!("{base}/webhooks/meta-whatsapp"))
            .header("x-hub-signature-256", meta::sign(APP_SECRET, b"{not json"))
            .body("{not json").send().await.unwrap();
        assert_eq!(malformed.status(), 400);
        let (status, _) = post_oversized(&base, "/webhooks/meta-whatsapp", &[("content-type", "application/json")], 1024 * 1024 + 1).await;
        assert_eq!(status, 413);
        let no_key = http.get(format!("{base}/v1/conversations")).send().await.unwrap();
        assert_eq!(no_key.status(), 401);
        let err: Value = no_key.json().await.unwrap();
        assert!(err["error"]["code"].is_string(), "{err}");
        for i in 0..3 {
            let r = http.post(format!("{base}/webhooks/no-such-channel-{i}")).body("x").send().await.unwrap();
            assert_eq!(r.status(), 404);
        }
        // Monitors: Prometheus counters, and per-account health (Twilio suspended → 503).
        let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        // A path from the internet is never a label value (one series per name would grow
        // without bound).
        assert!(!metrics.contains("no-such-channel"), "{metrics}");
        assert!(metrics.contains("switchboard_webhooks_rejected_total{channel=\"unknown\""), "{metrics}");
        for needle in [
            "switchboard_webhooks_received_total{channel=\"twilio-whatsapp\"}",
            "switchboard_webhooks_duplicate_total{channel=\"twilio-whatsapp\"}",
            "switchboard_webhooks_rejected_total",
            "switchboard_messages_sent_total{channel=\"twilio-whatsapp\"}",
            "switchboard_send_latency_seconds_bucket",
            "switchboard_queue_depth",
        ] {
            assert!(metrics.contains(needle), "{needle} missing from /metrics:\n{metrics}");
        }
        tw.set_account_status("suspended");
        let r = http.get(format!("{base}/health/channels")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let health: Value = r.json().await.unwrap();
        let accounts = health["accounts"].as_array().unwrap();
        assert_eq!(accounts.len(), 2, "{health}");
        let by_channel = |c: &str| accounts.iter().find(|a| a["channel"] == c).unwrap().clone();
        assert_eq!(by_channel("twilio-whatsapp")["status"], "down", "{health}");
        assert_eq!(by_channel("meta-whatsapp")["status"], "up", "{health}");
        assert!(by_channel("meta-whatsapp")["latency_ms"].is_u64());
        // Still serving after all of that.
        assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);

        // Secrets are in neither the logs nor the database file.
        let status = server.stop().await;
        assert!(status.success(), "clean exit: {status:?}");
        let logs = std::fs::read_to_string(&log).unwrap();
        assert!(logs.contains("Switchboard is serving"), "logs were captured");
        let mut haystacks = vec![("logs".to_owned(), logs.into_bytes())];
        if db.backend == Backend::Sqlite {
            let db_dir = db.dir().unwrap();
            for f in ["switchboard.db", "switchboard.db-wal"] {
                haystacks.push((f.to_owned(), std::fs::read(db_dir.join(f)).unwrap_or_default()));
            }
        }
        for (name, bytes) in &haystacks {
            for secret in [TEST_AUTH_TOKEN, META_TOKEN, APP_SECRET, VERIFY_TOKEN, api_key.as_str()] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret:?} found in {name}"
                );
            }
        }
    })
    .await;
}

/// The API as `switchboard serve` serves it, with a key printed by `switchboard tenant create`.
#[tokio::test]
async fn the_served_binary_answers_the_api_with_a_key_from_tenant_create() {
    let dir = tempfile::tempdir().unwrap();
    let url = binary::sqlite_url(dir.path());
    let key = binary::create_tenant(&url, dir.path(), "acme").await;
    let server = Server::start(&url, dir.path(), &[]).await;
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
