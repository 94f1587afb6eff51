//! Fork and snapshot retention through `Sandkit` on the local provider, with the
//! snapshot directory inspected.

use std::sync::Arc;
use std::time::Duration;

use sandkit_adapter_memory::MemoryStore;
use sandkit_core::Sandkit;
use sandkit_local::LocalProvider;

fn kit(root: &std::path::Path, keep: usize) -> Sandkit {
    Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(Arc::new(LocalProvider::new(root).expect("provider")))
        .keep_snapshots(keep)
        .build()
        .expect("sandkit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_diverge_and_outlive_their_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    sandkit_testkit::lifecycle::forks_diverge_and_outlive_their_source(&kit(dir.path(), 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_leaves_exactly_the_expected_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = dir.path().join("snapshots");
    let exists = |id: &str| {
        std::fs::read_dir(&snapshots)
            .expect("snapshots dir")
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(id))
    };
    sandkit_testkit::lifecycle::retention_keeps_exactly_the_last_three(&kit(dir.path(), 3), exists)
        .await;
}

/// `gc` deletes the snapshots nothing references (here: one taken by a holder that
/// never committed it) once they are older than the grace period — never a head, a
/// kept run's snapshot or the setup's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_unreferenced_snapshots_after_the_grace_period() {
    use sandkit_core::{CommandSpec, Provider, SetupSpec, WorkspaceSpec};

    let dir = tempfile::tempdir().expect("tempdir");
    let provider = Arc::new(LocalProvider::new(dir.path()).expect("provider"));
    let store = Arc::new(MemoryStore::new());
    let build = |grace: Duration| {
        Sandkit::builder()
            .store(store.clone())
            .provider(provider.clone())
            .setup(
                SetupSpec::new("sh")
                    .args(["-c", "echo setup > setup.txt"])
                    .policy(sandkit_core::policies::Policy::allow_all()),
            )
            .keep_snapshots(1)
            .unreferenced_grace(grace)
            .build()
            .expect("sandkit")
    };
    let kit = build(Duration::from_secs(3600));
    let ws = kit
        .create_workspace(WorkspaceSpec::new())
        .await
        .expect("workspace");
    let sh = |s: &str| CommandSpec::new("sh").args(["-c", s]);
    ws.run_command(sh("echo one > f")).await.expect("run");
    ws.run_command(sh("echo two > f")).await.expect("run");
    kit.settle().await;

    // A snapshot a holder took but never committed.
    let session = provider
        .start(sandkit_testkit::provider_suite::fresh("orphan"))
        .await
        .expect("start");
    let orphan = session.snapshot().await.expect("snapshot");
    let listed = |p: Arc<LocalProvider>| async move {
        p.list_snapshots()
            .await
            .expect("list")
            .into_iter()
            .map(|i| i.snapshot)
            .collect::<Vec<_>>()
    };
    let before = listed(provider.clone()).await;
    assert!(before.contains(&orphan));

    let young = kit.gc(false).await.expect("gc");
    assert_eq!(young.unreferenced, 0, "younger than the grace period: kept");
    assert!(listed(provider.clone()).await.contains(&orphan));

    let kit = build(Duration::ZERO);
    let dry = kit.gc(true).await.expect("dry run");
    assert_eq!(dry.deleted, vec![orphan.clone()]);
    assert_eq!(dry.unreferenced, 1);
    assert!(
        listed(provider.clone()).await.contains(&orphan),
        "a dry run deletes nothing"
    );

    let swept = kit.gc(false).await.expect("gc");
    assert_eq!(swept.deleted, vec![orphan.clone()]);
    let after = listed(provider.clone()).await;
    assert!(!after.contains(&orphan));
    assert_eq!(after.len(), before.len() - 1, "only the orphan went");
    let out = ws.run_command(sh("cat f setup.txt")).await.expect("run");
    assert_eq!(
        out.stdout, "two\nsetup\n",
        "the head and the setup are intact"
    );
}

/// A session commit whose process died between the local snapshot and the store write:
/// the retried commit finds that snapshot (no second one is taken), and it survives
/// `gc` as the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_died_after_its_snapshot_is_finished_by_the_retry() {
    use sandkit_core::{CommandSpec, Provider, SessionOptions, SessionRef, WorkspaceSpec};
    let dir = tempfile::tempdir().expect("tempdir");
    let provider = Arc::new(LocalProvider::new(dir.path()).expect("provider"));
    let kit = Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(provider.clone())
        .keep_snapshots(3)
        .unreferenced_grace(Duration::ZERO)
        .build()
        .expect("sandkit");
    let ws = kit
        .create_workspace(WorkspaceSpec::new())
        .await
        .expect("workspace");
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    session
        .exec(CommandSpec::new("sh").args(["-c", "echo work > state.txt"]))
        .await
        .expect("exec");
    let reference = SessionRef {
        provider: "local".to_owned(),
        id: session.id(),
    };
    drop(session);
    // What the dying process did: the provider snapshot, nothing more.
    let taken = provider
        .attach(&reference)
        .await
        .expect("attach")
        .snapshot()
        .await
        .expect("snapshot");
    let listed = provider.list_snapshots().await.expect("list").len();

    ws.commit_session()
        .await
        .expect("the retry finishes the commit");
    assert_eq!(
        provider.list_snapshots().await.expect("list").len(),
        listed,
        "no second snapshot was taken"
    );
    let head = kit
        .workspace(ws.id())
        .await
        .expect("ws")
        .record()
        .head
        .clone();
    assert_eq!(head.as_ref(), Some(&taken));
    let report = kit.gc(false).await.expect("gc");
    assert!(!report.deleted.contains(&taken), "the head survives gc");
    let out = ws
        .run_command(CommandSpec::new("cat").args(["state.txt"]))
        .await
        .expect("run");
    assert_eq!(out.stdout, "work\n");
}
