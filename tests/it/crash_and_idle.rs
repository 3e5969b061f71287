//! After a crash, a send that may have reached the provider waits for a status proving it
//! before it is sent again; an idle server writes nothing. On SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use switchboard_core::MessageStatus;
use switchboard_core::testing::FakeAdapter;
use switchboard_router::store::entity::{messages, outbox};
use switchboard_router::{DeliveryConfig, Router};

use crate::support::fake::{inbound_from, receive, status, text_to};
use crate::support::{TestDb, fake_site_with, on_each_backend};

const ALICE: &str = "+31612345678";
const BOB: &str = "+31612345679";
const GRACE: Duration = Duration::from_millis(1_500);

async fn router_on(db: &TestDb, fake: &FakeAdapter, cfg: DeliveryConfig) -> (Router, String) {
    let site = fake_site_with(db.store().await, fake.clone(), |b| b.delivery(cfg)).await;
    (site.router, site.tenant)
}

async fn send_text(router: &Router, tenant: &str, to: &str, key: &str) -> String {
    receive(router, &[inbound_from(key, to, "hi")]).await;
    router
        .send(tenant, text_to(to, "your order shipped"))
        .await
        .unwrap()
        .id
}

/// What a process killed between claiming and recording an outcome leaves behind: its
/// entries still leased to it, the lease expired.
async fn leave_as_a_killed_process_would(router: &Router) {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LockedBy, Expr::value("dead-process"))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(switchboard_router::ids::now_ms() - 1),
        )
        .exec(router.store().conn())
        .await
        .unwrap();
}

fn sends_of(fake: &FakeAdapter, id: &str) -> usize {
    fake.sent().iter().filter(|(_, m)| m.id == id).count()
}

async fn in_outbox(router: &Router, id: &str) -> bool {
    outbox::Entity::find()
        .filter(outbox::Column::MessageId.eq(id))
        .count(router.store().conn())
        .await
        .unwrap()
        > 0
}

/// Policy (README "Delivery", crashes): a message whose send may have begun before a crash
/// is not sent again at once; a status naming it within the grace proves the provider has
/// it (and it is never resent); without one it is sent again after the grace, once.
#[tokio::test]
async fn a_send_in_doubt_after_a_crash_waits_for_a_status_before_it_is_resent() {
    on_each_backend(|db| async move {
        let fake = FakeAdapter::new();
        let cfg = DeliveryConfig {
            in_doubt_grace: GRACE,
            ..DeliveryConfig::default()
        };
        let (router, tenant) = router_on(&db, &fake, cfg).await;
        let reached = send_text(&router, &tenant, ALICE, "in-a").await;
        let lost = send_text(&router, &tenant, BOB, "in-b").await;
        leave_as_a_killed_process_would(&router).await;

        let recovered = Instant::now();
        router.delivery().deliver_due().await.unwrap();
        router.delivery().deliver_due().await.unwrap();
        assert!(fake.sent().is_empty(), "nothing is resent at once");
        assert!(in_outbox(&router, &reached).await && in_outbox(&router, &lost).await);

        // The provider reports the first one, echoing our id (Twilio's callback URL, Meta's
        // `biz_opaque_callback_data`), under the id it gave it before the crash.
        receive(
            &router,
            &[status(
                "st-1",
                "fake-before-crash",
                Some(&reached),
                MessageStatus::Delivered,
            )],
        )
        .await;
        assert!(
            !in_outbox(&router, &reached).await,
            "the status proves it arrived"
        );
        let row = messages::Entity::find_by_id(reached.clone())
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.status.as_str(), row.provider_message_id.as_deref()),
            ("delivered", Some("fake-before-crash"))
        );

        // The other waits out the grace, then goes once.
        let deadline = Instant::now() + Duration::from_secs(20);
        while in_outbox(&router, &lost).await {
            assert!(Instant::now() < deadline, "the message was never resent");
            router.delivery().deliver_due().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            recovered.elapsed() >= GRACE,
            "resent before the grace was over"
        );
        for _ in 0..3 {
            router.delivery().deliver_due().await.unwrap();
        }
        assert_eq!(sends_of(&fake, &lost), 1, "resent exactly once");
        assert_eq!(sends_of(&fake, &reached), 0, "never resent");
        let row = messages::Entity::find_by_id(lost.clone())
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "accepted");
    })
    .await;
}

/// The database's files that a write changes (not `-shm`, which readers touch too), with
/// their sizes and modification times.
fn file_marks(db: &TestDb) -> Vec<(String, Option<(u64, std::time::SystemTime)>)> {
    let Some(dir) = db.dir() else {
        return Vec::new();
    };
    ["switchboard.db", "switchboard.db-wal"]
        .iter()
        .map(|name| {
            let meta = std::fs::metadata(dir.join(name)).ok();
            (
                (*name).to_owned(),
                meta.map(|m| (m.len(), m.modified().unwrap())),
            )
        })
        .collect()
}

/// What the background workers write when they run: their queues and the leases.
async fn worker_rows(router: &Router) -> Vec<String> {
    let db = router.store().conn();
    let mut rows = Vec::new();
    for sql in [
        "SELECT account_id || ':' || holder || ':' || expires_at AS r FROM sender_leases",
        "SELECT worker_id || ':' || seen_at AS r FROM delivery_workers",
        "SELECT message_id || ':' || next_attempt_at || ':' || COALESCE(locked_until, 0) AS r FROM outbox",
        "SELECT id || ':' || next_attempt_at || ':' || COALESCE(locked_until, 0) AS r FROM notifications",
    ] {
        for row in db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
        {
            rows.push(row.try_get::<String>("", "r").unwrap());
        }
    }
    rows.sort();
    rows
}

