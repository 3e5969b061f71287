//! The operator console over HTTP, without a browser (the browser tests are in
//! `console_browser.rs`): sessions and their cookie, CSRF on every state change, agents kept
//! off the accounts page, the inbox's order, unread counts and search, one tenant never
//! seeing another's conversations or files, the event stream, replies with an attachment,
//! read receipts when a thread is opened, and the accounts page's webhook URLs. On SQLite
//! and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sea_orm::EntityTrait;
use serde_json::json;
use switchboard_meta_cloud::MetaCloud;
use switchboard_meta_cloud::testing::FakeGraph;
use switchboard_router::Router;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::console_sessions;
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp};

use crate::support::http_site::{HttpSite, serve_acme};
use crate::support::providers::{
    APP_SECRET, META_NUMBER, META_TOKEN, PNID, PUBLIC, TWILIO_NUMBER, TWILIO_PATH, fakes,
    meta_inbound, post_meta_webhook, post_twilio_form,
};
use crate::support::{TestDb, on_each_backend};

/// The app over both real adapters on their fakes, one tenant with both accounts.
struct Site {
    http: HttpSite,
    twilio: FakeTwilio,
    graph: FakeGraph,
    meta_account: String,
}

impl std::ops::Deref for Site {
    type Target = HttpSite;
    fn deref(&self) -> &HttpSite {
        &self.http
    }
}

async fn site(db: &TestDb) -> Site {
    let (twilio, graph) = fakes().await;
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let router = Router::builder(db.store().await, cipher)
        .public_url(PUBLIC)
        .adapter(Arc::new(TwilioWhatsApp::new(TwilioConfig {
            public_url: PUBLIC.into(),
            ..twilio.config()
        })))
        .adapter(Arc::new(MetaCloud::new(graph.config())))
        .build();
    let http = serve_acme(router).await;
    let meta_account = http
        .connect(
            "meta-whatsapp",
            META_NUMBER,
            &json!({"phone_number_id": PNID, "access_token": META_TOKEN,
                "app_secret": APP_SECRET, "verify_token": "vt"}),
        )
        .await;
    http.connect(
        "twilio-whatsapp",
        TWILIO_NUMBER,
        &json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}),
    )
    .await;
    Site {
        http,
        twilio,
        graph,
        meta_account,
    }
}

/// A browser of the console: follows no redirects, keeps the console's cookies.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

/// An answer: status, where it redirects, its `Set-Cookie` lines, its body.
struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

/// The value of `<input … name="NAME" value="…">` in `html` (the first such input).
fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

