//! Persistence over sea-orm: one codebase for SQLite (the embedded default) and PostgreSQL.
//!
//! Durability: every webhook and every `send()` is committed before it is acknowledged.
//! SQLite runs in WAL mode with `synchronous=FULL` by default, so an acknowledged write
//! survives a process crash *and* a power loss (the WAL is fsynced at each commit);
//! `SWITCHBOARD_SQLITE_SYNCHRONOUS=normal` trades the power-loss guarantee (the last
//! commits before the outage may roll back) for fewer fsyncs. PostgreSQL's durability is
//! its own (`synchronous_commit=on` by default).

pub mod crypto;
pub(crate) mod direct;
pub mod entity;
pub(crate) mod json_rows;
pub(crate) mod queue;
pub mod turn;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, SqlErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use switchboard_migrations::{Migrator, MigratorTrait};

/// An arbitrary constant: the PostgreSQL advisory lock that serializes migrations.
const MIGRATION_LOCK_KEY: i64 = 0x5357_4254_4348; // "SWBTCH"

/// How hard SQLite syncs to disk at commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// fsync the WAL at every commit: acknowledged writes survive a power loss.
    #[default]
    Full,
    /// fsync at checkpoints only: acknowledged writes survive a process crash.
    Normal,
}

/// SQLite connections that read (and write outside `write_txn`), beside the writer's one.
const SQLITE_READERS: u32 = 3;
/// A PostgreSQL connection idle this long is pinged before it is handed out.
const PG_PING_WHEN_IDLE: Duration = Duration::from_secs(10);
/// Prepared statements each SQLite connection keeps.
const SQLITE_STATEMENT_CACHE: usize = 16;

/// Runs on each new sqlx SQLite connection (see [`SqliteConnectHook`]).
pub type SqlxConnectHook = std::sync::Arc<
    dyn for<'c> Fn(
            &'c mut sea_orm::sqlx::SqliteConnection,
        ) -> futures::future::BoxFuture<'c, Result<(), sea_orm::sqlx::Error>>
        + Send
        + Sync,
>;

pub use direct::DirectConnectHook;

/// What to run on every SQLite connection the store opens, whichever driver opens it (see
/// [`Store::connect_with`]; tests use it to limit a database's size or refuse commits).
#[derive(Clone)]
pub struct SqliteConnectHook {
    pub sqlx: SqlxConnectHook,
    pub direct: DirectConnectHook,
}

/// The database handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// What writes take (`write_conn`, `write_txn`). On a SQLite file its own pool of one
    /// connection, so writes queue here instead of in SQLite's busy handler and its page
    /// cache stays valid (it made every change), asking the inbound writer for the turn
    /// ([`turn`]); PostgreSQL and in-memory SQLite write through `db`.
    write: turn::WriteConnection,
    /// SQLite file: the inbound group commit's own connection ([`direct`]).
    direct: Option<Arc<direct::DirectSqlite>>,
    writes: Arc<WriteHealth>,
}

/// Whether writes currently fail, for `/health`: set by a write that failed for a reason
/// other than the data (a full disk, an I/O error, a lost connection), cleared by the next
/// one that commits. Only recent failures count: with no writes at all there is nothing to
/// report, and the next write tells the truth again.
#[derive(Debug, Default)]
pub struct WriteHealth {
    last_failure_ms: AtomicI64,
    last_success_ms: AtomicI64,
    /// Write transactions run again after losing a race to a concurrent one.
    retried: AtomicU64,
}

/// How long a write failure keeps `/health` unhealthy when no write follows it.
const WRITE_FAILURE_REPORTED_FOR_MS: i64 = 60_000;

impl WriteHealth {
    fn failed(&self) {
        self.last_failure_ms
            .store(crate::ids::now_ms(), Ordering::Relaxed);
    }

    fn succeeded(&self) {
        // Only after a failure: a healthy hot path does not touch the shared cache line.
        if self.last_failure_ms.load(Ordering::Relaxed) != 0 {
            self.last_success_ms
                .store(crate::ids::now_ms(), Ordering::Relaxed);
        }
    }

