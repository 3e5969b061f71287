//! Migrations run by several processes at once.

use sea_orm::ConnectionTrait;
use switchboard_migrations::MigratorTrait;

use crate::support::{self, Backend, binary};

#[tokio::test]
async fn two_processes_migrating_one_postgres_database_both_succeed() {
    if !support::backends().contains(&Backend::Postgres) {
        eprintln!(
            "SWITCHBOARD_TEST_POSTGRES_URL is not set: this PostgreSQL-only test checks nothing here"
        );
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
