//! How sends are committed: on SQLite, together.
//!
//! A SQLite file has one writer, so concurrent sends used to queue for it one transaction
//! (and one fsync) each, every statement a hand-off to sqlx's connection thread: 700–850
//! sends/s whatever the concurrency (BENCHMARKS.md, "Session 17"). Here they queue for one
//! writer instead, which writes everything queued (up to [`MAX_BATCH`]) in one transaction,
//! each send in a savepoint of its own:
//! - a send refused while writing (opted out, outside every window, an unknown `reply_to`)
//!   rolls back its savepoint only, and is answered with its refusal;
//! - a send whose idempotency key was taken, also by an earlier send of the same batch,
//!   rolls back its savepoint and is answered, after the commit, with the first one's message;
//! - a database error rolls the whole batch back, and each of its sends is written again
//!   alone, so one bad send fails alone and each gets its own answer.
//!
//! On a SQLite file the writer is a thread that writes on the inbound writer's connection
//! (`store::direct`), taking turns with the inbound writer as every other write does
//! (`store::turn`). Every send is answered only after the transaction holding it committed,
//! as before. PostgreSQL commits sends in parallel on its pool and groups their WAL flushes
//! itself, so there each send keeps its own transaction (retried when it lost a race).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, RouterError};
use crate::outbound::accept::{AcceptRules, Acceptance, Written};
use crate::store::Store;
use crate::store::turn::WriterTurn;

/// Most sends one transaction takes: a batch holds SQLite's one writer (and so inbound
/// webhooks' commits) for as long as it writes.
const MAX_BATCH: usize = 32;

/// How sends' group commit went, for tests and operators.
#[derive(Debug, Default)]
pub struct SendCommitStats {
    /// Sends committed in a batch of several.
    pub batched: AtomicU64,
    /// Batches rolled back for a database error, whose sends were then written one by one.
    pub split_batches: AtomicU64,
    /// Sends handed to the writer so far (SQLite).
    pub queued: AtomicU64,
}

/// A send waiting for the group commit, with where its answer goes.
struct Queued {
    acceptance: Acceptance,
    reply: oneshot::Sender<Result<Written>>,
}

/// Commits sends: together on SQLite, one by one elsewhere (see the module documentation).
pub(crate) struct SendCommit {
    store: Store,
    rules: AcceptRules,
    queue: OnceLock<mpsc::Sender<Queued>>,
    stats: Arc<SendCommitStats>,
}

impl SendCommit {
    pub(crate) fn new(store: Store, rules: AcceptRules) -> Self {
        Self {
            store,
            rules,
            queue: OnceLock::new(),
            stats: Arc::default(),
        }
    }

    pub(crate) fn stats(&self) -> &SendCommitStats {
        &self.stats
    }

    /// Writes `acceptance` and commits it; answers once committed.
    pub(crate) async fn write(&self, acceptance: Acceptance) -> Result<Written> {
        if self.store.backend() != DatabaseBackend::Sqlite {
            return write_alone(&self.store, &self.rules, &acceptance).await;
        }
        let queue = self.queue.get_or_init(|| self.start_writer());
        let (reply, answer) = oneshot::channel();
        self.stats.queued.fetch_add(1, Relaxed);
        match queue.send(Queued { acceptance, reply }).await {
            // The writer is gone (its runtime ended) before it took this send: write it here.
            Err(mpsc::error::SendError(queued)) => {
                write_alone(&self.store, &self.rules, &queued.acceptance).await
            }
            // The writer went away while it held this send, perhaps after committing it: a
            // send is not idempotent, so it is not written again; the caller hears a 503.
            Ok(()) => answer.await.unwrap_or_else(|_| {
                Err(RouterError::Database(DbErr::Custom(
                    "the send's commit was interrupted (the server is stopping)".into(),
                )))
            }),
        }
    }

    /// Starts the writer. A SQLite file's is a thread of its own that writes on the inbound
    /// writer's connection, taking turns with it ([`crate::store::direct`]), so that a batch's
    /// statements are no hand-offs between threads; in-memory SQLite's is a task.
    fn start_writer(&self) -> mpsc::Sender<Queued> {
        let (store, rules, stats) = (self.store.clone(), self.rules.clone(), self.stats.clone());
        if store.direct_writer().is_some() {
            let (tx, mut rx) = mpsc::channel::<Queued>(4 * MAX_BATCH);
            let runtime = tokio::runtime::Handle::current();
            let (store, rules, stats) = (store.clone(), rules.clone(), stats.clone());
            let started = std::thread::Builder::new()
                .name("send-writer".into())
                .spawn(move || {
                    let mut queued = Vec::with_capacity(MAX_BATCH);
                    while rx.blocking_recv_many(&mut queued, MAX_BATCH) > 0 {
                        runtime.block_on(commit_queued(&store, &rules, &stats, &mut queued));
                    }
                });
            match started {
                Ok(_) => return tx,
                Err(e) => tracing::warn!(error = %e, "No send writer thread; writing from a task."),
            }
        }
        let (tx, mut rx) = mpsc::channel::<Queued>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut queued = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
                commit_queued(&store, &rules, &stats, &mut queued).await;
            }
        });
        tx
    }
}

