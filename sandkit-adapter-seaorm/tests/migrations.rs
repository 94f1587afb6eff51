//! Migrations on every dialect: up/down round trips, and upgrading a database created
//! by the TypeScript Sandkit (its Drizzle DDL, rows in its shapes) in place.

mod common;

use common::TestDb;
use common::typescript::{
    CREATED_MS, ts_literal, typescript_ddl, typescript_rows, upgraded_workspace,
};
use sandkit_adapter_seaorm::migration::Migrator;
use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sandkit_adapter_seaorm::{Dialect, SeaOrmStore};
use sandkit_core::policies::Policy;
use sandkit_core::{
    FencedChange, LeaseKind, RunFinish, RunId, RunKind, RunStatus, RunWrite, SandboxConfig,
    SetupRecord, SnapshotRef, Store, WorkspaceRecord, WorkspaceState, WorkspaceStatus,
    WorkspaceWrite, WriteBatch, now,
};
use sandkit_testkit::store_suite::{full_workspace, started_run};
use sea_orm_migration::{MigratorTrait, SchemaManager};
use serde_json::{Value, json};

fn vercel(id: &str) -> SnapshotRef {
    SnapshotRef {
        provider: "vercel".into(),
        id: id.into(),
    }
}

/// A JSON column read with raw SQL (text on SQLite, JSON elsewhere).
async fn raw_json(db: &DatabaseConnection, sql: &str) -> Value {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("row");
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            serde_json::from_str(&row.try_get::<String>("", "v").expect("text")).expect("json")
        }
        _ => row.try_get::<Value>("", "v").expect("json"),
    }
}

async fn has_column(db: &DatabaseConnection, table: &str, column: &str) -> bool {
    SchemaManager::new(db)
        .has_column(table, column)
        .await
        .expect("probe")
}

async fn round_trip(dialect: Dialect) {
    let Some(db) = TestDb::new(dialect).await else {
        return;
    };
    let store = db.migrated().await;
    let conn = store.connection().clone();

    let mut ws = full_workspace("ws-trip");
    ws.head = Some(vercel("snap_head"));
    ws.parent = None;
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(ws.clone())))
        .await
        .expect("create");
    let run = started_run(&ws.id, None);
    let mut finish = RunFinish::without_result(RunStatus::Succeeded, "");
    finish.error = None;
    finish.exit_code = Some(0);
    finish.session_id = Some("sbx_run".into());
    finish.snapshot = Some(vercel("snap_run"));
    store
        .apply(
            WriteBatch::default()
                .run(RunWrite::Insert(run.clone()))
                .run(RunWrite::Finish {
                    id: run.id.clone(),
                    finish,
                }),
        )
        .await
        .expect("run");
    let setup = SetupRecord {
        id: "seaorm:setup:trip".into(),
        snapshot: Some(vercel("snap_setup")),
        build: None,
        revision: 0,
        created_at: now(),
        updated_at: now(),
    };
    assert!(store.put_setup_if_absent(&setup).await.expect("setup"));

    // Down one step: the original's shapes, without our columns.
    Migrator::down(&conn, Some(1)).await.expect("down");
    assert!(!has_column(&conn, "sandkit_workspaces", "revision").await);
    assert!(!has_column(&conn, "sandkit_runs", "idempotency_key").await);
    assert!(!has_column(&conn, "sandkit_setup_states", "snapshot").await);
    let metadata = raw_json(
        &conn,
        "SELECT metadata AS v FROM sandkit_workspaces WHERE id = 'ws-trip'",
    )
    .await;
    assert_eq!(
        metadata["sandkit:sandbox"],
        json!({"kind": "snapshot", "state": {"kind": "vercel-sandbox-snapshot", "sessionId": "",
            "state": {"snapshotId": "snap_head"}}})
    );
    assert_eq!(
        metadata["sandkit:sandbox-config"]["exposedPorts"],
        json!([3000, 8080])
    );
    assert_eq!(metadata["team"], json!("infra"));
    let commit = raw_json(
        &conn,
        &format!(
            "SELECT provider_commit AS v FROM sandkit_runs WHERE id = '{}'",
            run.id
        ),
    )
    .await;
    assert_eq!(commit["state"]["snapshotId"], json!("snap_run"));
    assert_eq!(commit["sessionId"], json!("sbx_run"));

    // Up again: the same workspace, run snapshot and setup snapshot.
    store.migrate().await.expect("up");
    let read = store
        .get_workspace(&ws.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read, ws);
    let read_run = store.get_run(&run.id).await.expect("read").expect("exists");
    assert_eq!(read_run.snapshot, Some(vercel("snap_run")));
    assert_eq!(read_run.session_id.as_deref(), Some("sbx_run"));
    assert_eq!(read_run.status, RunStatus::Succeeded);
    let read_setup = store
        .get_setup(&setup.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read_setup.snapshot, setup.snapshot);

    // All the way down removes the tables; up recreates a working schema.
    Migrator::down(&conn, None).await.expect("down all");
    let schema = SchemaManager::new(&conn);
    for table in [
        "sandkit_workspaces",
        "sandkit_runs",
        "sandkit_policies",
        "sandkit_setup_states",
    ] {
        assert!(
            !schema.has_table(table).await.expect("probe"),
            "{table} left behind"
        );
    }
    store.migrate().await.expect("up from scratch");
    assert!(store.get_workspace(&ws.id).await.expect("read").is_none());
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(ws.clone())))
        .await
        .expect("create again");
    assert_eq!(
        Migrator::get_pending_migrations(&conn)
            .await
            .expect("status")
            .len(),
        0
    );
}

