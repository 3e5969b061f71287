//! `conversations.last_message_minute`: the minute of `last_message_at` (its milliseconds
//! divided by 60,000, `MESSAGE_MINUTE_MS`), and `ix_conversations_recent_minute` on
//! (`tenant_id`, `last_message_minute`) in place of `ix_conversations_recent` on
//! (`tenant_id`, `last_message_at`, `id`).
//!
//! Why: every stored message moves its conversation's `last_message_at`, and an index on it
//! moved with it: one more index leaf written per message on SQLite, and on PostgreSQL an
//! update that changes an indexed column, so a new entry in every index of the table
//! (BENCHMARKS.md, Session 13). The minute moves at most once a minute per conversation,
//! and the inbox lists conversations by (minute, `last_message_at`, `id`), which is the
//! same order: the index finds the newest minutes, and their rows are sorted.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261209_000001_conversation_minute"
    }
}

/// The milliseconds of one `last_message_minute`.
pub const MESSAGE_MINUTE_MS: i64 = 60_000;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    LastMessageMinute,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Conversations::Table)
                .add_column(
                    ColumnDef::new(Conversations::LastMessageMinute)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        // Timestamps are positive, so integer division is the floor on both backends.
        m.get_connection()
            .execute_unprepared(&format!(
                "UPDATE conversations SET last_message_minute = last_message_at / {MESSAGE_MINUTE_MS}"
            ))
            .await?;
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_conversations_recent")
            .await?;
        m.create_index(
            Index::create()
                .name("ix_conversations_recent_minute")
                .table(Conversations::Table)
                .col("tenant_id")
                .col(Conversations::LastMessageMinute)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_conversations_recent_minute")
            .await?;
        m.create_index(
            Index::create()
                .name("ix_conversations_recent")
                .table(Conversations::Table)
                .col("tenant_id")
                .col("last_message_at")
                .col("id")
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Conversations::Table)
                .drop_column(Conversations::LastMessageMinute)
                .to_owned(),
        )
        .await
    }
}
