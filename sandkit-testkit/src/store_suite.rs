//! The store conformance suite: every behaviour Sandkit relies on from a [`Store`].
//!
//! Run it from an adapter's tests with [`store_suite!`](macro@crate::store_suite), giving an
//! async factory that returns a fresh, empty, migrated store per case (or `None` to skip).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration as ChronoDuration;
use sandkit_core::policies::{Policy, presets};
use sandkit_core::{
    ErrorKind, FencedChange, Lease, LeaseKind, LeaseToken, Order, PolicySnapshot, Result,
    RunFinish, RunId, RunKind, RunListing, RunRecord, RunStatus, RunWrite, SandboxConfig,
    SessionRef, SetupBuild, SetupRecord, SnapshotRef, Store, WorkspaceId, WorkspaceListing,
    WorkspaceRecord, WorkspaceStatus, WorkspaceWrite, WriteBatch, now,
};
use serde_json::json;

/// Writes raw values into a store's columns, to test corruption reporting.
#[async_trait]
pub trait Corruptor: Send + Sync {
    /// The `(table, column)` pairs holding structured values (JSON, enums) that a read
    /// must validate.
    fn columns(&self) -> Vec<(&'static str, &'static str)>;

    /// Overwrites `table.column` of the row with primary key `id` with `raw`.
    async fn corrupt(&self, table: &str, column: &str, id: &str, raw: &str) -> Result<()>;
}

/// What a store factory returns: the store, an optional corruptor, and anything that
/// must live as long as the test (temporary directories, database guards).
pub struct StoreFixture {
    /// The store under test (fresh and empty).
    pub store: Arc<dyn Store>,
    /// Raw access for corruption cases; `None` skips them.
    pub corruptor: Option<Arc<dyn Corruptor>>,
    /// Kept alive for the duration of the case.
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl StoreFixture {
    /// A fixture without corruptor or guard.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreFixture {
            store,
            corruptor: None,
            guard: None,
        }
    }
}

/// A workspace record with every optional field set, for round trips.
pub fn full_workspace(id: &str) -> WorkspaceRecord {
    let mut ws = WorkspaceRecord::new(WorkspaceId::new(id).expect("valid id"));
    ws.name = "agent-1".into();
    ws.status = WorkspaceStatus::Active;
    ws.metadata = json!({"team": "infra", "nested": {"n": 1, "list": [1, "two"]}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    ws.policy = Some(Policy::allow_services([presets::npm(), presets::github()]).expect("policy"));
    ws.sandbox_config = SandboxConfig {
        exposed_ports: vec![3000, 8080],
        timeout_ms: Some(600_000),
        vcpus: Some(2),
    };
    ws.head = Some(SnapshotRef {
        provider: "fake".into(),
        id: "snap_head".into(),
    });
    ws.parent = Some(WorkspaceId::new("parent-ws").expect("valid id"));
    ws
}

fn lease(kind: LeaseKind, secs: i64) -> Lease {
    let at = now();
    Lease {
        kind,
        token: LeaseToken::generate(),
        holder: "host:1:abcd".into(),
        session: Some(SessionRef {
            provider: "fake".into(),
            id: "sbx_1".into(),
        }),
        run_id: Some(RunId::generate()),
        acquired_at: at,
        expires_at: at + ChronoDuration::seconds(secs),
        policy: Some(Policy::deny_all()),
    }
}

/// A started run with every field set.
pub fn started_run(ws: &WorkspaceId, key: Option<&str>) -> RunRecord {
    RunRecord {
        id: RunId::generate(),
        workspace_id: ws.clone(),
        kind: RunKind::Command,
        command: "sh".into(),
        args: vec!["-c".into(), "echo hi".into()],
        cwd: Some("sub".into()),
        env_keys: vec!["A".into(), "B".into()],
        policy_description: "allow-all".into(),
        policy_snapshot_id: Some("pol_1".into()),
        provider: "fake".into(),
        session_id: None,
        status: RunStatus::Started,
        exit_code: None,
        stdout: None,
        stderr: None,
        stdout_truncated: false,
        stderr_truncated: false,
        base_snapshot: Some(SnapshotRef {
            provider: "fake".into(),
            id: "snap_base".into(),
        }),
        snapshot: None,
        snapshot_deleted_at: None,
        error: None,
        idempotency_key: key.map(str::to_owned),
        holder: "host:1:abcd".into(),
        started_at: now(),
        finished_at: None,
    }
}

fn finish(status: RunStatus, code: Option<i32>) -> RunFinish {
    RunFinish {
        status,
        exit_code: code,
        stdout: Some("out ✓\n".into()),
        stderr: Some("err\n".into()),
        stdout_truncated: true,
        stderr_truncated: false,
        session_id: Some("sbx_9".into()),
        snapshot: Some(SnapshotRef {
            provider: "fake".into(),
            id: "snap_9".into(),
        }),
        error: None,
        release_idempotency_key: false,
        finished_at: now(),
    }
}

async fn create(store: &dyn Store, ws: &WorkspaceRecord) {
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(ws.clone())))
        .await
        .expect("create workspace");
}