    /// Whether the last write failed, recently.
    pub fn failing(&self) -> bool {
        let failure = self.last_failure_ms.load(Ordering::Relaxed);
        failure != 0
            && failure >= self.last_success_ms.load(Ordering::Relaxed)
            && crate::ids::now_ms() - failure < WRITE_FAILURE_REPORTED_FOR_MS
    }

    /// Records the outcome of a write: errors about the data itself (a constraint) say
    /// nothing about the store's health.
    fn record<T, E: DbFailure>(&self, outcome: &Result<T, E>) {
        match outcome {
            Ok(_) => self.succeeded(),
            Err(e) => {
                if e.db_err().is_some_and(|d| !is_about_the_data(d)) {
                    self.failed();
                }
            }
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite://file.db?mode=rwc`, `sqlite::memory:` or `postgres://…`).
    ///
    /// # Errors
    /// The database error when the connection cannot be made.
    pub async fn connect(url: &str, sqlite_sync: SqliteSync) -> Result<Self, DbErr> {
        Self::connect_with(url, sqlite_sync, None).await
    }

    /// [`Store::connect`], running `on_sqlite_connect` on every SQLite connection it opens
    /// (tests use it to limit a database's size or refuse commits on every connection).
    ///
    /// # Errors
    /// The database error when the connection cannot be made.
    pub async fn connect_with(
        url: &str,
        sqlite_sync: SqliteSync,
        on_sqlite_connect: Option<SqliteConnectHook>,
    ) -> Result<Self, DbErr> {
        let mut opts = ConnectOptions::new(url.to_owned());
        // SQL text can contain phone numbers: keep it out of logs and spans.
        opts.sqlx_logging(false)
            .record_stmt_in_spans(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10));
        if !url.starts_with("sqlite:") {
            // A connection is pinged before use only after it sat idle (when a server
            // restart, proxy or firewall may have dropped it): pinging a busy one is a
            // network round trip per transaction for nothing.
            opts.max_connections(16)
                .min_connections(1)
                .test_before_acquire_if_idle_for(PG_PING_WHEN_IDLE);
            let db = Database::connect(opts).await?;
            return Ok(Self {
                write: turn::WriteConnection::new(db.clone(), None),
                db,
                direct: None,
                writes: Arc::default(),
            });
        }
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // WAL: many readers, one writer; every write transaction is IMMEDIATE. Few
        // connections and a small statement cache per connection keep memory flat:
        // statements whose text differs by row count (delivery's batch writes; inbound's
        // did until they took their rows as one JSON parameter) fill a large cache with
        // one-off statements (8 connections × 100 cached statements grew the heap by
        // about 20 MB in a 3-minute soak) without making anything faster (BENCHMARKS.md).
        // Nothing is tested before a connection is handed out: the default ping of an
        // embedded file is one more hand-off to the connection's thread per checkout.
        let pool = |connections: u32| {
            let mut o = opts.clone();
            o.max_connections(connections)
                .min_connections(1)
                .test_before_acquire(false)
                .map_sqlx_sqlite_pool_opts({
                    let hook = on_sqlite_connect.clone();
                    move |o| {
                        let o = o.after_release(release_only_when_clean);
                        match hook.clone() {
                            Some(hook) => o.after_connect(move |conn, _| (hook.sqlx)(conn)),
                            None => o,
                        }
                    }
                })
                .map_sqlx_sqlite_opts(move |o| {
                    let o = o
                        .statement_cache_capacity(SQLITE_STATEMENT_CACHE)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                        .synchronous(match sqlite_sync {
                            SqliteSync::Full => SqliteSynchronous::Full,
                            SqliteSync::Normal => SqliteSynchronous::Normal,
                        });
                    if in_memory {
                        o
                    } else {
                        o.journal_mode(SqliteJournalMode::Wal)
                    }
                });
            o
        };
        if in_memory {
            // Every connection to `:memory:` is a database of its own: one does everything.
            let db = Database::connect(pool(1)).await?;
            return Ok(Self {
                write: turn::WriteConnection::new(db.clone(), None),
                db,
                direct: None,
                writes: Arc::default(),
            });
        }
        let db = Database::connect(pool(SQLITE_READERS)).await?;
        let writer = Database::connect(pool(1)).await?;
        let path = url
            .parse::<sea_orm::sqlx::sqlite::SqliteConnectOptions>()
            .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e))))?
            .get_filename()
            .to_owned();
        let synchronous = match sqlite_sync {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        };
        let direct = Arc::new(direct::DirectSqlite::open(
            path,
            synchronous,
            on_sqlite_connect.map(|h| h.direct),
        )?);
        Ok(Self {
            write: turn::WriteConnection::new(writer, Some(direct.clone())),
            db,
            direct: Some(direct),
            writes: Arc::default(),
        })
    }

    /// Applies pending migrations. On PostgreSQL several processes may start at once: an
    /// advisory lock held for the migration transaction makes the others wait, then find
    /// nothing to do.
    ///
    /// # Errors
    /// The database error of the failing migration; nothing of it is applied.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        match self.backend() {
            DatabaseBackend::Postgres => {
                let txn = self.db.begin().await?;
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .await?;
                Migrator::up(&txn, None).await?;
                txn.commit().await
            }
            _ => Migrator::up(&self.db, None).await,
        }
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection for a write outside a transaction (one statement). On a SQLite file
    /// that is the writer's connection, so writes queue for it instead of sleeping in
    /// SQLite's busy handler while another connection holds the write lock, and each of its
    /// statements asks the inbound writer for its turn ([`turn`]).
    pub fn write_conn(&self) -> &turn::WriteConnection {
        &self.write
    }

    /// A SQLite file: the inbound group commit's own connection, and the sqlx writer
    /// connection's pool (of one), which the group commit holds while it writes so that the
    /// two writers take turns ([`turn`]). `None` on PostgreSQL and in-memory SQLite.
    pub(crate) fn direct_writer(
        &self,
    ) -> Option<(&Arc<direct::DirectSqlite>, &sea_orm::sqlx::SqlitePool)> {
        Some((
            self.direct.as_ref()?,
            self.write.connection().get_sqlite_connection_pool(),
        ))
    }

    /// Runs `f` on the inbound writer's own SQLite connection, if there is one (tests change
    /// its limits through this, as they do the sqlx writer's through [`Store::write_conn`]).
    #[doc(hidden)]
    pub fn with_inbound_writer_connection<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> T,
    ) -> Option<T> {
        self.direct.as_ref().map(|d| d.with_connection(f))
    }

    /// Begins a read-write transaction: IMMEDIATE on SQLite, so it takes the write lock
    /// up front instead of failing with SQLITE_BUSY when a read upgrades to a write.
    ///
    /// # Errors
    /// The database error when the transaction cannot begin.
    pub async fn write_txn(&self) -> Result<DatabaseTransaction, DbErr> {
        self.write
            .for_transaction()
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// Whether the database answers within `within`.
    pub async fn ping(&self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.db.ping()).await,
            Ok(Ok(()))
        )
    }

    /// How many write transactions ran again after losing a race to a concurrent one
    /// (`retry_conflicts`): work done twice, for tests and operators.
    pub fn transactions_retried(&self) -> u64 {
        self.writes.retried.load(Ordering::Relaxed)
    }

    /// Whether writes currently fail (see [`WriteHealth`]).
    pub fn writes_failing(&self) -> bool {
        self.writes.failing()
    }

    /// Runs the write transaction `op`, again (up to `TXN_ATTEMPTS` in all) when it lost a
    /// race to a concurrent one (`is_retryable_db`), and records whether writes work. `op`
    /// must be idempotent as a whole: a failed attempt rolled back everything it wrote.
    pub(crate) async fn retry_conflicts<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, E>
    where
        E: DbFailure,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let outcome = retry_conflicts(what, op, &self.writes.retried).await;
        self.writes.record(&outcome);
        outcome
    }

    /// Closes the pool (checkpointing SQLite's WAL).
    ///
    /// # Errors
    /// The database error while closing.
    pub async fn close(self) -> Result<(), DbErr> {
        if self.direct.is_some() {
            // A SQLite file's writer pool of its own (elsewhere `write` is `db`).
            self.write.into_connection().close().await?;
        }
        self.db.close().await
    }
}

