//! `send()`: the product's entry point. Validate and normalize, pick the sender, enforce the
//! channel's service window and opt-outs, then write the message and its outbox entry in one
//! transaction (`accept.rs`; on SQLite shared with the sends queued beside it,
//! `send_commit.rs`) and return once it committed; the delivery engine does the rest.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use switchboard_core::{
    Bsuid, Capabilities, ChannelAdapter, ContactCard, ContactIdentity, Content, ErrorKind,
    PhoneNumber, PhoneParser, TemplateButton,
};
use tokio::sync::Notify;

use crate::error::{Result, RouterError};
use crate::events::EventBus;
use crate::ids;
use crate::media::library::MediaLibrary;
pub use crate::outbound::accept::TEMPLATE_UNCHECKED;
use crate::outbound::accept::{AcceptRules, Acceptance, Resolved, Written};
use crate::outbound::request::request_hash;
pub use crate::outbound::request::{FallbackTarget, SendAccepted, SendRequest};
use crate::outbound::send_commit::{SendCommit, SendCommitStats};
use crate::records::contacts;
use crate::store::Store;
use crate::store::entity;
use crate::store::entity::{channel_accounts, messages};
use crate::templates::{SendCheck, Templates};
use crate::tenancy::accounts::{Account, Accounts};
use crate::tenancy::registry::AdapterRegistry;

/// Accepts messages for delivery: `send()`.
pub struct Sending {
    store: Store,
    adapters: AdapterRegistry,
    accounts: Arc<Accounts>,
    phones: PhoneParser,
    media: Arc<MediaLibrary>,
    events: Arc<EventBus>,
    /// Wakes the delivery engine.
    wake: Arc<Notify>,
    /// The catalog a template send is checked against.
    templates: Arc<Templates>,
    /// Writes and commits what a send accepted.
    commit: SendCommit,
}

