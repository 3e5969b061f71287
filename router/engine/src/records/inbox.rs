//! The inbox people work from (the operator console): conversations with their last
//! message and unread count, search by name or number, and what people have seen.
//!
//! "Seen" is the tenant's, not one person's: a team answers a conversation together, so
//! once anyone opened it, its messages up to then are no longer unread for anyone.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};

use super::queries::{ConversationView, MessageView, Page, PageRequest, Records, message_view};
use crate::error::{Result, RouterError};
use crate::ids::now_ms;
use crate::store::entity::{console_seen, contacts, conversations, messages};

/// Contacts a search looks among at most: a search that matches more is too broad to
/// show in full, and the newest conversations of the first ones found come first anyway.
const SEARCH_CONTACTS: u64 = 1_000;

/// A conversation as the inbox lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxEntry {
    pub conversation: ConversationView,
    /// The newest message, for the preview line.
    pub last_message: Option<MessageView>,
    /// Inbound messages since anyone last opened the conversation.
    pub unread: u64,
}

/// `%text%` for LIKE, with LIKE's own characters taken literally (escaped with `\`).
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `n` placeholders from `first` on, in the backend's spelling.
fn placeholders(backend: DbBackend, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(FromQueryResult)]
struct UnreadCount {
    conversation_id: String,
    unread: i64,
}