impl Browser {
    fn new(site: &HttpSite) -> Self {
        Self {
            base: site.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header(COOKIE, self.cookie_header())
        };
        let res = req.send().await.unwrap();
        let set_cookies: Vec<String> = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for line in &set_cookies {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        Page {
            status: res.status().as_u16(),
            location: res
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            set_cookies,
            body: res.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Signs in with `key`; the sign-in answer.
    async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        let token = input_value(&form.body, "csrf");
        self.post("/console/sign-in", &[("csrf", &token), ("api_key", key)])
            .await
    }

    /// The session's CSRF token, read from a page (the sign-out form carries it).
    async fn csrf(&mut self) -> String {
        let page = self.get("/console/").await;
        assert_eq!(page.status, 200, "{}", page.body);
        input_value(&page.body, "csrf")
    }
}

/// An agent key of the site's tenant.
async fn agent_key(site: &HttpSite) -> (String, String) {
    let created = site
        .call(Method::POST, "/v1/keys", Some(json!({"role": "agent"})))
        .await
        .expect(201, None);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["key"].as_str().unwrap().to_owned(),
    )
}

/// An inbound Twilio WhatsApp text from `from` with profile name `name`.
async fn twilio_inbound(site: &HttpSite, from: &str, name: &str, text: &str, sid: &str) {
    let mut form = twilio::inbound_text_form(TEST_ACCOUNT_SID, from, TWILIO_NUMBER, text, sid);
    crate::support::providers::set(&mut form, "ProfileName", name);
    let res = post_twilio_form(site, TWILIO_PATH, &form).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// The conversation ids of the inbox page, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("class=\"conversation\" data-id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn a_session_holds_no_key_and_ends_at_sign_out_or_when_its_key_is_revoked() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        let mut browser = Browser::new(&site);

        // Every page wants a session.
        for path in [
            "/console/",
            "/console/accounts",
            "/console/events",
            "/console/fragments/inbox",
        ] {
            let page = browser.get(path).await;
            assert_eq!(
                (page.status, page.location.as_deref()),
                (303, Some("/console/sign-in")),
                "{path}"
            );
        }
        // A wrong key: 401 and an alert; a sign-in post without the form's token: 403.
        let page = browser.sign_in("sbk_not-a-key").await;
        assert_eq!(page.status, 401);
        assert!(page.body.contains("role=\"alert\""), "{}", page.body);
        let mut stranger = Browser::new(&site);
        let page = stranger
            .post(
                "/console/sign-in",
                &[("csrf", "guess"), ("api_key", &site.admin)],
            )
            .await;
        assert_eq!(page.status, 403);
        assert!(stranger.cookies.iter().all(|(k, _)| k != "sb_console"));

        // The right key: a session cookie that is not the key, HttpOnly, SameSite=Strict.
        let page = browser.sign_in(&site.admin).await;
        assert_eq!(
            (page.status, page.location.as_deref()),
            (303, Some("/console/"))
        );
        let cookie = page
            .set_cookies
            .iter()
            .find(|c| c.starts_with("sb_console="))
            .unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains(&site.admin), "{cookie}");
        let token = cookie
            .trim_start_matches("sb_console=")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        // The database holds the token's hash only.
        let rows = console_sessions::Entity::find()
            .all(site.router.store().conn())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_ne!(rows[0].token_hash, token);
        let page = browser.get("/console/").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("id=\"nav-accounts\""));
        assert_eq!(
            page.body.matches("no-store").count(),
            0,
            "headers, not body"
        );

        // Sign-out needs the session's CSRF token.
        let page = browser
            .post("/console/sign-out", &[("csrf", "wrong")])
            .await;
        assert_eq!(page.status, 403);
        assert_eq!(
            browser.get("/console/").await.status,
            200,
            "still signed in"
        );
        let csrf = browser.csrf().await;
        let page = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
        assert_eq!(
            (page.status, page.location.as_deref()),
            (303, Some("/console/sign-in"))
        );
        // The old token is dead even if a browser kept it.
        let mut replay = Browser::new(&site);
        replay.cookies.push(("sb_console".into(), token));
        assert_eq!(replay.get("/console/").await.status, 303);

        // A session past its lifetime is over.
        let mut late = Browser::new(&site);
        assert_eq!(late.sign_in(&site.admin).await.status, 303);
        console_sessions::Entity::update_many()
            .col_expr(
                console_sessions::Column::ExpiresAt,
                sea_orm::sea_query::Expr::value(1_i64),
            )
            .exec(site.router.store().conn())
            .await
            .unwrap();
        assert_eq!(late.get("/console/").await.status, 303);

        // Revoking the key ends its sessions at once.
        let (agent_id, agent) = agent_key(&site).await;
        let mut agent_browser = Browser::new(&site);
        assert_eq!(agent_browser.sign_in(&agent).await.status, 303);
        assert_eq!(agent_browser.get("/console/").await.status, 200);
        site.call(Method::DELETE, &format!("/v1/keys/{agent_id}"), None)
            .await
            .expect(200, None);
        assert_eq!(agent_browser.get("/console/").await.status, 303);
    })
    .await;
}

