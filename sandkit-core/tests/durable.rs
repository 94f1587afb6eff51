//! Durable commands: one command = one committed unit of work.

mod common;

use std::time::Duration;

use common::{Rig, all_runs, new_ws, run, sh};
use futures::StreamExt;
use sandkit_core::policies::{Policy, Secret, presets};
use sandkit_core::{CommandSpec, ErrorKind, RunStatus, StdStream, WorkspaceSpec, WorkspaceState};
use sandkit_testkit::{Calls, FakeProvider};

#[tokio::test]
async fn commands_commit_and_survive_new_handles_and_instances() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    assert_eq!(ws.state(), WorkspaceState::Cold);
    let out = run(&ws, "echo hello from sandkit > hello.txt").await;
    assert_eq!(out.exit_code, 0);
    assert!(out.run_id.is_some());

    // A fresh Sandkit over the same store and provider sees the committed state.
    let again = rig.kit().workspace(ws.id()).await.expect("reopen");
    assert_eq!(again.state(), WorkspaceState::Committed);
    let out = run(&again, "cat hello.txt").await;
    assert_eq!(out.stdout, "hello from sandkit\n");
    assert_eq!(
        rig.provider.alive_sessions(),
        0,
        "every sandbox ends with its snapshot"
    );
}

#[tokio::test]
async fn a_durable_command_costs_three_provider_calls() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo 1 > n").await;
    rig.provider.reset_calls();
    run(&ws, "cat n").await;
    assert_eq!(
        rig.provider.calls(),
        Calls {
            starts: 1,
            restores: 1,
            execs: 1,
            snapshots: 1,
            ..Calls::default()
        },
        "start-from-head (with the effective policy), exec, snapshot — no policy update"
    );
}

#[tokio::test]
async fn non_zero_exit_is_a_committed_result() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let out = run(&ws, "echo partial > p.txt; echo boom >&2; exit 7").await;
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.stderr, "boom\n");
    let runs = all_runs(&ws).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert_eq!(runs[0].exit_code, Some(7));
    assert!(runs[0].snapshot.is_some());
    // The work done before the failure is committed, as in the original.
    assert_eq!(run(&ws, "cat p.txt").await.stdout, "partial\n");
}

#[tokio::test]
async fn the_journal_records_the_run() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let spec = sh("echo $GREETING")
        .env("GREETING", "value-not-stored")
        .cwd("sub");
    let out = ws.run_command(spec).await.expect("run");
    assert_eq!(out.stdout, "value-not-stored\n");
    let runs = all_runs(&ws).await;
    let r = &runs[0];
    assert_eq!(r.command, "sh");
    assert_eq!(r.args, ["-c", "echo $GREETING"]);
    assert_eq!(r.cwd.as_deref(), Some("sub"));
    assert_eq!(r.env_keys, ["GREETING"]);
    assert_eq!(r.status, RunStatus::Succeeded);
    // Env values are secrets: the stored copy of output that echoes one is scrubbed.
    assert_eq!(r.stdout.as_deref(), Some("[redacted]\n"));
    assert_eq!(r.provider, "fake");
    assert!(r.session_id.is_some());
    assert!(r.finished_at.is_some());
    assert_eq!(r.policy_description, "allow-all");
    let stored = serde_json::to_string(&r.env_keys).expect("json");
    assert!(!stored.contains("value-not-stored"));
}

#[tokio::test]
async fn detached_commands_stream_logs_before_wait_and_finalize_without_wait() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let cmd = ws
        .spawn_command(sh("echo first; echo warn >&2; sleep 0.3; echo second"))
        .await
        .expect("spawn");
    let mut logs = cmd.logs();
    let first = logs.next().await.expect("a chunk").expect("ok");
    assert_eq!(
        (first.stream, first.text().as_ref()),
        (StdStream::Stdout, "first\n")
    );
    assert!(
        ws.lease().await.expect("lease").is_some(),
        "the first chunk arrives while the command still holds the lease"
    );
    let rest: Vec<_> = logs.map(|c| c.expect("chunk")).collect().await;
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].stream, StdStream::Stderr);
    // Never call wait(): the unit of work still commits and releases the lease.
    drop(cmd);
    for _ in 0..200 {
        if ws.lease().await.expect("lease").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ws.lease().await.expect("lease").is_none());
    assert_eq!(all_runs(&ws).await[0].status, RunStatus::Succeeded);
}

