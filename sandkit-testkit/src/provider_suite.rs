//! The provider conformance suite, filtered by the capabilities a provider declares.
//!
//! Commands used here are the portable subset every provider runs: `sh -c` scripts with
//! `echo`, `cat`, `printenv`, `sleep`, `exit N`, `;`, `&&`, `>`, `>>` and `>&2`.
//! Run it with [`provider_suite!`](macro@crate::provider_suite).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sandkit_core::policies::{FirewallRules, Policy, ProcessEnv, presets};
use sandkit_core::{
    ErrorKind, ExecSpec, LogBuffer, Provider, ProviderSession, SnapshotRef, StartSpec, StdStream,
    WorkspaceId, env_map,
};

/// What a provider factory returns: the provider and whatever must outlive the test.
pub struct ProviderFixture {
    /// The provider under test.
    pub provider: Arc<dyn Provider>,
    /// Kept alive for the duration of the case (temp dirs, fake servers).
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl ProviderFixture {
    /// A fixture without guard.
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        ProviderFixture {
            provider,
            guard: None,
        }
    }
}

/// The output of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `sh -c script` to completion in a session.
pub async fn sh(session: &dyn ProviderSession, script: &str) -> Ran {
    run(session, shell(script)).await
}

/// `sh -c script` as an [`ExecSpec`].
pub fn shell(script: &str) -> ExecSpec {
    ExecSpec {
        command: "sh".into(),
        args: vec!["-c".into(), script.into()],
        ..ExecSpec::default()
    }
}

/// Runs a spec to completion.
pub async fn run(session: &dyn ProviderSession, spec: ExecSpec) -> Ran {
    let handle = session.exec(spec).await.expect("exec");
    let log = LogBuffer::default();
    let code = log.pump(handle).await.expect("command output");
    let (stdout, stderr) = log.collect();
    Ran {
        code,
        stdout,
        stderr,
    }
}

/// A start spec for a fresh allow-all sandbox.
pub fn fresh(workspace: &str) -> StartSpec {
    StartSpec {
        workspace_id: WorkspaceId::new(workspace).expect("valid id"),
        from: None,
        rules: FirewallRules::AllowAll,
        ports: Vec::new(),
        timeout: Duration::from_secs(120),
        vcpus: None,
        name: None,
    }
}

async fn start(p: &dyn Provider, from: Option<SnapshotRef>) -> Box<dyn ProviderSession> {
    let mut spec = fresh("suite");
    spec.from = from;
    p.start(spec).await.expect("start")
}

/// Output, stderr and exit codes come back as the command produced them.
pub async fn exec_reports_output_and_exit_code(f: &ProviderFixture) {
    let s = start(&*f.provider, None).await;
    let r = sh(&*s, "echo hello; echo oops >&2; exit 3").await;
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "hello\n");
    assert_eq!(r.stderr, "oops\n");
    let ok = sh(&*s, "echo fine").await;
    assert_eq!((ok.code, ok.stdout.as_str()), (0, "fine\n"));
    s.stop().await.expect("stop");
}

/// Output chunks arrive tagged with the right stream, in order per stream.
pub async fn exec_streams_chunks(f: &ProviderFixture) {
    let s = start(&*f.provider, None).await;
    let mut handle = s
        .exec(shell("echo one; echo two >&2; echo three"))
        .await
        .expect("exec");
    let mut out = String::new();
    let mut err = String::new();
    while let Some(chunk) = handle.output.next().await {
        let chunk = chunk.expect("chunk");
        match chunk.stream {
            StdStream::Stdout => out.push_str(&chunk.text()),
            StdStream::Stderr => err.push_str(&chunk.text()),
        }
    }
    assert_eq!(handle.exit.await.expect("exit"), 0);
    assert_eq!(out, "one\nthree\n");
    assert_eq!(err, "two\n");
    s.stop().await.expect("stop");
}