#[tokio::test]
async fn agents_cannot_manage_accounts_and_every_change_needs_the_csrf_token() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        let (_, agent) = agent_key(&site).await;
        let mut agent_browser = Browser::new(&site);
        agent_browser.sign_in(&agent).await;
        let page = agent_browser.get("/console/").await;
        assert!(!page.body.contains("nav-accounts"), "{}", page.body);
        let page = agent_browser.get("/console/accounts").await;
        assert_eq!(page.status, 403);
        assert!(page.body.contains("Not allowed"));
        let csrf = agent_browser.csrf().await;
        let page = agent_browser
            .post(
                "/console/accounts",
                &[
                    ("csrf", &csrf),
                    ("channel", "twilio-sms"),
                    ("address", "+15005550006"),
                ],
            )
            .await;
        assert_eq!(page.status, 403);
        let page = agent_browser
            .post(
                &format!("/console/accounts/{}/disconnect", site.meta_account),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 403);

        let mut admin = Browser::new(&site);
        admin.sign_in(&site.admin).await;
        let page = admin.get("/console/accounts").await;
        assert_eq!(page.status, 200);
        // The exact webhook URLs to paste, from the public URL.
        for channel in ["twilio-whatsapp", "meta-whatsapp"] {
            assert!(
                page.body.contains(&format!("{PUBLIC}/webhooks/{channel}")),
                "{}",
                page.body
            );
        }
        let csrf = input_value(&page.body, "csrf");
        let connect = [
            ("channel", "twilio-whatsapp"),
            ("address", "+14155550100"),
            ("cred.account_sid", TEST_ACCOUNT_SID),
            ("cred.auth_token", TEST_AUTH_TOKEN),
        ];
        // Without the token nothing is connected; with it the number is.
        let page = admin.post("/console/accounts", &connect).await;
        assert_eq!(page.status, 403);
        let mut with_token = connect.to_vec();
        with_token.push(("csrf", &csrf));
        let page = admin.post("/console/accounts", &with_token).await;
        assert_eq!(page.status, 201, "{}", page.body);
        assert!(page.body.contains("+14155550100"));
        assert!(
            !page.body.contains(TEST_AUTH_TOKEN),
            "credentials are never shown"
        );
        let accounts = site
            .call(Method::GET, "/v1/accounts", None)
            .await
            .expect(200, None);
        let added = accounts.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["address"] == "+14155550100")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // A bad connect form is a page saying why, not a 5xx.
        let mut bad = connect.to_vec();
        bad.retain(|(k, _)| *k != "cred.auth_token");
        bad.push(("csrf", &csrf));
        bad[1] = ("address", "+14155550101");
        let page = admin.post("/console/accounts", &bad).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.body.contains("auth_token"), "{}", page.body);
        // Disconnect with the token.
        let page = admin
            .post(
                &format!("/console/accounts/{added}/disconnect"),
                &[("csrf", "x")],
            )
            .await;
        assert_eq!(page.status, 403);
        let page = admin
            .post(
                &format!("/console/accounts/{added}/disconnect"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 200);
        let accounts = site
            .call(Method::GET, "/v1/accounts", None)
            .await
            .expect(200, None);
        let row = accounts.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == added.as_str())
            .unwrap()
            .clone();
        assert_eq!(row["active"], false);
        // Verify asks the provider now (the fake Graph answers its health node).
        let page = admin
            .post(
                &format!("/console/accounts/{}/verify", site.meta_account),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("class=\"health\""), "{}", page.body);
    })
    .await;
}