#[tokio::test]
async fn up_down_round_trip_on_sqlite() {
    round_trip(Dialect::Sqlite).await;
}

#[tokio::test]
async fn up_down_round_trip_on_postgres() {
    round_trip(Dialect::Postgres).await;
}

#[tokio::test]
async fn up_down_round_trip_on_mysql() {
    round_trip(Dialect::MySql).await;
}

async fn upgrade_typescript(dialect: Dialect) {
    let Some(db) = TestDb::new(dialect).await else {
        return;
    };
    let store: SeaOrmStore = db.store().await;
    let conn = store.connection().clone();
    for sql in typescript_ddl(dialect)
        .iter()
        .chain(&typescript_rows(dialect))
    {
        conn.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    store.migrate().await.expect("upgrade in place");
    let (_, created) = ts_literal(dialect, CREATED_MS);

    let snap = upgraded_workspace(&store, "ws-snap").await;
    assert_eq!(snap.head, Some(vercel("snap_abc")));
    assert_eq!(snap.state(), WorkspaceState::Committed);
    assert_eq!(
        snap.metadata,
        json!({"team": "infra"})
            .as_object()
            .cloned()
            .expect("object")
    );
    assert_eq!(
        snap.policy,
        Some(
            Policy::from_json_value(&json!({"mode": "allow-services", "services": [
            {"id": "github", "name": "GitHub", "domains": ["github.com"]}]}))
            .expect("policy")
        )
    );
    assert_eq!(
        snap.sandbox_config,
        SandboxConfig {
            exposed_ports: vec![3000],
            ..SandboxConfig::default()
        }
    );
    assert_eq!(
        (snap.name.as_str(), snap.status, snap.revision),
        ("agent", WorkspaceStatus::Active, 0)
    );
    assert_eq!((snap.created_at, snap.updated_at), (created, created));
    assert_eq!(snap.lease, None);

    let live = upgraded_workspace(&store, "ws-live").await;
    let lease = live.lease.clone().expect("a session lease");
    assert_eq!(lease.kind, LeaseKind::Session);
    assert_eq!(
        lease
            .session
            .as_ref()
            .map(|s| (s.provider.as_str(), s.id.as_str())),
        Some(("vercel", "sbx_live"))
    );
    assert_eq!(lease.expires_at.to_rfc3339(), "2099-01-01T00:00:00+00:00");
    assert_eq!(lease.policy, Some(Policy::deny_all()));
    assert!(lease.is_live(now()));
    assert_eq!(live.state(), WorkspaceState::Session);
    assert_eq!(
        live.metadata,
        json!({"owner": "ops"})
            .as_object()
            .cloned()
            .expect("object")
    );
    let expired = upgraded_workspace(&store, "ws-expired").await;
    assert!(!expired.lease.as_ref().expect("lease").is_live(now()));
    assert_ne!(
        expired.lease.as_ref().map(|l| &l.token),
        Some(&lease.token),
        "fresh tokens"
    );

    let cold = upgraded_workspace(&store, "ws-cold").await;
    assert_eq!(
        (cold.name.as_str(), cold.status),
        ("default", WorkspaceStatus::Inactive)
    );
    assert!(cold.metadata.is_empty() && cold.head.is_none() && cold.lease.is_none());
    assert_eq!(cold.state(), WorkspaceState::Cold);

    let run = store
        .get_run(&RunId::new("run-1").expect("id"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(run.args, ["-c", "echo hi"]);
    assert_eq!(run.snapshot, Some(vercel("snap_abc")));
    assert_eq!(run.session_id.as_deref(), Some("sbx_old"));
    assert_eq!(
        (run.status, run.kind, run.exit_code),
        (RunStatus::Succeeded, RunKind::Command, Some(0))
    );
    assert_eq!(run.policy_description, "allow-services:github");
    assert_eq!((run.started_at, run.finished_at), (created, Some(created)));
    let started = store
        .get_run(&RunId::new("run-2").expect("id"))
        .await
        .expect("read")
        .expect("exists");
    assert!(started.args.is_empty() && started.snapshot.is_none() && started.finished_at.is_none());
    let policy = store
        .get_policy_snapshot("policy-snapshot-1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(policy.policy_id, "allow-services:github");
    assert_eq!(policy.config.describe(), "allow-services:github");
    assert_eq!(
        policy.config.to_json_value()["services"][0]["headers"][0]["credential"],
        json!({"kind": "redacted"})
    );
    let setup = store
        .get_setup("sqlite-bun:shared-bootstrap:x")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (setup.snapshot, setup.revision),
        (Some(vercel("snap_setup")), 0)
    );

    if dialect == Dialect::Sqlite {
        // A row written by an old process after the upgrade (epoch milliseconds) still reads.
        conn.execute_unprepared(&format!(
            "UPDATE sandkit_workspaces SET \"createdAt\" = {CREATED_MS} WHERE id = 'ws-cold'"
        ))
        .await
        .expect("raw write");
        assert_eq!(
            upgraded_workspace(&store, "ws-cold").await.created_at,
            created
        );
    }

    let listed = store
        .list_workspaces(&sandkit_core::WorkspaceListing {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let ids: Vec<String> = listed.items.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(ids, ["ws-cold", "ws-expired", "ws-live", "ws-snap"]);

    // The upgraded rows take our writes: a durable command's two transactions, with an
    // output larger than the original's MySQL `text` could hold.
    let mut next: WorkspaceRecord = snap.clone();
    let mut new_run = started_run(&snap.id, Some("key-1"));
    new_run.policy_snapshot_id = None;
    let lease = sandkit_core::Lease {
        kind: LeaseKind::Command,
        token: sandkit_core::LeaseToken::generate(),
        holder: "test".into(),
        session: None,
        run_id: Some(new_run.id.clone()),
        acquired_at: now(),
        expires_at: now() + chrono::Duration::seconds(30),
        policy: None,
    };
    next.lease = Some(lease.clone());
    store
        .apply(
            WriteBatch::workspace(WorkspaceWrite::Update {
                record: next,
                expected_revision: 0,
            })
            .run(RunWrite::Insert(new_run.clone())),
        )
        .await
        .expect("acquire on an upgraded row");
    let big = "x".repeat(70_000);
    let mut finish = RunFinish::without_result(RunStatus::Succeeded, "");
    finish.error = None;
    finish.stdout = Some(big.clone());
    finish.snapshot = Some(vercel("snap_new"));
    store
        .apply(
            WriteBatch::workspace(WorkspaceWrite::Fenced {
                id: snap.id.clone(),
                token: lease.token.clone(),
                change: FencedChange {
                    lease: None,
                    head: Some(vercel("snap_new")),
                    updated_at: now(),
                },
            })
            .run(RunWrite::Finish {
                id: new_run.id.clone(),
                finish,
            }),
        )
        .await
        .expect("commit on an upgraded row");
    let after = upgraded_workspace(&store, "ws-snap").await;
    assert_eq!((after.revision, after.head), (2, Some(vercel("snap_new"))));
    let stored = store
        .get_run(&new_run.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.stdout.as_deref(), Some(big.as_str()));
}

#[tokio::test]
async fn upgrades_a_typescript_database_on_sqlite() {
    upgrade_typescript(Dialect::Sqlite).await;
}

#[tokio::test]
async fn upgrades_a_typescript_database_on_postgres() {
    upgrade_typescript(Dialect::Postgres).await;
}

#[tokio::test]
async fn upgrades_a_typescript_database_on_mysql() {
    upgrade_typescript(Dialect::MySql).await;
}