async fn get(store: &dyn Store, id: &WorkspaceId) -> WorkspaceRecord {
    store
        .get_workspace(id)
        .await
        .expect("get workspace")
        .expect("workspace exists")
}

fn update(record: &WorkspaceRecord) -> WriteBatch {
    WriteBatch::workspace(WorkspaceWrite::Update {
        record: record.clone(),
        expected_revision: record.revision,
    })
}

fn kind_of<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.expect_err("expected an error").kind().clone()
}

/// A workspace with every field set reads back identically.
pub async fn workspace_round_trip(f: &StoreFixture) {
    let s = &*f.store;
    let mut ws = full_workspace("ws-round-trip");
    ws.lease = Some(lease(LeaseKind::Session, 60));
    create(s, &ws).await;
    assert_eq!(get(s, &ws.id).await, ws);
    let missing = WorkspaceId::new("nope").expect("id");
    assert!(s.get_workspace(&missing).await.expect("get").is_none());
}

/// Minimal workspaces (no optional fields) read back identically.
pub async fn workspace_minimal_round_trip(f: &StoreFixture) {
    let s = &*f.store;
    let ws = WorkspaceRecord::new(WorkspaceId::generate());
    create(s, &ws).await;
    assert_eq!(get(s, &ws.id).await, ws);
}

/// Creating an existing id is `AlreadyExists` and changes nothing.
pub async fn create_duplicate_is_already_exists(f: &StoreFixture) {
    let s = &*f.store;
    let ws = full_workspace("ws-dup");
    create(s, &ws).await;
    let mut other = ws.clone();
    other.name = "other".into();
    let r = s
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(other)))
        .await;
    assert_eq!(kind_of(r), ErrorKind::AlreadyExists);
    assert_eq!(get(s, &ws.id).await.name, "agent-1");
}

/// Compare-and-set: the right revision wins and increments; a stale one is `Conflict`.
pub async fn update_compare_and_set(f: &StoreFixture) {
    let s = &*f.store;
    let ws = full_workspace("ws-cas");
    create(s, &ws).await;
    let mut next = ws.clone();
    next.name = "renamed".into();
    next.metadata.insert("k".into(), json!("v"));
    next.head = None;
    next.policy = None;
    s.apply(update(&next)).await.expect("first update");
    let read = get(s, &ws.id).await;
    assert_eq!(read.revision, ws.revision + 1);
    assert_eq!(read.name, "renamed");
    assert_eq!(read.head, None);
    assert_eq!(read.policy, None);
    assert_eq!(read.created_at, ws.created_at);
    // Stale revision.
    let mut stale = next.clone();
    stale.name = "lost".into();
    assert_eq!(kind_of(s.apply(update(&stale)).await), ErrorKind::Conflict);
    assert_eq!(get(s, &ws.id).await.name, "renamed");
    // Missing row.
    let ghost = WorkspaceRecord::new(WorkspaceId::new("ghost").expect("id"));
    assert_eq!(kind_of(s.apply(update(&ghost)).await), ErrorKind::NotFound);
}