#[tokio::test]
async fn the_inbox_orders_counts_unread_searches_and_shows_one_tenant_only() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        twilio_inbound(
            &site,
            "+16505550001",
            "Ana Souza",
            "first",
            "SMa0000000000000000000000000000001",
        )
        .await;
        twilio_inbound(
            &site,
            "+16505550002",
            "Bo Li",
            "hello",
            "SMa0000000000000000000000000000002",
        )
        .await;
        twilio_inbound(
            &site,
            "+16505550001",
            "Ana Souza",
            "second",
            "SMa0000000000000000000000000000003",
        )
        .await;
        let mut browser = Browser::new(&site);
        browser.sign_in(&site.admin).await;
        let page = browser.get("/console/").await;
        let ids = listed(&page.body);
        assert_eq!(ids.len(), 2, "{}", page.body);
        // Ana wrote last: first, with two unread and her last message as the preview.
        let ana = ids[0].clone();
        let first_entry = &page.body[page.body.find(&ana).unwrap()..];
        assert!(first_entry.starts_with(&format!("{ana}\"")));
        let first_entry = &first_entry[..first_entry.find("</li>").unwrap()];
        assert!(
            first_entry.contains("Ana Souza") && first_entry.contains("+16505550001"),
            "{first_entry}"
        );
        assert!(
            first_entry.contains("class=\"unread\"") && first_entry.contains(">2<"),
            "{first_entry}"
        );
        assert!(first_entry.contains("second"), "{first_entry}");

        // Search: name in any case, digits of the number, LIKE's wildcards taken literally.
        for (q, expected) in [
            ("ana", vec![ana.clone()]),
            ("BO L", vec![ids[1].clone()]),
            ("650-555-0002", vec![ids[1].clone()]),
            ("%", vec![]),
            ("_", vec![]),
        ] {
            let page = browser
                .get(&format!("/console/?q={}", crate::support::api::encode(q)))
                .await;
            assert_eq!(listed(&page.body), expected, "search {q:?}");
        }

        // Opening the thread shows the messages and clears the unread count.
        let page = browser.get(&format!("/console/conversations/{ana}")).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("first") && page.body.contains("second"));
        assert!(page.body.contains("data-direction=\"inbound\""));
        let page = browser.get("/console/fragments/inbox").await;
        let ana_entry = &page.body[page.body.find(&ana).unwrap()..];
        let ana_entry = &ana_entry[..ana_entry.find("</li>").unwrap()];
        assert!(!ana_entry.contains("class=\"unread\""), "{ana_entry}");
        // A new message is unread again.
        twilio_inbound(
            &site,
            "+16505550001",
            "Ana Souza",
            "third",
            "SMa0000000000000000000000000000004",
        )
        .await;
        let page = browser.get("/console/fragments/inbox").await;
        let ana_entry = &page.body[page.body.find(&ana).unwrap()..];
        let ana_entry = &ana_entry[..ana_entry.find("</li>").unwrap()];
        assert!(ana_entry.contains(">1<"), "{ana_entry}");

        // Another tenant sees none of it.
        let other = site.router.tenants().create("globex").await.unwrap();
        let mut outsider = Browser::new(&site);
        outsider.sign_in(&other.key).await;
        let page = outsider.get("/console/").await;
        assert!(listed(&page.body).is_empty(), "{}", page.body);
        for path in [
            format!("/console/conversations/{ana}"),
            format!("/console/conversations/{ana}/messages"),
        ] {
            let page = outsider.get(&path).await;
            assert_eq!(page.status, 404, "{path}");
            assert!(!page.body.contains("Ana"), "{}", page.body);
        }
        let csrf = outsider.csrf().await;
        let page = outsider
            .post(
                &format!("/console/conversations/{ana}/template"),
                &[("csrf", &csrf), ("template", "x")],
            )
            .await;
        assert_eq!(page.status, 404);
        // Unknown and malformed ids are 404 pages too, never a 5xx.
        for path in [
            "/console/conversations/cnv_nope",
            "/console/conversations/%E2%80%8B",
            "/console/media/med_nope",
        ] {
            assert_eq!(browser.get(path).await.status, 404, "{path}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_event_stream_carries_the_tenants_changes_only() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        let mut browser = Browser::new(&site);
        browser.sign_in(&site.admin).await;
        let other = site.router.tenants().create("globex").await.unwrap();
        let mut outsider = Browser::new(&site);
        outsider.sign_in(&other.key).await;

        let open = |b: &Browser| {
            b.client
                .get(format!("{}/console/events", b.base))
                .header(COOKIE, b.cookie_header())
                .send()
        };
        let ours = open(&browser).await.unwrap();
        assert_eq!(ours.headers()["content-type"], "text/event-stream");
        let theirs = open(&outsider).await.unwrap();
        let (mut ours, mut theirs) = (ours, theirs);
        twilio_inbound(
            &site,
            "+16505550009",
            "Cy",
            "live",
            "SMa0000000000000000000000000000009",
        )
        .await;
        let mut seen = String::new();
        while !seen.contains("event: message") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), ours.chunk())
                .await
                .expect("the stream carries the new message")
                .unwrap()
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(seen.contains("conversation_id"), "{seen}");
        // The other tenant's stream stays silent about it (keep-alives come every 15 s).
        let quiet = tokio::time::timeout(Duration::from_millis(500), theirs.chunk()).await;
        assert!(quiet.is_err(), "another tenant heard {quiet:?}");
    })
    .await;
}

