//! The delivery engine: workers claim due outbox entries with a lease, send them through
//! the channel's adapter, and record the outcome and every attempt.
//!
//! - Claiming: PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite an IMMEDIATE transaction (one
//!   writer). Either way the claim is a lease (`locked_by`, `locked_until`), so entries of
//!   a process that died are taken over when the lease expires.
//! - Order: an entry is claimable only when no older entry of the same conversation is
//!   waiting, so messages to one contact leave in the order they were sent.
//! - Outcomes: transient errors retry with exponential backoff and full jitter (or the
//!   provider's retry-after) up to `max_attempts`; permanent errors fail at once with the
//!   provider's code; ambiguous outcomes (the provider may have sent it) are never resent
//!   blindly: the message fails visibly with code `delivery_unknown` and the attempt
//!   history shows the exchange.
//! - Crashes: delivery is at least once. A process that dies mid-round leaves its claimed
//!   entries leased. When the lease (`DeliveryConfig::lease`, `SWITCHBOARD_DELIVERY_LEASE_MS`)
//!   has expired, such an entry is in doubt: its request may have reached the provider. The
//!   next claim moves it `DeliveryConfig::in_doubt_grace` ahead instead of sending it; a
//!   status naming it meanwhile (providers echo our message id) takes it out of the outbox
//!   (`statuses::apply`), else it is sent again after the grace. Duplicates need a send that
//!   reached the provider and no status within the grace, are bounded by the sends in flight
//!   at the crash (at most `ROUNDS_IN_FLIGHT` claim batches), and only happen on a crash. A
//!   live worker never sends an entry whose lease it lost (`keep_lease`).
//! - Idle: after a round that claimed nothing, a round sleeps until `send()` wakes it, the
//!   next entry is due, or `DeliveryConfig::idle_poll` (`store::queue::WorkLoop`); looking only reads.
//! - Throughput: two claim rounds overlap, each round keeps one queue per sender, and the
//!   outcomes of successful sends (attempt row, provider id, status, outbox removal) are
//!   written many per transaction by the round's writer; a failed batch is rewritten one
//!   outcome per transaction, so one bad outcome fails alone.
//! - Rates: each sender is paced in process (`sender_rate`: evenly spaced, never above its
//!   rate in any second), and only the process holding the sender's lease
//!   (`sender_leases`) delivers for it, so the limit holds across processes.
//!   A process claims for a sender no more than its rate sends in half a lease (`Claimed`).
//!   Per-recipient pacing (`pacing`) reschedules instead of waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use switchboard_core::{Bsuid, Content, OutboundMessage, PhoneNumber, Recipient};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::config::DeliveryConfig;
use crate::error::Result;
use crate::ids::now_ms;
use crate::media::library::MediaLibrary;
use crate::outbound::claimed::{Claimed, ClaimedEntry};
use crate::outbound::outcomes::{Outcomes, Sent, attempt_row};
use crate::outbound::pacing::RecipientPacer;
use crate::outbound::queue::OUTBOX_QUEUE;
use crate::outbound::sender_leases::SenderLeases;
use crate::outbound::sender_rate::SenderLimits;
use crate::store::Store;
use crate::store::entity;
use crate::store::entity::{conversations, messages, outbox};
use crate::store::queue::{WorkLoop, millis};
use crate::tenancy::accounts::{Account, Accounts};
use crate::tenancy::registry::AdapterRegistry;

/// Claim rounds a process runs at once (see `delivery_loop`). At a crash, at most this many
/// claim batches (`DeliveryConfig::batch`) are in flight.
pub const ROUNDS_IN_FLIGHT: usize = 3;
/// Sends of one sender in flight at once within a round (its limiter spaces them).
const PER_SENDER_CONCURRENCY: usize = 64;
/// How often an entry waiting for its sender's rate checks that the sender is still held.
const HOLD_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Most ids in one `IN (…)` list.
const IN_CHUNK: usize = crate::store::IN_LIST_MAX;

/// A claimed entry's recipient, or which of its rows is missing.
type RecipientRow = std::result::Result<Recipient, &'static str>;

