//! Fallback to further channels: `messages.fallback` keeps, as JSON, the channels a message
//! may still go out on when its current one cannot reach the recipient (in order, with the
//! account and the content each would send, and until when a failed status may still move
//! it on); `send_attempts.channel` names the channel of each attempt, so a message's history
//! shows every attempt on every channel. Both null for rows stored before this migration
//! (no fallback; the attempt's channel is the message's).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000001_fallback"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Fallback,
}

#[derive(DeriveIden)]
enum SendAttempts {
    Table,
    Channel,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .add_column(ColumnDef::new(Messages::Fallback).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SendAttempts::Table)
                .add_column(ColumnDef::new(SendAttempts::Channel).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SendAttempts::Table)
                .drop_column(SendAttempts::Channel)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .drop_column(Messages::Fallback)
                .to_owned(),
        )
        .await
    }
}
