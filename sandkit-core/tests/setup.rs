//! The shared setup bootstrap (the original's tests 10.2.5–16, plus concurrency).

mod common;

use common::{Rig, new_ws, run, sh};
use sandkit_core::policies::{Policy, Secret, presets};
use sandkit_core::{ErrorKind, Sandkit, SessionOptions, SetupSpec};

fn setup(script: &str) -> SetupSpec {
    SetupSpec::new("sh")
        .args(["-c", script])
        .policy(Policy::allow_all())
}

async fn setup_snapshot(rig: &Rig, kit: &Sandkit) -> Option<String> {
    let id = kit.setup_id().expect("setup configured");
    rig.store()
        .get_setup(id)
        .await
        .expect("get")
        .and_then(|r| r.snapshot.map(|s| s.id))
}

#[tokio::test]
async fn bootstrap_builds_once_and_seeds_new_workspaces() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("echo bootstrapped > hello.txt"));
    assert_eq!(setup_snapshot(&rig, &kit).await, None);
    kit.bootstrap().await.expect("bootstrap");
    let snap = setup_snapshot(&rig, &kit).await.expect("built");
    kit.bootstrap().await.expect("again");
    assert_eq!(
        setup_snapshot(&rig, &kit).await.as_deref(),
        Some(snap.as_str())
    );
    let calls = rig.provider.calls();
    assert_eq!((calls.starts, calls.execs, calls.snapshots), (1, 1, 1));
    let ws = new_ws(&kit).await;
    assert_eq!(run(&ws, "cat hello.txt").await.stdout, "bootstrapped\n");
}

#[tokio::test]
async fn bootstrap_without_setup_is_a_no_op() {
    let rig = Rig::new();
    rig.kit().bootstrap().await.expect("no-op");
    assert_eq!(rig.provider.calls().starts, 0);
}

#[tokio::test]
async fn setup_runs_before_the_first_command_and_never_again() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("echo hello > hello.txt"));
    let ws = new_ws(&kit).await;
    assert_eq!(run(&ws, "cat hello.txt").await.stdout, "hello\n");
    assert!(setup_snapshot(&rig, &kit).await.is_some());
    run(&ws, "echo changed > hello.txt").await;
    assert_eq!(run(&ws, "cat hello.txt").await.stdout, "changed\n");
    let second = new_ws(&kit).await;
    assert_eq!(run(&second, "cat hello.txt").await.stdout, "hello\n");
    // One setup exec in total, plus the four commands.
    assert_eq!(rig.provider.calls().execs, 5);
}

#[tokio::test]
async fn setup_runs_before_the_first_session() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("echo ready > state"));
    let ws = new_ws(&kit).await;
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    assert_eq!(
        session.exec(sh("cat state")).await.expect("x").stdout,
        "ready\n"
    );
    session.commit().await.expect("commit");
    assert!(setup_snapshot(&rig, &kit).await.is_some());
    let reopened = rig
        .kit_with_setup(setup("echo ready > state"))
        .workspace(ws.id())
        .await
        .expect("reopen");
    assert_eq!(run(&reopened, "cat state").await.stdout, "ready\n");
}

#[tokio::test]
async fn a_failing_setup_persists_nothing_and_is_retried() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("echo broken >&2; unsupported-tool"));
    let ws = new_ws(&kit).await;
    for _ in 0..2 {
        let err = ws.run_command(sh("true")).await.expect_err("setup fails");
        match err.kind() {
            ErrorKind::SetupFailed { exit_code, stderr } => {
                assert_eq!(*exit_code, 127);
                assert!(stderr.contains("broken"), "{stderr}");
            }
            other => panic!("expected SetupFailed, got {other:?}"),
        }
        assert!(err.to_string().contains("exit code 127"), "{err}");
        let id = kit.setup_id().expect("id");
        assert!(rig.store().get_setup(id).await.expect("get").is_none());
        assert!(ws.lease().await.expect("lease").is_none());
    }
    assert_eq!(
        rig.provider.alive_sessions(),
        0,
        "failed setup sandboxes are stopped"
    );
}

#[tokio::test]
async fn a_stale_setup_snapshot_is_rebuilt_once() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("echo bootstrapped > hello.txt"));
    kit.bootstrap().await.expect("bootstrap");
    let stale = setup_snapshot(&rig, &kit).await.expect("built");
    rig.provider.lose_snapshot(&stale);
    let ws = new_ws(&kit).await;
    assert_eq!(run(&ws, "cat hello.txt").await.stdout, "bootstrapped\n");
    let fresh = setup_snapshot(&rig, &kit).await.expect("rebuilt");
    assert_ne!(fresh, stale);
}

