//! The group commit: the one way inbound webhooks are written.

use std::sync::Arc;

use sea_orm::DbErr;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::inbound::batch;
use crate::inbound::job::{Job, Stored};
use crate::store::Store;
use crate::store::turn::WriterTurn;

/// Most webhooks one group commit takes.
const MAX_BATCH: usize = 128;

/// A job waiting for the group commit, with where its answer goes.
pub(crate) struct Queued {
    pub(crate) job: Job,
    pub(crate) reply: oneshot::Sender<Result<Stored, DbErr>>,
}

/// Group commit for inbound webhooks, the only way they are written. Concurrent webhooks
/// queue here; a writer task takes everything queued (up to [`MAX_BATCH`]) and stores it in
/// ONE transaction with the per-batch statements of `batch.rs`, so a burst costs one
/// BEGIN/COMMIT (one fsync on SQLite) instead of one per webhook, and a webhook waits for
/// the write lock once per batch instead of behind every other webhook. Nothing waits for a
/// batch to fill: a lone webhook is a batch of one, committed at once.
///
/// Invariant: each webhook is answered only after the transaction holding it committed. If
/// a batch of several fails, it is rolled back and each of its webhooks is stored again as a
/// batch of one, so one bad webhook fails alone and each gets its own answer.
#[derive(Default)]
pub(crate) struct Batcher {
    queue: std::sync::OnceLock<mpsc::Sender<Queued>>,
    pub(crate) stats: Arc<BatchStats>,
}

/// How the group commit went, for tests and operators: a batch that failed and was split
/// is correct but slow, and on SQLite it means a bug in the batch path or a failing disk.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Webhooks committed in the batch they queued in (a lone webhook is a batch of one).
    pub batched: std::sync::atomic::AtomicU64,
    /// Batches of several webhooks rolled back and retried a webhook at a time.
    pub split_batches: std::sync::atomic::AtomicU64,
    /// Webhooks committed alone after the batch they queued in was rolled back.
    pub retried_alone: std::sync::atomic::AtomicU64,
    /// Tests: a batch holding this event key fails just before its commit.
    #[cfg(test)]
    pub(crate) poisoned_key: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Stores one webhook through the group commit, or as a batch of one when no writer
    /// task runs.
    pub(crate) async fn store(&self, store: Store, job: &Job) -> Result<Stored, DbErr> {
        let queue = self
            .queue
            .get_or_init(|| start_writers(store.clone(), self.stats.clone()));
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            job: job.clone(),
            reply,
        };
        if queue.send(queued).await.is_ok()
            && let Ok(done) = answer.await
        {
            return done;
        }
        // The writers are gone (their runtime ended): nothing of this webhook is committed
        // unless it was answered, and storing is idempotent, so store it here.
        let done = store_alone(&store, &self.stats, job, &mut WriterTurn::default()).await?;
        count(&self.stats.batched, 1);
        Ok(done)
    }
}

/// Starts the writers. A SQLite file has one writer anyway: a thread of its own that drives
/// the writer connection directly ([`crate::store::direct`]), so a batch's statements are no
/// hand-offs between threads. PostgreSQL (and in-memory SQLite) get tasks; PostgreSQL's
/// commits can run in parallel, so it gets several.
fn start_writers(store: Store, stats: Arc<BatchStats>) -> mpsc::Sender<Queued> {
    if store.direct_writer().is_some() {
        let (tx, rx) = mpsc::channel::<Queued>(4 * MAX_BATCH);
        let runtime = tokio::runtime::Handle::current();
        let (store, stats) = (store.clone(), stats.clone());
        let started = std::thread::Builder::new()
            .name("inbound-writer".into())
            .spawn(move || write_on_thread(&store, &stats, &runtime, rx));
        match started {
            Ok(_) => return tx,
            Err(e) => tracing::warn!(error = %e, "No inbound writer thread; writing from a task."),
        }
    }
    let (tx, rx) = mpsc::channel::<Queued>(4 * MAX_BATCH);
    let writers = match store.backend() {
        sea_orm::DatabaseBackend::Sqlite => 1,
        _ => 4,
    };
    spawn_writer_tasks(store, stats, rx, writers);
    tx
}

/// The SQLite file's writer thread: takes everything queued (up to [`MAX_BATCH`]) and commits
/// it, until every sender (the Router) is gone.
fn write_on_thread(
    store: &Store,
    stats: &BatchStats,
    runtime: &tokio::runtime::Handle,
    mut rx: mpsc::Receiver<Queued>,
) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    let mut turn = WriterTurn::default();
    while rx.blocking_recv_many(&mut queued, MAX_BATCH) > 0 {
        let batch = std::mem::replace(&mut queued, Vec::with_capacity(MAX_BATCH));
        // The batch's SQLite work runs right here; the runtime only serves sqlx's pool
        // (taking the writer connection) and the answers. The loop ends only after a batch
        // that found the queue empty, so the turn is given back by then.
        runtime.block_on(async {
            commit_batch(store, stats, batch, &mut turn).await;
            if let Some((direct, _)) = store.direct_writer() {
                turn.pass_unless_queued(direct, !rx.is_empty());
            }
        });
    }
}

