//! The operator console (issue 19) in a real browser: headless Chromium driving the real
//! `switchboard` binary, against fake Twilio and Graph servers, on SQLite and PostgreSQL.
//! The page contract these tests follow is the console's (selectors, statuses, live
//! updates); the first test checks the browser harness alone, on a plain page, so that a
//! harness failure is told from a console failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::response::Html;
use reqwest::Method;
use serde_json::{Value, json};
use switchboard_meta_cloud::testing::{self as meta, FakeGraph, WABA_ID, graph_template};
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};

use crate::support::api::{Reply, reply};
use crate::support::binary::{self, Server};
use crate::support::browser::{
    Browser, CHROMEDRIVER, CHROMIUM, PNG_SIGNATURE, Viewport, WAIT, missing_programs, with_browser,
};
use crate::support::providers::{
    META_DISPLAY, META_NUMBER, META_TOKEN, PNID, PUBLIC, TWILIO_NUMBER, TWILIO_PATH, set,
};
use crate::support::{Backend, TestDb, fresh_db, on_each_backend};

/// The people writing in (E.164).
const SHEENA: &str = "+16505551234";
const DAAN: &str = "+31612345678";
const AMELIA: &str = "+447700900461";
const OLU: &str = "+447700900123";
const OLU_WA: &str = "447700900123";
/// The operator's reply in the thread.
const REPLY: &str = "It left our warehouse this morning: you will have it tomorrow.";