/// The `href` of the link with id `id` in `html`, if any.
fn link(html: &str, id: &str) -> Option<String> {
    let needle = format!("id=\"{id}\" href=\"");
    let rest = &html[html.find(&needle)? + needle.len()..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// A long thread pages back: the newest 100 messages, then the earlier ones a page at a
/// time, each page refreshed live as itself; a `before` that names no message is no error.
#[tokio::test]
async fn a_long_thread_shows_its_earlier_messages_a_page_at_a_time() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        let mut browser = Browser::new(&site);
        browser.sign_in(&site.admin).await;
        for i in 0..130 {
            twilio_inbound(
                &site,
                "+16505550041",
                "Lena",
                &format!("msg-text-{i:03}"),
                &format!("SMb{i:031}"),
            )
            .await;
        }
        let conversation = listed(&browser.get("/console/").await.body)[0].clone();
        let count = |html: &str| html.matches("class=\"message").count();
        let shows = |html: &str, i: usize| html.contains(&format!("msg-text-{i:03}"));

        let newest = browser
            .get(&format!("/console/conversations/{conversation}"))
            .await;
        assert_eq!(newest.status, 200);
        assert_eq!(count(&newest.body), 100);
        assert!(shows(&newest.body, 129) && shows(&newest.body, 30) && !shows(&newest.body, 29));
        assert!(link(&newest.body, "newest").is_none());
        let earlier = link(&newest.body, "earlier").expect("a link to the earlier messages");
        assert!(
            earlier.starts_with(&format!(
                "/console/conversations/{conversation}?before=msg_"
            )),
            "{earlier}"
        );

        let page = browser.get(&earlier).await;
        assert_eq!(page.status, 200);
        assert_eq!(count(&page.body), 30);
        assert!(shows(&page.body, 0) && shows(&page.body, 29) && !shows(&page.body, 30));
        assert!(
            link(&page.body, "earlier").is_none(),
            "nothing before the first"
        );
        assert_eq!(
            link(&page.body, "newest").as_deref(),
            Some(format!("/console/conversations/{conversation}").as_str())
        );
        // The live refresh reads the same page again, not the newest messages.
        let before = earlier.split_once('?').unwrap().1;
        let fragment_url = format!("/console/conversations/{conversation}/messages?{before}");
        assert!(
            page.body
                .contains(&format!("data-fragment=\"{fragment_url}\""))
        );
        let fragment = browser.get(&fragment_url).await;
        assert_eq!((fragment.status, count(&fragment.body)), (200, 30));

        // A `before` that names no message bounds the page all the same; none is the newest.
        for (before, expected) in [("zzzz", 100), ("", 100), ("'; DROP TABLE messages; --", 0)] {
            let url = format!(
                "/console/conversations/{conversation}?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("before", before)
                    .finish()
            );
            let page = browser.get(&url).await;
            assert_eq!(
                (page.status, count(&page.body)),
                (200, expected),
                "{before:?}"
            );
        }
    })
    .await;
}

/// The next named event of an event stream within `wait` (keep-alives skipped): its name and
/// data; `None` when none came.
async fn next_event(stream: &mut reqwest::Response, wait: Duration) -> Option<(String, String)> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            if let Some(event) = field("event:") {
                return Some((event, field("data:").unwrap_or_default()));
            }
            continue;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .ok()?;
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()?));
    }
}

