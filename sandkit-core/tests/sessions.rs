//! Live sessions: exclusive lease, attach from anywhere, commit or discard.

mod common;

use std::time::Duration;

use common::{Rig, new_ws, run, sh};
use futures::StreamExt;
use sandkit_core::policies::{Policy, Secret, presets};
use sandkit_core::{ErrorKind, LeaseKind, SessionOptions, WorkspaceSpec, WorkspaceState};

#[tokio::test]
async fn session_lifecycle_open_exec_attach_extend_commit() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = kit
        .create_workspace(WorkspaceSpec::new().exposed_ports([3000]))
        .await
        .expect("create");
    assert!(ws.lease().await.expect("lease").is_none());
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    let lease = ws.lease().await.expect("lease").expect("live lease");
    assert_eq!(lease.kind, LeaseKind::Session);
    assert_eq!(lease.session_id.as_deref(), Some(session.id().as_str()));

    // Reads do not refresh the lease.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = ws.lease().await.expect("lease").expect("live");
    assert_eq!(again.expires_at, lease.expires_at);

    // Durable commands and a second session are refused while it is open.
    let err = ws.run_command(sh("true")).await.expect_err("busy");
    assert_eq!(err.kind(), &ErrorKind::Busy);
    assert!(err.to_string().contains("attach_session"), "{err}");
    assert_eq!(
        ws.open_session(SessionOptions::new())
            .await
            .expect_err("busy")
            .kind(),
        &ErrorKind::Busy
    );

    let out = session
        .exec(sh("echo session > hello.txt"))
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 0);

    // Another Sandkit instance (another process in real life) attaches.
    let other = rig.kit().workspace(ws.id()).await.expect("reopen");
    let attached = other.attach_session().await.expect("attach");
    assert_eq!(attached.id(), session.id());
    assert_eq!(
        attached
            .exec(sh("cat hello.txt"))
            .await
            .expect("cat")
            .stdout,
        "session\n"
    );
    assert_eq!(
        ws.lease().await.expect("lease").expect("live").expires_at,
        lease.expires_at,
        "attaching does not refresh the lease"
    );

    let extended = attached
        .extend(Duration::from_secs(30))
        .await
        .expect("extend");
    assert!(extended >= lease.expires_at + chrono::Duration::seconds(29));
    assert_eq!(
        ws.lease().await.expect("lease").expect("live").expires_at,
        extended
    );

    assert!(session.url(3000).await.expect("url").contains("3000"));
    let err = session.url(4000).await.expect_err("not exposed");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    assert!(err.to_string().contains("exposed_ports"), "{err}");

    attached.commit().await.expect("commit");
    assert!(ws.lease().await.expect("lease").is_none());
    let err = session.exec(sh("true")).await.expect_err("old handle");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
    let err = attached
        .exec(sh("true"))
        .await
        .expect_err("committed handle");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);

    assert_eq!(run(&ws, "cat hello.txt").await.stdout, "session\n");
}

#[tokio::test]
async fn discard_keeps_the_previous_head() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo committed > f").await;
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    session.exec(sh("echo scratch > f")).await.expect("exec");
    session.discard().await.expect("discard");
    assert!(ws.lease().await.expect("lease").is_none());
    assert_eq!(rig.provider.alive_sessions(), 0);
    assert_eq!(run(&ws, "cat f").await.stdout, "committed\n");
}

