//! Read models for the product API: messages with their history, conversations, contacts.
//!
//! Every query filters by tenant, so another tenant's id reads exactly like an unknown id
//! (`not_found`), never as "forbidden". Lists use keyset pagination on the list's sort key
//! plus the id (ids are unique and time-ordered), so pages neither skip nor repeat rows when
//! new rows arrive between requests, and the cost of a page does not grow with its depth.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use switchboard_core::{Bsuid, Content, PhoneParser};

use crate::error::{Result, RouterError};
use crate::ids;
use crate::media::library::MediaLibrary;
use crate::records::contacts::{self, ContactView};
use crate::records::conversations::minute_of as conversations_minute_of;
use crate::store::entity;
use crate::store::entity::{conversations, message_status_events, messages, send_attempts};
use crate::tenancy::registry::AdapterRegistry;

/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page size a caller may ask for.
pub const MAX_PAGE_SIZE: u64 = 200;

/// Which page of a list to read.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// Rows per page: 1 to [`MAX_PAGE_SIZE`]; [`DEFAULT_PAGE_SIZE`] when absent.
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A position in a list: the sort timestamp and id of the last row read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cursor {
    at: i64,
    id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.at, self.id))
    }

    fn decode(raw: &str) -> Result<Self> {
        let bad = || RouterError::invalid("invalid_cursor", "cursor is not one this API returned");
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (at, id) = text.split_once('.').ok_or_else(bad)?;
        let at = at.parse().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 64 {
            return Err(bad());
        }
        Ok(Self {
            at,
            id: id.to_owned(),
        })
    }
}

impl PageRequest {
    fn parse(&self) -> Result<(u64, Option<Cursor>)> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(RouterError::invalid(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let cursor = self
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(Cursor::decode)
            .transpose()?;
        Ok((limit, cursor))
    }
}

/// Cuts the extra row fetched to learn whether another page exists.
fn page<R, T>(
    mut rows: Vec<R>,
    limit: u64,
    key: impl Fn(&R) -> Cursor,
    view: impl Fn(R) -> T,
) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|r| key(r).encode())
    } else {
        None
    };
    Page {
        data: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

/// A message as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    pub account_id: String,
    pub channel: String,
    /// `inbound`, `outbound` or `echo`.
    pub direction: String,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub provider_message_id: Option<String>,
    /// The canonical content (text, media in order, location, template, interactive reply,
    /// reaction, unsupported provider type…).
    pub content: serde_json::Value,
    /// The provider id of the message this one replies to.
    pub reply_to: Option<String>,
    /// The click-to-WhatsApp ad an inbound message came from (`switchboard_core::Referral`:
    /// source, headline, body, `ctwa_clid`, media), when the provider sent one.
    pub referral: Option<serde_json::Value>,
    /// How the provider says an outbound message is billed (`billable`, `category`, `model`,
    /// `type`; `price` and `currency` where the provider reports them), from whichever
    /// status carried it.
    pub pricing: Option<serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
    /// Only on a single message: every status report, in the order received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_history: Option<Vec<StatusEventView>>,
    /// Only on a single message: every delivery attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
    /// Inbound media as stored by Switchboard, in item order: id (`GET /v1/media/{id}`)
    /// and state (`pending`, `stored`, `failed` with the reason). Each `content.media[i]`
    /// also carries its `media_id` and `media_state`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<crate::media::view::MediaView>,
    /// How many provider messages (SMS segments) the text is billed as, where the channel
    /// counts so (`ChannelAdapter::text_segments`); computed from the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
}

/// One status report of a message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusEventView {
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// When the provider says it happened (when it was received, if the provider gave no time).
    pub at: String,
    pub received_at: String,
}

/// One attempt to hand a message to its provider.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptView {
    /// The channel it was sent on (a message that fell back has attempts on several).
    pub channel: String,
    pub attempt: i32,
    pub started_at: String,
    pub latency_ms: i32,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The provider exchange, secrets already redacted by the adapter.
    pub request: Option<serde_json::Value>,
    pub response: Option<serde_json::Value>,
}

