//! Generated SQL on real databases: the full schema passes the store conformance suite
//! through the SeaORM adapter (without its migrations), and the generated upgrade
//! brings a TypeScript Sandkit database (or one of our older schema) up to date with
//! its rows readable.

#[path = "../../sandkit-adapter-seaorm/tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use common::typescript::{
    CREATED_MS, ts_literal, typescript_ddl, typescript_rows, upgraded_workspace,
};
use common::{SqlCorruptor, TestDb};
use sandkit_adapter_seaorm::SeaOrmStore;
use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sandkit_codegen::{Dialect, Plan, introspect, plan, split_statements, sql_schema, sql_upgrade};
use sandkit_core::{
    LeaseKind, RunId, RunStatus, Store, WorkspaceId, WorkspaceRecord, WorkspaceState,
    WorkspaceWrite, WriteBatch, now,
};
use sandkit_testkit::StoreFixture;

fn ours(dialect: sandkit_adapter_seaorm::Dialect) -> Dialect {
    match dialect {
        sandkit_adapter_seaorm::Dialect::Sqlite => Dialect::Sqlite,
        sandkit_adapter_seaorm::Dialect::Postgres => Dialect::Postgres,
        sandkit_adapter_seaorm::Dialect::MySql => Dialect::MySql,
    }
}

async fn connect(db: &TestDb) -> DatabaseConnection {
    Database::connect(SeaOrmStore::connect_options(&db.url).expect("options"))
        .await
        .expect("connect")
}

async fn apply(conn: &DatabaseConnection, sql: &str) {
    for statement in split_statements(sql) {
        conn.execute_unprepared(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}\n→ {e}"));
    }
}

/// A store on a database holding only the generated schema (the adapter never migrates it).
async fn generated(dialect: sandkit_adapter_seaorm::Dialect) -> Option<StoreFixture> {
    let db = TestDb::new(dialect).await?;
    let conn = connect(&db).await;
    apply(&conn, &sql_schema(ours(dialect)).expect("render")).await;
    let store = SeaOrmStore::new(conn);
    Some(StoreFixture {
        corruptor: Some(Arc::new(SqlCorruptor::new(&store))),
        store: Arc::new(store),
        guard: Some(Box::new(db)),
    })
}

mod sqlite {
    async fn store() -> Option<sandkit_testkit::StoreFixture> {
        super::generated(sandkit_adapter_seaorm::Dialect::Sqlite).await
    }
    sandkit_testkit::store_suite!(store);
}

mod postgres {
    async fn store() -> Option<sandkit_testkit::StoreFixture> {
        super::generated(sandkit_adapter_seaorm::Dialect::Postgres).await
    }
    sandkit_testkit::store_suite!(store);
}

mod mysql {
    async fn store() -> Option<sandkit_testkit::StoreFixture> {
        super::generated(sandkit_adapter_seaorm::Dialect::MySql).await
    }
    sandkit_testkit::store_suite!(store);
}

async fn plan_of(db: &TestDb) -> Plan {
    let (dialect, state) = introspect(&db.url).await.expect("introspect");
    assert_eq!(dialect, ours(db.dialect));
    plan(dialect, &state)
}

/// The generated schema, the adapter's migrations and an empty database are told apart.
async fn introspection_knows_each_state(dialect: sandkit_adapter_seaorm::Dialect) {
    let Some(db) = TestDb::new(dialect).await else {
        return;
    };
    if dialect == sandkit_adapter_seaorm::Dialect::Sqlite {
        // The SQLite file does not exist yet: introspection never creates it.
        let err = introspect(&db.url).await.expect_err("missing file");
        assert!(err.to_string().contains("SQLite file exists"), "{err}");
        drop(db.store().await);
    }
    assert_eq!(plan_of(&db).await, Plan::Absent);
    apply(
        &connect(&db).await,
        &sql_schema(ours(dialect)).expect("render"),
    )
    .await;
    assert_eq!(plan_of(&db).await, Plan::UpToDate);

    let Some(migrated) = TestDb::new(dialect).await else {
        return;
    };
    migrated.migrated().await;
    assert_eq!(
        plan_of(&migrated).await,
        Plan::UpToDate,
        "the adapter's migrations and the generated SQL are the same schema"
    );
}

#[tokio::test]
async fn introspection_on_sqlite() {
    introspection_knows_each_state(sandkit_adapter_seaorm::Dialect::Sqlite).await;
}

#[tokio::test]
async fn introspection_on_postgres() {
    introspection_knows_each_state(sandkit_adapter_seaorm::Dialect::Postgres).await;
}