/// A form and the page it posts to, served on loopback: what the harness smoke test drives.
async fn serve_plain_page() -> (String, tokio::task::JoinHandle<()>) {
    #[derive(serde::Deserialize)]
    struct Greeting {
        name: String,
    }
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                Html(
                    "<!doctype html><title>form</title>\
                     <meta name=viewport content=\"width=device-width\">\
                     <form id=greet method=post action=/greet>\
                     <input id=name name=name><button id=send>Send</button></form>\
                     <p id=later></p>\
                     <script>setTimeout(() => { document.getElementById('later').append(\
                     Object.assign(document.createElement('span'), {id: 'late', textContent: 'late'})\
                     ) }, 300)</script>",
                )
            }),
        )
        .route(
            "/greet",
            axum::routing::post(|axum::Form(form): axum::Form<Greeting>| async move {
                let name = form
                    .name
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                Html(format!(
                    "<!doctype html><title>greeted</title><p id=greeting>Hello, {name}!</p>"
                ))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, server)
}

/// The harness alone: open a page, wait for an element added later by script, fill a field,
/// submit, read the next page's text and status, run script, take a screenshot; a selector
/// that never appears fails with its name and the page's URL.
#[tokio::test]
async fn the_browser_harness_drives_chromium_through_a_plain_form() {
    let (base, server) = serve_plain_page().await;
    let shots = tempfile::tempdir().unwrap();
    with_browser(Viewport::Desktop, async |b| {
        b.goto(&format!("{base}/")).await;
        assert_eq!(b.text_of("#late").await, "late");
        b.fill("#name", "Ada <3").await;
        b.click("button#send").await;
        assert_eq!(b.text_of("p#greeting").await, "Hello, Ada <3!");
        assert_eq!(b.current_url().await, format!("{base}/greet"));
        assert_eq!(b.status().await, 200);
        assert_eq!(b.js("return 6 * 7;").await, serde_json::json!(42));
        assert_eq!(
            b.js("return window.innerWidth;").await,
            serde_json::json!(1280)
        );

        let missing = b
            .try_wait_for("#never-there", Duration::from_millis(300))
            .await
            .expect_err("a selector that is not on the page times out");
        assert!(missing.contains("`#never-there`"), "{missing}");
        assert!(missing.contains(&format!("{base}/greet")), "{missing}");
        assert!(missing.contains("Hello, Ada"), "{missing}");

        let shot = shots.path().join("greeting.png");
        b.screenshot(&shot).await;
        assert!(std::fs::read(&shot).unwrap().starts_with(PNG_SIGNATURE));
    })
    .await;
    with_browser(Viewport::Phone, async |b| {
        b.goto(&format!("{base}/")).await;
        assert_eq!(
            b.js("return window.innerWidth;").await,
            serde_json::json!(390)
        );
    })
    .await;
    server.abort();
}

/// Without Chromium or its driver the browser tests fail, saying what to install.
#[test]
fn a_missing_browser_names_the_packages_to_install() {
    assert_eq!(missing_programs(&[CHROMIUM, CHROMEDRIVER]), None);
    let message = missing_programs(&["/nonexistent/chromium", CHROMEDRIVER])
        .expect("a missing program is reported");
    assert!(
        message.starts_with("/nonexistent/chromium missing"),
        "{message}"
    );
    assert!(
        message.contains("apt-get install chromium chromium-driver"),
        "{message}"
    );
}

/// The Meta account's app secret (its webhooks' signing key).
const META_APP_SECRET: &str = "console-meta-app-secret";
/// The second tenant's Twilio number.
const OTHER_TWILIO_NUMBER: &str = "+14155550100";

/// `switchboard serve` on a fresh database with fake Twilio and Graph servers: the tenant
/// `acme` with a Twilio WhatsApp and a Meta account, and a second tenant, `globex`, with a
/// Twilio WhatsApp account of its own.
struct Console {
    server: Server,
    base: String,
    http: reqwest::Client,
    /// acme's admin key (from `switchboard tenant create`).
    admin: String,
    /// globex's admin key.
    other_admin: String,
    twilio: FakeTwilio,
    graph: FakeGraph,
    meta_account: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Console {
    async fn start(db: &TestDb) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = CredentialCipher::generate_key();
        let twilio = FakeTwilio::start().await;
        let graph = FakeGraph::start().await;
        graph.add_number(PNID, META_TOKEN);
        let key_env = [("SWITCHBOARD_ENCRYPTION_KEY", key.as_str())];
        let admin = binary::create_tenant_with(&db.url, dir.path(), "acme", &key_env).await;
        let other_admin = binary::create_tenant_with(&db.url, dir.path(), "globex", &key_env).await;
        let log = dir.path().join("switchboard.log");
        let (twilio_base, graph_base) = (twilio.base_url(), graph.base_url());
        let envs = [
            ("SWITCHBOARD_PUBLIC_URL", PUBLIC),
            ("SWITCHBOARD_ENCRYPTION_KEY", key.as_str()),
            ("SWITCHBOARD_TWILIO_API_BASE", twilio_base.as_str()),
            ("SWITCHBOARD_META_GRAPH_BASE", graph_base.as_str()),
        ];
        let server = Server::start_logging_to(&db.url, dir.path(), &envs, &log).await;
        let mut console = Self {
            base: server.base_url.clone(),
            server,
            http: reqwest::Client::new(),
            admin,
            other_admin,
            twilio,
            graph,
            meta_account: String::new(),
            log,
            _dir: dir,
        };
        let twilio_credentials =
            json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN});
        console
            .connect(
                &console.admin,
                "twilio-whatsapp",
                TWILIO_NUMBER,
                &twilio_credentials,
            )
            .await;
        console.meta_account = console
            .connect(
                &console.admin,
                "meta-whatsapp",
                META_NUMBER,
                &json!({"phone_number_id": PNID, "access_token": META_TOKEN,
                    "app_secret": META_APP_SECRET, "verify_token": "console-vt",
                    "waba_id": WABA_ID}),
            )
            .await;
        console
            .connect(
                &console.other_admin,
                "twilio-whatsapp",
                OTHER_TWILIO_NUMBER,
                &twilio_credentials,
            )
            .await;
        console
    }

    /// `POST /v1/accounts` as `key`: the account's id.
    async fn connect(
        &self,
        key: &str,
        channel: &str,
        address: &str,
        credentials: &Value,
    ) -> String {
        let body = json!({"channel": channel, "address": address, "credentials": credentials});
        let created = self
            .api(Method::POST, "/v1/accounts", key, Some(body))
            .await;
        let created = created.expect(201, None);
        created.body["id"].as_str().unwrap().to_owned()
    }

    async fn api(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.unwrap()).await
    }

    /// The console's URL of `path` (`/console/…`).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A WhatsApp text from `from` (named `name`) to `to` through Twilio, signed as Twilio
    /// signs it and posted to the binary.
    async fn twilio_inbound_to(&self, to: &str, from: &str, name: &str, text: &str) {
        let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
        let mut form = twilio::inbound_text_form(TEST_ACCOUNT_SID, from, to, text, &sid);
        set(&mut form, "ProfileName", name);
        let r = self.post_twilio(TWILIO_PATH, &form).await;
        assert_eq!(r.status, 200, "{}\n{}", r.text, self.log_tail());
    }

    /// [`Self::twilio_inbound_to`] acme's Twilio number.
    async fn twilio_inbound(&self, from: &str, name: &str, text: &str) {
        self.twilio_inbound_to(TWILIO_NUMBER, from, name, text)
            .await;
    }

    /// POSTs `form` to `path`, signed for the public URL as Twilio signs it.
    async fn post_twilio(&self, path: &str, form: &[(String, String)]) -> Reply {
        let signature = twilio::sign_form(TEST_AUTH_TOKEN, &format!("{PUBLIC}{path}"), form);
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(twilio::form_body(form))
            .send()
            .await
            .unwrap();
        reply(response).await
    }

    /// POSTs `body` to the Meta webhook, signed with the account's app secret.
    async fn meta_webhook(&self, body: &str) {
        let response = self
            .http
            .post(format!("{}/webhooks/meta-whatsapp", self.base))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                meta::sign(META_APP_SECRET, body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let r = reply(response).await;
        assert_eq!(r.status, 200, "{}\n{}", r.text, self.log_tail());
    }

    /// The conversation (API view) `key`'s tenant has with `phone`.
    async fn conversation_with(&self, key: &str, phone: &str) -> Value {
        let listed = self
            .api(Method::GET, "/v1/conversations?limit=100", key, None)
            .await
            .expect(200, None);
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["contact"]["phone"] == phone)
            .unwrap_or_else(|| panic!("no conversation with {phone}: {}", listed.text))
            .clone()
    }

    /// The id of [`Self::conversation_with`].
    async fn conversation_id(&self, key: &str, phone: &str) -> String {
        let conversation = self.conversation_with(key, phone).await;
        conversation["id"].as_str().unwrap().to_owned()
    }

    /// The server's log, its last 4,000 characters, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.char_indices().rev().nth(4000).map_or(0, |(i, _)| i);
        format!("server log (tail):\n{}", &log[start..])
    }

    async fn stop(self) {
        let status = self.server.stop().await;
        assert!(status.success(), "clean exit: {status:?}");
    }
}

