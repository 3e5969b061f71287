//! Whose turn it is to write a SQLite file in this process: the inbound writer's or sqlx's.
//!
//! A SQLite file has two writer connections ([`super::direct`]): the sqlx writer, a pool of
//! one that every other write takes (`Store::write_conn`), and the inbound writer's own. The
//! inbound writer takes its turn by holding the sqlx writer's only connection, so the two
//! queue in the process instead of in SQLite's busy handler.
//!
//! Taking that connection back costs more than it seems: sqlx returns a connection to its
//! pool from a task on tokio's workers that first pings it on the connection's own thread,
//! and the next `acquire` waits for both. Taken and given back per batch, that was 0.4–0.5
//! ms of every 2.5-ms batch under load (BENCHMARKS.md, Session 12). So the inbound writer
//! keeps its turn from one batch to the next while webhooks are queued and no other write
//! has asked for the sqlx writer since it took the turn, and for at most [`MAX_TURN`]
//! against a write that reaches the pool without asking. Every statement and transaction
//! through [`WriteConnection`] (`Store::write_conn`) asks first
//! ([`super::direct::DirectSqlite::sqlx_write_asks`] counts the asks), so a write waits for
//! the batch in progress and at most one more, as it did when every batch gave the turn back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sqlx::Sqlite;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, ExecResult, QueryResult, Statement,
};

use super::Store;
use super::direct::DirectSqlite;

/// The connection writes outside the group commit take (`Store::write_conn`): on a SQLite
/// file the sqlx writer, whose every statement (and transaction) first asks the inbound
/// writer for its turn; elsewhere the store's pool, as is.
#[derive(Clone, Debug)]
pub struct WriteConnection {
    conn: DatabaseConnection,
    direct: Option<Arc<DirectSqlite>>,
}

impl WriteConnection {
    pub(crate) fn new(conn: DatabaseConnection, direct: Option<Arc<DirectSqlite>>) -> Self {
        Self { conn, direct }
    }

    /// Asks for the turn, then gives the connection to begin a transaction on.
    pub(crate) fn for_transaction(&self) -> &DatabaseConnection {
        self.ask();
        &self.conn
    }

    fn ask(&self) {
        if let Some(direct) = &self.direct {
            direct.ask_for_sqlx_writer();
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteConnection {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.ask();
        self.conn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.ask();
        self.conn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.ask();
        self.conn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.ask();
        self.conn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.conn.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.conn.is_mock_connection()
    }
}

/// The longest the inbound writer keeps its turn across batches.
pub(crate) const MAX_TURN: Duration = Duration::from_millis(50);

/// The inbound writer's turn: the sqlx writer connection, while held.
pub(crate) struct WriterTurn {
    held: Option<Held>,
    limit: Duration,
}

struct Held {
    /// Holding it is the turn; dropping it gives the turn back.
    _sqlx_writer: PoolConnection<Sqlite>,
    since: Instant,
    /// `sqlx_write_asks` when the turn was taken.
    asks_then: u64,
}

impl Default for WriterTurn {
    fn default() -> Self {
        Self::with_limit(MAX_TURN)
    }
}

impl WriterTurn {
    /// A turn kept across batches for at most `limit`.
    pub(crate) fn with_limit(limit: Duration) -> Self {
        Self { held: None, limit }
    }

    /// Takes the turn, unless held already: waits for the sqlx writer's current work. A store
    /// without a direct writer (PostgreSQL, in-memory SQLite) has no turns to take.
    ///
    /// # Errors
    /// sqlx's, when its pool cannot hand out the connection.
    pub(crate) async fn take(&mut self, store: &Store) -> Result<(), DbErr> {
        let Some((direct, pool)) = store.direct_writer() else {
            return Ok(());
        };
        if self.held.is_none() {
            let conn = pool
                .acquire()
                .await
                .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
            self.held = Some(Held {
                _sqlx_writer: conn,
                since: Instant::now(),
                asks_then: direct.sqlx_write_asks(),
            });
        }
        Ok(())
    }

    /// After a batch: gives the turn back, unless more webhooks are queued, no other write
    /// asked for the sqlx writer since the turn was taken, and the turn is younger than its
    /// limit. Must run inside the tokio runtime (sqlx returns the connection from a task).
    pub(crate) fn pass_unless_queued(&mut self, store: &Store, more_queued: bool) {
        let Some(held) = &self.held else { return };
        let keep = more_queued
            && held.since.elapsed() < self.limit
            && store
                .direct_writer()
                .is_some_and(|(direct, _)| direct.sqlx_write_asks() == held.asks_then);
        if !keep {
            self.held = None;
        }
    }

    /// Tests: whether the turn is held.
    #[cfg(test)]
    pub(crate) fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteSync;
    use sea_orm::ConnectionTrait;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}/turn.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// A write through the sqlx writer, failing the test if it waits more than 10 s.
    async fn sqlx_write(
        write: impl std::future::Future<Output = Result<sea_orm::ExecResult, DbErr>>,
    ) {
        tokio::time::timeout(Duration::from_secs(10), write)
            .await
            .expect("the sqlx writer is handed out")
            .expect("the write succeeds");
    }

    const WRITE: &str = "CREATE TABLE IF NOT EXISTS turn_probe (x INTEGER)";

    #[tokio::test]
    async fn the_turn_is_kept_while_webhooks_queue_and_given_back_when_none_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut turn = WriterTurn::default();
        turn.take(&store).await.unwrap();
        assert!(turn.is_held());
        // While it is held, the sqlx writer's only connection is taken.
        let pool = store.direct_writer().unwrap().1;
        assert!(pool.try_acquire().is_none());

        turn.pass_unless_queued(&store, true);
        assert!(turn.is_held(), "more webhooks queued and nobody else asked");
        turn.take(&store).await.unwrap(); // held: no second acquire (it would wait forever)

        turn.pass_unless_queued(&store, false);
        assert!(!turn.is_held(), "nothing queued: the turn goes back");
        sqlx_write(store.write_conn().execute_unprepared(WRITE)).await;
    }

