//! The inbound group commit's own SQLite connection, driven directly.
//!
//! sqlx runs every SQLite statement on its connection's own thread: each statement, and the
//! rows it returns, is a hand-off between that thread and tokio's. The group commit instead
//! runs each batch on the inbound writer thread over a connection of its own, through
//! `rusqlite`, with its statements prepared once and its statement journals in memory
//! (BENCHMARKS.md, Session 10: +19% webhooks/s for the thread, +22% for the journals).
//! [`DirectSqlite`] is a sea-orm [`ConnectionTrait`], so the batch runs the very code and SQL
//! it runs on PostgreSQL: one schema, one migration set, one write path. While it writes,
//! the group commit holds the store's sqlx writer connection (`Store::direct_writer`), so
//! the two writers take turns in the process instead of in SQLite's busy handler
//! ([`super::turn`]).
//!
//! Rows come back as the sea-orm values sqlx would decode: typed by each column's declared
//! type, and, for SQLite's one `integer` type, by the width the entities give a column of
//! that name ([`narrow_columns`]); a column that is an expression is typed by its value.
//! sea-orm 2.0.4 builds a [`QueryResult`] from values only through its mock connection (its
//! `proxy` feature does not compile beside `sqlx-sqlite`), so [`results`] hands the rows
//! over through one.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rusqlite::types::ValueRef;
use sea_orm::sea_query::Value;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DbErr, ExecResult, MockDatabase, MockExecResult, QueryResult,
    RuntimeErr, Statement,
};

/// Runs on the inbound writer's connection when it opens (the store's connect hook).
pub type DirectConnectHook =
    std::sync::Arc<dyn Fn(&rusqlite::Connection) -> rusqlite::Result<()> + Send + Sync>;

/// The inbound writer's SQLite connection (see the module documentation).
pub(crate) struct DirectSqlite {
    /// rusqlite's connection is `Send` but not `Sync`; sea-orm's connections must be both.
    conn: Mutex<rusqlite::Connection>,
    path: PathBuf,
    synchronous: &'static str,
    hook: Option<DirectConnectHook>,
    /// How many times other code asked for the sqlx writer (`Store::write_conn`): the
    /// inbound writer gives its turn back when this moves ([`super::turn`]).
    sqlx_write_asks: AtomicU64,
}

impl std::fmt::Debug for DirectSqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How a column's values are typed for sea-orm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    BigInt,
    Int,
    SmallInt,
    Bool,
    Text,
    Real,
    Blob,
    /// An expression: typed by its value.
    Any,
}

impl Kind {
    /// A result column's kind: by its declared type, and for SQLite's one `integer` type
    /// (which every integer column declares, whatever its width) by what the entities
    /// declare for a column of that name ([`narrow_columns`]).
    fn of(name: &str, decltype: Option<&str>) -> Self {
        let narrow = || narrow_columns().get(name).copied();
        let Some(t) = decltype else {
            return narrow().unwrap_or(Self::Any);
        };
        let t = t.to_ascii_lowercase();
        if t.contains("bool") {
            Self::Bool
        } else if t.contains("bigint") {
            Self::BigInt
        } else if t.contains("smallint") {
            Self::SmallInt
        } else if t.contains("int") {
            narrow().unwrap_or(Self::BigInt)
        } else if t.contains("char") || t.contains("text") || t.contains("clob") {
            Self::Text
        } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
            Self::Real
        } else if t.contains("blob") {
            Self::Blob
        } else {
            Self::Any
        }
    }
}

/// The integer columns the entities read as narrower than `i64` (`i32`, `i16`, `bool`), by
/// name: SQLite declares them all `integer`, and sea-orm reads a value only as the exact type
/// the entity names. A name is one type in every entity (a unit test checks).
fn narrow_columns() -> &'static HashMap<String, Kind> {
    static NARROW: OnceLock<HashMap<String, Kind>> = OnceLock::new();
    NARROW.get_or_init(|| {
        let mut narrow = HashMap::new();
        for (name, kind) in entity_integer_columns() {
            if !matches!(kind, Kind::BigInt) {
                narrow.insert(name, kind);
            }
        }
        narrow
    })
}

