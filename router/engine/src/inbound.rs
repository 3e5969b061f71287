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

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, TryInsertResult};
use switchboard_core::{
    ChannelAdapter, Direction, EventKind, HandshakeReply, InboundEvent, InboundMessage, KeyRule,
    MAX_ROUTING_KEYS, MessageStatus, ParseProblem, ParsedWebhook, WebhookError, WebhookReply,
    WebhookRequest,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::accounts::Account;
use crate::error::{Result, RouterError};
use crate::events::RouterEvent;
use crate::ids::{self, now_ms};
use crate::router::Router;
use crate::statuses::{self, Applied};
use crate::store::Store;
use crate::store::entity::{messages, webhook_events, webhook_problems};
use crate::{contacts, conversations};

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
        let adapter = self
            .inner
            .adapters
            .get(channel)
            .ok_or(RouterError::NotFound("channel"))?
            .clone();
        let keys = adapter.routing_keys(&request)?;
        let verified = self
            .signed_accounts(channel, &keys, adapter.as_ref(), &request)
            .await?;
        let contexts: Vec<&switchboard_core::AccountContext> =
            verified.iter().map(|a| &a.ctx).collect();
        let mut parsed = adapter.parse_webhook(&request, &contexts)?;
        if request.may_carry_nul() {
            parsed.strip_nul_chars();
        }
        let parsed = Arc::new(parsed);

        // A deadlock or serialization failure between concurrent webhooks (PostgreSQL) is
        // retried: the whole transaction is idempotent thanks to the event keys.
        let (ack_counts, events) = self
            .inner
            .store
            .retry_conflicts("webhook", || {
                self.inner
                    .batcher
                    .store(self.inner.store.clone(), channel, &verified, &parsed)
            })
            .await?;
        self.publish(events);
        let (stored, duplicates) = ack_counts;
        Ok(WebhookAck {
            reply: adapter.webhook_reply(),
            stored,
            duplicates,
            problems: parsed.problems.len(),
        })
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

/// Stores one webhook in its own transaction.
async fn store_events(
    store: &Store,
    channel: &str,
    accounts: &[Arc<Account>],
    events: &[InboundEvent],
    problems: &[ParseProblem],
) -> Result<Stored, DbErr> {
    let txn = store.write_txn().await?;
    let done = store_events_in(&txn, channel, accounts, events, problems).await?;
    txn.commit().await?;
    Ok(done)
}

/// Stores one webhook's events and problems inside the caller's transaction.
async fn store_events_in<C: ConnectionTrait>(
    txn: &C,
    channel: &str,
    accounts: &[Arc<Account>],
    events: &[InboundEvent],
    problems: &[ParseProblem],
) -> Result<Stored, DbErr> {
    let mut stored = 0;
    let mut duplicates = 0;
    let mut notify = Vec::new();
    for event in events {
        let Some(account) = accounts
            .iter()
            .find(|a| a.ctx.routing_key == event.routing_key)
        else {
            problem(
                txn,
                channel,
                None,
                "unrouted_event",
                "event for an account that did not verify",
                &event.raw,
            )
            .await?;
            continue;
        };
        let fresh = webhook_events::Entity::insert(webhook_events::ActiveModel {
            channel: Set(channel.to_owned()),
            event_key: Set(event.event_key.clone()),
            tenant_id: Set(account.ctx.tenant_id.clone()),
            account_id: Set(account.ctx.account_id.clone()),
            kind: Set(kind_name(&event.kind).to_owned()),
            received_at: Set(now_ms()),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([
            webhook_events::Column::Channel,
            webhook_events::Column::EventKey,
        ])
        .exec_without_returning(txn)
        .await?;
        if conflicted(&fresh) {
            duplicates += 1;
            continue;
        }
        stored += 1;
        match &event.kind {
            EventKind::Message(m) => match store_message(txn, account, m, &event.raw).await? {
                StoredMessage::New(ev) => notify.push(ev),
                StoredMessage::Duplicate => {
                    stored -= 1;
                    duplicates += 1;
                }
                StoredMessage::NoContact => {
                    problem(
                        txn,
                        channel,
                        Some(account),
                        "unknown_contact",
                        "message names no phone number or BSUID",
                        &event.raw,
                    )
                    .await?;
                }
            },
            _ => {
                if let Some(ev) = store_other(txn, channel, account, event).await? {
                    notify.push(ev);
                }
            }
        }
    }
    for p in problems {
        let account = p
            .routing_key
            .as_deref()
            .and_then(|k| accounts.iter().find(|a| a.ctx.routing_key == k));
        problem(txn, channel, account, "parse_problem", &p.detail, &p.raw).await?;
    }
    crate::notify::enqueue(txn, &notify).await?;
    Ok(((stored, duplicates), notify))
}

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

/// Whether an `ON CONFLICT DO NOTHING` insert inserted nothing.
pub(crate) fn conflicted(result: &TryInsertResult<u64>) -> bool {
    matches!(
        result,
        TryInsertResult::Conflicted | TryInsertResult::Inserted(0)
    )
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

enum StoredMessage {
    New(RouterEvent),
    /// Same provider message id already stored (under another event key).
    Duplicate,
    NoContact,
}

async fn store_message<C: ConnectionTrait>(
    db: &C,
    account: &Account,
    m: &InboundMessage,
    raw: &serde_json::Value,
) -> Result<StoredMessage, DbErr> {
    let tenant_id = &account.ctx.tenant_id;
    let Some(contact_id) = contacts::upsert(db, tenant_id, &m.contact).await? else {
        return Ok(StoredMessage::NoContact);
    };
    // A provider clock ahead of ours must not stretch the service window.
    let at = m.timestamp.timestamp_millis().min(now_ms());
    let inbound = m.direction == Direction::Inbound;
    let conv = conversations::touch(
        db,
        tenant_id,
        &contact_id,
        &account.ctx.account_id,
        &account.channel,
        at,
        inbound,
    )
    .await?;
    if inbound {
        // STOP opts out; any other message from the person opts back in.
        match opt_keyword(m) {
            Some(true) => conversations::set_opted_out(db, &conv.id, Some(now_ms())).await?,
            _ if conv.opted_out_at.is_some() => {
                conversations::set_opted_out(db, &conv.id, None).await?
            }
            _ => {}
        }
    }
    let id = ids::new_id(ids::MESSAGE);
    let now = now_ms();
    let content = serde_json::to_string(&m.content).unwrap_or_else(|_| "{}".into());
    let inserted = messages::Entity::insert(messages::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.clone()),
        conversation_id: Set(conv.id.clone()),
        account_id: Set(account.ctx.account_id.clone()),
        channel: Set(account.channel.clone()),
        direction: Set(m.direction.as_str().to_owned()),
        status: Set(MessageStatus::Received.as_str().to_owned()),
        status_rank: Set(MessageStatus::Received.rank()),
        provider_message_id: Set(Some(m.provider_message_id.clone())),
        content: Set(content),
        reply_to: Set(m.reply_to.clone()),
        error_code: Set(None),
        error_message: Set(None),
        raw: Set(Some(raw.to_string())),
        idempotency_key: Set(None),
        request_hash: Set(None),
        provider_timestamp: Set(Some(at)),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict_do_nothing_on([
        messages::Column::Channel,
        messages::Column::ProviderMessageId,
    ])
    .exec_without_returning(db)
    .await?;
    if conflicted(&inserted) {
        return Ok(StoredMessage::Duplicate);
    }
    crate::media::enqueue_inbound(db, tenant_id, &account.ctx.account_id, &id, &m.content).await?;
    Ok(StoredMessage::New(RouterEvent::MessageReceived {
        tenant_id: tenant_id.clone(),
        message_id: id,
        conversation_id: conv.id,
        direction: m.direction,
    }))
}

/// Most webhooks one group commit takes.
const MAX_BATCH: usize = 128;

/// One webhook waiting for the group commit.
struct Job {
    channel: String,
    accounts: Vec<Arc<Account>>,
    parsed: Arc<ParsedWebhook>,
    reply: oneshot::Sender<Result<Stored, DbErr>>,
}

/// Group commit for inbound webhooks. Concurrent webhooks queue here; a writer task takes
/// everything queued (up to [`MAX_BATCH`]) and stores it in ONE transaction, so a burst costs
/// one BEGIN/COMMIT (one fsync on SQLite) instead of one per webhook, and a webhook waits for
/// the write lock once per batch instead of behind every other webhook. Nothing waits for a
/// batch to fill: a lone webhook is committed at once.
///
/// Invariant: each webhook is answered only after the transaction holding it committed. If
/// any webhook of a batch fails, the batch is rolled back and every webhook of it is stored
/// again in its own transaction, so one bad webhook fails alone.
#[derive(Default)]
pub(crate) struct Batcher {
    queue: std::sync::OnceLock<mpsc::Sender<Job>>,
    stats: Arc<BatchStats>,
}

/// How the group commit went, for tests and operators: a batch that failed and was stored
/// one by one is correct but slow, and on SQLite it means a bug in the batch path.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Webhooks committed by the batch path.
    pub batched: std::sync::atomic::AtomicU64,
    /// Batches rolled back and stored again one webhook at a time.
    pub fallbacks: std::sync::atomic::AtomicU64,
    /// Tests: every batch fails just before its commit.
    #[cfg(test)]
    fail_batches: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Stores one webhook through the group commit, or directly when no writer task runs.
    async fn store(
        &self,
        store: Store,
        channel: &str,
        accounts: &[Arc<Account>],
        parsed: &Arc<ParsedWebhook>,
    ) -> Result<Stored, DbErr> {
        let queue = self
            .queue
            .get_or_init(|| start_writers(store.clone(), self.stats.clone()));
        let (reply, answer) = oneshot::channel();
        let job = Job {
            channel: channel.to_owned(),
            accounts: accounts.to_vec(),
            parsed: parsed.clone(),
            reply,
        };
        if queue.send(job).await.is_ok()
            && let Ok(done) = answer.await
        {
            return done;
        }
        // The writers are gone (their runtime ended): nothing of this webhook is committed
        // unless it was answered, and the stores are idempotent, so store it directly.
        store_events(&store, channel, accounts, &parsed.events, &parsed.problems).await
    }
}

/// Starts the writer tasks: one on SQLite (a single writer anyway), several on PostgreSQL,
/// whose commits can run in parallel.
fn start_writers(store: Store, stats: Arc<BatchStats>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
    let writers = match store.backend() {
        sea_orm::DatabaseBackend::Sqlite => 1,
        _ => 4,
    };
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..writers {
        let (store, rx, stats) = (store.clone(), rx.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                let mut jobs = Vec::new();
                {
                    let mut rx = rx.lock().await;
                    match rx.recv().await {
                        Some(job) => jobs.push(job),
                        // Every sender (the Router) is gone.
                        None => return,
                    }
                    while jobs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                }
                commit_batch(&store, &stats, jobs).await;
            }
        });
    }
    tx
}

/// Stores `jobs` by the batch path, even a lone webhook (a message from a known contact
/// takes four statements there against seven one by one, so a quiet server answers sooner
/// too); if that fails, one by one.
async fn commit_batch(store: &Store, stats: &BatchStats, jobs: Vec<Job>) {
    use std::sync::atomic::Ordering::Relaxed;
    match store_batch(store, stats, &jobs).await {
        Ok(results) => {
            stats
                .batched
                .fetch_add(u64::try_from(jobs.len()).unwrap_or(u64::MAX), Relaxed);
            for (job, done) in jobs.into_iter().zip(results) {
                answer(job.reply, Ok(done));
            }
            return;
        }
        Err(e) => {
            stats.fallbacks.fetch_add(1, Relaxed);
            metrics::counter!("switchboard_inbound_batch_fallbacks_total").increment(1);
            tracing::debug!(error = %e, batch = jobs.len(), "Group commit failed; storing one by one.");
        }
    }
    for job in jobs {
        let done = store_events(
            store,
            &job.channel,
            &job.accounts,
            &job.parsed.events,
            &job.parsed.problems,
        )
        .await;
        answer(job.reply, done);
    }
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
    if stats
        .fail_batches
        .load(std::sync::atomic::Ordering::Relaxed)
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

    /// When a batch fails, nothing of it stays and every webhook of it is stored on its own,
    /// exactly once, and answered as if the batch had worked.
    #[tokio::test]
    async fn a_failed_batch_is_rolled_back_and_stored_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let router = fake_router(&dir).await;
        let stats = router.inbound_batch_stats();
        // A lone webhook goes by the batch path too.
        router
            .receive_webhook("fake", webhook("E0", "+31612345600"))
            .await
            .unwrap();
        assert_eq!(stats.batched.load(Relaxed), 1);

        stats.fail_batches.store(true, Relaxed);
        let acks = futures::future::join_all(
            [
                ("E1", "+31612345601"),
                ("E2", "+31612345602"),
                ("E1", "+31612345601"),
                ("E0", "+31612345600"),
                ("E3", "+31612345600"),
            ]
            .map(|(key, from)| router.receive_webhook("fake", webhook(key, from))),
        )
        .await;
        let acks: Vec<WebhookAck> = acks.into_iter().map(Result::unwrap).collect();
        let stored: usize = acks.iter().map(|a| a.stored).sum();
        let duplicates: usize = acks.iter().map(|a| a.duplicates).sum();
        assert_eq!((stored, duplicates), (3, 2));
        assert!(stats.fallbacks.load(Relaxed) >= 1);
        assert_eq!(
            stats.batched.load(Relaxed),
            1,
            "no failed batch counts as batched"
        );

        let db = router.store().conn();
        assert_eq!(messages::Entity::find().count(db).await.unwrap(), 4);
        assert_eq!(webhook_events::Entity::find().count(db).await.unwrap(), 4);
        assert_eq!(
            crate::store::entity::contacts::Entity::find()
                .count(db)
                .await
                .unwrap(),
            3
        );
    }
}
