//! The SeaORM output compiles: a small crate made of the generated entities and
//! migrations (full schema and an upgrade) is checked with the workspace's sea-orm
//! version, offline, in the workspace's target directory (so dependencies are reused).

use std::path::{Path, PathBuf};
use std::process::Command;

use sandkit_codegen::plan::{DatabaseState, current_state};
use sandkit_codegen::{Adapter, Dialect, Layout, Plan, format_files, plan, render};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// The workspace's `sea-orm` and `sea-orm-migration` dependency lines, verbatim.
fn seaorm_dependencies() -> String {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("manifest");
    let doc: toml_edit::DocumentMut = manifest.parse().expect("toml");
    let deps = &doc["workspace"]["dependencies"];
    ["sea-orm", "sea-orm-migration"]
        .iter()
        .map(|name| {
            let spec = &deps[name];
            let version = spec["version"].as_str().expect("version");
            let features: Vec<String> = spec["features"]
                .as_array()
                .expect("features")
                .iter()
                .filter_map(|f| f.as_str().map(|f| format!("{f:?}")))
                .collect();
            format!(
                "{name} = {{ version = \"{version}\", default-features = false, features = [{}] }}\n",
                features.join(", ")
            )
        })
        .collect()
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

#[test]
fn generated_seaorm_code_compiles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let layout = Layout {
        sql_file: None,
        migration_dir: "src/migration".into(),
        entity_dir: "src/entities/sandkit".into(),
    };
    let mut files =
        render(Adapter::SeaOrm, Dialect::Sqlite, &Plan::Absent, &layout).expect("render");
    let upgrade = plan(Dialect::Postgres, &older(Dialect::Postgres));
    assert!(matches!(upgrade, Plan::Upgrade(_)));
    files.extend(
        render(Adapter::SeaOrm, Dialect::Postgres, &upgrade, &layout)
            .expect("render")
            .into_iter()
            .filter(|f| f.path.starts_with("src/migration")),
    );
    format_files(&mut files).expect("rustfmt");
    sandkit_codegen::write_files(root, &files, false).expect("write");

    let schema = sandkit_codegen::SCHEMA_MIGRATION;
    let upgrade = sandkit_codegen::UPGRADE_MIGRATION;
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"sandkit-generated-check\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\n{}\n[workspace]\n",
            seaorm_dependencies()
        ),
    )
    .expect("manifest");
    std::fs::write(
        root.join("src/lib.rs"),
        format!(
            "//! Generated Sandkit code, checked.\n#![deny(warnings)]\n\
             pub mod entities {{ pub mod sandkit; }}\n\
             pub mod migration {{\n    pub mod {schema};\n    pub mod {upgrade};\n\n\
             use sea_orm_migration::{{MigrationTrait, MigratorTrait}};\n\
             pub struct Migrator;\n\
             impl MigratorTrait for Migrator {{\n    fn migrations() -> Vec<Box<dyn MigrationTrait>> {{\n        \
             vec![Box::new({schema}::Migration), Box::new({upgrade}::Migration)]\n    }}\n}}\n}}\n\
             pub use entities::sandkit::workspaces::Entity as Workspaces;\n"
        ),
    )
    .expect("lib.rs");
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).expect("lock file");

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["check", "--offline", "--quiet", "--lib"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "the generated crate does not compile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
