//! The SeaORM output compiles without a warning in a project laid out as sea-orm-cli
//! makes one: an application binary crate with its entities (a private `mod
//! entities;`, so anything unused is dead code) and a `migration` crate whose `lib.rs`
//! declares its migrations privately — wired only by the lines the next steps print.
//! Both crates deny warnings. The generated entities and migrations (full schema and
//! an upgrade) are checked with the workspace's sea-orm version, offline, in the
//! workspace's target directory (so dependencies are reused).

use std::path::{Path, PathBuf};
use std::process::Command;

use sandkit_codegen::plan::{DatabaseState, current_state};
use sandkit_codegen::{
    Adapter, Dialect, Layout, NextStep, Plan, StepsInput, format_files, next_steps, plan, render,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// The workspace's `sea-orm` and `sea-orm-migration` dependencies: version and
/// features.
fn workspace_dependency(name: &str) -> (String, Vec<String>) {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("manifest");
    let doc: toml_edit::DocumentMut = manifest.parse().expect("toml");
    let spec = &doc["workspace"]["dependencies"][name];
    let version = spec["version"].as_str().expect("version").to_owned();
    let features = spec["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    (version, features)
}

/// A dependency line with the workspace's version and features (so the build reuses
/// the workspace's artifacts), after checking that the features the next step asks
/// for are among them.
fn dependency_line(step: &NextStep, name: &str) -> String {
    let (version, features) = workspace_dependency(name);
    let line = step.lines.first().expect("a dependency line");
    let asked: toml_edit::DocumentMut = line.parse().expect("the printed line is TOML");
    for feature in asked[name]["features"].as_array().expect("features") {
        let feature = feature.as_str().expect("feature name");
        assert!(
            features.iter().any(|f| f == feature),
            "{name} feature {feature:?} of the next steps is not in the workspace's"
        );
    }
    let features: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
    format!(
        "{name} = {{ version = \"{version}\", default-features = false, features = [{}] }}\n",
        features.join(", ")
    )
}

/// An older database for the upgrade migration: the original columns only.
fn older(dialect: Dialect) -> DatabaseState {
    let mut state = current_state(dialect);
    for table in state.tables.values_mut() {
        table.columns.retain(|name, _| name != "revision");
        table.indexes.clear();
    }
    state
}

/// sea-orm-cli's migration crate `lib.rs`, with one migration of the application's.
const MIGRATION_LIB: &str = "#![deny(warnings)]
pub use sea_orm_migration::prelude::*;

mod m20220101_000001_create_table;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20220101_000001_create_table::Migration),
        ]
    }
}
";

/// The application's own migration.
const APP_MIGRATION: &str = "use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Post::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Post::Id).integer().not_null().primary_key())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Post::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Post {
    Table,
    Id,
}
";

/// The application's binary: it uses none of Sandkit's entities.
const APP_MAIN: &str = "#![deny(warnings)]
fn main() {}
";

/// Adds `lines` to `text`: after the last line that starts like them (`mod …`,
/// `Box::new(…`), else at the end.
fn insert_lines(text: &str, lines: &[String]) -> String {
    let mut out: Vec<String> = text.lines().map(str::to_owned).collect();
    for line in lines {
        let prefix: String = line
            .chars()
            .take_while(|c| *c != ' ' && *c != '(')
            .collect();
        let at = out
            .iter()
            .rposition(|l| l.trim_start().starts_with(&prefix))
            .map_or(out.len(), |i| i + 1);
        out.insert(at, line.clone());
    }
    out.join("\n") + "\n"
}

/// Does what the next steps say, the way a person would: edits or creates the files
/// they name, and writes the dependency lines (with the workspace's features).
fn follow(root: &Path, steps: &[NextStep]) {
    for step in steps {
        let Some(file) = &step.file else {
            continue;
        };
        let path = root.join(file);
        if file.ends_with("Cargo.toml") {
            let name = if step.lines[0].starts_with("sea-orm-migration") {
                "sea-orm-migration"
            } else {
                "sea-orm"
            };
            let manifest = std::fs::read_to_string(&path).expect("manifest");
            if !manifest.contains(&format!("\n{name} = ")) {
                std::fs::write(&path, manifest + &dependency_line(step, name)).expect("manifest");
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if step.lines.iter().all(|l| text.contains(l.as_str())) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("directory");
        }
        std::fs::write(&path, insert_lines(&text, &step.lines)).expect("edit");
    }
}

#[test]
fn generated_seaorm_code_compiles_warning_free_in_a_users_project() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).expect("src");
    std::fs::create_dir_all(root.join("migration/src")).expect("migration/src");
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [workspace]\nmembers = [\".\", \"migration\"]\n\n[dependencies]\n",
    )
    .expect("manifest");
    std::fs::write(
        root.join("migration/Cargo.toml"),
        "[package]\nname = \"migration\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
         publish = false\n\n[lib]\nname = \"migration\"\npath = \"src/lib.rs\"\n\n\
         [dependencies]\n",
    )
    .expect("manifest");
    std::fs::write(root.join("src/main.rs"), APP_MAIN).expect("main.rs");
    std::fs::write(root.join("migration/src/lib.rs"), MIGRATION_LIB).expect("lib.rs");
    std::fs::write(
        root.join("migration/src/m20220101_000001_create_table.rs"),
        APP_MIGRATION,
    )
    .expect("migration");

    let layout = Layout::default();
    let upgrade = plan(Dialect::Postgres, &older(Dialect::Postgres));
    assert!(matches!(upgrade, Plan::Upgrade(_)));
    for (dialect, planned) in [(None, Plan::Absent), (Some(Dialect::Postgres), upgrade)] {
        let mut files = render(
            Adapter::SeaOrm,
            dialect.unwrap_or(Dialect::Sqlite),
            &planned,
            &layout,
        )
        .expect("render");
        format_files(&mut files).expect("rustfmt");
        sandkit_codegen::write_files(root, &files, true).expect("write");
        let steps = next_steps(&StepsInput {
            adapter: Adapter::SeaOrm,
            dialect,
            plan: &planned,
            layout: &layout,
            files: &files,
            database_url: None,
            project: Some(root),
        });
        follow(root, &steps);
    }
    assert!(
        root.join("src/entities/sandkit/mod.rs").is_file(),
        "the entities' mod.rs is generated"
    );
    let lib = std::fs::read_to_string(root.join("migration/src/lib.rs")).expect("lib.rs");
    assert!(
        lib.contains(&format!(
            "Box::new({}::Migration)",
            sandkit_codegen::UPGRADE_MIGRATION
        )),
        "{lib}"
    );
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).expect("lock file");

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["check", "--offline", "--workspace", "--all-targets"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("warning"),
        "the generated code does not compile without warnings in a user's project:\n{stderr}"
    );
}
