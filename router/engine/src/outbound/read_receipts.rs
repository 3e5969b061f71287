//! `POST /v1/messages/{id}/read`: tells the provider that the business has read an inbound
//! message (and those before it), optionally showing the person a typing indicator.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use switchboard_core::{Direction, ErrorKind};

use crate::error::{Result, RouterError};
use crate::store::Store;
use crate::store::entity::{channel_accounts, messages};
use crate::tenancy::accounts::Accounts;
use crate::tenancy::registry::AdapterRegistry;

/// Read receipts and typing indicators, through the channel of the message's account.
pub struct ReadReceipts {
    store: Store,
    adapters: AdapterRegistry,
    accounts: Arc<Accounts>,
}

impl ReadReceipts {
    pub(crate) fn new(store: Store, adapters: AdapterRegistry, accounts: Arc<Accounts>) -> Self {
        Self {
            store,
            adapters,
            accounts,
        }
    }

    /// Marks one of the tenant's inbound messages read at its provider; with `typing`, also
    /// shows a typing indicator.
    ///
    /// # Errors
    /// `404` for an unknown or another tenant's message; `400 not_inbound` for a message the
    /// business sent; `409 account_disconnected`; `422 unsupported_content` when the channel
    /// has no read receipts (or no typing indicator); the provider's refusal as a channel
    /// error (`502`).
    pub async fn mark_read(&self, tenant_id: &str, message_id: &str, typing: bool) -> Result<()> {
        let message = messages::Entity::find_by_id(message_id.to_owned())
            .filter(messages::Column::TenantId.eq(tenant_id))
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("message"))?;
        if message.direction != Direction::Inbound.as_str() {
            return Err(RouterError::invalid(
                "not_inbound",
                "only a message the contact sent can be marked read",
            ));
        }
        let provider_message_id = message.provider_message_id.ok_or_else(|| {
            RouterError::invalid("not_inbound", "this message has no provider id to mark")
        })?;
        let active = channel_accounts::Entity::find_by_id(message.account_id.clone())
            .one(self.store.conn())
            .await?
            .is_some_and(|a| a.active);
        if !active {
            return Err(RouterError::Conflict {
                code: "account_disconnected",
                message: "the account this message came to is disconnected".into(),
            });
        }
        let account = self.accounts.by_id(&message.account_id).await?;
        let adapter = self
            .adapters
            .get(&account.channel)
            .ok_or(RouterError::NotFound("channel"))?;
        let caps = adapter.capabilities();
        if typing && !caps.typing_indicator {
            return Err(RouterError::UnsupportedContent(format!(
                "{} has no typing indicator",
                account.channel
            )));
        }
        if !typing && !caps.read_receipts {
            return Err(RouterError::UnsupportedContent(format!(
                "{} cannot mark a message read on its own{}",
                account.channel,
                if caps.typing_indicator {
                    " (it does so with a typing indicator: send {\"typing\":true})"
                } else {
                    ""
                }
            )));
        }
        match adapter
            .mark_read(&account.ctx, &provider_message_id, typing)
            .await
        {
            Ok(()) => {
                metrics::counter!("switchboard_read_receipts_total", "channel" => account.channel.clone(), "typing" => typing.to_string()).increment(1);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                Err(RouterError::UnsupportedContent(e.message().to_owned()))
            }
            Err(e) => {
                tracing::warn!(channel = %account.channel, error = %e, "A read receipt failed.");
                Err(RouterError::Channel(e))
            }
        }
    }
}