/// Every integer column of every entity, with its kind.
fn entity_integer_columns() -> Vec<(String, Kind)> {
    use sea_orm::{ColumnTrait, ColumnType, IdenStatic, Iterable};
    let mut out = Vec::new();
    macro_rules! columns_of {
        ($($entity:ident),* $(,)?) => {$(
            for c in super::entity::$entity::Column::iter() {
                let kind = match c.def().get_column_type() {
                    ColumnType::Integer => Kind::Int,
                    ColumnType::SmallInteger => Kind::SmallInt,
                    ColumnType::Boolean => Kind::Bool,
                    ColumnType::BigInteger => Kind::BigInt,
                    _ => continue,
                };
                out.push((c.as_str().to_owned(), kind));
            }
        )*};
    }
    columns_of!(
        tenants,
        api_keys,
        channel_accounts,
        contacts,
        contact_identities,
        conversations,
        messages,
        message_status_events,
        pending_statuses,
        provider_notifications,
        templates,
        template_catalogs,
        webhook_events,
        webhook_problems,
        outbox,
        send_attempts,
        media,
        media_uploads,
        account_state,
        console_sessions,
        console_seen,
    );
    out
}

impl DirectSqlite {
    /// Opens the connection, configured as the store's sqlx connections are (WAL,
    /// `synchronous`, foreign keys, a busy timeout), then runs the store's connect hook.
    pub(crate) fn open(
        path: PathBuf,
        synchronous: &'static str,
        hook: Option<DirectConnectHook>,
    ) -> Result<Self, DbErr> {
        let conn =
            connect(&path, synchronous, hook.as_ref()).map_err(|e| DbErr::Conn(runtime_err(e)))?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            synchronous,
            hook,
            sqlx_write_asks: AtomicU64::new(0),
        })
    }

    /// Counts an ask for the sqlx writer (see [`super::turn`]).
    pub(crate) fn ask_for_sqlx_writer(&self) {
        self.sqlx_write_asks.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times the sqlx writer was asked for.
    pub(crate) fn sqlx_write_asks(&self) -> u64 {
        self.sqlx_write_asks.load(Ordering::Relaxed)
    }

    /// Runs `f` on the connection (tests change its limits through this).
    pub(crate) fn with_connection<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
        f(&self.conn())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // A panic while the lock was held leaves nothing half-done in the connection that
        // SQLite itself does not undo: use it anyway.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Begins the write transaction (`IMMEDIATE`: it takes the write lock up front).
    pub(crate) fn begin(&self) -> Result<(), DbErr> {
        self.conn()
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(exec_err)
    }

    /// Ends the transaction [`Self::begin`] opened: commits when `outcome` is a success,
    /// else (or when the commit fails) rolls back, so nothing of a failed batch stays.
    pub(crate) fn finish<T>(&self, outcome: Result<T, DbErr>) -> Result<T, DbErr> {
        let done = outcome.and_then(|v| {
            self.conn().execute_batch("COMMIT").map_err(exec_err)?;
            Ok(v)
        });
        if done.is_err() {
            self.roll_back();
        }
        done
    }

    /// Rolls back whatever transaction SQLite still holds (after a failed COMMIT it may
    /// hold one, or may have rolled back by itself).
    fn roll_back(&self) {
        let mut conn = self.conn();
        if conn.is_autocommit() {
            return;
        }
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "Rolling back a failed inbound batch failed.");
        }
        if conn.is_autocommit() {
            return;
        }
        // A transaction that cannot be ended would turn every later batch's BEGIN into an
        // error: a fresh connection instead (closing this one rolls back what it holds).
        tracing::warn!("An inbound batch's transaction did not end; its connection is replaced.");
        match connect(&self.path, self.synchronous, self.hook.as_ref()) {
            Ok(fresh) => *conn = fresh,
            Err(e) => {
                tracing::warn!(error = %e, "Reopening the inbound writer's connection failed.")
            }
        }
    }

    /// Runs a statement; what it changed.
    fn run(&self, stmt: &Statement) -> Result<MockExecResult, DbErr> {
        let conn = self.conn();
        let mut prepared = conn.prepare_cached(&stmt.sql).map_err(exec_err)?;
        bind(&mut prepared, stmt)?;
        if prepared.column_count() > 0 {
            // A statement that returns rows (`RETURNING`) runs to its end all the same.
            let mut rows = prepared.raw_query();
            while rows.next().map_err(exec_err)?.is_some() {}
        } else {
            prepared.raw_execute().map_err(exec_err)?;
        }
        Ok(changes(&conn))
    }

    /// Runs a query; its rows (the first `limit` of them), each value typed by its column.
    fn rows(&self, stmt: &Statement, limit: Option<usize>) -> Result<Vec<Row>, DbErr> {
        let conn = self.conn();
        let mut prepared = conn.prepare_cached(&stmt.sql).map_err(query_err)?;
        let columns: Vec<(String, Kind)> = prepared
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), Kind::of(c.name(), c.decl_type())))
            .collect();
        bind(&mut prepared, stmt)?;
        let mut rows = prepared.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(query_err)? {
            let mut values = BTreeMap::new();
            for (i, (name, kind)) in columns.iter().enumerate() {
                let raw = row.get_ref(i).map_err(query_err)?;
                values.insert(name.clone(), value(raw, *kind)?);
            }
            out.push(values);
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }
}