async fn wait_sent(fake: &FakeAdapter, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while fake.sent().len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} sends reached the provider",
            fake.sent().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_outbox_empty(router: &Router) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox::Entity::find()
        .count(router.store().conn())
        .await
        .unwrap()
        > 0
    {
        assert!(Instant::now() < deadline, "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Policy: an idle server writes nothing. Its workers look for work often here (the idle
/// poll is 100 ms, reconciliation every 200 ms), and looking only reads; a sender lease it
/// no longer needs is left to lapse rather than renewed.
#[tokio::test]
async fn an_idle_engine_writes_nothing() {
    on_each_backend(|db| async move {
        let fake = FakeAdapter::new();
        let cfg = DeliveryConfig {
            idle_poll: Duration::from_millis(100),
            poll_interval: Duration::from_millis(50),
            // Reconciliation and the pending-status clean-up run often too.
            reconcile_every: Duration::from_millis(200),
            ..DeliveryConfig::default()
        };
        let (router, tenant) = router_on(&db, &fake, cfg).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let engine = tokio::spawn({
            let router = router.clone();
            async move { router.run_workers(stopped).await }
        });
        // Some work first, so that every worker has run and a sender lease was taken.
        send_text(&router, &tenant, ALICE, "in-1").await;
        wait_sent(&fake, 1, Duration::from_secs(20)).await;
        wait_outbox_empty(&router).await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        let (files, rows) = (file_marks(&db), worker_rows(&router).await);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            file_marks(&db),
            files,
            "the database files changed while idle"
        );
        assert_eq!(worker_rows(&router).await, rows, "rows changed while idle");

        stop.send(true).unwrap();
        engine.await.unwrap();
    })
    .await;
}

/// Policy: work queued in the process wakes its engine at once; the idle poll (an hour
/// here) is only a safety net for work other processes queue.
#[tokio::test]
async fn a_send_wakes_an_idle_engine() {
    on_each_backend(|db| async move {
        let fake = FakeAdapter::new();
        let cfg = DeliveryConfig {
            idle_poll: Duration::from_secs(3_600),
            ..DeliveryConfig::default()
        };
        let (router, tenant) = router_on(&db, &fake, cfg).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let engine = tokio::spawn({
            let router = router.clone();
            async move { router.run_workers(stopped).await }
        });
        for (i, to) in [ALICE, BOB, ALICE].into_iter().enumerate() {
            // Idle for a while between sends: every worker is asleep when it comes.
            tokio::time::sleep(Duration::from_millis(500)).await;
            send_text(&router, &tenant, to, &format!("in-{i}")).await;
            wait_sent(&fake, i + 1, Duration::from_secs(60)).await;
        }
        stop.send(true).unwrap();
        engine.await.unwrap();
    })
    .await;
}

/// Log lines written while the guard lives, on this thread (a `#[tokio::test]` runs on one).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Policy: a message that will not be delivered (a permanent error, retries used up, an
/// ambiguous outcome) logs exactly one line at WARN with its id, channel and error code,
/// never the recipient's number or the provider's text.
#[tokio::test]
async fn a_message_that_finally_fails_logs_one_warning() {
    use switchboard_core::ChannelError;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    on_each_backend(|db| {
        let captured = captured.clone();
        async move {
            let fake = FakeAdapter::new();
            let cfg = DeliveryConfig {
                max_attempts: 2,
                base_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                ..DeliveryConfig::default()
            };
            let (router, tenant) = router_on(&db, &fake, cfg).await;
            fake.fail_next(
                ChannelError::permanent(format!("The 'To' number {ALICE} is not valid"))
                    .with_provider_code("21211"),
            );
            let permanent = send_text(&router, &tenant, ALICE, "in-1").await;
            for code in ["T1", "T2"] {
                fake.fail_next(ChannelError::transient("outage").with_provider_code(code));
            }
            let exhausted = send_text(&router, &tenant, BOB, "in-2").await;
            let deadline = Instant::now() + Duration::from_secs(20);
            while outbox::Entity::find()
                .count(router.store().conn())
                .await
                .unwrap()
                > 0
            {
                assert!(Instant::now() < deadline, "the outbox did not drain");
                router.delivery().deliver_due().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let lines = captured.lines();
            for (id, code) in [(&permanent, "21211"), (&exhausted, "T2")] {
                let about: Vec<&String> =
                    lines.iter().filter(|l| l.contains(id.as_str())).collect();
                assert_eq!(about.len(), 1, "{about:#?}");
                let line = about[0];
                assert!(line.contains(" WARN "), "{line}");
                assert!(line.contains("channel=fake"), "{line}");
                assert!(
                    line.contains(&format!("code=\"{code}\""))
                        || line.contains(&format!("code={code}")),
                    "{line}"
                );
            }
            assert!(!lines.iter().any(|l| l.contains(" ERROR ")), "{lines:#?}");
            let warnings: Vec<&String> = lines.iter().filter(|l| l.contains(" WARN ")).collect();
            for number in [&ALICE[1..], &BOB[1..]] {
                assert!(
                    !warnings.iter().any(|l| l.contains(number)),
                    "a phone number was logged: {warnings:#?}"
                );
            }
        }
    })
    .await;
}
