//! What one send writes: its contact, conversation, message(s), outbox entries and
//! notifications, on whatever connection or savepoint it is given (`send_commit.rs` decides
//! which), after `send()` has checked everything it can check before writing.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use switchboard_core::{ContactIdentity, Content, MessageStatus};

use crate::error::{Result, RouterError};
use crate::events::RouterEvent;
use crate::ids::{self, now_ms};
use crate::outbound::fallback::{Fallback, Target};
use crate::outbound::request::{SendAccepted, SendRequest};
use crate::records::{contacts, conversations};
use crate::store::entity;
use crate::store::entity::{message_status_events, messages};
use crate::tenancy::accounts::Account;
use crate::tenancy::registry::AdapterRegistry;

/// The history note (`error_code` of a `queued` entry) of a template sent without a check
/// because the account's catalog was never synced.
pub const TEMPLATE_UNCHECKED: &str = "template_not_checked";

/// A fallback target resolved at `send()`: its account, and what each part of the message
/// sends on it when that is not the part itself (the plain text alternative).
pub(crate) struct Resolved {
    pub(crate) account: Arc<Account>,
    pub(crate) contents: Vec<Option<Content>>,
}

/// A send checked and ready to write. It owns its parts, so that it can wait in the group
/// commit's queue.
pub(crate) struct Acceptance {
    pub(crate) tenant_id: String,
    pub(crate) request: SendRequest,
    /// `request_hash` of the request as the client sent it, when it has an idempotency key.
    pub(crate) request_hash: Option<String>,
    pub(crate) recipient: ContactIdentity,
    /// The account `send()` chose to send from.
    pub(crate) first: Arc<Account>,
    /// The message's parts on that account's channel.
    pub(crate) parts: Vec<Content>,
    pub(crate) targets: Vec<Resolved>,
    /// A template sent without a catalog check (the account's catalog was never synced).
    pub(crate) unchecked_template: bool,
}

/// What writing an [`Acceptance`] came to.
pub(crate) enum Written {
    /// Stored, with the events to publish once committed.
    Accepted(SendAccepted, Vec<RouterEvent>),
    /// Another request with the same idempotency key was stored first (perhaps earlier in
    /// the same transaction): nothing of this one is to be kept, and it is answered with
    /// that request's message once the transaction has ended.
    KeyTaken,
}

/// What writing a send reads besides the send itself.
#[derive(Clone)]
pub(crate) struct AcceptRules {
    pub(crate) adapters: AdapterRegistry,
    /// `DeliveryConfig::fallback_window`.
    pub(crate) fallback_window: Duration,
}