/// Keeps a SQLite connection for reuse only if no transaction is left open on it.
///
/// SQLite rolls a whole transaction back by itself when a write fails in some ways (a full
/// disk or an I/O error at commit, or in a statement without a statement journal). sqlx
/// then still counts the transaction as open: its `ROLLBACK` fails ("no transaction is
/// active"), so the next `BEGIN` would become a `SAVEPOINT`, and after one more failed
/// statement its `ROLLBACK TO` leaves a real transaction open that no later "commit" (a
/// `RELEASE`) ever commits: every write acknowledged, none stored. A connection whose
/// transaction did not end cleanly is closed instead (which rolls back whatever SQLite still
/// holds), and the pool opens a fresh one.
fn release_only_when_clean(
    conn: &mut sea_orm::sqlx::SqliteConnection,
    _: sea_orm::sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sea_orm::sqlx::Error>> {
    use sea_orm::sqlx::Connection;
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        // A dropped transaction's rollback is queued on the connection's worker: let it run.
        conn.ping().await?;
        let clean = !conn.is_in_transaction();
        if !clean {
            tracing::warn!(
                "A write transaction did not end cleanly; its SQLite connection is replaced."
            );
        }
        Ok(clean)
    })
}

/// Whether the database refused a value itself (SQLSTATE class 22, "data exception": text
/// with U+0000, a number out of range): the request's fault, not the store's.
pub fn is_data_exception(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code.starts_with("22")),
        _ => false,
    }
}

