//! Shared test support: real databases (a SQLite file always, PostgreSQL when
//! `SWITCHBOARD_TEST_POSTGRES_URL` is set, each test in a fresh database), routers over the
//! fake adapter (`fake` for its events and requests), the real adapters on their fake
//! providers (`providers`), the REST API on loopback (`api`), the real `switchboard` binary
//! (`binary`), a headless Chromium for the console (`browser`), and the reader of the
//! engine's module rules (`module_rules`).

#![allow(dead_code)]

pub mod api;
pub mod binary;
pub mod browser;
pub mod fake;
pub mod http_site;
pub mod module_rules;
pub mod providers;
pub mod s3;

use std::future::Future;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, Database, EntityTrait, PaginatorTrait};
use switchboard_core::testing::FakeAdapter;
use switchboard_router::store::SqliteSync;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::{Router, RouterBuilder, Store};

/// The environment variable naming a PostgreSQL server for the tests (any database on it;
/// each test creates and drops its own).
pub const POSTGRES_ENV: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    admin_url: Option<String>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("switchboard.db").display()
        );
        Self {
            backend: Backend::Sqlite,
            url,
            _dir: Some(dir),
            admin_url: None,
            pg_name: None,
        }
    }

    pub async fn postgres(admin_url: &str) -> Self {
        let name = format!("sbtest_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .expect("connect to SWITCHBOARD_TEST_POSTGRES_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        Self {
            backend: Backend::Postgres,
            url: replace_db_name(admin_url, &name),
            _dir: None,
            admin_url: Some(admin_url.to_owned()),
            pg_name: Some(name),
        }
    }

    /// The directory of a SQLite database (for files beside it).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(tempfile::TempDir::path)
    }

    /// Drops a PostgreSQL test database.
    pub async fn cleanup(self) {
        let (Some(admin), Some(name)) = (&self.admin_url, &self.pg_name) else {
            return;
        };
        if let Ok(db) = Database::connect(admin.as_str()).await {
            // Best effort: CI also drops leftovers of interrupted runs.
            if let Err(e) = db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
            {
                eprintln!("could not drop test database {name}: {e}");
            }
            db.close().await.ok();
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, SqliteSync::Normal)
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The backends every database test runs on: SQLite always; PostgreSQL too when
/// `SWITCHBOARD_TEST_POSTGRES_URL` is set (CI sets it and fails if it cannot connect).
pub fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Sqlite];
    if std::env::var(POSTGRES_ENV).is_ok_and(|v| !v.is_empty()) {
        b.push(Backend::Postgres);
    }
    b
}

pub async fn fresh_db(backend: Backend) -> TestDb {
    match backend {
        Backend::Sqlite => TestDb::sqlite().await,
        Backend::Postgres => {
            TestDb::postgres(&std::env::var(POSTGRES_ENV).expect(POSTGRES_ENV)).await
        }
    }
}

/// Whether PostgreSQL is configured, for a PostgreSQL-only test; says so when it is not
/// (the test then checks nothing).
pub fn postgres_configured() -> bool {
    let configured = backends().contains(&Backend::Postgres);
    if !configured {
        eprintln!("{POSTGRES_ENV} is not set: this PostgreSQL-only test checks nothing here");
    }
    configured
}

/// Runs `scenario` once per backend, each time on a fresh database.
pub async fn on_each_backend<F, Fut>(scenario: F)
where
    F: Fn(Arc<TestDb>) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        let db = Arc::new(fresh_db(backend).await);
        eprintln!("-- on {backend:?}");
        scenario(db.clone()).await;
        if let Ok(db) = Arc::try_unwrap(db) {
            db.cleanup().await;
        }
    }
}

/// A router over `db` with the fake adapter (channel `fake`).
pub async fn fake_router(db: &TestDb) -> (Router, FakeAdapter) {
    let fake = FakeAdapter::new();
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let router = Router::builder(db.store().await, cipher)
        .adapter(Arc::new(fake.clone()))
        .build();
    (router, fake)
}

/// A router over the fake channel (`fake`) with one tenant, `acme`, whose account on the
/// fake channel (business number [`fake::BUSINESS`], secret [`fake::SECRET`]) is connected.
pub struct FakeSite {
    pub router: Router,
    pub fake: FakeAdapter,
    pub tenant: String,
    /// The tenant's first admin API key.
    pub admin_key: String,
}

/// [`FakeSite`] on `store`, the router built with Dutch phone numbers as the default and
/// whatever `configure` adds.
pub async fn fake_site(
    store: Store,
    configure: impl FnOnce(RouterBuilder) -> RouterBuilder,
) -> FakeSite {
    fake_site_with(store, FakeAdapter::new(), configure).await
}

/// [`fake_site`] over `fake`, a fake adapter the test keeps to steer.
pub async fn fake_site_with(
    store: Store,
    fake: FakeAdapter,
    configure: impl FnOnce(RouterBuilder) -> RouterBuilder,
) -> FakeSite {
    let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
    let builder = Router::builder(store, cipher)
        .adapter(Arc::new(fake.clone()))
        .phone_parser(switchboard_core::PhoneParser::with_region("NL").unwrap());
    let router = configure(builder).build();
    let created = router.tenants().create("acme").await.unwrap();
    router
        .accounts()
        .connect(
            &created.tenant_id,
            "fake",
            fake::BUSINESS,
            &FakeAdapter::credentials(fake::SECRET),
            None,
        )
        .await
        .unwrap();
    FakeSite {
        router,
        fake,
        tenant: created.tenant_id,
        admin_key: created.key,
    }
}

/// [`fake_site`] on a fresh store of `db`: (router, fake adapter, tenant id).
pub async fn fake_setup(db: &TestDb) -> (Router, FakeAdapter, String) {
    let site = fake_site(db.store().await, |b| b).await;
    (site.router, site.fake, site.tenant)
}

/// A fresh PostgreSQL database with [`fake_setup`] on it, or `None` when PostgreSQL is not
/// configured (which [`postgres_configured`] reports): for PostgreSQL-only tests. Keep the
/// database alive as long as the router.
pub async fn postgres_fake_setup() -> Option<(TestDb, Router, FakeAdapter, String)> {
    if !postgres_configured() {
        return None;
    }
    let db = fresh_db(Backend::Postgres).await;
    let (router, fake, tenant) = fake_setup(&db).await;
    Some((db, router, fake, tenant))
}

/// How many rows `_entity`'s table holds.
pub async fn count<E>(router: &Router, _entity: E) -> u64
where
    E: EntityTrait,
    E::Model: Sync,
{
    E::find().count(router.store().conn()).await.unwrap()
}

/// POSTs only the headers of a request announcing `content_length` body bytes and reads the
/// answer: (status, body). A server refuses an oversized body from its `Content-Length`
/// without reading it, then closes the connection; a client still writing the body would
/// then see a broken pipe instead of the answer, so the body is never sent here.
pub async fn post_oversized(
    base_url: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    content_length: usize,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("POST {path_and_query} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
    ));
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write headers");
    let mut raw = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
