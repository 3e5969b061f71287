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

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261120_000001_initial::Migration),
            Box::new(m20261121_000001_delivery_engine::Migration),
            Box::new(m20261121_000002_media::Migration),
        ]
    }
}