/// Waits (up to 5 s) until two connections to `conn`'s database listen: both processes'
/// relays.
async fn both_relays_listen(conn: &sea_orm::DatabaseConnection) {
    use sea_orm::ConnectionTrait;
    let listening = sea_orm::Statement::from_string(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    );
    for _ in 0..100 {
        let row = conn
            .query_one_raw(listening.clone())
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() >= 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scale-out: with two processes on one PostgreSQL database, a console page served by one
/// hears what the other stored, once; stray notifications are ignored, and a lost
/// listening connection tells the page to reload. PostgreSQL only (`events::relay`).
#[tokio::test]
async fn a_console_page_hears_what_another_process_on_the_database_stored() {
    use sea_orm::ConnectionTrait;
    if !crate::support::postgres_configured() {
        return;
    }
    let db = crate::support::fresh_db(crate::support::Backend::Postgres).await;
    let first = site(&db).await;
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let mut second = crate::support::http_site::serve(
        Router::builder(db.store().await, cipher)
            .public_url(PUBLIC)
            .build(),
    )
    .await;
    second.tenant.clone_from(&first.tenant);
    second.admin.clone_from(&first.admin);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = [first.router.clone(), second.router.clone()]
        .into_iter()
        .map(|router| {
            let stopped = stopped.clone();
            tokio::spawn(async move { router.run_workers(stopped).await })
        })
        .collect();
    // Both relays listen before anything is stored (a notification reaches only listeners).
    let conn = second.router.store().conn().clone();
    both_relays_listen(&conn).await;

    let open = |b: &Browser| {
        b.client
            .get(format!("{}/console/events", b.base))
            .header(COOKIE, b.cookie_header())
            .send()
    };
    let mut here = Browser::new(&first);
    here.sign_in(&first.admin).await;
    let mut there = Browser::new(&second);
    there.sign_in(&first.admin).await;
    let mut here_stream = open(&here).await.unwrap();
    let mut there_stream = open(&there).await.unwrap();

    // The first process stores a message: both pages hear it, about the same conversation.
    twilio_inbound(
        &first,
        "+16505550031",
        "Remy",
        "relayed",
        "SMa0000000000000000000000000000031",
    )
    .await;
    let heard_here = next_event(&mut here_stream, Duration::from_secs(10)).await;
    let heard_there = next_event(&mut there_stream, Duration::from_secs(10)).await;
    let heard_here = heard_here.expect("the storing process's page hears the message");
    assert_eq!(heard_here.0, "message");
    assert!(
        heard_here.1.contains("\"conversation_id\":\"cnv_"),
        "{heard_here:?}"
    );
    assert_eq!(
        heard_there,
        Some(heard_here),
        "the other process's page hears the same"
    );
    // Once: the storing process ignores its own notification coming back.
    let echo = next_event(&mut here_stream, Duration::from_millis(500)).await;
    assert_eq!(echo, None);

    // Stray notifications on the channel (not a change, another tenant's) reach nobody.
    let admin = first.router.store().conn();
    for payload in [
        "not json",
        r#"{"o":"prc_elsewhere","c":[{"t":"ten_other","k":"message","s":"cnv_x"}]}"#,
    ] {
        admin
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [
                    switchboard_router::events::relay::CHANNEL.into(),
                    payload.into(),
                ],
            ))
            .await
            .unwrap();
    }
    let stray = next_event(&mut there_stream, Duration::from_millis(500)).await;
    assert_eq!(stray, None);

    // The relays' listening connections are lost: the second process's page is told to reload.
    admin
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%' \
             AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    let mut resynced = false;
    while let Some((event, _)) = next_event(&mut there_stream, Duration::from_secs(10)).await {
        if event == "resync" {
            resynced = true;
            break;
        }
    }
    assert!(resynced, "a page that may have missed changes reloads");
    // And hears the first process again once its relay listens again.
    both_relays_listen(&conn).await;
    twilio_inbound(
        &first,
        "+16505550032",
        "Sam",
        "relayed again",
        "SMa0000000000000000000000000000032",
    )
    .await;
    let mut again = None;
    while let Some(heard) = next_event(&mut there_stream, Duration::from_secs(10)).await {
        if heard.0 == "message" {
            again = Some(heard);
            break;
        }
    }
    assert!(
        again.is_some(),
        "the relay listens again after a lost connection"
    );

    stop.send_replace(true);
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("the workers stop")
            .unwrap();
    }
    drop((first, second));
    db.cleanup().await;
}

