//! Recording what a send did: the attempt row, the provider id and status of a success
//! (many per transaction), the retry or the failure of an error.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{CaseStatement, Expr, LockType};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use switchboard_core::{ChannelError, MessageStatus, PhoneNumber, ProviderError, SendReceipt};
use tokio::sync::{mpsc, oneshot};

use crate::config::DeliveryConfig;
use crate::error::Result;
use crate::events::{EventBus, RouterEvent};
use crate::ids::now_ms;
use crate::outbound::fallback::{self, Failure};
use crate::outbound::queue::OUTBOX_QUEUE;
use crate::records::statuses::{self, Applied};
use crate::records::{contacts, conversations};
use crate::store::Store;
use crate::store::entity;
use crate::store::entity::{messages, outbox, pending_statuses, send_attempts};
use crate::store::queue::millis;
use crate::tenancy::registry::AdapterRegistry;

/// Most successful outcomes written in one transaction.
const OUTCOMES_PER_TXN: usize = 256;
/// Most ids in one `IN (…)` list.
const IN_CHUNK: usize = crate::store::IN_LIST_MAX;

/// A successful send whose outcome waits for the round's writer.
pub(crate) struct Sent {
    pub(crate) entry: outbox::Model,
    pub(crate) message: messages::Model,
    pub(crate) receipt: SendReceipt,
    pub(crate) attempt: send_attempts::ActiveModel,
    /// Answered once the outcome is committed (or could not be).
    pub(crate) done: oneshot::Sender<Result<()>>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn attempt_row(
    message: &messages::Model,
    attempt: i32,
    started: i64,
    latency: Duration,
    outcome: &str,
    err: Option<&ChannelError>,
    exchange: Option<&switchboard_core::Exchange>,
) -> send_attempts::ActiveModel {
    send_attempts::ActiveModel {
        message_id: Set(message.id.clone()),
        channel: Set(Some(message.channel.clone())),
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

/// The status a send receipt gives its message: at least `accepted`.
fn receipt_status(receipt: &SendReceipt) -> MessageStatus {
    if receipt.status.rank() > MessageStatus::Queued.rank() {
        receipt.status
    } else {
        MessageStatus::Accepted
    }
}

/// Writes the outcomes of sends.
pub(crate) struct Outcomes {
    pub(crate) store: Store,
    pub(crate) adapters: AdapterRegistry,
    pub(crate) events: Arc<EventBus>,
    pub(crate) config: DeliveryConfig,
}

impl Outcomes {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_attempt(
        &self,
        message: &messages::Model,
        attempt: i32,
        started: i64,
        latency: Duration,
        outcome: &str,
        err: Option<&ChannelError>,
        exchange: Option<&switchboard_core::Exchange>,
    ) -> Result<()> {
        send_attempts::Entity::insert(attempt_row(
            message, attempt, started, latency, outcome, err, exchange,
        ))
        .exec_without_returning(self.store.write_conn())
        .await?;
        Ok(())
    }

    /// Writes the outcomes of successful sends as they come, everything queued (up to
    /// `OUTCOMES_PER_TXN`) in one transaction: each message's attempt row, provider id,
    /// status and outbox removal. Nothing waits for a batch to fill. If the transaction
    /// fails, each outcome is written again in its own, so one bad outcome fails alone.
    pub(crate) async fn writer(&self, mut queue: mpsc::UnboundedReceiver<Sent>) {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, OUTCOMES_PER_TXN).await > 0 {
            let outcomes = std::mem::take(&mut batch);
            match self.write_sent(&outcomes).await {
                Ok(events) => {
                    self.events.publish(events);
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

    /// The messages of `outcomes` still on the account their send went to. Only a message
    /// that had fallback channels when it was claimed can have moved, so only those rows are
    /// read, locked until the transaction ends (PostgreSQL; SQLite's writer is alone anyway)
    /// so that a report moving one on waits for it; the common send costs no read.
    async fn on_their_leg<'o>(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        outcomes: &'o [Sent],
    ) -> Result<std::collections::HashSet<&'o str>> {
        let (may_have_moved, stay): (Vec<&Sent>, Vec<&Sent>) =
            outcomes.iter().partition(|o| o.message.fallback.is_some());
        let mut accounts = std::collections::HashMap::new();
        for chunk in may_have_moved.chunks(IN_CHUNK) {
            let rows: Vec<(String, String)> = messages::Entity::find()
                .select_only()
                .column(messages::Column::Id)
                .column(messages::Column::AccountId)
                .filter(messages::Column::Id.is_in(chunk.iter().map(|o| o.message.id.as_str())))
                .lock(LockType::Update)
                .into_tuple()
                .all(txn)
                .await?;
            accounts.extend(rows);
        }
        Ok(stay
            .into_iter()
            .chain(
                may_have_moved
                    .into_iter()
                    .filter(|o| accounts.get(&o.message.id) == Some(&o.entry.account_id)),
            )
            .map(|o| o.message.id.as_str())
            .collect())
    }

    pub(crate) async fn write_sent(&self, outcomes: &[Sent]) -> Result<Vec<RouterEvent>> {
        let txn = self.store.write_txn().await?;
        send_attempts::Entity::insert_many(outcomes.iter().map(|o| o.attempt.clone()))
            .exec_without_returning(&txn)
            .await?;
        // A message that moved on to its next channel while its send was in flight (a
        // failure report came first, `fallback::on_status`) keeps only this attempt: the old
        // leg's outcome must not touch the new leg's provider id, status or outbox entry.
        let on_their_leg = self.on_their_leg(&txn, outcomes).await?;
        let outcomes: Vec<&Sent> = outcomes
            .iter()
            .filter(|o| on_their_leg.contains(o.message.id.as_str()))
            .collect();
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
        for o in &outcomes {
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
        // The batch leaves the outbox last, as each entry did after its own outcome; a
        // message that moved on to its next channel just now keeps its new entry.
        let moved_on: std::collections::HashSet<&str> = events
            .iter()
            .filter_map(|e| match e {
                RouterEvent::MessageFallback { message_id, .. } => Some(message_id.as_str()),
                _ => None,
            })
            .collect();
        let leaving: Vec<&str> = outcomes
            .iter()
            .map(|o| o.entry.message_id.as_str())
            .filter(|id| !moved_on.contains(id))
            .collect();
        for chunk in leaving.chunks(IN_CHUNK) {
            outbox::Entity::delete_many()
                .filter(outbox::Column::MessageId.is_in(chunk.iter().copied()))
                .exec(&txn)
                .await?;
        }
        crate::notify::queue::enqueue(&txn, &events).await?;
        txn.commit().await?;
        Ok(events)
    }

    pub(crate) async fn write_sent_one(&self, o: &Sent) -> Result<()> {
        let events = self.write_sent(std::slice::from_ref(o)).await?;
        self.events.publish(events);
        Ok(())
    }

    /// Records a successful send's status (and the contact's resolved WhatsApp id) in
    /// `txn`; returns the events to notify and publish. `write_sent` records the provider
    /// id before and removes the outbox entry after, for the whole batch at once.
    pub(crate) async fn delivered(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        entry: &outbox::Model,
        message: &messages::Model,
        receipt: &SendReceipt,
    ) -> Result<Vec<RouterEvent>> {
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
        // A failure that came before the provider id and says the recipient cannot be
        // reached here moves the message on instead of failing it.
        let adapter = self.adapters.get(&message.channel).cloned();
        let moves_on = |status: MessageStatus, error: &ProviderError| {
            message.fallback.is_some()
                && matches!(status, MessageStatus::Failed | MessageStatus::Undelivered)
                && adapter
                    .as_ref()
                    .is_some_and(|a| a.status_error_kind(error).reachable_elsewhere())
        };
        let (applied, handed_back) = statuses::apply_pending(txn, message, moves_on).await?;
        events.extend(applied);
        if let Some(report) = handed_back {
            let failure = Failure {
                status: report.status,
                error: &report.error,
                raw: &report.raw,
                provider_timestamp: report.provider_timestamp,
                from_status: true,
            };
            events.extend(fallback::move_on(txn, message, &failure).await?);
        }
        if let Some(wa_id) = &receipt.recipient_wa_id {
            // The provider resolved the number to another WhatsApp id (Brazil, Mexico): the
            // reply will come from that id, so it must name the same contact.
            let conv = entity::conversations::Entity::find_by_id(entry.conversation_id.clone())
                .one(txn)
                .await?;
            if let Some(conv) = conv {
                let contact = entity::contacts::Entity::find_by_id(conv.contact_id)
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

    pub(crate) async fn handle_failure(
        &self,
        entry: &outbox::Model,
        message: &messages::Model,
        attempt: i32,
        err: ChannelError,
    ) -> Result<()> {
        let channel = message.channel.clone();
        if err.is_transient() {
            if attempt >= self.config.max_attempts {
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
            let delay = err
                .retry_after()
                .unwrap_or_else(|| self.config.backoff().delay(attempt));
            OUTBOX_QUEUE
                .retry_later::<outbox::Entity>(
                    entry.message_id.as_str(),
                    attempt,
                    now_ms() + millis(delay),
                )
                .exec(self.store.write_conn())
                .await?;
            return Ok(());
        }
        if err.is_ambiguous() {
            metrics::counter!("switchboard_messages_failed_total", "channel" => channel)
                .increment(1);
            let code = err
                .provider_code()
                .map_or_else(|| "delivery_unknown".to_owned(), str::to_owned);
            return self
                .fail(entry, message, &code, &format!("the provider may have accepted this message; it was not resent automatically: {err}"))
                .await;
        }
        if err.is_opted_out() {
            conversations::set_opted_out(
                self.store.write_conn(),
                &entry.conversation_id,
                Some(now_ms()),
            )
            .await?;
        }
        let code = err
            .provider_code()
            .unwrap_or(err.kind().as_str())
            .to_owned();
        if err.reachable_elsewhere() && message.fallback.is_some() {
            let error = switchboard_core::ProviderError {
                code: code.clone(),
                message: Some(err.to_string()),
                details: None,
            };
            let txn = self.store.write_txn().await?;
            let moved = fallback::move_on(
                &txn,
                message,
                &Failure {
                    status: MessageStatus::Failed,
                    error: &error,
                    raw: &serde_json::Value::Null,
                    provider_timestamp: None,
                    from_status: false,
                },
            )
            .await?;
            if let Some(ev) = moved {
                let events = vec![ev];
                crate::notify::queue::enqueue(&txn, &events).await?;
                txn.commit().await?;
                self.events.publish(events);
                return Ok(());
            }
            drop(txn);
        }
        metrics::counter!("switchboard_messages_failed_total", "channel" => channel).increment(1);
        self.fail(entry, message, &code, &err.to_string()).await
    }

    pub(crate) async fn fail(
        &self,
        entry: &outbox::Model,
        message: &messages::Model,
        code: &str,
        text: &str,
    ) -> Result<()> {
        let txn = self.store.write_txn().await?;
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
        let events: Vec<_> = applied.into_event().into_iter().collect();
        crate::notify::queue::enqueue(&txn, &events).await?;
        txn.commit().await?;
        // The one line for a message that will not be delivered: ids and the code only (the
        // provider's text may quote the recipient's number).
        tracing::warn!(
            message_id = %message.id,
            channel = %message.channel,
            code,
            "Message delivery failed for good."
        );
        self.events.publish(events);
        Ok(())
    }
}