/// Of many writers racing the same revision, exactly one wins.
pub async fn concurrent_compare_and_set_has_one_winner(f: &StoreFixture) {
    let ws = full_workspace("ws-race");
    create(&*f.store, &ws).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = f.store.clone();
        let mut next = ws.clone();
        next.name = format!("writer-{i}");
        tasks.push(tokio::spawn(
            async move { store.apply(update(&next)).await },
        ));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => wins += 1,
            Err(e) => assert_eq!(e.kind(), &ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(get(&*f.store, &ws.id).await.revision, ws.revision + 1);
}

/// Fenced writes succeed with the lease's token and fail with any other.
pub async fn fenced_writes_check_the_token(f: &StoreFixture) {
    let s = &*f.store;
    let mut ws = full_workspace("ws-fence");
    ws.head = None;
    let held = lease(LeaseKind::Command, 30);
    ws.lease = Some(held.clone());
    create(s, &ws).await;

    // Renew with the right token.
    let mut renewed = held.clone();
    renewed.expires_at = held.expires_at + ChronoDuration::seconds(30);
    let fenced = |token: LeaseToken, lease: Option<Lease>, head: Option<SnapshotRef>| {
        WriteBatch::workspace(WorkspaceWrite::Fenced {
            id: ws.id.clone(),
            token,
            change: FencedChange {
                lease,
                head,
                updated_at: now(),
            },
        })
    };
    s.apply(fenced(held.token.clone(), Some(renewed.clone()), None))
        .await
        .expect("renew");
    let read = get(s, &ws.id).await;
    assert_eq!(read.lease, Some(renewed.clone()));
    assert_eq!(read.revision, ws.revision + 1);

    // Wrong token.
    let r = s.apply(fenced(LeaseToken::generate(), None, None)).await;
    assert_eq!(kind_of(r), ErrorKind::Conflict);

    // Commit a head and release.
    let head = SnapshotRef {
        provider: "fake".into(),
        id: "snap_new".into(),
    };
    s.apply(fenced(held.token.clone(), None, Some(head.clone())))
        .await
        .expect("commit");
    let read = get(s, &ws.id).await;
    assert_eq!(read.lease, None);
    assert_eq!(read.head, Some(head));
    assert_eq!(read.revision, ws.revision + 2);

    // No lease any more: the old token is fenced off.
    let r = s.apply(fenced(held.token, None, None)).await;
    assert_eq!(kind_of(r), ErrorKind::Conflict);
}

/// A batch whose run insert fails applies nothing (the workspace write is rolled back).
pub async fn batches_are_atomic(f: &StoreFixture) {
    let s = &*f.store;
    let ws = full_workspace("ws-atomic");
    create(s, &ws).await;
    let first = started_run(&ws.id, Some("key-1"));
    s.apply(WriteBatch::default().run(RunWrite::Insert(first.clone())))
        .await
        .expect("insert run");

    let mut next = ws.clone();
    next.name = "should-not-stick".into();
    let dup = started_run(&ws.id, Some("key-1"));
    let r = s
        .apply(update(&next).run(RunWrite::Insert(dup.clone())))
        .await;
    assert_eq!(kind_of(r), ErrorKind::AlreadyExists);
    let read = get(s, &ws.id).await;
    assert_eq!(read.name, "agent-1");
    assert_eq!(read.revision, ws.revision);
    assert!(s.get_run(&dup.id).await.expect("get").is_none());

    // A fence failure rolls back the run finish in the same batch.
    let r = s
        .apply(
            WriteBatch::workspace(WorkspaceWrite::Fenced {
                id: ws.id.clone(),
                token: LeaseToken::generate(),
                change: FencedChange {
                    lease: None,
                    head: None,
                    updated_at: now(),
                },
            })
            .run(RunWrite::Finish {
                id: first.id.clone(),
                finish: finish(RunStatus::Succeeded, Some(0)),
            }),
        )
        .await;
    assert_eq!(kind_of(r), ErrorKind::Conflict);
    let run = s.get_run(&first.id).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Started);
}

