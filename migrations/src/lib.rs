//! `switchboard-migrations`: the whole Switchboard schema, for SQLite and PostgreSQL.
//!
//! One codebase, both backends: ids are text (prefixed UUIDv7s, so they sort by creation),
//! timestamps are integer Unix milliseconds (ordering and comparisons need no date parsing
//! on either backend), JSON is stored as text. Uniqueness that matters is enforced here,
//! never by a read-then-write in the router.
//!
//! Running migrations from several processes at once is made safe by the router, which
//! holds a PostgreSQL advisory lock around `Migrator::up`.

pub use sea_orm_migration::prelude::*;

mod m20261120_000001_initial;
mod m20261121_000001_delivery_engine;
mod m20261121_000002_media;
mod m20261121_000003_awaiting_outcome;
mod m20261121_000004_pending_statuses_received;
mod m20261206_000001_message_request_hash;
mod m20261207_000001_fallback;
mod m20261207_000002_content_model;
mod m20261207_000003_templates;
mod m20261207_000004_accounts;
mod m20261208_000001_console;
mod m20261209_000001_conversation_minute;
mod m20261210_000001_idempotency_partial;
mod m20261211_000001_message_part_of;

pub use m20261207_000004_accounts::UNPRICED;
pub use m20261209_000001_conversation_minute::MESSAGE_MINUTE_MS;
pub use m20261210_000001_idempotency_partial::IDEMPOTENCY_KEYED;

/// Outbound messages handed to the provider (status `accepted` .. `sent`, ranks 20..40 of
/// `MessageStatus::rank`) and not settled yet: the predicate of the partial index
/// `ix_messages_awaiting_outcome`, used verbatim by the router's reconciliation query.
pub const AWAITING_OUTCOME: &str = "direction = 'outbound' AND status_rank BETWEEN 20 AND 40";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261120_000001_initial::Migration),
            Box::new(m20261121_000001_delivery_engine::Migration),
            Box::new(m20261121_000002_media::Migration),
            Box::new(m20261121_000003_awaiting_outcome::Migration),
            Box::new(m20261121_000004_pending_statuses_received::Migration),
            Box::new(m20261206_000001_message_request_hash::Migration),
            Box::new(m20261207_000001_fallback::Migration),
            Box::new(m20261207_000002_content_model::Migration),
            Box::new(m20261207_000003_templates::Migration),
            Box::new(m20261207_000004_accounts::Migration),
            Box::new(m20261208_000001_console::Migration),
            Box::new(m20261209_000001_conversation_minute::Migration),
            Box::new(m20261210_000001_idempotency_partial::Migration),
            Box::new(m20261211_000001_message_part_of::Migration),
        ]
    }
}