/// A conversation as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConversationView {
    pub id: String,
    pub contact: ConversationContact,
    pub account_id: String,
    pub channel: String,
    pub last_message_at: String,
    pub last_inbound_at: Option<String>,
    /// Whether a free-form message may be sent now: the contact wrote within the channel's
    /// service window, or the channel has none. False when the channel is not served.
    pub service_window_open: bool,
    pub opted_out: bool,
    pub created_at: String,
}

/// The contact of a conversation, in short.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConversationContact {
    pub id: String,
    pub phone: Option<String>,
    pub profile_name: Option<String>,
}

/// Stored JSON text back to JSON; text that is not JSON stays a string.
fn json_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

pub(crate) fn message_view(row: messages::Model) -> MessageView {
    MessageView {
        content: serde_json::from_str(&row.content).unwrap_or_else(|_| serde_json::json!({})),
        id: row.id,
        conversation_id: row.conversation_id,
        account_id: row.account_id,
        channel: row.channel,
        direction: row.direction,
        status: row.status,
        error_code: row.error_code,
        error_message: row.error_message,
        provider_message_id: row.provider_message_id,
        reply_to: row.reply_to,
        referral: row.referral.as_deref().map(json_text),
        pricing: row.pricing.as_deref().map(json_text),
        created_at: ids::rfc3339(row.created_at),
        updated_at: ids::rfc3339(row.updated_at),
        status_history: None,
        attempts: None,
        media: Vec::new(),
        segments: None,
    }
}

/// The read side of the product API: messages, conversations and contacts of a tenant.
pub struct Records {
    pub(super) store: crate::store::Store,
    pub(super) adapters: AdapterRegistry,
    phones: PhoneParser,
    media: std::sync::Arc<MediaLibrary>,
}

impl Records {
    /// The tenant's message counts and costs in `range`, grouped by `group`
    /// (`GET /v1/usage`).
    ///
    /// # Errors
    /// A database error.
    pub async fn usage(
        &self,
        tenant_id: &str,
        group: super::usage::GroupBy,
        range: super::usage::Range,
    ) -> Result<Vec<super::usage::UsageRow>> {
        Ok(super::usage::sum(self.store.conn(), tenant_id, group, range).await?)
    }

    pub(crate) fn new(
        store: crate::store::Store,
        adapters: AdapterRegistry,
        phones: PhoneParser,
        media: std::sync::Arc<MediaLibrary>,
    ) -> Self {
        Self {
            store,
            adapters,
            phones,
            media,
        }
    }

    /// Adds each message's segment count, where its channel counts segments.
    pub(crate) fn count_segments(&self, views: &mut [MessageView]) {
        for v in views {
            let Some(adapter) = self.adapters.get(&v.channel) else {
                continue;
            };
            if let Ok(content) = serde_json::from_value::<Content>(v.content.clone()) {
                v.segments = adapter.text_segments(&content);
            }
        }
    }

    /// Adds the stored media of each message (one query for the whole list).
    pub(crate) async fn attach_media(
        &self,
        tenant_id: &str,
        views: &mut [MessageView],
    ) -> Result<()> {
        let ids = views.iter().map(|v| v.id.clone()).collect();
        let mut by_message = self.media.of_messages(tenant_id, ids).await?;
        for v in views {
            let Some(rows) = by_message.remove(&v.id) else {
                continue;
            };
            if let Some(items) = v.content.get_mut("media").and_then(|m| m.as_array_mut()) {
                for r in &rows {
                    if let Some(obj) = usize::try_from(r.item_index)
                        .ok()
                        .and_then(|i| items.get_mut(i))
                        .and_then(|i| i.as_object_mut())
                    {
                        obj.insert("media_id".into(), r.id.clone().into());
                        obj.insert("media_state".into(), r.state.clone().into());
                    }
                }
            }
            v.media = rows.iter().map(crate::media::view::view).collect();
        }
        Ok(())
    }
}

