//! Fork, restore, snapshot retention and the journal export.

mod common;

use common::spy::Spy;
use common::{Rig, all_runs, new_ws, run, sh};
use futures::StreamExt;
use sandkit_core::policies::{Policy, Secret, presets};
use sandkit_core::{ErrorKind, JournalEntry, RunKind, RunStatus, SessionOptions, WorkspaceSpec};
use sandkit_testkit::FakeProvider;

async fn head_id(rig: &Rig, ws: &sandkit_core::Workspace) -> String {
    rig.record(ws.id()).await.head.expect("head").id
}

#[tokio::test]
async fn forks_diverge_and_outlive_their_source() {
    let rig = Rig::new();
    let kit = rig.builder().keep_all_snapshots().build().expect("kit");
    let src = kit
        .create_workspace(
            WorkspaceSpec::new()
                .id("src")
                .exposed_ports([3000])
                .policy(Policy::deny_all()),
        )
        .await
        .expect("create");
    run(&src, "echo base > f").await;
    let fork = kit
        .fork_workspace("src", WorkspaceSpec::new().id("fork"))
        .await
        .expect("fork");
    let record = fork.record();
    assert_eq!(record.parent.as_ref().map(|p| p.as_str()), Some("src"));
    assert_eq!(record.name, "default (fork)");
    assert_eq!(record.sandbox_config.exposed_ports, [3000]);
    assert_eq!(
        record.policy.as_ref().map(Policy::describe).as_deref(),
        Some("deny-all")
    );
    assert_eq!(
        record.head.as_ref().map(|h| h.id.clone()),
        Some(head_id(&rig, &src).await)
    );

    run(&fork, "echo fork >> f").await;
    run(&src, "echo source >> f").await;
    assert_eq!(run(&fork, "cat f").await.stdout, "base\nfork\n");
    assert_eq!(run(&src, "cat f").await.stdout, "base\nsource\n");

    let journal = all_runs(&fork).await;
    let first = journal.last().expect("fork run");
    assert_eq!(first.kind, RunKind::Fork);
    assert_eq!(first.args, ["src", "head"]);

    kit.delete_workspace("src").await.expect("delete source");
    assert_eq!(run(&fork, "cat f").await.stdout, "base\nfork\n");
}

#[tokio::test]
async fn fork_at_an_earlier_run_and_its_errors() {
    let rig = Rig::new();
    let kit = rig.kit();
    let src = new_ws(&kit).await;
    let first = run(&src, "echo v1 > f").await.run_id.expect("run");
    run(&src, "echo v2 > f").await;
    let fork = kit
        .fork_workspace_at(src.id(), &first, WorkspaceSpec::new().name("at-v1"))
        .await
        .expect("fork");
    assert_eq!(run(&fork, "cat f").await.stdout, "v1\n");
    assert_eq!(fork.record().name, "at-v1");

    let failed = src
        .run_command(sh("exit 1"))
        .await
        .expect("run")
        .run_id
        .expect("id");
    assert!(
        kit.fork_workspace_at(src.id(), &failed, WorkspaceSpec::new())
            .await
            .is_ok()
    );
    let missing = sandkit_core::RunId::generate();
    let err = kit
        .fork_workspace_at(src.id(), &missing, WorkspaceSpec::new())
        .await
        .expect_err("unknown run");
    assert_eq!(err.kind(), &ErrorKind::NotFound);
    let err = kit
        .fork_workspace(src.id(), WorkspaceSpec::new().id(fork.id().as_str()))
        .await
        .expect_err("id taken");
    assert_eq!(err.kind(), &ErrorKind::AlreadyExists);

    let mut caps = FakeProvider::full_capabilities();
    caps.fork = false;
    let single = Rig::with_provider(FakeProvider::with_capabilities(caps));
    let kit = single.kit();
    let ws = new_ws(&kit).await;
    run(&ws, "true").await;
    let err = kit
        .fork_workspace(ws.id(), WorkspaceSpec::new())
        .await
        .expect_err("no fork");
    assert_eq!(err.kind(), &ErrorKind::Unsupported);
}

