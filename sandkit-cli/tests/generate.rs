//! `sandkit generate`: discovery, writing without clobbering, SeaORM output, and an
//! existing database.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn sandkit(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("sandkit").expect("binary");
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("SANDKIT_DATABASE_URL")
        .env_remove("SANDKIT_PROVIDER")
        .write_stdin("");
    cmd
}

fn project(cargo_toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Cargo.toml"), cargo_toml).expect("manifest");
    dir
}

const POSTGRES_SQLX: &str = "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\nsqlx = { version = \"0.8\", features = [\"postgres\"] }\n";
const SQLITE_SEAORM: &str = "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\nsea-orm = { version = \"2\", features = [\"sqlx-sqlite\"] }\n";

#[test]
fn help_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    sandkit(dir.path())
        .args(["generate", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--dialect").and(predicate::str::contains("--database-url")),
        );
}

#[test]
fn an_empty_project_fails_with_what_to_pass() {
    let dir = tempfile::tempdir().expect("temp dir");
    sandkit(dir.path())
        .arg("generate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("could not tell the SQL dialect"))
        .stderr(predicate::str::contains("--dialect sqlite|postgres|mysql"));
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "nothing written"
    );
}

#[test]
fn sql_for_the_discovered_dialect_is_written_once_and_never_clobbered() {
    let dir = project(POSTGRES_SQLX);
    sandkit(dir.path())
        .arg("generate")
        .assert()
        .success()
        .stderr(predicate::str::contains("sqlx feature \"postgres\""))
        .stderr(predicate::str::contains(
            "dialect: postgres (confidence 100%)",
        ))
        .stdout(predicate::str::contains("created sandkit.postgres.sql"));
    let path = dir.path().join("sandkit.postgres.sql");
    let sql = std::fs::read_to_string(&path).expect("written");
    assert!(sql.contains("CREATE TABLE \"sandkit_workspaces\""));
    assert!(sql.contains("timestamp with time zone") && sql.contains("jsonb"));

    sandkit(dir.path())
        .arg("generate")
        .assert()
        .success()
        .stdout(predicate::str::contains("up to date"));

    std::fs::write(&path, "-- my edits\n").expect("edit");
    sandkit(dir.path())
        .arg("generate")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sandkit.postgres.sql"))
        .stderr(predicate::str::contains("--force"));
    assert_eq!(
        std::fs::read_to_string(&path).expect("kept"),
        "-- my edits\n"
    );
    sandkit(dir.path())
        .args(["generate", "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains("replaced sandkit.postgres.sql"));
    assert_eq!(std::fs::read_to_string(&path).expect("replaced"), sql);
}

#[test]
fn explicit_flags_skip_discovery_and_stdout_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    sandkit(dir.path())
        .args([
            "generate",
            "--adapter",
            "sql",
            "--dialect",
            "mysql",
            "--stdout",
        ])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("ENGINE=InnoDB").and(predicate::str::contains("datetime(3)")),
        )
        .stderr(predicate::str::contains("looked at").not());
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
}

#[test]
fn a_seaorm_project_gets_a_migration_and_entities() {
    let dir = project(SQLITE_SEAORM);
    sandkit(dir.path())
        .arg("generate")
        .assert()
        .success()
        .stderr(predicate::str::contains("adapter seaorm"))
        .stderr(predicate::str::contains("Migrator::migrations()"));
    let migration = dir
        .path()
        .join("migration/src/m20260801_000001_sandkit_schema_v2.rs");
    let text = std::fs::read_to_string(migration).expect("migration written");
    assert!(text.contains("impl MigrationTrait for Migration"));
    assert!(
        dir.path()
            .join("src/entities/sandkit/workspaces.rs")
            .is_file()
    );
}

#[test]
fn an_existing_database_gets_only_what_it_lacks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    sandkit(dir.path())
        .args(["generate", "--adapter", "sql", "--database-url", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("SQLite file exists"));

    sandkit(dir.path())
        .args(["--database", &url, "migrate"])
        .assert()
        .success();
    sandkit(dir.path())
        .args(["generate", "--adapter", "sql", "--database-url", &url])
        .assert()
        .success()
        .stdout(predicate::str::contains("up to date"));
    sandkit(dir.path())
        .args(["generate", "--dialect", "postgres", "--database-url", &url])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not match"));
}
