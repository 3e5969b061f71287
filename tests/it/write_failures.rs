//! A write that fails (a full disk, an I/O error, a connection killed mid-transaction) is
//! rolled back completely and refused with a 503, and the store recovers by itself as soon
//! as writes succeed again: nothing answered 2xx is ever missing.
//!
//! SQLite's `PRAGMA max_page_count` makes a database "full" on demand, without root.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicI64};

use sea_orm::{ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, Statement};
use switchboard_core::Content;
use switchboard_http as http;
use switchboard_router::store::entity::{messages, webhook_events};
use switchboard_router::store::{SqliteConnectHook, SqliteSync, SqlxConnectHook};
use switchboard_router::{Router, SendRequest, Store};

use crate::support::fake::{inbound_from, receive, signed};
use crate::support::{Backend, TestDb, fake_site, fresh_db, on_each_backend};

/// What the tests impose on every SQLite connection the store opens: SQLite's
/// `max_page_count` (the database is "full" beyond it), and whether commits are refused.
#[derive(Clone, Default)]
struct Disk {
    max_pages: Arc<AtomicI64>,
    refuse_commits: Arc<AtomicBool>,
}

impl Disk {
    /// The same limits on the sqlx connections and on the inbound writer's own one.
    fn hook(&self) -> SqliteConnectHook {
        let disk = self.clone();
        let sqlx: SqlxConnectHook = Arc::new(move |conn| {
            let disk = disk.clone();
            Box::pin(async move {
                let pages = disk.max_pages.load(Relaxed);
                if pages > 0 {
                    sea_orm::sqlx::query(sea_orm::sqlx::AssertSqlSafe(format!(
                        "PRAGMA max_page_count = {pages}"
                    )))
                    .execute(&mut *conn)
                    .await?;
                }
                let refuse = disk.refuse_commits.clone();
                // A refused commit is rolled back by SQLite and fails, as a commit on a
                // full disk does when the WAL cannot grow.
                conn.lock_handle()
                    .await?
                    .set_commit_hook(move || !refuse.load(Relaxed));
                Ok(())
            })
        });
        let disk = self.clone();
        let direct = Arc::new(move |conn: &rusqlite::Connection| {
            let pages = disk.max_pages.load(Relaxed);
            if pages > 0 {
                conn.pragma_update(None, "max_page_count", pages)?;
            }
            let refuse = disk.refuse_commits.clone();
            conn.commit_hook(Some(move || refuse.load(Relaxed)))?;
            Ok(())
        });
        SqliteConnectHook { sqlx, direct }
    }
}

async fn setup(db: &TestDb) -> (Router, String) {
    setup_on(db, db.store().await).await
}

