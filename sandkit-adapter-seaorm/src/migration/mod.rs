//! The schema migrations (sea-orm-migration).
//!
//! [`Migrator`] runs them; [`SeaOrmStore::migrate`](crate::SeaOrmStore::migrate) calls
//! it. An application with its own `Migrator` can include [`migrations()`] in its list
//! instead (they record themselves in the same `seaql_migrations` table, so both ways
//! can be mixed).
//!
//! | migration | schema |
//! |---|---|
//! | [`m20260801_000001_create_sandkit_tables`] | the TypeScript Sandkit's four tables, created where missing |
//! | [`m20260801_000002_add_sandkit_state_columns`] | our columns and indexes; upgrades a database created by the original in place |
//!
//! `down` of the second migration puts Vercel heads, session leases, policies and
//! exposed ports back into the original's `metadata["sandkit:…"]` keys before dropping
//! the columns; anything else it added is lost.

mod columns;
mod legacy;
pub mod m20260801_000001_create_sandkit_tables;
pub mod m20260801_000002_add_sandkit_state_columns;
mod normalize;
mod upgrade;

pub use m20260801_000002_add_sandkit_state_columns::RUNS_IDEMPOTENCY_INDEX;
use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// Sandkit's migrator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }
}

/// Sandkit's migrations in order, for an application's own `Migrator`.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20260801_000001_create_sandkit_tables::Migration),
        Box::new(m20260801_000002_add_sandkit_state_columns::Migration),
    ]
}