/// A boolean expression's value (`EXISTS …`): PostgreSQL types it, SQLite answers 0 or 1,
/// and only sqlx's SQLite driver reads that as a boolean ([`direct`] types it by value).
pub(crate) fn flag(row: &sea_orm::QueryResult, column: &str) -> Result<bool, DbErr> {
    row.try_get::<bool>("", column)
        .or_else(|_| row.try_get::<i64>("", column).map(|n| n != 0))
}

/// Whether `err` is a unique-constraint violation, on either backend and either SQLite
/// driver ([`direct`] reports its errors as sqlx database errors of their kind).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
        || database_error_kind(err) == Some(sea_orm::sqlx::error::ErrorKind::UniqueViolation)
}

/// Whether the database refused the data itself (a constraint, a value it cannot hold),
/// which says nothing about the store's health.
pub(crate) fn is_about_the_data(err: &DbErr) -> bool {
    err.sql_err().is_some()
        || is_data_exception(err)
        || database_error_kind(err).is_some_and(|k| k != sea_orm::sqlx::error::ErrorKind::Other)
}

fn database_error_kind(err: &DbErr) -> Option<sea_orm::sqlx::error::ErrorKind> {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            e.as_database_error().map(|d| d.kind())
        }
        _ => None,
    }
}

/// Most values in one `IN (…)` list; longer lists are read or written in chunks.
pub(crate) const IN_LIST_MAX: usize = 500;

/// Attempts at a write transaction that lost a race to a concurrent one.
const TXN_ATTEMPTS: u32 = 3;

/// Whether a failed transaction lost a race that a fresh attempt resolves: a deadlock or
/// serialization failure, or a unique key a concurrent transaction took first (the retry
/// finds the winner's row).
pub(crate) fn is_retryable_db(err: &DbErr) -> bool {
    let text = err.to_string();
    text.contains("deadlock") || text.contains("could not serialize") || is_unique_violation(err)
}

/// An error that may carry a database error (for `retry_conflicts`).
pub(crate) trait DbFailure: std::fmt::Display {
    fn db_err(&self) -> Option<&DbErr>;
}

impl DbFailure for DbErr {
    fn db_err(&self) -> Option<&DbErr> {
        Some(self)
    }
}