#[tokio::test]
async fn every_logs_reader_replays_from_the_start() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let cmd = ws.spawn_command(sh("echo a; echo b")).await.expect("spawn");
    let result = cmd.wait().await.expect("wait");
    assert_eq!(result.stdout, "a\nb\n");
    let replay: String = cmd
        .logs()
        .map(|c| c.expect("chunk").text().into_owned())
        .collect::<Vec<_>>()
        .await
        .concat();
    assert_eq!(replay, "a\nb\n");
}

#[tokio::test]
async fn invalid_input_is_rejected_before_any_provider_call_or_write() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    for spec in [
        CommandSpec::new("  "),
        CommandSpec::new("sh").arg("nul\0byte"),
        CommandSpec::new("sh").env("BAD=NAME", "x"),
        CommandSpec::new("sh").timeout(Duration::ZERO),
        CommandSpec::new("sh").timeout(Duration::MAX),
        CommandSpec::new("sh").idempotency_key(""),
    ] {
        let err = ws.run_command(spec).await.expect_err("invalid");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
    }
    assert_eq!(rig.provider.calls(), Calls::default());
    assert!(all_runs(&ws).await.is_empty());
    assert!(ws.lease().await.expect("lease").is_none());
}

#[tokio::test]
async fn missing_credentials_fail_before_any_write() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let policy = Policy::allow_services([presets::codex()]).expect("policy");
    let err = ws
        .run_command(sh("true").policy(policy))
        .await
        .expect_err("no CODEX_API_KEY");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Credentials { service, variable: Some(v) } if service == "codex" && v == "CODEX_API_KEY"
        ),
        "{err:?}"
    );
    assert_eq!(rig.provider.calls(), Calls::default());
    assert!(all_runs(&ws).await.is_empty());
}

#[tokio::test]
async fn a_provider_that_cannot_enforce_the_policy_fails_closed() {
    let mut caps = FakeProvider::full_capabilities();
    caps.network.allow_services = false;
    caps.network.header_injection = false;
    let rig = Rig::with_provider(FakeProvider::with_capabilities(caps));
    let kit = rig.kit();
    let ws = kit
        .create_workspace(
            WorkspaceSpec::new().policy(Policy::allow_services([presets::npm()]).expect("p")),
        )
        .await
        .expect("create");
    let err = ws.run_command(sh("true")).await.expect_err("unsupported");
    assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");
    assert_eq!(rig.provider.calls(), Calls::default());
    // deny-all is enforced by this provider: a per-run override runs.
    let out = ws
        .run_command(sh("policy").policy(Policy::deny_all()))
        .await
        .expect("deny-all runs");
    assert_eq!(out.stdout, "deny-all\n");
}

#[tokio::test]
async fn policy_precedence_per_run_override_then_default() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = kit
        .create_workspace(WorkspaceSpec::new().policy(Policy::deny_all()))
        .await
        .expect("create");
    assert_eq!(run(&ws, "policy").await.stdout, "deny-all\n");
    ws.set_policy(Policy::allow_services([presets::npm()]).expect("p"))
        .await
        .expect("set");
    assert_eq!(run(&ws, "policy").await.stdout, "allow-services:npm\n");
    let once = ws
        .run_command(sh("policy").policy(Policy::allow_all()))
        .await
        .expect("override");
    assert_eq!(once.stdout, "allow-all\n");
    assert_eq!(
        run(&ws, "policy").await.stdout,
        "allow-services:npm\n",
        "a per-run override is ephemeral"
    );
    let descriptions: Vec<String> = all_runs(&ws)
        .await
        .into_iter()
        .rev()
        .map(|r| r.policy_description)
        .collect();
    assert_eq!(
        descriptions,
        [
            "deny-all",
            "allow-services:npm",
            "allow-all",
            "allow-services:npm"
        ]
    );
}

