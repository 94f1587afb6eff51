//! The schema migrations (sea-orm-migration).
//!
//! [`Migrator`] runs them; [`SeaOrmStore::migrate`](crate::SeaOrmStore::migrate) calls
//! it. It keeps its records in its own table, [`MIGRATION_TABLE`], so it never reads or
//! writes an application's `seaql_migrations`, and it counts a migration as applied when
//! the schema already holds what the migration makes — however it got there: the
//! migration `sandkit generate` writes for an application's own Migrator, the SQL it
//! writes, or [`migrations()`] listed in an application's Migrator. An application's
//! migrations and Sandkit's can therefore run in either order, any number of times.
//! A database an earlier release migrated (Sandkit's rows in `seaql_migrations`) moves
//! to the new table on the next [`migrate`](crate::SeaOrmStore::migrate).
//!
//! | migration | schema |
//! |---|---|
//! | [`m20260801_000001_create_sandkit_tables`] | the TypeScript Sandkit's four tables, created where missing |
//! | [`m20260801_000002_add_sandkit_state_columns`] | our columns and indexes; upgrades a database created by the original in place |
//!
//! `down` of the second migration puts Vercel heads, session leases, policies and
//! exposed ports back into the original's `metadata["sandkit:…"]` keys before dropping
//! the columns; anything else it added is lost.

mod bookkeeping;
mod columns;
mod legacy;
pub mod m20260801_000001_create_sandkit_tables;
pub mod m20260801_000002_add_sandkit_state_columns;
mod normalize;
mod upgrade;

pub use bookkeeping::SchemaStatus;
pub(crate) use bookkeeping::{adopt, status};
pub use m20260801_000002_add_sandkit_state_columns::RUNS_IDEMPOTENCY_INDEX;
pub(crate) use normalize::convert_ids_to_binary;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm_migration::prelude::DynIden;
use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// The table where [`Migrator`] records Sandkit's migrations (an application's
/// migrator keeps `seaql_migrations` to itself).
pub const MIGRATION_TABLE: &str = "sandkit_migrations";

/// Sandkit's migrator. Prefer [`SeaOrmStore::migrate`](crate::SeaOrmStore::migrate):
/// it also records what the schema already holds and keeps concurrent processes from
/// migrating at the same time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }

    fn migration_table_name() -> DynIden {
        Alias::new(MIGRATION_TABLE).into_iden()
    }
}

/// Sandkit's migrations in order, for an application's own `Migrator`.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20260801_000001_create_sandkit_tables::Migration),
        Box::new(m20260801_000002_add_sandkit_state_columns::Migration),
    ]
}
