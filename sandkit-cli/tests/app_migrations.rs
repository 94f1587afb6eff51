//! README "Adding Sandkit to an app that owns its migrations", walked through with the
//! example application (`examples/app-migrations`) on SQLite, PostgreSQL and MariaDB:
//! its Migrator runs the migration `sandkit generate` wrote plus its own (one with a
//! foreign key to `sandkit_workspaces`), and Sandkit — the CLI and `SeaOrmStore` — works
//! on that database whichever ran first, and still after the app's next migration. The
//! same with the generated SQL applied by the database's own client.

#[path = "../../sandkit-adapter-seaorm/tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TestDb;
use sandkit_adapter_seaorm::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use sandkit_adapter_seaorm::{Dialect, SchemaStatus, SeaOrmStore};
use sandkit_example_app_migrations::migration::{AppOnlyMigrator, Migrator};
use sea_orm_migration::MigratorTrait;

/// The real `sandkit` binary on `db`, with its home (the local provider) under `home`.
fn sandkit(db: &TestDb, home: &Path, args: &[&str]) -> Output {
    Command::new(assert_cmd::cargo::cargo_bin("sandkit"))
        .current_dir(home)
        .env_remove("SANDKIT_HOME")
        .env_remove("SANDKIT_PROVIDER")
        .env_remove("SANDKIT_NO_MIGRATE")
        .env_remove("RUST_LOG")
        .env("SANDKIT_DATABASE_URL", &db.url)
        .args(args)
        .output()
        .expect("run sandkit")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One durable command through the CLI: appends a line to `log.txt` and prints it.
fn durable_run(db: &TestDb, home: &Path, extra: &[&str], line: &str) -> String {
    let script = format!("echo {line} >> log.txt && cat log.txt");
    let mut args = extra.to_vec();
    args.extend(["run", "agent", "--", "sh", "-c", script.as_str()]);
    ok(&sandkit(db, home, &args))
}

/// The application's own connection (as it would open it).
async fn app_connection(db: &TestDb) -> DatabaseConnection {
    let url = match db.dialect {
        Dialect::Sqlite => format!("{}?mode=rwc", db.url),
        _ => db.url.clone(),
    };
    Database::connect(url.as_str()).await.expect("app connects")
}

async fn rows(conn: &DatabaseConnection, table: &str) -> Vec<String> {
    let sql = format!("SELECT version FROM {table} ORDER BY version");
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("read migration records")
        .iter()
        .map(|row| row.try_get::<String>("", "version").expect("version"))
        .collect()
}

/// The app's foreign key holds: a project of an existing workspace is stored, one of a
/// missing workspace is refused.
async fn projects_reference_workspaces(conn: &DatabaseConnection, id: i32) {
    let backend = conn.get_database_backend();
    if backend == DbBackend::Sqlite {
        conn.execute_unprepared("PRAGMA foreign_keys = ON")
            .await
            .expect("foreign keys on");
    }
    let insert = |workspace: &str| {
        Statement::from_string(
            backend,
            format!("INSERT INTO projects (id, workspace_id) VALUES ({id}, '{workspace}')"),
        )
    };
    conn.execute_raw(insert("agent"))
        .await
        .expect("a project of an existing workspace");
    assert!(
        conn.execute_raw(insert("no-such-workspace")).await.is_err(),
        "the foreign key refuses a missing workspace"
    );
}

async fn app_migrates_first(db: TestDb) {
    let home = tempfile::tempdir().expect("home");
    let conn = app_connection(&db).await;
    // Sandkit's generated migration and the app's first one.
    Migrator::up(&conn, Some(2))
        .await
        .expect("the app migrates");

    let check = sandkit(&db, home.path(), &["migrate", "--check"]);
    ok(&check);
    assert_eq!(
        durable_run(&db, home.path(), &["--no-migrate"], "one"),
        "one\n"
    );
    projects_reference_workspaces(&conn, 1).await;

    // The app's next migration, then Sandkit again (migrating this time: a no-op).
    Migrator::up(&conn, None)
        .await
        .expect("the app's next migration");
    assert_eq!(durable_run(&db, home.path(), &[], "two"), "one\ntwo\n");
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(rows(&conn, "seaql_migrations").await, names);
    assert!(
        Migrator::get_pending_migrations(&conn)
            .await
            .expect("status")
            .is_empty()
    );
    let store = SeaOrmStore::new(conn.clone());
    store.migrate().await.expect("the library migrates too");
    assert_eq!(
        store.schema_status().await.expect("status"),
        SchemaStatus::Current
    );
}

async fn sandkit_migrates_first(db: TestDb) {
    let home = tempfile::tempdir().expect("home");
    ok(&sandkit(&db, home.path(), &["migrate"]));
    assert_eq!(durable_run(&db, home.path(), &[], "one"), "one\n");

    let conn = app_connection(&db).await;
    Migrator::up(&conn, None)
        .await
        .expect("the app migrates after Sandkit, its copy of Sandkit's migration included");
    projects_reference_workspaces(&conn, 1).await;
    assert_eq!(
        durable_run(&db, home.path(), &["--no-migrate"], "two"),
        "one\ntwo\n"
    );
    assert_eq!(rows(&conn, "seaql_migrations").await.len(), 3);
}

/// Applies `file` with the engine's own command-line client.
fn apply_with_client(db: &TestDb, file: &Path) {
    let mut cmd = match db.dialect {
        Dialect::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://");
            let mut cmd = Command::new("sqlite3");
            cmd.args(["-bail", path, &format!(".read {}", file.display())]);
            cmd
        }
        Dialect::Postgres => {
            let mut cmd = Command::new("psql");
            cmd.args(["-v", "ON_ERROR_STOP=1", "-q", &db.url, "-f"])
                .arg(file);
            cmd
        }
        Dialect::MySql => {
            let url = url::Url::parse(&db.url).expect("url");
            let mut cmd = Command::new("mariadb");
            cmd.arg("--protocol=tcp")
                .arg(format!("--host={}", url.host_str().unwrap_or("127.0.0.1")))
                .arg(format!("--port={}", url.port().unwrap_or(3306)))
                .arg(format!("--user={}", url.username()))
                .arg(format!("--execute=source {}", file.display()))
                .arg(url.path().trim_start_matches('/'));
            if let Some(password) = url.password() {
                cmd.arg(format!("--password={password}"));
            }
            cmd
        }
    };
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e}; install the database's command-line client (see .ci/run)")
    });
    ok(&out);
}

