//! Media that is never lost.
//!
//! Provider links do not last (Meta's download URLs expire in minutes and its media ids in
//! 7 days; Twilio's media can be deleted), so every inbound media item is downloaded and
//! kept:
//!
//! - The webhook transaction writes one `media` row per item (`pending`), beside the
//!   message; the webhook is answered without waiting for any download.
//! - The fetcher ([`Router::fetch_media_due`], run with the delivery engine) claims due
//!   rows with a lease (like the outbox), downloads through the channel's adapter with the
//!   provider's per-kind size limit, and stores the bytes in the [`MediaStore`]. A transient
//!   failure is retried with exponential backoff and full jitter; a permanent one (404,
//!   too large, gone) or the last attempt marks the row `failed` with the reason. The
//!   message itself is never touched.
//! - The API serves stored bytes to the owning tenant (`GET /v1/media/{id}`) and takes
//!   uploads (`POST /v1/media`) that `send()` can reference by id. At delivery an upload
//!   becomes a provider media id (channels that upload: Meta; cached per account so a retry
//!   does not upload again) or a signed, expiring public URL (channels that fetch links:
//!   Twilio).
//!
//! Bytes are held in memory per item (at most 100 MB, Meta's document limit) and are never
//! logged.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use hmac::{KeyInit, Mac};
use rand::Rng;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use switchboard_core::media::{MediaLimit, mime_essence};
use switchboard_core::{
    AccountContext, ChannelAdapter, ChannelError, Content, ErrorKind, MediaItem, MediaKind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::error::{Result, RouterError};
use crate::ids::{self, now_ms};
use crate::router::Router;
use crate::store::entity::{media, media_uploads};

/// The id prefix of stored media.
pub const MEDIA: &str = "med";

pub const PENDING: &str = "pending";
pub const STORED: &str = "stored";
pub const FAILED: &str = "failed";

/// How long a signed public URL stays valid. Twilio fetches `MediaUrl` when it processes
/// the message, and may hold a message in its queue for up to 4 hours.
pub const PUBLIC_URL_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// Meta keeps uploaded media 30 days; a cached upload older than this is
/// uploaded again.
const UPLOAD_REUSE_MS: i64 = 29 * 24 * 60 * 60 * 1000;

/// Fetcher settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Downloads before an item is marked failed.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt (full jitter), capped by `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a claimed item stays leased to this process.
    pub lease: Duration,
    /// Items fetched per round (concurrently).
    pub batch: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        // 20 attempts, 2 s doubling to a 1 h cap: several hours of provider outage are
        // survived, well inside Meta's 7-day media-id lifetime.
        Self {
            max_attempts: 20,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60 * 60),
            lease: Duration::from_secs(300),
            batch: 16,
        }
    }
}

/// What an upload may be, known from its headers before its bytes are read
/// ([`Router::upload_media`]'s checks, split so a body is refused as soon as it passes
/// `max_bytes`).
#[derive(Clone, Debug)]
pub struct UploadTarget {
    /// The MIME type's essence.
    pub mime: String,
    pub kind: MediaKind,
    /// The most any registered channel accepts for `kind`.
    pub max_bytes: u64,
}

impl UploadTarget {
    /// `media_too_large`, with the size when it is known.
    pub fn too_large(&self, size: Option<u64>) -> RouterError {
        let limit = format!(
            "{} media may have at most {} bytes",
            self.kind.as_str(),
            self.max_bytes
        );
        RouterError::invalid(
            "media_too_large",
            match size {
                Some(size) => format!("the file has {size} bytes; {limit}"),
                None => format!("the file is larger than allowed: {limit}"),
            },
        )
    }
}

/// A stored item's bytes as a stream, with its length.
pub struct MediaBody {
    pub len: u64,
    pub stream: BoxStream<'static, io::Result<Bytes>>,
}

