//! The durable queue, written once and used by delivery (the outbox), media fetching and
//! notifications: a table whose rows are work, claimed with a lease.
//!
//! - Claiming: rows due (`next_attempt_at` passed) and not leased (`locked_until` null or
//!   passed) are selected `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite: the claim's
//!   write transaction is the only writer) and leased to the claiming worker
//!   (`locked_by`, `locked_until`). A process that dies leaves its rows leased; they are
//!   claimable again once the lease has passed.
//! - Order: a queue may keep its rows in order per a column (a conversation): a row is
//!   claimable only when no older row with the same value waits.
//! - Retries: exponential backoff with full jitter ([`Backoff`]).
//! - Waking: a worker whose round found nothing sleeps until another part of this process
//!   hands it work (`tokio::sync::Notify`), until its next row is due, or at most the idle
//!   poll, a safety net for work written by other processes ([`WorkLoop`]). Looking for work
//!   only reads, so an idle server writes nothing.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    UpdateMany,
};
use tokio::sync::{Notify, watch};

use crate::ids::now_ms;

/// A queue table: which columns name its rows and its work.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeaseQueue {
    pub(crate) table: &'static str,
    /// The primary key column.
    pub(crate) key: &'static str,
    /// The order rows are claimed in.
    pub(crate) order_by: &'static str,
    /// A constant SQL condition a row meets while it is work (never user input).
    pub(crate) only: &'static str,
    /// When set, rows sharing this column's value are claimed one at a time, oldest (by
    /// key) first.
    pub(crate) in_order_per: Option<&'static str>,
}

fn col(name: &'static str) -> Expr {
    Expr::col(Alias::new(name))
}

const NEXT_ATTEMPT_AT: &str = "next_attempt_at";
const LOCKED_BY: &str = "locked_by";
const LOCKED_UNTIL: &str = "locked_until";
const ATTEMPTS: &str = "attempts";

impl LeaseQueue {
    /// Due, unleased rows meeting `filter`, at most `limit`, locked for the caller's
    /// transaction (`SKIP LOCKED`: rows another claim holds are passed over, not waited for).
    /// Rows whose lease passed are included; their `locked_by` still names the worker that
    /// held them (see [`LeaseQueue::defer`]).
    pub(crate) async fn due<E: EntityTrait, C: ConnectionTrait>(
        &self,
        txn: &C,
        now: i64,
        filter: sea_orm::Condition,
        limit: u64,
    ) -> Result<Vec<E::Model>, DbErr> {
        self.due_query::<E>(now, filter)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(txn)
            .await
    }

    /// Whether any row is due and unleased, read without a lock or a transaction.
    async fn any_due<E: EntityTrait, C: ConnectionTrait>(
        &self,
        db: &C,
        now: i64,
    ) -> Result<bool, DbErr> {
        Ok(self
            .due_query::<E>(now, sea_orm::Condition::all())
            .limit(1)
            .one(db)
            .await?
            .is_some())
    }

    /// The due, unleased rows meeting `filter`, in claiming order.
    fn due_query<E: EntityTrait>(
        &self,
        now: i64,
        filter: sea_orm::Condition,
    ) -> sea_orm::Select<E> {
        let mut query = E::find()
            .filter(Expr::cust(self.only))
            .filter(col(NEXT_ATTEMPT_AT).lte(now))
            .filter(
                sea_orm::Condition::any()
                    .add(col(LOCKED_UNTIL).is_null())
                    .add(col(LOCKED_UNTIL).lt(now)),
            )
            .filter(filter);
        if let Some(per) = self.in_order_per {
            let (table, key) = (self.table, self.key);
            query = query.filter(Expr::cust(format!(
                "NOT EXISTS (SELECT 1 FROM {table} older WHERE older.{per} = {table}.{per} \
                 AND older.{key} < {table}.{key})"
            )));
        }
        query.order_by_asc(col(self.order_by))
    }

