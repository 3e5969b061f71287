//! `messages.request_hash`: the SHA-256 of the request first sent with an idempotency key,
//! so the key reused with another request is refused (`409 idempotency_key_reused`) instead
//! of answered with the first message. Null for messages without a key and for those
//! stored before this migration (taken as matching any request).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000001_message_request_hash"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    RequestHash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .add_column(ColumnDef::new(Messages::RequestHash).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .drop_column(Messages::RequestHash)
                .to_owned(),
        )
        .await
    }
}