/// Signs in with `key` through the sign-in form and lands on the inbox.
async fn sign_in(b: &Browser, c: &Console, key: &str) {
    b.goto(&c.url("/console/sign-in")).await;
    b.fill("form#sign-in input#api-key", key).await;
    b.click("form#sign-in button#sign-in-submit").await;
    b.wait_for("nav#nav").await;
    assert_eq!(b.current_url().await, c.url("/console/"));
}

/// Sets a marker on the page's `window`: gone if the page is reloaded or left.
async fn mark_page(b: &Browser) {
    b.js("window.__marker = 1; return null;").await;
}

async fn assert_page_not_reloaded(b: &Browser) {
    assert_eq!(
        b.js("return window.__marker ?? null;").await,
        json!(1),
        "the page was reloaded or left: {}",
        b.current_url().await
    );
}

/// Waits until the page's event stream is open (the console sets `data-stream=open`).
async fn wait_for_stream(b: &Browser) {
    b.wait_for("body[data-stream=open]").await;
}

/// A screenshot `name`.png in `dir`, checked to be a PNG; also written to
/// `docs/screenshots/` in the repository when `SWITCHBOARD_UPDATE_SCREENSHOTS=1`.
async fn keep_screenshot(b: &Browser, dir: &Path, name: &str) {
    let path = dir.join(format!("{name}.png"));
    b.screenshot(&path).await;
    let png = std::fs::read(&path).unwrap();
    assert!(
        png.starts_with(PNG_SIGNATURE),
        "{} is no PNG",
        path.display()
    );
    if std::env::var("SWITCHBOARD_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

/// The request FakeTwilio got for the send of `text`.
fn twilio_send_of(
    twilio: &FakeTwilio,
    text: &str,
) -> Option<switchboard_twilio::testing::RecordedRequest> {
    twilio
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/Messages.json") && r.form_value("Body") == Some(text))
}

/// Waits until the page shows message `id` with `status` (its `data-status`); a timeout says
/// which status the API has for it, to tell a page that was not updated from a message that
/// did not move.
async fn wait_for_status(b: &Browser, c: &Console, id: &str, status: &str) {
    let li = format!("li.message[data-id='{id}'][data-status={status}]");
    if let Err(message) = b.try_wait_for(&li, WAIT).await {
        let api = c
            .api(Method::GET, &format!("/v1/messages/{id}"), &c.admin, None)
            .await;
        panic!(
            "the page did not show {id} {status} (the API says {}):\n{message}",
            api.body["status"]
        );
    }
}

/// The ticks' `aria-label` of message `id`, lower-cased (the status, as the page says it).
async fn ticks_label(b: &Browser, id: &str) -> String {
    let ticks = format!("li.message[data-id='{id}'] .ticks");
    b.attr_of(&ticks, "aria-label")
        .await
        .unwrap_or_else(|| panic!("{ticks} has no aria-label"))
        .to_lowercase()
}

async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sign-in (a wrong key is refused with an alert and 401), the inbox with an earlier
/// conversation, a new conversation appearing live, a reply from the thread delivered by the
/// binary to Twilio, and its `delivered` status callback changing the tick live; screenshots
/// of the inbox and the thread.
#[tokio::test]
async fn an_operator_signs_in_sees_a_new_conversation_live_and_sees_a_reply_delivered() {
    on_each_backend(|db| async move {
        let c = Console::start(&db).await;
        let shots = tempfile::tempdir().unwrap();
        c.twilio_inbound(SHEENA, "Sheena Patel", "Hi! Where is my order #1042?")
            .await;
        c.twilio_inbound(
            DAAN,
            "Daan de Vries",
            "Can I still change the delivery address?",
        )
        .await;
        let sheena = c.conversation_id(&c.admin, SHEENA).await;

        with_browser(Viewport::Desktop, async |b| {
            // Without a session every page leads to the sign-in form.
            b.goto(&c.url("/console/")).await;
            assert_eq!(b.current_url().await, c.url("/console/sign-in"));
            b.fill("input#api-key", "sbk_not_a_real_key").await;
            b.click("button#sign-in-submit").await;
            b.wait_for("p.error[role=alert]").await;
            assert_eq!(b.status().await, 401);
            assert!(!b.exists("nav#nav").await, "a wrong key signed in");

            sign_in(b, &c, &c.admin).await;
            let row = format!("li.conversation[data-id='{sheena}']");
            assert!(
                b.text_of(&format!("{row} .contact-name"))
                    .await
                    .contains("Sheena Patel")
            );
            assert!(
                b.text_of(&format!("{row} .preview"))
                    .await
                    .contains("order #1042")
            );
            assert_eq!(b.count("ul#conversations li.conversation").await, 2);

            // A message from someone new: their conversation appears without a reload.
            wait_for_stream(b).await;
            mark_page(b).await;
            c.twilio_inbound(AMELIA, "Amelia Clarke", "Do you ship to Leeds?")
                .await;
            let amelia = c.conversation_id(&c.admin, AMELIA).await;
            let new_row = format!("li.conversation[data-id='{amelia}']");
            b.wait_for(&new_row).await;
            assert!(
                b.text_of(&format!("{new_row} .preview"))
                    .await
                    .contains("Leeds")
            );
            assert_eq!(b.text_of(&format!("{new_row} .unread")).await.trim(), "1");
            assert_eq!(b.count("ul#conversations li.conversation").await, 3);
            assert_page_not_reloaded(b).await;
            keep_screenshot(b, shots.path(), "inbox").await;

            // The thread; a reply through the form.
            b.click(&format!("{row} a")).await;
            b.wait_for("h1#contact-name").await;
            assert_eq!(
                b.current_url().await,
                c.url(&format!("/console/conversations/{sheena}"))
            );
            assert!(b.text_of("h1#contact-name").await.contains("Sheena Patel"));
            assert!(b.text_of("#window-state").await.contains("open"));
            let inbound = "ol#messages li.message[data-direction=inbound]";
            assert!(
                b.text_of(&format!("{inbound} .text"))
                    .await
                    .contains("order #1042")
            );
            b.fill("form#reply textarea#reply-text", REPLY).await;
            b.click("form#reply button#reply-send").await;
            let outbound = "ol#messages li.message[data-direction=outbound]";
            b.wait_for(outbound).await;
            assert_eq!(
                b.current_url().await,
                c.url(&format!("/console/conversations/{sheena}"))
            );
            assert_eq!(b.text_of(&format!("{outbound} .text")).await, REPLY);
            let message = b
                .attr_of(outbound, "data-id")
                .await
                .expect("the message's id");
            assert!(message.starts_with("msg_"), "{message}");

            // FakeTwilio accepts it (the binary's delivery worker sends it): the page shows
            // it accepted, then sent and delivered as Twilio's status callbacks come, all
            // without a reload.
            mark_page(b).await;
            let sent = eventually("the reply to reach FakeTwilio", || {
                twilio_send_of(&c.twilio, REPLY)
            })
            .await;
            let this = format!("li.message[data-id='{message}']");
            wait_for_status(b, &c, &message, "accepted").await;
            let callback = sent
                .form_value("StatusCallback")
                .expect("a status callback URL")
                .to_owned();
            let path = callback
                .strip_prefix(PUBLIC)
                .unwrap_or_else(|| panic!("{callback} is not under {PUBLIC}"));
            let sids = c.twilio.created_message_sids();
            assert_eq!(sids.len(), 1, "one send, the reply: {sids:?}");
            let sid = &sids[0];
            wait_for_stream(b).await;
            for status in ["sent", "delivered"] {
                let form =
                    twilio::status_form(TEST_ACCOUNT_SID, TWILIO_NUMBER, SHEENA, sid, status, None);
                let r = c.post_twilio(path, &form).await;
                assert_eq!(r.status, 200, "{}\n{}", r.text, c.log_tail());
                wait_for_status(b, &c, &message, status).await;
                assert_eq!(ticks_label(b, &message).await, status);
            }
            assert_eq!(b.count(&format!("{this} .ticks")).await, 1);
            // Like every chat: the person's messages on the left, ours on the right.
            let lefts = b
                .js(&format!(
                    "return [\"{inbound}\", \"{this}\"].map(s => \
                     document.querySelector(s).firstElementChild.getBoundingClientRect().left);"
                ))
                .await;
            assert!(
                lefts[1].as_f64() > lefts[0].as_f64(),
                "the reply's bubble is not to the right of the inbound one: lefts {lefts}"
            );
            assert_page_not_reloaded(b).await;
            keep_screenshot(b, shots.path(), "thread").await;
        })
        .await;
        c.stop().await;
    })
    .await;
}

/// Outside the service window (the person last wrote to the Meta number two days ago, by
/// Meta's timestamp) the thread has no reply form but the account's approved templates; one
/// is sent with its variable filled in, and Graph receives that template and parameter.
#[tokio::test]
async fn outside_the_window_a_thread_offers_the_approved_templates_and_sends_one() {
    on_each_backend(|db| async move {
        let c = Console::start(&db).await;
        c.graph.set_templates(
            WABA_ID,
            META_TOKEN,
            vec![
                graph_template(
                    "5001",
                    "order_shipped",
                    "en_US",
                    "APPROVED",
                    "Hi {{1}}, your order has shipped.",
                    &["Ana"],
                ),
                graph_template(
                    "5002",
                    "spring_sale",
                    "en_US",
                    "PENDING",
                    "Hi {{1}}, our spring sale starts today.",
                    &["Ana"],
                ),
            ],
        );
        let sync = format!("/v1/accounts/{}/templates/sync", c.meta_account);
        c.api(Method::POST, &sync, &c.admin, None)
            .await
            .expect(202, None);
        let listed = format!("/v1/templates?account_id={}", c.meta_account);
        let mut synced = 0;
        for _ in 0..200 {
            let r = c
                .api(Method::GET, &listed, &c.admin, None)
                .await
                .expect(200, None);
            synced = r.body["data"].as_array().unwrap().len();
            if synced == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(synced, 2, "the catalog was not synced\n{}", c.log_tail());

        // The person's last message, by Meta's clock, is two days old.
        let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2))
            .timestamp()
            .to_string();
        c.meta_webhook(&meta::envelope(&[(PNID, META_DISPLAY, "messages", json!({
            "contacts": [{"profile": {"name": "Olu Adeyemi"}, "wa_id": OLU_WA}],
            "messages": [{"from": OLU_WA, "id": "wamid.console.old.1", "timestamp": two_days_ago,
                "type": "text", "text": {"body": "Is my parcel on its way?"}}],
        }))])).await;
        let conversation = c.conversation_with(&c.admin, OLU).await;
        assert_eq!(conversation["service_window_open"], false, "{conversation}");
        let id = conversation["id"].as_str().unwrap().to_owned();

        with_browser(Viewport::Desktop, async |b| {
            sign_in(b, &c, &c.admin).await;
            b.goto(&c.url(&format!("/console/conversations/{id}")))
                .await;
            assert!(b.text_of("h1#contact-name").await.contains("Olu Adeyemi"));
            assert!(b.text_of("#window-state").await.contains("closed"));
            assert!(
                b.text_of("ol#messages li.message[data-direction=inbound] .text")
                    .await
                    .contains("parcel")
            );
            b.wait_for("section#templates").await;
            assert!(
                !b.exists("form#reply").await,
                "a reply form outside the window"
            );
            let form = "section#templates form.template[data-template=order_shipped]";
            b.wait_for(form).await;
            assert!(
                !b.exists("form.template[data-template=spring_sale]").await,
                "a template not approved is offered"
            );
            assert_eq!(b.count(&format!("{form} input[name^='var.']")).await, 1);
            let variable = format!("{form} input[name='var.1']");
            let labelled = b
                .js(&format!(
                    "return document.querySelector(\"{variable}\").labels.length;"
                ))
                .await;
            assert_eq!(labelled, json!(1), "the variable's input has a label");
            b.fill(&variable, "Olu").await;
            b.click(&format!("{form} button.template-send")).await;

            let sent = eventually("a template send at Graph", || {
                c.graph
                    .sent_messages()
                    .into_iter()
                    .find(|m| m["type"] == "template")
            })
            .await;
            assert_eq!(sent["template"]["name"], "order_shipped", "{sent}");
            assert_eq!(sent["template"]["language"]["code"], "en_US", "{sent}");
            assert!(sent["to"].as_str().unwrap().ends_with(OLU_WA), "{sent}");
            let body = sent["template"]["components"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "body"))
                .unwrap_or_else(|| panic!("no body component: {sent}"));
            assert_eq!(
                body["parameters"],
                json!([{"type": "text", "text": "Olu"}]),
                "{sent}"
            );
            // Back on the thread, which shows the template message sent.
            b.wait_for("ol#messages li.message[data-direction=outbound]")
                .await;
            assert_eq!(
                b.current_url().await,
                c.url(&format!("/console/conversations/{id}"))
            );
        })
        .await;
        c.stop().await;
    })
    .await;
}

