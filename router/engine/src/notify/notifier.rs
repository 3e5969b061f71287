//! The notifier: claims queued notifications and POSTs them, signed, to each tenant's URL.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::{Notify, watch};

use crate::config::DeliveryConfig;
use crate::error::{Result, RouterError};
use crate::ids::now_ms;
use crate::notify::queue::{NOTIFY_QUEUE, rows};
use crate::notify::signing::{EVENT_ID_HEADER, SIGNATURE_HEADER, signature};
use crate::store::Store;
use crate::store::crypto::CredentialCipher;
use crate::store::entity::tenants;
use crate::store::queue::{WorkLoop, millis};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Outgoing webhooks of the tenants: their URL and secret, and the worker that POSTs
/// queued notifications.
pub struct Notifier {
    store: Store,
    cipher: CredentialCipher,
    config: DeliveryConfig,
    worker_id: String,
    /// Woken when events were committed.
    wake: Arc<Notify>,
}

fn secret_aad(tenant_id: &str) -> String {
    format!("notify:{tenant_id}")
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

impl Notifier {
    pub(crate) fn new(
        store: Store,
        cipher: CredentialCipher,
        config: DeliveryConfig,
        worker_id: String,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            cipher,
            config,
            worker_id,
            wake,
        }
    }

    /// Runs notification rounds until `shutdown` turns true.
    pub(crate) async fn run(&self, shutdown: watch::Receiver<bool>) {
        WorkLoop {
            store: &self.store,
            queue: NOTIFY_QUEUE,
            wake: &self.wake,
            poll_interval: self.config.poll_interval,
            idle_poll: self.config.idle_poll,
            what: "Notification round",
        }
        .run(shutdown, || self.deliver_due())
        .await;
    }

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
        let txn = self.store.write_txn().await?;
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
        let sealed = secret
            .as_ref()
            .map(|s| self.cipher.seal(s.as_bytes(), &secret_aad(&tenant.id)));
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
    pub async fn deliver_due(&self) -> Result<usize> {
        let due = NOTIFY_QUEUE
            .claim::<rows::Entity, _>(
                &self.store,
                &self.worker_id,
                self.config.lease,
                self.config.batch,
                |r| r.id,
            )
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let tenant_ids: BTreeSet<&str> = due.iter().map(|n| n.tenant_id.as_str()).collect();
        let targets: HashMap<String, (String, String)> = tenants::Entity::find()
            .filter(tenants::Column::Id.is_in(tenant_ids))
            .all(self.store.conn())
            .await?
            .into_iter()
            .filter_map(|t| {
                let url = t.notify_url?;
                let sealed = t.notify_secret_enc?;
                let secret = self.cipher.open(&sealed, &secret_aad(&t.id)).ok()?;
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

    async fn notify_one(
        &self,
        row: rows::Model,
        targets: &HashMap<String, (String, String)>,
    ) -> Result<()> {
        let db = self.store.write_conn();
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
        let next = now_ms() + millis(self.config.backoff().delay(attempt));
        NOTIFY_QUEUE
            .retry_later::<rows::Entity>(row.id, attempt, next)
            .col_expr(rows::Column::LastError, Expr::value(error))
            .exec(db)
            .await?;
        Ok(())
    }
}
