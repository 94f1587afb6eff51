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
            "dialect: postgres (confidence 100%, decided by Cargo.toml)",
        ))
        .stdout(predicate::str::contains("created sandkit.postgres.sql"));
    let path = dir.path().join("sandkit.postgres.sql");
    let sql = std::fs::read_to_string(&path).expect("written");
    assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"sandkit_workspaces\""));
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
        .code(5)
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
    let module = "m20260801_000001_sandkit_schema_v2";
    sandkit(dir.path())
        .arg("generate")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "adapter seaorm (Cargo.toml depends on sea-orm)",
        ))
        .stderr(predicate::str::contains("Migrator::migrations()"))
        // Every line to add, in the file it goes to.
        .stderr(predicate::str::contains(format!(
            "in migration/src/lib.rs: declare the migration's module, next to the other `mod` \
             lines\n      mod {module};"
        )))
        .stderr(predicate::str::contains(format!(
            "\n      Box::new({module}::Migration),"
        )))
        .stderr(predicate::str::contains(
            "in src/entities/mod.rs: create it, declaring the entities' module (the directory \
             sandkit/ beside it)\n      pub mod sandkit;",
        ))
        .stderr(predicate::str::contains(
            "in src/lib.rs: declare the module entities",
        ))
        .stderr(predicate::str::contains(
            "in migration/Cargo.toml: sea-orm-migration needs your database's driver feature",
        ))
        .stderr(predicate::str::contains(
            "\"sqlx-sqlite\", \"runtime-tokio-rustls\"",
        ))
        .stderr(predicate::str::contains(
            "\"macros\", \"with-json\", \"with-chrono\"",
        ))
        .stderr(predicate::str::contains(
            "cargo run --manifest-path migration/Cargo.toml -- up",
        ))
        .stderr(predicate::str::contains(
            "sandkit migrate --check --database \"$DATABASE_URL\"",
        ));
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

#[test]
fn sql_next_steps_say_how_to_apply_and_check_it() {
    for (dialect, apply) in [
        (
            "postgres",
            "psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -f sandkit.postgres.sql",
        ),
        (
            "mysql",
            "mariadb --host HOST --user USER --password DATABASE < sandkit.mysql.sql",
        ),
        ("sqlite", "sqlite3 PATH/TO/DATABASE.db < sandkit.sqlite.sql"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let assert = sandkit(dir.path())
            .args(["generate", "--adapter", "sql", "--dialect", dialect])
            .assert()
            .success()
            .stderr(predicate::str::contains("apply it once to your database"))
            .stderr(predicate::str::contains(apply))
            .stderr(predicate::str::contains(
                "sandkit migrate --check --database \"$DATABASE_URL\"",
            ));
        let sql = std::fs::read_to_string(dir.path().join(format!("sandkit.{dialect}.sql")))
            .expect("written");
        assert!(sql.contains("Apply it once"), "{sql}");
        assert!(
            sql.contains("sandkit migrate --check --database URL"),
            "{sql}"
        );
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert_eq!(
            stderr.contains("VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
            dialect == "mysql",
            "{stderr}"
        );
    }
}

/// The first bytes of a SQLite file's header: bytes 18 and 19 are 1 in rollback-journal
/// mode and 2 in WAL mode.
fn sqlite_write_read_versions(path: &Path) -> (u8, u8) {
    let bytes = std::fs::read(path).expect("database file");
    (bytes[18], bytes[19])
}

#[test]
fn introspecting_a_sqlite_file_never_changes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("app.db");
    let status = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(
            "PRAGMA journal_mode = delete; \
             CREATE TABLE app_jobs (id INTEGER PRIMARY KEY, name TEXT); \
             INSERT INTO app_jobs (name) VALUES ('first');",
        )
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) => assert!(status.success(), "sqlite3 failed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Without the sqlite3 client, make the same file through sqlx.
            make_sqlite_file(&db);
        }
        Err(e) => panic!("sqlite3: {e}"),
    }
    assert_eq!(
        sqlite_write_read_versions(&db),
        (1, 1),
        "journal_mode=delete"
    );
    let before = std::fs::read(&db).expect("read");

    let url = format!("sqlite://{}", db.display());
    sandkit(dir.path())
        .args(["generate", "--adapter", "sql", "--database-url", &url])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "has no Sandkit tables: generating the full schema",
        ))
        .stdout(predicate::str::contains("created sandkit.sqlite.sql"))
        .stderr(predicate::str::contains(format!(
            "sqlite3 {} < sandkit.sqlite.sql",
            db.display()
        )));
    assert_eq!(
        sqlite_write_read_versions(&db),
        (1, 1),
        "still journal_mode=delete"
    );
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "not one byte changed"
    );
    assert!(!dir.path().join("app.db-wal").exists());
    assert!(!dir.path().join("app.db-shm").exists());
}

