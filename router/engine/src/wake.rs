//! How background workers wait when they have nothing to do: until another part of this
//! process hands them work (`tokio::sync::Notify`), until the next row of their queue is
//! due, or at most `DeliveryConfig::idle_poll` (a safety net for work written by other
//! processes). Looking for work only reads, so an idle server writes nothing.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use tokio::sync::{Notify, watch};

use crate::error::Result;
use crate::ids::now_ms;
use crate::router::Router;

/// A queue table a worker claims from: rows with `next_attempt_at` and a lease
/// (`locked_until`).
#[derive(Clone, Copy)]
pub(crate) struct Queue {
    pub(crate) table: &'static str,
    /// Further SQL condition on the rows that count (a constant, never user input).
    pub(crate) only: &'static str,
}

impl Router {
    /// Milliseconds until the first row of `queue` may be claimed (0 when one is already
    /// claimable or leased past due), or `None` when the queue is empty. One read.
    pub(crate) async fn next_due_in(&self, queue: Queue) -> Result<Option<i64>> {
        let db = self.inner.store.conn();
        let sql = format!(
            "SELECT MIN(CASE WHEN locked_until IS NOT NULL AND locked_until > next_attempt_at \
             THEN locked_until ELSE next_attempt_at END) AS due FROM {} WHERE {}",
            queue.table, queue.only
        );
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?;
        let due: Option<i64> = row.and_then(|r| r.try_get::<Option<i64>>("", "due").ok().flatten());
        Ok(due.map(|at| (at - now_ms()).max(0)))
    }

    /// How long a worker whose last round found nothing waits before it looks again: the
    /// poll interval while something is due but was not claimable here (another process's
    /// lease, a sender held elsewhere), else until the next row is due, at most the idle poll.
    async fn idle_wait(&self, queue: Queue) -> Duration {
        let cfg = &self.inner.delivery;
        match self.next_due_in(queue).await {
            Ok(Some(0)) | Err(_) => cfg.poll_interval,
            Ok(Some(ms)) => {
                Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).min(cfg.idle_poll)
            }
            Ok(None) => cfg.idle_poll,
        }
    }

    /// Runs `round` (which returns how much work it took) until `shutdown` turns true;
    /// after a round that found nothing, waits for `wake`, the next due row of `queue` or
    /// the idle poll. A failed round is logged as `what` and counts as finding nothing.
    pub(crate) async fn work_loop<F, Fut>(
        &self,
        mut shutdown: watch::Receiver<bool>,
        wake: &Notify,
        queue: Queue,
        what: &str,
        mut round: F,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<usize>>,
    {
        while !*shutdown.borrow() {
            let took = match round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "{what} failed.");
                    0
                }
            };
            if took == 0 {
                let wait = self.idle_wait(queue).await;
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    changed = shutdown.changed() => if changed.is_err() { break },
                }
            }
        }
    }
}
