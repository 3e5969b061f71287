//! The fetcher: claims pending inbound media from the queue, downloads it through the
//! channel's adapter, and stores the bytes.

use std::sync::Arc;

use futures::StreamExt;
use sea_orm::sea_query::Expr;
use switchboard_core::{ChannelError, ErrorKind, MediaItem};
use tokio::sync::{Notify, watch};

use crate::config::DeliveryConfig;
use crate::error::{Result, RouterError};
use crate::ids::now_ms;
use crate::media::config::{FAILED, MediaConfig, STORED};
use crate::media::queue::MEDIA_QUEUE;
use crate::media::storage::{SharedMediaStore, sha256_hex};
use crate::media::view::kind_of;
use crate::store::Store;
use crate::store::entity::media;
use crate::store::queue::{Backoff, WorkLoop, millis};
use crate::tenancy::accounts::Accounts;
use crate::tenancy::registry::AdapterRegistry;

/// Downloads inbound media. Owns its queue's worker.
pub struct MediaFetcher {
    pub(crate) store: Store,
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) adapters: AdapterRegistry,
    pub(crate) media_store: SharedMediaStore,
    pub(crate) config: MediaConfig,
    pub(crate) workers: DeliveryConfig,
    pub(crate) worker_id: String,
    /// Woken when inbound messages were committed.
    pub(crate) wake: Arc<Notify>,
}

/// Whether a download failure may succeed later.
fn retryable(err: &ChannelError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Transient | ErrorKind::RateLimited | ErrorKind::Ambiguous | ErrorKind::Auth
    )
}

impl MediaFetcher {
    /// Runs fetch rounds until `shutdown` turns true.
    pub(crate) async fn run(&self, shutdown: watch::Receiver<bool>) {
        WorkLoop {
            store: &self.store,
            queue: MEDIA_QUEUE,
            wake: &self.wake,
            poll_interval: self.workers.poll_interval,
            idle_poll: self.workers.idle_poll,
            what: "Media fetch round",
        }
        .run(shutdown, || self.fetch_due())
        .await;
    }

    /// Claims due inbound media and downloads it; returns how many items were claimed.
    ///
    /// # Errors
    /// A database error while claiming.
    pub async fn fetch_due(&self) -> Result<usize> {
        let rows = MEDIA_QUEUE
            .claim::<media::Entity, _>(
                &self.store,
                &self.worker_id,
                self.config.lease,
                self.config.batch,
                |r| r.id.clone(),
            )
            .await?;
        let n = rows.len();
        futures::stream::iter(rows)
            .for_each_concurrent(8, |row| async move {
                let id = row.id.clone();
                if let Err(e) = self.fetch_one(row).await {
                    // The lease expires and a later round retries it.
                    tracing::warn!(media_id = %id, error = %e, "Media fetch could not be recorded.");
                }
            })
            .await;
        Ok(n)
    }

    async fn fetch_one(&self, row: media::Model) -> Result<()> {
        let attempt = row.attempts + 1;
        let account = match row.account_id.as_deref() {
            Some(id) => self.accounts.by_id(id).await,
            None => Err(RouterError::NotFound("account")),
        };
        let account = match account {
            Ok(a) => a,
            Err(RouterError::NotFound(_)) => {
                return self
                    .failed(&row, attempt, "the receiving account no longer exists")
                    .await;
            }
            Err(e) => return Err(e),
        };
        let Some(adapter) = self.adapters.get(&account.channel).cloned() else {
            return self
                .failed(
                    &row,
                    attempt,
                    "the channel of this account is not enabled in this build",
                )
                .await;
        };
        let kind = kind_of(&row);
        let limit = adapter.media_limit(kind).max_bytes;
        let item = MediaItem {
            url: row.provider_url.clone(),
            provider_media_id: row.provider_media_id.clone(),
            mime_type: row.mime_type.clone(),
            filename: row.filename.clone(),
            sha256: row.provider_sha256.clone(),
            ..MediaItem::from_url(kind, String::new())
        };
        let fetched = adapter.fetch_media(&account.ctx, &item, limit).await;
        match fetched {
            Ok(f) => {
                let digest = sha256_hex(&f.bytes);
                let size = i64::try_from(f.bytes.len()).unwrap_or(i64::MAX);
                if let Err(e) = self.media_store.put(&digest, f.bytes).await {
                    // Our storage failed, not the provider: retry like a transient error.
                    tracing::warn!(media_id = %row.id, error = %e, "Could not store media.");
                    let err = ChannelError::transient(format!("could not store the media: {e}"));
                    return self.retry_or_fail(&row, attempt, &err).await;
                }
                metrics::counter!("switchboard_media_stored_total", "channel" => account.channel.clone()).increment(1);
                MEDIA_QUEUE
                    .finish::<media::Entity>(row.id.as_str())
                    .col_expr(media::Column::State, Expr::value(STORED))
                    .col_expr(media::Column::Sha256, Expr::value(digest))
                    .col_expr(media::Column::Size, Expr::value(size))
                    .col_expr(media::Column::MimeType, Expr::value(f.mime_type))
                    .col_expr(media::Column::Attempts, Expr::value(attempt))
                    .col_expr(
                        media::Column::FailureReason,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(
                        media::Column::NextAttemptAt,
                        Expr::value(Option::<i64>::None),
                    )
                    .col_expr(media::Column::UpdatedAt, Expr::value(now_ms()))
                    .exec(self.store.write_conn())
                    .await?;
                Ok(())
            }
            Err(err) => self.retry_or_fail(&row, attempt, &err).await,
        }
    }

    async fn retry_or_fail(
        &self,
        row: &media::Model,
        attempt: i32,
        err: &ChannelError,
    ) -> Result<()> {
        if !retryable(err) {
            return self.failed(row, attempt, &err.to_string()).await;
        }
        if attempt >= self.config.max_attempts {
            return self
                .failed(
                    row,
                    attempt,
                    &format!("gave up after {attempt} attempts: {err}"),
                )
                .await;
        }
        let delay = err.retry_after().unwrap_or_else(|| {
            Backoff {
                base: self.config.base_backoff,
                max: self.config.max_backoff,
            }
            .delay(attempt)
        });
        tracing::info!(media_id = %row.id, attempt, error = %err, "Media download failed; retrying.");
        MEDIA_QUEUE
            .retry_later::<media::Entity>(row.id.as_str(), attempt, now_ms() + millis(delay))
            .col_expr(media::Column::FailureReason, Expr::value(err.to_string()))
            .col_expr(media::Column::UpdatedAt, Expr::value(now_ms()))
            .exec(self.store.write_conn())
            .await?;
        Ok(())
    }

    async fn failed(&self, row: &media::Model, attempt: i32, reason: &str) -> Result<()> {
        metrics::counter!("switchboard_media_failed_total").increment(1);
        tracing::warn!(media_id = %row.id, reason, "Media could not be fetched.");
        MEDIA_QUEUE
            .finish::<media::Entity>(row.id.as_str())
            .col_expr(media::Column::State, Expr::value(FAILED))
            .col_expr(media::Column::Attempts, Expr::value(attempt))
            .col_expr(media::Column::FailureReason, Expr::value(reason))
            .col_expr(
                media::Column::NextAttemptAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(media::Column::UpdatedAt, Expr::value(now_ms()))
            .exec(self.store.write_conn())
            .await?;
        Ok(())
    }
}