#[tokio::test]
async fn introspection_on_mysql() {
    introspection_knows_each_state(sandkit_adapter_seaorm::Dialect::MySql).await;
}

/// A TypeScript Sandkit database → the generated upgrade → the adapter reads the rows.
async fn upgrades_typescript(dialect: sandkit_adapter_seaorm::Dialect) {
    let Some(db) = TestDb::new(dialect).await else {
        return;
    };
    let conn = connect(&db).await;
    for sql in typescript_ddl(dialect)
        .iter()
        .chain(&typescript_rows(dialect))
    {
        conn.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let Plan::Upgrade(upgrade) = plan_of(&db).await else {
        panic!("a TypeScript database needs an upgrade");
    };
    assert!(upgrade.move_data);
    apply(&conn, &sql_upgrade(&upgrade).expect("render")).await;
    assert_eq!(plan_of(&db).await, Plan::UpToDate, "nothing left to do");

    let store = SeaOrmStore::new(conn);
    let (_, created) = ts_literal(dialect, CREATED_MS);
    let snap = upgraded_workspace(&store, "ws-snap").await;
    assert_eq!(snap.head.as_ref().map(|h| h.id.as_str()), Some("snap_abc"));
    assert_eq!(snap.state(), WorkspaceState::Committed);
    assert_eq!(
        serde_json::Value::Object(snap.metadata.clone()),
        serde_json::json!({"team": "infra"})
    );
    assert_eq!(
        snap.policy.as_ref().map(|p| p.describe()),
        Some("allow-services:github".to_owned())
    );
    assert_eq!(snap.sandbox_config.exposed_ports, [3000]);
    assert_eq!((snap.name.as_str(), snap.revision), ("agent", 0));
    assert_eq!((snap.created_at, snap.updated_at), (created, created));

    let live = upgraded_workspace(&store, "ws-live").await;
    let lease = live.lease.clone().expect("a session lease");
    assert_eq!(lease.kind, LeaseKind::Session);
    assert_eq!(
        lease.session.as_ref().map(|s| s.id.as_str()),
        Some("sbx_live")
    );
    assert_eq!(lease.expires_at.to_rfc3339(), "2099-01-01T00:00:00+00:00");
    assert_eq!(lease.acquired_at.to_rfc3339(), "2026-01-01T00:00:00+00:00");
    assert_eq!(
        lease.policy.as_ref().map(|p| p.describe()),
        Some("deny-all".to_owned())
    );
    assert_eq!(lease.token.as_str().len(), 32);
    assert_eq!(live.state(), WorkspaceState::Session);
    assert_eq!(
        serde_json::Value::Object(live.metadata.clone()),
        serde_json::json!({"owner": "ops"})
    );
    let expired = upgraded_workspace(&store, "ws-expired").await;
    assert!(!expired.lease.as_ref().expect("lease").is_live(now()));
    assert_ne!(
        expired.lease.map(|l| l.token),
        Some(lease.token),
        "fresh tokens"
    );
    let cold = upgraded_workspace(&store, "ws-cold").await;
    assert_eq!(cold.state(), WorkspaceState::Cold);
    assert!(cold.head.is_none() && cold.lease.is_none());

    let run = store
        .get_run(&RunId::new("run-1").expect("id"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(run.args, ["-c", "echo hi"]);
    assert_eq!(
        run.snapshot.as_ref().map(|s| s.id.as_str()),
        Some("snap_abc")
    );
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.policy_description, "allow-services:github");
    assert_eq!((run.started_at, run.finished_at), (created, Some(created)));
    let setup = store
        .get_setup("sqlite-bun:shared-bootstrap:x")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(setup.snapshot.map(|s| s.id), Some("snap_setup".to_owned()));

    // The upgraded rows take our writes.
    let mut next: WorkspaceRecord = snap.clone();
    next.name = "renamed".into();
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Update {
            record: next,
            expected_revision: 0,
        }))
        .await
        .expect("compare-and-set on an upgraded row");
    assert_eq!(upgraded_workspace(&store, "ws-snap").await.revision, 1);
}

#[tokio::test]
async fn upgrades_a_typescript_database_on_sqlite() {
    upgrades_typescript(sandkit_adapter_seaorm::Dialect::Sqlite).await;
}

#[tokio::test]
async fn upgrades_a_typescript_database_on_postgres() {
    upgrades_typescript(sandkit_adapter_seaorm::Dialect::Postgres).await;
}

#[tokio::test]
async fn upgrades_a_typescript_database_on_mysql() {
    upgrades_typescript(sandkit_adapter_seaorm::Dialect::MySql).await;
}

