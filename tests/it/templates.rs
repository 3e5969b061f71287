//! The template catalog through HTTP (api.md "Templates"): each account's templates synced
//! from the real Meta and Twilio adapters on their fakes (every page; templates removed at
//! the provider removed here), a Meta template webhook changing a row at once, each
//! send-time refusal, the warning of a send from a never-synced account, and one tenant
//! never seeing another's catalog. On SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_meta_cloud::MetaCloud;
use switchboard_meta_cloud::testing::FakeGraph;
use switchboard_meta_cloud::testing::{self as meta, WABA_ID, graph_template};
use switchboard_router::Router;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_twilio::testing::{
    FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_TEMPLATE_SID,
};
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp};

use crate::support::api::Reply;
use crate::support::http_site::{HttpSite, serve_acme};
use crate::support::providers::{
    APP_SECRET, META_NUMBER, META_TOKEN, PERSON, PNID, PUBLIC, TWILIO_NUMBER, fakes,
    post_meta_webhook,
};
use crate::support::{TestDb, on_each_backend};

struct Site {
    http: HttpSite,
    graph: FakeGraph,
    twilio: FakeTwilio,
    meta_account: String,
    twilio_account: String,
}

impl std::ops::Deref for Site {
    type Target = HttpSite;
    fn deref(&self) -> &HttpSite {
        &self.http
    }
}

/// The HTTP app over both real adapters on their fakes; one tenant with an admin key and a
/// Meta account (`waba_id` given when `waba_id`) and a Twilio WhatsApp account.
async fn site(db: &TestDb, waba_id: Option<&str>) -> Site {
    let (twilio, graph) = fakes().await;
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let router = Router::builder(db.store().await, cipher)
        .adapter(Arc::new(TwilioWhatsApp::new(TwilioConfig {
            public_url: PUBLIC.into(),
            ..twilio.config()
        })))
        .adapter(Arc::new(MetaCloud::new(graph.config())))
        .build();
    let http = serve_acme(router).await;
    let mut meta_credentials = json!({"phone_number_id": PNID, "access_token": META_TOKEN,
        "app_secret": APP_SECRET, "verify_token": "vt"});
    if let Some(waba) = waba_id {
        meta_credentials["waba_id"] = json!(waba);
    }
    let meta_account = http
        .connect("meta-whatsapp", META_NUMBER, &meta_credentials)
        .await;
    let twilio_account = http
        .connect(
            "twilio-whatsapp",
            TWILIO_NUMBER,
            &json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}),
        )
        .await;
    Site {
        http,
        graph,
        twilio,
        meta_account,
        twilio_account,
    }
}

impl Site {
    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
        self.http.call_as(method, path, Some(key), body).await
    }

    async fn templates(&self, query: &str) -> Vec<Value> {
        let listed = self
            .call(
                Method::GET,
                &format!("/v1/templates{query}"),
                &self.admin,
                None,
            )
            .await
            .expect(200, None);
        listed.body["data"].as_array().unwrap().clone()
    }

    /// `POST /v1/accounts/{id}/templates/sync` (202), then waits until the account's
    /// catalog holds `expected` templates.
    async fn sync_until(&self, account_id: &str, expected: usize) {
        self.call(
            Method::POST,
            &format!("/v1/accounts/{account_id}/templates/sync"),
            &self.admin,
            None,
        )
        .await
        .expect(202, None);
        let query = format!("?account_id={account_id}");
        for _ in 0..100 {
            if self.templates(&query).await.len() == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the catalog never held {expected} templates: {:?}",
            self.templates(&query).await.len()
        );
    }

    async fn send(&self, template: Value, channel: &str) -> Reply {
        self.call(
            Method::POST,
            "/v1/messages",
            &self.admin,
            Some(json!({"to": PERSON, "channel": channel, "template": template})),
        )
        .await
    }

    async fn meta_webhook(&self, body: &str) {
        let r = post_meta_webhook(self, body, Some(APP_SECRET)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

fn many(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            graph_template(
                &format!("{}", 5000 + i),
                &format!("t_{i:03}"),
                "en_US",
                "APPROVED",
                "Hi {{1}}",
                &["Ana"],
            )
        })
        .collect()
}

