//! Migrations: run by several processes at once, and undone and redone on a database that
//! holds messages.

use sea_orm::ConnectionTrait;
use switchboard_migrations::MigratorTrait;

use crate::support::{self, Backend, binary};

#[tokio::test]
async fn two_processes_migrating_one_postgres_database_both_succeed() {
    if !support::postgres_configured() {
        return;
    }
    for round in 0..3 {
        let db = support::fresh_db(Backend::Postgres).await;
        let dir = tempfile::tempdir().unwrap();
        let mut a = binary::command(&db.url, dir.path());
        let mut b = binary::command(&db.url, dir.path());
        let (ra, rb) = tokio::join!(a.arg("migrate").output(), b.arg("migrate").output());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra.status.success(),
            "round {round}, first: {}",
            String::from_utf8_lossy(&ra.stderr)
        );
        assert!(
            rb.status.success(),
            "round {round}, second: {}",
            String::from_utf8_lossy(&rb.stderr)
        );
        let store = db.store().await;
        let n = store
            .conn()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT count(*) AS n FROM seaql_migrations",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(
            usize::try_from(n).unwrap(),
            switchboard_migrations::Migrator::migrations().len(),
            "each migration applied exactly once"
        );
        store.close().await.unwrap();
        db.cleanup().await;
    }
}

/// Undoes every migration from `name` (included) to the newest, whatever came after it.
pub async fn undo_down_to(conn: &sea_orm::DatabaseConnection, name: &str) {
    let migrations = switchboard_migrations::Migrator::migrations();
    let from = migrations
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no migration {name}"));
    let steps = u32::try_from(migrations.len() - from).unwrap();
    switchboard_migrations::Migrator::down(conn, Some(steps))
        .await
        .unwrap();
}

/// `ux_messages_idempotency` holds only messages with a key, and the migration that made it
/// so upgrades and downgrades a database holding messages; idempotency works either side.
#[tokio::test]
async fn the_idempotency_index_holds_keyed_messages_only_and_migrates_both_ways() {
    use crate::support::api::{ALICE, start};
    use serde_json::json;

    support::on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let send = |key: &str| {
            api.post(
                "/v1/messages",
                &api.admin,
                json!({"to": ALICE, "text": "once", "idempotency_key": key}),
            )
        };
        let first = send("k-1").await.expect(202, None).body["id"].clone();
        let conn = api.router.store().conn();
        let definition = || async {
            let backend = conn.get_database_backend();
            let sql = match backend {
                sea_orm::DatabaseBackend::Postgres => {
                    "SELECT indexdef AS d FROM pg_indexes WHERE indexname = 'ux_messages_idempotency'"
                }
                _ => "SELECT sql AS d FROM sqlite_master WHERE name = 'ux_messages_idempotency'",
            };
            let row = conn
                .query_one_raw(sea_orm::Statement::from_string(backend, sql))
                .await
                .unwrap()
                .expect("the index exists");
            row.try_get::<String>("", "d").unwrap()
        };
        assert!(definition().await.contains("IS NOT NULL"), "{}", definition().await);

        undo_down_to(conn, "m20261210_000001_idempotency_partial").await;
        assert!(!definition().await.contains("IS NOT NULL"), "{}", definition().await);
        switchboard_migrations::Migrator::up(conn, None).await.unwrap();
        assert!(definition().await.contains("IS NOT NULL"), "{}", definition().await);

        // The key kept across both migrations still answers the first message; a new key
        // sends a new one.
        assert_eq!(send("k-1").await.expect(202, None).body["id"], first);
        assert_ne!(send("k-2").await.expect(202, None).body["id"], first);
        assert_eq!(api.deliver_all().await, 2);
    })
    .await;
}
