//! The deployment example (`deploy/`, README "Deploy several instances"): its files name
//! only settings the binary knows, and instances that share one database take the same
//! webhooks together, each stored once, each instance showing all of them. On SQLite (one
//! host) and PostgreSQL.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::json;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};

use crate::support::binary::{self, Server};
use crate::support::on_each_backend;
use crate::support::providers::{PUBLIC, TWILIO_NUMBER, TWILIO_PATH};

fn deploy_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `SWITCHBOARD_…` name in `text`.
fn setting_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("SWITCHBOARD_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_deployment_example_names_only_settings_the_binary_knows() {
    let help = binary::cli(
        "sqlite::memory:",
        &std::env::temp_dir(),
        &["serve", "--help"],
        &[],
    )
    .await;
    assert!(help.status.success());
    let known = setting_names(&String::from_utf8_lossy(&help.stdout));
    assert!(known.contains("SWITCHBOARD_DATABASE_URL"), "{known:?}");
    let mut named = BTreeSet::new();
    for file in [
        "switchboard@.service",
        "switchboard.env.example",
        "Containerfile",
    ] {
        named.extend(setting_names(&deploy_file(file)));
    }
    let unknown: Vec<_> = named.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "settings `switchboard serve` does not know: {unknown:?}"
    );
    // What every instance must share is in the shared file.
    let shared = setting_names(&deploy_file("switchboard.env.example"));
    for name in [
        "SWITCHBOARD_DATABASE_URL",
        "SWITCHBOARD_ENCRYPTION_KEY",
        "SWITCHBOARD_PUBLIC_URL",
    ] {
        assert!(
            shared.contains(name),
            "{name} is not in switchboard.env.example"
        );
    }
    assert!(
        deploy_file("switchboard@.service").contains("ExecStart=/usr/local/bin/switchboard serve")
    );
}

#[tokio::test]
async fn instances_sharing_one_database_store_each_webhook_once_and_show_all() {
    on_each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let key = CredentialCipher::generate_key();
        let provider = FakeTwilio::start().await;
        let provider_base = provider.base_url();
        let shared = [
            ("SWITCHBOARD_ENCRYPTION_KEY", key.as_str()),
            ("SWITCHBOARD_PUBLIC_URL", PUBLIC),
            ("SWITCHBOARD_TWILIO_API_BASE", provider_base.as_str()),
        ];
        let admin = binary::create_tenant_with(&db.url, dir.path(), "acme", &shared).await;
        let first =
            Server::start_logging_to(&db.url, dir.path(), &shared, &dir.path().join("first.log"))
                .await;
        let second =
            Server::start_logging_to(&db.url, dir.path(), &shared, &dir.path().join("second.log"))
                .await;
        let http = reqwest::Client::new();
        let connected = http
            .post(format!("{}/v1/accounts", first.base_url))
            .bearer_auth(&admin)
            .json(
                &json!({"channel": "twilio-whatsapp", "address": TWILIO_NUMBER,
                "credentials": {"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(connected.status(), 201);

        // 20 senders, each webhook delivered to one instance and redelivered to the other
        // (a load balancer retrying elsewhere), concurrently.
        let instances = [first.base_url.clone(), second.base_url.clone()];
        let mut posts = Vec::new();
        for i in 0..20u32 {
            let form = twilio::inbound_text_form(
                TEST_ACCOUNT_SID,
                &format!("+1650555{:04}", 2000 + i),
                TWILIO_NUMBER,
                &format!("hello {i}"),
                &format!("SM{:032x}", 0xdead_0000_u64 + u64::from(i)),
            );
            let signature =
                twilio::sign_form(TEST_AUTH_TOKEN, &format!("{PUBLIC}{TWILIO_PATH}"), &form);
            for base in [
                &instances[(i % 2) as usize],
                &instances[((i + 1) % 2) as usize],
            ] {
                let request = http
                    .post(format!("{base}{TWILIO_PATH}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-twilio-signature", signature.clone())
                    .body(twilio::form_body(&form))
                    .send();
                posts.push(request);
            }
        }
        for answer in futures::future::join_all(posts).await {
            assert_eq!(answer.unwrap().status(), 200);
        }
        // Each instance shows all 20 conversations, each with its one message.
        for base in &instances {
            let list =
                binary::get_json(&http, format!("{base}/v1/conversations?limit=100"), &admin).await;
            let conversations = list["data"].as_array().unwrap();
            assert_eq!(conversations.len(), 20, "{list}");
            for c in conversations {
                let url = format!(
                    "{base}/v1/conversations/{}/messages",
                    c["id"].as_str().unwrap()
                );
                let messages = binary::get_json(&http, url, &admin).await;
                assert_eq!(messages["data"].as_array().unwrap().len(), 1, "{messages}");
            }
        }
        first.stop().await;
        second.stop().await;
    })
    .await;
}