#[tokio::test]
async fn a_meta_catalog_syncs_every_page_and_drops_what_meta_removed() {
    on_each_backend(|db| async move {
        let s = site(&db, Some(WABA_ID)).await;
        s.graph.set_templates(WABA_ID, META_TOKEN, many(230));
        s.sync_until(&s.meta_account, 230).await;
        let pages = s
            .graph
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/message_templates"))
            .count();
        assert_eq!(pages, 3, "100 + 100 + 30 a page: {:?}", s.graph.requests());
        let one = s.templates("?name=t_007").await;
        assert_eq!(one.len(), 1);
        assert_eq!(one[0]["channel"], "meta-whatsapp");
        assert_eq!(one[0]["account_id"], s.meta_account.as_str());
        assert_eq!(one[0]["status"], "approved");
        assert_eq!(one[0]["language"], "en_US");
        assert_eq!(one[0]["category"], "utility");
        assert_eq!(one[0]["variables"], json!([{"key": "1", "example": "Ana"}]));
        assert_eq!(one[0]["components"][0]["type"], "BODY");
        let id = one[0]["id"].clone();

        // Meta deletes all but ten and rejects one: the catalog follows, rows keep their ids.
        let mut kept = many(10);
        kept[7]["status"] = json!("REJECTED");
        kept[7]["rejected_reason"] = json!("PROMOTIONAL");
        s.graph.set_templates(WABA_ID, META_TOKEN, kept);
        s.sync_until(&s.meta_account, 10).await;
        let again = s.templates("?name=t_007").await;
        assert_eq!(again[0]["id"], id);
        assert_eq!(again[0]["status"], "rejected");
        assert_eq!(again[0]["rejection_reason"], "PROMOTIONAL");
        assert_eq!(s.templates("?status=rejected").await.len(), 1);
        assert_eq!(s.templates("?status=APPROVED").await.len(), 9);
        assert!(s.templates("?name=t_100").await.is_empty());
        // Unknown filters are refused, not ignored.
        s.call(Method::GET, "/v1/templates?colour=red", &s.admin, None)
            .await
            .expect(400, Some("invalid_query"));
    })
    .await;
}

#[tokio::test]
async fn a_template_webhook_changes_the_row_at_once_and_teaches_the_waba_id() {
    on_each_backend(|db| async move {
        // No waba_id credential: the sync cannot know where to look yet.
        let s = site(&db, None).await;
        s.graph.set_templates(WABA_ID, META_TOKEN, many(3));
        let tenant = s.tenant.clone();
        let unknown = s
            .router
            .templates()
            .sync(&tenant, &s.meta_account)
            .await
            .unwrap_err();
        assert!(unknown.to_string().contains("waba_id"), "{unknown}");

        // Meta's webhook names the WABA (`entry[].id`): the next sync finds it.
        s.meta_webhook(&meta::template_status_update(
            5001, "t_001", "en-US", "PENDING", "NONE",
        ))
        .await;
        let report = s
            .router
            .templates()
            .sync(&tenant, &s.meta_account)
            .await
            .unwrap();
        assert_eq!(report.listed, 3);
        assert_eq!(s.templates("?name=t_001").await[0]["status"], "approved");

        // A rejection shows at once, with Meta's reason, before any sync.
        let before = s.graph.requests().len();
        s.meta_webhook(&meta::template_status_update(
            5001,
            "t_001",
            "en-US",
            "REJECTED",
            "INVALID_FORMAT",
        ))
        .await;
        let row = &s.templates("?name=t_001").await[0];
        assert_eq!(row["status"], "rejected");
        assert_eq!(row["rejection_reason"], "INVALID_FORMAT");
        assert_eq!(
            s.graph.requests().len(),
            before,
            "the change came from the webhook"
        );
        // A template the catalog does not have changes nothing.
        s.meta_webhook(&meta::template_status_update(
            999, "nope", "en-US", "APPROVED", "NONE",
        ))
        .await;
        assert_eq!(
            s.templates("").await.len(),
            3,
            "Twilio's account was never synced"
        );
    })
    .await;
}

