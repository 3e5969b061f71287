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
//!   next entry is due, or `DeliveryConfig::idle_poll` (`wake`); looking only reads.
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
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use sea_orm::sea_query::{CaseStatement, Expr, LockBehavior, LockType};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use switchboard_core::{
    Bsuid, ChannelError, Content, MessageStatus, OutboundMessage, PhoneNumber, Recipient,
    SendReceipt,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::Result;
use crate::ids::now_ms;
use crate::router::Router;
use crate::statuses::{self, Applied};
use crate::store::entity::{
    contacts as contact_rows, conversations, messages, outbox, pending_statuses, send_attempts,
};
use crate::{contacts, conversations as convs};

/// Claim rounds a process runs at once (see `delivery_loop`). At a crash, at most this many
/// claim batches (`DeliveryConfig::batch`) are in flight.
pub const ROUNDS_IN_FLIGHT: usize = 3;
/// Sends of one sender in flight at once within a round (its limiter spaces them).
const PER_SENDER_CONCURRENCY: usize = 64;
/// How often an entry waiting for its sender's rate checks that the sender is still held.
const HOLD_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Most successful outcomes written in one transaction.
const OUTCOMES_PER_TXN: usize = 256;
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

/// A successful send whose outcome waits for the round's writer.
struct Sent {
    entry: outbox::Model,
    message: messages::Model,
    receipt: SendReceipt,
    attempt: send_attempts::ActiveModel,
    /// Answered once the outcome is committed (or could not be).
    done: oneshot::Sender<Result<()>>,
}

#[allow(clippy::too_many_arguments)]
fn attempt_row(
    message_id: &str,
    attempt: i32,
    started: i64,
    latency: Duration,
    outcome: &str,
    err: Option<&ChannelError>,
    exchange: Option<&switchboard_core::Exchange>,
) -> send_attempts::ActiveModel {
    send_attempts::ActiveModel {
        message_id: Set(message_id.to_owned()),
        attempt: Set(attempt),
        started_at: Set(started),
        latency_ms: Set(i32::try_from(latency.as_millis()).unwrap_or(i32::MAX)),
        outcome: Set(outcome.to_owned()),
        http_status: Set(exchange.and_then(|x| x.http_status).map(i32::from)),
        error_code: Set(err.and_then(|e| e.provider_code().map(str::to_owned))),
        error_message: Set(err.map(ToString::to_string)),
        request: Set(exchange
            .and_then(|x| x.request.as_ref())
            .map(ToString::to_string)),
        response: Set(exchange
            .and_then(|x| x.response.as_ref())
            .map(ToString::to_string)),
        ..Default::default()
    }
}

/// Where a message to `contact` goes: its number, its BSUID, or both.
fn recipient(contact: &contact_rows::Model) -> Recipient {
    Recipient {
        phone: contact.e164.clone().map(PhoneNumber::from_trusted_e164),
        bsuid: contact.bsuid.as_deref().and_then(|b| Bsuid::parse(b).ok()),
    }
}

/// Outbox entries this process has claimed and not finished.
///
/// A process claims for a sender at most what the sender's rate lets it send in half a
/// lease (`Router::claim_cap`), so a claimed entry is sent before its lease needs renewing.
/// And it never claims an entry it is still delivering: if a slow outcome write outlasts
/// the lease, the other round must not send the entry a second time.
#[derive(Default)]
pub(crate) struct Claimed {
    state: Mutex<ClaimedState>,
}

#[derive(Default)]
struct ClaimedState {
    per_sender: HashMap<String, usize>,
    entries: std::collections::HashSet<String>,
}

impl ClaimedState {
    fn give_back(&mut self, account_id: &str, n: usize) {
        if let Some(c) = self.per_sender.get_mut(account_id) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.per_sender.remove(account_id);
            }
        }
    }
}

