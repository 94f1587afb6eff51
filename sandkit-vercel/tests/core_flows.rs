//! The core's durable-command and session flows through the Vercel provider against the
//! fake API: exactly three API calls per durable command, and live sessions.

use std::sync::Arc;
use std::time::Duration;

use sandkit_adapter_memory::MemoryStore;
use sandkit_core::policies::{Policy, presets};
use sandkit_core::{CommandSpec, Sandkit, SessionOptions, WorkspaceSpec};
use sandkit_vercel::fake::FakeVercel;
use serde_json::json;

fn sandkit(fake: &FakeVercel) -> Sandkit {
    Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(Arc::new(fake.provider()))
        .build()
        .expect("sandkit")
}

/// The one snapshot taken from the session a recorded request addressed.
fn snapshot_id(fake: &FakeVercel, request: &sandkit_vercel::fake::RecordedRequest) -> String {
    let session = request.path.split('/').nth(4).expect("session id");
    let snapshots = fake.snapshots_of(session);
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    snapshots[0].clone()
}

fn calls(fake: &FakeVercel) -> Vec<String> {
    fake.requests()
        .iter()
        .map(|r| {
            let mut segments: Vec<&str> = r.path.split('/').collect();
            // Replace ids by `*` so the sequence is stable.
            for s in &mut segments {
                if s.starts_with("sbx_") || s.starts_with("cmd_") || s.starts_with("snap_") {
                    *s = "*";
                }
            }
            format!("{} {}", r.method, segments.join("/"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_durable_command_costs_three_calls_and_builds_on_the_last() {
    let fake = FakeVercel::start().await;
    let sandkit = sandkit(&fake);
    let ws = sandkit
        .create_workspace(
            WorkspaceSpec::new()
                .name("agent")
                .policy(Policy::deny_all()),
        )
        .await
        .expect("workspace");
    assert!(
        fake.requests().is_empty(),
        "creating a workspace calls nothing"
    );

    let first = ws
        .run_command(CommandSpec::new("sh").args(["-c", "echo hello > notes.txt; echo wrote"]))
        .await
        .expect("first run");
    assert_eq!((first.exit_code, first.stdout.as_str()), (0, "wrote\n"));
    let expected = [
        "POST /v3/sandboxes",
        "POST /v2/sandboxes/sessions/*/cmd",
        "POST /v2/sandboxes/sessions/*/snapshot",
    ];
    assert_eq!(calls(&fake), expected);
    let create = &fake.requests()[0];
    let body = create.body.as_ref().expect("create body");
    assert_eq!(body["networkPolicy"], json!({"mode": "deny-all"}));
    assert_eq!(body["tags"], json!({"sandkit-workspace": ws.id().as_str()}));
    assert!(
        body.get("source").is_none(),
        "a cold workspace starts fresh"
    );
    let snapshot = fake.requests()[2].clone();
    let cmd = &fake.requests()[1];
    assert_eq!(cmd.body.as_ref().expect("cmd")["wait"], json!(true));
    assert_eq!(cmd.body.as_ref().expect("cmd")["logs"], json!(true));
    assert_eq!(
        snapshot.body,
        Some(json!({"expiration": 0})),
        "a head never expires at the platform by default"
    );

    let head = |sandkit: &Sandkit, id: String| {
        let sandkit = sandkit.clone();
        async move {
            sandkit
                .workspace(id)
                .await
                .expect("workspace")
                .record()
                .head
                .clone()
                .expect("head")
        }
    };
    let first_head = head(&sandkit, ws.id().as_str().to_owned()).await;
    assert_eq!(first_head.id, snapshot_id(&fake, &snapshot));

    fake.clear_requests();
    let second = ws
        .run_command(CommandSpec::new("sh").args(["-c", "cat notes.txt; echo more >> notes.txt"]))
        .await
        .expect("second run");
    assert_eq!((second.exit_code, second.stdout.as_str()), (0, "hello\n"));
    assert_eq!(calls(&fake), expected);
    let source = fake.requests()[0].body.clone().expect("create")["source"].clone();
    assert_eq!(
        source,
        json!({"type": "snapshot", "snapshotId": first_head.id})
    );
    let head_now = head(&sandkit, ws.id().as_str().to_owned()).await;
    assert_ne!(head_now, first_head);
    assert_eq!(head_now.provider, "vercel");
    assert_eq!(
        fake.snapshot_file(&head_now.id, "notes.txt").as_deref(),
        Some("hello\nmore\n")
    );
    assert_eq!(
        fake.count("POST", "/v2/sandboxes/sessions/*/network-policy"),
        0
    );

    // A failing command is a result, committed like any other.
    fake.clear_requests();
    let failed = ws
        .run_command(CommandSpec::new("sh").args(["-c", "echo bad >&2; exit 7"]))
        .await
        .expect("third run");
    assert_eq!((failed.exit_code, failed.stderr.as_str()), (7, "bad\n"));
    assert_eq!(calls(&fake), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_execs_sets_policy_extends_and_commits() {
    let fake = FakeVercel::start().await;
    let sandkit = sandkit(&fake);
    let ws = sandkit
        .create_workspace(WorkspaceSpec::new().exposed_ports([3000]))
        .await
        .expect("workspace");
    let session = ws
        .open_session(SessionOptions::new().timeout(Duration::from_secs(600)))
        .await
        .expect("open");
    let out = session
        .exec(CommandSpec::new("sh").args(["-c", "echo live > live.txt; pwd"]))
        .await
        .expect("exec");
    assert_eq!(out.stdout, "/vercel/sandbox\n");
    assert_eq!(
        calls(&fake),
        ["POST /v3/sandboxes", "POST /v2/sandboxes/sessions/*/cmd"],
        "the policy in force at create time is not sent again"
    );

    session
        .set_policy(Policy::allow_services([presets::npm()]).expect("policy"))
        .await
        .expect("set policy");
    assert_eq!(
        fake.network_policy(&session.id()),
        Some(json!({"allow": {"registry.npmjs.org": []}}))
    );

    let before = session.lease().await.expect("lease").expires_at;
    let after = session
        .extend(Duration::from_secs(120))
        .await
        .expect("extend");
    assert!(
        after >= before + chrono::Duration::seconds(119),
        "{before} -> {after}"
    );
    assert_eq!(fake.session_timeout_ms(&session.id()), Some(720_000));

    let url = session.url(3000).await.expect("url");
    assert!(
        url.starts_with("https://") && url.ends_with(".vercel.run"),
        "{url}"
    );

    session.commit().await.expect("commit");
    assert_eq!(fake.session_status(&session.id()), Some("stopped"));
    let read = ws
        .run_command(CommandSpec::new("cat").arg("live.txt"))
        .await
        .expect("run after commit");
    assert_eq!(read.stdout, "live\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_keeps_the_head() {
    let fake = FakeVercel::start().await;
    let sandkit = sandkit(&fake);
    let ws = sandkit
        .create_workspace(WorkspaceSpec::new())
        .await
        .expect("workspace");
    ws.run_command(CommandSpec::new("sh").args(["-c", "echo kept > state.txt"]))
        .await
        .expect("seed");
    let head = sandkit
        .workspace(ws.id().as_str())
        .await
        .expect("ws")
        .record()
        .head
        .clone();
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    session
        .exec(CommandSpec::new("sh").args(["-c", "echo dropped > state.txt"]))
        .await
        .expect("exec");
    let id = session.id();
    session.discard().await.expect("discard");
    assert_eq!(fake.session_status(&id), Some("stopped"));
    let after = sandkit.workspace(ws.id().as_str()).await.expect("ws");
    assert_eq!(after.record().head, head);
    let read = ws
        .run_command(CommandSpec::new("cat").arg("state.txt"))
        .await
        .expect("read");
    assert_eq!(read.stdout, "kept\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_head_snapshot_is_reported_not_replaced() {
    let fake = FakeVercel::start().await;
    let sandkit = sandkit(&fake);
    let ws = sandkit
        .create_workspace(WorkspaceSpec::new())
        .await
        .expect("workspace");
    ws.run_command(CommandSpec::new("sh").args(["-c", "echo x > x.txt"]))
        .await
        .expect("seed");
    let head = sandkit
        .workspace(ws.id().as_str())
        .await
        .expect("ws")
        .record()
        .head
        .clone()
        .expect("head");
    assert!(fake.expire_snapshot(&head.id));
    let err = ws
        .run_command(CommandSpec::new("cat").arg("x.txt"))
        .await
        .expect_err("head gone");
    assert_eq!(
        err.kind(),
        &sandkit_core::ErrorKind::SnapshotUnavailable,
        "{err}"
    );
    assert_eq!(
        sandkit
            .workspace(ws.id().as_str())
            .await
            .expect("ws")
            .record()
            .head,
        Some(head)
    );
}

/// A session commit whose process died after Vercel took the snapshot: the retry
/// finds that snapshot through the API (no second snapshot) and makes it the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_died_after_its_snapshot_is_finished_by_the_retry() {
    use sandkit_core::{Provider, SessionRef};
    let fake = FakeVercel::start().await;
    let sandkit = sandkit(&fake);
    let ws = sandkit
        .create_workspace(WorkspaceSpec::new())
        .await
        .expect("workspace");
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    session
        .exec(CommandSpec::new("sh").args(["-c", "echo live > live.txt"]))
        .await
        .expect("exec");
    let id = session.id();
    drop(session);
    // What the dying process did: the provider snapshot, nothing more.
    let provider = fake.provider();
    let taken = provider
        .attach(&SessionRef {
            provider: "vercel".to_owned(),
            id: id.clone(),
        })
        .await
        .expect("attach")
        .snapshot()
        .await
        .expect("snapshot");

    ws.commit_session()
        .await
        .expect("the retry finishes the commit");
    assert_eq!(
        fake.snapshots_of(&id),
        vec![taken.id.clone()],
        "no second snapshot"
    );
    let head = sandkit
        .workspace(ws.id())
        .await
        .expect("ws")
        .record()
        .head
        .clone();
    assert_eq!(head, Some(taken));
    let read = ws
        .run_command(CommandSpec::new("cat").arg("live.txt"))
        .await
        .expect("run after the finished commit");
    assert_eq!(read.stdout, "live\n");
}

/// The service sends output as JSON text: bytes that are not UTF-8 arrive replaced by
/// U+FFFD, and Sandkit passes the UTF-8 bytes of that text through unchanged (live
/// chunks, result and journal alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_output_arrives_as_the_text_the_service_sent() {
    use futures::StreamExt;

    let fake = FakeVercel::start().await;
    let sandkit = sandkit(&fake);
    let ws = sandkit
        .create_workspace(WorkspaceSpec::new().name("bytes"))
        .await
        .expect("workspace");
    let cmd = ws
        .spawn_command(CommandSpec::new("sh").args(["-c", r"printf '\211PNG\377\376 é'"]))
        .await
        .expect("spawn");
    let live: Vec<u8> = cmd
        .logs()
        .map(|c| c.expect("chunk").bytes.to_vec())
        .concat()
        .await;
    let sent = "\u{FFFD}PNG\u{FFFD}\u{FFFD} é";
    assert_eq!(live, sent.as_bytes());
    let result = cmd.wait().await.expect("wait");
    assert_eq!(result.stdout, sent);
    assert_eq!(result.stdout_bytes(), sent.as_bytes());
    let run = &ws.runs(Default::default()).await.expect("runs").items[0];
    assert_eq!(run.stdout_text(), Some(sent));
    assert_eq!(run.stdout_bytes_written(), Some(sent.len() as u64));
}

/// `Sandkit::check` asks Vercel about each head: one that expired at the platform is
/// listed (before a start fails on it), a live one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lists_a_head_that_expired_at_vercel() {
    let fake = FakeVercel::start().await;
    let sandkit = sandkit(&fake);
    let kept = sandkit
        .create_workspace(WorkspaceSpec::new())
        .await
        .expect("ws");
    let lost = sandkit
        .create_workspace(WorkspaceSpec::new())
        .await
        .expect("ws");
    for ws in [&kept, &lost] {
        ws.run_command(CommandSpec::new("sh").args(["-c", "echo v > f"]))
            .await
            .expect("run");
    }
    assert!(sandkit.check().await.expect("check").missing.is_empty());
    let head = sandkit
        .workspace(lost.id())
        .await
        .expect("ws")
        .record()
        .head
        .clone()
        .expect("head");
    assert!(fake.expire_snapshot(&head.id));
    let report = sandkit.check().await.expect("check");
    assert_eq!(report.checked, 2);
    assert_eq!(report.missing.len(), 1, "{report:?}");
    assert_eq!(report.missing[0].workspace.as_ref(), Some(lost.id()));
}
