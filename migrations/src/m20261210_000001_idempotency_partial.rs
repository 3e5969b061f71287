//! `ux_messages_idempotency` on (`tenant_id`, `idempotency_key`) holds only the messages
//! that have a key: `WHERE idempotency_key IS NOT NULL`.
//!
//! Why: only sends can carry an idempotency key, yet every stored message, each inbound one
//! included, had an entry in this index (both backends index NULLs), so every inbound
//! message paid for one more index insert that no query reads (BENCHMARKS.md, Session 14).
//! Uniqueness is unchanged: NULLs never conflicted. A send's `ON CONFLICT` names the
//! index's predicate ([`IDEMPOTENCY_KEYED`]), as both backends require for a partial index.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261210_000001_idempotency_partial"
    }
}

/// The predicate of the partial index `ux_messages_idempotency`, repeated verbatim by a
/// send's `ON CONFLICT` target.
pub const IDEMPOTENCY_KEYED: &str = "idempotency_key IS NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS ux_messages_idempotency")
            .await?;
        db.execute_unprepared(&format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_idempotency ON messages \
             (tenant_id, idempotency_key) WHERE {IDEMPOTENCY_KEYED}"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS ux_messages_idempotency")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_idempotency ON messages \
             (tenant_id, idempotency_key)",
        )
        .await?;
        Ok(())
    }
}
