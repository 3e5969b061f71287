//! An index for status reconciliation, which runs every minute in every process: without it
//! finding the outbound messages still waiting for an outcome scans the whole `messages`
//! table, inbound history included (hundreds of MB after a day of traffic).
//!
//! Partial, so inbound messages and settled outbound ones cost nothing: the predicate is
//! [`crate::AWAITING_OUTCOME`], and the router's query repeats it word for word (SQLite uses
//! a partial index only for a query that contains its WHERE terms literally).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000003_awaiting_outcome"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS ix_messages_awaiting_outcome \
                 ON messages (updated_at) WHERE {}",
                crate::AWAITING_OUTCOME
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_messages_awaiting_outcome")
            .await?;
        Ok(())
    }
}