/// An admin sees the accounts page, another tenant's conversation (and an unknown id) is
/// the 404 page, signing out ends the session; an agent's key signs in to the inbox but is
/// not allowed the accounts page and has no link to it.
#[tokio::test]
async fn an_agent_is_not_allowed_the_accounts_and_another_tenants_thread_is_not_found() {
    on_each_backend(|db| async move {
        let c = Console::start(&db).await;
        c.twilio_inbound(SHEENA, "Sheena Patel", "Hi! Where is my order #1042?")
            .await;
        c.twilio_inbound_to(
            OTHER_TWILIO_NUMBER,
            DAAN,
            "Daan de Vries",
            "Globex only: my invoice",
        )
        .await;
        let theirs = c.conversation_id(&c.other_admin, DAAN).await;
        let created = c
            .api(
                Method::POST,
                "/v1/keys",
                &c.admin,
                Some(json!({"role": "agent", "name": "support desk"})),
            )
            .await
            .expect(201, None);
        let agent = created.body["key"].as_str().unwrap().to_owned();

        with_browser(Viewport::Desktop, async |b| {
            sign_in(b, &c, &c.admin).await;
            assert!(
                b.exists("nav#nav a#nav-accounts").await,
                "an admin has the accounts link"
            );
            b.click("a#nav-accounts").await;
            b.wait_for("table#accounts").await;
            assert_eq!(b.status().await, 200);
            assert_eq!(
                b.count("table#accounts tr.account").await,
                2,
                "acme's two accounts, not globex's"
            );

            for id in [theirs.as_str(), "cnv_0193a6f2c1d07c3e9b5f1d2a3b4c5d6e"] {
                b.goto(&c.url(&format!("/console/conversations/{id}")))
                    .await;
                assert!(b.text_of("h1").await.contains("Not found"), "{id}");
                assert_eq!(b.status().await, 404, "{id}");
                assert!(
                    !b.html_snippet().await.contains("invoice"),
                    "globex's message shown"
                );
            }

            b.click("form#sign-out button#sign-out-submit").await;
            b.wait_for("form#sign-in").await;
            b.goto(&c.url("/console/")).await;
            assert_eq!(
                b.current_url().await,
                c.url("/console/sign-in"),
                "signed out"
            );

            sign_in(b, &c, &agent).await;
            b.wait_for("ul#conversations li.conversation").await;
            assert!(b.exists("nav#nav a#nav-inbox").await);
            assert!(
                !b.exists("a#nav-accounts").await,
                "an agent has no accounts link"
            );
            b.goto(&c.url("/console/accounts")).await;
            assert!(b.text_of("h1").await.contains("Not allowed"));
            assert_eq!(b.status().await, 403);
            assert!(!b.exists("table#accounts").await);
        })
        .await;
        c.stop().await;
    })
    .await;
}