/// One row: each column's value by its name.
type Row = BTreeMap<String, Value>;

#[async_trait::async_trait]
impl ConnectionTrait for DirectSqlite {
    fn get_database_backend(&self) -> DatabaseBackend {
        DatabaseBackend::Sqlite
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let changed = self.run(&stmt)?;
        exec_result(changed, stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let changed = {
            let conn = self.conn();
            conn.execute_batch(sql).map_err(exec_err)?;
            changes(&conn)
        };
        exec_result(
            changed,
            Statement::from_string(DatabaseBackend::Sqlite, sql),
        )
        .await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let rows = self.rows(&stmt, Some(1))?;
        Ok(results(rows, stmt).await?.pop())
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let rows = self.rows(&stmt, None)?;
        results(rows, stmt).await
    }
}

fn connect(
    path: &std::path::Path,
    synchronous: &str,
    hook: Option<&DirectConnectHook>,
) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // temp_store: a batch's multi-row statements each keep a statement journal (the pages
    // they change, to undo the statement alone), which spills to a temporary file past
    // 64 KiB; in memory it costs no system calls (BENCHMARKS.md, issue 20: +18% webhooks/s).
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY;"
    ))?;
    // The batch's statements, and a few of the helpers' it calls, stay prepared.
    conn.set_prepared_statement_cache_capacity(64);
    if let Some(hook) = hook {
        hook(&conn)?;
    }
    Ok(conn)
}

fn changes(conn: &rusqlite::Connection) -> MockExecResult {
    MockExecResult {
        last_insert_id: u64::try_from(conn.last_insert_rowid()).unwrap_or(0),
        rows_affected: conn.changes(),
    }
}

/// `changed` as sea-orm's [`ExecResult`] (see the module documentation).
async fn exec_result(changed: MockExecResult, stmt: Statement) -> Result<ExecResult, DbErr> {
    MockDatabase::new(DatabaseBackend::Sqlite)
        .append_exec_results([changed])
        .into_connection()
        .execute_raw(stmt)
        .await
}

/// `rows` as sea-orm [`QueryResult`]s (see the module documentation): the mock connection
/// answers the statement with exactly these rows.
async fn results(rows: Vec<Row>, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
    MockDatabase::new(DatabaseBackend::Sqlite)
        .append_query_results([rows])
        .into_connection()
        .query_all_raw(stmt)
        .await
}

/// Binds a statement's values as sqlx's SQLite driver encodes them.
fn bind(prepared: &mut rusqlite::CachedStatement<'_>, stmt: &Statement) -> Result<(), DbErr> {
    let Some(values) = &stmt.values else {
        return Ok(());
    };
    for (i, v) in values.0.iter().enumerate() {
        let at = i + 1;
        let bound = match v {
            Value::Bool(b) => prepared.raw_bind_parameter(at, b.map(i64::from)),
            Value::TinyInt(n) => prepared.raw_bind_parameter(at, n.map(i64::from)),
            Value::SmallInt(n) => prepared.raw_bind_parameter(at, n.map(i64::from)),
            Value::Int(n) => prepared.raw_bind_parameter(at, n.map(i64::from)),
            Value::BigInt(n) => prepared.raw_bind_parameter(at, *n),
            Value::TinyUnsigned(n) => prepared.raw_bind_parameter(at, n.map(i64::from)),
            Value::SmallUnsigned(n) => prepared.raw_bind_parameter(at, n.map(i64::from)),
            Value::Unsigned(n) => prepared.raw_bind_parameter(at, n.map(i64::from)),
            Value::BigUnsigned(n) => {
                let n = n
                    .map(i64::try_from)
                    .transpose()
                    .map_err(|_| DbErr::Custom("an unsigned value beyond i64".into()))?;
                prepared.raw_bind_parameter(at, n)
            }
            Value::Float(f) => prepared.raw_bind_parameter(at, f.map(f64::from)),
            Value::Double(f) => prepared.raw_bind_parameter(at, *f),
            Value::String(s) => prepared.raw_bind_parameter(at, s.as_deref()),
            Value::Char(c) => prepared.raw_bind_parameter(at, c.map(String::from)),
            Value::Bytes(b) => prepared.raw_bind_parameter(at, b.as_deref()),
            Value::Json(j) => prepared.raw_bind_parameter(at, j.as_ref().map(|j| j.to_string())),
            other => {
                return Err(DbErr::Custom(format!(
                    "the inbound writer binds no {other:?}"
                )));
            }
        };
        bound.map_err(exec_err)?;
    }
    Ok(())
}