/// A journal_mode=delete SQLite file with an application table, made through sqlx.
fn make_sqlite_file(path: &Path) {
    use sandkit_adapter_seaorm::sea_orm::sqlx::sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode,
    };
    use sandkit_adapter_seaorm::sea_orm::sqlx::{Connection, Executor};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("create");
        conn.execute(
            "CREATE TABLE app_jobs (id INTEGER PRIMARY KEY, name TEXT); \
             INSERT INTO app_jobs (name) VALUES ('first');",
        )
        .await
        .expect("app table");
        conn.close().await.expect("close");
    });
}

/// A scratch database on the MariaDB/MySQL test server, dropped on drop.
struct MysqlScratch {
    server: String,
    name: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl MysqlScratch {
    fn new() -> Option<MysqlScratch> {
        let server = std::env::var("SANDKIT_TEST_MYSQL_URL")
            .ok()
            .filter(|u| !u.trim().is_empty());
        let Some(server) = server else {
            assert!(
                !matches!(std::env::var("CI").as_deref(), Ok("true" | "1")),
                "SANDKIT_TEST_MYSQL_URL is not set but CI=true: CI must run this test"
            );
            eprintln!("skipped: set SANDKIT_TEST_MYSQL_URL to run this test against MariaDB");
            return None;
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let name = format!("sandkit_test_gen_{}_{nanos}", std::process::id());
        let scratch = MysqlScratch {
            url: format!(
                "{}/{name}",
                server.rsplit_once('/').expect("a database path").0
            ),
            server,
            name,
            rt,
        };
        scratch.run(
            &scratch.server,
            &[format!("CREATE DATABASE {}", scratch.name)],
        );
        Some(scratch)
    }

    /// Runs `statements` in order on one connection to `url`.
    fn run(&self, url: &str, statements: &[String]) {
        use sandkit_adapter_seaorm::sea_orm::{ConnectOptions, ConnectionTrait, Database};
        self.rt.block_on(async {
            let mut options = ConnectOptions::new(url.to_owned());
            options.max_connections(1).sqlx_logging(false);
            let conn = Database::connect(options).await.expect("connect");
            for statement in statements {
                conn.execute_unprepared(statement)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            conn.close().await.expect("close");
        });
    }
}

impl Drop for MysqlScratch {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {}", self.name);
        self.run(&self.server.clone(), &[drop]);
    }
}

#[test]
fn an_app_key_to_a_sandkit_id_with_another_collation_gets_the_fix_printed() {
    let Some(db) = MysqlScratch::new() else {
        return;
    };
    // A key made before the referenced table existed (foreign_key_checks = 0, as a
    // dump restore does), in the server's default collation: MariaDB accepts it, and
    // then rejects every row.
    let mut setup = vec![
        "SET foreign_key_checks = 0".to_owned(),
        "CREATE TABLE app_jobs (id int PRIMARY KEY, workspace_id varchar(255) NOT NULL, \
         CONSTRAINT app_jobs_ws_fk FOREIGN KEY (workspace_id) REFERENCES sandkit_workspaces (id) \
         ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
            .to_owned(),
    ];
    setup.extend(sandkit_codegen::split_statements(
        &sandkit_codegen::sql_schema(sandkit_codegen::Dialect::MySql).expect("render"),
    ));
    setup.push("SET foreign_key_checks = 1".to_owned());
    setup.push(
        "INSERT INTO sandkit_workspaces (id, status, createdAt, updatedAt) \
         VALUES ('ws-1', 'active', NOW(3), NOW(3))"
            .to_owned(),
    );
    db.run(&db.url, &setup);

    let dir = tempfile::tempdir().expect("temp dir");
    let output = sandkit(dir.path())
        .args(["generate", "--adapter", "sql", "--database-url", &db.url])
        .assert()
        .success()
        .stdout(predicate::str::contains("up to date"))
        .stderr(predicate::str::contains(
            "sandkit: warning: `app_jobs`.`workspace_id` (utf8mb4_general_ci) references \
             `sandkit_workspaces`.`id` (utf8mb4_bin)",
        ))
        .stderr(predicate::str::contains(
            "ALTER TABLE `app_jobs` MODIFY `workspace_id` varchar(255) CHARACTER SET utf8mb4 \
             COLLATE utf8mb4_bin NOT NULL;",
        ))
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let fix: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  ALTER TABLE "))
        .map(|l| format!("ALTER TABLE {}", l.trim_end_matches(';')))
        .collect();
    assert_eq!(fix.len(), 3, "{stderr}");

    // Running what it printed fixes the key: rows go in, and the warning is gone.
    db.run(&db.url, &fix);
    db.run(
        &db.url,
        &["INSERT INTO app_jobs (id, workspace_id) VALUES (1, 'ws-1')".to_owned()],
    );
    sandkit(dir.path())
        .args(["generate", "--adapter", "sql", "--database-url", &db.url])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").not());
}

#[test]
fn sql_applied_with_the_printed_commands_passes_the_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("app.db");
    let made = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE app_jobs (id INTEGER PRIMARY KEY);")
        .status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(
            !matches!(std::env::var("CI").as_deref(), Ok("true" | "1")),
            "the sqlite3 client is missing but CI=true"
        );
        eprintln!("skipped: the sqlite3 client is not installed");
        return;
    }
    let url = format!("sqlite://{}", db.display());
    let output = sandkit(dir.path())
        .args(["generate", "--adapter", "sql", "--database-url", &url])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let commands: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("      "))
        .collect();
    assert_eq!(commands.len(), 2, "{stderr}");
    let bin = assert_cmd::cargo::cargo_bin("sandkit");
    // The apply command twice (the schema SQL is safe to re-apply), then the check.
    for command in [commands[0], commands[0], commands[1]] {
        let command = command.replace("sandkit migrate", &format!("{} migrate", bin.display()));
        let status = std::process::Command::new("sh")
            .args(["-c", &command])
            .current_dir(dir.path())
            .env_remove("SANDKIT_DATABASE_URL")
            .status()
            .expect("run");
        assert!(status.success(), "{command}");
    }
}