impl MediaBody {
    /// Reads the whole body (for an upload to a provider).
    ///
    /// # Errors
    /// The storage's I/O error.
    pub async fn collect(mut self) -> io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
        while let Some(chunk) = self.stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

/// Where media bytes live, keyed by the hex SHA-256 of the bytes (content-addressed, so a
/// retried write or the same file twice is stored once). Another backend (an S3-compatible
/// store) implements this in its own crate and is given to [`crate::RouterBuilder::media_store`].
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Stores `bytes` under `sha256` (lowercase hex of the bytes). Durable when it returns.
    async fn put(&self, sha256: &str, bytes: Bytes) -> io::Result<()>;

    /// The bytes stored under `sha256`, or `None`.
    async fn get(&self, sha256: &str) -> io::Result<Option<MediaBody>>;
}

/// The default store: files under a directory, `ab/cd/<sha256>`, written to a temporary
/// file, fsynced, then renamed, so a crash never leaves a partial file under a key.
#[derive(Clone, Debug)]
pub struct LocalMediaStore {
    dir: PathBuf,
}

impl LocalMediaStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha256: &str) -> io::Result<PathBuf> {
        // Keys come from our own hashing, but a path is only ever built from 64 hex digits.
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a media key is 64 hex digits",
            ));
        }
        Ok(self.dir.join(&sha256[..2]).join(&sha256[2..4]).join(sha256))
    }
}

#[async_trait]
impl MediaStore for LocalMediaStore {
    async fn put(&self, sha256: &str, bytes: Bytes) -> io::Result<()> {
        let path = self.path(sha256)?;
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        let parent = path
            .parent()
            .ok_or_else(|| io::Error::other("media path has no parent"))?;
        tokio::fs::create_dir_all(parent).await?;
        let tmp = parent.join(format!(".{sha256}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut file = tokio::fs::File::create(&tmp).await?;
        let written = async {
            file.write_all(&bytes).await?;
            file.sync_all().await
        }
        .await;
        drop(file);
        if let Err(e) = written {
            // Best effort: a leftover temporary file is harmless.
            if let Err(rm) = tokio::fs::remove_file(&tmp).await {
                tracing::debug!(error = %rm, "Could not remove a temporary media file.");
            }
            return Err(e);
        }
        tokio::fs::rename(&tmp, &path).await
    }

    async fn get(&self, sha256: &str) -> io::Result<Option<MediaBody>> {
        let path = self.path(sha256)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata().await?.len();
        let stream = futures::stream::unfold(Some(file), |state| async move {
            let mut file = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        Ok(Some(MediaBody {
            len,
            stream: stream.boxed(),
        }))
    }
}

/// Signs public media URLs: HMAC-SHA256 over the id and expiry, with a key derived from the
/// encryption key (never the key itself).
#[derive(Clone)]
pub(crate) struct UrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner([REDACTED])")
    }
}

impl UrlSigner {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, media_id: &str, expires: i64) -> hmac::Hmac<Sha256> {
        let mut mac = <hmac::Hmac<Sha256>>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(format!("media\n{media_id}\n{expires}").as_bytes());
        mac
    }

    pub(crate) fn sign(&self, media_id: &str, expires: i64) -> String {
        hex::encode(self.mac(media_id, expires).finalize().into_bytes())
    }

    /// Whether `sig` is valid for the id and expiry (constant time) and not expired.
    pub(crate) fn verify(&self, media_id: &str, expires: i64, sig: &str, now_s: i64) -> bool {
        let Ok(given) = hex::decode(sig) else {
            return false;
        };
        expires >= now_s && self.mac(media_id, expires).verify_slice(&given).is_ok()
    }
}

/// A media item as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MediaView {
    pub id: String,
    /// The item's position in its message (0 for an upload).
    pub index: i32,
    pub kind: String,
    /// `pending` (being fetched from the provider), `stored` or `failed`.
    pub state: String,
    pub mime_type: Option<String>,
    pub filename: Option<String>,
    pub size: Option<i64>,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: Option<String>,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
    pub attempts: i32,
    pub created_at: String,
}

