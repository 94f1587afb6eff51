//! Crashes and takeovers: expired leases are recovered, fenced holders cannot commit.

mod common;

use std::time::Duration;

use common::spy::Spy;
use common::{Rig, all_runs, new_ws, run, sh};
use sandkit_core::{ErrorKind, LeaseToken, RunStatus, WorkspaceWrite, WriteBatch};

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_loses_its_lease_and_the_next_command_recovers() {
    let rig = Rig::new();
    let ttl = Duration::from_millis(300);
    let kit = rig.builder().command_lease_ttl(ttl).build().expect("kit");
    let ws = new_ws(&kit).await;
    run(&ws, "echo committed > f").await;
    let head = rig.record(ws.id()).await.head;

    // A "process" (its own runtime) starts a long command, then dies without a trace.
    let doomed = rig.builder().command_lease_ttl(ttl).build().expect("kit");
    let id = ws.id().clone();
    let (runtime, dead_run) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let run_id = runtime.block_on(async move {
            let ws = doomed.workspace(&id).await.expect("open");
            let cmd = ws
                .spawn_command(sh("echo half > f; sleep 30"))
                .await
                .expect("spawn");
            cmd.run_id().clone()
        });
        (runtime, run_id)
    })
    .join()
    .expect("doomed process");
    let id = ws.id().clone();
    // The lease names the sandbox from the start (recorded before it was started);
    // wait until the sandbox is up.
    let store = rig.store.clone();
    let provider = rig.provider.clone();
    wait_for("the sandbox to start under a lease that names it", || {
        let store = store.clone();
        let id = id.clone();
        let provider = provider.clone();
        async move {
            use sandkit_core::Store;
            let named = store
                .get_workspace(&id)
                .await
                .ok()
                .flatten()
                .and_then(|w| w.lease)
                .is_some_and(|l| l.session.is_some());
            named && provider.alive_sessions() == 1
        }
    })
    .await;
    std::thread::spawn(move || runtime.shutdown_background())
        .join()
        .expect("shutdown");
    assert_eq!(rig.provider.alive_sessions(), 1, "its sandbox is still up");

    // While the lease is live, others are told the workspace is busy.
    let err = ws.run_command(sh("true")).await.expect_err("still leased");
    assert_eq!(err.kind(), &ErrorKind::Busy);

    // After one TTL the next operation recovers it.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let out = run(&ws, "cat f").await;
    assert_eq!(
        out.stdout, "committed\n",
        "the workspace keeps its last committed head"
    );
    let runs = all_runs(&ws).await;
    let dead = runs.iter().find(|r| r.id == dead_run).expect("dead run");
    assert_eq!(dead.status, RunStatus::Interrupted);
    assert!(
        dead.error
            .as_deref()
            .is_some_and(|e| e.contains("stopped renewing"))
    );
    assert_eq!(
        rig.provider.alive_sessions(),
        0,
        "the dead holder's sandbox was stopped"
    );
    let record = rig.record(ws.id()).await;
    assert!(record.lease.is_none());
    assert_ne!(record.head, head, "the recovering command committed");
}