impl Claimed {
    fn state(&self) -> std::sync::MutexGuard<'_, ClaimedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves up to `cap` minus what is claimed already; returns the reservation.
    fn reserve(&self, account_id: &str, cap: usize) -> usize {
        let mut state = self.state();
        let n = state.per_sender.entry(account_id.to_owned()).or_default();
        let room = cap.saturating_sub(*n);
        *n += room;
        room
    }

    fn give_back(&self, account_id: &str, n: usize) {
        self.state().give_back(account_id, n);
    }

    fn in_flight(&self, message_id: &str) -> bool {
        self.state().entries.contains(message_id)
    }

    /// An entry's delivery ended: its place and its in-flight mark go.
    fn finish(&self, account_id: &str, message_id: &str) {
        let mut state = self.state();
        state.entries.remove(message_id);
        state.give_back(account_id, 1);
    }

    fn track(&self, entries: &[outbox::Model]) {
        let mut state = self.state();
        state
            .entries
            .extend(entries.iter().map(|e| e.message_id.clone()));
    }
}

/// Gives an entry's place in `Claimed` back when its delivery ends, however it ends.
struct ClaimedEntry<'a> {
    claimed: &'a Claimed,
    account_id: String,
    message_id: String,
}

impl Drop for ClaimedEntry<'_> {
    fn drop(&mut self) {
        self.claimed.finish(&self.account_id, &self.message_id);
    }
}