/// Runs the write transaction `op`, again (up to `TXN_ATTEMPTS` in all) when it lost a race
/// to a concurrent one (`is_retryable_db`). `op` must be idempotent as a whole: a failed
/// attempt rolled back everything it wrote.
async fn retry_conflicts<T, E, F, Fut>(what: &str, mut op: F, retried: &AtomicU64) -> Result<T, E>
where
    E: DbFailure,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < TXN_ATTEMPTS && e.db_err().is_some_and(is_retryable_db) => {
                tracing::debug!(error = %e, attempt, "Retrying the transaction of a {what}.");
                retried.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// The inbound writer's connection ([`direct`]) against the real schema.
#[cfg(test)]
mod direct_writer_tests {
    use sea_orm::{ActiveValue::Set, EntityTrait};

    use sea_orm::{DatabaseBackend, Statement};

    use super::*;
    use crate::store::entity::channel_accounts;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
        let store = Store::connect(&url, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        store
            .write_conn()
            .execute_unprepared("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 't', 0)")
            .await
            .unwrap();
        store
    }

    fn account(id: &str, rate: Option<i32>) -> channel_accounts::ActiveModel {
        channel_accounts::ActiveModel {
            id: Set(id.into()),
            tenant_id: Set("t1".into()),
            channel: Set("fake".into()),
            address: Set(format!("+3161234{id}")),
            routing_key: Set(id.into()),
            credentials_enc: Set("sealed".into()),
            active: Set(true),
            rate_per_second: Set(rate),
            created_at: Set(1_765_000_000_123),
            disconnected_at: Set(None),
        }
    }

    /// What the direct connection writes, sqlx reads back the same, and what it reads
    /// comes back as the entity's exact types (bool, i32, i64, NULL), which sea-orm
    /// requires of values it did not decode itself.
    #[tokio::test]
    async fn rows_come_back_typed_as_the_entities_declare() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let (direct, _) = store.direct_writer().unwrap();
        let inserted = channel_accounts::Entity::insert(account("a1", Some(7)))
            .exec_with_returning(direct.as_ref())
            .await
            .unwrap();
        assert!(inserted.active);
        assert_eq!(inserted.rate_per_second, Some(7));
        assert_eq!(inserted.created_at, 1_765_000_000_123);
        assert_eq!(inserted.disconnected_at, None);
        let read = channel_accounts::Entity::find_by_id("a1")
            .one(direct.as_ref())
            .await
            .unwrap();
        let by_sqlx = channel_accounts::Entity::find_by_id("a1")
            .one(store.conn())
            .await
            .unwrap();
        assert_eq!(read, by_sqlx);
        assert_eq!(read, Some(inserted));
        let row = direct
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT EXISTS (SELECT 1 FROM channel_accounts) AS any, 1.5 AS half, NULL AS absent",
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(flag(&row, "any").unwrap());
        assert_eq!(row.try_get::<f64>("", "half").unwrap(), 1.5);
        assert_eq!(row.try_get::<Option<String>>("", "absent").unwrap(), None);
    }

    /// A constraint error is the same kind of error as sqlx's: a unique violation is one
    /// (retried by the group commit, not a sign of a failing disk).
    #[tokio::test]
    async fn a_unique_violation_reads_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let (direct, _) = store.direct_writer().unwrap();
        channel_accounts::Entity::insert(account("a1", None))
            .exec(direct.as_ref())
            .await
            .unwrap();
        let again = channel_accounts::Entity::insert(account("a1", None))
            .exec(direct.as_ref())
            .await
            .unwrap_err();
        assert!(is_unique_violation(&again), "{again}");
        assert!(is_about_the_data(&again));
    }

    /// A transaction whose commit fails is rolled back and leaves the connection ready for
    /// the next one; a failed body leaves nothing of itself.
    #[tokio::test]
    async fn a_failed_commit_or_body_leaves_nothing_and_no_open_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let (direct, _) = store.direct_writer().unwrap();
        let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hook = refuse.clone();
        direct
            .with_connection(|c| {
                c.commit_hook(Some(move || {
                    hook.load(std::sync::atomic::Ordering::Relaxed)
                }))
            })
            .unwrap();
        direct.begin().unwrap();
        let wrote = channel_accounts::Entity::insert(account("a1", None))
            .exec(direct.as_ref())
            .await
            .map(drop);
        assert!(
            direct.finish(wrote).is_err(),
            "the commit hook refused the commit"
        );
        assert!(!direct.with_connection(|c| !c.is_autocommit()));
        refuse.store(false, std::sync::atomic::Ordering::Relaxed);
        direct.begin().unwrap();
        let failed: Result<(), DbErr> = Err(DbErr::Custom("the batch failed".into()));
        channel_accounts::Entity::insert(account("a2", None))
            .exec(direct.as_ref())
            .await
            .unwrap();
        assert!(direct.finish(failed).is_err());
        direct.begin().unwrap();
        channel_accounts::Entity::insert(account("a3", None))
            .exec(direct.as_ref())
            .await
            .unwrap();
        direct.finish(Ok(())).unwrap();
        let ids: Vec<String> = channel_accounts::Entity::find()
            .all(store.conn())
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, ["a3"]);
    }
}

