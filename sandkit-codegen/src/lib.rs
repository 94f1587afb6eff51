//! Sandkit codegen: one schema model rendered to SQL DDL, SeaORM entities and
//! sea-orm-migration files.
//!
//! * [`schema`] — the model: Sandkit's four tables, their columns (logical types,
//!   nullability, defaults), keys, indexes, foreign keys, comments, and the schema
//!   version that added each. Every output comes from it.
//! * Rendering (minijinja templates embedded from `templates/`): [`sql_schema`] /
//!   [`sql_upgrade`] for SQLite, PostgreSQL and MySQL; [`seaorm_schema`] /
//!   [`seaorm_upgrade`] for an application's own migration crate; [`adapter_sources`]
//!   for the checked-in sources of `sandkit-adapter-seaorm` (`cargo xtask codegen`).
//! * [`discover()`] — which dialect a project uses, with evidence and confidence.
//! * [`plan()`] — what an existing database needs (nothing, everything, or an upgrade),
//!   from what [`introspect()`] read of it (feature `introspect`); and
//!   [`collation_mismatches()`], the application foreign keys MySQL would reject.
//! * [`next_steps()`] — what is left to do by hand: every line to add, in which file,
//!   and the commands that apply and check the schema.
//!
//! ```
//! use sandkit_codegen::{Adapter, Dialect, Layout, Plan, render};
//!
//! let files = render(Adapter::Sql, Dialect::Postgres, &Plan::Absent, &Layout::default())?;
//! assert_eq!(files[0].path, "sandkit.postgres.sql");
//! assert!(files[0].contents.contains("CREATE TABLE IF NOT EXISTS \"sandkit_workspaces\""));
//! # Ok::<(), sandkit_core::Error>(())
//! ```

pub mod dialect;
pub mod discover;
#[cfg(feature = "introspect")]
pub mod introspect;
pub mod output;
pub mod plan;
mod render;
pub mod schema;
pub mod steps;
pub mod types;

pub use dialect::Dialect;
pub use discover::{CONFIDENT, Discovery, Evidence, discover};
#[cfg(feature = "introspect")]
pub use introspect::introspect;
pub use output::{GeneratedFile, Language, WriteOutcome, format_files, rustfmt, write_files};
pub use plan::{CollationMismatch, DatabaseState, Plan, Upgrade, collation_mismatches, plan};
pub use render::{
    ADAPTER_ENTITY_DIR, ADAPTER_MIGRATION_DIR, SCHEMA_MIGRATION, UPGRADE_MIGRATION,
    adapter_sources, seaorm_schema, seaorm_upgrade, split_statements, sql_schema, sql_upgrade,
};
pub use schema::{SCHEMA_VERSION, Schema, sandkit_schema};
pub use steps::{NextStep, StepsInput, next_steps};
pub use types::LogicalType;

use std::fmt;
use std::str::FromStr;

use sandkit_core::{Error, Result};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adapter {
    /// Plain SQL DDL for one dialect.
    Sql,
    /// SeaORM entity modules and a sea-orm-migration migration.
    SeaOrm,
}

impl Adapter {
    /// Short name (`sql`, `seaorm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Adapter::Sql => "sql",
            Adapter::SeaOrm => "seaorm",
        }
    }
}

impl fmt::Display for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Adapter {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "sql" => Ok(Adapter::Sql),
            "seaorm" | "sea-orm" => Ok(Adapter::SeaOrm),
            _ => Err(Error::invalid_input(format!(
                "unknown adapter {raw:?}; use seaorm or sql"
            ))),
        }
    }
}

/// Where outputs go, relative to the project directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The SQL file (default `sandkit.<dialect>.sql`, `sandkit.<dialect>.upgrade.sql`
    /// for an upgrade).
    pub sql_file: Option<String>,
    /// The migration crate's source directory (sea-orm-cli's `migration/src`).
    pub migration_dir: String,
    /// The entity modules' directory.
    pub entity_dir: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            sql_file: None,
            migration_dir: "migration/src".to_owned(),
            entity_dir: "src/entities/sandkit".to_owned(),
        }
    }
}

/// The default SQL file name for `dialect` (`upgrade`: for an upgrade).
pub fn default_sql_file(dialect: Dialect, upgrade: bool) -> String {
    if upgrade {
        format!("sandkit.{dialect}.upgrade.sql")
    } else {
        format!("sandkit.{dialect}.sql")
    }
}

/// Renders what `plan` calls for (no files when the database is up to date). Rust
/// files come out as the templates render them; [`format_files`] formats them.
///
/// # Errors
/// `Storage` only if a template fails to render (a bug).
pub fn render(
    adapter: Adapter,
    dialect: Dialect,
    plan: &Plan,
    layout: &Layout,
) -> Result<Vec<GeneratedFile>> {
    let sql_path = |upgrade: bool| {
        layout
            .sql_file
            .clone()
            .unwrap_or_else(|| default_sql_file(dialect, upgrade))
    };
    match (adapter, plan) {
        (_, Plan::UpToDate) => Ok(Vec::new()),
        (Adapter::Sql, Plan::Absent) => Ok(vec![GeneratedFile::sql(
            sql_path(false),
            sql_schema(dialect)?,
        )]),
        (Adapter::Sql, Plan::Upgrade(upgrade)) => Ok(vec![GeneratedFile::sql(
            sql_path(true),
            sql_upgrade(upgrade)?,
        )]),
        (Adapter::SeaOrm, Plan::Absent) => seaorm_schema(&layout.migration_dir, &layout.entity_dir),
        (Adapter::SeaOrm, Plan::Upgrade(upgrade)) => {
            seaorm_upgrade(upgrade, &layout.migration_dir, &layout.entity_dir)
        }
    }
}