/// What a round's entries need from the database, read once right after claiming: a
/// constant number of queries per round, not a few per entry.
struct RoundRows {
    /// By message id.
    messages: HashMap<String, messages::Model>,
    /// By conversation id.
    recipients: HashMap<String, RecipientRow>,
}

/// One claimed entry with what its delivery needs: its message (`None` when the row is
/// gone), its recipient, and its place in `Claimed`.
type RoundEntry<'a> = (
    outbox::Model,
    Option<messages::Model>,
    RecipientRow,
    ClaimedEntry<'a>,
);

/// Where a message to `contact` goes: its number, its BSUID, or both.
fn recipient(contact: &entity::contacts::Model) -> Recipient {
    Recipient {
        phone: contact.e164.clone().map(PhoneNumber::from_trusted_e164),
        bsuid: contact.bsuid.as_deref().and_then(|b| Bsuid::parse(b).ok()),
    }
}

/// The rows whose `column` is one of `ids`, read `IN_CHUNK` ids per query.
async fn find_by_ids<C>(
    db: &sea_orm::DatabaseConnection,
    column: C,
    ids: &[String],
) -> std::result::Result<Vec<<C::EntityName as EntityTrait>::Model>, sea_orm::DbErr>
where
    C: ColumnTrait,
    C::EntityName: EntityTrait,
{
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        rows.extend(
            <C::EntityName as EntityTrait>::find()
                .filter(column.is_in(chunk.iter().cloned()))
                .all(db)
                .await?,
        );
    }
    Ok(rows)
}

/// The delivery engine: claims due outbox entries and sends them. Owns the claim
/// bookkeeping, the sender limiters and leases, and the recipient pacing.
pub struct Delivery {
    store: Store,
    adapters: AdapterRegistry,
    accounts: Arc<Accounts>,
    media: Arc<MediaLibrary>,
    outcomes: Outcomes,
    leases: SenderLeases,
    claimed: Claimed,
    limits: SenderLimits,
    pacer: RecipientPacer,
    config: DeliveryConfig,
    worker_id: String,
    /// Woken by `send()`.
    wake: Arc<Notify>,
}