#[tokio::test]
async fn a_template_send_is_checked_against_the_synced_catalog() {
    on_each_backend(|db| async move {
        let s = site(&db, Some(WABA_ID)).await;
        let mut catalog = many(2);
        catalog.push(graph_template("6001", "order_pending", "en_US", "PENDING", "Order {{1}}", &["A1"]));
        catalog.push(json!({"id": "6002", "name": "with_image", "language": "en_US", "status": "APPROVED",
            "category": "MARKETING", "components": [
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://x"]}},
                {"type": "BODY", "text": "Hello {{first_name}}",
                 "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}]}));
        s.graph.set_templates(WABA_ID, META_TOKEN, catalog);
        s.sync_until(&s.meta_account, 4).await;
        let sends = s.graph.sent_messages().len();
        let refusals = [
            (json!({"name": "missing", "language": "en_US"}), "template_not_found"),
            (json!({"name": "t_000", "language": "pt_BR", "variables": {"1": "x"}}), "template_not_found"),
            (json!({"name": "order_pending", "language": "en_US", "variables": {"1": "x"}}), "template_not_approved"),
            (json!({"name": "t_000", "language": "en_US"}), "template_variables_mismatch"),
            (json!({"name": "t_000", "language": "en_US", "variables": {"1": "a", "2": "b"}}), "template_variables_mismatch"),
            (json!({"name": "with_image", "language": "en_US", "variables": {"first_name": "Ana"}}), "template_variables_mismatch"),
            (json!({"name": "with_image", "language": "en_US", "variables": {"1": "Ana"},
                "header": {"type": "image", "url": "https://example.com/a.jpg"}}), "template_variables_mismatch"),
        ];
        for (template, code) in refusals {
            let r = s.send(template.clone(), "meta-whatsapp").await;
            assert_eq!(r.status, 422, "{template}: {}", r.text);
            assert_eq!(r.code(), Some(code), "{template}: {}", r.text);
        }
        for template in [
            json!({"name": "t_000", "language": "en-US", "variables": {"1": "Ana"}}),
            json!({"name": "with_image", "language": "en_US", "variables": {"first_name": "Ana"},
                "header": {"type": "image", "url": "https://example.com/a.jpg"}}),
        ] {
            let r = s.send(template.clone(), "meta-whatsapp").await.expect(202, None);
            let id = r.body["id"].as_str().unwrap().to_owned();
            let view = s.call(Method::GET, &format!("/v1/messages/{id}"), &s.admin, None).await.expect(200, None);
            assert!(
                view.body["status_history"].as_array().unwrap().iter().all(|h| h["error_code"] != "template_not_checked"),
                "{}", view.text
            );
        }
        while s.router.delivery().deliver_due().await.unwrap() > 0 {}
        assert_eq!(s.graph.sent_messages().len(), sends + 2, "only the two that fit went out");
    })
    .await;
}

#[tokio::test]
async fn a_never_synced_account_sends_unchecked_and_says_so() {
    on_each_backend(|db| async move {
        let s = site(&db, Some(WABA_ID)).await;
        let r = s
            .send(
                json!({"name": TEST_TEMPLATE_SID, "language": "en", "variables": {"1": "12/1"}}),
                "twilio-whatsapp",
            )
            .await
            .expect(202, None);
        let id = r.body["id"].as_str().unwrap();
        let view = s
            .call(Method::GET, &format!("/v1/messages/{id}"), &s.admin, None)
            .await
            .expect(200, None);
        let history = view.body["status_history"].as_array().unwrap();
        assert_eq!(history.len(), 1, "{}", view.text);
        assert_eq!(history[0]["status"], "queued");
        assert_eq!(history[0]["error_code"], "template_not_checked");
        assert!(
            history[0]["error_message"]
                .as_str()
                .unwrap()
                .contains("never synced")
        );
    })
    .await;
}

#[tokio::test]
async fn a_twilio_catalog_shows_each_approval_and_refuses_unapproved_content() {
    on_each_backend(|db| async move {
        let s = site(&db, Some(WABA_ID)).await;
        let draft = s.twilio.add_content(
            TEST_ACCOUNT_SID,
            &json!({"friendly_name": "draft", "language": "en", "variables": {"1": "Ana"},
                "types": {"twilio/text": {"body": "Hi {{1}}"}}}),
        );
        s.sync_until(&s.twilio_account, 2).await;
        let seeded = s.templates(&format!("?name={TEST_TEMPLATE_SID}")).await;
        assert_eq!(seeded[0]["status"], "approved");
        assert_eq!(seeded[0]["provider_id"], TEST_TEMPLATE_SID);
        assert_eq!(
            seeded[0]["variables"],
            json!([{"key": "1", "example": "12/1"}, {"key": "2", "example": "3pm"}])
        );
        assert_eq!(
            s.templates(&format!("?name={draft}")).await[0]["status"],
            "unsubmitted"
        );
        s.send(
            json!({"name": draft, "variables": {"1": "x"}}),
            "twilio-whatsapp",
        )
        .await
        .expect(422, Some("template_not_approved"));
        s.send(
            json!({"name": TEST_TEMPLATE_SID, "variables": {"1": "x"}}),
            "twilio-whatsapp",
        )
        .await
        .expect(422, Some("template_variables_mismatch"));
        s.send(
            json!({"name": TEST_TEMPLATE_SID, "variables": {"1": "x", "2": "y"}}),
            "twilio-whatsapp",
        )
        .await
        .expect(202, None);
        // Twilio deletes the draft: the next sync drops it.
        assert!(s.twilio.remove_content(&draft));
        s.sync_until(&s.twilio_account, 1).await;
    })
    .await;
}

#[tokio::test]
async fn another_tenant_sees_no_template_and_cannot_sync() {
    on_each_backend(|db| async move {
        let s = site(&db, Some(WABA_ID)).await;
        s.graph.set_templates(WABA_ID, META_TOKEN, many(2));
        s.sync_until(&s.meta_account, 2).await;
        let other = s.router.tenants().create("other").await.unwrap().key;
        let seen = s
            .call(Method::GET, "/v1/templates", &other, None)
            .await
            .expect(200, None);
        assert_eq!(seen.body["data"], json!([]));
        let theirs = format!("/v1/templates?account_id={}", s.meta_account);
        let seen = s
            .call(Method::GET, &theirs, &other, None)
            .await
            .expect(200, None);
        assert_eq!(seen.body["data"], json!([]));
        s.call(
            Method::POST,
            &format!("/v1/accounts/{}/templates/sync", s.meta_account),
            &other,
            None,
        )
        .await
        .expect(404, Some("not_found"));
        let agent = s
            .call(
                Method::POST,
                "/v1/keys",
                &s.admin,
                Some(json!({"role": "agent"})),
            )
            .await
            .expect(201, None)
            .body["key"]
            .as_str()
            .unwrap()
            .to_owned();
        s.call(
            Method::POST,
            &format!("/v1/accounts/{}/templates/sync", s.meta_account),
            &agent,
            None,
        )
        .await
        .expect(403, Some("forbidden"));
        assert_eq!(
            s.call(Method::GET, "/v1/templates", &agent, None)
                .await
                .expect(200, None)
                .body["data"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "an agent reads the catalog"
        );
    })
    .await;
}

#[tokio::test]
async fn a_submitted_template_is_tracked_to_approved_and_then_sends() {
    on_each_backend(|db| async move {
        let s = site(&db, Some(WABA_ID)).await;
        s.graph.set_templates(WABA_ID, META_TOKEN, vec![]);
        let synced = s.router.templates().sync(&s.tenant, &s.meta_account).await.unwrap();
        assert_eq!(synced.listed, 0);
        let submitted = s
            .call(
                Method::POST,
                "/v1/templates",
                &s.admin,
                Some(json!({"account_id": s.meta_account, "name": "order_update",
                    "language": "en_US", "category": "utility",
                    "body": "Hi {{1}}, your order {{2}} has shipped", "footer": "Lucky Shrub",
                    "buttons": [{"type": "url", "text": "Track", "url": "https://shop.example.com/t"}],
                    "examples": {"1": "Ana", "2": "#1042"}})),
            )
            .await
            .expect(201, None);
        assert_eq!(submitted.body["status"], "pending", "{}", submitted.text);
        assert_eq!(submitted.body["account_id"], s.meta_account.as_str());
        let template_id = submitted.body["provider_id"].as_str().unwrap().parse::<u64>().unwrap();
        let send = json!({"name": "order_update", "language": "en_US",
            "variables": {"1": "Ana", "2": "#7"}});
        // Pending: not sendable yet.
        s.send(send.clone(), "meta-whatsapp")
            .await
            .expect(422, Some("template_not_approved"));
        // Meta approves it by webhook: it sends at once, outside any window.
        s.meta_webhook(&meta::template_status_update(
            template_id,
            "order_update",
            "en_US",
            "APPROVED",
            "NONE",
        ))
        .await;
        assert_eq!(s.templates("?name=order_update").await[0]["status"], "approved");
        s.send(send, "meta-whatsapp").await.expect(202, None);

        // On Twilio: content plus an approval request; approved at Twilio, the sync sees it.
        let twilio = s
            .call(
                Method::POST,
                "/v1/templates",
                &s.admin,
                Some(json!({"account_id": s.twilio_account, "name": "order_followup",
                    "language": "en", "category": "UTILITY", "body": "Did order {{1}} arrive?",
                    "examples": {"1": "#1042"}})),
            )
            .await
            .expect(201, None);
        assert_eq!(twilio.body["status"], "received", "{}", twilio.text);
        let sid = twilio.body["name"].as_str().unwrap().to_owned();
        assert!(sid.starts_with("HX"), "{sid}");
        assert!(s.twilio.set_approval(&sid, "approved", ""));
        s.sync_until(&s.twilio_account, 2).await;
        assert_eq!(s.templates(&format!("?name={sid}")).await[0]["status"], "approved");
    })
    .await;
}

#[tokio::test]
async fn a_bad_submission_is_refused_before_the_provider_sees_it() {
    on_each_backend(|db| async move {
        let s = site(&db, Some(WABA_ID)).await;
        s.graph.set_templates(WABA_ID, META_TOKEN, vec![]);
        let base = json!({"account_id": s.meta_account, "name": "ok_name", "language": "en_US",
            "category": "utility", "body": "Hi {{1}}", "examples": {"1": "Ana"}});
        let with = |key: &str, value: Value| {
            let mut b = base.clone();
            b[key] = value;
            b
        };
        for (body, status, code) in [
            (with("name", json!("Bad Name")), 400, "invalid_template"),
            (
                with("category", json!("transactional")),
                400,
                "invalid_template",
            ),
            (
                with("body", json!("Hi {{1}} {{3}}")),
                400,
                "invalid_template",
            ),
            (with("examples", json!({})), 400, "invalid_template"),
            (with("colour", json!("red")), 400, "invalid_template"),
            (with("account_id", json!(7)), 400, "invalid_template"),
            (with("account_id", json!("acc_nope")), 404, "not_found"),
        ] {
            s.call(Method::POST, "/v1/templates", &s.admin, Some(body))
                .await
                .expect(status, Some(code));
        }
        assert!(
            s.graph.requests().iter().all(|r| r.method != "POST"),
            "nothing reached Meta"
        );
        let other = s.router.tenants().create("other").await.unwrap().key;
        s.call(Method::POST, "/v1/templates", &other, Some(base.clone()))
            .await
            .expect(404, Some("not_found"));
        // Meta refuses a duplicate: 422, not a 5xx.
        s.call(Method::POST, "/v1/templates", &s.admin, Some(base.clone()))
            .await
            .expect(201, None);
        s.call(Method::POST, "/v1/templates", &s.admin, Some(base))
            .await
            .expect(422, Some("template_refused"));
    })
    .await;
}

#[tokio::test]
async fn the_template_worker_syncs_a_new_account_and_after_a_template_webhook() {
    on_each_backend(|db| async move {
        let (twilio, graph) = fakes().await;
        graph.set_templates(WABA_ID, META_TOKEN, many(2));
        let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        let router = Router::builder(db.store().await, cipher)
            .adapter(Arc::new(TwilioWhatsApp::new(TwilioConfig {
                public_url: PUBLIC.into(),
                ..twilio.config()
            })))
            .adapter(Arc::new(MetaCloud::new(graph.config())))
            .build();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let workers = tokio::spawn({
            let router = router.clone();
            async move { router.run_workers(shutdown).await }
        });
        let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
        let account = router
            .accounts()
            .connect(
                &tenant,
                "meta-whatsapp",
                META_NUMBER,
                &json!({"phone_number_id": PNID, "access_token": META_TOKEN,
                    "app_secret": APP_SECRET, "verify_token": "vt", "waba_id": WABA_ID}),
                None,
            )
            .await
            .unwrap();
        // What the HTTP connect does: queue the new account for the worker.
        router.templates().queue_sync(&tenant, &account.id);
        let count = |router: Router, tenant: String| async move {
            router
                .templates()
                .list(&tenant, &Default::default())
                .await
                .unwrap()
                .len()
        };
        let mut seen = 0;
        for _ in 0..100 {
            seen = count(router.clone(), tenant.clone()).await;
            if seen == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, 2, "the worker synced the queued account");

        // A components update names no status: only the sync it triggers brings the
        // template Meta added meanwhile.
        graph.set_templates(WABA_ID, META_TOKEN, many(3));
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "time": 1_751_250_000,
            "changes": [{"field": "message_template_components_update", "value": {
                "message_template_id": 5000, "message_template_name": "t_000",
                "message_template_language": "en_US", "message_template_element": "Hi {{1}}!"}}]}]})
        .to_string();
        router
            .receive_webhook("meta-whatsapp", meta::webhook_request(&body, Some(APP_SECRET)))
            .await
            .unwrap();
        for _ in 0..100 {
            seen = count(router.clone(), tenant.clone()).await;
            if seen == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, 3, "the webhook's sync brought the new template");
        stop.send(true).unwrap();
        workers.await.unwrap();
    })
    .await;
}
