//! Sender leases: how several processes on one database keep each sender under its rate.
//!
//! The rate limiter is in memory, so it only limits what one process sends. A process
//! therefore delivers an account's outbox entries only while it holds that account's row in
//! `sender_leases`. Every round it renews its leases (also during a long round) and takes
//! free or expired ones up to its fair share: the senders with work divided by the engines
//! seen recently in `delivery_workers`. Leases above the share are released with a cool-down
//! of one second, during which nobody may take them, so the new holder's fresh limiter
//! cannot add a burst to the old holder's last second. A crashed process's leases expire
//! after one lease period (`DeliveryConfig::lease`).
//!
//! Taking a lease is one conditional upsert (`ON CONFLICT DO UPDATE … WHERE the holder is
//! me or the lease expired`), atomic on both PostgreSQL and SQLite.

use std::collections::BTreeSet;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::error::Result;
use crate::ids::now_ms;
use crate::router::Router;
use crate::store::entity::outbox;

/// Nobody may take a released lease for this long (one rate window).
const RELEASE_COOLDOWN_MS: i64 = 1_000;
/// The holder name of a released lease.
const RELEASED: &str = "";

pub(crate) mod lease_rows {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sender_leases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub holder: String,
        pub expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod worker_rows {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_workers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub worker_id: String,
        pub seen_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl Router {
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.inner.delivery.lease.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Heartbeats, rebalances and returns the accounts this process may deliver for now.
    pub(crate) async fn hold_senders(&self) -> Result<Vec<String>> {
        let db = self.inner.store.conn();
        let me = self.inner.worker_id.as_str();
        let now = now_ms();
        let ttl = self.lease_ms();

        worker_rows::Entity::insert(worker_rows::ActiveModel {
            worker_id: Set(me.to_owned()),
            seen_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(worker_rows::Column::WorkerId)
                .update_column(worker_rows::Column::SeenAt)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        let live = worker_rows::Entity::find()
            .filter(worker_rows::Column::SeenAt.gt(now - ttl))
            .count(db)
            .await?;
        let live = std::cmp::max(live, 1);
        // Forget engines gone for a long time.
        worker_rows::Entity::delete_many()
            .filter(worker_rows::Column::SeenAt.lt(now - 10 * ttl))
            .exec(db)
            .await?;

        let due: BTreeSet<String> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::AccountId)
            .distinct()
            .filter(outbox::Column::NextAttemptAt.lte(now))
            .into_tuple::<String>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let leases = lease_rows::Entity::find().all(db).await?;
        let mut mine: Vec<String> = leases
            .iter()
            .filter(|l| l.holder == me && l.expires_at > now)
            .map(|l| l.account_id.clone())
            .collect();
        let taken: BTreeSet<&str> = leases
            .iter()
            .filter(|l| l.expires_at > now)
            .map(|l| l.account_id.as_str())
            .collect();
        let busy = due.iter().map(String::as_str).chain(taken.iter().copied());
        let senders = busy.collect::<BTreeSet<&str>>().len();
        let share = senders.div_ceil(usize::try_from(live).unwrap_or(1)).max(1);

        if !mine.is_empty() {
            self.renew_senders().await?;
        }
        if mine.len() > share {
            // Give up idle senders first.
            mine.sort_by_key(|a| due.contains(a));
            let extra: Vec<String> = mine.drain(..mine.len() - share).collect();
            lease_rows::Entity::update_many()
                .col_expr(lease_rows::Column::Holder, Expr::value(RELEASED))
                .col_expr(
                    lease_rows::Column::ExpiresAt,
                    Expr::value(now + RELEASE_COOLDOWN_MS),
                )
                .filter(lease_rows::Column::AccountId.is_in(extra))
                .filter(lease_rows::Column::Holder.eq(me))
                .exec(db)
                .await?;
        }
        for account in &due {
            if mine.len() >= share {
                break;
            }
            if taken.contains(account.as_str()) {
                continue;
            }
            let res = lease_rows::Entity::insert(lease_rows::ActiveModel {
                account_id: Set(account.clone()),
                holder: Set(me.to_owned()),
                expires_at: Set(now + ttl),
            })
            .on_conflict(
                OnConflict::column(lease_rows::Column::AccountId)
                    .update_columns([lease_rows::Column::Holder, lease_rows::Column::ExpiresAt])
                    .action_and_where(
                        Expr::col(("sender_leases", lease_rows::Column::Holder))
                            .eq(me)
                            .or(Expr::col(("sender_leases", lease_rows::Column::ExpiresAt))
                                .lte(now)),
                    )
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
            if res > 0 {
                mine.push(account.clone());
            }
        }
        Ok(mine)
    }

    /// Extends every lease this process holds by one lease period.
    pub(crate) async fn renew_senders(&self) -> Result<()> {
        lease_rows::Entity::update_many()
            .col_expr(
                lease_rows::Column::ExpiresAt,
                Expr::value(now_ms() + self.lease_ms()),
            )
            .filter(lease_rows::Column::Holder.eq(self.inner.worker_id.as_str()))
            .exec(self.inner.store.conn())
            .await?;
        Ok(())
    }

    /// Gives up this process's leases at once (clean shutdown), after the cool-down.
    pub(crate) async fn release_senders(&self) -> Result<()> {
        lease_rows::Entity::update_many()
            .col_expr(lease_rows::Column::Holder, Expr::value(RELEASED))
            .col_expr(
                lease_rows::Column::ExpiresAt,
                Expr::value(now_ms() + RELEASE_COOLDOWN_MS),
            )
            .filter(lease_rows::Column::Holder.eq(self.inner.worker_id.as_str()))
            .exec(self.inner.store.conn())
            .await?;
        worker_rows::Entity::delete_by_id(self.inner.worker_id.clone())
            .exec(self.inner.store.conn())
            .await?;
        Ok(())
    }
}
