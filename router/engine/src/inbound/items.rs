//! Webhook items that are not new messages (statuses, provider errors, items not
//! understood), and the opt-out keywords of inbound texts.

use std::sync::Arc;

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use switchboard_core::{ChannelAdapter, EventKind, InboundEvent, InboundMessage, OptChange};

use crate::events::RouterEvent;
use crate::ids::now_ms;
use crate::outbound::fallback;
use crate::records::contacts;
use crate::records::statuses::{self, Applied};
use crate::store::entity::webhook_problems;
use crate::tenancy::accounts::Account;

/// Stores a new event that is not a message: a status, a provider error or an unknown kind.
pub(super) async fn store_other<C: ConnectionTrait>(
    txn: &C,
    channel: &str,
    adapter: &dyn ChannelAdapter,
    account: &Arc<Account>,
    event: &InboundEvent,
) -> Result<Option<RouterEvent>, DbErr> {
    match &event.kind {
        EventKind::Status(s) => {
            // A failure the channel says another channel may not have moves the message on.
            let applied = match fallback::on_status(txn, channel, adapter, s, &event.raw).await? {
                Some(ev) => Applied::Advanced(ev),
                None => statuses::apply(txn, channel, s, &event.raw).await?,
            };
            if let Some(recipient) = &s.recipient {
                // A recipient reported with another wa_id or a BSUID is the same person.
                if recipient.phones().count() + usize::from(recipient.bsuid.is_some()) > 1 {
                    contacts::upsert(txn, &account.ctx.tenant_id, recipient).await?;
                }
            }
            if let Applied::Advanced(ev) = applied {
                return Ok(Some(ev));
            }
        }
        EventKind::ProviderError(e) => {
            let detail = format!(
                "provider error {}: {}",
                e.code,
                e.message.as_deref().unwrap_or("")
            );
            problem(
                txn,
                channel,
                Some(account),
                "provider_error",
                &detail,
                &event.raw,
            )
            .await?;
        }
        _ => {
            problem(
                txn,
                channel,
                Some(account),
                "unknown_event",
                "event kind not handled",
                &event.raw,
            )
            .await?;
        }
    }
    Ok(None)
}

pub(super) fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Message(m) => m.direction.as_str(),
        EventKind::Status(_) => "status",
        EventKind::ProviderError(_) => "provider_error",
        EventKind::Notification(_) => "notification",
        _ => "other",
    }
}

pub(super) async fn problem<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    account: Option<&Arc<Account>>,
    kind: &str,
    detail: &str,
    raw: &serde_json::Value,
) -> Result<(), DbErr> {
    tracing::warn!(
        channel,
        kind,
        detail,
        "Webhook item not stored as an event."
    );
    webhook_problems::Entity::insert(webhook_problems::ActiveModel {
        channel: Set(channel.to_owned()),
        tenant_id: Set(account.map(|a| a.ctx.tenant_id.clone())),
        account_id: Set(account.map(|a| a.ctx.account_id.clone())),
        kind: Set(kind.to_owned()),
        detail: Set(detail.to_owned()),
        raw: Set((!raw.is_null()).then(|| raw.to_string())),
        received_at: Set(now_ms()),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Whether an inbound message opts its contact out (`Some(true)`), back in (`Some(false)`)
/// or changes nothing (`None`), as its channel declared (`InboundMessage::opt`). Under the
/// keyword convention a bare STOP keyword opts out and any other message opts back in.
pub(super) fn opt_keyword(m: &InboundMessage) -> Option<bool> {
    match m.opt {
        OptChange::OptOut => Some(true),
        OptChange::OptIn => Some(false),
        OptChange::Unchanged => None,
        OptChange::ByKeyword => {
            let text = m.content.text.as_deref().map(str::trim);
            Some(text.is_some_and(|text| {
                ["STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT"]
                    .iter()
                    .any(|k| text.eq_ignore_ascii_case(k))
            }))
        }
    }
}