async fn setup_with_disk(db: &TestDb, disk: &Disk) -> (Router, String) {
    let store = Store::connect_with(&db.url, SqliteSync::Normal, Some(disk.hook()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    setup_on(db, store).await
}

async fn setup_on(_db: &TestDb, store: Store) -> (Router, String) {
    let site = fake_site(store, |b| b).await;
    (site.router, site.tenant)
}

/// A text long enough that every message needs new pages.
fn bulky(i: usize) -> String {
    format!("{i}:{}", "x".repeat(3000))
}

/// Sets the limit for connections opened from now on and for the writer's current one.
async fn set_max_pages(router: &Router, disk: &Disk, pages: i64) {
    disk.max_pages.store(pages, Relaxed);
    router
        .store()
        .with_inbound_writer_connection(|c| c.pragma_update(None, "max_page_count", pages))
        .expect("a SQLite file has an inbound writer connection")
        .unwrap();
    router
        .store()
        .write_conn()
        .execute_unprepared(&format!("PRAGMA max_page_count = {pages}"))
        .await
        .unwrap();
}

async fn page_count(router: &Router) -> i64 {
    let row = router
        .store()
        .write_conn()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Sqlite,
            "PRAGMA page_count",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// What a fresh connection (as after a restart) finds stored.
async fn stored_keys(db: &TestDb) -> Vec<String> {
    let store = Store::connect(&db.url, SqliteSync::Normal).await.unwrap();
    let keys = webhook_events::Entity::find()
        .all(store.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_key)
        .collect();
    store.close().await.unwrap();
    keys
}

#[tokio::test]
async fn a_full_disk_refuses_webhooks_with_503_and_nothing_acknowledged_is_lost() {
    let db = fresh_db(Backend::Sqlite).await;
    let disk = Disk::default();
    let (router, _) = setup_with_disk(&db, &disk).await;
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut i = 0;
    let send = async |router: &Router, i: &mut usize| {
        *i += 1;
        let key = format!("E{i}");
        let from = format!("+316123{:05}", *i);
        let result = router
            .receive_webhook("fake", signed(&[inbound_from(&key, &from, &bulky(*i))]))
            .await;
        (key, result)
    };
    // Some room, then none.
    for _ in 0..3 {
        let (key, r) = send(&router, &mut i).await;
        r.unwrap();
        acknowledged.push(key);
    }
    let pages = page_count(&router).await;
    set_max_pages(&router, &disk, pages + 2).await;
    for _ in 0..40 {
        let (key, r) = send(&router, &mut i).await;
        match r {
            Ok(ack) => {
                assert_eq!(ack.stored, 1);
                acknowledged.push(key);
            }
            Err(e) => {
                assert_eq!(e.http_status(), 503, "a failed write is a 503: {e}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 30, "the disk filled up: {refused} refused");
    // Every acknowledged webhook is stored, whatever a later one did.
    let stored = stored_keys(&db).await;
    for key in &acknowledged {
        assert!(
            stored.contains(key),
            "{key} was acknowledged but not stored"
        );
    }
    // Space again: the store recovers on its own, without a restart.
    set_max_pages(&router, &disk, 1_000_000).await;
    for _ in 0..5 {
        let (key, r) = send(&router, &mut i).await;
        r.unwrap_or_else(|e| panic!("writes succeed again once there is space: {e}"));
        acknowledged.push(key);
    }
    let stored = stored_keys(&db).await;
    for key in &acknowledged {
        assert!(
            stored.contains(key),
            "{key} was acknowledged but not stored"
        );
    }
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "nothing refused was stored"
    );
    router.store().clone().close().await.unwrap();
    let stored = stored_keys(&db).await;
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "and so after a clean stop"
    );
}

#[tokio::test]
async fn a_full_disk_refuses_sends_with_503_and_every_accepted_send_reads_back() {
    let db = fresh_db(Backend::Sqlite).await;
    let disk = Disk::default();
    let (router, tenant) = setup_with_disk(&db, &disk).await;
    // The contact writes first, so a free-form send is inside the window.
    receive(&router, &[inbound_from("W0", "+31612345678", "hello")]).await;
    let send = |i: usize| SendRequest {
        to: "+31612345678".into(),
        channel: Some("fake".into()),
        from: None,
        content: Content::text(bulky(i)),
        reply_to: None,
        idempotency_key: None,
        fallback: Vec::new(),
    };
    let pages = page_count(&router).await;
    set_max_pages(&router, &disk, pages + 2).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..40 {
        match router.send(&tenant, send(i)).await {
            Ok(a) => accepted.push(a.id),
            Err(e) => {
                assert_eq!(e.http_status(), 503, "a failed write is a 503: {e}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 30, "the disk filled up: {refused} refused");
    set_max_pages(&router, &disk, 1_000_000).await;
    for i in 100..103 {
        let a = router
            .send(&tenant, send(i))
            .await
            .unwrap_or_else(|e| panic!("sends work again once there is space: {e}"));
        accepted.push(a.id);
    }
    for id in &accepted {
        router
            .records()
            .get_message(&tenant, id)
            .await
            .unwrap_or_else(|e| panic!("{id} was accepted but reads back as {e}"));
    }
    router.store().clone().close().await.unwrap();
    let store = Store::connect(&db.url, SqliteSync::Normal).await.unwrap();
    let outbound = messages::Entity::find().count(store.conn()).await.unwrap();
    assert_eq!(
        outbound as usize,
        accepted.len() + 1,
        "accepted sends and W0"
    );
}

/// The same for a write that fails on PostgreSQL: its connection killed mid-transaction.
#[tokio::test]
async fn a_killed_database_connection_refuses_with_503_then_recovers() {
    on_each_backend(|db| async move {
        if db.backend != Backend::Postgres {
            return;
        }
        let (router, _) = setup(&db).await;
        receive(&router, &[inbound_from("K0", "+31612345600", "a")]).await;
        // Kill every other connection of this database, as a restart or a proxy would.
        let admin = Store::connect(&db.url, SqliteSync::Normal).await.unwrap();
        admin
            .conn()
            .execute_unprepared(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
        let mut acknowledged = vec!["K0".to_owned()];
        for i in 1..20 {
            let key = format!("K{i}");
            let from = format!("+316123456{i:02}");
            match router
                .receive_webhook("fake", signed(&[inbound_from(&key, &from, "b")]))
                .await
            {
                Ok(_) => acknowledged.push(key),
                Err(e) => assert_eq!(e.http_status(), 503, "{e}"),
            }
        }
        assert!(acknowledged.len() >= 15, "it recovered: {acknowledged:?}");
        let stored = webhook_events::Entity::find()
            .count(admin.conn())
            .await
            .unwrap();
        assert_eq!(stored as usize, acknowledged.len());
        admin.close().await.unwrap();
    })
    .await;
}

/// Serves the HTTP app for `router`; answers the URL of `/health`.
async fn serve_health(router: &Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let app = http::app(http::AppState::new(router.clone(), None));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// What a fresh connection finds in `tenants`.
async fn tenant_names(db: &TestDb) -> Vec<String> {
    let store = Store::connect(&db.url, SqliteSync::Normal).await.unwrap();
    let rows = store
        .conn()
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT name FROM tenants",
        ))
        .await
        .unwrap();
    store.close().await.unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// The mechanism: a commit that failed after SQLite rolled back, then a statement that
/// failed inside the next transaction, must not leave the writer inside a transaction that
/// never commits (every later "commit" would then only release a savepoint).
#[tokio::test]
async fn a_failed_commit_leaves_no_transaction_open_on_the_writer() {
    let db = fresh_db(Backend::Sqlite).await;
    let disk = Disk::default();
    let (router, _) = setup_with_disk(&db, &disk).await;
    let refuse = &disk.refuse_commits;
    let store = router.store();
    let insert = |name: &str, id: &str| {
        format!("INSERT INTO tenants (id, name, created_at) VALUES ('{id}', '{name}', 0)")
    };

    refuse.store(true, Relaxed);
    let txn = store.write_txn().await.unwrap();
    txn.execute_unprepared(&insert("lost", "ten_lost"))
        .await
        .unwrap();
    assert!(txn.commit().await.is_err(), "the commit hook refused it");
    refuse.store(false, Relaxed);

    // A statement that fails inside a transaction (a duplicate key), rolled back.
    let txn = store.write_txn().await.unwrap();
    let tenant_id = tenant_names(&db).await.len();
    assert_eq!(tenant_id, 1);
    let dup = txn
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT id FROM tenants",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert!(txn.execute_unprepared(&insert("dup", &dup)).await.is_err());
    drop(txn);

    // A transaction that commits is durable: another connection sees it.
    let txn = store.write_txn().await.unwrap();
    txn.execute_unprepared(&insert("kept", "ten_kept"))
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let names = tenant_names(&db).await;
    assert!(
        names.contains(&"kept".to_owned()),
        "a committed write is visible elsewhere: {names:?}"
    );
    assert!(!names.contains(&"lost".to_owned()));
}

/// Webhooks whose commit fails are refused with 503 (the provider retries); once commits
/// work again, webhooks are stored and acknowledged, and every acknowledged one is there.
#[tokio::test]
async fn webhooks_whose_commit_fails_are_refused_and_the_store_recovers() {
    let db = fresh_db(Backend::Sqlite).await;
    let disk = Disk::default();
    let (router, _) = setup_with_disk(&db, &disk).await;
    let refuse = &disk.refuse_commits;
    let health = serve_health(&router).await;
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for round in 0..6 {
        refuse.store(round % 3 == 1, Relaxed);
        let webhooks = (0..8).map(|j| {
            let i = round * 8 + j;
            let key = format!("E{i}");
            let from = format!("+316123{i:05}");
            let router = router.clone();
            async move {
                let r = router
                    .receive_webhook("fake", signed(&[inbound_from(&key, &from, "hi")]))
                    .await;
                (key, r)
            }
        });
        for (key, r) in futures::future::join_all(webhooks).await {
            match r {
                Ok(_) => acknowledged.push(key),
                Err(e) => {
                    assert_eq!(e.http_status(), 503, "{e}");
                    refused += 1;
                }
            }
        }
        let expected = if round % 3 == 1 { 503 } else { 200 };
        let answer = reqwest::get(&health).await.unwrap();
        assert_eq!(
            answer.status().as_u16(),
            expected,
            "/health after round {round}: {}",
            answer.text().await.unwrap()
        );
    }
    assert_eq!(refused, 16, "both refusing rounds were refused whole");
    let stored = stored_keys(&db).await;
    for key in &acknowledged {
        assert!(
            stored.contains(key),
            "{key} was acknowledged but not stored"
        );
    }
    assert_eq!(stored.len(), acknowledged.len());
}

/// A TCP proxy to `upstream` that can stop passing bytes (both ways) while keeping every
/// connection open: a database host that went silent, as behind a dead network path.
struct SilentableProxy {
    addr: std::net::SocketAddr,
    silent: Arc<AtomicBool>,
}

impl SilentableProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pass(client_read, server_write, flag.clone()));
                tokio::spawn(pass(server_read, client_write, flag.clone()));
            }
        });
        Self { addr, silent }
    }
}

/// Copies `from` to `to`, holding what it read while `silent` is set.
async fn pass(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    silent: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while silent.load(Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `/health` answers 503 within about a second when the database stops answering, not
/// after the pool's 10-second acquire timeout.
#[tokio::test]
async fn health_answers_503_within_a_second_when_the_database_goes_silent() {
    on_each_backend(|db| async move {
        if db.backend != Backend::Postgres {
            return;
        }
        let url = url::Url::parse(&db.url).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let proxy = SilentableProxy::start(upstream).await;
        let mut proxied = url.clone();
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(proxy.addr.port())).unwrap();
        let store = Store::connect(proxied.as_str(), SqliteSync::Normal)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let (router, _) = setup_on(&db, store).await;
        let health = serve_health(&router).await;
        assert_eq!(reqwest::get(&health).await.unwrap().status(), 200);
        proxy.silent.store(true, Relaxed);
        let started = std::time::Instant::now();
        let answer = reqwest::get(&health).await.unwrap();
        let took = started.elapsed();
        assert_eq!(answer.status(), 503);
        assert!(
            took < std::time::Duration::from_secs(3),
            "/health took {took:?} to say the database is gone"
        );
        proxy.silent.store(false, Relaxed);
    })
    .await;
}

/// A PostgreSQL connection killed in the middle of a write transaction: the commit fails,
/// nothing of it is stored, and the next transaction works on a fresh connection.
#[tokio::test]
async fn a_connection_killed_mid_transaction_loses_only_that_transaction() {
    on_each_backend(|db| async move {
        if db.backend != Backend::Postgres {
            return;
        }
        let (router, _) = setup(&db).await;
        let store = router.store();
        let admin = Store::connect(&db.url, SqliteSync::Normal).await.unwrap();
        let insert = |name: &str| {
            format!("INSERT INTO tenants (id, name, created_at) VALUES ('ten_{name}', '{name}', 0)")
        };
        let txn = store.write_txn().await.unwrap();
        txn.execute_unprepared(&insert("lost")).await.unwrap();
        let pid: i32 = txn
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT pg_backend_pid()",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index(0)
            .unwrap();
        admin
            .conn()
            .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
            .await
            .unwrap();
        assert!(txn.commit().await.is_err());
        let mut kept = false;
        for _ in 0..3 {
            let Ok(txn) = store.write_txn().await else {
                continue;
            };
            if txn.execute_unprepared(&insert("kept")).await.is_ok() && txn.commit().await.is_ok() {
                kept = true;
                break;
            }
        }
        assert!(kept, "a later transaction commits");
        let names: Vec<String> = admin
            .conn()
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT name FROM tenants ORDER BY name",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect();
        assert_eq!(names, ["acme", "kept"]);
        admin.close().await.unwrap();
    })
    .await;
}
