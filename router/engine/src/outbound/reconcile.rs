//! Reconciliation: status callbacks get lost (the product's endpoint was down, a provider
//! gave up retrying). Outbound messages that were handed to the provider but have no
//! delivery outcome after `DeliveryConfig::reconcile_after` are asked about with
//! `ChannelAdapter::fetch_status`, and the answer goes through the same forward-only
//! `statuses::record` as a webhook. Channels that cannot answer (`Unsupported`) are skipped.
//!
//! Each message is asked about at most once per `reconcile_after` (its `updated_at` is
//! touched first), and only within a week of being sent: providers forget older messages.
//! With several processes two may ask about the same message; the answer is applied once
//! because statuses only move forward.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, Statement};
use switchboard_core::ErrorKind;

use tokio::sync::watch;

use crate::config::DeliveryConfig;
use crate::error::Result;
use crate::events::EventBus;
use crate::ids::now_ms;
use crate::outbound::fallback;
use crate::records::statuses;
use crate::store::Store;
use crate::store::entity::messages;
use crate::tenancy::accounts::Accounts;
use crate::tenancy::registry::AdapterRegistry;

const MAX_AGE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
const PER_PASS: u64 = 200;

/// Outbound messages without an outcome for `after` ms, oldest first, read through the
/// partial index `ix_messages_awaiting_outcome` (predicate
/// `switchboard_migrations::AWAITING_OUTCOME`), never the whole table. SQLite is told to
/// use it: without statistics its planner sometimes prefers a scan and a sort.
fn stuck_messages_sql(backend: DbBackend, now: i64, after: i64) -> String {
    let hint = match backend {
        DbBackend::Sqlite => " INDEXED BY ix_messages_awaiting_outcome",
        _ => "",
    };
    // Only integers computed here are inlined.
    format!(
        "SELECT * FROM messages{hint} WHERE {} AND provider_message_id IS NOT NULL \
         AND updated_at <= {} AND created_at > {} ORDER BY updated_at LIMIT {PER_PASS}",
        switchboard_migrations::AWAITING_OUTCOME,
        now - after,
        now - MAX_AGE_MS,
    )
}

/// Asks providers about messages whose outcome never arrived, and forgets statuses whose
/// message never appeared.
pub struct Reconciler {
    pub(crate) store: Store,
    pub(crate) adapters: AdapterRegistry,
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) config: DeliveryConfig,
}

impl Reconciler {
    /// Reconciles every `DeliveryConfig::reconcile_every` until `shutdown` turns true.
    pub(crate) async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.reconcile_every) => {}
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
            match self.collect_prices().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(priced = n, "Collected message prices from the providers."),
                Err(e) => tracing::warn!(error = %e, "Could not collect message prices."),
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

    /// Deletes statuses that waited longer than `DeliveryConfig::pending_statuses_kept`
    /// for a message that never appeared; returns how many. The running engine does this
    /// with every reconciliation pass.
    ///
    /// # Errors
    /// A database error.
    pub async fn prune_pending_statuses(&self) -> Result<u64> {
        let kept =
            i64::try_from(self.config.pending_statuses_kept.as_millis()).unwrap_or(i64::MAX / 4);
        Ok(statuses::prune_pending(self.store.write_conn(), now_ms() - kept).await?)
    }

    /// Asks providers about outbound messages stuck without an outcome; returns how many
    /// moved forward.
    ///
    /// # Errors
    /// A database error while selecting the messages (per-message failures are logged).
    pub async fn reconcile(&self) -> Result<usize> {
        let db = self.store.write_conn();
        let now = now_ms();
        let after = i64::try_from(self.config.reconcile_after.as_millis()).unwrap_or(i64::MAX / 4);
        let backend = self.store.backend();
        let stuck = messages::Entity::find()
            .from_raw_sql(Statement::from_string(
                backend,
                stuck_messages_sql(backend, now, after),
            ))
            .all(db)
            .await?;
        if stuck.is_empty() {
            return Ok(0);
        }
        messages::Entity::update_many()
            .col_expr(messages::Column::UpdatedAt, Expr::value(now))
            .filter(messages::Column::Id.is_in(stuck.iter().map(|m| m.id.clone())))
            .exec(db)
            .await?;
        let unsupported = Mutex::new(HashSet::new());
        let advanced = futures::stream::iter(stuck)
            .map(|m| {
                let unsupported = &unsupported;
                async move {
                    match self.reconcile_one(&m, unsupported).await {
                        Ok(advanced) => usize::from(advanced),
                        Err(e) => {
                            tracing::warn!(message_id = %m.id, error = %e, "Could not reconcile a message's status.");
                            0
                        }
                    }
                }
            })
            .buffer_unordered(8)
            .fold(0, |acc, n| async move { acc + n })
            .await;
        Ok(advanced)
    }

    async fn reconcile_one(
        &self,
        message: &messages::Model,
        unsupported: &Mutex<HashSet<String>>,
    ) -> Result<bool> {
        let skip = unsupported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&message.channel);
        let (Some(adapter), Some(provider_id), false) = (
            self.adapters.get(&message.channel).cloned(),
            message.provider_message_id.as_deref(),
            skip,
        ) else {
            return Ok(false);
        };
        let account = self.accounts.by_id(&message.account_id).await?;
        let update = match adapter.fetch_status(&account.ctx, provider_id).await {
            Ok(Some(update)) => update,
            Ok(None) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                unsupported
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(message.channel.clone());
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let txn = self.store.write_txn().await?;
        let raw = serde_json::json!({"source": "fetch_status"});
        let events: Vec<_> =
            match fallback::on_status(&txn, &message.channel, adapter.as_ref(), &update, &raw)
                .await?
            {
                Some(moved) => vec![moved],
                None => statuses::record(
                    &txn,
                    message,
                    update.status,
                    update.error.as_ref(),
                    &raw,
                    Some(update.timestamp.timestamp_millis()),
                )
                .await?
                .into_event()
                .into_iter()
                .collect(),
            };
        crate::notify::queue::enqueue(&txn, &events).await?;
        txn.commit().await?;
        if events.is_empty() {
            return Ok(false);
        }
        metrics::counter!("switchboard_statuses_reconciled_total", "channel" => message.channel.clone()).increment(1);
        self.events.publish(events);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;
    use switchboard_core::MessageStatus;

    use super::stuck_messages_sql;
    use crate::store::{SqliteSync, Store};

    #[test]
    fn the_index_predicate_names_the_statuses_awaiting_an_outcome() {
        assert_eq!(
            switchboard_migrations::AWAITING_OUTCOME,
            format!(
                "direction = 'outbound' AND status_rank BETWEEN {} AND {}",
                MessageStatus::Accepted.rank(),
                MessageStatus::Sent.rank()
            )
        );
    }

    #[tokio::test]
    async fn reconciliation_reads_the_partial_index_not_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/plan.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        let query = stuck_messages_sql(store.backend(), 1_000_000, 1_000);
        let plan = store
            .conn()
            .query_all_raw(sea_orm::Statement::from_string(
                store.backend(),
                format!("EXPLAIN QUERY PLAN {query}"),
            ))
            .await
            .unwrap();
        let plan: Vec<String> = plan
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("ix_messages_awaiting_outcome")),
            "{plan:?} {query}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN messages")),
            "{plan:?} {query}"
        );
    }
}