/// Acquire-style batch: update + policy snapshot + run insert land together.
pub async fn acquire_batch_writes_everything(f: &StoreFixture) {
    let s = &*f.store;
    let ws = full_workspace("ws-acquire");
    create(s, &ws).await;
    let run = started_run(&ws.id, None);
    let policy = Policy::allow_services([presets::github()]).expect("policy");
    let snapshot = PolicySnapshot {
        id: "pol_acquire".into(),
        workspace_id: ws.id.clone(),
        policy_id: policy.describe(),
        config: policy.redacted(),
        created_at: now(),
    };
    let mut next = ws.clone();
    next.lease = Some(lease(LeaseKind::Command, 30));
    s.apply(
        update(&next)
            .policy_snapshot(snapshot.clone())
            .run(RunWrite::Insert(run.clone())),
    )
    .await
    .expect("acquire");
    assert_eq!(get(s, &ws.id).await.lease, next.lease);
    assert_eq!(s.get_run(&run.id).await.expect("get"), Some(run));
    assert_eq!(
        s.get_policy_snapshot("pol_acquire").await.expect("get"),
        Some(snapshot)
    );
    assert!(
        s.get_policy_snapshot("pol_missing")
            .await
            .expect("get")
            .is_none()
    );
}

/// Runs round-trip, finish sets the final fields, a missing run is `NotFound`.
pub async fn run_insert_and_finish(f: &StoreFixture) {
    let s = &*f.store;
    let ws = full_workspace("ws-runs");
    create(s, &ws).await;
    let run = started_run(&ws.id, Some("k"));
    s.apply(WriteBatch::default().run(RunWrite::Insert(run.clone())))
        .await
        .expect("insert");
    assert_eq!(s.get_run(&run.id).await.expect("get"), Some(run.clone()));

    let fin = finish(RunStatus::Failed, Some(3));
    s.apply(WriteBatch::default().run(RunWrite::Finish {
        id: run.id.clone(),
        finish: fin.clone(),
    }))
    .await
    .expect("finish");
    let read = s.get_run(&run.id).await.expect("get").expect("run");
    assert_eq!(read.status, RunStatus::Failed);
    assert_eq!(read.exit_code, Some(3));
    assert_eq!(read.stdout.as_deref(), Some("out ✓\n"));
    assert_eq!(read.stderr.as_deref(), Some("err\n"));
    assert!(read.stdout_truncated);
    assert!(!read.stderr_truncated);
    assert_eq!(read.session_id.as_deref(), Some("sbx_9"));
    assert_eq!(read.snapshot, fin.snapshot);
    assert_eq!(read.finished_at, Some(fin.finished_at));
    assert_eq!(read.idempotency_key.as_deref(), Some("k"));
    assert_eq!(read.command, run.command);
    assert_eq!(read.args, run.args);
    assert_eq!(read.env_keys, run.env_keys);

    let r = s
        .apply(WriteBatch::default().run(RunWrite::Finish {
            id: RunId::generate(),
            finish: fin,
        }))
        .await;
    assert_eq!(kind_of(r), ErrorKind::NotFound);
}