#[tokio::test]
async fn restore_moves_the_head_back_and_is_journaled() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let v1 = run(&ws, "echo v1 > f").await.run_id.expect("id");
    run(&ws, "echo v2 > f").await;
    let restored = ws.restore(&v1).await.expect("restore");
    assert_eq!(restored.kind, RunKind::Restore);
    assert_eq!(restored.args, [v1.to_string()]);
    assert_eq!(run(&ws, "cat f").await.stdout, "v1\n");

    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    assert_eq!(
        ws.restore(&v1).await.expect_err("busy").kind(),
        &ErrorKind::Busy
    );
    session.discard().await.expect("discard");
    let err = ws
        .restore(&sandkit_core::RunId::generate())
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), &ErrorKind::NotFound);
}

#[tokio::test]
async fn a_lost_head_is_answered_by_restoring_an_earlier_run() {
    let rig = Rig::new();
    let kit = rig.builder().keep_all_snapshots().build().expect("kit");
    let ws = new_ws(&kit).await;
    let v1 = run(&ws, "echo v1 > f").await.run_id.expect("id");
    run(&ws, "echo v2 > f").await;
    rig.provider.lose_snapshot(&head_id(&rig, &ws).await);
    assert_eq!(
        ws.run_command(sh("cat f")).await.expect_err("lost").kind(),
        &ErrorKind::SnapshotUnavailable
    );
    ws.restore(&v1).await.expect("restore");
    assert_eq!(run(&ws, "cat f").await.stdout, "v1\n");
}

#[tokio::test]
async fn retention_keeps_heads_and_the_last_runs_and_forks_pin_theirs() {
    let rig = Rig::new();
    let kit = rig.builder().keep_snapshots(3).build().expect("kit");
    let ws = new_ws(&kit).await;
    let mut run_snapshots = Vec::new();
    for i in 0..10 {
        run(&ws, &format!("echo {i} > f")).await;
        run_snapshots.push(head_id(&rig, &ws).await);
        if i == 3 {
            // A fork taken at run 4 pins that snapshot.
            kit.fork_workspace(ws.id(), WorkspaceSpec::new().id("pinned"))
                .await
                .expect("fork");
        }
    }
    // Commits trigger retention in the background; a pass now settles it.
    let report = kit.gc(false).await.expect("gc");
    assert!(report.failed.is_empty(), "{report:?}");
    let mut expected: Vec<String> = run_snapshots[7..].to_vec();
    expected.push(run_snapshots[3].clone());
    expected.sort();
    assert_eq!(rig.provider.snapshot_ids(), expected);
    let journal = all_runs(&ws).await;
    let deleted = journal
        .iter()
        .filter(|r| r.snapshot_deleted_at.is_some())
        .count();
    assert_eq!(deleted, 6, "each deletion is recorded on its run");
    // Restoring a deleted run's snapshot is refused with the reason.
    let old = journal.last().expect("first run");
    let err = ws.restore(&old.id).await.expect_err("deleted");
    assert_eq!(err.kind(), &ErrorKind::SnapshotUnavailable);
    assert!(err.to_string().contains("retention"), "{err}");

    // Once the fork moves on (and keeps only its own last 3), the pin is released.
    let pinned = kit.workspace("pinned").await.expect("fork");
    for i in 0..3 {
        run(&pinned, &format!("echo p{i} > f")).await;
    }
    kit.gc(false).await.expect("gc");
    assert!(
        !rig.provider.snapshot_ids().contains(&run_snapshots[3]),
        "no longer referenced by a head or a retained run"
    );
    assert_eq!(run(&pinned, "cat f").await.stdout, "p2\n");
    assert_eq!(run(&ws, "cat f").await.stdout, "9\n");
}

#[tokio::test]
async fn retention_dry_run_and_failed_deletions_are_retried() {
    let rig = Rig::new();
    let kit = rig.builder().keep_snapshots(1).build().expect("kit");
    let ws = new_ws(&kit).await;
    // Let background passes fail: the snapshots must survive and be retried.
    rig.provider.fail_next_delete(100);
    for i in 0..4 {
        run(&ws, &format!("echo {i} > f")).await;
    }
    let dry = kit.gc(true).await.expect("dry run");
    assert!(dry.dry_run);
    assert_eq!(dry.deleted.len(), 3);
    assert_eq!(
        rig.provider.snapshot_ids().len(),
        4,
        "a dry run deletes nothing"
    );
    let failed = kit.gc(false).await.expect("gc");
    assert_eq!(failed.failed.len(), 3, "{failed:?}");
    assert!(
        all_runs(&ws)
            .await
            .iter()
            .all(|r| r.snapshot_deleted_at.is_none()),
        "a failed deletion leaves no tombstone"
    );
    rig.provider.fail_next_delete(0);
    let done = kit.gc(false).await.expect("gc");
    assert_eq!(done.deleted.len(), 3);
    assert_eq!(rig.provider.snapshot_ids(), [head_id(&rig, &ws).await]);
}