/// The status a send receipt gives its message: at least `accepted`.
fn receipt_status(receipt: &SendReceipt) -> MessageStatus {
    if receipt.status.rank() > MessageStatus::Queued.rank() {
        receipt.status
    } else {
        MessageStatus::Accepted
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

impl Router {
    /// Runs the delivery engine (and status reconciliation, see `reconcile`) until
    /// `shutdown` turns true. In-flight sends finish first.
    pub async fn run_delivery(&self, shutdown: watch::Receiver<bool>) {
        tokio::join!(
            self.delivery_loop(shutdown.clone()),
            self.reconcile_loop(shutdown.clone()),
            self.notify_loop(shutdown.clone()),
            self.media_loop(shutdown)
        );
    }

    async fn notify_loop(&self, shutdown: watch::Receiver<bool>) {
        let queue = crate::wake::Queue {
            table: "notifications",
            only: "1 = 1",
        };
        self.work_loop(
            shutdown,
            &self.inner.wake_notify,
            queue,
            "Notification round",
            || self.deliver_notifications(),
        )
        .await;
    }

    async fn reconcile_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.inner.delivery.reconcile_every) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
            if *shutdown.borrow() {
                break;
            }
            match self.reconcile().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    advanced = n,
                    "Reconciled message statuses with the providers."
                ),
                Err(e) => tracing::warn!(error = %e, "Status reconciliation failed."),
            }
            match self.prune_pending_statuses().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "Deleted statuses whose message never appeared."
                ),
                Err(e) => tracing::warn!(error = %e, "Could not delete old pending statuses."),
            }
        }
    }

    async fn delivery_loop(&self, shutdown: watch::Receiver<bool>) {
        // Rounds overlap: while one round's last sends wait for their senders' rates, the
        // next one claims and starts, so a sender's limiter is never idle while work is due.
        // Both share the per-sender limiters, so the rate holds.
        let rounds = (0..ROUNDS_IN_FLIGHT).map(|_| self.round_loop(shutdown.clone()));
        futures::future::join_all(rounds).await;
        // Another process may take this one's senders after the cool-down, not a lease later.
        if let Err(e) = self.release_senders().await {
            tracing::warn!(error = %e, "Could not release sender leases.");
        }
    }

    async fn round_loop(&self, shutdown: watch::Receiver<bool>) {
        let queue = crate::wake::Queue {
            table: "outbox",
            only: "1 = 1",
        };
        self.work_loop(
            shutdown,
            &self.inner.wake_delivery,
            queue,
            "Delivery round",
            || self.deliver_due(),
        )
        .await;
    }

    /// Claims due outbox entries and delivers them; returns how many were claimed.
    ///
    /// # Errors
    /// A database error while claiming, or while reading the claimed entries' messages
    /// and recipients (the entries are then taken again when their leases expire).
    pub async fn deliver_due(&self) -> Result<usize> {
        let senders = self.hold_senders().await?;
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
                self.outcome_writer(written)
            );
        };
        // A round slowed down by a low rate must not outlive the sender leases it relies on.
        let renew = async {
            loop {
                tokio::time::sleep(self.inner.delivery.lease / 3).await;
                if let Err(e) = self.renew_senders().await {
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
    fn sender_rate(&self, account: &crate::accounts::Account) -> u32 {
        let default = self
            .inner
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
        let account = self.account_by_id(account_id).await?;
        let rate = u64::from(self.sender_rate(&account));
        let half_lease_ms =
            u64::try_from(self.inner.delivery.lease.as_millis() / 2).unwrap_or(u64::MAX);
        let cap = rate.saturating_mul(half_lease_ms) / 1_000;
        Ok(usize::try_from(cap.clamp(1, self.inner.delivery.batch.max(1))).unwrap_or(1))
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
            let room = self.inner.claimed.reserve(account, cap);
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
        self.inner.claimed.track(&claimed);
        Ok(claimed
            .into_iter()
            .map(|entry| {
                let place = ClaimedEntry {
                    claimed: &self.inner.claimed,
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
        let db = self.inner.store.conn();
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
            let contacts: HashMap<String, contact_rows::Model> =
                find_by_ids(db, contact_rows::Column::Id, &contact_ids)
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
            self.inner.claimed.give_back(account, *n);
        }
    }

    /// Claims due entries of the senders in `rooms`, no more than each one's room, and
    /// takes what it claims out of `rooms`.
    async fn claim_within(&self, rooms: &mut HashMap<String, usize>) -> Result<Vec<outbox::Model>> {
        let cfg = &self.inner.delivery;
        let now = now_ms();
        let txn = self.inner.store.write_txn().await?;
        let mut due = outbox::Entity::find()
            .filter(outbox::Column::NextAttemptAt.lte(now))
            .filter(outbox::Column::AccountId.is_in(rooms.keys().cloned()))
            .filter(
                sea_orm::Condition::any()
                    .add(outbox::Column::LockedUntil.is_null())
                    .add(outbox::Column::LockedUntil.lt(now)),
            )
            .filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM outbox older WHERE older.conversation_id = outbox.conversation_id AND older.message_id < outbox.message_id)",
            ))
            .order_by_asc(outbox::Column::MessageId)
            .limit(cfg.batch)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        due.retain(|e| !self.inner.claimed.in_flight(&e.message_id));
        // Still leased to a process (the lease expired, or it would not be due): that
        // process died or stalled between claiming and recording an outcome, so the provider
        // may have it already. It waits for a status naming it (`statuses::apply` then
        // takes it out of the outbox) and is sent again only after the grace.
        let (in_doubt, mut due): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|e| e.locked_by.is_some());
        if !in_doubt.is_empty() {
            let grace = i64::try_from(cfg.in_doubt_grace.as_millis()).unwrap_or(i64::MAX / 4);
            outbox::Entity::update_many()
                .col_expr(
                    outbox::Column::LockedBy,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    outbox::Column::LockedUntil,
                    Expr::value(Option::<i64>::None),
                )
                .col_expr(outbox::Column::NextAttemptAt, Expr::value(now + grace))
                .filter(
                    outbox::Column::MessageId.is_in(in_doubt.iter().map(|e| e.message_id.as_str())),
                )
                .filter(outbox::Column::LockedUntil.lt(now))
                .exec(&txn)
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
        let until = now + i64::try_from(cfg.lease.as_millis()).unwrap_or(i64::MAX / 2);
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::LockedBy,
                Expr::value(self.inner.worker_id.as_str()),
            )
            .col_expr(outbox::Column::LockedUntil, Expr::value(until))
            .filter(outbox::Column::MessageId.is_in(due.iter().map(|e| e.message_id.clone())))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        // The lease just taken is this worker's fencing token (see `keep_lease`).
        Ok(due
            .into_iter()
            .map(|e| outbox::Model {
                locked_by: Some(self.inner.worker_id.clone()),
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
        let next = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4);
        self.release_entry(entry, Some(next)).await
    }

    /// Releases this worker's lease on an entry, optionally moving when it is due.
    async fn release_entry(&self, entry: &outbox::Model, due_at: Option<i64>) -> Result<()> {
        let mut update = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::LockedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                outbox::Column::LockedUntil,
                Expr::value(Option::<i64>::None),
            );
        if let Some(at) = due_at {
            update = update.col_expr(outbox::Column::NextAttemptAt, Expr::value(at));
        }
        update
            .filter(outbox::Column::MessageId.eq(entry.message_id.as_str()))
            .filter(outbox::Column::LockedBy.eq(self.inner.worker_id.as_str()))
            .exec(self.inner.store.write_conn())
            .await?;
        Ok(())
    }

    /// Called right before sending: true when this worker still holds the entry's lease.
    ///
    /// A long wait for the sender's rate could outlast the lease, and another process may
    /// then have claimed the entry; sending anyway would send it twice. When less than half
    /// the lease is left it is extended, conditionally on still being ours.
    async fn keep_lease(&self, entry: &mut outbox::Model) -> Result<bool> {
        let lease = i64::try_from(self.inner.delivery.lease.as_millis()).unwrap_or(i64::MAX / 4);
        let now = now_ms();
        let Some(until) = entry.locked_until else {
            return Ok(false);
        };
        if until - now > lease / 2 {
            return Ok(true);
        }
        let renewed = now + lease;
        let res = outbox::Entity::update_many()
            .col_expr(outbox::Column::LockedUntil, Expr::value(renewed))
            .filter(outbox::Column::MessageId.eq(entry.message_id.as_str()))
            .filter(outbox::Column::LockedBy.eq(self.inner.worker_id.as_str()))
            .filter(outbox::Column::LockedUntil.eq(until))
            .exec(self.inner.store.write_conn())
            .await?;
        if res.rows_affected == 1 {
            entry.locked_until = Some(renewed);
            Ok(true)
        } else {
            Ok(false)
        }
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
                .exec(self.inner.store.write_conn())
                .await?;
            return Ok(());
        };
        let account = self.account_by_id(&entry.account_id).await?;
        let Some(adapter) = self.inner.adapters.get(&account.channel).cloned() else {
            self.fail(
                &entry,
                &message,
                "unknown_channel",
                "the channel of this account is not enabled in this build",
            )
            .await?;
            return Ok(());
        };
        if let Some(pacing) = adapter.capabilities().recipient_pacing
            && let Some(wait) = self.inner.pacer.check(pacing, &entry.conversation_id)
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
            .prepare_outbound_media(&account.ctx, adapter.as_ref(), &mut outbound.content)
            .await?
        {
            let attempt = entry.attempts + 1;
            let outcome = err.kind().as_str();
            self.record_attempt(
                &message.id,
                attempt,
                now_ms(),
                Duration::ZERO,
                outcome,
                Some(&err),
                err.exchange(),
            )
            .await?;
            return self.handle_failure(&entry, &message, attempt, err).await;
        }
        let rate = self.sender_rate(&account);
        let limiter = self.inner.limits.get(&account.ctx.account_id, rate);
        // Nothing with a variable latency (a database round trip) may stand between the
        // limiter's token and the send, or sends bunch up and a sender exceeds its rate in
        // some second. Right after a token, the lease is checked in memory (nobody can
        // claim the entry before `locked_until`); only when less than half of it is left is
        // it renewed in the database, and then a fresh token is taken.
        let lease_ms = i64::try_from(self.inner.delivery.lease.as_millis()).unwrap_or(i64::MAX / 4);
        let wait_started = Instant::now();
        loop {
            // The sender may go to another process while this waits for its rate; then
            // the entry goes back at once rather than when it would have had its turn.
            let hold_lost = async {
                while self.inner.holds.may_send(&entry.account_id, now_ms()) {
                    tokio::time::sleep(HOLD_CHECK_EVERY).await;
                }
            };
            tokio::select! {
                _ = limiter.until_ready() => {}
                () = hold_lost => {}
            }
            if !self.inner.holds.may_send(&entry.account_id, now_ms()) {
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
                    &message.id,
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
                    return self.write_sent_one(&sent).await;
                }
                recorded.await.unwrap_or_else(|_| {
                    Err(sea_orm::DbErr::Custom("the outcome writer stopped".into()).into())
                })
            }
            Err(mut err) => {
                let exchange = err.take_exchange();
                let outcome = err.kind().as_str();
                self.record_attempt(
                    &message.id,
                    attempt,
                    started,
                    latency,
                    outcome,
                    Some(&err),
                    exchange.as_ref(),
                )
                .await?;
                self.handle_failure(&entry, &message, attempt, err).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_attempt(
        &self,
        message_id: &str,
        attempt: i32,
        started: i64,
        latency: Duration,
        outcome: &str,
        err: Option<&ChannelError>,
        exchange: Option<&switchboard_core::Exchange>,
    ) -> Result<()> {
        send_attempts::Entity::insert(attempt_row(
            message_id, attempt, started, latency, outcome, err, exchange,
        ))
        .exec_without_returning(self.inner.store.write_conn())
        .await?;
        Ok(())
    }

    /// Writes the outcomes of successful sends as they come, everything queued (up to
    /// `OUTCOMES_PER_TXN`) in one transaction: each message's attempt row, provider id,
    /// status and outbox removal. Nothing waits for a batch to fill. If the transaction
    /// fails, each outcome is written again in its own, so one bad outcome fails alone.
    async fn outcome_writer(&self, mut queue: mpsc::UnboundedReceiver<Sent>) {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, OUTCOMES_PER_TXN).await > 0 {
            let outcomes = std::mem::take(&mut batch);
            match self.write_sent(&outcomes).await {
                Ok(events) => {
                    self.publish(events);
                    for o in outcomes {
                        // An error only means the send's task is gone (its round ended).
                        o.done.send(Ok(())).ok();
                    }
                }
                Err(e) => {
                    if outcomes.len() > 1 {
                        tracing::warn!(error = %e, n = outcomes.len(), "A batch of delivery outcomes failed; writing them one by one.");
                    }
                    for o in outcomes {
                        let res = self.write_sent_one(&o).await;
                        o.done.send(res).ok();
                    }
                }
            }
        }
    }

    async fn write_sent(&self, outcomes: &[Sent]) -> Result<Vec<crate::events::RouterEvent>> {
        let txn = self.inner.store.write_txn().await?;
        send_attempts::Entity::insert_many(outcomes.iter().map(|o| o.attempt.clone()))
            .exec_without_returning(&txn)
            .await?;
        // Provider ids first, for the whole batch: nothing below reads them back from the
        // database, and `delivered` hands the statuses a model that has them.
        for chunk in outcomes.chunks(IN_CHUNK / 2) {
            let provider_ids = chunk.iter().fold(CaseStatement::new(), |case, o| {
                case.case(
                    messages::Column::Id.eq(o.message.id.as_str()),
                    Expr::value(o.receipt.provider_message_id.as_str()),
                )
            });
            messages::Entity::update_many()
                .col_expr(
                    messages::Column::ProviderMessageId,
                    provider_ids
                        .finally(Expr::col(messages::Column::ProviderMessageId))
                        .into(),
                )
                .col_expr(messages::Column::UpdatedAt, Expr::value(now_ms()))
                .filter(messages::Column::Id.is_in(chunk.iter().map(|o| o.message.id.as_str())))
                .exec(&txn)
                .await?;
        }
        // Statuses that arrived before these provider ids were known (rare) and a
        // resolved WhatsApp id take the per-message path; the rest are recorded at once.
        let mut waiting = std::collections::HashSet::new();
        for chunk in outcomes.chunks(IN_CHUNK) {
            let mut channels: Vec<&str> =
                chunk.iter().map(|o| o.message.channel.as_str()).collect();
            channels.sort_unstable();
            channels.dedup();
            // Both columns, so the lookup uses the (channel, provider id) index.
            let rows = pending_statuses::Entity::find()
                .filter(pending_statuses::Column::Channel.is_in(channels))
                .filter(
                    pending_statuses::Column::ProviderMessageId
                        .is_in(chunk.iter().map(|o| o.receipt.provider_message_id.as_str())),
                )
                .all(&txn)
                .await?;
            waiting.extend(rows.into_iter().map(|p| (p.channel, p.provider_message_id)));
        }
        let mut events = Vec::new();
        let mut plain = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let has_pending = waiting.contains(&(
                o.message.channel.clone(),
                o.receipt.provider_message_id.clone(),
            ));
            if has_pending || o.receipt.recipient_wa_id.is_some() {
                events.extend(
                    self.delivered(&txn, &o.entry, &o.message, &o.receipt)
                        .await?,
                );
            } else {
                plain.push((&o.message, receipt_status(&o.receipt)));
            }
        }
        events.extend(statuses::record_many(&txn, &plain).await?);
        // The batch leaves the outbox last, as each entry did after its own outcome.
        for chunk in outcomes.chunks(IN_CHUNK) {
            outbox::Entity::delete_many()
                .filter(
                    outbox::Column::MessageId
                        .is_in(chunk.iter().map(|o| o.entry.message_id.as_str())),
                )
                .exec(&txn)
                .await?;
        }
        crate::notify::enqueue(&txn, &events).await?;
        txn.commit().await?;
        Ok(events)
    }

    async fn write_sent_one(&self, o: &Sent) -> Result<()> {
        let events = self.write_sent(std::slice::from_ref(o)).await?;
        self.publish(events);
        Ok(())
    }

    /// Records a successful send's status (and the contact's resolved WhatsApp id) in
    /// `txn`; returns the events to notify and publish. `write_sent` records the provider
    /// id before and removes the outbox entry after, for the whole batch at once.
    async fn delivered(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        entry: &outbox::Model,
        message: &messages::Model,
        receipt: &SendReceipt,
    ) -> Result<Vec<crate::events::RouterEvent>> {
        let message = &messages::Model {
            provider_message_id: Some(receipt.provider_message_id.clone()),
            ..message.clone()
        };
        let mut events = Vec::new();
        let status = receipt_status(receipt);
        if let Applied::Advanced(ev) =
            statuses::record(txn, message, status, None, &serde_json::Value::Null, None).await?
        {
            events.push(ev);
        }
        events.extend(statuses::apply_pending(txn, message).await?);
        if let Some(wa_id) = &receipt.recipient_wa_id {
            // The provider resolved the number to another WhatsApp id (Brazil, Mexico): the
            // reply will come from that id, so it must name the same contact.
            let conv = conversations::Entity::find_by_id(entry.conversation_id.clone())
                .one(txn)
                .await?;
            if let Some(conv) = conv {
                let contact = contact_rows::Entity::find_by_id(conv.contact_id)
                    .one(txn)
                    .await?;
                if let Some(contact) = contact {
                    let mut ident = switchboard_core::ContactIdentity {
                        wa_id: Some(wa_id.clone()),
                        ..Default::default()
                    };
                    ident.phone = contact.e164.map(PhoneNumber::from_trusted_e164);
                    contacts::upsert(txn, &entry.tenant_id, &ident).await?;
                }
            }
        }
        Ok(events)
    }

    async fn handle_failure(
        &self,
        entry: &outbox::Model,
        message: &messages::Model,
        attempt: i32,
        err: ChannelError,
    ) -> Result<()> {
        let channel = message.channel.clone();
        if err.is_transient() {
            if attempt >= self.inner.delivery.max_attempts {
                metrics::counter!("switchboard_messages_failed_total", "channel" => channel)
                    .increment(1);
                let code = err
                    .provider_code()
                    .unwrap_or(err.kind().as_str())
                    .to_owned();
                return self
                    .fail(
                        entry,
                        message,
                        &code,
                        &format!("gave up after {attempt} attempts: {err}"),
                    )
                    .await;
            }
            metrics::counter!("switchboard_messages_retried_total", "channel" => channel)
                .increment(1);
            let delay = err.retry_after().unwrap_or_else(|| self.backoff(attempt));
            let next = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4);
            outbox::Entity::update_many()
                .col_expr(outbox::Column::Attempts, Expr::value(attempt))
                .col_expr(outbox::Column::NextAttemptAt, Expr::value(next))
                .col_expr(
                    outbox::Column::LockedBy,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    outbox::Column::LockedUntil,
                    Expr::value(Option::<i64>::None),
                )
                .filter(outbox::Column::MessageId.eq(entry.message_id.as_str()))
                .exec(self.inner.store.write_conn())
                .await?;
            return Ok(());
        }
        metrics::counter!("switchboard_messages_failed_total", "channel" => channel).increment(1);
        if err.is_ambiguous() {
            let code = err
                .provider_code()
                .map_or_else(|| "delivery_unknown".to_owned(), str::to_owned);
            return self
                .fail(entry, message, &code, &format!("the provider may have accepted this message; it was not resent automatically: {err}"))
                .await;
        }
        if err.is_opted_out() {
            convs::set_opted_out(
                self.inner.store.write_conn(),
                &entry.conversation_id,
                Some(now_ms()),
            )
            .await?;
        }
        let code = err
            .provider_code()
            .unwrap_or(err.kind().as_str())
            .to_owned();
        self.fail(entry, message, &code, &err.to_string()).await
    }

    /// Exponential backoff with full jitter: uniform in [0, min(max, base·2^(attempt-1))].
    pub(crate) fn backoff(&self, attempt: i32) -> Duration {
        let cfg = &self.inner.delivery;
        let exp = cfg
            .base_backoff
            .saturating_mul(1u32 << u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0));
        let cap = exp.min(cfg.max_backoff);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    async fn fail(
        &self,
        entry: &outbox::Model,
        message: &messages::Model,
        code: &str,
        text: &str,
    ) -> Result<()> {
        let txn = self.inner.store.write_txn().await?;
        let error = switchboard_core::ProviderError {
            code: code.to_owned(),
            message: Some(text.to_owned()),
            details: None,
        };
        let applied = statuses::record(
            &txn,
            message,
            MessageStatus::Failed,
            Some(&error),
            &serde_json::Value::Null,
            None,
        )
        .await?;
        outbox::Entity::delete_by_id(entry.message_id.clone())
            .exec(&txn)
            .await?;
        let events: Vec<_> = match applied {
            Applied::Advanced(ev) => vec![ev],
            _ => Vec::new(),
        };
        crate::notify::enqueue(&txn, &events).await?;
        txn.commit().await?;
        // The one line for a message that will not be delivered: ids and the code only (the
        // provider's text may quote the recipient's number).
        tracing::warn!(
            message_id = %message.id,
            channel = %message.channel,
            code,
            "Message delivery failed for good."
        );
        self.publish(events);
        Ok(())
    }

    /// Outbox entries waiting, for the queue-depth gauge.
    ///
    /// # Errors
    /// A database error.
    pub async fn queue_depth(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(outbox::Entity::find()
            .count(self.inner.store.conn())
            .await?)
    }
}
