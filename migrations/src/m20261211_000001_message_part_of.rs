//! `messages.part_of`: the id of the first message of the send a message belongs to (its
//! own id for the first). A send whose media a channel cannot carry in one message is
//! split into parts, and a replay of its idempotency key answers with them. They used to be
//! found as the conversation's outbound messages of the same millisecond after the first,
//! which also took another send to the same contact in that millisecond. Null for inbound
//! messages and for sends stored before this migration (found the old way).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261211_000001_message_part_of"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    PartOf,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .add_column(ColumnDef::new(Messages::PartOf).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .drop_column(Messages::PartOf)
                .to_owned(),
        )
        .await
    }
}