#[tokio::test]
async fn session_policy_override_is_persisted_and_restored_on_attach() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = kit
        .create_workspace(
            WorkspaceSpec::new().policy(Policy::allow_services([presets::bun()]).expect("p")),
        )
        .await
        .expect("create");
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    assert_eq!(
        session.exec(sh("policy")).await.expect("x").stdout,
        "allow-services:bun\n"
    );
    session
        .set_policy(Policy::allow_services([presets::npm()]).expect("p"))
        .await
        .expect("set");
    assert_eq!(
        session.exec(sh("policy")).await.expect("x").stdout,
        "allow-services:npm\n"
    );
    // An explicit per-call policy wins once.
    let once = session
        .exec(sh("policy").policy(Policy::deny_all()))
        .await
        .expect("x");
    assert_eq!(once.stdout, "deny-all\n");

    let attached = rig
        .kit()
        .workspace(ws.id())
        .await
        .expect("reopen")
        .attach_session()
        .await
        .expect("attach");
    assert_eq!(
        attached.exec(sh("policy")).await.expect("x").stdout,
        "allow-services:npm\n"
    );
    assert_eq!(
        attached.lease().await.expect("lease").policy.as_deref(),
        Some("allow-services:npm")
    );
    // The workspace default is untouched.
    let record = rig.record(ws.id()).await;
    assert_eq!(
        record.policy.map(|p| p.describe()).as_deref(),
        Some("allow-services:bun")
    );
    attached.discard().await.expect("discard");
}

#[tokio::test]
async fn session_policies_with_explicit_secrets_are_refused() {
    // The original persisted them in plain text (gap 13.1.3).
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let secret = Policy::allow_services([presets::github().token(Secret::new("ghp_fake_secret"))])
        .expect("p");
    let err = ws
        .open_session(SessionOptions::new().policy(secret.clone()))
        .await
        .expect_err("durable");
    assert!(
        err.to_string().contains("cannot be stored durably"),
        "{err}"
    );
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    let err = session.set_policy(secret).await.expect_err("durable");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    let stored = format!(
        "{:?}",
        rig.store().get_workspace(ws.id()).await.expect("get")
    );
    assert!(!stored.contains("ghp_fake_secret"));
    session.discard().await.expect("discard");
}

#[tokio::test]
async fn an_expired_session_falls_back_to_the_head_not_cold() {
    // The original dropped the restore point here (gap 13.1.1).
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo kept > f").await;
    let session = ws
        .open_session(SessionOptions::new().timeout(Duration::from_secs(1)))
        .await
        .expect("open");
    session.exec(sh("echo lost > f")).await.expect("exec");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ws.lease().await.expect("lease").is_none(), "expired");
    let err = ws.attach_session().await.expect_err("expired");
    assert_eq!(err.kind(), &ErrorKind::NoActiveSession);
    let err = session.exec(sh("true")).await.expect_err("expired");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
    let record = rig.record(ws.id()).await;
    assert_eq!(record.state(), WorkspaceState::Committed);
    assert_eq!(run(&ws, "cat f").await.stdout, "kept\n");
}

#[tokio::test]
async fn a_session_lost_at_the_provider_is_released_on_attach() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo kept > f").await;
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    rig.provider.lose_session(&session.id());
    let err = ws.attach_session().await.expect_err("gone");
    assert_eq!(err.kind(), &ErrorKind::NoActiveSession);
    assert!(err.to_string().contains("keeps its last commit"), "{err}");
    assert!(ws.lease().await.expect("lease").is_none());
    assert_eq!(run(&ws, "cat f").await.stdout, "kept\n");
}

#[tokio::test]
async fn attach_without_a_session_is_no_active_session() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let err = ws.attach_session().await.expect_err("none");
    assert_eq!(err.kind(), &ErrorKind::NoActiveSession);
    let cmd = ws.spawn_command(sh("sleep 0.2")).await.expect("spawn");
    let err = ws.attach_session().await.expect_err("a command holds it");
    assert_eq!(err.kind(), &ErrorKind::NoActiveSession);
    cmd.wait().await.expect("wait");
}

#[tokio::test]
async fn background_processes_stream_and_can_be_killed() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    let quick = session
        .start_process(sh("echo ready; echo note >&2"))
        .await
        .expect("start");
    let done = quick.wait().await.expect("wait");
    assert_eq!(
        (done.exit_code, done.stdout.as_str(), done.stderr.as_str()),
        (0, "ready\n", "note\n")
    );
    let replay: Vec<String> = quick
        .logs()
        .map(|c| c.expect("chunk").text().into_owned())
        .collect()
        .await;
    assert_eq!(replay, ["ready\n", "note\n"]);
    let from_provider: Vec<String> = session
        .process_logs(quick.id())
        .await
        .expect("logs")
        .map(|c| c.expect("chunk").text().into_owned())
        .collect()
        .await;
    assert_eq!(from_provider, replay);

    let long = session
        .start_process(sh("echo tick; sleep 30"))
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_millis(50)).await;
    long.kill().await.expect("kill");
    let killed = tokio::time::timeout(Duration::from_secs(5), long.wait())
        .await
        .expect("ends")
        .expect("result");
    assert_ne!(killed.exit_code, 0);
    assert_eq!(killed.stdout, "tick\n");
    assert_eq!(session.processes().await.expect("list").len(), 2);
    session.discard().await.expect("discard");
}