impl Sending {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Store,
        adapters: AdapterRegistry,
        accounts: Arc<Accounts>,
        phones: PhoneParser,
        media: Arc<MediaLibrary>,
        events: Arc<EventBus>,
        fallback_window: Duration,
        wake: Arc<Notify>,
        templates: Arc<Templates>,
    ) -> Self {
        let rules = AcceptRules {
            adapters: adapters.clone(),
            fallback_window,
        };
        Self {
            commit: SendCommit::new(store.clone(), rules),
            store,
            adapters,
            accounts,
            phones,
            media,
            events,
            wake,
            templates,
        }
    }

    /// How sends' group commit went (SQLite).
    pub fn commit_stats(&self) -> &SendCommitStats {
        self.commit.stats()
    }

    /// Accepts a message for delivery.
    ///
    /// # Errors
    /// 400-class [`RouterError::Invalid`] for bad input, `OutsideServiceWindow` and
    /// `OptedOut` (422), `not_found` for an unknown `from`/`reply_to`, a database error.
    pub async fn send(&self, tenant_id: &str, mut request: SendRequest) -> Result<SendAccepted> {
        refuse_nul_chars(&request)?;
        check_content(&request.content, !request.fallback.is_empty())?;
        let recipient = self.recipient(tenant_id, &request.to).await?;
        // The request as the client sent it, hashed once: what is stored with the key and
        // what a replay is compared with (media named by id are resolved further down).
        let hash = request
            .idempotency_key
            .as_ref()
            .map(|_| request_hash(&request, &recipient));
        if let (Some(key), Some(hash)) = (&request.idempotency_key, &hash) {
            if key.is_empty() || key.len() > 200 || key.contains('\0') {
                return Err(RouterError::invalid(
                    "invalid_idempotency_key",
                    "idempotency_key must have 1 to 200 characters, none of them U+0000",
                ));
            }
            if let Some(existing) = self.find_idempotent(tenant_id, key, hash).await? {
                return Ok(existing);
            }
        }
        let account = self.choose_sender(tenant_id, &request, &recipient).await?;
        let adapter = self
            .adapters
            .get(&account.channel)
            .ok_or(RouterError::NotFound("channel"))?
            .clone();
        // A template send is checked against the sending account's catalog; an account
        // whose catalog was never synced sends unchecked, and the message's history says so.
        let unchecked_template = match &request.content.template {
            Some(template) => {
                self.templates
                    .check_send(&account.ctx.account_id, template)
                    .await?
                    == SendCheck::NeverSynced
            }
            None => false,
        };
        self.media
            .resolve_media_refs(tenant_id, adapter.as_ref(), &mut request.content)
            .await?;
        // With fallback channels, the request's text is the plain alternative for the
        // channels that cannot carry the rest; beside another kind than media (a template,
        // which carries its own text, a location, cards, an interactive message, a reaction)
        // it goes out only there.
        let mut first = request.content.clone();
        let beside_another_kind = first.template.is_some()
            || first.location.is_some()
            || !first.contacts.is_empty()
            || first.interactive_message.is_some()
            || first.reaction.is_some();
        let alternative = if request.fallback.is_empty() {
            None
        } else if beside_another_kind {
            first.text.take()
        } else {
            first.text.clone()
        };
        let caps = adapter.capabilities();
        let parts = split(&first, caps, &account.channel)?;
        for part in &parts {
            provider_accepts(adapter.as_ref(), part, &account.channel)?;
        }
        if request.reply_to.is_some() && !caps.reply_context {
            return Err(RouterError::UnsupportedContent(format!(
                "{} cannot carry reply_to (a reply's context)",
                account.channel
            )));
        }
        if recipient.phones().next().is_none() && !caps.send_to_bsuid {
            return Err(RouterError::UnsupportedContent(format!(
                "{} cannot send to a BSUID alone: this recipient has no known phone number",
                account.channel
            )));
        }
        let targets = self
            .fallback_targets(
                tenant_id,
                &request,
                &recipient,
                &account,
                &parts,
                alternative,
            )
            .await?;

        let first_part = parts.first().cloned();
        let idempotency = request.idempotency_key.clone().zip(hash.clone());
        let acceptance = Acceptance {
            tenant_id: tenant_id.to_owned(),
            request,
            request_hash: hash,
            recipient,
            first: account,
            parts,
            targets,
            unchecked_template,
        };
        let mut accepted = match self.commit.write(acceptance).await? {
            Written::Accepted(accepted, events) => {
                self.wake.notify_one();
                self.events.publish(events);
                accepted
            }
            Written::KeyTaken => {
                // A concurrent request with the same key won: answer with its message.
                let (key, hash) = idempotency.unwrap_or_default();
                self.find_idempotent(tenant_id, &key, &hash)
                    .await?
                    .ok_or_else(|| RouterError::Conflict {
                        code: "idempotency_conflict",
                        message: "a concurrent request with this idempotency key failed".into(),
                    })?
            }
        };
        // Counted on the channel that took the message (a fallback target when the first
        // channel's window was closed).
        accepted.segments = self
            .adapters
            .get(&accepted.channel)
            .and_then(|a| first_part.as_ref().and_then(|p| a.text_segments(p)));
        Ok(accepted)
    }

    /// Resolves `request.fallback`: each target's account (an unknown channel or a bad
    /// `from` is a 400, as for the first channel) and what each part sends on it. A part the
    /// target's channel cannot carry sends `alternative` (the request's plain text) there,
    /// when given, and is refused (`422 unsupported_content`) when not.
    async fn fallback_targets(
        &self,
        tenant_id: &str,
        request: &SendRequest,
        recipient: &ContactIdentity,
        first: &Account,
        parts: &[Content],
        alternative: Option<String>,
    ) -> Result<Vec<Resolved>> {
        const MAX_TARGETS: usize = 8;
        if request.fallback.len() > MAX_TARGETS {
            return Err(RouterError::invalid(
                "invalid_fallback",
                format!("fallback names at most {MAX_TARGETS} channels"),
            ));
        }
        let mut resolved: Vec<Resolved> = Vec::with_capacity(request.fallback.len());
        for target in &request.fallback {
            if target.channel.trim().is_empty() {
                return Err(RouterError::invalid(
                    "invalid_fallback",
                    "each fallback target names its channel",
                ));
            }
            let as_request = SendRequest {
                channel: Some(target.channel.clone()),
                from: target.from.clone(),
                ..SendRequest::default()
            };
            let account = self
                .choose_sender(tenant_id, &as_request, recipient)
                .await?;
            if account.ctx.account_id == first.ctx.account_id
                || resolved
                    .iter()
                    .any(|r| r.account.ctx.account_id == account.ctx.account_id)
            {
                return Err(RouterError::invalid(
                    "invalid_fallback",
                    format!(
                        "fallback names the sender {} on {} twice (or the first sender again)",
                        account.ctx.address.as_str(),
                        account.channel
                    ),
                ));
            }
            let adapter = self
                .adapters
                .get(&account.channel)
                .ok_or(RouterError::NotFound("channel"))?;
            let caps = adapter.capabilities();
            let mut contents = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                let carried = split(part, caps, &account.channel).is_ok_and(|p| p.len() == 1)
                    && adapter.check_content(part).is_ok();
                if carried {
                    contents.push(None);
                    continue;
                }
                match alternative.as_ref().filter(|_| i == 0) {
                    Some(text) => {
                        let text = Content::text(text.clone());
                        split(&text, caps, &account.channel)?;
                        contents.push(Some(text));
                    }
                    None => {
                        return Err(RouterError::UnsupportedContent(format!(
                            "the fallback channel {} cannot carry this message's {}: give `text` as a plain alternative, or leave {} out of `fallback`",
                            account.channel,
                            unsupported_part(part, caps),
                            account.channel
                        )));
                    }
                }
            }
            resolved.push(Resolved { account, contents });
        }
        Ok(resolved)
    }

    /// The message first sent with idempotency key `key`, when its request had the hash
    /// `hash` (see [`request_hash`]).
    ///
    /// # Errors
    /// `409 idempotency_key_reused` when the key was first used for another request; a
    /// database error.
    async fn find_idempotent(
        &self,
        tenant_id: &str,
        key: &str,
        hash: &str,
    ) -> Result<Option<SendAccepted>> {
        let db = self.store.conn();
        let Some(first) = messages::Entity::find()
            .filter(messages::Column::TenantId.eq(tenant_id))
            .filter(messages::Column::IdempotencyKey.eq(key))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        // Messages stored before requests were hashed cannot be compared: taken as the same.
        if first.request_hash.as_deref().is_some_and(|h| h != hash) {
            return Err(RouterError::Conflict {
                code: "idempotency_key_reused",
                message: "this idempotency key was used for a different request".into(),
            });
        }
        // Parts were written in the same transaction right after the first: the same
        // conversation and millisecond narrow the search to the thread index. Since
        // `m20261211_000001` each names its first message; before, a send of that
        // millisecond without a key could not be told from a part.
        let mut parts = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(first.conversation_id.as_str()))
            .filter(messages::Column::CreatedAt.eq(first.created_at))
            .filter(messages::Column::Direction.eq("outbound"))
            .filter(messages::Column::Id.gt(first.id.as_str()))
            .filter(messages::Column::IdempotencyKey.is_null());
        parts = match &first.part_of {
            Some(_) => parts.filter(messages::Column::PartOf.eq(first.id.as_str())),
            None => parts,
        };
        let parts = parts.order_by_asc(messages::Column::Id).all(db).await?;
        Ok(Some(SendAccepted {
            id: first.id,
            status: first.status,
            channel: first.channel,
            conversation_id: first.conversation_id,
            parts: parts.into_iter().map(|m| m.id).collect(),
            segments: None,
        }))
    }

    /// Who `to` names: a contact id (`ctc_…`, by its number when it has one, else its
    /// BSUID), a BSUID, or a phone number in any spelling.
    async fn recipient(&self, tenant_id: &str, to: &str) -> Result<ContactIdentity> {
        if to
            .strip_prefix(ids::CONTACT)
            .is_some_and(|rest| rest.starts_with('_'))
        {
            let identity = self
                .contact_identity(tenant_id, to)
                .await?
                .ok_or(RouterError::NotFound("contact"))?;
            if !identity.is_known() {
                return Err(RouterError::invalid(
                    "invalid_recipient",
                    "this contact has neither a phone number nor a BSUID to send to",
                ));
            }
            return Ok(identity);
        }
        if Bsuid::looks_like(to) {
            let bsuid = Bsuid::parse(to)
                .map_err(|e| RouterError::invalid("invalid_recipient", e.to_string()))?;
            // A person known by number too is sent to by the number.
            let known = contacts::find_by_identity(
                self.store.conn(),
                tenant_id,
                contacts::BSUID,
                bsuid.as_str(),
            )
            .await?;
            if let Some(contact_id) = known
                && let Some(identity) = self.contact_identity(tenant_id, &contact_id).await?
            {
                return Ok(ContactIdentity {
                    bsuid: Some(bsuid),
                    ..identity
                });
            }
            return Ok(ContactIdentity {
                bsuid: Some(bsuid),
                ..Default::default()
            });
        }
        let phone = self
            .phones
            .parse(to)
            .map_err(|e| RouterError::invalid("invalid_recipient", e.to_string()))?;
        Ok(ContactIdentity::from_phone(phone))
    }

    /// The stored number and BSUID of one of the tenant's contacts.
    async fn contact_identity(
        &self,
        tenant_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactIdentity>> {
        let contact = entity::contacts::Entity::find_by_id(contact_id.to_owned())
            .filter(entity::contacts::Column::TenantId.eq(tenant_id))
            .one(self.store.conn())
            .await?;
        Ok(contact.map(|c| ContactIdentity {
            phone: c.e164.as_deref().and_then(|p| PhoneNumber::parse(p).ok()),
            bsuid: c.bsuid.as_deref().and_then(|b| Bsuid::parse(b).ok()),
            ..ContactIdentity::default()
        }))
    }

    /// The sending account: `from` (and `channel`) when given, otherwise the account the
    /// contact last wrote to, otherwise the tenant's only active account on the channel.
    async fn choose_sender(
        &self,
        tenant_id: &str,
        request: &SendRequest,
        recipient: &ContactIdentity,
    ) -> Result<std::sync::Arc<Account>> {
        let db = self.store.conn();
        let mut query = channel_accounts::Entity::find()
            .filter(channel_accounts::Column::TenantId.eq(tenant_id))
            .filter(channel_accounts::Column::Active.eq(true));
        if let Some(channel) = &request.channel {
            if self.adapters.get(channel).is_none() {
                return Err(RouterError::invalid(
                    "unknown_channel",
                    format!("no channel named {channel:?}"),
                ));
            }
            query = query.filter(channel_accounts::Column::Channel.eq(channel.as_str()));
        }
        if let Some(from) = &request.from {
            let from = self
                .phones
                .parse(from)
                .map_err(|e| RouterError::invalid("invalid_from", e.to_string()))?;
            query = query.filter(channel_accounts::Column::Address.eq(from.as_str()));
        }
        let candidates = query
            .order_by_asc(channel_accounts::Column::Id)
            .all(db)
            .await?;
        if candidates.is_empty() {
            return Err(RouterError::invalid(
                "no_sender",
                "no active account matches: connect one, or check `channel` and `from`",
            ));
        }
        let chosen = if candidates.len() == 1 {
            candidates[0].id.clone()
        } else {
            self.last_written_to(db, tenant_id, recipient, &candidates)
                .await?
                .ok_or_else(|| RouterError::invalid("sender_ambiguous", "several accounts could send this and the contact has written to none of them: give `channel` or `from`"))?
        };
        self.accounts.by_id(&chosen).await
    }

    async fn last_written_to<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: &str,
        recipient: &ContactIdentity,
        candidates: &[channel_accounts::Model],
    ) -> Result<Option<String>> {
        let mut contact = None;
        for phone in recipient.phones() {
            contact =
                contacts::find_by_identity(db, tenant_id, contacts::PHONE, phone.as_str()).await?;
            if contact.is_some() {
                break;
            }
        }
        if contact.is_none()
            && let Some(b) = &recipient.bsuid
        {
            contact =
                contacts::find_by_identity(db, tenant_id, contacts::BSUID, b.as_str()).await?;
        }
        let Some(contact_id) = contact else {
            return Ok(None);
        };
        let conv = entity::conversations::Entity::find()
            .filter(entity::conversations::Column::ContactId.eq(contact_id))
            .filter(
                entity::conversations::Column::AccountId
                    .is_in(candidates.iter().map(|c| c.id.clone())),
            )
            .filter(entity::conversations::Column::LastInboundAt.is_not_null())
            .order_by_desc(entity::conversations::Column::LastInboundAt)
            .one(db)
            .await?;
        Ok(conv.map(|c| c.account_id))
    }
}

