//! The operator console (issue 19).
//!
//! `console_sessions`: one row per signed-in browser. The cookie holds an opaque token; the
//! row keys it by its SHA-256 (a copy of the database signs nobody in), names the API key
//! it was opened with (a revoked key ends its sessions at once) and holds the session's
//! CSRF token. `ix_console_sessions_expiry` lets sign-ins sweep expired rows cheaply.
//!
//! `console_seen`: per conversation, the newest message people have seen in the console;
//! inbound messages after it are the conversation's unread count. A side table, so the hot
//! `conversations` row the inbound path updates stays as it was.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261208_000001_console"
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
                .table("console_sessions")
                .if_not_exists()
                .col(text("token_hash").primary_key())
                .col(text("tenant_id"))
                .col(text("key_id"))
                .col(text("csrf_token"))
                .col(big_integer("created_at"))
                .col(big_integer("expires_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("console_sessions", "key_id")
                        .to("api_keys", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_console_sessions_expiry")
                .table("console_sessions")
                .col("expires_at")
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("console_seen")
                .if_not_exists()
                .col(text("conversation_id").primary_key())
                .col(text("tenant_id"))
                .col(text("seen_message_id"))
                .col(big_integer("seen_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("console_seen", "conversation_id")
                        .to("conversations", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("console_seen").if_exists().to_owned())
            .await?;
        m.drop_table(
            Table::drop()
                .table("console_sessions")
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