    /// Leases the rows named by `keys` to `worker` until `until`.
    pub(crate) async fn lease<E, C, V>(
        &self,
        txn: &C,
        keys: impl IntoIterator<Item = V>,
        worker: &str,
        until: i64,
    ) -> Result<(), DbErr>
    where
        E: EntityTrait,
        C: ConnectionTrait,
        V: Into<sea_orm::Value>,
    {
        E::update_many()
            .col_expr(Alias::new(LOCKED_BY), Expr::value(worker))
            .col_expr(Alias::new(LOCKED_UNTIL), Expr::value(until))
            .filter(col(self.key).is_in(keys))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Claims up to `limit` due rows meeting `filter` for `worker` for `lease`, in one
    /// transaction.
    pub(crate) async fn claim<E, V>(
        &self,
        store: &super::Store,
        worker: &str,
        lease: Duration,
        limit: u64,
        key: impl Fn(&E::Model) -> V,
    ) -> Result<Vec<E::Model>, DbErr>
    where
        E: EntityTrait,
        V: Into<sea_orm::Value>,
    {
        let now = now_ms();
        // Many rounds find nothing (the idle poll; a wake for rows another process took).
        // Looking on a reader first leaves the write lock (on SQLite, the one writer the
        // inbound group commit also needs) to the writes that have something to write.
        if !self.any_due::<E, _>(store.conn(), now).await? {
            return Ok(Vec::new());
        }
        let txn = store.write_txn().await?;
        let due = self
            .due::<E, _>(&txn, now, sea_orm::Condition::all(), limit)
            .await?;
        if !due.is_empty() {
            self.lease::<E, _, _>(&txn, due.iter().map(&key), worker, now + millis(lease))
                .await?;
        }
        txn.commit().await?;
        Ok(due)
    }

    /// Moves rows whose lease passed (their worker stopped between claiming and recording
    /// an outcome) to `at`, unleased, instead of claiming them: for queues where doing the
    /// work twice costs more than waiting.
    pub(crate) async fn defer<E, C, V>(
        &self,
        txn: &C,
        keys: impl IntoIterator<Item = V>,
        now: i64,
        at: i64,
    ) -> Result<(), DbErr>
    where
        E: EntityTrait,
        C: ConnectionTrait,
        V: Into<sea_orm::Value>,
    {
        unleased::<E>()
            .col_expr(Alias::new(NEXT_ATTEMPT_AT), Expr::value(at))
            .filter(col(self.key).is_in(keys))
            .filter(col(LOCKED_UNTIL).lt(now))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Gives `worker`'s lease on a row back, optionally moving when it is due; a row
    /// another worker holds by now is left alone.
    pub(crate) async fn release<E, C>(
        &self,
        db: &C,
        key: impl Into<sea_orm::Value>,
        worker: &str,
        due_at: Option<i64>,
    ) -> Result<(), DbErr>
    where
        E: EntityTrait,
        C: ConnectionTrait,
    {
        let mut update = unleased::<E>();
        if let Some(at) = due_at {
            update = update.col_expr(Alias::new(NEXT_ATTEMPT_AT), Expr::value(at));
        }
        update
            .filter(col(self.key).eq(key))
            .filter(col(LOCKED_BY).eq(worker))
            .exec(db)
            .await?;
        Ok(())
    }

    /// Extends `worker`'s lease on a row from `until` to `renewed`; false when the row is
    /// no longer leased to it as it was (another worker took it after the lease passed).
    pub(crate) async fn renew<E, C>(
        &self,
        db: &C,
        key: impl Into<sea_orm::Value>,
        worker: &str,
        until: i64,
        renewed: i64,
    ) -> Result<bool, DbErr>
    where
        E: EntityTrait,
        C: ConnectionTrait,
    {
        let res = E::update_many()
            .col_expr(Alias::new(LOCKED_UNTIL), Expr::value(renewed))
            .filter(col(self.key).eq(key))
            .filter(col(LOCKED_BY).eq(worker))
            .filter(col(LOCKED_UNTIL).eq(until))
            .exec(db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The update that ends a row's attempt and leaves it queued: `attempts` set, due at
    /// `next_at`, unleased. Callers add their own columns (the error seen) and execute it.
    pub(crate) fn retry_later<E: EntityTrait>(
        &self,
        key: impl Into<sea_orm::Value>,
        attempts: i32,
        next_at: i64,
    ) -> UpdateMany<E> {
        self.finish::<E>(key)
            .col_expr(Alias::new(ATTEMPTS), Expr::value(attempts))
            .col_expr(Alias::new(NEXT_ATTEMPT_AT), Expr::value(next_at))
    }

    /// The update that ends a row's lease: callers add what the attempt changed.
    pub(crate) fn finish<E: EntityTrait>(&self, key: impl Into<sea_orm::Value>) -> UpdateMany<E> {
        unleased::<E>().filter(col(self.key).eq(key))
    }

    /// Milliseconds until the first row may be claimed (0 when one is already claimable or
    /// leased past due), or `None` when the queue is empty. One read.
    pub(crate) async fn next_due_in<C: ConnectionTrait>(
        &self,
        db: &C,
    ) -> Result<Option<i64>, DbErr> {
        let sql = format!(
            "SELECT MIN(CASE WHEN locked_until IS NOT NULL AND locked_until > next_attempt_at \
             THEN locked_until ELSE next_attempt_at END) AS due FROM {} WHERE {}",
            self.table, self.only
        );
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?;
        let due: Option<i64> = row.and_then(|r| r.try_get::<Option<i64>>("", "due").ok().flatten());
        Ok(due.map(|at| std::cmp::max(at - now_ms(), 0)))
    }
}

/// An update that clears a row's lease.
fn unleased<E: EntityTrait>() -> UpdateMany<E> {
    E::update_many()
        .col_expr(Alias::new(LOCKED_BY), Expr::value(Option::<String>::None))
        .col_expr(Alias::new(LOCKED_UNTIL), Expr::value(Option::<i64>::None))
}

/// Milliseconds of a duration, saturated to what timestamps can add.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base·2^(attempt-1))].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    pub(crate) fn delay(&self, attempt: i32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << u32::try_from(attempt.clamp(1, 24) - 1).unwrap_or(0));
        let cap = u64::try_from(exp.min(self.max).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=cap))
    }
}

/// How a worker of one queue waits between rounds.
pub(crate) struct WorkLoop<'a> {
    pub(crate) store: &'a super::Store,
    pub(crate) queue: LeaseQueue,
    /// Notified when this process queued work.
    pub(crate) wake: &'a Notify,
    /// How often to look again while work is due that this worker could not take (held by
    /// another process, or waiting for an older row).
    pub(crate) poll_interval: Duration,
    /// Longest sleep with nothing due.
    pub(crate) idle_poll: Duration,
    /// What a round does, for the log line of a failed one.
    pub(crate) what: &'static str,
}