/// A column's value as sea-orm's [`Value`] of the column's kind.
fn value(raw: ValueRef<'_>, kind: Kind) -> Result<Value, DbErr> {
    let int = |raw: ValueRef<'_>| -> Result<Option<i64>, DbErr> {
        match raw {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            // SQLite's dynamic typing: honour what sqlx would read.
            ValueRef::Real(f) => Ok(Some(f as i64)),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.parse().ok())
                .map(Some)
                .ok_or_else(|| type_err("integer", raw)),
            ValueRef::Blob(_) => Err(type_err("integer", raw)),
        }
    };
    let out_of_range = |_| DbErr::Type("an integer column's value out of range".into());
    Ok(match kind {
        Kind::BigInt => Value::BigInt(int(raw)?),
        Kind::Int => Value::Int(
            int(raw)?
                .map(i32::try_from)
                .transpose()
                .map_err(out_of_range)?,
        ),
        Kind::SmallInt => Value::SmallInt(
            int(raw)?
                .map(i16::try_from)
                .transpose()
                .map_err(out_of_range)?,
        ),
        Kind::Bool => Value::Bool(int(raw)?.map(|n| n != 0)),
        Kind::Real => Value::Double(match raw {
            ValueRef::Null => None,
            ValueRef::Integer(n) => Some(n as f64),
            ValueRef::Real(f) => Some(f),
            _ => return Err(type_err("real", raw)),
        }),
        Kind::Text => Value::String(match raw {
            ValueRef::Null => None,
            ValueRef::Text(t) => Some(text(t)?),
            ValueRef::Integer(n) => Some(n.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            ValueRef::Blob(_) => return Err(type_err("text", raw)),
        }),
        Kind::Blob => Value::Bytes(match raw {
            ValueRef::Null => None,
            ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
            _ => return Err(type_err("blob", raw)),
        }),
        Kind::Any => match raw {
            ValueRef::Null => Value::String(None),
            ValueRef::Integer(n) => Value::BigInt(Some(n)),
            ValueRef::Real(f) => Value::Double(Some(f)),
            ValueRef::Text(t) => Value::String(Some(text(t)?)),
            ValueRef::Blob(b) => Value::Bytes(Some(b.to_vec())),
        },
    })
}

fn text(t: &[u8]) -> Result<String, DbErr> {
    String::from_utf8(t.to_vec()).map_err(|_| DbErr::Type("text that is not UTF-8".into()))
}

fn type_err(wanted: &str, raw: ValueRef<'_>) -> DbErr {
    DbErr::Type(format!(
        "a {wanted} column holds a {:?} value",
        raw.data_type()
    ))
}

/// A SQLite error, as a sqlx database error so the store's classification
/// ([`crate::store::is_unique_violation`], write health) reads it as it reads sqlx's own.
#[derive(Debug)]
pub(crate) struct DirectSqliteError {
    /// SQLite's extended result code.
    code: i32,
    message: String,
}

impl std::fmt::Display for DirectSqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DirectSqliteError {}

impl sqlx::error::DatabaseError for DirectSqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

fn runtime_err(e: rusqlite::Error) -> RuntimeErr {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            let error = DirectSqliteError {
                code: f.extended_code,
                message: message.unwrap_or_else(|| f.to_string()),
            };
            RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Database(Box::new(error))))
        }
        other => RuntimeErr::Internal(other.to_string()),
    }
}

fn exec_err(e: rusqlite::Error) -> DbErr {
    DbErr::Exec(runtime_err(e))
}

fn query_err(e: rusqlite::Error) -> DbErr {
    DbErr::Query(runtime_err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column name is one integer type in every entity, or reading it by name would give
    /// one of them the wrong type.
    #[test]
    fn each_integer_column_name_has_one_type_across_the_entities() {
        let mut seen: HashMap<String, Kind> = HashMap::new();
        for (name, kind) in entity_integer_columns() {
            let first = *seen.entry(name.clone()).or_insert(kind);
            assert_eq!(
                first, kind,
                "column {name} is {first:?} in one entity, {kind:?} in another"
            );
        }
        assert_eq!(narrow_columns().get("attempts"), Some(&Kind::Int));
        assert_eq!(narrow_columns().get("status_rank"), Some(&Kind::SmallInt));
        assert_eq!(narrow_columns().get("created_at"), None);
    }
}