fn status_view(row: message_status_events::Model) -> StatusEventView {
    StatusEventView {
        status: row.status,
        error_code: row.error_code,
        error_message: row.error_message,
        at: ids::rfc3339(row.provider_timestamp.unwrap_or(row.received_at)),
        received_at: ids::rfc3339(row.received_at),
    }
}

fn attempt_view(row: send_attempts::Model, message_channel: &str) -> AttemptView {
    AttemptView {
        channel: row.channel.unwrap_or_else(|| message_channel.to_owned()),
        attempt: row.attempt,
        started_at: ids::rfc3339(row.started_at),
        latency_ms: row.latency_ms,
        outcome: row.outcome,
        http_status: row.http_status,
        error_code: row.error_code,
        error_message: row.error_message,
        request: row.request.as_deref().map(json_text),
        response: row.response.as_deref().map(json_text),
    }
}

impl Records {
    /// A message of the tenant with its status history and delivery attempts.
    ///
    /// # Errors
    /// `not_found` for an unknown id or another tenant's; a database error.
    pub async fn get_message(&self, tenant_id: &str, message_id: &str) -> Result<MessageView> {
        let db = self.store.conn();
        let row = messages::Entity::find_by_id(message_id.to_owned())
            .filter(messages::Column::TenantId.eq(tenant_id))
            .one(db)
            .await?
            .ok_or(RouterError::NotFound("message"))?;
        // History and attempts hang off the message id, already scoped by the read above.
        let history = message_status_events::Entity::find()
            .filter(message_status_events::Column::MessageId.eq(row.id.as_str()))
            .order_by_asc(message_status_events::Column::Id)
            .all(db)
            .await?;
        let attempts = send_attempts::Entity::find()
            .filter(send_attempts::Column::MessageId.eq(row.id.as_str()))
            // In the order they were made: attempt numbers start again on a fallback channel.
            .order_by_asc(send_attempts::Column::Id)
            .all(db)
            .await?;
        let channel = row.channel.clone();
        let mut view = message_view(row);
        view.status_history = Some(history.into_iter().map(status_view).collect());
        view.attempts = Some(
            attempts
                .into_iter()
                .map(|a| attempt_view(a, &channel))
                .collect(),
        );
        self.count_segments(std::slice::from_mut(&mut view));
        self.attach_media(tenant_id, std::slice::from_mut(&mut view))
            .await?;
        Ok(view)
    }