#[tokio::test]
async fn explicit_secrets_run_but_are_never_stored() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let secret = "sk-test-DO-NOT-STORE-4242";
    let policy =
        Policy::allow_services([presets::codex().api_key(Secret::new(secret))]).expect("p");
    // Durable places refuse it.
    let err = ws.set_policy(policy.clone()).await.expect_err("durable");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("cannot be stored durably"),
        "{err}"
    );
    let err = kit
        .create_workspace(WorkspaceSpec::new().policy(policy.clone()))
        .await
        .expect_err("durable");
    assert!(
        err.to_string().contains("cannot be stored durably"),
        "{err}"
    );
    // A per-run override may carry it; it reaches the sandbox's firewall...
    let out = ws
        .run_command(sh("fetch https://api.openai.com/v1").policy(policy))
        .await
        .expect("run");
    assert!(out.stdout.starts_with("allowed "), "{}", out.stdout);
    // ...and what is stored is redacted.
    let run = &all_runs(&ws).await[0];
    let snapshot = rig
        .store()
        .get_policy_snapshot(run.policy_snapshot_id.as_deref().expect("id"))
        .await
        .expect("get")
        .expect("snapshot");
    let stored = serde_json::to_string(&snapshot.config).expect("json");
    assert!(stored.contains(r#""kind":"redacted""#), "{stored}");
    assert!(!stored.contains(secret));
    let everything = format!(
        "{:?}{:?}",
        rig.store().get_workspace(ws.id()).await.expect("ws"),
        all_runs(&ws).await
    );
    assert!(!everything.contains(secret));
}

#[tokio::test]
async fn output_is_capped_in_the_store_but_complete_for_the_caller() {
    let rig = Rig::new();
    let kit = rig.builder().output_cap(16).build().expect("kit");
    let ws = new_ws(&kit).await;
    let out = run(&ws, "echo 0123456789abcdefghijklmnop").await;
    assert_eq!(out.stdout, "0123456789abcdefghijklmnop\n");
    let r = &all_runs(&ws).await[0];
    assert_eq!(
        r.stdout.as_deref(),
        Some("0123456789abcdef\n[sandkit: stdout truncated; 27 bytes written]\n")
    );
    assert_eq!(r.stdout_text(), Some("0123456789abcdef"));
    assert_eq!(r.stdout_bytes_written(), Some(27));
    assert!(r.stdout_truncated);
    assert!(!r.stderr_truncated);
    assert_eq!(r.stderr_bytes_written(), Some(0));
    // A replay gives the captured text, without the marker.
    let spec = || sh("echo 0123456789abcdefghijklmnop").idempotency_key("cut");
    ws.run_command(spec()).await.expect("first");
    let replayed = ws.run_command(spec()).await.expect("replay");
    assert!(replayed.replayed);
    assert_eq!(replayed.stdout, "0123456789abcdef");
    assert!(replayed.stdout_truncated);
}

#[tokio::test]
async fn idempotency_key_returns_the_recorded_result() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let spec = || sh("incr counter").idempotency_key("deploy-42");
    let first = ws.run_command(spec()).await.expect("first");
    assert_eq!(first.stdout, "1\n");
    assert!(!first.replayed);
    let execs = rig.provider.calls().execs;
    let second = ws.run_command(spec()).await.expect("second");
    assert!(second.replayed);
    assert_eq!(second.stdout, "1\n");
    assert_eq!(second.run_id, first.run_id);
    assert_eq!(rig.provider.calls().execs, execs, "not run again");
    assert_eq!(all_runs(&ws).await.len(), 1);
    // Another key runs.
    let third = ws
        .run_command(sh("incr counter").idempotency_key("deploy-43"))
        .await
        .expect("third");
    assert_eq!(third.stdout, "2\n");
}

