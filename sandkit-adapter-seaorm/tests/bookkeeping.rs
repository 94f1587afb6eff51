//! Sandkit's migrations next to an application's own, on every dialect: its records
//! stay in `sandkit_migrations`, a schema that is already current (however it got
//! there) counts as current, earlier releases' records move over, and many processes
//! migrating an empty database at once all succeed.

mod common;

use common::TestDb;
use sandkit_adapter_seaorm::migration::{MIGRATION_TABLE, migrations};
use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sandkit_adapter_seaorm::{Dialect, SchemaStatus, SeaOrmStore};
use sandkit_core::{ErrorKind, Store, WorkspaceWrite, WriteBatch};
use sandkit_testkit::store_suite::full_workspace;
use sea_orm_migration::prelude::*;

/// The application's own migration: a table of its own.
struct CreateNotes;

impl MigrationName for CreateNotes {
    fn name(&self) -> &str {
        "m20270101_000001_create_app_notes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateNotes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("app_notes")
                    .col(ColumnDef::new("id").integer().not_null().primary_key())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("app_notes").to_owned())
            .await
    }
}

/// The application's second migration, added later.
struct AddNoteText;

impl MigrationName for AddNoteText {
    fn name(&self) -> &str {
        "m20270101_000002_add_note_text"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddNoteText {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("app_notes")
                    .add_column(ColumnDef::new("body").text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

/// The application's migrator before and after its second migration.
struct AppV1;
struct AppV2;

impl MigratorTrait for AppV1 {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateNotes)]
    }
}

impl MigratorTrait for AppV2 {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateNotes), Box::new(AddNoteText)]
    }
}

/// An application migrator that lists Sandkit's migrations next to its own (in its own
/// `seaql_migrations`), as the adapter's docs used to suggest.
struct AppWithSandkit;

impl MigratorTrait for AppWithSandkit {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = migrations();
        all.push(Box::new(CreateNotes));
        all
    }
}

/// What an earlier release's `SeaOrmStore::migrate()` ran: Sandkit's migrations,
/// recorded in the default `seaql_migrations`.
struct EarlierRelease;

impl MigratorTrait for EarlierRelease {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }
}

/// The migration names recorded in `table`, sorted (none when it does not exist).
async fn rows(db: &DatabaseConnection, table: &str) -> Vec<String> {
    if !SchemaManager::new(db)
        .has_table(table)
        .await
        .expect("probe")
    {
        return Vec::new();
    }
    let sql = format!("SELECT version FROM {table} ORDER BY version");
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("read records")
        .iter()
        .map(|row| row.try_get::<String>("", "version").expect("version"))
        .collect()
}

fn sandkit_names() -> Vec<String> {
    migrations().iter().map(|m| m.name().to_owned()).collect()
}

/// The store works: a workspace round-trips.
async fn works(store: &SeaOrmStore, id: &str) {
    let record = full_workspace(id);
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(
            record.clone(),
        )))
        .await
        .expect("write a workspace");
    assert!(
        store
            .get_workspace(&record.id)
            .await
            .expect("read")
            .is_some()
    );
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

async fn app_first_then_sandkit_then_app_again(db: TestDb) {
    let store = db.store().await;
    let conn = store.connection();
    AppV1::up(conn, None).await.expect("app migrates");
    store
        .migrate()
        .await
        .expect("sandkit migrates next to the app's records");
    works(&store, "ws-app-first").await;
    AppV2::up(conn, None)
        .await
        .expect("the app's next migration still runs");
    store.migrate().await.expect("sandkit migrates again");
    assert_eq!(
        rows(conn, "seaql_migrations").await,
        [
            "m20270101_000001_create_app_notes",
            "m20270101_000002_add_note_text"
        ],
        "the app's table holds the app's records only"
    );
    assert_eq!(rows(conn, MIGRATION_TABLE).await, sandkit_names());
    assert_eq!(
        AppV2::get_pending_migrations(conn)
            .await
            .expect("status")
            .len(),
        0
    );
}

on_every_dialect!(app_first_then_sandkit_then_app_again:
    app_first_on_sqlite => Dialect::Sqlite,
    app_first_on_postgres => Dialect::Postgres,
    app_first_on_mysql => Dialect::MySql,
);