    /// The provider's id of one of the tenant's messages (what a reaction names).
    ///
    /// # Errors
    /// `not_found`; `message_not_sent` (400) while the provider has not accepted it yet; a
    /// database error.
    pub async fn provider_message_id(&self, tenant_id: &str, message_id: &str) -> Result<String> {
        messages::Entity::find_by_id(message_id.to_owned())
            .filter(messages::Column::TenantId.eq(tenant_id))
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("message"))?
            .provider_message_id
            .ok_or_else(|| {
                RouterError::invalid(
                    "message_not_sent",
                    "the message has no provider id yet; retry once it is sent",
                )
            })
    }

    /// The tenant's conversations, most recent activity first.
    ///
    /// # Errors
    /// `invalid_limit`, `invalid_cursor` (400); a database error.
    pub async fn list_conversations(
        &self,
        tenant_id: &str,
        request: &PageRequest,
    ) -> Result<Page<ConversationView>> {
        self.conversations_of(tenant_id, None, request).await
    }

    /// [`Records::list_conversations`], of the contacts `only_contacts` names when given.
    pub(crate) async fn conversations_of(
        &self,
        tenant_id: &str,
        only_contacts: Option<Vec<String>>,
        request: &PageRequest,
    ) -> Result<Page<ConversationView>> {
        use conversations::Column as C;
        let (limit, cursor) = request.parse()?;
        let db = self.store.conn();
        let mut query = conversations::Entity::find().filter(C::TenantId.eq(tenant_id));
        if let Some(contact_ids) = only_contacts {
            query = query.filter(C::ContactId.is_in(contact_ids));
        }
        if let Some(c) = cursor {
            // The minute bound lets the index (`ix_conversations_recent_minute`) start at
            // the cursor; the exact bound follows.
            query = query
                .filter(C::LastMessageMinute.lte(conversations_minute_of(c.at)))
                .filter(
                    Condition::any().add(C::LastMessageAt.lt(c.at)).add(
                        Condition::all()
                            .add(C::LastMessageAt.eq(c.at))
                            .add(C::Id.lt(c.id)),
                    ),
                );
        }
        // The minute is `last_message_at`'s, so this is (`last_message_at`, `id`) order.
        let rows = query
            .order_by_desc(C::LastMessageMinute)
            .order_by_desc(C::LastMessageAt)
            .order_by_desc(C::Id)
            .limit(limit + 1)
            .all(db)
            .await?;
        let page = page(
            rows,
            limit,
            |r| Cursor {
                at: r.last_message_at,
                id: r.id.clone(),
            },
            |r| r,
        );
        Ok(Page {
            data: self.conversation_views(tenant_id, page.data).await?,
            next_cursor: page.next_cursor,
        })
    }

    /// One of the tenant's conversations.
    ///
    /// # Errors
    /// `not_found` for an unknown id or another tenant's; a database error.
    pub async fn get_conversation(
        &self,
        tenant_id: &str,
        conversation_id: &str,
    ) -> Result<ConversationView> {
        let row = conversations::Entity::find_by_id(conversation_id.to_owned())
            .filter(conversations::Column::TenantId.eq(tenant_id))
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("conversation"))?;
        let mut views = self.conversation_views(tenant_id, vec![row]).await?;
        views.pop().ok_or(RouterError::NotFound("conversation"))
    }

    /// Conversation rows as the API shows them, with their contacts (one query).
    async fn conversation_views(
        &self,
        tenant_id: &str,
        rows: Vec<conversations::Model>,
    ) -> Result<Vec<ConversationView>> {
        let contact_ids: Vec<String> = rows.iter().map(|r| r.contact_id.clone()).collect();
        let contacts: HashMap<String, entity::contacts::Model> = if contact_ids.is_empty() {
            HashMap::new()
        } else {
            entity::contacts::Entity::find()
                .filter(entity::contacts::Column::TenantId.eq(tenant_id))
                .filter(entity::contacts::Column::Id.is_in(contact_ids))
                .all(self.store.conn())
                .await?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect()
        };
        let now = ids::now_ms();
        Ok(rows
            .into_iter()
            .map(|r| {
                let contact = contacts.get(&r.contact_id);
                ConversationView {
                    contact: ConversationContact {
                        id: r.contact_id.clone(),
                        phone: contact.and_then(|c| c.e164.clone()),
                        profile_name: contact.and_then(|c| c.profile_name.clone()),
                    },
                    service_window_open: self.adapters.get(&r.channel).is_some_and(|a| {
                        a.capabilities().service_window_open(r.last_inbound_at, now)
                    }),
                    opted_out: r.opted_out_at.is_some(),
                    last_message_at: ids::rfc3339(r.last_message_at),
                    last_inbound_at: r.last_inbound_at.map(ids::rfc3339),
                    created_at: ids::rfc3339(r.created_at),
                    id: r.id,
                    account_id: r.account_id,
                    channel: r.channel,
                }
            })
            .collect())
    }

    /// The messages of one of the tenant's conversations, oldest first.
    ///
    /// # Errors
    /// `not_found` for an unknown id or another tenant's; `invalid_limit`, `invalid_cursor`
    /// (400); a database error.
    pub async fn list_conversation_messages(
        &self,
        tenant_id: &str,
        conversation_id: &str,
        request: &PageRequest,
    ) -> Result<Page<MessageView>> {
        use messages::Column as M;
        let (limit, cursor) = request.parse()?;
        let db = self.store.conn();
        conversations::Entity::find_by_id(conversation_id.to_owned())
            .filter(conversations::Column::TenantId.eq(tenant_id))
            .one(db)
            .await?
            .ok_or(RouterError::NotFound("conversation"))?;
        let mut query = messages::Entity::find()
            .filter(M::TenantId.eq(tenant_id))
            .filter(M::ConversationId.eq(conversation_id));
        if let Some(c) = cursor {
            query = query.filter(
                Condition::any().add(M::CreatedAt.gt(c.at)).add(
                    Condition::all()
                        .add(M::CreatedAt.eq(c.at))
                        .add(M::Id.gt(c.id)),
                ),
            );
        }
        let rows = query
            .order_by_asc(M::CreatedAt)
            .order_by_asc(M::Id)
            .limit(limit + 1)
            .all(db)
            .await?;
        let mut messages = page(
            rows,
            limit,
            |r| Cursor {
                at: r.created_at,
                id: r.id.clone(),
            },
            message_view,
        );
        self.count_segments(&mut messages.data);
        self.attach_media(tenant_id, &mut messages.data).await?;
        Ok(messages)
    }

    /// The tenant's contact known by `phone_or_bsuid`, in any spelling of the number
    /// (`+31 6 1234 5678`, `whatsapp:+31612345678`, `0031612345678`, `31612345678`, or a
    /// national format when a default region is configured).
    ///
    /// # Errors
    /// `invalid_phone` (400) when it is neither a number nor a BSUID; `not_found`; a
    /// database error.
    pub async fn find_contact(&self, tenant_id: &str, phone_or_bsuid: &str) -> Result<ContactView> {
        let db = self.store.conn();
        let (kind, value) = if Bsuid::looks_like(phone_or_bsuid) {
            let bsuid = Bsuid::parse(phone_or_bsuid)
                .map_err(|e| RouterError::invalid("invalid_phone", e.to_string()))?;
            (contacts::BSUID, bsuid.to_string())
        } else {
            let phone = self
                .phones
                .parse(phone_or_bsuid)
                .map_err(|e| RouterError::invalid("invalid_phone", e.to_string()))?;
            (contacts::PHONE, phone.to_string())
        };
        let contact_id = contacts::find_by_identity(db, tenant_id, kind, &value)
            .await?
            .ok_or(RouterError::NotFound("contact"))?;
        contacts::view(db, tenant_id, &contact_id)
            .await?
            .ok_or(RouterError::NotFound("contact"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            at: 1_763_600_000_123,
            id: "cnv_0193a6f2c1d07c3e9b5f1d2a3b4c5d6e".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("no-dot"),
            &URL_SAFE_NO_PAD.encode("x.cnv_1"),
        ] {
            assert_eq!(
                Cursor::decode(bad).unwrap_err().code(),
                "invalid_cursor",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        for limit in [0, MAX_PAGE_SIZE + 1] {
            let req = PageRequest {
                limit: Some(limit),
                cursor: None,
            };
            assert_eq!(req.parse().unwrap_err().code(), "invalid_limit");
        }
        assert_eq!(PageRequest::default().parse().unwrap().0, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn a_page_with_more_rows_than_the_limit_names_its_last_row() {
        let rows: Vec<(i64, String)> = (0..3).map(|i| (i, format!("id{i}"))).collect();
        let p = page(
            rows.clone(),
            2,
            |r| Cursor {
                at: r.0,
                id: r.1.clone(),
            },
            |r| r.1,
        );
        assert_eq!(p.data, vec!["id0", "id1"]);
        assert_eq!(
            Cursor::decode(p.next_cursor.as_deref().unwrap())
                .unwrap()
                .id,
            "id1"
        );
        let last = page(
            rows,
            3,
            |r| Cursor {
                at: r.0,
                id: r.1.clone(),
            },
            |r| r.1,
        );
        assert!(last.next_cursor.is_none());
    }
}