impl Records {
    /// The tenant's conversations for the inbox, most recent activity first; with
    /// `search`, only those whose contact's name contains it (in any case) or whose number
    /// contains its digits.
    ///
    /// # Errors
    /// `invalid_limit`, `invalid_cursor` (400); a database error.
    pub async fn inbox(
        &self,
        tenant_id: &str,
        search: Option<&str>,
        request: &PageRequest,
    ) -> Result<Page<InboxEntry>> {
        let only_contacts = match search.map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => Some(self.search_contacts(tenant_id, text).await?),
            None => None,
        };
        let conversations = match only_contacts {
            Some(ids) if ids.is_empty() => Page {
                data: Vec::new(),
                next_cursor: None,
            },
            only => self.conversations_of(tenant_id, only, request).await?,
        };
        let ids: Vec<String> = conversations.data.iter().map(|c| c.id.clone()).collect();
        let mut last = self.last_messages(tenant_id, &ids).await?;
        let unread = self.unread_counts(tenant_id, &ids).await?;
        Ok(Page {
            data: conversations
                .data
                .into_iter()
                .map(|conversation| InboxEntry {
                    last_message: last.remove(&conversation.id),
                    unread: unread.get(&conversation.id).copied().unwrap_or(0),
                    conversation,
                })
                .collect(),
            next_cursor: conversations.next_cursor,
        })
    }

    /// Ids of the tenant's contacts whose name contains `text` or whose number contains
    /// its digits (three at least, so "+1" does not match everyone).
    async fn search_contacts(&self, tenant_id: &str, text: &str) -> Result<Vec<String>> {
        let name = contains_pattern(&text.to_lowercase());
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let mut matches = Condition::any().add(
            Expr::expr(Func::lower(Expr::col(contacts::Column::ProfileName)))
                .like(LikeExpr::new(name).escape('\\')),
        );
        if digits.len() >= 3 {
            matches = matches.add(contacts::Column::E164.like(contains_pattern(&digits)));
        }
        Ok(contacts::Entity::find()
            .select_only()
            .column(contacts::Column::Id)
            .filter(contacts::Column::TenantId.eq(tenant_id))
            .filter(matches)
            .order_by_desc(contacts::Column::UpdatedAt)
            .limit(SEARCH_CONTACTS)
            .into_tuple::<String>()
            .all(self.store.conn())
            .await?)
    }

    /// The newest message of each conversation (one query; ids sort by creation).
    async fn last_messages(
        &self,
        tenant_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, MessageView>> {
        if conversation_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let db = self.store.conn();
        let backend = db.get_database_backend();
        let sql = format!(
            "SELECT * FROM messages WHERE tenant_id = {t} AND id IN (SELECT (SELECT m.id \
             FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1) \
             FROM conversations c WHERE c.tenant_id = {t2} AND c.id IN ({ids}))",
            t = placeholders(backend, 1, 1),
            t2 = placeholders(backend, 2, 1),
            ids = placeholders(backend, 3, conversation_ids.len()),
        );
        let values = [tenant_id.to_owned(), tenant_id.to_owned()]
            .into_iter()
            .chain(conversation_ids.iter().cloned())
            .map(Into::into);
        let rows = messages::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
            .all(db)
            .await?;
        let mut views: Vec<MessageView> = rows.into_iter().map(message_view).collect();
        self.count_segments(&mut views);
        self.attach_media(tenant_id, &mut views).await?;
        Ok(views
            .into_iter()
            .map(|v| (v.conversation_id.clone(), v))
            .collect())
    }

    /// Inbound messages after each conversation's last seen message (one query).
    async fn unread_counts(
        &self,
        tenant_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, u64>> {
        if conversation_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let db = self.store.conn();
        let backend = db.get_database_backend();
        let sql = format!(
            "SELECT m.conversation_id AS conversation_id, COUNT(*) AS unread FROM messages m \
             LEFT JOIN console_seen s ON s.conversation_id = m.conversation_id \
             WHERE m.tenant_id = {t} AND m.conversation_id IN ({ids}) \
             AND m.direction = 'inbound' \
             AND (s.seen_message_id IS NULL OR m.id > s.seen_message_id) \
             GROUP BY m.conversation_id",
            t = placeholders(backend, 1, 1),
            ids = placeholders(backend, 2, conversation_ids.len()),
        );
        let values = std::iter::once(tenant_id.to_owned())
            .chain(conversation_ids.iter().cloned())
            .map(Into::into);
        let rows =
            UnreadCount::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
                .all(db)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.conversation_id, u64::try_from(r.unread).unwrap_or(0)))
            .collect())
    }

    /// The newest `limit` messages of one of the tenant's conversations (of those before the
    /// message `before`, when given), oldest first (what a thread shows), and whether older
    /// ones exist.
    ///
    /// # Errors
    /// `not_found` for an unknown id or another tenant's; a database error.
    pub async fn recent_messages(
        &self,
        tenant_id: &str,
        conversation_id: &str,
        before: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<MessageView>, bool)> {
        let db = self.store.conn();
        conversations::Entity::find_by_id(conversation_id.to_owned())
            .filter(conversations::Column::TenantId.eq(tenant_id))
            .one(db)
            .await?
            .ok_or(RouterError::NotFound("conversation"))?;
        let mut rows = messages::Entity::find()
            .filter(messages::Column::TenantId.eq(tenant_id))
            .filter(messages::Column::ConversationId.eq(conversation_id))
            .apply_if(before, |q, before| {
                q.filter(messages::Column::Id.lt(before.to_owned()))
            })
            .order_by_desc(messages::Column::Id)
            .limit(limit + 1)
            .all(db)
            .await?;
        let older = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.reverse();
        let mut views: Vec<MessageView> = rows.into_iter().map(message_view).collect();
        self.count_segments(&mut views);
        self.attach_media(tenant_id, &mut views).await?;
        Ok((views, older))
    }

    /// Records that people have now seen the conversation up to its newest message.
    /// Answers the newest inbound message that was unread until now, if any: the one to
    /// mark read at the provider (a read receipt covers every earlier message too).
    ///
    /// # Errors
    /// `not_found` for an unknown id or another tenant's; a database error.
    pub async fn mark_seen(
        &self,
        tenant_id: &str,
        conversation_id: &str,
    ) -> Result<Option<String>> {
        let db = self.store.conn();
        conversations::Entity::find_by_id(conversation_id.to_owned())
            .filter(conversations::Column::TenantId.eq(tenant_id))
            .one(db)
            .await?
            .ok_or(RouterError::NotFound("conversation"))?;
        let newest = |inbound_only: bool, after: Option<String>| {
            let mut query = messages::Entity::find()
                .select_only()
                .column(messages::Column::Id)
                .filter(messages::Column::ConversationId.eq(conversation_id));
            if inbound_only {
                query = query.filter(messages::Column::Direction.eq("inbound"));
            }
            if let Some(after) = after {
                query = query.filter(messages::Column::Id.gt(after));
            }
            query
                .order_by_desc(messages::Column::Id)
                .limit(1)
                .into_tuple::<String>()
                .one(db)
        };
        let Some(newest_message) = newest(false, None).await? else {
            return Ok(None);
        };
        let seen = console_seen::Entity::find_by_id(conversation_id.to_owned())
            .one(db)
            .await?
            .map(|s| s.seen_message_id);
        if seen.as_deref() == Some(newest_message.as_str()) {
            return Ok(None);
        }
        let unread_inbound = newest(true, seen).await?;
        console_seen::Entity::insert(console_seen::ActiveModel {
            conversation_id: Set(conversation_id.to_owned()),
            tenant_id: Set(tenant_id.to_owned()),
            seen_message_id: Set(newest_message),
            seen_at: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::column(console_seen::Column::ConversationId)
                .update_columns([
                    console_seen::Column::SeenMessageId,
                    console_seen::Column::SeenAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(self.store.write_conn())
        .await?;
        Ok(unread_inbound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_take_like_wildcards_literally() {
        assert_eq!(contains_pattern("ana"), "%ana%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn placeholders_follow_the_backend() {
        assert_eq!(placeholders(DbBackend::Postgres, 2, 3), "$2, $3, $4");
        assert_eq!(placeholders(DbBackend::Sqlite, 2, 3), "?, ?, ?");
    }
}
