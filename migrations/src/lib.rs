//! The gridcase schema as sea-orm migrations: the same files build it on SQLite and PostgreSQL.
//!
//! Applied at start-up by `gridcase serve` and on demand by `gridcase migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_directory;
mod m20261123_000002_create_cases;
mod m20261123_000003_create_sla;
mod m20261130_000001_key_tickets_per_gateway;
mod m20261130_000002_retire_directory_records;
mod m20261130_000003_event_audience;
mod m20261130_000004_reporter_wait;
mod m20261201_000001_extensions_and_returns;
mod m20261201_000002_alerts;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_directory::Migration),
            Box::new(m20261123_000002_create_cases::Migration),
            Box::new(m20261123_000003_create_sla::Migration),
            Box::new(m20261130_000001_key_tickets_per_gateway::Migration),
            Box::new(m20261130_000002_retire_directory_records::Migration),
            Box::new(m20261130_000003_event_audience::Migration),
            Box::new(m20261130_000004_reporter_wait::Migration),
            Box::new(m20261201_000001_extensions_and_returns::Migration),
            Box::new(m20261201_000002_alerts::Migration),
        ]
    }
}