/// Idempotency keys are unique per workspace; releasing a key frees it.
pub async fn idempotency_keys(f: &StoreFixture) {
    let s = &*f.store;
    let a = full_workspace("ws-key-a");
    let b = full_workspace("ws-key-b");
    create(s, &a).await;
    create(s, &b).await;
    let run = started_run(&a.id, Some("deploy-1"));
    s.apply(WriteBatch::default().run(RunWrite::Insert(run.clone())))
        .await
        .expect("insert");
    assert_eq!(
        s.find_run_by_key(&a.id, "deploy-1")
            .await
            .expect("find")
            .map(|r| r.id),
        Some(run.id.clone())
    );
    assert!(
        s.find_run_by_key(&b.id, "deploy-1")
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        s.find_run_by_key(&a.id, "other")
            .await
            .expect("find")
            .is_none()
    );
    // Same key in another workspace is fine; in the same one it is not.
    s.apply(WriteBatch::default().run(RunWrite::Insert(started_run(&b.id, Some("deploy-1")))))
        .await
        .expect("other workspace");
    let r = s
        .apply(WriteBatch::default().run(RunWrite::Insert(started_run(&a.id, Some("deploy-1")))))
        .await;
    assert_eq!(kind_of(r), ErrorKind::AlreadyExists);
    // Releasing the key (interrupted run) lets it be used again.
    let mut fin = RunFinish::without_result(RunStatus::Interrupted, "holder died");
    fin.release_idempotency_key = true;
    s.apply(WriteBatch::default().run(RunWrite::Finish {
        id: run.id.clone(),
        finish: fin,
    }))
    .await
    .expect("interrupt");
    assert!(
        s.find_run_by_key(&a.id, "deploy-1")
            .await
            .expect("find")
            .is_none()
    );
    let read = s.get_run(&run.id).await.expect("get").expect("run");
    assert_eq!(read.status, RunStatus::Interrupted);
    assert_eq!(read.idempotency_key, None);
    assert_eq!(read.error.as_deref(), Some("holder died"));
    s.apply(WriteBatch::default().run(RunWrite::Insert(started_run(&a.id, Some("deploy-1")))))
        .await
        .expect("key reusable");
}

/// Runs list newest-first (or oldest-first) with a working cursor and status filter.
pub async fn list_runs_pages(f: &StoreFixture) {
    let s = &*f.store;
    let ws = full_workspace("ws-list-runs");
    let other = full_workspace("ws-list-other");
    create(s, &ws).await;
    create(s, &other).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let run = started_run(&ws.id, None);
        ids.push(run.id.clone());
        let mut batch = WriteBatch::default().run(RunWrite::Insert(run.clone()));
        if i % 2 == 0 {
            batch = batch.run(RunWrite::Finish {
                id: run.id.clone(),
                finish: finish(RunStatus::Succeeded, Some(0)),
            });
        }
        s.apply(batch).await.expect("insert");
    }
    s.apply(WriteBatch::default().run(RunWrite::Insert(started_run(&other.id, None))))
        .await
        .expect("other");

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_runs(&RunListing {
                workspace_id: ws.id.clone(),
                status: None,
                live_snapshots: false,
                cursor: cursor.clone(),
                order: Order::Desc,
                limit: 3,
            })
            .await
            .expect("list");
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(RunId::new(c).expect("cursor is a run id")),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let asc = s
        .list_runs(&RunListing {
            workspace_id: ws.id.clone(),
            status: Some(RunStatus::Succeeded),
            live_snapshots: false,
            cursor: None,
            order: Order::Asc,
            limit: 100,
        })
        .await
        .expect("list");
    let expected: Vec<RunId> = ids.iter().step_by(2).cloned().collect();
    assert_eq!(
        asc.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(asc.next_cursor, None);
}

/// Workspaces list by id with a cursor and filters.
pub async fn list_workspaces_pages(f: &StoreFixture) {
    let s = &*f.store;
    let mut all = Vec::new();
    for i in 0..12 {
        let mut ws = WorkspaceRecord::new(WorkspaceId::new(format!("ws-{i:02}")).expect("id"));
        ws.name = if i % 3 == 0 {
            format!("build-{i}")
        } else {
            format!("agent-{i}")
        };
        if i % 4 == 0 {
            ws.status = WorkspaceStatus::Archived;
        }
        if i == 5 {
            ws.parent = Some(WorkspaceId::new("ws-00").expect("id"));
        }
        create(s, &ws).await;
        all.push(ws);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_workspaces(&WorkspaceListing {
                after: after.clone(),
                limit: 5,
                ..WorkspaceListing::default()
            })
            .await
            .expect("list");
        seen.extend(page.items.iter().map(|w| w.id.to_string()));
        match page.next_cursor {
            Some(c) => after = Some(WorkspaceId::new(c).expect("cursor")),
            None => break,
        }
    }
    let expected: Vec<String> = all.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(seen, expected);

    let archived = s
        .list_workspaces(&WorkspaceListing {
            status: Some(WorkspaceStatus::Archived),
            limit: 100,
            ..WorkspaceListing::default()
        })
        .await
        .expect("list");
    assert_eq!(
        archived
            .items
            .iter()
            .map(|w| w.id.to_string())
            .collect::<Vec<_>>(),
        ["ws-00", "ws-04", "ws-08"]
    );
    let builds = s
        .list_workspaces(&WorkspaceListing {
            name_prefix: Some("build-".into()),
            limit: 100,
            ..WorkspaceListing::default()
        })
        .await
        .expect("list");
    assert_eq!(builds.items.len(), 4);
    let forks = s
        .list_workspaces(&WorkspaceListing {
            parent: Some(WorkspaceId::new("ws-00").expect("id")),
            limit: 100,
            ..WorkspaceListing::default()
        })
        .await
        .expect("list");
    assert_eq!(
        forks
            .items
            .iter()
            .map(|w| w.id.to_string())
            .collect::<Vec<_>>(),
        ["ws-05"]
    );
}

