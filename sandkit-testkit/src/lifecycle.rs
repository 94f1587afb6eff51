//! End-to-end lifecycle checks a provider author runs against a real `Sandkit`: forks
//! diverge and outlive their source, and snapshot retention leaves exactly the expected
//! snapshots at the provider.

use sandkit_core::{CommandSpec, Sandkit, WorkspaceSpec};

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").args(["-c", script])
}

async fn out(kit: &Sandkit, ws: &str, script: &str) -> String {
    kit.workspace(ws)
        .await
        .expect("workspace")
        .run_command(sh(script))
        .await
        .expect("run_command")
        .stdout
}

async fn head(kit: &Sandkit, ws: &str) -> String {
    kit.workspace(ws)
        .await
        .expect("workspace")
        .record()
        .head
        .clone()
        .expect("head")
        .id
}

/// Forks diverge, deleting the source keeps the fork working.
///
/// `kit` must use a provider that declares `fork`.
pub async fn forks_diverge_and_outlive_their_source(kit: &Sandkit) {
    kit.create_workspace(WorkspaceSpec::new().id("lc-src"))
        .await
        .expect("create");
    out(kit, "lc-src", "echo base > f").await;
    kit.fork_workspace("lc-src", WorkspaceSpec::new().id("lc-fork"))
        .await
        .expect("fork");
    out(kit, "lc-fork", "echo fork >> f").await;
    out(kit, "lc-src", "echo source >> f").await;
    assert_eq!(out(kit, "lc-fork", "cat f").await, "base\nfork\n");
    assert_eq!(out(kit, "lc-src", "cat f").await, "base\nsource\n");
    kit.delete_workspace("lc-src").await.expect("delete source");
    kit.settle().await;
    assert_eq!(out(kit, "lc-fork", "cat f").await, "base\nfork\n");
}

/// After 10 commits with `keep_snapshots(3)`, exactly the last three run snapshots
/// exist at the provider (`exists` inspects the provider's own state).
///
/// `kit` must be built with `keep_snapshots(3)` on a provider that deletes snapshots.
pub async fn retention_keeps_exactly_the_last_three(kit: &Sandkit, exists: impl Fn(&str) -> bool) {
    kit.create_workspace(WorkspaceSpec::new().id("lc-retention"))
        .await
        .expect("create");
    let mut snapshots = Vec::new();
    for i in 0..10 {
        out(kit, "lc-retention", &format!("echo {i} > f")).await;
        snapshots.push(head(kit, "lc-retention").await);
    }
    kit.settle().await;
    let report = kit.gc(false).await.expect("gc");
    assert!(report.failed.is_empty(), "{report:?}");
    let alive: Vec<&String> = snapshots.iter().filter(|s| exists(s)).collect();
    assert_eq!(alive, snapshots[7..].iter().collect::<Vec<_>>());
    assert_eq!(out(kit, "lc-retention", "cat f").await, "9\n");
}