#[tokio::test]
async fn session_commits_are_journaled_runs() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    session.exec(sh("echo s > f")).await.expect("exec");
    session.commit().await.expect("commit");
    let runs = all_runs(&ws).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].kind, RunKind::Session);
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(
        runs[0].snapshot.as_ref().map(|s| s.id.clone()),
        Some(head_id(&rig, &ws).await)
    );
}

#[tokio::test]
async fn the_journal_exports_redacted_round_trippable_entries() {
    let mut rig = Rig::new();
    rig.env = rig
        .env
        .clone()
        .with("GITHUB_TOKEN", "ghp_env_token_never_stored");
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let secret = "sk-explicit-secret-never-stored";
    run(&ws, "echo one").await;
    ws.run_command(
        sh("echo two")
            .env("API_KEY", "env-value-never-stored")
            .policy(
                Policy::allow_services([presets::codex().api_key(Secret::new(secret))]).expect("p"),
            ),
    )
    .await
    .expect("run");
    ws.run_command(sh("true").policy(Policy::allow_services([presets::github()]).expect("p")))
        .await
        .expect("run");
    let fork = kit
        .fork_workspace(ws.id(), WorkspaceSpec::new())
        .await
        .expect("fork");

    let entries: Vec<JournalEntry> = ws.journal().map(|e| e.expect("entry")).collect().await;
    assert_eq!(entries.len(), 3);
    let lines: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(e).expect("json"))
        .collect();
    let jsonl = lines.join("\n");
    for needle in [
        secret,
        "env-value-never-stored",
        "ghp_env_token_never_stored",
    ] {
        assert!(!jsonl.contains(needle), "{needle} leaked into the journal");
    }
    for (line, entry) in lines.iter().zip(&entries) {
        let back: JournalEntry = serde_json::from_str(line).expect("parses");
        assert_eq!(&back, entry, "round trip");
    }
    assert_eq!(entries[1].run.policy_description, "allow-services:codex");
    assert_eq!(entries[1].run.env_keys, ["API_KEY"]);
    let fork_entries: Vec<JournalEntry> = fork.journal().map(|e| e.expect("entry")).collect().await;
    assert_eq!(fork_entries.len(), 1);
    assert_eq!(fork_entries[0].workspace_parent.as_ref(), Some(ws.id()));
    assert_eq!(fork_entries[0].run.args[0], ws.id().as_str());
}

#[tokio::test]
async fn following_the_journal_yields_new_runs_once_finished() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo first").await;
    let mut follow = Box::pin(ws.follow_journal(std::time::Duration::from_millis(20)));
    let first = follow.next().await.expect("entry").expect("ok");
    assert_eq!(first.run.stdout.as_deref(), Some("first\n"));
    let cmd = ws
        .spawn_command(sh("sleep 0.2; echo second"))
        .await
        .expect("spawn");
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), follow.next())
        .await
        .expect("followed")
        .expect("entry")
        .expect("ok");
    assert_eq!(
        second.run.status,
        RunStatus::Succeeded,
        "emitted once finished"
    );
    assert_eq!(second.run.stdout.as_deref(), Some("second\n"));
    cmd.wait().await.expect("wait");
    assert!(
        rig.store()
            .get_workspace(ws.id())
            .await
            .expect("get")
            .is_some()
    );
}

/// Workspace `src` with one committed command (so its head is a snapshot).
async fn committed_source(kit: &sandkit_core::Sandkit) -> sandkit_core::Workspace {
    let src = kit
        .create_workspace(WorkspaceSpec::new().id("src"))
        .await
        .expect("create");
    run(&src, "echo base > f").await;
    src
}

