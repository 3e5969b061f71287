//! What inbound webhooks carry beyond a message's content (issue 17):
//! - `messages.referral`: the click-to-WhatsApp ad a conversation started from, as JSON
//!   (`switchboard_core::Referral`); null when the provider sent none.
//! - `messages.pricing`: how the provider says an outbound message is billed, as JSON
//!   (`switchboard_core::Pricing`), from whichever status carried it; and
//!   `pending_statuses.pricing`, so a status that arrives before its message keeps it.
//! - `provider_notifications`: what a provider reported that is not a 1:1 message or status
//!   (account-level notifications such as template, quality and account updates, and the
//!   messages and statuses of group chats), one row per (item, account it concerns), with
//!   the provider's field name as `kind` and its payload as it came. Unique per
//!   (channel, event_key), like `webhook_events`, so a redelivery stores nothing twice.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000002_content_model"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Referral,
    Pricing,
}

#[derive(DeriveIden)]
enum PendingStatuses {
    Table,
    Pricing,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [Messages::Referral, Messages::Pricing] {
            m.alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(ColumnDef::new(column).text().null())
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(PendingStatuses::Table)
                .add_column(ColumnDef::new(PendingStatuses::Pricing).text().null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("provider_notifications")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(text("tenant_id"))
                .col(text("account_id"))
                .col(text("channel"))
                // The provider's name for it (Meta: the webhook field), or `group_message`
                // / `group_status`.
                .col(text("kind"))
                // The provider entity it is about: the business account (Meta's WABA id)
                // or the group.
                .col(text_null("entity_id"))
                .col(text("event_key"))
                .col(text("raw"))
                .col(big_integer_null("provider_timestamp"))
                .col(big_integer("received_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("provider_notifications", "account_id")
                        .to("channel_accounts", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for index in [
            Index::create()
                .name("ux_provider_notifications_key")
                .table("provider_notifications")
                .col("channel")
                .col("event_key")
                .unique()
                .if_not_exists()
                .to_owned(),
            // A tenant's notifications of one kind, oldest first (what issue 18 reads).
            Index::create()
                .name("ix_provider_notifications_kind")
                .table("provider_notifications")
                .col("tenant_id")
                .col("kind")
                .col("id")
                .if_not_exists()
                .to_owned(),
            Index::create()
                .name("ix_provider_notifications_account")
                .table("provider_notifications")
                .col("account_id")
                .col("id")
                .if_not_exists()
                .to_owned(),
        ] {
            m.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table("provider_notifications")
                .if_exists()
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(PendingStatuses::Table)
                .drop_column(PendingStatuses::Pricing)
                .to_owned(),
        )
        .await?;
        for column in [Messages::Pricing, Messages::Referral] {
            m.alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