#[tokio::test]
async fn heartbeats_keep_a_long_command_alive_past_its_ttl() {
    let rig = Rig::new();
    let kit = rig
        .builder()
        .command_lease_ttl(Duration::from_millis(200))
        .build()
        .expect("kit");
    let ws = new_ws(&kit).await;
    let cmd = ws
        .spawn_command(sh("sleep 0.8; echo done"))
        .await
        .expect("spawn");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = ws
        .run_command(sh("true"))
        .await
        .expect_err("not taken over");
    assert_eq!(err.kind(), &ErrorKind::Busy);
    let out = cmd.wait().await.expect("completes");
    assert_eq!(out.stdout, "done\n");
    assert_eq!(all_runs(&ws).await[0].status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_holder_whose_lease_was_taken_over_cannot_commit() {
    let rig = Rig::new();
    let kit = rig
        .builder()
        .command_lease_ttl(Duration::from_secs(30))
        .heartbeat_interval(Duration::from_millis(30))
        .build()
        .expect("kit");
    let ws = new_ws(&kit).await;
    run(&ws, "echo v1 > f").await;
    let cmd = ws
        .spawn_command(sh("echo v2 > f; sleep 0.5"))
        .await
        .expect("spawn");

    // Another process takes the lease over (as if it had judged it expired).
    let mut record = rig.record(ws.id()).await;
    let head = record.head.clone();
    let mut lease = record.lease.clone().expect("leased");
    lease.token = LeaseToken::generate();
    lease.holder = "usurper".into();
    record.lease = Some(lease);
    rig.store()
        .apply(WriteBatch::workspace(WorkspaceWrite::Update {
            expected_revision: record.revision,
            record,
        }))
        .await
        .expect("takeover");

    let err = cmd.wait().await.expect_err("fenced");
    assert_eq!(err.kind(), &ErrorKind::Conflict);
    assert!(err.to_string().contains("lease"), "{err}");
    let after = rig.record(ws.id()).await;
    assert_eq!(after.head, head, "the fenced holder committed nothing");
    assert_eq!(after.lease.map(|l| l.holder).as_deref(), Some("usurper"));
    assert_eq!(rig.provider.alive_sessions(), 0, "its sandbox was stopped");
}

#[tokio::test]
async fn a_commit_reported_failed_after_it_was_applied_keeps_its_head() {
    let rig = Rig::new();
    // Applies a commit and then reports a storage error, as when the connection drops
    // after the database committed.
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lossy = armed.clone();
    let store = std::sync::Arc::new(Spy::after(
        rig.store.clone(),
        Box::new(move |batch| {
            let is_commit = matches!(
                &batch.workspace,
                Some(WorkspaceWrite::Fenced { change, .. }) if change.head.is_some()
            );
            if !(is_commit && lossy.swap(false, std::sync::atomic::Ordering::SeqCst)) {
                return None;
            }
            Some(Box::pin(async {
                Err(sandkit_core::Error::storage(
                    "connection reset during COMMIT",
                ))
            }))
        }),
    ));
    let kit = sandkit_core::Sandkit::builder()
        .store(store.clone())
        .provider(std::sync::Arc::new(rig.provider.clone()))
        .build()
        .expect("kit");
    let ws = new_ws(&kit).await;
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    run(&ws, "echo committed > f").await;
    let head = rig.record(ws.id()).await.head.expect("head");
    assert!(
        rig.provider.snapshot_ids().contains(&head.id),
        "the snapshot behind the committed head was not deleted"
    );
    assert_eq!(run(&ws, "cat f").await.stdout, "committed\n");
}

#[tokio::test]
async fn reset_recovers_an_expired_command_lease_and_frees_its_key() {
    let rig = Rig::new();
    let kit = rig
        .builder()
        .command_lease_ttl(Duration::from_millis(300))
        .build()
        .expect("kit");
    let ws = new_ws(&kit).await;
    // A holder that acquired and then vanished.
    let mut record = rig.record(ws.id()).await;
    let mut run = sandkit_core::RunRecord::started(
        ws.id().clone(),
        sandkit_core::RunKind::Command,
        "sh",
        "fake",
        "ghost",
    );
    run.idempotency_key = Some("k".into());
    let at = sandkit_core::now();
    record.lease = Some(sandkit_core::Lease {
        kind: sandkit_core::LeaseKind::Command,
        token: LeaseToken::generate(),
        holder: "ghost".into(),
        session: None,
        run_id: Some(run.id.clone()),
        acquired_at: at,
        expires_at: at,
        policy: None,
    });
    rig.store()
        .apply(
            WriteBatch::workspace(WorkspaceWrite::Update {
                expected_revision: record.revision,
                record,
            })
            .run(sandkit_core::RunWrite::Insert(run.clone())),
        )
        .await
        .expect("ghost lease");
    ws.reset().await.expect("reset");
    let dead = rig
        .store()
        .get_run(&run.id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(dead.status, RunStatus::Interrupted);
    let out = ws
        .run_command(sh("echo again").idempotency_key("k"))
        .await
        .expect("the key is free");
    assert!(!out.replayed);
}

#[tokio::test]
async fn concurrent_lease_changes_through_two_handles_are_both_kept() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let a = ws.open_session(Default::default()).await.expect("open");
    let b = ws.attach_session().await.expect("attach");
    let before = a.lease().await.expect("lease").expires_at;
    let (policy, extended) = tokio::join!(
        a.set_policy(sandkit_core::policies::Policy::deny_all()),
        b.extend(Duration::from_secs(3600)),
    );
    policy.expect("set_policy");
    let extended = extended.expect("extend");
    let lease = a.lease().await.expect("lease");
    assert_eq!(
        lease.policy.as_deref(),
        Some("deny-all"),
        "the policy change was kept"
    );
    assert!(lease.expires_at >= before + chrono::Duration::seconds(3599));
    assert_eq!(lease.expires_at, extended);
    a.discard().await.expect("discard");
}

/// Intent before effect: the lease names the sandbox before it is started, so a holder
/// that dies before its first heartbeat still leaves a sandbox
/// the next operation can find and stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_dead_before_its_first_heartbeat_leaves_nothing_running() {
    let rig = Rig::new();
    let ttl = Duration::from_millis(300);
    let kit = rig.builder().command_lease_ttl(ttl).build().expect("kit");
    let ws = new_ws(&kit).await;
    run(&ws, "echo committed > f").await;

    let doomed = rig
        .builder()
        .command_lease_ttl(ttl)
        .heartbeat_interval(Duration::from_millis(250))
        .build()
        .expect("kit");
    let id = ws.id().clone();
    let runtime = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let ws = doomed.workspace(&id).await.expect("open");
            ws.spawn_command(sh("echo half > f; sleep 30"))
                .await
                .expect("spawn");
        });
        runtime
    })
    .join()
    .expect("doomed process");
    let provider = rig.provider.clone();
    wait_for("the doomed sandbox to start", || {
        std::future::ready(provider.alive_sessions() == 1)
    })
    .await;
    std::thread::spawn(move || runtime.shutdown_background())
        .join()
        .expect("shutdown");

    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(run(&ws, "cat f").await.stdout, "committed\n");
    assert_eq!(
        rig.provider.alive_sessions(),
        0,
        "the dead holder's sandbox was found by its planned name and stopped"
    );
}