impl WorkLoop<'_> {
    /// How long a worker whose last round found nothing waits: the poll interval while
    /// something is due but was not claimable here, else until the next row is due, at most
    /// the idle poll.
    async fn idle_wait(&self) -> Duration {
        match self.queue.next_due_in(self.store.conn()).await {
            Ok(Some(0)) | Err(_) => self.poll_interval,
            Ok(Some(ms)) => {
                Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).min(self.idle_poll)
            }
            Ok(None) => self.idle_poll,
        }
    }

    /// Runs `round` (which returns how much work it took) until `shutdown` turns true. A
    /// failed round is logged and counts as finding nothing.
    pub(crate) async fn run<F, Fut, E>(&self, mut shutdown: watch::Receiver<bool>, mut round: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<usize, E>>,
        E: std::fmt::Display,
    {
        while !*shutdown.borrow() {
            let took = match round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "{} failed.", self.what);
                    0
                }
            };
            if took == 0 {
                let wait = self.idle_wait().await;
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    changed = shutdown.changed() => if changed.is_err() { break },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_below_a_doubling_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..200 {
            assert!(b.delay(1) <= Duration::from_millis(100));
            assert!(b.delay(3) <= Duration::from_millis(400));
            assert!(b.delay(40) <= Duration::from_secs(1));
        }
        // Full jitter spreads retries: 200 draws are not all equal.
        let draws: std::collections::HashSet<_> = (0..200).map(|_| b.delay(5)).collect();
        assert!(draws.len() > 10);
    }
}