/// The inbox on a phone: it fits the screen's width (no sideways scrolling); a screenshot.
#[tokio::test]
async fn the_inbox_fits_a_phone_screen() {
    on_each_backend(|db| async move {
        let c = Console::start(&db).await;
        c.twilio_inbound(SHEENA, "Sheena Patel", "Hi! Where is my order #1042?")
            .await;
        c.twilio_inbound(
            DAAN,
            "Daan de Vries",
            "Can I still change the delivery address?",
        )
        .await;
        c.twilio_inbound(
            AMELIA,
            "Amelia Clarke",
            "Do you ship to Leeds? We are a small café and would like to order forty mugs",
        )
        .await;
        let shots = tempfile::tempdir().unwrap();
        with_browser(Viewport::Phone, async |b| {
            sign_in(b, &c, &c.admin).await;
            b.wait_for("ul#conversations li.conversation").await;
            assert_eq!(b.count("ul#conversations li.conversation").await, 3);
            let widths = b
                .js("return [document.documentElement.scrollWidth, window.innerWidth];")
                .await;
            assert!(
                widths[0].as_u64() <= widths[1].as_u64() && widths[1] == 390,
                "page wider than the phone: {widths}"
            );
            keep_screenshot(b, shots.path(), "inbox-phone").await;
        })
        .await;
        c.stop().await;
    })
    .await;
}

