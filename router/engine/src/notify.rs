//! Signed outgoing webhooks: every committed event of a tenant with a `notify_url` is POSTed
//! there as JSON, signed `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the body>` with
//! the tenant's notify secret.
//!
//! - Durable: the notification row is written in the same transaction as the event, so an
//!   event is never committed without its notification (nor the reverse).
//! - At least once: a row is deleted only after a 2xx answer. Failures retry with
//!   exponential backoff and full jitter (capped by `DeliveryConfig::max_backoff`) for as
//!   long as the tenant keeps the URL; a crash mid-POST resends after the lease. Receivers
//!   de-duplicate with the event `id` (also in `X-Switchboard-Event-Id`).
//! - In order per conversation: a row is claimable only when no older row of its
//!   conversation is waiting, the same rule as the outbox.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::Sha256;

use crate::error::{Result, RouterError};
use crate::events::RouterEvent;
use crate::ids::{self, now_ms};
use crate::router::Router;
use crate::store::entity::tenants;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
/// The event id header (also `id` in the body), for de-duplication.
pub const EVENT_ID_HEADER: &str = "x-switchboard-event-id";

const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) mod rows {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub conversation_id: String,
        pub payload: String,
        pub attempts: i32,
        pub next_attempt_at: i64,
        pub locked_by: Option<String>,
        pub locked_until: Option<i64>,
        pub last_error: Option<String>,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn conversation_of(e: &RouterEvent) -> &str {
    match e {
        RouterEvent::MessageReceived {
            conversation_id, ..
        }
        | RouterEvent::StatusChanged {
            conversation_id, ..
        } => conversation_id,
    }
}

fn secret_aad(tenant_id: &str) -> String {
    format!("notify:{tenant_id}")
}

/// Queues `events` for the tenants that want notifications; call inside the transaction
/// that commits the events.
pub(crate) async fn enqueue<C: ConnectionTrait>(
    db: &C,
    events: &[RouterEvent],
) -> std::result::Result<(), DbErr> {
    enqueue_known(db, events, &HashMap::new()).await
}

/// [`enqueue`], told already whether some tenants subscribe (`known`: tenant id → has a
/// notification URL, read in the caller's transaction); the others are looked up.
pub(crate) async fn enqueue_known<C: ConnectionTrait>(
    db: &C,
    events: &[RouterEvent],
    known: &HashMap<String, bool>,
) -> std::result::Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let mut subscribed: HashSet<&str> = HashSet::new();
    let mut unknown: BTreeSet<&str> = BTreeSet::new();
    for tenant in events.iter().map(RouterEvent::tenant_id) {
        match known.get(tenant) {
            Some(true) => {
                subscribed.insert(tenant);
            }
            Some(false) => {}
            None => {
                unknown.insert(tenant);
            }
        }
    }
    let looked_up: Vec<String> = if unknown.is_empty() {
        Vec::new()
    } else {
        tenants::Entity::find()
            .select_only()
            .column(tenants::Column::Id)
            .filter(tenants::Column::Id.is_in(unknown))
            .filter(tenants::Column::NotifyUrl.is_not_null())
            .into_tuple::<String>()
            .all(db)
            .await?
    };
    subscribed.extend(looked_up.iter().map(String::as_str));
    if subscribed.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let rows: Vec<rows::ActiveModel> = events
        .iter()
        .filter(|e| subscribed.contains(e.tenant_id()))
        .map(|e| {
            let mut payload = serde_json::to_value(e).unwrap_or_default();
            if let Some(o) = payload.as_object_mut() {
                o.insert("id".into(), ids::new_id("evt").into());
                o.insert("created_at".into(), ids::rfc3339(now).into());
            }
            rows::ActiveModel {
                tenant_id: Set(e.tenant_id().to_owned()),
                conversation_id: Set(conversation_of(e).to_owned()),
                payload: Set(payload.to_string()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                locked_by: Set(None),
                locked_until: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                ..Default::default()
            }
        })
        .collect();
    rows::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

impl Router {
    /// Sets the URL a tenant's events are POSTed to and returns a new signing secret (shown
    /// only now); `None` turns notifications off and drops the queue.
    ///
    /// # Errors
    /// `invalid_notify_url` for a URL that is not http(s); `not_found`; a database error.
    pub async fn set_notify_url(
        &self,
        tenant_id: &str,
        url: Option<&str>,
    ) -> Result<Option<String>> {
        let txn = self.inner.store.write_txn().await?;
        let tenant = tenants::Entity::find_by_id(tenant_id.to_owned())
            .one(&txn)
            .await?
            .ok_or(RouterError::NotFound("tenant"))?;
        let (url, secret) = match url {
            Some(u) => {
                let parsed = url::Url::parse(u).map_err(|e| {
                    RouterError::invalid("invalid_notify_url", format!("not a URL: {e}"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(RouterError::invalid(
                        "invalid_notify_url",
                        "the notify URL must be http or https",
                    ));
                }
                let bytes: [u8; 32] = rand::rng().random();
                let secret = format!("whsec_{}", hex::encode(bytes));
                (Some(parsed.to_string()), Some(secret))
            }
            None => (None, None),
        };
        let sealed = secret.as_ref().map(|s| {
            self.inner
                .cipher
                .seal(s.as_bytes(), &secret_aad(&tenant.id))
        });
        tenants::Entity::update_many()
            .col_expr(tenants::Column::NotifyUrl, Expr::value(url.clone()))
            .col_expr(tenants::Column::NotifySecretEnc, Expr::value(sealed))
            .filter(tenants::Column::Id.eq(tenant.id.as_str()))
            .exec(&txn)
            .await?;
        if url.is_none() {
            rows::Entity::delete_many()
                .filter(rows::Column::TenantId.eq(tenant.id.as_str()))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(secret)
    }

    /// Claims due notifications and POSTs them; returns how many were claimed.
    ///
    /// # Errors
    /// A database error while claiming.
    pub async fn deliver_notifications(&self) -> Result<usize> {
        let due = self.claim_notifications().await?;
        if due.is_empty() {
            return Ok(0);
        }
        let tenant_ids: BTreeSet<&str> = due.iter().map(|n| n.tenant_id.as_str()).collect();
        let targets: HashMap<String, (String, String)> = tenants::Entity::find()
            .filter(tenants::Column::Id.is_in(tenant_ids))
            .all(self.inner.store.conn())
            .await?
            .into_iter()
            .filter_map(|t| {
                let url = t.notify_url?;
                let sealed = t.notify_secret_enc?;
                let secret = self.inner.cipher.open(&sealed, &secret_aad(&t.id)).ok()?;
                Some((t.id, (url, String::from_utf8(secret).ok()?)))
            })
            .collect();
        let n = due.len();
        let targets = &targets;
        futures::stream::iter(due)
            .for_each_concurrent(16, |row| async move {
                let id = row.id;
                if let Err(e) = self.notify_one(row, targets).await {
                    tracing::warn!(notification = id, error = %e, "Notification outcome could not be recorded.");
                }
            })
            .await;
        Ok(n)
    }

    async fn claim_notifications(&self) -> Result<Vec<rows::Model>> {
        let now = now_ms();
        let txn = self.inner.store.write_txn().await?;
        let due = rows::Entity::find()
            .filter(rows::Column::NextAttemptAt.lte(now))
            .filter(
                sea_orm::Condition::any()
                    .add(rows::Column::LockedUntil.is_null())
                    .add(rows::Column::LockedUntil.lt(now)),
            )
            .filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM notifications older WHERE older.conversation_id = notifications.conversation_id AND older.id < notifications.id)",
            ))
            .order_by_asc(rows::Column::Id)
            .limit(self.inner.delivery.batch)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        if !due.is_empty() {
            let until =
                now + i64::try_from(self.inner.delivery.lease.as_millis()).unwrap_or(i64::MAX / 2);
            rows::Entity::update_many()
                .col_expr(
                    rows::Column::LockedBy,
                    Expr::value(self.inner.worker_id.as_str()),
                )
                .col_expr(rows::Column::LockedUntil, Expr::value(until))
                .filter(rows::Column::Id.is_in(due.iter().map(|n| n.id)))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(due)
    }

    async fn notify_one(
        &self,
        row: rows::Model,
        targets: &HashMap<String, (String, String)>,
    ) -> Result<()> {
        let db = self.inner.store.write_conn();
        let Some((url, secret)) = targets.get(&row.tenant_id) else {
            // Notifications were turned off (or the secret cannot be read): nobody to tell.
            rows::Entity::delete_by_id(row.id).exec(db).await?;
            return Ok(());
        };
        let event_id = serde_json::from_str::<serde_json::Value>(&row.payload)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let outcome = client()
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(secret, row.payload.as_bytes()))
            .header(EVENT_ID_HEADER, event_id)
            .body(row.payload.clone())
            .send()
            .await;
        let error = match outcome {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Some(e.to_string()),
        };
        let Some(error) = error else {
            rows::Entity::delete_by_id(row.id).exec(db).await?;
            return Ok(());
        };
        let attempt = row.attempts.saturating_add(1);
        let delay = self.backoff(attempt);
        let next = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4);
        rows::Entity::update_many()
            .col_expr(rows::Column::Attempts, Expr::value(attempt))
            .col_expr(rows::Column::NextAttemptAt, Expr::value(next))
            .col_expr(rows::Column::LastError, Expr::value(error))
            .col_expr(rows::Column::LockedBy, Expr::value(Option::<String>::None))
            .col_expr(rows::Column::LockedUntil, Expr::value(Option::<i64>::None))
            .filter(rows::Column::Id.eq(row.id))
            .exec(db)
            .await?;
        Ok(())
    }
}