/// Deleting checks the revision and removes the workspace's runs and policy snapshots.
pub async fn delete_workspace_cascades(f: &StoreFixture) {
    let s = &*f.store;
    let ws = full_workspace("ws-delete");
    let keep = full_workspace("ws-keep");
    create(s, &ws).await;
    create(s, &keep).await;
    let run = started_run(&ws.id, None);
    let kept_run = started_run(&keep.id, None);
    let snapshot = PolicySnapshot {
        id: "pol_delete".into(),
        workspace_id: ws.id.clone(),
        policy_id: "deny-all".into(),
        config: Policy::deny_all(),
        created_at: now(),
    };
    s.apply(
        WriteBatch::default()
            .policy_snapshot(snapshot)
            .run(RunWrite::Insert(run.clone()))
            .run(RunWrite::Insert(kept_run.clone())),
    )
    .await
    .expect("insert");
    let r = s
        .apply(WriteBatch::workspace(WorkspaceWrite::Delete {
            id: ws.id.clone(),
            expected_revision: ws.revision + 7,
        }))
        .await;
    assert_eq!(kind_of(r), ErrorKind::Conflict);
    s.apply(WriteBatch::workspace(WorkspaceWrite::Delete {
        id: ws.id.clone(),
        expected_revision: ws.revision,
    }))
    .await
    .expect("delete");
    assert!(s.get_workspace(&ws.id).await.expect("get").is_none());
    assert!(s.get_run(&run.id).await.expect("get").is_none());
    assert!(
        s.get_policy_snapshot("pol_delete")
            .await
            .expect("get")
            .is_none()
    );
    assert!(s.get_run(&kept_run.id).await.expect("get").is_some());
    let r = s
        .apply(WriteBatch::workspace(WorkspaceWrite::Delete {
            id: ws.id.clone(),
            expected_revision: ws.revision,
        }))
        .await;
    assert_eq!(kind_of(r), ErrorKind::NotFound);
}

/// Setup states: put-if-absent, compare-and-set, listing, delete.
pub async fn setup_states(f: &StoreFixture) {
    let s = &*f.store;
    let at = now();
    let mut record = SetupRecord {
        id: "memory:setup:abc".into(),
        snapshot: None,
        build: Some(SetupBuild {
            token: LeaseToken::generate(),
            holder: "host:1:abcd".into(),
            expires_at: at + ChronoDuration::seconds(30),
        }),
        revision: 0,
        created_at: at,
        updated_at: at,
    };
    assert!(s.get_setup(&record.id).await.expect("get").is_none());
    assert!(s.put_setup_if_absent(&record).await.expect("put"));
    assert!(!s.put_setup_if_absent(&record).await.expect("put again"));
    assert_eq!(
        s.get_setup(&record.id).await.expect("get"),
        Some(record.clone())
    );

    let mut built = record.clone();
    built.build = None;
    built.snapshot = Some(SnapshotRef {
        provider: "fake".into(),
        id: "snap_setup".into(),
    });
    s.update_setup(&built, 0).await.expect("cas");
    let read = s.get_setup(&record.id).await.expect("get").expect("row");
    assert_eq!(
        s.list_setups().await.expect("list"),
        vec![read.clone()],
        "gc reads which snapshots setups use"
    );
    assert_eq!(read.revision, 1);
    assert_eq!(read.snapshot, built.snapshot);
    assert_eq!(read.build, None);
    assert_eq!(read.created_at, record.created_at);
    let r = s.update_setup(&built, 0).await;
    assert_eq!(kind_of(r), ErrorKind::Conflict);

    assert!(
        !s.delete_setup(&record.id, Some(0))
            .await
            .expect("stale delete")
    );
    assert!(s.delete_setup(&record.id, Some(1)).await.expect("delete"));
    assert!(s.get_setup(&record.id).await.expect("get").is_none());
    record.id = "memory:setup:def".into();
    assert!(s.put_setup_if_absent(&record).await.expect("put"));
    assert!(s.delete_setup(&record.id, None).await.expect("delete any"));
    assert!(
        !s.delete_setup(&record.id, None)
            .await
            .expect("delete missing")
    );
    let r = s.update_setup(&record, 0).await;
    assert_eq!(kind_of(r), ErrorKind::NotFound);
}

