//! The inbound pipeline: resolve account → verify → parse → one transaction (webhook event,
//! contact, conversation, message or status) → commit → acknowledge → notify.
//!
//! Invariant: nothing is stored before the signature is verified, and a webhook is
//! acknowledged only after its transaction committed. Redeliveries hit the unique
//! (channel, event key) of `webhook_events` and change nothing, yet are acknowledged.

mod batch;

#[doc(hidden)]
pub use batch::lookup_statement;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use switchboard_core::{
    ChannelAdapter, EventKind, HandshakeReply, InboundEvent, InboundMessage, KeyRule,
    MAX_ROUTING_KEYS, ParsedWebhook, WebhookError, WebhookReply, WebhookRequest,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::accounts::Account;
use crate::contacts;
use crate::error::{Result, RouterError};
use crate::events::RouterEvent;
use crate::ids::now_ms;
use crate::router::Router;
use crate::statuses::{self, Applied};
use crate::store::Store;
use crate::store::entity::webhook_problems;

/// What happened to an accepted webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAck {
    /// The answer the provider expects.
    pub reply: WebhookReply,
    /// Events stored for the first time.
    pub stored: usize,
    /// Events already stored by an earlier delivery.
    pub duplicates: usize,
    /// Items that could not be understood (kept in `webhook_problems`).
    pub problems: usize,
}

impl Router {
    /// Runs a provider's webhook through the inbound pipeline.
    ///
    /// # Errors
    /// [`RouterError::Webhook`] (400/403/404) when the webhook is refused, `unknown_channel`
    /// for a channel with no adapter, a database error (503) when it could not be stored —
    /// then nothing was stored and the provider should retry.
    pub async fn receive_webhook(
        &self,
        channel: &str,
        request: WebhookRequest,
    ) -> Result<WebhookAck> {
        let (adapter, job) = self.verify_and_parse(channel, &request).await?;

        // A deadlock or serialization failure between concurrent webhooks (PostgreSQL) is
        // retried: the whole transaction is idempotent thanks to the event keys.
        let (ack_counts, events) = self
            .inner
            .store
            .retry_conflicts("webhook", || {
                self.inner.batcher.store(self.inner.store.clone(), &job)
            })
            .await?;
        self.publish(events);
        let (stored, duplicates) = ack_counts;
        Ok(WebhookAck {
            reply: adapter.webhook_reply(),
            stored,
            duplicates,
            problems: job.parsed.problems.len(),
        })
    }

    /// Everything before the write: the channel's adapter, and the webhook verified by the
    /// accounts it names and parsed into what to store.
    async fn verify_and_parse(
        &self,
        channel: &str,
        request: &WebhookRequest,
    ) -> Result<(Arc<dyn ChannelAdapter>, Job)> {
        let adapter = self
            .inner
            .adapters
            .get(channel)
            .ok_or(RouterError::NotFound("channel"))?
            .clone();
        let keys = adapter.routing_keys(request)?;
        let accounts = self
            .signed_accounts(channel, &keys, adapter.as_ref(), request)
            .await?;
        let contexts: Vec<&switchboard_core::AccountContext> =
            accounts.iter().map(|a| &a.ctx).collect();
        let mut parsed = adapter.parse_webhook(request, &contexts)?;
        if request.may_carry_nul() {
            parsed.strip_nul_chars();
        }
        let job = Job {
            channel: channel.to_owned(),
            accounts,
            parsed: Arc::new(parsed),
        };
        Ok((adapter, job))
    }

