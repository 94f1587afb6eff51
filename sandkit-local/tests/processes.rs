//! Real processes: timeouts kill whole trees, background processes outlive their
//! handles, expiry stops everything, commands get a clean environment.
//!
//! These tests follow commands by their host pids, so their commands run on the host
//! (`isolation(false)`); `tests/sandbox.rs` checks the same guarantees in sandboxes.

mod common;

use std::time::Duration;

use common::{
    first_output_line, host_provider as provider, process_running, run, sh, shell, start,
    start_with,
};
use futures::StreamExt;
use sandkit_core::{ErrorKind, ExecSpec, LogBuffer, StdStream};

fn pids(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect()
}

fn group_has_running_members(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_running(*pid))
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            rest.split_whitespace().nth(2) == Some(&pgid.to_string())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_whole_process_tree() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let mut spec = shell("sleep 100 & echo $$ $!; sleep 100");
    spec.timeout = Some(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let r = run(&*s, spec).await;
    assert_eq!(r.code, 137, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let [leader, child] = pids(&r.stdout)[..] else {
        panic!("expected two pids: {r:?}");
    };
    assert!(!process_running(leader), "the shell survived");
    assert!(!process_running(child), "the background sleep survived");
    assert!(!group_has_running_members(leader));
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_processes_outlive_their_handles_and_replay_logs() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let handle = s
        .spawn(shell("echo one; sleep 0.2; echo two; echo err >&2; exit 4"))
        .await
        .unwrap();
    let id = handle.id.clone();
    drop(handle);
    let mut out = String::new();
    let mut err = String::new();
    let mut logs = s.process_logs(&id).await.unwrap();
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.unwrap();
        match chunk.stream {
            StdStream::Stdout => out.push_str(&chunk.text()),
            StdStream::Stderr => err.push_str(&chunk.text()),
        }
    }
    assert_eq!((out.as_str(), err.as_str()), ("one\ntwo\n", "err\n"));
    let info = s.processes().await.unwrap();
    let me = info.iter().find(|pi| pi.id == id).unwrap();
    assert_eq!(me.exit_code, Some(4));
    assert_eq!(
        me.command,
        [
            "sh",
            "-c",
            "echo one; sleep 0.2; echo two; echo err >&2; exit 4"
        ]
    );

    let err = s.kill("proc_unknown").await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::NotFound);
    let err = s
        .process_logs("proc_unknown")
        .await
        .err()
        .expect("unknown process");
    assert_eq!(err.kind(), &ErrorKind::NotFound);
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_stop_end_background_processes() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let a = s.spawn(shell("echo $$; exec sleep 60")).await.unwrap();
    let b = s.spawn(shell("echo $$; exec sleep 60")).await.unwrap();
    let pid_a = first_output_line(&*s, &a.id).await;
    let pid_b = first_output_line(&*s, &b.id).await;
    assert!(process_running(pid_a) && process_running(pid_b));
    s.kill(&a.id).await.unwrap();
    assert!(!process_running(pid_a));
    assert_eq!(a.exit.await.unwrap(), 143, "SIGTERM");
    let listed = s.processes().await.unwrap();
    assert_eq!(
        listed.iter().find(|pi| pi.id == b.id).unwrap().exit_code,
        None
    );
    s.stop().await.unwrap();
    assert!(!process_running(pid_b), "stop ends background processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_left_behind_by_a_command_end_with_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let r = sh(&*s, "sleep 60 >/dev/null 2>&1 & echo $!").await;
    assert_eq!(r.code, 0);
    let orphan: i32 = r.stdout.trim().parse().unwrap();
    assert!(process_running(orphan));
    // Later commands do not forget it.
    assert_eq!(sh(&*s, "true").await.code, 0);
    s.snapshot().await.unwrap();
    assert!(
        !process_running(orphan),
        "commit ends what commands left running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_stops_its_processes_without_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let mut spec = common::fresh("local-tests");
    spec.timeout = Duration::from_secs(1);
    let s = start_with(&p, spec).await;
    // A child that ignores SIGTERM: the watchdog must escalate to SIGKILL.
    let bg = s
        .spawn(shell("trap '' TERM; echo $$; sleep 60 & wait"))
        .await
        .unwrap();
    let pid = first_output_line(&*s, &bg.id).await;
    assert!(process_running(pid));
    // Nothing touches the session: its watchdog alone stops the processes.
    let waited = std::time::Instant::now();
    while process_running(pid) && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !process_running(pid),
        "the expired session's processes were stopped by its watchdog"
    );
    assert!(
        waited.elapsed() >= Duration::from_millis(300),
        "stopped before the session expired"
    );
    let err = s.exec(shell("echo late")).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    let err = sandkit_core::Provider::attach(&p, &s.session_ref())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_session_keeps_its_processes_past_the_first_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let mut spec = common::fresh("local-tests");
    spec.timeout = Duration::from_secs(1);
    let s = start_with(&p, spec).await;
    let bg = s.spawn(shell("echo $$; exec sleep 60")).await.unwrap();
    let pid = first_output_line(&*s, &bg.id).await;
    s.extend(Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        process_running(pid),
        "the extension moved the watchdog's deadline"
    );
    s.stop().await.unwrap();
    assert!(!process_running(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_expired_stops_sessions_nobody_touches() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let mut short = common::fresh("local-tests");
    short.timeout = Duration::from_millis(300);
    let expiring = start_with(&p, short).await;
    let bg = expiring
        .spawn(shell("echo $$; exec sleep 60"))
        .await
        .unwrap();
    let pid = first_output_line(&*expiring, &bg.id).await;
    let keeper = start(&p).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(p.reap_expired().await.unwrap(), 1);
    assert!(!process_running(pid));
    assert_eq!(sh(&*keeper, "echo alive").await.stdout, "alive\n");
    keeper.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_get_a_clean_environment_and_stay_in_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalProviderWithEnv::build(dir.path());
    let s = start(&p).await;
    let work = if p.is_sandboxed() {
        std::path::PathBuf::from(sandkit_local::WORKSPACE)
    } else {
        p.work_dir(&s.session_ref()).unwrap()
    };
    assert!(p.is_sandboxed(), "commands run in sandboxes by default");
    let env = sh(&*s, "env | sort").await.stdout;
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    for name in ["HOME", "LANG", "PATH", "TEAM"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("CARGO")),
        "host variables leaked: {names:?}"
    );
    assert!(env.contains(&format!("HOME={}\n", work.display())));
    assert!(env.contains("LANG=C.UTF-8\n"));
    assert!(env.contains("TEAM=platform\n"));
    assert_eq!(sh(&*s, "pwd").await.stdout, format!("{}\n", work.display()));

    sh(&*s, "mkdir -p sub/dir").await;
    let mut in_sub = shell("pwd");
    in_sub.cwd = Some("sub/dir".into());
    assert_eq!(
        run(&*s, in_sub).await.stdout,
        format!("{}/sub/dir\n", work.display())
    );
    for bad in ["..", "sub/../../..", "/tmp"] {
        let mut escape = shell("pwd");
        escape.cwd = Some(bad.into());
        let err = s.exec(escape).await.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{bad}");
    }
    s.stop().await.unwrap();
}

/// A provider with one extra base variable.
struct LocalProviderWithEnv;

impl LocalProviderWithEnv {
    fn build(root: &std::path::Path) -> sandkit_local::LocalProvider {
        sandkit_local::LocalProvider::builder(root)
            .env("TEAM", "platform")
            .build()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_split_inside_a_character_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    // 'é' is \303\251: its two bytes are written 200 ms apart.
    let handle = s
        .exec(shell(
            "printf '\\303'; sleep 0.2; printf '\\251 ok\\n'; printf '\\377\\n'",
        ))
        .await
        .unwrap();
    let log = LogBuffer::default();
    assert_eq!(log.pump(handle).await.unwrap(), 0);
    assert_eq!(log.collect().0, "é ok\n\u{FFFD}\n");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_exits_127_like_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let r = run(
        &*s,
        ExecSpec {
            command: "sandkit-no-such-program".into(),
            ..ExecSpec::default()
        },
    )
    .await;
    assert_eq!(r.code, 127);
    assert!(r.stderr.contains("command not found"), "{r:?}");
    let err = s.exec(ExecSpec::default()).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    s.stop().await.unwrap();
}

/// Starts `sleep 300` in a new process group (as job control or a daemon would) and
/// prints its pid.
const ESCAPE_GROUP: &str =
    "perl -e 'setpgrp(0, 0); exec \"sleep\", \"300\"' >/dev/null 2>&1 & echo $!";

/// Waits until `pid` leads its own process group (it left the command's group).
async fn left_the_group(pid: i32) {
    for _ in 0..250 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        if rest.split_whitespace().nth(2) == Some(&pid.to_string()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("process {pid} did not move to its own group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_processes_that_changed_group() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let mut spec = shell(&format!("{ESCAPE_GROUP}; sleep 100"));
    spec.timeout = Some(Duration::from_millis(500));
    let r = run(&*s, spec).await;
    assert_eq!(r.code, 137, "{r:?}");
    let pid: i32 = r.stdout.trim().parse().expect("pid");
    let _kill = common::KillOnDrop(pid);
    assert!(
        !process_running(pid),
        "a process in another group survived the timeout"
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_snapshot_and_set_policy_see_processes_that_changed_group() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());

    let s = start(&p).await;
    let r = sh(&*s, ESCAPE_GROUP).await;
    assert_eq!(r.code, 0, "{r:?}");
    let pid: i32 = r.stdout.trim().parse().unwrap();
    let _kill = common::KillOnDrop(pid);
    left_the_group(pid).await;
    assert!(process_running(pid));
    // It runs with the host network: tightening the policy is refused.
    let err = s
        .set_policy(&sandkit_core::policies::FirewallRules::DenyAll)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");
    s.stop().await.unwrap();
    assert!(
        !process_running(pid),
        "stop left a process that changed group"
    );

    let s = start(&p).await;
    let pid: i32 = sh(&*s, ESCAPE_GROUP).await.stdout.trim().parse().unwrap();
    let _kill = common::KillOnDrop(pid);
    left_the_group(pid).await;
    s.snapshot().await.unwrap();
    assert!(
        !process_running(pid),
        "snapshot left a process that changed group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_a_snapshot_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let p = provider(root);
    let s = start(&p).await;
    sh(&*s, "echo data > f").await;
    // Ignores SIGTERM, so the snapshot spends the kill grace (500 ms) stopping it.
    let stubborn = s
        .spawn(shell("trap '' TERM; echo $$; while :; do sleep 0.05; done"))
        .await
        .unwrap();
    let pid = first_output_line(&*s, &stubborn.id).await;
    let _kill = common::KillOnDrop(pid);
    let meta = root
        .join("sessions")
        .join(s.session_ref().id)
        .join("session.json");
    let stop_meanwhile = async {
        for _ in 0..500 {
            if std::fs::read_to_string(&meta).is_ok_and(|m| m.contains("\"snapshotting\"")) {
                return s.stop().await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the snapshot never started");
    };
    let (snapshot, stopped) = tokio::join!(s.snapshot(), stop_meanwhile);
    let snapshot = snapshot.expect("the snapshot completes despite the concurrent stop");
    let err = stopped.expect_err("the snapshot already ended the session");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    assert!(!process_running(pid));

    let mut spec = common::fresh("local-tests");
    spec.from = Some(snapshot);
    let restored = start_with(&p, spec).await;
    assert_eq!(sh(&*restored, "cat f").await.stdout, "data\n");
    restored.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_not_refused_while_another_call_checks_for_one() {
    // `stop`, expiry and a starting provider (in any OS process) check whether a
    // snapshot is in progress by briefly taking the session's snapshot lock. A snapshot
    // starting at that moment waits for the check rather than failing.
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    sh(&*s, "echo data > f").await;
    let lock_path = dir
        .path()
        .join("sessions")
        .join(s.session_ref().id)
        .join("snapshot.lock");
    let probe = std::fs::File::create(lock_path).unwrap();
    probe.lock().unwrap();
    let checked = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        probe.unlock().unwrap();
    };
    let (snapshot, ()) = tokio::join!(s.snapshot(), checked);
    let snapshot = snapshot.expect("a live session is snapshotted once the check is done");

    let mut spec = common::fresh("local-tests");
    spec.from = Some(snapshot);
    let restored = start_with(&p, spec).await;
    assert_eq!(sh(&*restored, "cat f").await.stdout, "data\n");
    restored.stop().await.unwrap();
}
