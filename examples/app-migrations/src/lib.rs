//! An application that owns its migrations and keeps Sandkit's tables in them.
//!
//! `src/migration/m20260801_000001_sandkit_schema_v2.rs` and `src/entities/sandkit/` are
//! what `sandkit generate --adapter seaorm` wrote (kept current by `cargo xtask
//! codegen`); everything else is the application's own: a `projects` table whose rows
//! point at Sandkit workspaces, and a later migration that adds a column to it.
//!
//! Two migrators, for the two ways an application adds Sandkit's schema:
//! [`migration::Migrator`] runs the generated SeaORM migration first; with the generated
//! SQL applied by the database's own client instead, [`migration::AppOnlyMigrator`] runs
//! the application's migrations alone. Either way Sandkit (`sandkit --no-migrate`, or
//! `SeaOrmStore::require_current_schema`) finds its schema current, and its own
//! `sandkit migrate` never touches the application's `seaql_migrations`.

pub mod entities;
pub mod migration;