#[tokio::test]
async fn setup_ids_isolate_command_and_policy_shapes() {
    let rig = Rig::new();
    let first = rig.kit_with_setup(setup("echo first > v"));
    let second = rig.kit_with_setup(setup("echo second > v"));
    let narrow = rig.kit_with_setup(
        SetupSpec::new("sh")
            .args(["-c", "echo first > v"])
            .policy(Policy::allow_services([presets::npm()]).expect("p")),
    );
    let ids = [
        first.setup_id().expect("id"),
        second.setup_id().expect("id"),
        narrow.setup_id().expect("id"),
    ];
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert!(ids.iter().all(|id| id.starts_with("memory:setup:")));
    assert_eq!(run(&new_ws(&first).await, "cat v").await.stdout, "first\n");
    assert_eq!(
        run(&new_ws(&second).await, "cat v").await.stdout,
        "second\n"
    );
}

#[tokio::test]
async fn setup_policies_must_be_durable_and_present() {
    let rig = Rig::new();
    let secret = SetupSpec::new("true").policy(
        Policy::allow_services([presets::codex().api_key(Secret::new("top-secret"))]).expect("p"),
    );
    let err = rig.builder().setup(secret).build().expect_err("secret");
    assert!(
        err.to_string().contains("cannot be stored durably"),
        "{err}"
    );
    let err = rig
        .builder()
        .setup(SetupSpec::new("true"))
        .build()
        .expect_err("no policy");
    assert!(
        err.to_string().contains("setup policy is required"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_uses_build_the_setup_once() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("sleep 0.2; echo once > s"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let kit = kit.clone();
        tasks.push(tokio::spawn(async move {
            let ws = new_ws(&kit).await;
            run(&ws, "cat s").await.stdout
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), "once\n");
    }
    // 8 commands + exactly 1 setup command.
    assert_eq!(rig.provider.calls().execs, 9);
}

/// A setup build whose builder died: its claim expired, its sandbox (named after the
/// claim's token) still runs.
async fn abandoned_build(rig: &Rig, kit: &Sandkit) {
    use sandkit_core::{LeaseToken, Provider, SetupBuild, SetupRecord};
    let token = LeaseToken::generate();
    let mut spec = sandkit_testkit::provider_suite::fresh("sandkit-setup");
    spec.name = Some(format!("sandkit-{}", token.as_str()));
    let left = rig.provider.start(spec).await.expect("start");
    std::mem::forget(left);
    let at = sandkit_core::now();
    let record = SetupRecord {
        id: kit.setup_id().expect("setup configured").to_owned(),
        snapshot: None,
        build: Some(SetupBuild {
            token,
            holder: "gone-host:1:dead".to_owned(),
            expires_at: at - chrono::Duration::seconds(1),
        }),
        revision: 0,
        created_at: at,
        updated_at: at,
    };
    assert!(
        rig.store()
            .put_setup_if_absent(&record)
            .await
            .expect("claim")
    );
    assert_eq!(rig.provider.alive_sessions(), 1);
}

#[tokio::test]
async fn taking_over_an_abandoned_setup_build_discards_its_sandbox() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("echo once > s"));
    abandoned_build(&rig, &kit).await;
    let ws = new_ws(&kit).await;
    let r = run(&ws, "cat s").await;
    assert_eq!(r.stdout, "once\n");
    assert_eq!(
        rig.provider.alive_sessions(),
        0,
        "the dead builder's sandbox was discarded by the takeover"
    );
    assert!(setup_snapshot(&rig, &kit).await.is_some());
}

#[tokio::test]
async fn gc_ends_abandoned_setup_builds() {
    let rig = Rig::new();
    let kit = rig.kit_with_setup(setup("echo once > s"));
    abandoned_build(&rig, &kit).await;
    let dry = kit.gc(true).await.expect("gc --dry-run");
    assert_eq!(dry.abandoned_setups, 1);
    assert_eq!(
        rig.provider.alive_sessions(),
        1,
        "a dry run changes nothing"
    );
    let report = kit.gc(false).await.expect("gc");
    assert_eq!(report.abandoned_setups, 1);
    assert_eq!(rig.provider.alive_sessions(), 0);
    let id = kit.setup_id().expect("id");
    assert!(rig.store().get_setup(id).await.expect("get").is_none());
    // The next use builds afresh.
    let ws = new_ws(&kit).await;
    assert_eq!(run(&ws, "cat s").await.stdout, "once\n");
}
