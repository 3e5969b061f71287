//! Inbound media waiting to be fetched: one `media` row per item, queued in the webhook's
//! transaction, claimed by the fetcher.

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use switchboard_core::Content;
use switchboard_core::media::mime_essence;

use crate::ids::{self, now_ms};
use crate::media::config::{FAILED, MEDIA, PENDING};
use crate::store::entity::media;
use crate::store::queue::LeaseQueue;

/// Pending media rows, claimed oldest due first.
pub(crate) const MEDIA_QUEUE: LeaseQueue = LeaseQueue {
    table: "media",
    key: "id",
    order_by: "next_attempt_at",
    only: "state = 'pending' AND next_attempt_at IS NOT NULL",
    in_order_per: None,
};

/// Writes one `pending` row per media item of a new inbound message, in the caller's
/// transaction (the webhook's), so an acknowledged message always has its media queued.
/// Whether any row is fetchable (work for the fetcher).
///
/// # Errors
/// The database error.
pub(crate) async fn enqueue_inbound<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    account_id: &str,
    message_id: &str,
    content: &Content,
) -> Result<bool, DbErr> {
    if content.media.is_empty() {
        return Ok(false);
    }
    let mut any_fetchable = false;
    let now = now_ms();
    let rows = content.media.iter().enumerate().map(|(i, m)| {
        let fetchable = m.url.as_deref().is_some_and(|u| !u.is_empty())
            || m.provider_media_id
                .as_deref()
                .is_some_and(|u| !u.is_empty());
        any_fetchable |= fetchable;
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
    Ok(any_fetchable)
}