/// A multipart body by hand: text fields, then one file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----switchboard-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, mime, bytes)) = file {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_reply_with_an_attachment_is_sent_and_opening_a_meta_thread_marks_it_read() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        // A Meta conversation: opening it marks the newest unread message read at Meta.
        let body = meta_inbound("16505550011", "wamid.console-1", "Olá");
        post_meta_webhook(&site, &body, Some(APP_SECRET))
            .await
            .expect(200, None);
        let mut browser = Browser::new(&site);
        browser.sign_in(&site.admin).await;
        let page = browser.get("/console/").await;
        let conversation = listed(&page.body)[0].clone();
        let page = browser
            .get(&format!("/console/conversations/{conversation}"))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("id=\"reply\""),
            "the window is open: {}",
            page.body
        );
        let mut waited = 0;
        while site.graph.read_receipts().is_empty() && waited < 100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
        let receipts = site.graph.read_receipts();
        assert_eq!(receipts.len(), 1, "{receipts:?}");
        assert_eq!(receipts[0]["message_id"], "wamid.console-1");
        // Opening it again sends no second receipt (nothing new was unread).
        browser
            .get(&format!("/console/conversations/{conversation}"))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(site.graph.read_receipts().len(), 1);

        // A reply with a photo: stored, then sent through Meta with the text as caption.
        let csrf = input_value(&page.body, "csrf");
        let png = b"\x89PNG\r\n\x1a\nnot-really-a-png";
        let (content_type, form) = multipart(
            &[
                ("csrf", &csrf),
                ("idempotency", "console_test_1"),
                ("text", "Here it is"),
            ],
            Some(("photo.png", "image/png", png)),
        );
        let (client, cookies) = (browser.client.clone(), browser.cookie_header());
        let post = |form: Vec<u8>| {
            client
                .post(format!(
                    "{}/console/conversations/{conversation}/reply",
                    site.base
                ))
                .header(COOKIE, cookies.clone())
                .header("content-type", content_type.clone())
                .body(form)
                .send()
        };
        let res = post(form.clone()).await.unwrap();
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        // The same form sent twice (a double click) is one message, and one upload: the
        // second copy of the file is not kept beside it.
        let res = post(form).await.unwrap();
        assert_eq!(res.status(), 303);
        let uploads = |site: &Site| {
            let conn = site.router.store().conn().clone();
            async move {
                switchboard_router::store::entity::media::Entity::find()
                    .all(&conn)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|m| m.origin == "upload")
                    .count()
            }
        };
        assert_eq!(uploads(&site).await, 1);
        // A form without the CSRF token stores and sends nothing.
        let (_, forged) = multipart(&[("text", "forged")], Some(("x.png", "image/png", png)));
        let res = post(forged).await.unwrap();
        assert_eq!(res.status(), 403);
        // An empty form is a 400 page.
        let (_, empty) = multipart(&[("csrf", &csrf), ("text", "  ")], None);
        assert_eq!(post(empty).await.unwrap().status(), 400);
        while site.router.delivery().deliver_due().await.unwrap() > 0 {}
        let sent = site.graph.sent_messages();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0]["type"], "image", "{sent:?}");
        assert_eq!(sent[0]["image"]["caption"], "Here it is", "{sent:?}");
        let page = browser
            .get(&format!("/console/conversations/{conversation}"))
            .await;
        assert!(
            page.body.contains("data-direction=\"outbound\""),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("/console/media/"),
            "the photo shows inline: {}",
            page.body
        );
        let media_path = page
            .body
            .split("src=\"/console/media/")
            .nth(1)
            .map(|s| format!("/console/media/{}", &s[..s.find('"').unwrap()]))
            .unwrap();
        let res = browser
            .client
            .get(format!("{}{media_path}", site.base))
            .header(COOKIE, browser.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.bytes().await.unwrap().as_ref(), png);
        // The file is the tenant's: another tenant's session gets 404.
        let other = site.router.tenants().create("globex").await.unwrap();
        let mut outsider = Browser::new(&site);
        outsider.sign_in(&other.key).await;
        assert_eq!(outsider.get(&media_path).await.status, 404);

        // A refused reply is a page saying why (text over WhatsApp's limit), not a 5xx.
        let long = "x".repeat(5000);
        let (_, too_long) = multipart(&[("csrf", &csrf), ("text", &long)], None);
        let res = post(too_long).await.unwrap();
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains("Not sent"));
        let _ = &site.twilio;
    })
    .await;
}

/// One inbound Meta message of type `kind` with `object` as its body, from `PERSON_WA`.
fn meta_message(
    wamid: &str,
    kind: &str,
    object: serde_json::Value,
    extra: serde_json::Value,
) -> String {
    let mut message = json!({"from": "16505550011", "id": wamid,
        "timestamp": crate::support::providers::now_ts(), "type": kind});
    message[kind] = object;
    if let (Some(m), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    switchboard_meta_cloud::testing::envelope(&[(
        PNID,
        crate::support::providers::META_DISPLAY,
        "messages",
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "16505550011"}], "messages": [message]}),
    )])
}

