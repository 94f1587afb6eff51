//! Dialect discovery on fixture projects: one per dialect, an ambiguous one and an
//! empty one.

use std::path::PathBuf;

use sandkit_codegen::discover::discover_with_env;
use sandkit_codegen::{CONFIDENT, Dialect, Discovery};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/discover")
        .join(name)
}

fn discover(name: &str) -> Discovery {
    discover_with_env(&fixture(name), None).expect("discover")
}

#[test]
fn sqlite_from_seaorm_features() {
    let found = discover("sqlite");
    assert_eq!(found.confident_dialect(), Some(Dialect::Sqlite));
    assert_eq!(found.confidence, 1.0);
    assert!(found.uses_seaorm);
    assert!(
        found.report().contains("sea-orm feature \"sqlx-sqlite\""),
        "{}",
        found.report()
    );
}

#[test]
fn postgres_from_sqlx_features_and_dotenv_without_leaking_the_url() {
    let found = discover("postgres");
    assert_eq!(found.confident_dialect(), Some(Dialect::Postgres));
    assert!(!found.uses_seaorm);
    let report = found.report();
    assert!(
        report.contains(".env: DATABASE_URL is a PostgreSQL URL"),
        "{report}"
    );
    assert!(report.contains("confidence 100%"), "{report}");
    assert!(
        !report.contains("hunter2") && !report.contains("db.internal"),
        "{report}"
    );
}

#[test]
fn mysql_from_the_migration_crate() {
    let found = discover("mysql");
    assert_eq!(found.confident_dialect(), Some(Dialect::MySql));
    assert_eq!(
        found.migration_crate,
        Some(fixture("mysql").join("migration"))
    );
    assert!(
        found
            .report()
            .contains("migration/Cargo.toml: sea-orm-migration feature")
    );
}

#[test]
fn the_environment_counts_too() {
    let found =
        discover_with_env(&fixture("empty"), Some("mariadb://u@h/db".into())).expect("discover");
    assert_eq!(found.confident_dialect(), Some(Dialect::MySql));
}

#[test]
fn conflicting_evidence_is_not_confident() {
    let found = discover("ambiguous");
    assert_eq!(
        found.dialect,
        Some(Dialect::MySql),
        "the URL weighs more than a feature"
    );
    assert!(found.confidence < CONFIDENT, "{}", found.confidence);
    assert_eq!(found.confident_dialect(), None);
    let err = found.unclear_error().to_string();
    assert!(
        err.contains("could not tell the SQL dialect with confidence (60% < 75%"),
        "{err}"
    );
    assert!(err.contains("mysql 3") && err.contains("sqlite 2"), "{err}");
    assert!(err.contains("--dialect sqlite|postgres|mysql"), "{err}");
}

#[test]
fn an_empty_project_says_what_was_looked_for() {
    let found = discover("empty");
    assert_eq!((found.dialect, found.confidence), (None, 0.0));
    let err = found.unclear_error();
    assert_eq!(err.kind(), &sandkit_core::ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(
        text.contains("found no Cargo.toml sea-orm/sqlx features, DATABASE_URL or database driver"),
        "{text}"
    );
    assert!(text.contains("pass it explicitly with --dialect"), "{text}");
}

#[test]
fn a_virtual_workspace_is_read_through_its_members() {
    let found = discover("workspace");
    let report = found.report();
    assert_eq!(
        found.confident_dialect(),
        Some(Dialect::Postgres),
        "{report}"
    );
    assert!(found.uses_seaorm, "{report}");
    assert_eq!(
        found.seaorm_source.as_deref(),
        Some("crates/app/Cargo.toml")
    );
    assert_eq!(
        found.migration_crate,
        Some(fixture("workspace").join("crates/migration"))
    );
    assert_eq!(
        found.entity_crate,
        Some(fixture("workspace").join("crates/app"))
    );
    assert!(
        report.contains(
            "Cargo.toml: a virtual workspace of 3 members (crates/app, crates/migration, \
             tools/cli)"
        ),
        "{report}"
    );
    assert!(
        report.contains("crates/app/Cargo.toml: sea-orm feature \"sqlx-postgres\""),
        "{report}"
    );
    assert!(
        report.contains("adapter: seaorm (crates/app/Cargo.toml depends on sea-orm)"),
        "{report}"
    );
    assert!(
        report.contains(
            "dialect: postgres (confidence 100%, decided by crates/app/Cargo.toml, \
             crates/migration/Cargo.toml)"
        ),
        "{report}"
    );
    assert!(
        !report.contains("legacy"),
        "excluded members do not count: {report}"
    );
}