#[tokio::test]
async fn a_source_deleted_while_it_is_forked_leaves_no_fork_with_a_vanished_head() {
    let rig = Rig::new();
    let kit = rig.kit();
    committed_source(&kit).await;
    // Right before the fork's write, report it and wait to be resumed.
    let (reached_tx, reached) = tokio::sync::oneshot::channel::<()>();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
    let pause = std::sync::Mutex::new(Some((reached_tx, resume_rx)));
    let store = std::sync::Arc::new(Spy::before(
        rig.store.clone(),
        Box::new(move |batch| {
            if !matches!(
                batch.workspace,
                Some(sandkit_core::WorkspaceWrite::Create(_))
            ) {
                return None;
            }
            let (reached, resume) = pause.lock().unwrap().take()?;
            let _ = reached.send(());
            Some(Box::pin(async move {
                let _ = resume.await;
                Ok(())
            }))
        }),
    ));
    let forking = rig.builder().store(store).build().expect("kit");
    let fork = tokio::spawn(async move {
        forking
            .fork_workspace("src", WorkspaceSpec::new().id("fork"))
            .await
    });
    // The fork has read the source and is about to write: delete the source now. Its
    // snapshots are forgotten (nothing references them yet).
    reached.await.expect("the fork reached its write");
    kit.delete_workspace("src").await.expect("delete");
    resume_tx.send(()).expect("resume");
    let err = fork.await.expect("join").expect_err("the source vanished");
    assert_eq!(err.kind(), &ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("src"), "{err}");
    let missing = kit.workspace("fork").await.expect_err("no fork");
    assert_eq!(missing.kind(), &ErrorKind::NotFound);
}

#[tokio::test]
async fn a_snapshot_pinned_by_a_fork_is_not_rewritten_on_every_pass() {
    let rig = Rig::new();
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = writes.clone();
    let store = std::sync::Arc::new(Spy::before(
        rig.store.clone(),
        Box::new(move |batch| {
            let tombstones = batch
                .runs
                .iter()
                .filter(|w| matches!(w, sandkit_core::RunWrite::SnapshotDeleted { .. }))
                .count();
            counted.fetch_add(tombstones, std::sync::atomic::Ordering::SeqCst);
            None
        }),
    ));
    let kit = rig
        .builder()
        .store(store)
        .keep_snapshots(1)
        .build()
        .expect("kit");
    let ws = new_ws(&kit).await;
    run(&ws, "echo pinned > f").await;
    kit.fork_workspace(ws.id(), WorkspaceSpec::new().id("pin"))
        .await
        .expect("fork");
    let pinned = head_id(&rig, &ws).await;
    for i in 0..5 {
        run(&ws, &format!("echo {i} > f")).await;
    }
    kit.settle().await;
    let before = writes.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        kit.gc(false).await.expect("gc");
    }
    assert_eq!(
        writes.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "passes over a pinned snapshot wrote tombstones"
    );
    assert!(
        rig.provider.snapshot_ids().contains(&pinned),
        "the pin holds"
    );
}

#[tokio::test]
async fn a_fork_undone_after_its_source_was_deleted_leaves_no_snapshot_behind() {
    let rig = Rig::new();
    let kit = rig.kit();
    let src = committed_source(&kit).await;
    let head = head_id(&rig, &src).await;
    // Right after the fork's write (before it checks its source), delete the source:
    // the deletion sees the fork's head and keeps the snapshot.
    let deleter = kit.clone();
    let once = std::sync::Mutex::new(Some(()));
    let store = std::sync::Arc::new(Spy::after(
        rig.store.clone(),
        Box::new(move |batch| {
            if !matches!(
                batch.workspace,
                Some(sandkit_core::WorkspaceWrite::Create(_))
            ) {
                return None;
            }
            once.lock().unwrap().take()?;
            let deleter = deleter.clone();
            Some(Box::pin(async move {
                deleter.delete_workspace("src").await.expect("delete");
                Ok(())
            }))
        }),
    ));
    let forking = rig.builder().store(store).build().expect("kit");
    let err = forking
        .fork_workspace("src", WorkspaceSpec::new().id("fork"))
        .await
        .expect_err("the source vanished");
    assert_eq!(err.kind(), &ErrorKind::NotFound, "{err}");
    assert!(
        !rig.provider.snapshot_ids().contains(&head),
        "the snapshot nobody holds any more was left at the provider"
    );
}
