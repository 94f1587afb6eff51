//! The application's migrations.

mod m20260801_000001_sandkit_schema_v2;
mod m20270101_000001_create_projects;
mod m20270201_000001_add_project_title;

use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// Sandkit's schema (the generated migration), then the application's migrations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all: Vec<Box<dyn MigrationTrait>> =
            vec![Box::new(m20260801_000001_sandkit_schema_v2::Migration)];
        all.extend(app_migrations());
        all
    }
}

/// The application's migrations alone, for a database where Sandkit's schema came from
/// the generated SQL.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppOnlyMigrator;

impl MigratorTrait for AppOnlyMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        app_migrations()
    }
}

fn app_migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20270101_000001_create_projects::Migration),
        Box::new(m20270201_000001_add_project_title::Migration),
    ]
}
