//! The delivery engine's own tables.
//!
//! - Sender leases: several router processes on one PostgreSQL database share the delivery
//!   work, but each sending account is delivered by one process at a time, so that
//!   process's in-memory rate limiter is the account's whole rate.
//! - Notifications: the durable queue of signed event webhooks to tenants, written in the
//!   same transaction as the event itself.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Who delivers an account's outbox entries, until when (Unix ms). Renewed every
        // delivery round; taken over once expired.
        m.create_table(
            Table::create()
                .table("sender_leases")
                .if_not_exists()
                .col(text("account_id").primary_key())
                .col(text("holder"))
                .col(big_integer("expires_at"))
                .to_owned(),
        )
        .await?;
        // Delivery engines alive recently (heartbeat per round): how many share the senders.
        m.create_table(
            Table::create()
                .table("delivery_workers")
                .if_not_exists()
                .col(text("worker_id").primary_key())
                .col(big_integer("seen_at"))
                .to_owned(),
        )
        .await?;
        // One row per event to POST to a tenant's notify_url; deleted once acknowledged.
        // The id orders them; one conversation's rows go strictly in id order.
        m.create_table(
            Table::create()
                .table("notifications")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(text("tenant_id"))
                .col(text("conversation_id"))
                .col(text("payload"))
                .col(integer("attempts"))
                .col(big_integer("next_attempt_at"))
                .col(text_null("locked_by"))
                .col(big_integer_null("locked_until"))
                .col(text_null("last_error"))
                .col(big_integer("created_at"))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("ix_notifications_due", &["next_attempt_at"][..]),
            (
                "ix_notifications_conversation",
                &["conversation_id", "id"][..],
            ),
        ] {
            let mut idx = Index::create();
            idx.name(name).table("notifications").if_not_exists();
            for c in cols {
                idx.col(*c);
            }
            m.create_index(idx.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in ["notifications", "delivery_workers", "sender_leases"] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