async fn generated_sql_applied_by_the_client(db: TestDb) {
    let home = tempfile::tempdir().expect("home");
    let project = tempfile::tempdir().expect("project");
    let dialect = match db.dialect {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
        Dialect::MySql => "mysql",
    };
    let file = project.path().join("sandkit.sql");
    let generate = Command::new(assert_cmd::cargo::cargo_bin("sandkit"))
        .current_dir(project.path())
        .args([
            "generate",
            "--adapter",
            "sql",
            "--dialect",
            dialect,
            "--out",
        ])
        .arg(&file)
        .output()
        .expect("generate");
    ok(&generate);
    apply_with_client(&db, &file);

    let check = sandkit(&db, home.path(), &["migrate", "--check", "--json"]);
    assert!(ok(&check).contains("\"current\""));
    assert_eq!(
        durable_run(&db, home.path(), &["--no-migrate"], "one"),
        "one\n"
    );
    let conn = app_connection(&db).await;
    AppOnlyMigrator::up(&conn, Some(1))
        .await
        .expect("the app's first migration");
    projects_reference_workspaces(&conn, 1).await;
    assert_eq!(durable_run(&db, home.path(), &[], "two"), "one\ntwo\n");
    AppOnlyMigrator::up(&conn, None)
        .await
        .expect("the app's next migration");
    assert_eq!(
        durable_run(&db, home.path(), &["--no-migrate"], "three"),
        "one\ntwo\nthree\n"
    );
    assert_eq!(rows(&conn, "seaql_migrations").await.len(), 2);
}

macro_rules! on_every_dialect {
    ($scenario:ident: $($name:ident => $dialect:expr),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some(db) = TestDb::new($dialect).await {
                    $scenario(db).await;
                }
            }
        )+
    };
}

on_every_dialect!(app_migrates_first:
    app_first_on_sqlite => Dialect::Sqlite,
    app_first_on_postgres => Dialect::Postgres,
    app_first_on_mysql => Dialect::MySql,
);

on_every_dialect!(sandkit_migrates_first:
    sandkit_first_on_sqlite => Dialect::Sqlite,
    sandkit_first_on_postgres => Dialect::Postgres,
    sandkit_first_on_mysql => Dialect::MySql,
);

on_every_dialect!(generated_sql_applied_by_the_client:
    sql_on_sqlite => Dialect::Sqlite,
    sql_on_postgres => Dialect::Postgres,
    sql_on_mysql => Dialect::MySql,
);

#[test]
fn no_migrate_refuses_an_empty_database_with_the_command_that_fixes_it() {
    let home = tempfile::tempdir().expect("home");
    let db = TestDb::sqlite();
    let out = sandkit(&db, home.path(), &["--no-migrate", "runs", "agent"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sandkit migrate"), "{stderr}");
    assert!(!stderr.contains("retry"), "{stderr}");
    let check = sandkit(&db, home.path(), &["migrate", "--check"]);
    assert_eq!(check.status.code(), Some(1), "behind");
    ok(&sandkit(&db, home.path(), &["migrate"]));
    ok(&sandkit(&db, home.path(), &["migrate", "--check"]));
}
