//! What providers report about an account (issue 18): `account_state`, one row per account
//! that a provider has reported on: quality rating (`green`, `yellow`, `red`, `unknown`),
//! messaging limit tier, restrictions and bans (a JSON list), and when they last changed.
//! A side table rather than columns of `channel_accounts`, so routing reads stay narrow;
//! an account with no row has reported nothing.
//!
//! `messages.price_checked_at`: when the router last asked the provider for a final
//! outbound message's price (providers that fill it in later, twilio.md §10), so it asks
//! again only after a while; the partial index `ix_messages_unpriced` holds just the final
//! outbound messages without pricing, which is what that pass reads.
//!
//! `ix_messages_tenant_created`: a tenant's messages by time, what `GET /v1/usage` sums.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000004_accounts"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    PriceCheckedAt,
}

/// Final outbound messages (failed/undelivered 50, delivered 60, read 70, played 80 in
/// `MessageStatus::rank`) sent through a provider and not priced yet: the predicate of
/// `ix_messages_unpriced`, repeated verbatim by the router's price query.
pub const UNPRICED: &str = "direction = 'outbound' AND status_rank >= 50 AND pricing IS NULL \
     AND provider_message_id IS NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("account_state")
                .if_not_exists()
                .col(text("account_id").primary_key())
                .col(text("tenant_id"))
                .col(text_null("quality"))
                .col(text_null("messaging_limit"))
                .col(text("restrictions"))
                .col(big_integer("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("account_state", "account_id")
                        .to("channel_accounts", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .add_column(
                    ColumnDef::new(Messages::PriceCheckedAt)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        // sea-query has no partial index for both backends: the same SQL suits both.
        m.get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS ix_messages_unpriced ON messages \
                 (channel, price_checked_at) WHERE {UNPRICED}"
            ))
            .await?;
        m.create_index(
            Index::create()
                .name("ix_messages_tenant_created")
                .table(Messages::Table)
                .col("tenant_id")
                .col("created_at")
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_messages_tenant_created")
            .await?;
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_messages_unpriced")
            .await?;
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .drop_column(Messages::PriceCheckedAt)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table("account_state").if_exists().to_owned())
            .await
    }
}