/// Validates content against the channel and splits it when the channel carries fewer media
/// items per message than were given: the first message keeps the text and the first items.
fn split(content: &Content, caps: &Capabilities, channel: &str) -> Result<Vec<Content>> {
    if content.is_empty() {
        return Err(RouterError::invalid(
            "empty_message",
            "a message needs text, media, a location, contacts, a reaction, an interactive message or a template",
        ));
    }
    if content.text.as_ref().is_some_and(|t| t.trim().is_empty()) {
        return Err(RouterError::invalid(
            "empty_text",
            "text is empty or only whitespace: leave it out or give it a visible character",
        ));
    }
    if let Some(text) = &content.text
        && text.chars().count() > caps.max_text_chars
    {
        return Err(RouterError::invalid(
            "text_too_long",
            format!(
                "text has {} characters; this channel allows {}",
                text.chars().count(),
                caps.max_text_chars
            ),
        ));
    }
    // Kinds the channel cannot carry; a media list longer than one message carries is
    // split below, not refused.
    let mut one_message = content.clone();
    one_message
        .media
        .truncate(caps.max_media_per_message.max(1));
    if let Some(part) = caps.unsupported_part(&one_message) {
        return Err(RouterError::UnsupportedContent(format!(
            "{channel} cannot carry this message's {part}"
        )));
    }
    for m in &content.media {
        if m.url.is_none() && m.provider_media_id.is_none() && m.media_id.is_none() {
            return Err(RouterError::invalid(
                "invalid_media",
                "each media item needs a url",
            ));
        }
        if m.caption
            .as_ref()
            .is_some_and(|c| c.chars().count() > caps.max_caption_chars)
        {
            return Err(RouterError::invalid(
                "caption_too_long",
                format!(
                    "a caption may have at most {} characters",
                    caps.max_caption_chars
                ),
            ));
        }
    }
    let per = caps.max_media_per_message.max(1);
    if content.media.len() <= per {
        return Ok(vec![content.clone()]);
    }
    let mut chunks = content.media.chunks(per);
    let mut first = content.clone();
    first.media = chunks.next().map(<[_]>::to_vec).unwrap_or_default();
    let mut parts = vec![first];
    parts.extend(chunks.map(|c| Content {
        media: c.to_vec(),
        ..Content::default()
    }));
    Ok(parts)
}