async fn sandkit_first_then_app(db: TestDb) {
    let store = db.migrated().await;
    let conn = store.connection();
    assert!(
        rows(conn, "seaql_migrations").await.is_empty(),
        "sandkit never writes the app's table"
    );
    AppV1::up(conn, None)
        .await
        .expect("the app migrates after sandkit");
    AppV2::up(conn, None).await.expect("and again");
    store.migrate().await.expect("sandkit still migrates");
    works(&store, "ws-sandkit-first").await;
}

on_every_dialect!(sandkit_first_then_app:
    sandkit_first_on_sqlite => Dialect::Sqlite,
    sandkit_first_on_postgres => Dialect::Postgres,
    sandkit_first_on_mysql => Dialect::MySql,
);

async fn schema_made_by_the_app_counts_as_current(db: TestDb) {
    let store = db.store().await;
    let conn = store.connection();
    AppWithSandkit::up(conn, None)
        .await
        .expect("the app's migrator makes Sandkit's tables");
    assert_eq!(
        store.schema_status().await.expect("status"),
        SchemaStatus::Current
    );
    store
        .require_current_schema()
        .await
        .expect("current without Sandkit's own records");
    store.migrate().await.expect("nothing left to run");
    assert_eq!(rows(conn, MIGRATION_TABLE).await, sandkit_names());
    assert_eq!(
        rows(conn, "seaql_migrations").await.len(),
        3,
        "the app's records (Sandkit's two among them) are the app's and stay"
    );
    assert!(
        AppWithSandkit::get_pending_migrations(conn)
            .await
            .expect("app status")
            .is_empty()
    );
    works(&store, "ws-made-by-app").await;
}

on_every_dialect!(schema_made_by_the_app_counts_as_current:
    made_by_app_on_sqlite => Dialect::Sqlite,
    made_by_app_on_postgres => Dialect::Postgres,
    made_by_app_on_mysql => Dialect::MySql,
);

async fn earlier_release_records_move(db: TestDb) {
    let store = db.store().await;
    let conn = store.connection();
    EarlierRelease::up(conn, None)
        .await
        .expect("an earlier release migrates");
    assert_eq!(rows(conn, "seaql_migrations").await, sandkit_names());
    store.migrate().await.expect("upgrade the bookkeeping");
    assert!(rows(conn, "seaql_migrations").await.is_empty());
    assert_eq!(rows(conn, MIGRATION_TABLE).await, sandkit_names());
    AppV1::up(conn, None)
        .await
        .expect("the app's migrator no longer trips over Sandkit's records");
    works(&store, "ws-earlier").await;
}

on_every_dialect!(earlier_release_records_move:
    earlier_release_on_sqlite => Dialect::Sqlite,
    earlier_release_on_postgres => Dialect::Postgres,
    earlier_release_on_mysql => Dialect::MySql,
);

async fn status_behind_newer_and_half_done(db: TestDb) {
    let store = db.store().await;
    let conn = store.connection();
    assert_eq!(
        store.schema_status().await.expect("status"),
        SchemaStatus::Behind {
            pending: sandkit_names()
        }
    );
    let err = store.require_current_schema().await.expect_err("behind");
    assert_eq!(err.kind(), &ErrorKind::Storage);
    assert!(err.to_string().contains("sandkit migrate"), "{err}");
    assert!(
        !SchemaManager::new(conn)
            .has_table(MIGRATION_TABLE)
            .await
            .expect("probe"),
        "reading the status writes nothing"
    );

    // A migration that stopped half-way (MySQL cannot roll DDL back) completes.
    store.migrate().await.expect("migrate");
    let state_columns = &sandkit_names()[1];
    let backend = conn.get_database_backend();
    for sql in [
        format!("DELETE FROM {MIGRATION_TABLE} WHERE version = '{state_columns}'"),
        "ALTER TABLE sandkit_runs DROP COLUMN snapshot_deleted_at".to_owned(),
    ] {
        conn.execute_raw(Statement::from_string(backend, sql))
            .await
            .expect("undo part of the migration");
    }
    assert_eq!(
        store.schema_status().await.expect("status"),
        SchemaStatus::Behind {
            pending: vec![state_columns.clone()]
        }
    );
    store
        .migrate()
        .await
        .expect("completes the half-done migration");
    assert_eq!(
        store.schema_status().await.expect("status"),
        SchemaStatus::Current
    );

    // A newer Sandkit's record: refused with what to do, nothing run.
    let sql = format!(
        "INSERT INTO {MIGRATION_TABLE} (version, applied_at) VALUES ('m20990101_000001_future', 0)"
    );
    conn.execute_raw(Statement::from_string(backend, sql))
        .await
        .expect("insert");
    let err = store.migrate().await.expect_err("newer");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    assert!(err.to_string().contains("upgrade sandkit"), "{err}");
    assert!(!err.to_string().contains("retry"), "{err}");
}

