//! Message prices that providers fill in after the fact (issue 18). Twilio's message
//! resource gets its `price` and `price_unit` some time after the message is final, and
//! no status callback carries them (twilio.md §10): the reconciliation loop asks for them.
//!
//! A pass reads final outbound messages without pricing on the channels whose adapter says
//! `prices_on_fetch`, whose last status (or last ask) is at least
//! `DeliveryConfig::reconcile_after` old and which were sent within a week, through the
//! partial index `ix_messages_unpriced` (predicate `switchboard_migrations::UNPRICED`). It
//! stamps `price_checked_at` on them first, so each is asked about at most once per
//! `reconcile_after` whatever the answer (a price still `null` is asked for again later),
//! then asks at most [`CONCURRENT`] at a time, [`PER_PASS`] per pass.

use futures::StreamExt;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, Value,
};

use crate::error::Result;
use crate::ids::now_ms;
use crate::outbound::reconcile::Reconciler;
use crate::store::entity::messages;

const MAX_AGE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// At most this many messages are asked about per pass…
const PER_PASS: u64 = 100;
/// …and this many at once, so a backlog never floods the provider's API.
const CONCURRENT: usize = 4;

/// The unpriced messages due an ask on `channel_count` channels (bound as the first
/// parameters, then `due` and `since`).
fn unpriced_sql(backend: DbBackend, channel_count: usize) -> String {
    let param = |i: usize| match backend {
        DbBackend::Postgres => format!("${i}"),
        _ => "?".to_owned(),
    };
    let channels: Vec<String> = (1..=channel_count).map(param).collect();
    // SQLite is told to use the partial index: its planner otherwise prefers the
    // (channel, provider_message_id) index, which holds every message of the channel.
    let hint = match backend {
        DbBackend::Sqlite => " INDEXED BY ix_messages_unpriced",
        _ => "",
    };
    format!(
        "SELECT * FROM messages{hint} WHERE {} AND channel IN ({}) \
         AND COALESCE(price_checked_at, updated_at) <= {} AND created_at > {} \
         ORDER BY COALESCE(price_checked_at, updated_at) LIMIT {PER_PASS}",
        switchboard_migrations::UNPRICED,
        channels.join(", "),
        param(channel_count + 1),
        param(channel_count + 2),
    )
}

impl Reconciler {
    /// Asks providers for the prices of final messages they have not priced yet and stores
    /// those they have filled in, in `messages.pricing` (`price` as the provider spells it,
    /// `currency`); returns how many were priced.
    ///
    /// # Errors
    /// A database error while selecting or stamping the messages (per-message failures are
    /// logged).
    pub async fn collect_prices(&self) -> Result<usize> {
        let channels: Vec<String> = self
            .adapters
            .iter()
            .filter(|a| a.prices_on_fetch())
            .map(|a| a.channel().as_str().to_owned())
            .collect();
        if channels.is_empty() {
            return Ok(0);
        }
        let db = self.store.write_conn();
        let now = now_ms();
        let after = i64::try_from(self.config.reconcile_after.as_millis()).unwrap_or(i64::MAX / 4);
        let backend = self.store.backend();
        let mut values: Vec<Value> = channels.iter().map(|c| c.as_str().into()).collect();
        values.push((now - after).into());
        values.push((now - MAX_AGE_MS).into());
        let due = messages::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                unpriced_sql(backend, channels.len()),
                values,
            ))
            .all(db)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        // `price_checked_at` is only ever read by this pass, so the entity does not carry it.
        let stamp = Query::update()
            .table(messages::Entity)
            .value(Alias::new("price_checked_at"), now)
            .and_where(Expr::col(messages::Column::Id).is_in(due.iter().map(|m| m.id.clone())))
            .to_owned();
        db.execute(&stamp).await?;
        let priced = futures::stream::iter(due)
            .map(|m| async move {
                match self.price_one(&m).await {
                    Ok(priced) => usize::from(priced),
                    Err(e) => {
                        tracing::warn!(message_id = %m.id, error = %e, "Could not fetch a message's price.");
                        0
                    }
                }
            })
            .buffer_unordered(CONCURRENT)
            .fold(0, |acc, n| async move { acc + n })
            .await;
        Ok(priced)
    }

    async fn price_one(&self, message: &messages::Model) -> Result<bool> {
        let (Some(adapter), Some(provider_id)) = (
            self.adapters.get(&message.channel).cloned(),
            message.provider_message_id.as_deref(),
        ) else {
            return Ok(false);
        };
        let account = self.accounts.by_id(&message.account_id).await?;
        let Some(pricing) = adapter
            .fetch_status(&account.ctx, provider_id)
            .await?
            .and_then(|update| update.pricing)
            .filter(|p| p.price.is_some())
        else {
            return Ok(false);
        };
        let text = serde_json::to_string(&pricing).unwrap_or_default();
        // Only a message still unpriced: pricing a status reported meanwhile stays.
        let res = messages::Entity::update_many()
            .col_expr(messages::Column::Pricing, Expr::value(text))
            .filter(messages::Column::Id.eq(message.id.as_str()))
            .filter(messages::Column::Pricing.is_null())
            .exec(self.store.write_conn())
            .await?;
        if res.rows_affected > 0 {
            metrics::counter!("switchboard_prices_collected_total", "channel" => message.channel.clone())
                .increment(1);
        }
        Ok(res.rows_affected > 0)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;
    use switchboard_core::MessageStatus;

    use super::unpriced_sql;
    use crate::store::{SqliteSync, Store};

    #[test]
    fn the_index_predicate_names_the_final_statuses() {
        assert_eq!(
            MessageStatus::Failed.rank(),
            50,
            "UNPRICED starts at the failures"
        );
        for s in [
            MessageStatus::Failed,
            MessageStatus::Undelivered,
            MessageStatus::Delivered,
            MessageStatus::Read,
        ] {
            assert!(s.rank() >= 50, "{s:?}");
        }
        assert!(MessageStatus::Sent.rank() < 50);
        assert!(switchboard_migrations::UNPRICED.contains("status_rank >= 50"));
    }

    #[tokio::test]
    async fn the_price_pass_reads_the_partial_index_not_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/plan.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        let query = unpriced_sql(store.backend(), 2)
            .replacen('?', "'twilio-whatsapp'", 1)
            .replacen('?', "'twilio-sms'", 1)
            .replacen('?', "1000", 1)
            .replacen('?', "0", 1);
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
            plan.iter().any(|d| d.contains("ix_messages_unpriced")),
            "{plan:?} {query}"
        );
    }
}