pub(crate) fn view(row: &media::Model) -> MediaView {
    MediaView {
        id: row.id.clone(),
        index: row.item_index,
        kind: row.kind.clone(),
        state: row.state.clone(),
        mime_type: row.mime_type.clone(),
        filename: row.filename.clone(),
        size: row.size,
        sha256: row.sha256.clone(),
        failure_reason: row.failure_reason.clone(),
        attempts: row.attempts,
        created_at: ids::rfc3339(row.created_at),
    }
}

/// Writes one `pending` row per media item of a new inbound message, in the caller's
/// transaction (the webhook's), so an acknowledged message always has its media queued.
///
/// # Errors
/// The database error.
pub async fn enqueue_inbound<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    account_id: &str,
    message_id: &str,
    content: &Content,
) -> Result<(), DbErr> {
    if content.media.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let rows = content.media.iter().enumerate().map(|(i, m)| {
        let fetchable = m.url.as_deref().is_some_and(|u| !u.is_empty())
            || m.provider_media_id
                .as_deref()
                .is_some_and(|u| !u.is_empty());
        media::ActiveModel {
            id: Set(ids::new_id(MEDIA)),
            tenant_id: Set(tenant_id.to_owned()),
            message_id: Set(Some(message_id.to_owned())),
            item_index: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            origin: Set("inbound".into()),
            kind: Set(m.kind.as_str().to_owned()),
            mime_type: Set(m.mime_type.as_deref().map(mime_essence)),
            filename: Set(m.filename.clone()),
            size: Set(None),
            sha256: Set(None),
            account_id: Set(Some(account_id.to_owned())),
            provider_url: Set(m.url.clone().filter(|u| !u.is_empty())),
            provider_media_id: Set(m.provider_media_id.clone().filter(|u| !u.is_empty())),
            provider_sha256: Set(m.sha256.clone()),
            state: Set(if fetchable { PENDING } else { FAILED }.into()),
            failure_reason: Set(
                (!fetchable).then(|| "the provider gave neither a URL nor a media id".to_owned())
            ),
            attempts: Set(0),
            next_attempt_at: Set(fetchable.then_some(now)),
            locked_by: Set(None),
            locked_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
    });
    media::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn kind_of(row: &media::Model) -> MediaKind {
    MediaKind::parse(&row.kind).unwrap_or(MediaKind::Document)
}

/// Whether a download failure may succeed later.
fn retryable(err: &ChannelError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Transient | ErrorKind::RateLimited | ErrorKind::Ambiguous | ErrorKind::Auth
    )
}

/// Every byte is hashed once, here; the digest names the stored file.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Router {
    /// The fetcher loop: runs rounds until `shutdown` turns true.
    pub(crate) async fn media_loop(&self, shutdown: watch::Receiver<bool>) {
        let queue = crate::wake::Queue {
            table: "media",
            only: "state = 'pending' AND next_attempt_at IS NOT NULL",
        };
        self.work_loop(
            shutdown,
            &self.inner.wake_media,
            queue,
            "Media fetch round",
            || self.fetch_media_due(),
        )
        .await;
    }

    /// Claims due inbound media and downloads it; returns how many items were claimed.
    ///
    /// # Errors
    /// A database error while claiming.
    pub async fn fetch_media_due(&self) -> Result<usize> {
        let rows = self.claim_media().await?;
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

    async fn claim_media(&self) -> Result<Vec<media::Model>> {
        let cfg = &self.inner.media;
        let now = now_ms();
        let txn = self.inner.store.write_txn().await?;
        let due = media::Entity::find()
            .filter(media::Column::State.eq(PENDING))
            .filter(media::Column::NextAttemptAt.lte(now))
            .filter(
                sea_orm::Condition::any()
                    .add(media::Column::LockedUntil.is_null())
                    .add(media::Column::LockedUntil.lt(now)),
            )
            .order_by_asc(media::Column::NextAttemptAt)
            .limit(cfg.batch)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        if due.is_empty() {
            txn.commit().await?;
            return Ok(due);
        }
        let until = now + millis(cfg.lease);
        media::Entity::update_many()
            .col_expr(
                media::Column::LockedBy,
                Expr::value(self.inner.worker_id.as_str()),
            )
            .col_expr(media::Column::LockedUntil, Expr::value(until))
            .filter(media::Column::Id.is_in(due.iter().map(|r| r.id.clone())))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(due)
    }

    async fn fetch_one(&self, row: media::Model) -> Result<()> {
        let attempt = row.attempts + 1;
        let account = match row.account_id.as_deref() {
            Some(id) => self.account_by_id(id).await,
            None => Err(RouterError::NotFound("account")),
        };
        let account = match account {
            Ok(a) => a,
            Err(RouterError::NotFound(_)) => {
                return self
                    .media_failed(&row, attempt, "the receiving account no longer exists")
                    .await;
            }
            Err(e) => return Err(e),
        };
        let Some(adapter) = self.inner.adapters.get(&account.channel).cloned() else {
            return self
                .media_failed(
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
                if let Err(e) = self.inner.media_store.put(&digest, f.bytes).await {
                    // Our storage failed, not the provider: retry like a transient error.
                    tracing::warn!(media_id = %row.id, error = %e, "Could not store media.");
                    let err = ChannelError::transient(format!("could not store the media: {e}"));
                    return self.media_retry_or_fail(&row, attempt, &err).await;
                }
                metrics::counter!("switchboard_media_stored_total", "channel" => account.channel.clone()).increment(1);
                media::Entity::update_many()
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
                    .col_expr(media::Column::LockedBy, Expr::value(Option::<String>::None))
                    .col_expr(media::Column::LockedUntil, Expr::value(Option::<i64>::None))
                    .col_expr(media::Column::UpdatedAt, Expr::value(now_ms()))
                    .filter(media::Column::Id.eq(row.id.as_str()))
                    .exec(self.inner.store.write_conn())
                    .await?;
                Ok(())
            }
            Err(err) => self.media_retry_or_fail(&row, attempt, &err).await,
        }
    }

    async fn media_retry_or_fail(
        &self,
        row: &media::Model,
        attempt: i32,
        err: &ChannelError,
    ) -> Result<()> {
        if !retryable(err) {
            return self.media_failed(row, attempt, &err.to_string()).await;
        }
        if attempt >= self.inner.media.max_attempts {
            return self
                .media_failed(
                    row,
                    attempt,
                    &format!("gave up after {attempt} attempts: {err}"),
                )
                .await;
        }
        let delay = err
            .retry_after()
            .unwrap_or_else(|| self.media_backoff(attempt));
        tracing::info!(media_id = %row.id, attempt, error = %err, "Media download failed; retrying.");
        media::Entity::update_many()
            .col_expr(media::Column::Attempts, Expr::value(attempt))
            .col_expr(
                media::Column::NextAttemptAt,
                Expr::value(now_ms() + millis(delay)),
            )
            .col_expr(media::Column::FailureReason, Expr::value(err.to_string()))
            .col_expr(media::Column::LockedBy, Expr::value(Option::<String>::None))
            .col_expr(media::Column::LockedUntil, Expr::value(Option::<i64>::None))
            .col_expr(media::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(media::Column::Id.eq(row.id.as_str()))
            .exec(self.inner.store.write_conn())
            .await?;
        Ok(())
    }

    async fn media_failed(&self, row: &media::Model, attempt: i32, reason: &str) -> Result<()> {
        metrics::counter!("switchboard_media_failed_total").increment(1);
        tracing::warn!(media_id = %row.id, reason, "Media could not be fetched.");
        media::Entity::update_many()
            .col_expr(media::Column::State, Expr::value(FAILED))
            .col_expr(media::Column::Attempts, Expr::value(attempt))
            .col_expr(media::Column::FailureReason, Expr::value(reason))
            .col_expr(
                media::Column::NextAttemptAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(media::Column::LockedBy, Expr::value(Option::<String>::None))
            .col_expr(media::Column::LockedUntil, Expr::value(Option::<i64>::None))
            .col_expr(media::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(media::Column::Id.eq(row.id.as_str()))
            .exec(self.inner.store.write_conn())
            .await?;
        Ok(())
    }

    /// Exponential backoff with full jitter: uniform in [0, min(max, base·2^(attempt-1))].
    fn media_backoff(&self, attempt: i32) -> Duration {
        let cfg = &self.inner.media;
        let exp = cfg
            .base_backoff
            .saturating_mul(1u32 << u32::try_from(attempt.clamp(1, 24) - 1).unwrap_or(0));
        let cap = u64::try_from(exp.min(cfg.max_backoff).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=cap))
    }

    /// The most any registered channel accepts for `kind`, and whether one accepts `mime`.
    fn upload_limit(&self, kind: MediaKind, mime: &str) -> (u64, bool) {
        let limits: Vec<MediaLimit> = self
            .inner
            .adapters
            .iter()
            .filter(|a| a.capabilities().media_kinds.contains(&kind))
            .map(|a| a.media_limit(kind))
            .collect();
        let max = limits.iter().map(|l| l.max_bytes).max().unwrap_or(0);
        let mime_ok = limits.iter().any(|l| l.allows_mime(mime));
        (max, mime_ok)
    }

    /// What an upload of `mime_type` (and `kind`, when given) may be, checked before its
    /// bytes are read: the kind defaults from the MIME type (`image/webp` is a sticker), the
    /// type must be one some registered channel sends for that kind, and the limit is the
    /// largest such channel's.
    ///
    /// # Errors
    /// `unsupported_media_type` (400-class).
    pub fn upload_target(&self, mime_type: &str, kind: Option<MediaKind>) -> Result<UploadTarget> {
        let mime = mime_essence(mime_type);
        if mime.is_empty() || !mime.contains('/') {
            return Err(RouterError::invalid(
                "unsupported_media_type",
                "send the file's MIME type as Content-Type (e.g. image/jpeg)",
            ));
        }
        let kind = kind.unwrap_or_else(|| {
            if mime == "image/webp" {
                MediaKind::Sticker
            } else {
                MediaKind::from_mime(&mime)
            }
        });
        let (max_bytes, mime_ok) = self.upload_limit(kind, &mime);
        if !mime_ok {
            return Err(RouterError::invalid(
                "unsupported_media_type",
                format!(
                    "{mime} cannot be sent as {} media on any enabled channel",
                    kind.as_str()
                ),
            ));
        }
        Ok(UploadTarget {
            mime,
            kind,
            max_bytes,
        })
    }

    /// Stores an upload of the tenant for sending later, checked as [`Self::upload_target`]
    /// says and against its size limit.
    ///
    /// # Errors
    /// `unsupported_media_type` or `media_too_large` (400-class), a storage or database
    /// error.
    pub async fn upload_media(
        &self,
        tenant_id: &str,
        bytes: Bytes,
        mime_type: &str,
        filename: Option<&str>,
        kind: Option<MediaKind>,
    ) -> Result<MediaView> {
        let target = self.upload_target(mime_type, kind)?;
        self.store_upload(tenant_id, &target, bytes, filename).await
    }

    /// Stores the bytes of an upload whose [`UploadTarget`] was checked.
    ///
    /// # Errors
    /// `empty_media` or `media_too_large` (400-class), a storage or database error.
    pub async fn store_upload(
        &self,
        tenant_id: &str,
        target: &UploadTarget,
        bytes: Bytes,
        filename: Option<&str>,
    ) -> Result<MediaView> {
        if bytes.is_empty() {
            return Err(RouterError::invalid("empty_media", "the file is empty"));
        }
        let size = bytes.len() as u64;
        if size > target.max_bytes {
            return Err(target.too_large(Some(size)));
        }
        let (mime, kind) = (target.mime.clone(), target.kind);
        let filename = filename
            .map(|f| {
                f.chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            })
            .filter(|f| !f.trim().is_empty());
        let digest = sha256_hex(&bytes);
        self.inner
            .media_store
            .put(&digest, bytes)
            .await
            .map_err(|e| storage_error(&e))?;
        let now = now_ms();
        let row = media::Model {
            id: ids::new_id(MEDIA),
            tenant_id: tenant_id.to_owned(),
            message_id: None,
            item_index: 0,
            origin: "upload".into(),
            kind: kind.as_str().to_owned(),
            mime_type: Some(mime),
            filename,
            size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
            sha256: Some(digest),
            account_id: None,
            provider_url: None,
            provider_media_id: None,
            provider_sha256: None,
            state: STORED.into(),
            failure_reason: None,
            attempts: 0,
            next_attempt_at: None,
            locked_by: None,
            locked_until: None,
            created_at: now,
            updated_at: now,
        };
        let active: media::ActiveModel = row.clone().into();
        media::Entity::insert(active)
            .exec_without_returning(self.inner.store.write_conn())
            .await?;
        Ok(view(&row))
    }

    /// One of the tenant's media items.
    ///
    /// # Errors
    /// `not_found` (also for another tenant's id); a database error.
    pub async fn media_info(&self, tenant_id: &str, media_id: &str) -> Result<media::Model> {
        media::Entity::find_by_id(media_id.to_owned())
            .filter(media::Column::TenantId.eq(tenant_id))
            .one(self.inner.store.conn())
            .await?
            .ok_or(RouterError::NotFound("media"))
    }

    /// The bytes of one of the tenant's stored items.
    ///
    /// # Errors
    /// `not_found`; `media_not_stored` (409) while pending or after a failure; a storage or
    /// database error.
    pub async fn media_content(
        &self,
        tenant_id: &str,
        media_id: &str,
    ) -> Result<(media::Model, MediaBody)> {
        let row = self.media_info(tenant_id, media_id).await?;
        let body = self.stored_body(&row).await?;
        Ok((row, body))
    }

    async fn stored_body(&self, row: &media::Model) -> Result<MediaBody> {
        let (STORED, Some(digest)) = (row.state.as_str(), row.sha256.as_deref()) else {
            return Err(RouterError::Conflict {
                code: "media_not_stored",
                message: match &row.failure_reason {
                    Some(r) if row.state == FAILED => {
                        format!("the media could not be fetched: {r}")
                    }
                    _ => "the media is still being fetched from the provider".into(),
                },
            });
        };
        self.inner
            .media_store
            .get(digest)
            .await
            .map_err(|e| storage_error(&e))?
            .ok_or(RouterError::NotFound("media content"))
    }

    /// The bytes behind a signed public URL (`/media/{id}?expires=…&sig=…`).
    ///
    /// # Errors
    /// `not_found` for a bad or expired signature as for an unknown id (nothing is revealed
    /// to a guesser); a storage or database error.
    pub async fn public_media(
        &self,
        media_id: &str,
        expires: i64,
        sig: &str,
    ) -> Result<(media::Model, MediaBody)> {
        let now_s = now_ms() / 1000;
        if !self
            .inner
            .media_signer
            .verify(media_id, expires, sig, now_s)
        {
            return Err(RouterError::NotFound("media"));
        }
        let row = media::Entity::find_by_id(media_id.to_owned())
            .one(self.inner.store.conn())
            .await?
            .ok_or(RouterError::NotFound("media"))?;
        let body = self.stored_body(&row).await?;
        Ok((row, body))
    }

    /// A signed public URL for a media item, valid for [`PUBLIC_URL_TTL`].
    pub(crate) fn signed_media_url(&self, media_id: &str) -> Option<String> {
        let base = self.inner.public_url.as_deref()?;
        let expires = now_ms() / 1000 + i64::try_from(PUBLIC_URL_TTL.as_secs()).unwrap_or(0);
        let sig = self.inner.media_signer.sign(media_id, expires);
        Some(format!(
            "{}/media/{media_id}?expires={expires}&sig={sig}",
            base.trim_end_matches('/')
        ))
    }

    /// Checks the uploads a message to send references: each must be the tenant's, stored,
    /// and sendable on `adapter`'s channel (type and size). Fills in kind and MIME type.
    ///
    /// # Errors
    /// `not_found` for an unknown or another tenant's id; `media_not_stored` (409);
    /// `media_not_supported_by_channel` (400); a database error.
    pub(crate) async fn resolve_media_refs(
        &self,
        tenant_id: &str,
        adapter: &dyn ChannelAdapter,
        content: &mut Content,
    ) -> Result<()> {
        for item in &mut content.media {
            let Some(id) = item.media_id.clone() else {
                continue;
            };
            let row = self.media_info(tenant_id, &id).await?;
            if row.state != STORED {
                return Err(RouterError::Conflict {
                    code: "media_not_stored",
                    message: format!("media {id} is {}", row.state),
                });
            }
            item.kind = kind_of(&row);
            let mime = row.mime_type.clone().unwrap_or_default();
            let size = u64::try_from(row.size.unwrap_or(0)).unwrap_or(0);
            let limit = adapter.media_limit(item.kind);
            if !adapter.capabilities().media_kinds.contains(&item.kind)
                || !limit.allows(&mime, size)
            {
                return Err(RouterError::invalid(
                    "media_not_supported_by_channel",
                    format!(
                        "{} cannot send this {} ({mime}, {size} bytes; at most {} bytes of {})",
                        adapter.channel(),
                        item.kind.as_str(),
                        limit.max_bytes,
                        if limit.mime_types.is_empty() {
                            "any type".to_owned()
                        } else {
                            limit.mime_types.join(", ")
                        }
                    ),
                ));
            }
            item.mime_type = Some(mime);
            if item.filename.is_none() {
                item.filename = row.filename.clone();
            }
        }
        Ok(())
    }

    /// Turns references to uploads into what the channel sends: a provider media id
    /// (uploaded once per account, then reused) or a signed public URL.
    ///
    /// The outer error is the database's; the inner one is the channel's, to be handled
    /// like a failed send (retried when transient).
    pub(crate) async fn prepare_outbound_media(
        &self,
        account: &AccountContext,
        adapter: &dyn ChannelAdapter,
        content: &mut Content,
    ) -> Result<std::result::Result<(), ChannelError>> {
        for item in &mut content.media {
            let Some(id) = item.media_id.clone() else {
                continue;
            };
            if item.provider_media_id.is_some() || item.url.is_some() {
                continue;
            }
            let Some(row) = media::Entity::find_by_id(id.clone())
                .filter(media::Column::TenantId.eq(account.tenant_id.as_str()))
                .one(self.inner.store.conn())
                .await?
            else {
                return Ok(Err(ChannelError::permanent(format!(
                    "media {id} no longer exists"
                ))));
            };
            let cached =
                media_uploads::Entity::find_by_id((id.clone(), account.account_id.clone()))
                    .one(self.inner.store.conn())
                    .await?
                    .filter(|u| now_ms() - u.uploaded_at < UPLOAD_REUSE_MS);
            if let Some(u) = cached {
                item.provider_media_id = Some(u.provider_media_id);
                continue;
            }
            let body = match self.stored_body(&row).await {
                Ok(b) => b,
                Err(RouterError::Database(e)) => return Err(RouterError::Database(e)),
                Err(e) => return Ok(Err(ChannelError::permanent(e.to_string()))),
            };
            let bytes = match body.collect().await {
                Ok(b) => b,
                Err(e) => {
                    return Ok(Err(ChannelError::transient(format!(
                        "could not read the stored media: {e}"
                    ))));
                }
            };
            let mime = row.mime_type.clone().unwrap_or_default();
            match adapter
                .upload_media(account, bytes, &mime, row.filename.as_deref())
                .await
            {
                Ok(provider_id) => {
                    media_uploads::Entity::insert(media_uploads::ActiveModel {
                        media_id: Set(id.clone()),
                        account_id: Set(account.account_id.clone()),
                        provider_media_id: Set(provider_id.clone()),
                        uploaded_at: Set(now_ms()),
                    })
                    .on_conflict(
                        sea_orm::sea_query::OnConflict::columns([
                            media_uploads::Column::MediaId,
                            media_uploads::Column::AccountId,
                        ])
                        .update_columns([
                            media_uploads::Column::ProviderMediaId,
                            media_uploads::Column::UploadedAt,
                        ])
                        .to_owned(),
                    )
                    .exec_without_returning(self.inner.store.write_conn())
                    .await?;
                    item.provider_media_id = Some(provider_id);
                }
                Err(e) if e.kind() == ErrorKind::Unsupported => match self.signed_media_url(&id) {
                    Some(url) => item.url = Some(url),
                    None => {
                        return Ok(Err(ChannelError::permanent(
                            "this channel fetches media from a public URL: set SWITCHBOARD_PUBLIC_URL",
                        )));
                    }
                },
                // An upload that may have happened only leaves an unused copy at the
                // provider: retrying is safe.
                Err(e) if e.is_ambiguous() => {
                    return Ok(Err(ChannelError::transient(e.message().to_owned())));
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(()))
    }

    /// The media rows of some of the tenant's messages, by message id, in item order.
    pub(crate) async fn media_of_messages(
        &self,
        tenant_id: &str,
        message_ids: Vec<String>,
    ) -> Result<std::collections::HashMap<String, Vec<media::Model>>> {
        let mut out: std::collections::HashMap<String, Vec<media::Model>> =
            std::collections::HashMap::new();
        if message_ids.is_empty() {
            return Ok(out);
        }
        let rows = media::Entity::find()
            .filter(media::Column::TenantId.eq(tenant_id))
            .filter(media::Column::MessageId.is_in(message_ids))
            .order_by_asc(media::Column::ItemIndex)
            .all(self.inner.store.conn())
            .await?;
        for r in rows {
            if let Some(m) = r.message_id.clone() {
                out.entry(m).or_default().push(r);
            }
        }
        Ok(out)
    }
}

fn storage_error(e: &io::Error) -> RouterError {
    tracing::error!(error = %e, "Media storage failed.");
    RouterError::Conflict {
        code: "media_storage_unavailable",
        message: "the media store could not be used; retry later".into(),
    }
}

/// Shared handle type of the store.
pub type SharedMediaStore = Arc<dyn MediaStore>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_id_and_expiry_and_expire() {
        let s = UrlSigner::new([7; 32]);
        let sig = s.sign("med_1", 1000);
        assert!(s.verify("med_1", 1000, &sig, 999));
        assert!(!s.verify("med_1", 1000, &sig, 1001), "expired");
        assert!(!s.verify("med_2", 1000, &sig, 0), "other id");
        assert!(!s.verify("med_1", 1001, &sig, 0), "other expiry");
        assert!(!s.verify("med_1", 1000, "zz", 0));
        assert!(!UrlSigner::new([8; 32]).verify("med_1", 1000, &sig, 0));
    }

    #[tokio::test]
    async fn the_local_store_is_content_addressed_and_refuses_odd_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalMediaStore::new(dir.path());
        let bytes = Bytes::from_static(b"hello media");
        let key = sha256_hex(&bytes);
        store.put(&key, bytes.clone()).await.unwrap();
        store.put(&key, bytes.clone()).await.unwrap();
        let got = store.get(&key).await.unwrap().unwrap();
        assert_eq!(got.len, bytes.len() as u64);
        assert_eq!(got.collect().await.unwrap(), bytes);
        assert!(store.get(&"0".repeat(64)).await.unwrap().is_none());
        assert!(store.get("../etc/passwd").await.is_err());
    }
}
