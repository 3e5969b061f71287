//! Media items as the API shows them.

use serde::Serialize;
use switchboard_core::MediaKind;

use crate::ids;
use crate::store::entity::media;

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

pub(crate) fn kind_of(row: &media::Model) -> MediaKind {
    MediaKind::parse(&row.kind).unwrap_or(MediaKind::Document)
}