    #[tokio::test]
    async fn a_write_that_asks_for_the_sqlx_writer_gets_it_after_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        // Taken before the turn: each statement asks, not taking the connection.
        let db = store.write_conn().clone();
        let mut turn = WriterTurn::default();
        turn.take(&store).await.unwrap();
        // Another write asks (it waits for the pool while the turn is held)...
        let write = tokio::spawn(async move { sqlx_write(db.execute_unprepared(WRITE)).await });
        while store.direct_writer().unwrap().0.sqlx_write_asks() == 0 {
            tokio::task::yield_now().await;
        }
        // ...so the next batch's end gives the turn back although webhooks are queued.
        turn.pass_unless_queued(&store, true);
        assert!(!turn.is_held());
        write.await.unwrap();
        // The next turn starts from the asks counted so far: kept again while nobody asks.
        turn.take(&store).await.unwrap();
        turn.pass_unless_queued(&store, true);
        assert!(turn.is_held());
    }

    #[tokio::test]
    async fn a_write_transaction_asks_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut turn = WriterTurn::default();
        turn.take(&store).await.unwrap();
        let asking = store.clone();
        let txn = tokio::spawn(async move {
            let txn = tokio::time::timeout(Duration::from_secs(10), asking.write_txn())
                .await
                .expect("the sqlx writer is handed out")
                .unwrap();
            txn.execute_unprepared(WRITE).await.unwrap();
            txn.commit().await.unwrap();
        });
        while store.direct_writer().unwrap().0.sqlx_write_asks() == 0 {
            tokio::task::yield_now().await;
        }
        turn.pass_unless_queued(&store, true);
        assert!(!turn.is_held());
        txn.await.unwrap();
    }

    #[tokio::test]
    async fn a_turn_older_than_its_limit_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut turn = WriterTurn::with_limit(Duration::ZERO);
        turn.take(&store).await.unwrap();
        turn.pass_unless_queued(&store, true);
        assert!(!turn.is_held());
        sqlx_write(store.write_conn().execute_unprepared(WRITE)).await;
    }

    #[tokio::test]
    async fn an_in_memory_store_has_no_turns() {
        let store = Store::connect("sqlite::memory:", SqliteSync::Full)
            .await
            .unwrap();
        let mut turn = WriterTurn::default();
        turn.take(&store).await.unwrap();
        assert!(!turn.is_held());
    }
}