fn spawn_writer_tasks(
    store: Store,
    stats: Arc<BatchStats>,
    rx: mpsc::Receiver<Queued>,
    writers: usize,
) {
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..writers {
        let (store, rx, stats) = (store.clone(), rx.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                let mut queued = Vec::new();
                {
                    let mut rx = rx.lock().await;
                    match rx.recv().await {
                        Some(q) => queued.push(q),
                        // Every sender (the Router) is gone.
                        None => return,
                    }
                    while queued.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(q) => queued.push(q),
                            Err(_) => break,
                        }
                    }
                }
                commit_batch(&store, &stats, queued, &mut WriterTurn::default()).await;
            }
        });
    }
}

/// Stores the queued webhooks as one batch and answers each. If the batch fails and holds
/// several webhooks, each is stored again as a batch of one and answered with its own
/// outcome; a failed batch of one answers its error.
pub(crate) async fn commit_batch(
    store: &Store,
    stats: &BatchStats,
    queued: Vec<Queued>,
    turn: &mut WriterTurn,
) {
    let (jobs, replies): (Vec<Job>, Vec<_>) = queued.into_iter().map(|q| (q.job, q.reply)).unzip();
    let error = match store_batch(store, stats, &jobs, turn).await {
        Ok(results) => {
            count(&stats.batched, jobs.len());
            for (reply, done) in replies.into_iter().zip(results) {
                answer(reply, Ok(done));
            }
            return;
        }
        Err(e) => e,
    };
    let mut replies = replies;
    if jobs.len() == 1 {
        if let Some(reply) = replies.pop() {
            answer(reply, Err(error));
        }
        return;
    }
    count(&stats.split_batches, 1);
    metrics::counter!("switchboard_inbound_batch_splits_total").increment(1);
    tracing::debug!(error = %error, batch = jobs.len(), "Group commit failed; storing its webhooks one at a time.");
    for (job, reply) in jobs.iter().zip(replies) {
        let done = store_alone(store, stats, job, turn).await;
        if done.is_ok() {
            count(&stats.retried_alone, 1);
        }
        answer(reply, done);
    }
}

/// Stores one webhook as a batch of one, in its own transaction.
async fn store_alone(
    store: &Store,
    stats: &BatchStats,
    job: &Job,
    turn: &mut WriterTurn,
) -> Result<Stored, DbErr> {
    store_batch(store, stats, std::slice::from_ref(job), turn)
        .await?
        .pop()
        .ok_or_else(|| DbErr::Custom("a batch of one gave no result".into()))
}

fn count(counter: &std::sync::atomic::AtomicU64, webhooks: usize) {
    counter.fetch_add(
        u64::try_from(webhooks).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// A caller that went away (client disconnected) gets no answer; what it sent is committed
/// or not, and a redelivery is stored once either way.
fn answer(reply: oneshot::Sender<Result<Stored, DbErr>>, done: Result<Stored, DbErr>) {
    if reply.send(done).is_err() {
        tracing::debug!("A webhook's caller left before its commit finished.");
    }
}

/// Stores every job in one transaction; any error rolls all of them back.
async fn store_batch(
    store: &Store,
    stats: &BatchStats,
    jobs: &[Job],
    turn: &mut WriterTurn,
) -> Result<Vec<Stored>, DbErr> {
    if let Some((direct, sqlx_writer)) = store.direct_writer() {
        // The sqlx writer waits while this batch writes: the two writers take turns here,
        // not in SQLite's busy handler.
        turn.take(direct, sqlx_writer).await?;
        direct.begin()?;
        let stored = batch::store_jobs(direct.as_ref(), jobs).await;
        let stored = stored.and_then(|r| fail_if_poisoned(stats, jobs).map(|()| r));
        return direct.finish(stored);
    }
    let txn = store.write_txn().await?;
    let results = batch::store_jobs(&txn, jobs).await?;
    fail_if_poisoned(stats, jobs)?;
    txn.commit().await?;
    Ok(results)
}

/// Tests: a batch holding the poisoned event key fails just before its commit.
#[cfg_attr(not(test), allow(clippy::unnecessary_wraps, unused_variables))]
fn fail_if_poisoned(stats: &BatchStats, jobs: &[Job]) -> Result<(), DbErr> {
    #[cfg(test)]
    if let Some(key) = stats.poisoned_key.lock().unwrap().as_deref()
        && jobs
            .iter()
            .any(|j| j.parsed.events.iter().any(|e| e.event_key == key))
    {
        // Failing before the commit rolls back everything the batch wrote.
        return Err(DbErr::Custom("batch failpoint".into()));
    }
    Ok(())
}