#[tokio::test]
async fn sessions_start_with_the_requested_timeout_and_validate_options() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let err = ws
        .open_session(SessionOptions::new().timeout(Duration::from_millis(10)))
        .await
        .expect_err("too short");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    let before = sandkit_core::now();
    let session = ws
        .open_session(SessionOptions::new().timeout(Duration::from_secs(120)))
        .await
        .expect("open");
    let lease = session.lease().await.expect("lease");
    let secs = (lease.expires_at - before).num_seconds();
    assert!(
        (119..=121).contains(&secs),
        "lease follows the session timeout: {secs}s"
    );
    assert!(session.exec(sh("true").idempotency_key("k")).await.is_err());
    session.discard().await.expect("discard");
    let err = session.discard().await.expect_err("twice");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
}

/// A session whose committing process died after the provider took its snapshot and
/// before the store recorded it: the provider snapshot is taken directly, as that
/// process did, and nothing else happens.
async fn commit_dies_after_snapshot(
    rig: &Rig,
    ws: &sandkit_core::Workspace,
    timeout: Duration,
) -> String {
    use sandkit_core::{Provider, SessionRef};
    let session = ws
        .open_session(SessionOptions::new().timeout(timeout))
        .await
        .expect("open");
    session.exec(sh("echo work > result")).await.expect("exec");
    let reference = SessionRef {
        provider: "fake".to_owned(),
        id: session.id(),
    };
    std::mem::forget(session);
    let live = rig.provider.attach(&reference).await.expect("attach");
    live.snapshot().await.expect("snapshot").id
}

#[tokio::test]
async fn retrying_a_commit_whose_process_died_after_the_snapshot_finishes_it() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let snapshot = commit_dies_after_snapshot(&rig, &ws, Duration::from_secs(600)).await;
    let snapshots = rig.provider.snapshot_ids().len();

    ws.commit_session()
        .await
        .expect("the retried commit succeeds");
    let record = rig.record(ws.id()).await;
    assert_eq!(
        record.head.as_ref().map(|h| h.id.as_str()),
        Some(snapshot.as_str())
    );
    assert!(record.lease.is_none());
    assert_eq!(
        rig.provider.snapshot_ids().len(),
        snapshots,
        "the snapshot was found, not taken again"
    );
    let runs = common::all_runs(&ws).await;
    assert_eq!(runs[0].kind, sandkit_core::RunKind::Session);
    assert_eq!(
        runs[0].snapshot.as_ref().map(|s| s.id.as_str()),
        Some(snapshot.as_str())
    );
    assert_eq!(run(&ws, "cat result").await.stdout, "work\n");
    // A second retry finds nothing left to commit.
    let err = ws.commit_session().await.expect_err("nothing to commit");
    assert_eq!(err.kind(), &ErrorKind::NoActiveSession);
}

#[tokio::test]
async fn expiry_of_a_session_whose_commit_died_commits_its_snapshot() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let snapshot = commit_dies_after_snapshot(&rig, &ws, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The next durable command recovers the expired lease: the work is kept.
    assert_eq!(run(&ws, "cat result").await.stdout, "work\n");
    let runs = common::all_runs(&ws).await;
    assert!(
        runs.iter().any(|r| r.kind == sandkit_core::RunKind::Session
            && r.snapshot.as_ref().map(|s| s.id.as_str()) == Some(snapshot.as_str())),
        "the finished commit is journaled"
    );
}