#[tokio::test]
async fn idempotency_key_in_flight_is_busy_and_failed_runs_free_their_key() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let cmd = ws
        .spawn_command(sh("sleep 0.3; incr c").idempotency_key("k"))
        .await
        .expect("spawn");
    let err = ws
        .run_command(sh("incr c").idempotency_key("k"))
        .await
        .expect_err("in flight");
    assert_eq!(err.kind(), &ErrorKind::Busy, "{err}");
    assert!(err.to_string().contains("still in flight"), "{err}");
    cmd.wait().await.expect("wait");

    // A run that fails before producing a result (provider error) frees its key.
    rig.provider.fail_next_exec(1);
    let err = ws
        .run_command(sh("incr c").idempotency_key("retry-me"))
        .await
        .expect_err("injected");
    assert_eq!(err.kind().name(), "provider");
    let retried = ws
        .run_command(sh("incr c").idempotency_key("retry-me"))
        .await
        .expect("retry runs");
    assert!(!retried.replayed);
    assert_eq!(retried.stdout, "2\n");
}

#[tokio::test]
async fn provider_failures_finish_the_run_keep_the_head_and_release_the_lease() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo good > state").await;
    let head = rig.record(ws.id()).await.head;

    for (fault, what) in [(0u8, "start"), (1, "exec"), (2, "snapshot")] {
        match fault {
            0 => rig.provider.fail_next_start(1),
            1 => rig.provider.fail_next_exec(1),
            _ => rig.provider.fail_next_snapshot(1),
        }
        let err = ws
            .run_command(sh("echo bad > state"))
            .await
            .expect_err(what);
        assert!(err.to_string().contains("injected"), "{what}: {err}");
        let record = rig.record(ws.id()).await;
        assert_eq!(record.head, head, "{what}: head unchanged");
        assert!(record.lease.is_none(), "{what}: lease released");
        let last = &all_runs(&ws).await[0];
        assert_eq!(last.status, RunStatus::Failed, "{what}");
        assert!(
            last.error
                .as_deref()
                .is_some_and(|e| e.contains("injected"))
        );
        assert_eq!(rig.provider.alive_sessions(), 0, "{what}: sandbox stopped");
    }
    assert_eq!(run(&ws, "cat state").await.stdout, "good\n");
}

#[tokio::test]
async fn a_lost_head_snapshot_is_a_typed_error_and_reset_recovers() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo x > x").await;
    let head = rig.record(ws.id()).await.head.expect("head");
    rig.provider.lose_snapshot(&head.id);
    let err = ws.run_command(sh("cat x")).await.expect_err("head gone");
    assert_eq!(err.kind(), &ErrorKind::SnapshotUnavailable);
    let msg = err.to_string();
    assert!(
        msg.contains(&head.id) && msg.contains(ws.id().as_str()),
        "{msg}"
    );
    assert!(msg.contains("reset()"), "{msg}");
    // Nothing changed on purpose: still committed to the (lost) head.
    let record = rig.record(ws.id()).await;
    assert_eq!(record.head.as_ref(), Some(&head));
    ws.reset().await.expect("reset");
    let out = ws.run_command(sh("cat x")).await.expect("runs from cold");
    assert_eq!(out.exit_code, 1);
}