/// Environment variables reach the command.
pub async fn exec_passes_env(f: &ProviderFixture) {
    let s = start(&*f.provider, None).await;
    let mut spec = shell("printenv SANDKIT_SUITE_VALUE");
    spec.env = env_map([("SANDKIT_SUITE_VALUE", "from-env")]);
    let r = run(&*s, spec).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "from-env\n"));
    s.stop().await.expect("stop");
}

/// Files written by one command are seen by the next in the same session.
pub async fn files_persist_within_a_session(f: &ProviderFixture) {
    let s = start(&*f.provider, None).await;
    assert_eq!(sh(&*s, "echo first > notes.txt").await.code, 0);
    assert_eq!(sh(&*s, "echo second >> notes.txt").await.code, 0);
    let r = sh(&*s, "cat notes.txt").await;
    assert_eq!(r.stdout, "first\nsecond\n");
    s.stop().await.expect("stop");
}

/// A snapshot restores exactly in a new session, and ends the session it came from.
pub async fn snapshot_restores_and_ends_session(f: &ProviderFixture) {
    let p = &*f.provider;
    let s = start(p, None).await;
    sh(&*s, "echo durable > state.txt").await;
    let snap = s.snapshot().await.expect("snapshot");
    assert_eq!(snap.provider, p.id());
    let err = s.exec(shell("echo after")).await.err();
    match err {
        Some(e) => assert_eq!(e.kind(), &ErrorKind::SessionUnavailable, "{e}"),
        None => panic!("exec after snapshot must fail: the snapshot ends the session"),
    }
    let restored = start(p, Some(snap.clone())).await;
    assert_eq!(sh(&*restored, "cat state.txt").await.stdout, "durable\n");
    sh(&*restored, "echo changed > state.txt").await;
    restored.stop().await.expect("stop");
    // The snapshot is immutable: a second restore sees the original content.
    let again = start(p, Some(snap)).await;
    assert_eq!(sh(&*again, "cat state.txt").await.stdout, "durable\n");
    again.stop().await.expect("stop");
}

/// Starting from an unknown snapshot is `SnapshotUnavailable`.
pub async fn missing_snapshot_is_unavailable(f: &ProviderFixture) {
    let p = &*f.provider;
    let mut spec = fresh("suite");
    spec.from = Some(SnapshotRef {
        provider: p.id().to_owned(),
        id: "snap_does_not_exist".into(),
    });
    let err = p.start(spec).await.expect_err("must fail");
    assert_eq!(err.kind(), &ErrorKind::SnapshotUnavailable, "{err}");
}

/// A stopped session rejects commands and cannot be attached.
pub async fn stop_ends_the_session(f: &ProviderFixture) {
    let p = &*f.provider;
    let s = start(p, None).await;
    let r = s.session_ref();
    s.stop().await.expect("stop");
    let err = s.exec(shell("echo x")).await.expect_err("exec after stop");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    let err = p.attach(&r).await.expect_err("attach after stop");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
}

/// A live session can be attached by reference and sees the same files.
pub async fn attach_reaches_the_same_session(f: &ProviderFixture) {
    let p = &*f.provider;
    let s = start(p, None).await;
    sh(&*s, "echo shared > a.txt").await;
    let attached = p.attach(&s.session_ref()).await.expect("attach");
    assert_eq!(attached.session_ref(), s.session_ref());
    assert_eq!(sh(&*attached, "cat a.txt").await.stdout, "shared\n");
    attached.stop().await.expect("stop");
    let unknown = sandkit_core::SessionRef {
        provider: p.id().to_owned(),
        id: "sbx_unknown_session".into(),
    };
    let err = p.attach(&unknown).await.expect_err("unknown session");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
}