/// Snapshot bookkeeping for retention and forks: runs by snapshot, tombstones, heads.
pub async fn snapshot_references(f: &StoreFixture) {
    let s = &*f.store;
    let a = full_workspace("ws-snap-a");
    let mut b = full_workspace("ws-snap-b");
    b.head = Some(SnapshotRef {
        provider: "fake".into(),
        id: "snap_shared".into(),
    });
    create(s, &a).await;
    create(s, &b).await;
    let shared = SnapshotRef {
        provider: "fake".into(),
        id: "snap_shared".into(),
    };
    let mut in_a = started_run(&a.id, None);
    in_a.snapshot = Some(shared.clone());
    let mut in_b = started_run(&b.id, None);
    in_b.snapshot = Some(shared.clone());
    let mut other = started_run(&a.id, None);
    other.snapshot = Some(SnapshotRef {
        provider: "fake".into(),
        id: "snap_other".into(),
    });
    let other_id = other.id.clone();
    s.apply(
        WriteBatch::default()
            .run(RunWrite::Insert(in_a.clone()))
            .run(RunWrite::Insert(in_b.clone()))
            .run(RunWrite::Insert(other))
            .run(RunWrite::Insert(started_run(&a.id, None))),
    )
    .await
    .expect("insert");
    let mut found: Vec<RunId> = s
        .find_runs_by_snapshot("snap_shared")
        .await
        .expect("find")
        .into_iter()
        .map(|r| r.id)
        .collect();
    found.sort();
    let mut expected = vec![in_a.id.clone(), in_b.id.clone()];
    expected.sort();
    assert_eq!(found, expected);
    assert!(
        s.find_runs_by_snapshot("snap_none")
            .await
            .expect("find")
            .is_empty()
    );

    let heads = s
        .list_workspaces(&WorkspaceListing {
            head: Some("snap_shared".into()),
            limit: 10,
            ..WorkspaceListing::default()
        })
        .await
        .expect("list");
    assert_eq!(
        heads.items.iter().map(|w| w.id.clone()).collect::<Vec<_>>(),
        [b.id.clone()]
    );

    let at = now();
    s.apply(WriteBatch::default().run(RunWrite::SnapshotDeleted {
        id: in_a.id.clone(),
        at: Some(at),
    }))
    .await
    .expect("tombstone");
    let read = s.get_run(&in_a.id).await.expect("get").expect("run");
    assert_eq!(read.snapshot_deleted_at, Some(at));
    assert_eq!(read.snapshot, Some(shared), "the reference itself is kept");
    let live = s
        .list_runs(&RunListing {
            workspace_id: a.id.clone(),
            status: None,
            live_snapshots: true,
            cursor: None,
            order: Order::Desc,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(
        live.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        [other_id],
        "tombstoned runs and runs without a snapshot are not live"
    );
    s.apply(WriteBatch::default().run(RunWrite::SnapshotDeleted {
        id: in_a.id.clone(),
        at: None,
    }))
    .await
    .expect("clear");
    let read = s.get_run(&in_a.id).await.expect("get").expect("run");
    assert_eq!(read.snapshot_deleted_at, None);
    let r = s
        .apply(WriteBatch::default().run(RunWrite::SnapshotDeleted {
            id: RunId::generate(),
            at: None,
        }))
        .await;
    assert_eq!(kind_of(r), ErrorKind::NotFound);
}

/// Every structured column, corrupted by raw writes, reads back as `Corrupt` naming
/// `table.column` (skipped for stores without a corruptor).
pub async fn corruption_is_reported(f: &StoreFixture) {
    let Some(corruptor) = &f.corruptor else {
        eprintln!("skipped: this store has no corruptor (nothing can be corrupted)");
        return;
    };
    for (table, column) in corruptor.columns() {
        let s = &*f.store;
        let ws = WorkspaceRecord::new(WorkspaceId::generate());
        create(s, &ws).await;
        let run = started_run(&ws.id, None);
        let snapshot = PolicySnapshot {
            id: format!("pol_{}", RunId::generate()),
            workspace_id: ws.id.clone(),
            policy_id: "allow-all".into(),
            config: Policy::allow_all(),
            created_at: now(),
        };
        s.apply(
            WriteBatch::default()
                .policy_snapshot(snapshot.clone())
                .run(RunWrite::Insert(run.clone())),
        )
        .await
        .expect("insert");
        let setup_id = format!("test:setup:{}", ws.id);
        s.put_setup_if_absent(&SetupRecord {
            id: setup_id.clone(),
            snapshot: None,
            build: None,
            revision: 0,
            created_at: now(),
            updated_at: now(),
        })
        .await
        .expect("setup");
        let (row, read): (String, Result<bool>) = match table {
            "sandkit_workspaces" => (ws.id.to_string(), Ok(true)),
            "sandkit_runs" => (run.id.to_string(), Ok(true)),
            "sandkit_policies" => (snapshot.id.clone(), Ok(true)),
            "sandkit_setup_states" => (setup_id.clone(), Ok(true)),
            other => panic!("corruptor names unknown table {other}"),
        };
        let _ = read;
        corruptor
            .corrupt(table, column, &row, "{")
            .await
            .expect("corrupt");
        let err = match table {
            "sandkit_workspaces" => s.get_workspace(&ws.id).await.map(|_| ()),
            "sandkit_runs" => s.get_run(&run.id).await.map(|_| ()),
            "sandkit_policies" => s.get_policy_snapshot(&snapshot.id).await.map(|_| ()),
            _ => s.get_setup(&setup_id).await.map(|_| ()),
        }
        .expect_err(&format!("reading corrupted {table}.{column} must fail"));
        match err.kind() {
            ErrorKind::Corrupt {
                table: t,
                column: c,
                ..
            } => {
                assert_eq!((t.as_str(), c.as_str()), (table, column), "{err}");
                assert!(
                    err.to_string().contains(&format!("{table}.{column}")),
                    "{err}"
                );
            }
            other => panic!("{table}.{column}: expected Corrupt, got {other:?}: {err}"),
        }
    }
}

/// Expands to one `#[tokio::test]` per store conformance case.
///
/// `$factory` is an async fn returning `Option<StoreFixture>` (fresh store per call;
/// `None` skips, e.g. when a database URL is unset outside CI).
#[macro_export]
macro_rules! store_suite {
    ($factory:path) => {
        $crate::__store_cases!(
            $factory;
            workspace_round_trip,
            workspace_minimal_round_trip,
            create_duplicate_is_already_exists,
            update_compare_and_set,
            concurrent_compare_and_set_has_one_winner,
            fenced_writes_check_the_token,
            batches_are_atomic,
            acquire_batch_writes_everything,
            run_insert_and_finish,
            idempotency_keys,
            list_runs_pages,
            list_workspaces_pages,
            delete_workspace_cascades,
            setup_states,
            snapshot_references,
            corruption_is_reported,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    ($factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $factory().await else {
                    return;
                };
                $crate::store_suite::$case(&fixture).await;
            }
        )*
    };
}
