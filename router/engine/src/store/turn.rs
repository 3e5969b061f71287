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

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{Sqlite, SqlitePool};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, ExecResult, QueryResult, Statement,
};

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

    /// The connection, asking nothing: the store's own use (its pool, closing it).
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub(crate) fn into_connection(self) -> DatabaseConnection {
        self.conn
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

    /// Takes the turn (`Store::direct_writer`'s two connections), unless held already: waits
    /// for the sqlx writer's current work.
    ///
    /// # Errors
    /// sqlx's, when its pool cannot hand out the connection.
    pub(crate) async fn take(
        &mut self,
        direct: &DirectSqlite,
        sqlx_writer: &SqlitePool,
    ) -> Result<(), DbErr> {
        if self.held.is_none() {
            let conn = sqlx_writer
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
    pub(crate) fn pass_unless_queued(&mut self, direct: &DirectSqlite, more_queued: bool) {
        let Some(held) = &self.held else { return };
        let keep = more_queued
            && held.since.elapsed() < self.limit
            && direct.sqlx_write_asks() == held.asks_then;
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