/// A session named in advance gets the planned reference, and `discard_session`
/// stops it (with its background processes); discarding a planned session that was
/// never started, or one already gone, succeeds.
pub async fn discard_finds_planned_and_live_sessions(f: &ProviderFixture) {
    let p = &*f.provider;
    let name = format!("sandkit-{}", uuid::Uuid::new_v4().simple());
    let planned = p.planned_session(&name);
    let mut spec = fresh("suite");
    spec.name = Some(name.clone());
    let s = p.start(spec).await.expect("start with a name");
    if let Some(planned) = &planned {
        assert!(
            planned == &s.session_ref() || planned.id == name,
            "the planned reference {planned:?} names the started session {:?}",
            s.session_ref()
        );
        p.discard_session(planned).await.expect("discard by plan");
    } else {
        p.discard_session(&s.session_ref())
            .await
            .expect("discard by reference");
    }
    let err = p.attach(&s.session_ref()).await.expect_err("discarded");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    p.discard_session(&s.session_ref())
        .await
        .expect("discarding twice is fine");
    let never = format!("sandkit-{}", uuid::Uuid::new_v4().simple());
    if let Some(planned) = p.planned_session(&never) {
        p.discard_session(&planned)
            .await
            .expect("a planned session never started: nothing to do");
    }
}

