//! Which of Sandkit's migrations a database has, kept apart from the application's.
//!
//! Sandkit's [`Migrator`] records its migrations in [`MIGRATION_TABLE`], never in the
//! application's `seaql_migrations`. A migration counts as applied when that table says
//! so *or* when the schema already holds everything it makes, however it got there:
//! the application's own Migrator running the migration `sandkit generate` wrote, the
//! generated SQL applied by hand, or an earlier Sandkit release that kept its rows in
//! `seaql_migrations`. [`adopt`] records such migrations, so the migrator never runs a
//! migration twice and never trips over another migrator's rows.

use std::collections::BTreeSet;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use sea_orm_migration::{MigrationName, MigratorTrait, SchemaManager};
use tracing::info;

use super::{
    MIGRATION_TABLE, Migrator, m20260801_000001_create_sandkit_tables as create_tables,
    m20260801_000002_add_sandkit_state_columns as state_columns,
};

/// Where a database's Sandkit schema stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Every Sandkit migration is in place.
    Current,
    /// Some migrations are missing (all of them when no Sandkit table exists).
    Behind {
        /// The missing migrations' names, in order.
        pending: Vec<String>,
    },
    /// A newer Sandkit migrated this database: it records migrations this build does
    /// not know.
    Newer {
        /// The unknown migrations' names.
        unknown: Vec<String>,
    },
}

impl SchemaStatus {
    /// Whether the schema is current.
    pub fn is_current(&self) -> bool {
        matches!(self, SchemaStatus::Current)
    }
}

/// The table where earlier releases (and sea-orm-migration by default) record migrations.
const SEAQL_MIGRATIONS: &str = "seaql_migrations";

/// Sandkit's migration names, in order.
fn known() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

/// Whether the schema already holds everything migration `name` makes.
async fn in_schema(manager: &SchemaManager<'_>, name: &str) -> Result<bool, DbErr> {
    if name == create_tables::Migration.name() {
        create_tables::Migration::is_applied(manager).await
    } else if name == state_columns::Migration.name() {
        state_columns::Migration::is_applied(manager).await
    } else {
        Ok(false)
    }
}

/// The migration names recorded in `table` (none when it does not exist).
async fn recorded(manager: &SchemaManager<'_>, table: &str) -> Result<Vec<String>, DbErr> {
    if !manager.has_table(table).await? {
        return Ok(Vec::new());
    }
    let query = Query::select()
        .column(Alias::new("version"))
        .from(Alias::new(table))
        .to_owned();
    manager
        .get_connection()
        .query_all(&query)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "version"))
        .collect()
}

/// Where the schema stands, without writing anything.
pub(crate) async fn status(manager: &SchemaManager<'_>) -> Result<SchemaStatus, DbErr> {
    let known = known();
    let done: BTreeSet<String> = recorded(manager, MIGRATION_TABLE)
        .await?
        .into_iter()
        .collect();
    let unknown: Vec<String> = done
        .iter()
        .filter(|name| !known.contains(name))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Ok(SchemaStatus::Newer { unknown });
    }
    let mut pending = Vec::new();
    for name in known {
        if !done.contains(&name) && !in_schema(manager, &name).await? {
            pending.push(name);
        }
    }
    Ok(if pending.is_empty() {
        SchemaStatus::Current
    } else {
        SchemaStatus::Behind { pending }
    })
}

/// Creates [`MIGRATION_TABLE`] and records the migrations the schema already holds, so
/// that [`Migrator::up`] runs only what is missing.
///
/// A database an earlier release migrated keeps Sandkit's rows in `seaql_migrations`;
/// when that table holds nothing else (no application migrator has used it), they move
/// to [`MIGRATION_TABLE`], so the application's migrator can use `seaql_migrations` from
/// then on. Rows next to an application's are the application's (its migrator lists
/// Sandkit's migrations) and stay.
pub(crate) async fn adopt(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    Migrator::install(manager.get_connection()).await?;
    let known = known();
    let mut done: BTreeSet<String> = recorded(manager, MIGRATION_TABLE)
        .await?
        .into_iter()
        .collect();
    let legacy = recorded(manager, SEAQL_MIGRATIONS).await?;
    if !legacy.is_empty() && legacy.iter().all(|name| known.contains(name)) {
        for name in &legacy {
            if done.insert(name.clone()) {
                record(manager, name).await?;
            }
        }
        let delete = Query::delete()
            .from_table(Alias::new(SEAQL_MIGRATIONS))
            .and_where(Expr::col(Alias::new("version")).is_in(legacy.iter().cloned()))
            .to_owned();
        manager.get_connection().execute(&delete).await?;
        info!("moved Sandkit's migration records from {SEAQL_MIGRATIONS} to {MIGRATION_TABLE}");
    }
    for name in known {
        if !done.contains(&name) && in_schema(manager, &name).await? {
            record(manager, &name).await?;
            info!(migration = %name, "the schema already holds this Sandkit migration");
        }
    }
    Ok(())
}

/// Records `name` as applied now (the row shape sea-orm-migration writes).
async fn record(manager: &SchemaManager<'_>, name: &str) -> Result<(), DbErr> {
    let applied_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let insert = Query::insert()
        .into_table(Alias::new(MIGRATION_TABLE))
        .columns([Alias::new("version"), Alias::new("applied_at")])
        .values_panic([name.into(), applied_at.into()])
        .to_owned();
    manager.get_connection().execute(&insert).await?;
    Ok(())
}