/// Checks what a message says, whatever the channel: one kind of content (text and media
/// go together; with fallback channels, text beside another kind is the plain
/// alternative for the channels that cannot carry that kind), interactive messages within WhatsApp's limits,
/// contact cards with a name, template buttons of a known kind.
fn check_content(content: &Content, has_fallback: bool) -> Result<()> {
    let kinds = [
        (
            "text or media",
            content.text.is_some() || !content.media.is_empty(),
        ),
        ("location", content.location.is_some()),
        ("contacts", !content.contacts.is_empty()),
        ("reaction", content.reaction.is_some()),
        ("interactive", content.interactive_message.is_some()),
        ("template", content.template.is_some()),
    ];
    let given: Vec<&str> = kinds
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect();
    let text_as_alternative =
        given.len() == 2 && given[0] == "text or media" && content.media.is_empty() && has_fallback;
    if given.len() > 1 && !text_as_alternative {
        return Err(RouterError::invalid(
            "conflicting_content",
            format!(
                "a message carries one kind of content; this one has {}",
                given.join(" and ")
            ),
        ));
    }
    if let Some(interactive) = &content.interactive_message {
        interactive
            .check()
            .map_err(|why| RouterError::invalid("invalid_interactive", why))?;
    }
    check_contacts(&content.contacts)?;
    if let Some(template) = &content.template {
        if template.name.trim().is_empty() {
            return Err(RouterError::invalid(
                "invalid_template",
                "the template needs a name",
            ));
        }
        let mut indexes = std::collections::HashSet::new();
        for b in &template.buttons {
            if !TemplateButton::SUB_TYPES.contains(&b.sub_type.as_str()) {
                return Err(RouterError::invalid(
                    "invalid_template",
                    format!(
                        "template button type {:?} is not quick_reply, url or copy_code",
                        b.sub_type
                    ),
                ));
            }
            if b.index > 9 || !indexes.insert(b.index) {
                return Err(RouterError::invalid(
                    "invalid_template",
                    format!(
                        "template button index {} is not a distinct position from 0 to 9",
                        b.index
                    ),
                ));
            }
            if b.value.trim().is_empty() {
                return Err(RouterError::invalid(
                    "invalid_template",
                    format!("template button {} needs its payload or text", b.index),
                ));
            }
        }
    }
    Ok(())
}