#[tokio::test]
async fn a_busy_workspace_refuses_commands_and_sessions_until_the_command_commits() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let cmd = ws.spawn_command(sh("sleep 0.3")).await.expect("spawn");
    let err = ws.run_command(sh("true")).await.expect_err("busy");
    assert_eq!(err.kind(), &ErrorKind::Busy);
    assert!(
        err.to_string().contains("durable command is running"),
        "{err}"
    );
    let err = ws.open_session(Default::default()).await.expect_err("busy");
    assert_eq!(err.kind(), &ErrorKind::Busy);
    // Also from a freshly loaded handle (the original's in-process lock could not do
    // this across processes; the store-backed lease can).
    let fresh = rig.kit().workspace(ws.id()).await.expect("reopen");
    assert_eq!(
        fresh
            .open_session(Default::default())
            .await
            .expect_err("busy")
            .kind(),
        &ErrorKind::Busy
    );
    let err = kit.delete_workspace(ws.id()).await.expect_err("busy");
    assert_eq!(err.kind(), &ErrorKind::Busy);
    cmd.wait().await.expect("wait");
    let session = ws.open_session(Default::default()).await.expect("now free");
    session.commit().await.expect("commit");
    let out = run(&ws, "true").await;
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, ""));
}

#[tokio::test]
async fn phases_follow_the_unit_of_work() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    // Slow provider calls make every phase last long enough to be observed.
    rig.provider.set_delay(Duration::from_millis(50));
    let cmd = ws.spawn_command(sh("sleep 0.2")).await.expect("spawn");
    let mut phase = cmd.phase();
    let mut seen = vec![*phase.borrow_and_update()];
    while phase.changed().await.is_ok() {
        seen.push(*phase.borrow_and_update());
        if seen.last() == Some(&sandkit_core::CommandPhase::Done) {
            break;
        }
    }
    use sandkit_core::CommandPhase::{Committing, Done, Running, Starting};
    assert_eq!(seen.first(), Some(&Starting), "{seen:?}");
    assert!(seen.contains(&Running), "{seen:?}");
    assert!(seen.contains(&Committing), "{seen:?}");
    assert_eq!(seen.last(), Some(&Done));
    cmd.wait().await.expect("wait");
}

#[tokio::test]
async fn exposed_ports_can_be_changed_for_later_sandboxes() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    ws.set_exposed_ports([8000, 8001]).await.expect("set");
    let err = ws.set_exposed_ports([0]).await.expect_err("invalid");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    let record = rig.record(ws.id()).await;
    assert_eq!(record.sandbox_config.exposed_ports, [8000, 8001]);
}

#[tokio::test]
async fn an_interrupted_command_stops_its_sandbox_and_keeps_the_head() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    run(&ws, "echo one > f").await;
    let head = rig.record(ws.id()).await.head;

    let cmd = ws
        .spawn_command(sh("echo two > f; sleep 30"))
        .await
        .expect("spawn");
    let mut phase = cmd.phase();
    phase
        .wait_for(|p| *p == sandkit_core::CommandPhase::Running)
        .await
        .expect("running");
    assert_eq!(rig.provider.alive_sessions(), 1);
    cmd.interrupt("signal SIGINT");
    let err = cmd.wait().await.expect_err("interrupted");
    assert_eq!(err.kind(), &ErrorKind::Interrupted);
    assert!(err.to_string().contains("SIGINT"), "{err}");

    assert_eq!(rig.provider.alive_sessions(), 0, "its sandbox was stopped");
    let record = rig.record(ws.id()).await;
    assert!(record.lease.is_none(), "the lease was released");
    assert_eq!(record.head, head, "the head is unchanged");
    let runs = all_runs(&ws).await;
    let killed = runs.iter().find(|r| r.id == *cmd.run_id()).expect("run");
    assert_eq!(killed.status, RunStatus::Interrupted);
    assert!(
        killed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("SIGINT")),
        "{:?}",
        killed.error
    );
    assert_eq!(run(&ws, "cat f").await.stdout, "one\n", "usable at once");
}

#[tokio::test]
async fn dropping_every_handle_does_not_interrupt() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    let cmd = ws
        .spawn_command(sh("sleep 0.2; echo done > f"))
        .await
        .expect("spawn");
    let run_id = cmd.run_id().clone();
    drop(cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let runs = all_runs(&ws).await;
        let run = runs.iter().find(|r| r.id == run_id).expect("run");
        if run.status != RunStatus::Started {
            assert_eq!(run.status, RunStatus::Succeeded);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