#[tokio::test]
async fn a_thread_shows_every_kind_of_message_and_a_failure_with_its_attempts() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        let jpeg = b"\xff\xd8\xff\xe0fake-jpeg-bytes";
        site.graph.add_media("1013859600285441", META_TOKEN, jpeg, "image/jpeg");
        let sha = FakeGraph::sha256_base64(jpeg);
        let bodies = [
            meta_message("wamid.k1", "text", json!({"body": "Saw your ad"}),
                json!({"referral": {"source_url": "https://fb.me/x", "source_type": "ad", "source_id": "120", "headline": "Spring sale", "body": "20% off", "media_type": "image", "image_url": "https://x.example/a.jpg", "ctwa_clid": "clid-1"}})),
            meta_message("wamid.k2", "image", json!({"id": "1013859600285441", "mime_type": "image/jpeg", "sha256": sha, "caption": "This one"}), json!({})),
            meta_message("wamid.k3", "location", json!({"latitude": 52.3676, "longitude": 4.9041, "name": "Dam Square", "address": "Dam, Amsterdam"}), json!({})),
            meta_message("wamid.k4", "contacts", json!([{"name": {"formatted_name": "Joe Bloggs"}, "phones": [{"phone": "+1 555 0100", "type": "CELL"}]}]), json!({})),
            meta_message("wamid.k5", "interactive", json!({"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes please"}}), json!({})),
            meta_message("wamid.k6", "reaction", json!({"message_id": "wamid.k1", "emoji": "👍"}), json!({})),
            switchboard_meta_cloud::testing::echo(PNID, crate::support::providers::META_DISPLAY, "16505550011", "wamid.k7", "Typed on the phone"),
        ];
        for body in &bodies {
            post_meta_webhook(&site, body, Some(APP_SECRET)).await.expect(200, None);
        }
        while site.router.media_fetcher().fetch_due().await.unwrap() > 0 {}
        // A reply Meta refuses for good: failed, with the provider's words and its attempt.
        site.graph.respond_next(400, switchboard_meta_cloud::testing::error_envelope(131026, "Message undeliverable"));
        site.call(Method::POST, "/v1/messages", Some(json!({"to": "+16505550011", "channel": "meta-whatsapp", "text": "Will not arrive"})))
            .await
            .expect(202, None);
        while site.router.delivery().deliver_due().await.unwrap() > 0 {}

        let mut browser = Browser::new(&site);
        browser.sign_in(&site.admin).await;
        let page = browser.get("/console/").await;
        let conversation = listed(&page.body)[0].clone();
        let page = browser.get(&format!("/console/conversations/{conversation}")).await;
        assert_eq!(page.status, 200);
        let html = page.body;
        let message = |wamid_text: &str| {
            let at = html.find(wamid_text).unwrap_or_else(|| panic!("{wamid_text:?} not in {html}"));
            let start = html[..at].rfind("<li class=\"message\"").unwrap();
            let end = at + html[at..].find("</li>").unwrap();
            html[start..end].to_owned()
        };
        assert!(message("Saw your ad").contains("Came from an ad: <strong>Spring sale</strong>"));
        let photo = message("This one");
        assert!(photo.contains("<img src=\"/console/media/") && photo.contains("alt=\"This one\""), "{photo}");
        let place = message("Dam Square");
        assert!(place.contains("Dam, Amsterdam") && place.contains("openstreetmap.org/?mlat=52.3676"), "{place}");
        let card = message("Joe Bloggs");
        assert!(card.contains("+1 555 0100"), "{card}");
        assert!(message("Yes please").contains("Tapped: "));
        assert!(message("Reacted 👍").contains("data-direction=\"inbound\""));
        let echo = message("Typed on the phone");
        assert!(echo.contains("data-direction=\"echo\"") && echo.contains("Sent from the phone"), "{echo}");
        let failed = message("Will not arrive");
        assert!(failed.contains("data-status=\"failed\""), "{failed}");
        assert!(failed.contains("class=\"error\"") && failed.contains("131026"), "{failed}");
        assert!(failed.contains("<details class=\"attempts\">"), "{failed}");
        assert!(failed.contains("aria-label=\"Failed\""), "{failed}");
        // The photo itself, through the session.
        let src = photo.split("src=\"").nth(1).unwrap();
        let src = &src[..src.find('"').unwrap()];
        let res = browser.client.get(format!("{}{src}", site.base)).header(COOKIE, browser.cookie_header()).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-security-policy"], "sandbox");
        assert_eq!(res.bytes().await.unwrap().as_ref(), jpeg);
        // The inbox previews the newest message.
        let page = browser.get("/console/").await;
        assert!(page.body.contains("You: Will not arrive"), "{}", page.body);
    })
    .await;
}

#[tokio::test]
async fn pages_are_gzipped_for_browsers_that_ask_and_errors_stay_readable() {
    on_each_backend(|db| async move {
        let site = site(&db).await;
        let mut browser = Browser::new(&site);
        browser.sign_in(&site.admin).await;
        let get = |path: &str| {
            browser
                .client
                .get(format!("{}{path}", site.base))
                .header(COOKIE, browser.cookie_header())
                .header("accept-encoding", "gzip")
                .send()
        };
        let page = get("/console/").await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["content-encoding"], "gzip");
        let gzipped = page.bytes().await.unwrap();
        assert_eq!(&gzipped[..2], b"\x1f\x8b", "a gzip stream");
        // The event stream is never compressed (it would hold events back).
        let events = get("/console/events").await.unwrap();
        assert!(events.headers().get("content-encoding").is_none());
        drop(events);
        // A query the console cannot read is the API's JSON error, not gzip bytes in JSON.
        let refused = get("/console/?q=a&q=b").await.unwrap();
        assert_eq!(refused.status(), 400);
        assert!(refused.headers().get("content-encoding").is_none());
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    })
    .await;
}