/// Commits the queued sends (a batch of one alone) and answers each.
async fn commit_queued(
    store: &Store,
    rules: &AcceptRules,
    stats: &SendCommitStats,
    queued: &mut Vec<Queued>,
) {
    let (acceptances, replies): (Vec<Acceptance>, Vec<_>) =
        queued.drain(..).map(|q| (q.acceptance, q.reply)).unzip();
    if acceptances.len() == 1 {
        let done = write_alone(store, rules, &acceptances[0]).await;
        if let Some(reply) = replies.into_iter().next() {
            answer(reply, done);
        }
        return;
    }
    match write_together(store, rules, &acceptances).await {
        Ok(outcomes) => {
            stats.batched.fetch_add(acceptances.len() as u64, Relaxed);
            for (reply, done) in replies.into_iter().zip(outcomes) {
                answer(reply, done);
            }
        }
        Err(error) => {
            stats.split_batches.fetch_add(1, Relaxed);
            tracing::debug!(error = %error, batch = acceptances.len(), "Sends' group commit failed; writing its sends one at a time.");
            for (acceptance, reply) in acceptances.iter().zip(replies) {
                answer(reply, write_alone(store, rules, acceptance).await);
            }
        }
    }
}

/// Writes every send in one transaction, each in a savepoint; returns each send's outcome
/// once committed. A database error rolls every send back.
async fn write_together(
    store: &Store,
    rules: &AcceptRules,
    acceptances: &[Acceptance],
) -> std::result::Result<Vec<Result<Written>>, DbErr> {
    if let Some((direct, sqlx_writer)) = store.direct_writer() {
        // The inbound writer gives its turn back after its batch in progress.
        direct.ask_for_sqlx_writer();
        let mut turn = WriterTurn::default();
        turn.take(direct, sqlx_writer).await?;
        direct.begin()?;
        let outcomes = write_each(direct.as_ref(), rules, acceptances).await;
        return direct.finish(outcomes);
    }
    let txn = store.write_txn().await?;
    let outcomes = write_each(&txn, rules, acceptances).await?;
    txn.commit().await?;
    Ok(outcomes)
}

/// Writes each send in a savepoint of the transaction `db` holds: a send refused or whose
/// key was taken leaves nothing; a database error ends the batch.
async fn write_each<C: ConnectionTrait>(
    db: &C,
    rules: &AcceptRules,
    acceptances: &[Acceptance],
) -> std::result::Result<Vec<Result<Written>>, DbErr> {
    let mut outcomes = Vec::with_capacity(acceptances.len());
    for acceptance in acceptances {
        db.execute_unprepared("SAVEPOINT send").await?;
        let written = acceptance.write(db, rules).await;
        if let Ok(Written::Accepted(..)) = written {
            db.execute_unprepared("RELEASE send").await?;
        } else {
            // After some errors (a full disk, I/O) SQLite has rolled the whole transaction
            // back by itself, and the next statements would run outside any: the batch ends.
            if let Err(RouterError::Database(e)) = written {
                return Err(e);
            }
            db.execute_unprepared("ROLLBACK TO send").await?;
            db.execute_unprepared("RELEASE send").await?;
        }
        outcomes.push(written);
    }
    Ok(outcomes)
}

/// Writes one send in its own transaction, again when it lost a race to a concurrent one:
/// two concurrent first messages to one new number race to create its contact, and on
/// PostgreSQL the loser's unique violation rolls its transaction back; a retry finds the
/// contact (SQLite serializes write transactions, so it never races).
async fn write_alone(
    store: &Store,
    rules: &AcceptRules,
    acceptance: &Acceptance,
) -> Result<Written> {
    store
        .retry_conflicts("send", || async {
            let txn = store.write_txn().await?;
            let written = acceptance.write(&txn, rules).await?;
            // A taken key keeps nothing: dropping the transaction rolls it back.
            if matches!(written, Written::Accepted(..)) {
                txn.commit().await?;
            }
            Ok(written)
        })
        .await
}

/// A caller that went away (client disconnected) gets no answer; its send is committed.
fn answer(reply: oneshot::Sender<Result<Written>>, done: Result<Written>) {
    if reply.send(done).is_err() {
        tracing::debug!("A send's caller left before its commit finished.");
    }
}