on_every_dialect!(status_behind_newer_and_half_done:
    status_on_sqlite => Dialect::Sqlite,
    status_on_postgres => Dialect::Postgres,
    status_on_mysql => Dialect::MySql,
);

async fn first_use_by_many_at_once(db: TestDb) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let store = SeaOrmStore::connect(&url).await?;
            store.migrate().await
        }));
    }
    for task in tasks {
        task.await
            .expect("task")
            .expect("every process migrates the empty database");
    }
    let store = db.store().await;
    assert_eq!(
        rows(store.connection(), MIGRATION_TABLE).await,
        sandkit_names()
    );
    works(&store, "ws-first-use").await;
}

on_every_dialect!(first_use_by_many_at_once:
    first_use_on_sqlite => Dialect::Sqlite,
    first_use_on_postgres => Dialect::Postgres,
    first_use_on_mysql => Dialect::MySql,
);

/// A TypeScript-made MariaDB database whose app table references Sandkit's ids: the
/// upgrade keeps the case-insensitive collation (it will not break the app's key); the
/// conversion then moves Sandkit's ids and the app's column to `utf8mb4_bin`, keeps the
/// key, and ids that differ only in case become distinct workspaces.
#[tokio::test]
async fn typescript_ids_become_binary_with_the_apps_keys_on_mysql() {
    let Some(db) = TestDb::new(Dialect::MySql).await else {
        return;
    };
    let store = db.store().await;
    let conn = store.connection();
    let backend = conn.get_database_backend();
    let exec = |sql: String| conn.execute_raw(Statement::from_string(backend, sql));
    for sql in common::typescript::typescript_ddl(Dialect::MySql) {
        exec(sql).await.expect("TypeScript DDL");
    }
    exec(
        "CREATE TABLE app_projects (id INT PRIMARY KEY, workspace_id varchar(255) NOT NULL, \
         CONSTRAINT app_projects_ws_fk FOREIGN KEY (workspace_id) \
         REFERENCES sandkit_workspaces (id) ON DELETE CASCADE) \
         CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            .to_owned(),
    )
    .await
    .expect("app table");
    store.migrate().await.expect("upgrade keeps the app's key");

    let collation = |table: &'static str, column: &'static str| async move {
        let sql = format!(
            "SELECT CAST(COLLATION_NAME AS CHAR) AS c FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{column}'"
        );
        conn.query_one_raw(Statement::from_string(backend, sql))
            .await
            .expect("query")
            .expect("row")
            .try_get::<String>("", "c")
            .expect("collation")
    };
    assert_ne!(collation("sandkit_workspaces", "id").await, "utf8mb4_bin");

    store
        .convert_ids_to_binary_collation()
        .await
        .expect("convert");
    assert_eq!(collation("sandkit_workspaces", "id").await, "utf8mb4_bin");
    assert_eq!(
        collation("sandkit_runs", "workspace_id").await,
        "utf8mb4_bin"
    );
    assert_eq!(
        collation("app_projects", "workspace_id").await,
        "utf8mb4_bin"
    );
    store
        .convert_ids_to_binary_collation()
        .await
        .expect("a second conversion is a no-op");

    works(&store, "Agent").await;
    works(&store, "agent").await;
    exec("INSERT INTO app_projects (id, workspace_id) VALUES (1, 'agent')".to_owned())
        .await
        .expect("the app's key holds");
    assert!(
        exec("INSERT INTO app_projects (id, workspace_id) VALUES (2, 'AGENT')".to_owned())
            .await
            .is_err(),
        "the re-created key still refuses a missing workspace"
    );
    exec("DELETE FROM sandkit_workspaces WHERE id = 'agent'".to_owned())
        .await
        .expect("delete");
    assert!(
        conn.query_one_raw(Statement::from_string(
            backend,
            "SELECT id FROM app_projects".to_owned()
        ))
        .await
        .expect("query")
        .is_none(),
        "ON DELETE CASCADE came back with the key"
    );
}
