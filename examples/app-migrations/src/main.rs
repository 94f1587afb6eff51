//! The application's migration command: `up` applies pending migrations, `status` lists
//! them. `--app-only` runs the application's migrations without Sandkit's generated one
//! (for a database where Sandkit's schema came from the generated SQL).

use clap::{Parser, Subcommand};
use sandkit_example_app_migrations::migration::{AppOnlyMigrator, Migrator};
use sea_orm::Database;
use sea_orm_migration::MigratorTrait;

/// The application's migrations.
#[derive(Debug, Parser)]
#[command(name = "sandkit-example-app-migrations")]
struct Args {
    /// Database URL: sqlite://PATH?mode=rwc, postgres://…, mysql://…
    #[arg(long, env = "DATABASE_URL")]
    database: String,
    /// Leave out Sandkit's generated migration (its SQL was applied instead)
    #[arg(long)]
    app_only: bool,
    #[command(subcommand)]
    command: Step,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// Apply pending migrations (at most --steps of them)
    Up {
        /// How many to apply [default: all]
        #[arg(long)]
        steps: Option<u32>,
    },
    /// Print each migration and whether it is applied
    Status,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let db = Database::connect(args.database.as_str())
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    let outcome = match (args.command, args.app_only) {
        (Step::Up { steps }, false) => Migrator::up(&db, steps).await,
        (Step::Up { steps }, true) => AppOnlyMigrator::up(&db, steps).await,
        (Step::Status, app_only) => {
            let migrations = if app_only {
                AppOnlyMigrator::get_migration_with_status(&db).await
            } else {
                Migrator::get_migration_with_status(&db).await
            };
            migrations.map(|all| {
                for m in all {
                    println!("{} {}", m.name(), m.status());
                }
            })
        }
    };
    outcome.map_err(|e| format!("migration failed: {e}"))
}
