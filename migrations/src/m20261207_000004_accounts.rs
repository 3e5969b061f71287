//! What providers report about an account (issue 18): `account_state`, one row per account
//! that a provider has reported on: quality rating (`green`, `yellow`, `red`, `unknown`),
//! messaging limit tier, restrictions and bans (a JSON list), and when they last changed.
//! A side table rather than columns of `channel_accounts`, so routing reads stay narrow;
//! an account with no row has reported nothing.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000004_accounts"
    }
}

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
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("account_state").if_exists().to_owned())
            .await
    }
}
