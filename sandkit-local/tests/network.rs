//! Egress policies: deny-all isolates every command in its own network namespace;
//! allow-all uses the host network; anything else is refused.

mod common;

use common::{provider, run, sh, shell, start, start_with};
use sandkit_core::policies::{FirewallRules, MapEnv, Policy, presets};
use sandkit_core::{ErrorKind, ExecSpec, LogBuffer, Provider};
use tokio::net::TcpListener;

/// A listener on the host's loopback that accepts (and drops) connections.
async fn listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    port
}

fn connect(port: u16) -> String {
    format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')\""
    )
}

fn deny_all() -> sandkit_core::StartSpec {
    let mut spec = common::fresh("local-tests");
    spec.rules = FirewallRules::DenyAll;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_all_blocks_a_connection_that_allow_all_makes() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    assert!(p.capabilities().network.deny_all);
    let port = listener().await;

    let open = start(&p).await;
    let ok = sh(&*open, &connect(port)).await;
    assert_eq!((ok.code, ok.stdout.as_str()), (0, "connected\n"), "{ok:?}");

    let closed = start_with(&p, deny_all()).await;
    let blocked = sh(&*closed, &connect(port)).await;
    assert_ne!(blocked.code, 0, "{blocked:?}");
    assert!(!blocked.stdout.contains("connected"));

    // Background processes are isolated too.
    let bg = closed.spawn(shell(&connect(port))).await.unwrap();
    let log = LogBuffer::default();
    assert_ne!(log.pump(bg).await.unwrap(), 0);
    open.stop().await.unwrap();
    closed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_all_command_still_has_its_own_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start_with(&p, deny_all()).await;
    let script = "import socket\n\
                  srv = socket.create_server(('127.0.0.1', 0))\n\
                  socket.create_connection(srv.getsockname(), timeout=2)\n\
                  print('loopback ok')\n";
    let r = run(
        &*s,
        ExecSpec {
            command: "python3".into(),
            args: vec!["-c".into(), script.into()],
            ..ExecSpec::default()
        },
    )
    .await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "loopback ok\n"), "{r:?}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_policy_switches_later_commands() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let port = listener().await;
    let s = start(&p).await;
    s.set_policy(&FirewallRules::DenyAll).await.unwrap();
    assert_ne!(sh(&*s, &connect(port)).await.code, 0);
    s.set_policy(&FirewallRules::AllowAll).await.unwrap();
    assert_eq!(sh(&*s, &connect(port)).await.code, 0);

    // A process already running with network access cannot be moved into a namespace:
    // tightening the policy is refused rather than leaving it with more egress.
    let bg = s.spawn(shell("sleep 30")).await.unwrap();
    let err = s.set_policy(&FirewallRules::DenyAll).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");
    s.kill(&bg.id).await.unwrap();
    s.set_policy(&FirewallRules::DenyAll).await.unwrap();
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_it_cannot_enforce_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let services = Policy::allow_services([presets::npm()])
        .unwrap()
        .compile(&MapEnv::new())
        .unwrap();
    let mut spec = common::fresh("local-tests");
    spec.rules = services.clone();
    let err = p.start(spec).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");

    let s = start(&p).await;
    let err = s.set_policy(&services).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");
    // The session keeps its previous (allow-all) policy.
    assert_eq!(sh(&*s, "echo still").await.stdout, "still\n");
    s.stop().await.unwrap();

    // A deny-all session's ports cannot be served to the host.
    let mut spec = deny_all();
    spec.ports = vec![3000];
    let d = start_with(&p, spec).await;
    let err = d.url(3000).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");
    d.stop().await.unwrap();
}
