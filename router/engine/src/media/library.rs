//! The media the API serves and `send()` references: uploads, stored bytes, signed public
//! URLs, and turning uploads into what a channel sends.

use std::io;

use bytes::Bytes;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use switchboard_core::media::{MediaLimit, mime_essence};
use switchboard_core::{
    AccountContext, ChannelAdapter, ChannelError, Content, ErrorKind, MediaKind,
};

use crate::error::{Result, RouterError};
use crate::ids::{self, now_ms};
use crate::media::config::{FAILED, MEDIA, PUBLIC_URL_TTL, STORED, UPLOAD_REUSE_MS};
use crate::media::signer::UrlSigner;
use crate::media::storage::{MediaBody, SharedMediaStore, sha256_hex};
use crate::media::view::{MediaView, kind_of, view};
use crate::store::Store;
use crate::store::entity::{media, media_uploads};
use crate::tenancy::registry::AdapterRegistry;

/// Stored media: uploads, downloads by the owning tenant or a signed link, and what a
/// channel sends for an upload.
pub struct MediaLibrary {
    store: Store,
    adapters: AdapterRegistry,
    media_store: SharedMediaStore,
    signer: UrlSigner,
    /// The base URL providers reach this router at, for signed media links.
    public_url: Option<String>,
}

/// What an upload may be, known from its headers before its bytes are read
/// ([`MediaLibrary::upload`]'s checks, split so a body is refused as soon as it passes
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

impl MediaLibrary {
    pub(crate) fn new(
        store: Store,
        adapters: AdapterRegistry,
        media_store: SharedMediaStore,
        signer: UrlSigner,
        public_url: Option<String>,
    ) -> Self {
        Self {
            store,
            adapters,
            media_store,
            signer,
            public_url,
        }
    }
}

impl MediaLibrary {
    /// The most any registered channel accepts for `kind`, and whether one accepts `mime`.
    fn upload_limit(&self, kind: MediaKind, mime: &str) -> (u64, bool) {
        let limits: Vec<MediaLimit> = self
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
    pub async fn upload(
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
        self.media_store
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
            .exec_without_returning(self.store.write_conn())
            .await?;
        Ok(view(&row))
    }

    /// Forgets an upload that no message took: its row, while it is an unattached upload.
    /// Only for an id its caller never handed out (the console's reply form, whose send was
    /// refused or was a resent form's), since messages name uploads by id. The bytes stay:
    /// they are stored by their SHA-256, which another upload may share.
    ///
    /// # Errors
    /// A database error.
    pub async fn discard_unsent_upload(&self, tenant_id: &str, media_id: &str) -> Result<()> {
        media::Entity::delete_many()
            .filter(media::Column::Id.eq(media_id))
            .filter(media::Column::TenantId.eq(tenant_id))
            .filter(media::Column::Origin.eq("upload"))
            .filter(media::Column::MessageId.is_null())
            .exec(self.store.write_conn())
            .await?;
        Ok(())
    }

    /// One of the tenant's media items.
    ///
    /// # Errors
    /// `not_found` (also for another tenant's id); a database error.
    pub async fn info(&self, tenant_id: &str, media_id: &str) -> Result<media::Model> {
        media::Entity::find_by_id(media_id.to_owned())
            .filter(media::Column::TenantId.eq(tenant_id))
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("media"))
    }

    /// The bytes of one of the tenant's stored items.
    ///
    /// # Errors
    /// `not_found`; `media_not_stored` (409) while pending or after a failure; a storage or
    /// database error.
    pub async fn content(
        &self,
        tenant_id: &str,
        media_id: &str,
    ) -> Result<(media::Model, MediaBody)> {
        let row = self.info(tenant_id, media_id).await?;
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
        self.media_store
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
    pub async fn public(
        &self,
        media_id: &str,
        expires: i64,
        sig: &str,
    ) -> Result<(media::Model, MediaBody)> {
        let now_s = now_ms() / 1000;
        if !self.signer.verify(media_id, expires, sig, now_s) {
            return Err(RouterError::NotFound("media"));
        }
        let row = media::Entity::find_by_id(media_id.to_owned())
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("media"))?;
        let body = self.stored_body(&row).await?;
        Ok((row, body))
    }

    /// A signed public URL for a media item, valid for [`PUBLIC_URL_TTL`].
    pub(crate) fn signed_url(&self, media_id: &str) -> Option<String> {
        let base = self.public_url.as_deref()?;
        let expires = now_ms() / 1000 + i64::try_from(PUBLIC_URL_TTL.as_secs()).unwrap_or(0);
        let sig = self.signer.sign(media_id, expires);
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
        for item in content.media_items_mut() {
            let Some(id) = item.media_id.clone() else {
                continue;
            };
            let row = self.info(tenant_id, &id).await?;
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
    pub(crate) async fn prepare_outbound(
        &self,
        account: &AccountContext,
        adapter: &dyn ChannelAdapter,
        content: &mut Content,
    ) -> Result<std::result::Result<(), ChannelError>> {
        for item in content.media_items_mut() {
            let Some(id) = item.media_id.clone() else {
                continue;
            };
            if item.provider_media_id.is_some() || item.url.is_some() {
                continue;
            }
            let Some(row) = media::Entity::find_by_id(id.clone())
                .filter(media::Column::TenantId.eq(account.tenant_id.as_str()))
                .one(self.store.conn())
                .await?
            else {
                return Ok(Err(ChannelError::permanent(format!(
                    "media {id} no longer exists"
                ))));
            };
            let cached =
                media_uploads::Entity::find_by_id((id.clone(), account.account_id.clone()))
                    .one(self.store.conn())
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
                    .exec_without_returning(self.store.write_conn())
                    .await?;
                    item.provider_media_id = Some(provider_id);
                }
                Err(e) if e.kind() == ErrorKind::Unsupported => match self.signed_url(&id) {
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
    pub(crate) async fn of_messages(
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
            .all(self.store.conn())
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
