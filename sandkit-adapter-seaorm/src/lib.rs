//! The SQL [`Store`](sandkit_core::Store) for Sandkit, on SeaORM: SQLite (the embedded
//! default), PostgreSQL and MySQL/MariaDB.
//!
//! ```no_run
//! # async fn demo() -> sandkit_core::Result<()> {
//! use std::sync::Arc;
//! use sandkit_adapter_seaorm::SeaOrmStore;
//! use sandkit_core::Store;
//!
//! let store = SeaOrmStore::connect("sqlite://sandkit.db").await?;
//! store.migrate().await?;
//! assert_eq!(store.id(), "seaorm-sqlite");
//! let store: Arc<dyn Store> = Arc::new(store);
//! # Ok(()) }
//! ```
//!
//! | property | how |
//! |---|---|
//! | compare-and-set | one `UPDATE … WHERE id = ? AND revision = ?`; rows affected decide |
//! | fencing | one `UPDATE … WHERE id = ? AND lease_token = ?` |
//! | atomic batches | one transaction per [`WriteBatch`](sandkit_core::WriteBatch) (`BEGIN IMMEDIATE` on SQLite) |
//! | duplicates | unique constraints → `AlreadyExists` (no read before write) |
//! | many processes | safe on every dialect (SQLite: WAL, busy timeout, one writer at a time) |
//! | SQLite durability | every commit flushed (`synchronous = FULL`); `?synchronous=normal` in the URL trades that for speed |
//! | corrupt rows | `Corrupt { table, column, reason }`, never a panic or a silent reset |
//! | schema | [`SeaOrmStore::migrate`] (many processes may call it at once); records in its own `sandkit_migrations`, so an application's migrator and Sandkit's never trip over each other; a schema already current however it got there counts as current; upgrades a TypeScript Sandkit database in place |
//! | apps that own the schema | [`SeaOrmStore::require_current_schema`] / [`SeaOrmStore::schema_status`] check without changing anything |
//!
//! A durable command costs two transactions and five statements: compare-and-set
//! workspace update + policy snapshot insert + run insert, then fenced update + run
//! finish (see the `store_bench` example).
//!
//! Tables keep the original's names and columns (`sandkit_workspaces`,
//! `sandkit_runs`, `sandkit_policies`, `sandkit_setup_states`); [`entity`] has a SeaORM
//! entity per table for applications that query them.

mod codec;
mod connect;
mod dialect;
pub mod entity;
mod errors;
pub mod migration;
mod read;
mod setup;
mod sql;
mod sqlite_url;
mod store;
mod write;

pub use connect::redact_url;
pub use dialect::Dialect;
pub use migration::SchemaStatus;
pub use store::{DEFAULT_CONNECT_TIMEOUT, SQLITE_BUSY_TIMEOUT, SeaOrmStore};

/// Re-export of SeaORM, so callers can build a connection for [`SeaOrmStore::new`].
pub use sea_orm;