/// The inbound writer's turn ([`turn`]) on a SQLite file.
#[cfg(test)]
mod turn_tests {
    use std::time::Duration;

    use sea_orm::{ConnectionTrait, DbErr};

    use super::direct::DirectSqlite;
    use super::turn::WriterTurn;
    use super::{SqliteSync, Store};

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

    async fn take(turn: &mut WriterTurn, store: &Store) {
        let (direct, pool) = store.direct_writer().unwrap();
        turn.take(direct, pool).await.unwrap();
    }

    fn direct(store: &Store) -> &DirectSqlite {
        store.direct_writer().unwrap().0
    }

    /// Until a write through `write_conn` has asked for the turn (failing after 10 s).
    async fn until_asked(store: &Store) {
        let asked = async {
            while direct(store).sqlx_write_asks() == 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), asked)
            .await
            .expect("the write asks for the turn");
    }

    const WRITE: &str = "CREATE TABLE IF NOT EXISTS turn_probe (x INTEGER)";

    #[tokio::test]
    async fn the_turn_is_kept_while_webhooks_queue_and_given_back_when_none_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut turn = WriterTurn::default();
        take(&mut turn, &store).await;
        assert!(turn.is_held());
        // While it is held, the sqlx writer's only connection is taken.
        let pool = store.direct_writer().unwrap().1;
        assert!(pool.try_acquire().is_none());

        turn.pass_unless_queued(direct(&store), true);
        assert!(turn.is_held(), "more webhooks queued and nobody else asked");
        take(&mut turn, &store).await; // held: no second acquire (it would wait forever)

        turn.pass_unless_queued(direct(&store), false);
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
        take(&mut turn, &store).await;
        // Another write asks (it waits for the pool while the turn is held)...
        let write = tokio::spawn(async move { sqlx_write(db.execute_unprepared(WRITE)).await });
        until_asked(&store).await;
        // ...so the next batch's end gives the turn back although webhooks are queued.
        turn.pass_unless_queued(direct(&store), true);
        assert!(!turn.is_held());
        write.await.unwrap();
        // The next turn starts from the asks counted so far: kept again while nobody asks.
        take(&mut turn, &store).await;
        turn.pass_unless_queued(direct(&store), true);
        assert!(turn.is_held());
    }

    #[tokio::test]
    async fn a_write_transaction_asks_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut turn = WriterTurn::default();
        take(&mut turn, &store).await;
        let asking = store.clone();
        let txn = tokio::spawn(async move {
            let txn = tokio::time::timeout(Duration::from_secs(10), asking.write_txn())
                .await
                .expect("the sqlx writer is handed out")
                .unwrap();
            txn.execute_unprepared(WRITE).await.unwrap();
            txn.commit().await.unwrap();
        });
        until_asked(&store).await;
        turn.pass_unless_queued(direct(&store), true);
        assert!(!turn.is_held());
        txn.await.unwrap();
    }

    #[tokio::test]
    async fn a_turn_older_than_its_limit_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut turn = WriterTurn::with_limit(Duration::ZERO);
        take(&mut turn, &store).await;
        turn.pass_unless_queued(direct(&store), true);
        assert!(!turn.is_held());
        sqlx_write(store.write_conn().execute_unprepared(WRITE)).await;
    }
}