fn check_contacts(cards: &[ContactCard]) -> Result<()> {
    ContactCard::check_all(cards).map_err(|why| RouterError::invalid("invalid_contacts", why))
}

/// What the channel's provider would refuse in one message beyond its capabilities
/// (`ChannelAdapter::check_content`: Twilio's `ContentVariables` rules, a Flow it cannot
/// name): `400 invalid_content`, or `422 unsupported_content` for what it cannot carry.
fn provider_accepts(adapter: &dyn ChannelAdapter, content: &Content, channel: &str) -> Result<()> {
    adapter.check_content(content).map_err(|e| match e.kind() {
        ErrorKind::Unsupported => RouterError::UnsupportedContent(e.message().to_owned()),
        _ => RouterError::invalid(
            "invalid_content",
            format!("{channel} would refuse this message: {}", e.message()),
        ),
    })
}

/// The first part of `content` that a channel with `caps` cannot carry, as the API names it.
fn unsupported_part(content: &Content, caps: &Capabilities) -> String {
    caps.unsupported_part(content)
        .unwrap_or_else(|| "content".into())
}

/// Refuses a request with U+0000 in any of its texts: PostgreSQL's `text` cannot hold it,
/// and a provider would not deliver it; the same answer on every backend.
fn refuse_nul_chars(request: &SendRequest) -> Result<()> {
    let named = [
        Some(request.to.as_str()),
        request.channel.as_deref(),
        request.from.as_deref(),
        request.reply_to.as_deref(),
    ];
    let in_fallback = request
        .fallback
        .iter()
        .flat_map(|t| [Some(t.channel.as_str()), t.from.as_deref()])
        .flatten();
    let in_content =
        serde_json::to_string(&request.content).map_or(true, |json| json.contains("\\u0000"));
    if in_content
        || named
            .into_iter()
            .flatten()
            .chain(in_fallback)
            .any(|s| s.contains('\0'))
    {
        return Err(RouterError::invalid(
            "invalid_text",
            "text must not contain U+0000 (NUL)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::{MediaItem, MediaKind};

    fn caps() -> Capabilities {
        switchboard_core::testing::FakeAdapter::new()
            .capabilities()
            .clone()
    }

    #[test]
    fn media_beyond_the_channel_limit_become_further_messages_in_order() {
        let content = Content {
            text: Some("three photos".into()),
            media: (0..3)
                .map(|i| MediaItem::from_url(MediaKind::Image, format!("https://x/{i}.jpg")))
                .collect(),
            ..Default::default()
        };
        let parts = split(&content, &caps(), "fake").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].text.as_deref(), Some("three photos"));
        assert_eq!(parts[0].media[0].url.as_deref(), Some("https://x/0.jpg"));
        assert_eq!(parts[2].media[0].url.as_deref(), Some("https://x/2.jpg"));
        assert!(parts[1].text.is_none());
    }

    #[test]
    fn the_part_a_channel_cannot_carry_is_named() {
        let sms = Capabilities {
            templates: false,
            locations: false,
            media_kinds: &[MediaKind::Image],
            ..caps()
        };
        let template = Content {
            template: Some(switchboard_core::Template {
                name: "order_update".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(unsupported_part(&template, &sms), "template");
        let video = Content {
            media: vec![MediaItem::from_url(MediaKind::Video, "https://x/v.mp4")],
            ..Default::default()
        };
        assert_eq!(unsupported_part(&video, &sms), "video media");
        let two = Content {
            media: (0..2)
                .map(|i| MediaItem::from_url(MediaKind::Image, format!("https://x/{i}.jpg")))
                .collect(),
            ..Default::default()
        };
        assert_eq!(unsupported_part(&two, &sms), "2 media items");
    }

    #[test]
    fn invalid_content_is_refused_with_a_code() {
        let long = Content::text("x".repeat(4097));
        assert_eq!(
            split(&long, &caps(), "fake").unwrap_err().code(),
            "text_too_long"
        );
        assert_eq!(
            split(&Content::default(), &caps(), "fake")
                .unwrap_err()
                .code(),
            "empty_message"
        );
        for blank in ["", " \n\t "] {
            assert_eq!(
                split(&Content::text(blank), &caps(), "fake")
                    .unwrap_err()
                    .code(),
                "empty_text"
            );
        }
    }
}