/// A database at our schema version 1 (the adapter's first migration only).
#[tokio::test]
async fn upgrades_our_older_schema_on_postgres() {
    use sea_orm_migration_probe::up_to_first;
    let Some(db) = TestDb::new(sandkit_adapter_seaorm::Dialect::Postgres).await else {
        return;
    };
    let conn = connect(&db).await;
    up_to_first(&conn).await;
    let Plan::Upgrade(upgrade) = plan_of(&db).await else {
        panic!("an older schema needs an upgrade");
    };
    assert!(upgrade.normalize.is_empty(), "{:?}", upgrade.normalize);
    apply(&conn, &sql_upgrade(&upgrade).expect("render")).await;
    assert_eq!(plan_of(&db).await, Plan::UpToDate);
    let store = SeaOrmStore::new(conn);
    let ws = WorkspaceRecord::new(WorkspaceId::new("fresh").expect("id"));
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(ws.clone())))
        .await
        .expect("create");
    assert_eq!(store.get_workspace(&ws.id).await.expect("read"), Some(ws));
}

/// Runs the adapter's first migration only.
mod sea_orm_migration_probe {
    use sandkit_adapter_seaorm::migration::Migrator;
    use sandkit_adapter_seaorm::sea_orm::DatabaseConnection;
    use sea_orm_migration::MigratorTrait;

    pub async fn up_to_first(conn: &DatabaseConnection) {
        Migrator::up(conn, Some(1)).await.expect("first migration");
    }
}

/// The generated schema SQL applies twice: every table and index is created only where
/// missing.
async fn schema_sql_applies_twice(dialect: sandkit_adapter_seaorm::Dialect) {
    let Some(db) = TestDb::new(dialect).await else {
        return;
    };
    let conn = connect(&db).await;
    let sql = sql_schema(ours(dialect)).expect("render");
    apply(&conn, &sql).await;
    apply(&conn, &sql).await;
    assert_eq!(plan_of(&db).await, Plan::UpToDate);
}

#[tokio::test]
async fn the_schema_sql_applies_twice_on_sqlite() {
    schema_sql_applies_twice(sandkit_adapter_seaorm::Dialect::Sqlite).await;
}

#[tokio::test]
async fn the_schema_sql_applies_twice_on_postgres() {
    schema_sql_applies_twice(sandkit_adapter_seaorm::Dialect::Postgres).await;
}

#[tokio::test]
async fn the_schema_sql_applies_twice_on_mysql() {
    schema_sql_applies_twice(sandkit_adapter_seaorm::Dialect::MySql).await;
}

/// Introspection only reads: it works where writing is refused (a PostgreSQL database
/// whose transactions are read-only, as on a standby).
#[tokio::test]
async fn introspection_reads_a_read_only_postgres_database() {
    let Some(db) = TestDb::new(sandkit_adapter_seaorm::Dialect::Postgres).await else {
        return;
    };
    apply(
        &connect(&db).await,
        &sql_schema(Dialect::Postgres).expect("render"),
    )
    .await;
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    connect(&db)
        .await
        .execute_unprepared(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .await
        .expect("make the database read-only");
    assert_eq!(plan_of(&db).await, Plan::UpToDate);
    let refused = connect(&db)
        .await
        .execute_unprepared("CREATE TABLE probe (id int)")
        .await;
    assert!(refused.is_err(), "the database refuses writes");
}

/// Introspection only reads: it works as a MySQL user that may only SELECT.
#[tokio::test]
async fn introspection_reads_mysql_as_a_select_only_user() {
    let Some(db) = TestDb::new(sandkit_adapter_seaorm::Dialect::MySql).await else {
        return;
    };
    let conn = connect(&db).await;
    apply(&conn, &sql_schema(Dialect::MySql).expect("render")).await;
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    let user = format!("ro_{}", &name[name.len() - 12..]);
    for sql in [
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'ro-pass'"),
        format!("GRANT SELECT ON {name}.* TO '{user}'@'%'"),
    ] {
        conn.execute_unprepared(&sql).await.expect(&sql);
    }
    let mut url = url::Url::parse(&db.url).expect("url");
    url.set_username(&user).expect("user");
    url.set_password(Some("ro-pass")).expect("password");
    let read = introspect(url.as_str()).await;
    conn.execute_unprepared(&format!("DROP USER '{user}'@'%'"))
        .await
        .expect("drop the user");
    let (dialect, state) = read.expect("introspection as a SELECT-only user");
    assert_eq!(plan(dialect, &state), Plan::UpToDate);
}