#[test]
fn a_virtual_workspace_gets_its_output_in_the_member_crates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "Cargo.toml",
        "[workspace]\nresolver = \"3\"\nmembers = [\"crates/*\"]\n",
    );
    write(
        "crates/app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\n\
         sea-orm = { version = \"2\", features = [\"sqlx-mysql\"] }\n",
    );
    write("crates/app/src/lib.rs", "");
    write(
        "crates/migration/Cargo.toml",
        "[package]\nname = \"migration\"\nversion = \"0.1.0\"\n\n[dependencies]\n\
         sea-orm-migration = \"2\"\n",
    );
    sandkit(dir.path())
        .arg("generate")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "adapter seaorm (crates/app/Cargo.toml depends on sea-orm)",
        ))
        .stderr(predicate::str::contains(
            "dialect: mysql (confidence 100%, decided by crates/app/Cargo.toml)",
        ))
        .stderr(predicate::str::contains(
            "in crates/migration/src/lib.rs: declare the migration's module",
        ))
        .stderr(predicate::str::contains(
            "in crates/app/src/lib.rs: declare the module entities",
        ))
        .stderr(predicate::str::contains(
            "\"sqlx-mysql\", \"runtime-tokio-rustls\"",
        ));
    assert!(
        dir.path()
            .join("crates/migration/src/m20260801_000001_sandkit_schema_v2.rs")
            .is_file()
    );
    assert!(
        dir.path()
            .join("crates/app/src/entities/sandkit/mod.rs")
            .is_file()
    );
}