    /// The accounts a webhook is for: the connected accounts its routing keys name (all of
    /// them, or the first, as `rule` says) whose secret signed it. Every account must
    /// prove the body was signed with its own secret; events for an account whose secret
    /// did not sign it are dropped by the adapter.
    ///
    /// The keys are untrusted, so the work is bounded before anything is verified: at most
    /// [`MAX_ROUTING_KEYS`] keys, read in one query (two for `FirstSigned`: the first key
    /// alone, as it is usually the one, then the rest), and the signature checked once per
    /// distinct secret ([`ChannelAdapter::webhook_secret`]) rather than once per account.
    ///
    /// # Errors
    /// `malformed_webhook` for more than [`MAX_ROUTING_KEYS`] keys; `UnknownAccount` when no
    /// key names a connected account; otherwise the first verification error when none
    /// signed it.
    async fn signed_accounts(
        &self,
        channel: &str,
        keys: &[String],
        adapter: &dyn ChannelAdapter,
        request: &WebhookRequest,
    ) -> Result<Vec<Arc<Account>>> {
        let rule = adapter.key_rule();
        if keys.len() > MAX_ROUTING_KEYS {
            return Err(RouterError::invalid(
                "malformed_webhook",
                format!(
                    "the webhook names {} accounts; no {channel} webhook names more than {MAX_ROUTING_KEYS}",
                    keys.len()
                ),
            ));
        }
        let (first, rest) = match rule {
            KeyRule::FirstSigned => keys.split_at(keys.len().min(1)),
            KeyRule::EveryKey => keys.split_at(0),
        };
        let mut named = false;
        let mut seen = HashSet::new();
        let mut by_secret: HashMap<String, std::result::Result<(), WebhookError>> = HashMap::new();
        let mut verified: Vec<Arc<Account>> = Vec::new();
        let mut first_error = None;
        for batch in [first, rest] {
            if batch.is_empty() {
                continue;
            }
            for acc in self
                .resolve_routes(channel, batch)
                .await?
                .into_iter()
                .flatten()
            {
                named = true;
                if !seen.insert(acc.ctx.account_id.clone()) {
                    continue;
                }
                let verdict = match adapter.webhook_secret(&acc.ctx) {
                    Some(secret) => by_secret
                        .entry(secret.to_owned())
                        .or_insert_with(|| adapter.verify_webhook(request, &acc.ctx))
                        .clone(),
                    None => adapter.verify_webhook(request, &acc.ctx),
                };
                match verdict {
                    Ok(()) => {
                        verified.push(acc);
                        if rule == KeyRule::FirstSigned {
                            return Ok(verified);
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if !named {
            return Err(WebhookError::UnknownAccount.into());
        }
        if verified.is_empty() {
            return Err(first_error.unwrap_or(WebhookError::BadSignature).into());
        }
        Ok(verified)
    }

    /// How the inbound group commit has gone since this router started.
    pub fn inbound_batch_stats(&self) -> &BatchStats {
        &self.inner.batcher.stats
    }

    /// Answers a provider's subscription handshake (Meta's GET).
    ///
    /// # Errors
    /// `not_found` for an unknown channel; a database error.
    pub async fn answer_handshake(
        &self,
        channel: &str,
        request: &WebhookRequest,
    ) -> Result<HandshakeReply> {
        let adapter = self
            .inner
            .adapters
            .get(channel)
            .ok_or(RouterError::NotFound("channel"))?;
        let accounts = self.active_accounts(channel).await?;
        Ok(adapter.answer_handshake(request, &accounts))
    }
}

/// What storing one webhook produced: (stored, duplicates) and the events to publish.
type Stored = ((usize, usize), Vec<RouterEvent>);

/// Stores a new event that is not a message: a status, a provider error or an unknown kind.
async fn store_other<C: ConnectionTrait>(
    txn: &C,
    channel: &str,
    account: &Arc<Account>,
    event: &InboundEvent,
) -> Result<Option<RouterEvent>, DbErr> {
    match &event.kind {
        EventKind::Status(s) => {
            let applied = statuses::apply(txn, channel, s, &event.raw).await?;
            if let Some(recipient) = &s.recipient {
                // A recipient reported with another wa_id or a BSUID is the same person.
                if recipient.phones().count() + usize::from(recipient.bsuid.is_some()) > 1 {
                    contacts::upsert(txn, &account.ctx.tenant_id, recipient).await?;
                }
            }
            if let Applied::Advanced(ev) = applied {
                return Ok(Some(ev));
            }
        }
        EventKind::ProviderError(e) => {
            let detail = format!(
                "provider error {}: {}",
                e.code,
                e.message.as_deref().unwrap_or("")
            );
            problem(
                txn,
                channel,
                Some(account),
                "provider_error",
                &detail,
                &event.raw,
            )
            .await?;
        }
        _ => {
            problem(
                txn,
                channel,
                Some(account),
                "unknown_event",
                "event kind not handled",
                &event.raw,
            )
            .await?;
        }
    }
    Ok(None)
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Message(m) => m.direction.as_str(),
        EventKind::Status(_) => "status",
        EventKind::ProviderError(_) => "provider_error",
        _ => "other",
    }
}

async fn problem<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    account: Option<&Arc<Account>>,
    kind: &str,
    detail: &str,
    raw: &serde_json::Value,
) -> Result<(), DbErr> {
    tracing::warn!(
        channel,
        kind,
        detail,
        "Webhook item not stored as an event."
    );
    webhook_problems::Entity::insert(webhook_problems::ActiveModel {
        channel: Set(channel.to_owned()),
        tenant_id: Set(account.map(|a| a.ctx.tenant_id.clone())),
        account_id: Set(account.map(|a| a.ctx.account_id.clone())),
        kind: Set(kind.to_owned()),
        detail: Set(detail.to_owned()),
        raw: Set((!raw.is_null()).then(|| raw.to_string())),
        received_at: Set(now_ms()),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Whether an inbound text is an opt-out or opt-in keyword (WhatsApp/Twilio conventions).
fn opt_keyword(m: &InboundMessage) -> Option<bool> {
    let text = m.content.text.as_deref()?.trim();
    if ["STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT"]
        .iter()
        .any(|k| text.eq_ignore_ascii_case(k))
    {
        Some(true)
    } else {
        Some(false)
    }
}

/// Most webhooks one group commit takes.
const MAX_BATCH: usize = 128;

/// One verified, parsed webhook to store.
#[derive(Clone)]
struct Job {
    channel: String,
    accounts: Vec<Arc<Account>>,
    parsed: Arc<ParsedWebhook>,
}

/// A job waiting for the group commit, with where its answer goes.
struct Queued {
    job: Job,
    reply: oneshot::Sender<Result<Stored, DbErr>>,
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
    stats: Arc<BatchStats>,
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
    poisoned_key: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Stores one webhook through the group commit, or as a batch of one when no writer
    /// task runs.
    async fn store(&self, store: Store, job: &Job) -> Result<Stored, DbErr> {
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
        let done = store_alone(&store, &self.stats, job).await?;
        count(&self.stats.batched, 1);
        Ok(done)
    }
}

/// Starts the writer tasks: one on SQLite (a single writer anyway), several on PostgreSQL,
/// whose commits can run in parallel.
fn start_writers(store: Store, stats: Arc<BatchStats>) -> mpsc::Sender<Queued> {
    let (tx, rx) = mpsc::channel::<Queued>(4 * MAX_BATCH);
    let writers = match store.backend() {
        sea_orm::DatabaseBackend::Sqlite => 1,
        _ => 4,
    };
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
                commit_batch(&store, &stats, queued).await;
            }
        });
    }
    tx
}

/// Stores the queued webhooks as one batch and answers each. If the batch fails and holds
/// several webhooks, each is stored again as a batch of one and answered with its own
/// outcome; a failed batch of one answers its error.
async fn commit_batch(store: &Store, stats: &BatchStats, queued: Vec<Queued>) {
    let (jobs, replies): (Vec<Job>, Vec<_>) = queued.into_iter().map(|q| (q.job, q.reply)).unzip();
    let error = match store_batch(store, stats, &jobs).await {
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
        let done = store_alone(store, stats, job).await;
        if done.is_ok() {
            count(&stats.retried_alone, 1);
        }
        answer(reply, done);
    }
}

/// Stores one webhook as a batch of one, in its own transaction.
async fn store_alone(store: &Store, stats: &BatchStats, job: &Job) -> Result<Stored, DbErr> {
    store_batch(store, stats, std::slice::from_ref(job))
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
    #[cfg_attr(not(test), allow(unused_variables))] stats: &BatchStats,
    jobs: &[Job],
) -> Result<Vec<Stored>, DbErr> {
    let txn = store.write_txn().await?;
    let results = batch::store_jobs(&txn, jobs).await?;
    #[cfg(test)]
    if let Some(key) = stats.poisoned_key.lock().unwrap().as_deref()
        && jobs
            .iter()
            .any(|j| j.parsed.events.iter().any(|e| e.event_key == key))
    {
        // Dropping the transaction rolls back everything the batch wrote.
        return Err(DbErr::Custom("batch failpoint".into()));
    }
    txn.commit().await?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use sea_orm::{EntityTrait, PaginatorTrait};
    use switchboard_core::testing::{self, FakeAdapter};
    use switchboard_core::{ContactIdentity, PhoneNumber, PhoneParser, WebhookRequest};

    use super::*;
    use crate::crypto::CredentialCipher;
    use crate::store::SqliteSync;
    use crate::store::entity::{messages, webhook_events};

    const BUSINESS: &str = "+14155238886";
    const SECRET: &str = "batch-secret";

    fn webhook(key: &str, from: &str) -> WebhookRequest {
        let from = ContactIdentity::from_phone(PhoneNumber::parse(from).unwrap());
        let event = testing::inbound_text(BUSINESS, key, from, "hi");
        FakeAdapter::webhook(BUSINESS, &[event], Some(SECRET))
    }

    async fn fake_router(dir: &tempfile::TempDir) -> Router {
        let url = format!("sqlite://{}/inbound.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        let router = Router::builder(store, cipher)
            .adapter(Arc::new(FakeAdapter::new()))
            .phone_parser(PhoneParser::with_region("NL").unwrap())
            .build();
        let tenant = router.create_tenant("acme").await.unwrap().tenant_id;
        router
            .connect_account(
                &tenant,
                "fake",
                BUSINESS,
                &FakeAdapter::credentials(SECRET),
                None,
            )
            .await
            .unwrap();
        router
    }

    /// Whatever an adapter hands over, the keys read before verification are bounded, and
    /// read in one query (two for `FirstSigned`, whose first key is read alone).
    #[tokio::test]
    async fn routing_keys_are_bounded_and_read_in_one_query() {
        let dir = tempfile::tempdir().unwrap();
        let router = fake_router(&dir).await;
        let unknown: Vec<String> = (0..=MAX_ROUTING_KEYS)
            .map(|i| format!("+3161{i:07}"))
            .collect();
        let every_key = FakeAdapter::new();
        let first_signed = FakeAdapter::new().with_key_rule(KeyRule::FirstSigned);
        let request = FakeAdapter::webhook(BUSINESS, &[], Some(SECRET));
        let counts = || (router.route_queries(), router.route_reads());

        let err = router
            .signed_accounts("fake", &unknown, &every_key, &request)
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("malformed_webhook", 400));
        assert_eq!(counts(), (0, 0), "nothing is read past the bound");

        let mut keys = unknown[..MAX_ROUTING_KEYS - 1].to_vec();
        keys.push(BUSINESS.to_owned());
        let signed = router
            .signed_accounts("fake", &keys, &every_key, &request)
            .await
            .unwrap();
        assert_eq!(signed.len(), 1);
        assert_eq!(counts(), (1, MAX_ROUTING_KEYS as u64));

        // FirstSigned: the first key alone, then the rest together.
        let keys = [BUSINESS.to_owned(), unknown[MAX_ROUTING_KEYS].clone()];
        router.inner.accounts.clear();
        let before = counts();
        router
            .signed_accounts("fake", &keys, &first_signed, &request)
            .await
            .unwrap();
        assert_eq!((counts().0 - before.0, counts().1 - before.1), (1, 1));
        let keys = [unknown[MAX_ROUTING_KEYS].clone(), BUSINESS.to_owned()];
        router.inner.accounts.clear();
        let before = counts();
        router
            .signed_accounts("fake", &keys, &first_signed, &request)
            .await
            .unwrap();
        assert_eq!((counts().0 - before.0, counts().1 - before.1), (2, 2));
    }

    /// A webhook naming several accounts that share a secret has it checked once; each of
    /// them is still verified, and an account with another secret is not.
    #[tokio::test]
    async fn a_signature_is_checked_once_per_distinct_secret() {
        let dir = tempfile::tempdir().unwrap();
        let router = fake_router(&dir).await;
        let tenant = router.create_tenant("globex").await.unwrap().tenant_id;
        let shared = ["+31201234567", "+31201234568", "+31201234569"];
        for (number, secret) in shared
            .iter()
            .map(|n| (n, SECRET))
            .chain([(&"+31201234560", "other")])
        {
            router
                .connect_account(
                    &tenant,
                    "fake",
                    number,
                    &FakeAdapter::credentials(secret),
                    None,
                )
                .await
                .unwrap();
        }
        let adapter = FakeAdapter::new();
        let request = FakeAdapter::webhook(BUSINESS, &[], Some(SECRET));
        let keys: Vec<String> = [BUSINESS, "+31201234560"]
            .into_iter()
            .chain(shared)
            .map(str::to_owned)
            .collect();
        let verified = router
            .signed_accounts("fake", &keys, &adapter, &request)
            .await
            .unwrap();
        let mut routed: Vec<&str> = verified
            .iter()
            .map(|a| a.ctx.routing_key.as_str())
            .collect();
        routed.sort_unstable();
        assert_eq!(routed, [BUSINESS, shared[0], shared[1], shared[2]]);
        assert_eq!(adapter.verifications(), 2, "one check per distinct secret");
    }

    /// When a batch fails, nothing of it stays and each of its webhooks is stored again as a
    /// batch of one: the good ones exactly once and answered as if the batch had worked, the
    /// bad one failing alone with nothing of it stored.
    #[tokio::test]
    async fn a_failed_batch_is_rolled_back_and_its_webhooks_retried_alone() {
        let dir = tempfile::tempdir().unwrap();
        let router = fake_router(&dir).await;
        let stats = router.inbound_batch_stats();
        // A lone webhook goes by the batch path too.
        router
            .receive_webhook("fake", webhook("E0", "+31612345600"))
            .await
            .unwrap();
        assert_eq!(stats.batched.load(Relaxed), 1);

        *stats.poisoned_key.lock().unwrap() = Some("BAD".into());
        let mut queued = Vec::new();
        let mut answers = Vec::new();
        for (key, from) in [
            ("E1", "+31612345601"),
            ("E2", "+31612345602"),
            ("E1", "+31612345601"),
            ("E0", "+31612345600"),
            ("BAD", "+31612345609"),
            ("E3", "+31612345600"),
        ] {
            let (_, job) = router
                .verify_and_parse("fake", &webhook(key, from))
                .await
                .unwrap();
            let (reply, answer) = oneshot::channel();
            queued.push(Queued { job, reply });
            answers.push(answer);
        }
        // One batch, as a writer task takes it.
        commit_batch(router.store(), stats, queued).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            match answer.await.expect("every webhook is answered") {
                Ok((counts, events)) => outcomes.push(Some((counts, events.len()))),
                Err(e) => {
                    assert_eq!(e, DbErr::Custom("batch failpoint".into()));
                    outcomes.push(None);
                }
            }
        }
        assert_eq!(
            outcomes,
            [
                Some(((1, 0), 1)),
                Some(((1, 0), 1)),
                Some(((0, 1), 0)),
                Some(((0, 1), 0)),
                None,
                Some(((1, 0), 1)),
            ]
        );
        assert_eq!(stats.split_batches.load(Relaxed), 1);
        assert_eq!(stats.retried_alone.load(Relaxed), 5);
        assert_eq!(
            stats.batched.load(Relaxed),
            1,
            "no webhook of the failed batch counts as batched"
        );

        let db = router.store().conn();
        assert_eq!(messages::Entity::find().count(db).await.unwrap(), 4);
        assert_eq!(webhook_events::Entity::find().count(db).await.unwrap(), 4);
        assert_eq!(
            crate::store::entity::contacts::Entity::find()
                .count(db)
                .await
                .unwrap(),
            3,
            "nothing of the bad webhook stayed"
        );

        // Through the pipeline: the bad webhook is refused with a 503, the other answered.
        let acks = futures::future::join_all(
            [("E4", "+31612345604"), ("BAD", "+31612345609")]
                .map(|(key, from)| router.receive_webhook("fake", webhook(key, from))),
        )
        .await;
        assert_eq!(acks[0].as_ref().unwrap().stored, 1);
        let refused = acks[1].as_ref().unwrap_err();
        assert_eq!(refused.http_status(), 503, "{refused}");

        // Once it can be stored, it is, for the first time.
        *stats.poisoned_key.lock().unwrap() = None;
        let ack = router
            .receive_webhook("fake", webhook("BAD", "+31612345609"))
            .await
            .unwrap();
        assert_eq!((ack.stored, ack.duplicates), (1, 0));
        assert_eq!(messages::Entity::find().count(db).await.unwrap(), 6);
    }

    /// A router whose writer tasks ended with their runtime still stores a webhook, alone,
    /// before acknowledging it.
    #[test]
    fn a_webhook_is_stored_alone_when_the_writer_tasks_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let router = first.block_on(fake_router(&dir));
        // Starts the writer tasks on the first runtime, then ends them with it.
        first
            .block_on(router.receive_webhook("fake", webhook("E0", "+31612345600")))
            .unwrap();
        drop(first);

        runtime().block_on(async {
            let ack = router
                .receive_webhook("fake", webhook("E1", "+31612345601"))
                .await
                .unwrap();
            assert_eq!((ack.stored, ack.duplicates), (1, 0));
            let stats = router.inbound_batch_stats();
            assert_eq!(stats.batched.load(Relaxed), 2);
            let db = router.store().conn();
            assert_eq!(messages::Entity::find().count(db).await.unwrap(), 2);
            assert_eq!(webhook_events::Entity::find().count(db).await.unwrap(), 2);
        });
    }
}