/// A command timeout kills the command with a non-zero exit.
pub async fn command_timeout_kills(f: &ProviderFixture) {
    let s = start(&*f.provider, None).await;
    let mut spec = shell("sleep 30; echo late");
    spec.timeout = Some(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let r = run(&*s, spec).await;
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("late"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "timeout not enforced"
    );
    s.stop().await.expect("stop");
}

/// Policies the provider declares it enforces are accepted; others are `Unsupported`.
pub async fn policies_follow_capabilities(f: &ProviderFixture) {
    let p = &*f.provider;
    let caps = p.capabilities().clone();
    let env = sandkit_core::policies::MapEnv::new().with("GITHUB_TOKEN", "suite-fake-token");
    let services = Policy::allow_services([presets::npm()])
        .expect("policy")
        .compile(&ProcessEnv)
        .expect("compile");
    let injected = Policy::allow_services([presets::github()])
        .expect("policy")
        .compile(&env)
        .expect("compile");
    for (rules, enforced) in [
        (FirewallRules::AllowAll, caps.network.allow_all),
        (FirewallRules::DenyAll, caps.network.deny_all),
        (services, caps.network.allow_services),
        (
            injected,
            caps.network.allow_services && caps.network.header_injection,
        ),
    ] {
        let checked = caps.check_rules(p.id(), &rules);
        assert_eq!(checked.is_ok(), enforced, "capability check for {rules:?}");
        if !enforced {
            assert_eq!(
                checked.err().map(|e| e.kind().clone()),
                Some(ErrorKind::Unsupported)
            );
            continue;
        }
        let mut spec = fresh("suite");
        spec.rules = rules.clone();
        let s = p.start(spec).await.expect("start with an enforced policy");
        s.set_policy(&rules).await.expect("set_policy");
        assert_eq!(sh(&*s, "echo ok").await.stdout, "ok\n");
        s.stop().await.expect("stop");
    }
}

/// Background processes: logs replay from the start, kill stops them.
pub async fn background_processes(f: &ProviderFixture) {
    let p = &*f.provider;
    if !p.capabilities().background_processes {
        eprintln!(
            "skipped: provider {} declares no background processes",
            p.id()
        );
        return;
    }
    let s = start(p, None).await;
    let short = s
        .spawn(shell("echo started; echo warn >&2"))
        .await
        .expect("spawn");
    let id = short.id.clone();
    let log = LogBuffer::default();
    assert_eq!(log.pump(short).await.expect("exit"), 0);
    assert_eq!(log.collect(), ("started\n".to_owned(), "warn\n".to_owned()));
    let replay: Vec<_> = s
        .process_logs(&id)
        .await
        .expect("logs")
        .map(|c| c.expect("chunk"))
        .collect()
        .await;
    let joined: String = replay
        .iter()
        .filter(|c| c.stream == StdStream::Stdout)
        .map(|c| c.text().into_owned())
        .collect();
    assert_eq!(joined, "started\n");
    assert!(
        s.processes()
            .await
            .expect("list")
            .iter()
            .any(|pi| pi.id == id)
    );

    let long = s.spawn(shell("echo tick; sleep 60")).await.expect("spawn");
    let long_id = long.id.clone();
    let pump = tokio::spawn(async move {
        let log = LogBuffer::default();
        let code = log.pump(long).await;
        (code, log.collect())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.kill(&long_id).await.expect("kill");
    let (code, (out, _)) = tokio::time::timeout(Duration::from_secs(20), pump)
        .await
        .expect("killed process ends")
        .expect("task");
    assert_ne!(code.unwrap_or(-1), 0);
    assert!(out.starts_with("tick"));
    s.stop().await.expect("stop");
}

/// Exposed ports have URLs.
pub async fn ports_have_urls(f: &ProviderFixture) {
    let p = &*f.provider;
    let Some(ports) = p.capabilities().ports else {
        eprintln!("skipped: provider {} declares no ports", p.id());
        return;
    };
    let port = ports.min.max(3000).min(ports.max);
    let mut spec = fresh("suite");
    spec.ports = vec![port];
    let s = p.start(spec).await.expect("start");
    let url = s.url(port).await.expect("url");
    assert!(url.starts_with("http"), "{url}");
    s.stop().await.expect("stop");
}

/// Extending moves the expiry forward.
pub async fn extend_moves_expiry(f: &ProviderFixture) {
    let p = &*f.provider;
    if !p.capabilities().extend_timeout {
        eprintln!("skipped: provider {} cannot extend sessions", p.id());
        return;
    }
    let s = start(p, None).await;
    let before = s.expires_at().expect("expiry known");
    let after = s.extend(Duration::from_secs(60)).await.expect("extend");
    assert!(
        after >= before + chrono::Duration::seconds(59),
        "{before} -> {after}"
    );
    s.stop().await.expect("stop");
}

/// Deleted snapshots cannot be restored; deleting twice is fine.
pub async fn delete_snapshot(f: &ProviderFixture) {
    let p = &*f.provider;
    if !p.capabilities().snapshot_delete {
        eprintln!("skipped: provider {} cannot delete snapshots", p.id());
        return;
    }
    let s = start(p, None).await;
    sh(&*s, "echo x > x.txt").await;
    let snap = s.snapshot().await.expect("snapshot");
    p.delete_snapshot(&snap).await.expect("delete");
    p.delete_snapshot(&snap).await.expect("delete again");
    let mut spec = fresh("suite");
    spec.from = Some(snap);
    let err = p
        .start(spec)
        .await
        .expect_err("restore of a deleted snapshot");
    assert_eq!(err.kind(), &ErrorKind::SnapshotUnavailable, "{err}");
}

/// A snapshot seeds several independent sessions (forks).
pub async fn snapshots_seed_independent_sessions(f: &ProviderFixture) {
    let p = &*f.provider;
    if !p.capabilities().fork {
        eprintln!("skipped: provider {} declares no fork", p.id());
        return;
    }
    let s = start(p, None).await;
    sh(&*s, "echo base > f.txt").await;
    let snap = s.snapshot().await.expect("snapshot");
    let a = start(p, Some(snap.clone())).await;
    let b = start(p, Some(snap)).await;
    sh(&*a, "echo a > f.txt").await;
    assert_eq!(sh(&*b, "cat f.txt").await.stdout, "base\n");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// Expands to one `#[tokio::test]` per provider conformance case.
///
/// `$factory` is an async fn returning `Option<ProviderFixture>` (`None` skips).
#[macro_export]
macro_rules! provider_suite {
    ($factory:path) => {
        $crate::__provider_cases!(
            $factory;
            exec_reports_output_and_exit_code,
            exec_streams_chunks,
            exec_passes_env,
            files_persist_within_a_session,
            snapshot_restores_and_ends_session,
            missing_snapshot_is_unavailable,
            stop_ends_the_session,
            attach_reaches_the_same_session,
            discard_finds_planned_and_live_sessions,
            command_timeout_kills,
            policies_follow_capabilities,
            background_processes,
            ports_have_urls,
            extend_moves_expiry,
            delete_snapshot,
            snapshots_seed_independent_sessions,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __provider_cases {
    ($factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $factory().await else {
                    return;
                };
                $crate::provider_suite::$case(&fixture).await;
            }
        )*
    };
}