impl Delivery {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Store,
        adapters: AdapterRegistry,
        accounts: Arc<Accounts>,
        media: Arc<MediaLibrary>,
        events: Arc<crate::events::EventBus>,
        config: DeliveryConfig,
        worker_id: String,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            leases: SenderLeases::new(store.clone(), worker_id.clone(), config.lease),
            outcomes: Outcomes {
                store: store.clone(),
                adapters: adapters.clone(),
                events,
                config: config.clone(),
            },
            store,
            adapters,
            accounts,
            media,
            claimed: Claimed::default(),
            limits: SenderLimits::default(),
            pacer: RecipientPacer::default(),
            config,
            worker_id,
            wake,
        }
    }

    /// Runs the delivery rounds until `shutdown` turns true; in-flight sends finish
    /// first, then this process's sender leases are released.
    pub(crate) async fn run(&self, shutdown: watch::Receiver<bool>) {
        // Rounds overlap: while one round's last sends wait for their senders' rates, the
        // next one claims and starts, so a sender's limiter is never idle while work is due.
        // Both share the per-sender limiters, so the rate holds.
        let work_loop = WorkLoop {
            store: &self.store,
            queue: OUTBOX_QUEUE,
            wake: &self.wake,
            poll_interval: self.config.poll_interval,
            idle_poll: self.config.idle_poll,
            what: "Delivery round",
        };
        let rounds =
            (0..ROUNDS_IN_FLIGHT).map(|_| work_loop.run(shutdown.clone(), || self.deliver_due()));
        futures::future::join_all(rounds).await;
        // Another process may take this one's senders after the cool-down, not a lease later.
        if let Err(e) = self.leases.release().await {
            tracing::warn!(error = %e, "Could not release sender leases.");
        }
    }

    /// Claims due outbox entries and delivers them; returns how many were claimed.
    ///
    /// # Errors
    /// A database error while claiming, or while reading the claimed entries' messages
    /// and recipients (the entries are then taken again when their leases expire).
    pub async fn deliver_due(&self) -> Result<usize> {
        let senders = self.leases.hold().await?;
        if senders.is_empty() {
            return Ok(0);
        }
        let entries = self.claim(&senders).await?;
        let n = entries.len();
        let RoundRows {
            mut messages,
            recipients,
        } = self.round_rows(&entries).await?;
        // One queue per sender, in claim order: a sender waiting for its rate never takes
        // the concurrency another sender could use.
        let mut queues: Vec<(String, Vec<RoundEntry<'_>>)> = Vec::new();
        for (entry, claimed) in entries {
            let message = messages.remove(&entry.message_id);
            let to = recipients
                .get(&entry.conversation_id)
                .cloned()
                .unwrap_or(Err("conversation"));
            let item = (entry, message, to, claimed);
            match queues.iter_mut().find(|(a, _)| *a == item.0.account_id) {
                Some((_, q)) => q.push(item),
                None => queues.push((item.0.account_id.clone(), vec![item])),
            }
        }
        // The outcomes of this round's sends are written in shared transactions.
        let (outcomes, written) = mpsc::unbounded_channel();
        let mut senders_work = Vec::with_capacity(queues.len());
        for (_, queue) in queues {
            let outcomes = outcomes.clone();
            senders_work.push(async move {
                let outcomes = &outcomes;
                futures::stream::iter(queue)
                    .for_each_concurrent(PER_SENDER_CONCURRENCY, |(entry, message, to, claimed)| async move {
                        // Moved in, so the entry's place is given back when its delivery
                        // ends (a binding unused in the block would drop it right away).
                        let _claimed = claimed;
                        let id = entry.message_id.clone();
                        if let Err(e) = self.deliver_one(entry, message, to, outcomes).await {
                            // The lease expires and another round retries it.
                            tracing::warn!(message_id = %id, error = %e, "Delivery attempt could not be recorded.");
                        }
                    })
                    .await;
            });
        }
        drop(outcomes);
        let work = async {
            tokio::join!(
                futures::future::join_all(senders_work),
                self.outcomes.writer(written)
            );
        };
        // A round slowed down by a low rate must not outlive the sender leases it relies on.
        let renew = async {
            loop {
                tokio::time::sleep(self.config.lease / 3).await;
                if let Err(e) = self.leases.renew().await {
                    tracing::warn!(error = %e, "Could not renew sender leases.");
                }
            }
        };
        tokio::select! {
            () = work => {}
            _ = renew => {}
        }
        Ok(n)
    }

    /// The sender's rate: the account's own, or its channel's default.
    fn sender_rate(&self, account: &Account) -> u32 {
        let default = self
            .adapters
            .get(&account.channel)
            .map_or(1, |a| a.capabilities().default_rate_per_second);
        account
            .rate_per_second
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(default)
            .max(1)
    }

    /// Most entries of one sender this process holds claimed: what its rate sends in half
    /// a lease (see `Claimed`), at least one.
    async fn claim_cap(&self, account_id: &str) -> Result<usize> {
        let account = self.accounts.by_id(account_id).await?;
        let rate = u64::from(self.sender_rate(&account));
        let half_lease_ms = u64::try_from(self.config.lease.as_millis() / 2).unwrap_or(u64::MAX);
        let cap = rate.saturating_mul(half_lease_ms) / 1_000;
        Ok(usize::try_from(cap.clamp(1, self.config.batch.max(1))).unwrap_or(1))
    }

    /// Claims due entries of `senders`; each comes with its place in `Claimed`.
    async fn claim(&self, senders: &[String]) -> Result<Vec<(outbox::Model, ClaimedEntry<'_>)>> {
        let mut rooms: HashMap<String, usize> = HashMap::new();
        for account in senders {
            let cap = match self.claim_cap(account).await {
                Ok(cap) => cap,
                Err(e) => {
                    self.give_back_rooms(&rooms);
                    return Err(e);
                }
            };
            let room = self.claimed.reserve(account, cap);
            if room > 0 {
                rooms.insert(account.clone(), room);
            }
        }
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let claimed = self.claim_within(&mut rooms).await;
        // What is left of the reservations was not claimed.
        self.give_back_rooms(&rooms);
        let claimed = claimed?;
        self.claimed.track(&claimed);
        Ok(claimed
            .into_iter()
            .map(|entry| {
                let place = ClaimedEntry {
                    claimed: &self.claimed,
                    account_id: entry.account_id.clone(),
                    message_id: entry.message_id.clone(),
                };
                (entry, place)
            })
            .collect())
    }

    /// Reads the messages and recipients of a round's entries: one query for the
    /// messages, one for the conversations and one for their contacts (per `IN_CHUNK`
    /// ids). Nothing is read when nothing was claimed.
    async fn round_rows(&self, entries: &[(outbox::Model, ClaimedEntry<'_>)]) -> Result<RoundRows> {
        let db = self.store.conn();
        let message_ids: Vec<String> = entries.iter().map(|(e, _)| e.message_id.clone()).collect();
        let mut conversation_ids: Vec<String> = entries
            .iter()
            .map(|(e, _)| e.conversation_id.clone())
            .collect();
        conversation_ids.sort_unstable();
        conversation_ids.dedup();

        let load_messages = async {
            let rows = find_by_ids(db, messages::Column::Id, &message_ids).await?;
            Ok::<_, sea_orm::DbErr>(
                rows.into_iter()
                    .map(|m| (m.id.clone(), m))
                    .collect::<HashMap<_, _>>(),
            )
        };
        let load_recipients = async {
            let convs = find_by_ids(db, conversations::Column::Id, &conversation_ids).await?;
            let mut contact_ids: Vec<String> = convs.iter().map(|c| c.contact_id.clone()).collect();
            contact_ids.sort_unstable();
            contact_ids.dedup();
            let contacts: HashMap<String, entity::contacts::Model> =
                find_by_ids(db, entity::contacts::Column::Id, &contact_ids)
                    .await?
                    .into_iter()
                    .map(|c| (c.id.clone(), c))
                    .collect();
            // A conversation not found here is missing too: see `deliver_due`.
            let recipients: HashMap<String, RecipientRow> = convs
                .into_iter()
                .map(|conv| {
                    let to = contacts
                        .get(&conv.contact_id)
                        .map(recipient)
                        .ok_or("contact");
                    (conv.id, to)
                })
                .collect();
            Ok::<_, sea_orm::DbErr>(recipients)
        };
        let (messages, recipients) = futures::try_join!(load_messages, load_recipients)?;
        Ok(RoundRows {
            messages,
            recipients,
        })
    }

    fn give_back_rooms(&self, rooms: &HashMap<String, usize>) {
        for (account, n) in rooms {
            self.claimed.give_back(account, *n);
        }
    }

    /// Claims due entries of the senders in `rooms`, no more than each one's room, and
    /// takes what it claims out of `rooms`.
    async fn claim_within(&self, rooms: &mut HashMap<String, usize>) -> Result<Vec<outbox::Model>> {
        let cfg = &self.config;
        let now = now_ms();
        let txn = self.store.write_txn().await?;
        let accounts =
            sea_orm::Condition::all().add(outbox::Column::AccountId.is_in(rooms.keys().cloned()));
        let mut due = OUTBOX_QUEUE
            .due::<outbox::Entity, _>(&txn, now, accounts, cfg.batch)
            .await?;
        due.retain(|e| !self.claimed.in_flight(&e.message_id));
        // Still leased to a process (the lease expired, or it would not be due): that
        // process died or stalled between claiming and recording an outcome, so the provider
        // may have it already. It waits for a status naming it (`statuses::apply` then
        // takes it out of the outbox) and is sent again only after the grace.
        let (in_doubt, mut due): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|e| e.locked_by.is_some());
        if !in_doubt.is_empty() {
            let grace = millis(cfg.in_doubt_grace);
            OUTBOX_QUEUE
                .defer::<outbox::Entity, _, _>(
                    &txn,
                    in_doubt.iter().map(|e| e.message_id.as_str()),
                    now,
                    now + grace,
                )
                .await?;
            tracing::info!(
                n = in_doubt.len(),
                grace_ms = grace,
                "Messages whose send may have begun in a stopped process wait for a provider status before they are sent again."
            );
        }
        due.retain(|e| match rooms.get_mut(&e.account_id) {
            Some(room) if *room > 0 => {
                *room -= 1;
                true
            }
            _ => false,
        });
        if due.is_empty() {
            txn.commit().await?;
            return Ok(due);
        }
        let until = now + millis(cfg.lease);
        OUTBOX_QUEUE
            .lease::<outbox::Entity, _, _>(
                &txn,
                due.iter().map(|e| e.message_id.as_str()),
                &self.worker_id,
                until,
            )
            .await?;
        txn.commit().await?;
        // The lease just taken is this worker's fencing token (see `keep_lease`).
        Ok(due
            .into_iter()
            .map(|e| outbox::Model {
                locked_by: Some(self.worker_id.clone()),
                locked_until: Some(until),
                ..e
            })
            .collect())
    }

    /// Gives a claimed entry back untouched, for whoever holds its sender next.
    async fn unclaim(&self, entry: &outbox::Model) -> Result<()> {
        self.release_entry(entry, None).await
    }

    /// Moves a paced entry to when its recipient is ready: lease released, no attempt counted.
    async fn reschedule(&self, entry: &outbox::Model, wait: Duration) -> Result<()> {
        let next = now_ms() + millis(wait);
        self.release_entry(entry, Some(next)).await
    }

    /// Releases this worker's lease on an entry, optionally moving when it is due.
    async fn release_entry(&self, entry: &outbox::Model, due_at: Option<i64>) -> Result<()> {
        OUTBOX_QUEUE
            .release::<outbox::Entity, _>(
                self.store.write_conn(),
                entry.message_id.as_str(),
                &self.worker_id,
                due_at,
            )
            .await?;
        Ok(())
    }

    /// Called right before sending: true when this worker still holds the entry's lease.
    ///
    /// A long wait for the sender's rate could outlast the lease, and another process may
    /// then have claimed the entry; sending anyway would send it twice. When less than half
    /// the lease is left it is extended, conditionally on still being ours.
    async fn keep_lease(&self, entry: &mut outbox::Model) -> Result<bool> {
        let lease = millis(self.config.lease);
        let now = now_ms();
        let Some(until) = entry.locked_until else {
            return Ok(false);
        };
        if until - now > lease / 2 {
            return Ok(true);
        }
        let renewed = now + lease;
        let kept = OUTBOX_QUEUE
            .renew::<outbox::Entity, _>(
                self.store.write_conn(),
                entry.message_id.as_str(),
                &self.worker_id,
                until,
                renewed,
            )
            .await?;
        if kept {
            entry.locked_until = Some(renewed);
        }
        Ok(kept)
    }

    /// Delivers one claimed entry; `message` and `to` were read for the whole round
    /// (`round_rows`).
    async fn deliver_one(
        &self,
        mut entry: outbox::Model,
        message: Option<messages::Model>,
        to: RecipientRow,
        outcomes: &mpsc::UnboundedSender<Sent>,
    ) -> Result<()> {
        let Some(message) = message else {
            outbox::Entity::delete_by_id(entry.message_id)
                .exec(self.store.write_conn())
                .await?;
            return Ok(());
        };
        let account = self.accounts.by_id(&entry.account_id).await?;
        let Some(adapter) = self.adapters.get(&account.channel).cloned() else {
            self.outcomes
                .fail(
                    &entry,
                    &message,
                    "unknown_channel",
                    "the channel of this account is not enabled in this build",
                )
                .await?;
            return Ok(());
        };
        if let Some(pacing) = adapter.capabilities().recipient_pacing
            && let Some(wait) = self.pacer.check(pacing, &entry.conversation_id)
        {
            metrics::counter!("switchboard_recipient_paced_total", "channel" => account.channel.clone()).increment(1);
            return self.reschedule(&entry, wait).await;
        }
        let to = to.map_err(crate::error::RouterError::NotFound)?;
        let content: Content = serde_json::from_str(&message.content).unwrap_or_default();
        let mut outbound = OutboundMessage {
            id: message.id.clone(),
            to,
            content,
            reply_to: message.reply_to.clone(),
        };
        // Uploaded media becomes a provider media id or a signed URL; a failure counts as
        // an attempt and is retried or failed like a send.
        if let Err(err) = self
            .media
            .prepare_outbound(&account.ctx, adapter.as_ref(), &mut outbound.content)
            .await?
        {
            let attempt = entry.attempts + 1;
            let outcome = err.kind().as_str();
            self.outcomes
                .record_attempt(
                    &message,
                    attempt,
                    now_ms(),
                    Duration::ZERO,
                    outcome,
                    Some(&err),
                    err.exchange(),
                )
                .await?;
            return self
                .outcomes
                .handle_failure(&entry, &message, attempt, err)
                .await;
        }
        let rate = self.sender_rate(&account);
        let limiter = self.limits.get(&account.ctx.account_id, rate);
        // Nothing with a variable latency (a database round trip) may stand between the
        // limiter's token and the send, or sends bunch up and a sender exceeds its rate in
        // some second. Right after a token, the lease is checked in memory (nobody can
        // claim the entry before `locked_until`); only when less than half of it is left is
        // it renewed in the database, and then a fresh token is taken.
        let lease_ms = millis(self.config.lease);
        let wait_started = Instant::now();
        loop {
            // The sender may go to another process while this waits for its rate; then
            // the entry goes back at once rather than when it would have had its turn.
            let hold_lost = async {
                while self.leases.may_send(&entry.account_id, now_ms()) {
                    tokio::time::sleep(HOLD_CHECK_EVERY).await;
                }
            };
            tokio::select! {
                _ = limiter.until_ready() => {}
                () = hold_lost => {}
            }
            if !self.leases.may_send(&entry.account_id, now_ms()) {
                // The sender is another process's now (or about to be): it sends this.
                return self.unclaim(&entry).await;
            }
            if entry
                .locked_until
                .is_some_and(|until| until - now_ms() > lease_ms / 2)
            {
                break;
            }
            if !self.keep_lease(&mut entry).await? {
                tracing::warn!(message_id = %entry.message_id, "Lease lost while waiting for the sender's rate; another worker delivers it.");
                return Ok(());
            }
        }
        if wait_started.elapsed() > Duration::from_millis(1) {
            metrics::counter!("switchboard_rate_limit_waits_total", "channel" => account.channel.clone()).increment(1);
        }

        let started = now_ms();
        let clock = Instant::now();
        let result = adapter.send(&account.ctx, &outbound).await;
        let latency = clock.elapsed();
        metrics::histogram!("switchboard_send_latency_seconds", "channel" => account.channel.clone()).record(latency.as_secs_f64());
        let attempt = entry.attempts + 1;
        match result {
            Ok(mut receipt) => {
                metrics::counter!("switchboard_messages_sent_total", "channel" => account.channel.clone()).increment(1);
                let exchange = receipt.exchange.take();
                let attempt = attempt_row(
                    &message,
                    attempt,
                    started,
                    latency,
                    "sent",
                    None,
                    exchange.as_ref(),
                );
                let (done, recorded) = oneshot::channel();
                let sent = Sent {
                    entry,
                    message,
                    receipt,
                    attempt,
                    done,
                };
                if let Err(mpsc::error::SendError(sent)) = outcomes.send(sent) {
                    // No writer (cannot happen within a round): record it alone.
                    return self.outcomes.write_sent_one(&sent).await;
                }
                recorded.await.unwrap_or_else(|_| {
                    Err(sea_orm::DbErr::Custom("the outcome writer stopped".into()).into())
                })
            }
            Err(mut err) => {
                let exchange = err.take_exchange();
                let outcome = err.kind().as_str();
                self.outcomes
                    .record_attempt(
                        &message,
                        attempt,
                        started,
                        latency,
                        outcome,
                        Some(&err),
                        exchange.as_ref(),
                    )
                    .await?;
                self.outcomes
                    .handle_failure(&entry, &message, attempt, err)
                    .await
            }
        }
    }

    /// Outbox entries waiting, for the queue-depth gauge.
    ///
    /// # Errors
    /// A database error.
    pub async fn queue_depth(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(outbox::Entity::find().count(self.store.conn()).await?)
    }
}