impl Acceptance {
    /// Writes the message(s) and their outbox entries on `db`, which the caller commits
    /// (or rolls back, on an error or [`Written::KeyTaken`]).
    pub(crate) async fn write<C: ConnectionTrait>(
        &self,
        db: &C,
        rules: &AcceptRules,
    ) -> Result<Written> {
        let Self {
            tenant_id,
            request,
            request_hash: hash,
            recipient,
            first,
            parts,
            targets,
            unchecked_template,
        } = self;
        let (tenant_id, unchecked_template) = (tenant_id.as_str(), *unchecked_template);
        let contact_id = contacts::upsert(db, tenant_id, recipient)
            .await?
            .ok_or_else(|| {
                RouterError::invalid(
                    "invalid_recipient",
                    "the recipient names no phone number or BSUID",
                )
            })?;
        let now = now_ms();
        let first_conv =
            conversations::find(db, tenant_id, &contact_id, &first.ctx.account_id).await?;
        if first_conv
            .as_ref()
            .is_some_and(|c| c.opted_out_at.is_some())
        {
            return Err(RouterError::OptedOut);
        }
        // The window is the channel's (`Capabilities::service_window`); none: always open.
        let window_open = |channel: &str, conv: Option<&entity::conversations::Model>| {
            rules.adapters.get(channel).is_some_and(|a| {
                a.capabilities()
                    .service_window_open(conv.and_then(|c| c.last_inbound_at), now)
            })
        };
        // Outside the first channel's window, the first fallback channel that can take the
        // message now sends it instead.
        let mut chosen = None;
        if request.content.is_free_form() && !window_open(&first.channel, first_conv.as_ref()) {
            for (i, target) in targets.iter().enumerate() {
                let conv =
                    conversations::find(db, tenant_id, &contact_id, &target.account.ctx.account_id)
                        .await?;
                if conv.as_ref().is_some_and(|c| c.opted_out_at.is_some()) {
                    continue;
                }
                if window_open(&target.account.channel, conv.as_ref()) {
                    chosen = Some(i);
                    break;
                }
            }
            if chosen.is_none() {
                return Err(RouterError::OutsideServiceWindow);
            }
        }
        let (account, rest) = match chosen {
            Some(i) => (&targets[i].account, &targets[i + 1..]),
            None => (first, targets.as_slice()),
        };
        let conversation_id = conversations::touch(
            db,
            tenant_id,
            &contact_id,
            &account.ctx.account_id,
            &account.channel,
            now,
            false,
        )
        .await?;
        let mut events = Vec::new();
        if chosen.is_some() {
            events.push(RouterEvent::MessageFallback {
                tenant_id: tenant_id.to_owned(),
                message_id: String::new(),
                conversation_id: conversation_id.clone(),
                from_channel: first.channel.clone(),
                to_channel: account.channel.clone(),
                error_code: RouterError::OutsideServiceWindow.code().to_owned(),
            });
        }
        let window_ms = i64::try_from(rules.fallback_window.as_millis()).unwrap_or(i64::MAX);
        let reply_to = match &request.reply_to {
            Some(id) => Some(
                messages::Entity::find_by_id(id.clone())
                    .filter(messages::Column::TenantId.eq(tenant_id))
                    .one(db)
                    .await?
                    .ok_or(RouterError::NotFound("reply_to message"))?
                    .provider_message_id
                    .ok_or_else(|| {
                        RouterError::invalid(
                            "invalid_reply_to",
                            "the message replied to has no provider id yet",
                        )
                    })?,
            ),
            None => None,
        };

        let mut ids_out = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let id = ids::new_id(ids::MESSAGE);
            // Every part names the send's first message, so a replay finds its parts.
            let part_of = ids_out.first().unwrap_or(&id).clone();
            let content = match chosen {
                Some(c) => targets[c].contents[i].as_ref().unwrap_or(part),
                None => part,
            };
            let fallback = Fallback {
                window_ms,
                until: now.saturating_add(window_ms),
                targets: rest
                    .iter()
                    .map(|t| Target {
                        channel: t.account.channel.clone(),
                        account_id: t.account.ctx.account_id.clone(),
                        content: t.contents[i].clone(),
                    })
                    .collect(),
            };
            // Only the first part carries the key; the others are found through it.
            let (idempotency_key, request_hash) = if i == 0 {
                (request.idempotency_key.clone(), hash.clone())
            } else {
                (None, None)
            };
            let inserted = messages::Entity::insert(messages::ActiveModel {
                id: Set(id.clone()),
                tenant_id: Set(tenant_id.to_owned()),
                conversation_id: Set(conversation_id.clone()),
                account_id: Set(account.ctx.account_id.clone()),
                channel: Set(account.channel.clone()),
                direction: Set("outbound".into()),
                status: Set(MessageStatus::Queued.as_str().to_owned()),
                status_rank: Set(MessageStatus::Queued.rank()),
                provider_message_id: Set(None),
                content: Set(serde_json::to_string(content).unwrap_or_else(|_| "{}".into())),
                reply_to: Set(if i == 0 { reply_to.clone() } else { None }),
                error_code: Set(None),
                error_message: Set(None),
                raw: Set(None),
                idempotency_key: Set(idempotency_key),
                request_hash: Set(request_hash),
                provider_timestamp: Set(None),
                fallback: Set(fallback.column()),
                created_at: Set(now),
                updated_at: Set(now),
                referral: Set(None),
                pricing: Set(None),
                part_of: Set(Some(part_of)),
            })
            .on_conflict(idempotency_conflict())
            .try_insert()
            .exec_without_returning(db)
            .await?;
            if conflicted(&inserted) {
                // A concurrent request with the same key was stored first: the caller
                // answers with its message once this transaction has ended.
                return Ok(Written::KeyTaken);
            }
            if i == 0 && unchecked_template {
                message_status_events::Entity::insert(message_status_events::ActiveModel {
                    message_id: Set(id.clone()),
                    status: Set(MessageStatus::Queued.as_str().to_owned()),
                    error_code: Set(Some(TEMPLATE_UNCHECKED.to_owned())),
                    error_message: Set(Some(
                        "sent without checking the template: the account's template catalog \
                         was never synced (POST /v1/accounts/{id}/templates/sync)"
                            .to_owned(),
                    )),
                    raw: Set(None),
                    provider_timestamp: Set(None),
                    received_at: Set(now),
                    ..Default::default()
                })
                .exec_without_returning(db)
                .await?;
            }
            crate::outbound::queue::enqueue(
                db,
                &id,
                tenant_id,
                &account.ctx.account_id,
                &conversation_id,
                now,
            )
            .await?;
            ids_out.push(id);
        }
        if let Some(RouterEvent::MessageFallback { message_id, .. }) = events.first_mut() {
            message_id.clone_from(&ids_out[0]);
        }
        crate::notify::queue::enqueue(db, &events).await?;
        let mut ids_iter = ids_out.into_iter();
        let accepted = SendAccepted {
            id: ids_iter.next().unwrap_or_default(),
            status: MessageStatus::Queued.as_str().to_owned(),
            channel: account.channel.clone(),
            conversation_id,
            parts: ids_iter.collect(),
            segments: None,
        };
        Ok(Written::Accepted(accepted, events))
    }
}

/// A send whose idempotency key another send of the tenant has is not inserted. The key's
/// unique index holds keyed messages only, and both backends take a partial index as the
/// conflict's target only when the target names its predicate.
pub(crate) fn idempotency_conflict() -> OnConflict {
    let mut on =
        OnConflict::columns([messages::Column::TenantId, messages::Column::IdempotencyKey]);
    on.target_and_where(Expr::cust(switchboard_migrations::IDEMPOTENCY_KEYED))
        .do_nothing();
    on
}

/// Whether an `ON CONFLICT DO NOTHING` insert inserted nothing.
pub(crate) fn conflicted(result: &sea_orm::TryInsertResult<u64>) -> bool {
    matches!(
        result,
        sea_orm::TryInsertResult::Conflicted | sea_orm::TryInsertResult::Inserted(0)
    )
}
