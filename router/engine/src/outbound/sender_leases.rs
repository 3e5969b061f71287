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
//! The check between a rate token and a send is in memory (`SenderHolds`), so no round
//! trip stands between them: a process sends for a sender only until one cool-down before
//! its lease expires, and forgets a sender before it releases it. So a send already
//! claimed never leaves after its sender changed hands, and the old and the new holder are
//! always at least a cool-down apart. Taking, renewing and releasing are serialized in the
//! process, so a renewal cannot revive a lease that is being released.
//!
//! A process with nothing due renews nothing and sends for no sender; its leases lapse.
//! While they have not, it still finds other processes' work for them by its idle poll
//! (`DeliveryConfig::idle_poll`), which only reads.
//!
//! Taking a lease is one conditional upsert (`ON CONFLICT DO UPDATE … WHERE the holder is
//! me or the lease expired`), atomic on both PostgreSQL and SQLite.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::error::Result;
use crate::ids::now_ms;
use crate::store::Store;
use crate::store::entity::outbox;

/// Nobody may take a released lease for this long (one rate window).
const RELEASE_COOLDOWN_MS: i64 = 1_000;
/// The holder name of a released lease.
const RELEASED: &str = "";

/// The senders this process may send for, and until when (milliseconds since the epoch).
#[derive(Default)]
struct SenderHolds {
    /// Serializes taking, renewing and releasing leases.
    ops: tokio::sync::Mutex<()>,
    send_until: Mutex<HashMap<String, i64>>,
}

impl SenderHolds {
    /// True when this process holds the sender's lease with a cool-down to spare at `now`.
    fn may_send(&self, account_id: &str, now: i64) -> bool {
        self.map().get(account_id).is_some_and(|until| now < *until)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.send_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Exactly these senders are held, each until `until`.
    fn hold_only(&self, accounts: &[String], until: i64) {
        let mut map = self.map();
        map.clear();
        map.extend(accounts.iter().map(|a| (a.clone(), until)));
    }

    /// Extends senders still held; never adds one (it may be being released).
    fn extend(&self, accounts: &[String], until: i64) {
        let mut map = self.map();
        for a in accounts {
            if let Some(u) = map.get_mut(a) {
                *u = std::cmp::max(*u, until);
            }
        }
    }

    fn forget(&self, accounts: &[String]) {
        let mut map = self.map();
        for a in accounts {
            map.remove(a);
        }
    }
}

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

/// This process's sender leases: which senders it may deliver for.
pub(crate) struct SenderLeases {
    store: Store,
    worker_id: String,
    lease: std::time::Duration,
    holds: SenderHolds,
}

impl SenderLeases {
    pub(crate) fn new(store: Store, worker_id: String, lease: std::time::Duration) -> Self {
        Self {
            store,
            worker_id,
            lease,
            holds: SenderHolds::default(),
        }
    }

    /// True when this process holds the sender's lease with a cool-down to spare at `now`.
    pub(crate) fn may_send(&self, account_id: &str, now: i64) -> bool {
        self.holds.may_send(account_id, now)
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// How long before a sender lease expires this process stops sending for it: the
    /// cool-down, or a third of a (very short) lease.
    fn send_margin_ms(&self) -> i64 {
        std::cmp::min(RELEASE_COOLDOWN_MS, self.lease_ms() / 3)
    }

    /// Heartbeats, rebalances and returns the accounts this process may deliver for now.
    ///
    /// With nothing due it only reads and sends for no sender: an idle process renews no
    /// lease and writes nothing. It takes senders again when their work is due.
    pub(crate) async fn hold(&self) -> Result<Vec<String>> {
        let _ops = self.holds.ops.lock().await;
        let db = self.store.write_conn();
        let me = self.worker_id.as_str();
        let now = now_ms();
        let ttl = self.lease_ms();

        let due: BTreeSet<String> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::AccountId)
            .distinct()
            .filter(outbox::Column::NextAttemptAt.lte(now))
            .into_tuple::<String>()
            .all(self.store.conn())
            .await?
            .into_iter()
            .collect();
        if due.is_empty() {
            // Leases held are left to lapse, not renewed: no write. Until they do, work for
            // them that another process queues is found here by the idle poll.
            self.holds.hold_only(&[], 0);
            return Ok(Vec::new());
        }

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
            // `hold_only` below sets how long it may send for them.
            self.extend_leases().await?;
        }
        if mine.len() > share {
            // Give up idle senders first.
            mine.sort_by_key(|a| due.contains(a));
            let extra: Vec<String> = mine.drain(..mine.len() - share).collect();
            // Stop sending before anyone else may start.
            self.holds.forget(&extra);
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
        // Every lease in `mine` now expires at `now + ttl` or later.
        self.holds
            .hold_only(&mine, now + ttl - self.send_margin_ms());
        Ok(mine)
    }

    /// Extends every lease this process still holds by one lease period, and with it how
    /// long this process may send for those senders (during a long round).
    pub(crate) async fn renew(&self) -> Result<()> {
        let _ops = self.holds.ops.lock().await;
        let db = self.store.conn();
        let me = self.worker_id.as_str();
        let until = self.extend_leases().await?;
        let held: Vec<String> = lease_rows::Entity::find()
            .select_only()
            .column(lease_rows::Column::AccountId)
            .filter(lease_rows::Column::Holder.eq(me))
            .filter(lease_rows::Column::ExpiresAt.eq(until))
            .into_tuple::<String>()
            .all(db)
            .await?;
        self.holds.extend(&held, until - self.send_margin_ms());
        Ok(())
    }

    /// Moves the expiry of this process's unexpired leases one lease period ahead (an
    /// expired one may be another process's by now); returns the new expiry.
    async fn extend_leases(&self) -> Result<i64> {
        let now = now_ms();
        let until = now + self.lease_ms();
        lease_rows::Entity::update_many()
            .col_expr(lease_rows::Column::ExpiresAt, Expr::value(until))
            .filter(lease_rows::Column::Holder.eq(self.worker_id.as_str()))
            .filter(lease_rows::Column::ExpiresAt.gt(now))
            .exec(self.store.write_conn())
            .await?;
        Ok(until)
    }

    /// Gives up this process's leases at once (clean shutdown), after the cool-down.
    pub(crate) async fn release(&self) -> Result<()> {
        let _ops = self.holds.ops.lock().await;
        self.holds.hold_only(&[], 0);
        lease_rows::Entity::update_many()
            .col_expr(lease_rows::Column::Holder, Expr::value(RELEASED))
            .col_expr(
                lease_rows::Column::ExpiresAt,
                Expr::value(now_ms() + RELEASE_COOLDOWN_MS),
            )
            .filter(lease_rows::Column::Holder.eq(self.worker_id.as_str()))
            .exec(self.store.write_conn())
            .await?;
        worker_rows::Entity::delete_by_id(self.worker_id.clone())
            .exec(self.store.write_conn())
            .await?;
        Ok(())
    }
}