/// Records, in every page, when the first row of the inbox is in the document
/// (`window.__firstRowAt`, ms since the navigation started).
const FIRST_ROW_PROBE: &str = "(() => {
  const seen = () => document.querySelector('ul#conversations li');
  const observer = new MutationObserver(() => {
    if (seen()) { window.__firstRowAt = performance.now(); observer.disconnect(); }
  });
  observer.observe(document, {childList: true, subtree: true});
})();";

/// What one load of the inbox cost, from the page's Navigation and Resource Timing.
const LOAD_FIGURES: &str = "const nav = performance.getEntriesByType('navigation')[0];
return {
  transferSize: nav.transferSize,
  encodedBodySize: nav.encodedBodySize,
  decodedBodySize: nav.decodedBodySize,
  responseEnd: nav.responseEnd,
  domContentLoadedEventEnd: nav.domContentLoadedEventEnd,
  firstRowAt: window.__firstRowAt ?? null,
  rows: document.querySelectorAll('ul#conversations li').length,
  resources: performance.getEntriesByType('resource').map(r => ({
    name: r.name, transferSize: r.transferSize, encodedBodySize: r.encodedBodySize,
  })),
};";

/// `n` rounded, with thousands separators (BENCHMARKS.md's style).
fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The first load of the inbox of 1,000 conversations (from signed webhooks), five times,
/// each with an empty HTTP cache. It checks what does not depend on the machine: one page
/// of 50 rows with a link to older ones, gzipped, and nothing fetched but the console's
/// own stylesheet and script. It prints each load's sizes and times, their medians and a
/// row for BENCHMARKS.md (`-- --nocapture`; `--release` for release figures); timings are
/// printed, never asserted (the machines are shared).
#[tokio::test]
async fn console_first_load_with_1000_conversations() {
    use futures::StreamExt;

    let db = fresh_db(Backend::Sqlite).await;
    let c = Console::start(&db).await;
    let started = Instant::now();
    // 1,000 people (+44 7700 900000 to 900999), sixteen webhooks in flight at a time.
    futures::stream::iter(0..1000)
        .map(|i| {
            let c = &c;
            async move {
                let from = format!("+447700900{i:03}");
                let name = format!("Customer {i:03}");
                c.twilio_inbound(
                    &from,
                    &name,
                    &format!("Question number {i}: when does my order arrive?"),
                )
                .await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!(
        "seeded 1,000 conversations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let counted = c
        .api(Method::GET, "/v1/conversations?limit=100", &c.admin, None)
        .await
        .expect(200, None);
    assert_eq!(
        counted.body["data"].as_array().unwrap().len(),
        100,
        "{}",
        counted.text
    );

    let loads = with_browser(Viewport::Desktop, async |b| {
        sign_in(b, &c, &c.admin).await;
        b.on_every_new_page(FIRST_ROW_PROBE).await;
        let mut loads = Vec::new();
        for n in 1..=5 {
            b.goto("about:blank").await;
            b.clear_cache().await;
            b.goto(&c.url("/console/")).await;
            b.wait_for("ul#conversations li").await;
            let figures = b.js(LOAD_FIGURES).await;
            assert!(figures["firstRowAt"].is_number(), "the probe saw no row: {figures}");
            assert_eq!(figures["rows"], 50, "one page of the 1,000: {figures}");
            assert!(b.exists("a#older").await, "a link to the older conversations");
            let (encoded, decoded) = (
                figures["encodedBodySize"].as_f64().unwrap(),
                figures["decodedBodySize"].as_f64().unwrap(),
            );
            assert!(encoded < decoded / 4.0, "the page is gzipped: {figures}");
            let fetched: Vec<&str> = figures["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["name"].as_str())
                .collect();
            assert_eq!(fetched.len(), 2, "the stylesheet and the script only: {fetched:?}");
            assert!(
                fetched.iter().all(|url| url.starts_with(&format!("{}/console/assets/", c.base))),
                "nothing from elsewhere: {fetched:?}"
            );
            let resources: Vec<String> = figures["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| format!("{} {} B", r["name"].as_str().unwrap_or("?").trim_start_matches(&c.base), r["transferSize"]))
                .collect();
            println!(
                "load {n}: HTML {} B transferred ({} B encoded body, {} B decoded), {} rows; \
                 responseEnd {:.1} ms, DOMContentLoaded {:.1} ms, first row {:.1} ms; resources: {}",
                figures["transferSize"], figures["encodedBodySize"], figures["decodedBodySize"], figures["rows"],
                figures["responseEnd"].as_f64().unwrap_or(f64::NAN),
                figures["domContentLoadedEventEnd"].as_f64().unwrap_or(f64::NAN),
                figures["firstRowAt"].as_f64().unwrap_or(f64::NAN),
                resources.join(", ")
            );
            loads.push(figures);
        }
        loads
    })
    .await;

    let column = |f: &dyn Fn(&Value) -> f64| median(&mut loads.iter().map(f).collect::<Vec<_>>());
    let html_transfer = column(&|l| l["transferSize"].as_f64().unwrap());
    let html_body = column(&|l| l["encodedBodySize"].as_f64().unwrap());
    let resources = column(&|l| {
        l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["transferSize"].as_f64().unwrap_or(0.0))
            .sum()
    });
    let response_end = column(&|l| l["responseEnd"].as_f64().unwrap());
    let dcl = column(&|l| l["domContentLoadedEventEnd"].as_f64().unwrap());
    let first_row = column(&|l| l["firstRowAt"].as_f64().unwrap());
    let rows = loads[0]["rows"].as_u64().unwrap();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "medians of 5: HTML {html_transfer:.0} B transferred ({html_body:.0} B body), resources {resources:.0} B, \
         responseEnd {response_end:.1} ms, DOMContentLoaded {dcl:.1} ms, first row {first_row:.1} ms"
    );
    println!(
        "| | rows shown | HTML transferred (body) | CSS + JS transferred | responseEnd | DOMContentLoaded | first row |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| console `/console/`, 1,000 conversations, SQLite, {profile} build, empty cache (median of 5) \
         | {rows} | {} B ({} B) | {} B | {response_end:.0} ms | {dcl:.0} ms | {first_row:.0} ms |",
        grouped(html_transfer),
        grouped(html_body),
        grouped(resources)
    );
    c.stop().await;
    db.cleanup().await;
}
