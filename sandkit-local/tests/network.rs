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

/// The network namespace of a process.
fn netns(pid: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("netns link")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tightening_to_deny_all_never_leaves_a_networked_process_running() {
    use futures::StreamExt;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let host = netns("self");
    let mut raced = 0;
    for i in 0..24_u64 {
        let s = start(&p).await;
        let command = shell("echo $$; exec sleep 30");
        let started = async {
            if i % 2 == 0 {
                s.spawn(command).await.map(|h| (h, true))
            } else {
                s.exec(command).await.map(|h| (h, false))
            }
        };
        let tighten = async {
            tokio::time::sleep(Duration::from_micros(i % 8 * 300)).await;
            s.set_policy(&FirewallRules::DenyAll).await
        };
        let (started, tightened) = tokio::join!(started, tighten);
        if let (Ok((mut handle, background)), Ok(())) = (started, tightened) {
            raced += 1;
            let pid = if background {
                common::first_output_line(&*s, &handle.id).await
            } else {
                let chunk = handle.output.next().await.expect("output").expect("chunk");
                chunk.text().trim().parse().expect("pid")
            };
            let _kill = common::KillOnDrop(pid);
            assert_ne!(
                netns(&pid.to_string()),
                host,
                "iteration {i}: the session became deny-all while a process with host network ran"
            );
        }
        s.stop().await.unwrap();
    }
    eprintln!("{raced} of 24 iterations started a command and tightened the policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_inherit_no_descriptor_of_the_calling_process() {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    server
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let fd = client.as_raw_fd();
    // As an embedding program might: a connected socket without close-on-exec.
    // SAFETY: F_SETFD on a descriptor this test owns.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);

    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    for spec in [common::fresh("local-tests"), deny_all()] {
        let rules = format!("{:?}", spec.rules);
        let s = start_with(&p, spec).await;
        let r = run(
            &*s,
            ExecSpec {
                command: "python3".into(),
                args: vec!["-c".into(), format!("import os; os.write({fd}, b'leaked')")],
                ..ExecSpec::default()
            },
        )
        .await;
        assert_ne!(r.code, 0, "{rules}: the command wrote to fd {fd}: {r:?}");
        assert!(r.stderr.contains("Bad file descriptor"), "{rules}: {r:?}");
        let mut buf = [0; 16];
        match server.read(&mut buf) {
            Ok(n) => panic!("{rules}: the listener received {:?}", &buf[..n]),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
        }
        s.stop().await.unwrap();
    }
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_all_command_cannot_reenter_the_host_network() {
    if std::process::Command::new("nsenter")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: nsenter (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let enter = format!("nsenter -t {} -n true", std::process::id());
    // Not even with the host network: a sandbox has no host /proc and no capability.
    let open = start(&p).await;
    let closed = start_with(&p, deny_all()).await;
    for s in [&open, &closed] {
        let r = sh(&**s, &enter).await;
        assert_ne!(
            r.code, 0,
            "a command entered the host's network namespace: {r:?}"
        );
        // Nor can anything it runs: its bounding set is empty.
        let caps = sh(&**s, "grep CapBnd /proc/self/status").await.stdout;
        let bounding = u64::from_str_radix(caps.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(bounding, 0, "capabilities left in the bounding set: {caps}");
    }
    open.stop().await.unwrap();
    closed.stop().await.unwrap();
}

/// A sandbox that cannot be built at run time (here: its mount point was removed)
/// refuses the command with a typed error instead of running it unconfined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_sandbox_fails_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start_with(&p, deny_all()).await;
    let mount_point = dir.path().join("sandbox").join("root");
    std::fs::remove_dir(&mount_point).unwrap();
    let exec = s.exec(shell("true")).await.err();
    let spawn = s.spawn(shell("true")).await.err();
    std::fs::create_dir(&mount_point).unwrap();
    for err in [exec, spawn] {
        let err = err.expect("not started");
        assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("sandbox"), "{err}");
    }
    // Once the sandbox can be built again, so do commands.
    assert_eq!(sh(&*s, "echo ok").await.stdout, "ok\n");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tightening_to_deny_all_waits_for_commands_being_started() {
    use std::time::Duration;

    // `set_policy(deny-all)` racing a command: either the command starts first (and
    // tightening is refused while it runs) or it starts isolated. It is never started
    // with the host network and then killed because the policy changed meanwhile. The
    // race is widened by holding the session's metadata lock (as another OS process
    // updating the session would) while both calls are under way.
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    for i in 0..6_u64 {
        let s = start(&p).await;
        let session_dir = dir.path().join("sessions").join(s.session_ref().id);
        let lock = std::fs::File::create(session_dir.join("session.lock")).unwrap();
        lock.lock().unwrap();
        let tighten = s.set_policy(&FirewallRules::DenyAll);
        let started = async {
            // set_policy goes first and waits for the lock.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let command = shell("exec sleep 30");
            if i % 2 == 0 {
                s.spawn(command).await
            } else {
                s.exec(command).await
            }
        };
        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            lock.unlock().unwrap();
        };
        let (tightened, started, ()) = tokio::join!(tighten, started, release);
        if let Err(e) = &started {
            panic!("iteration {i}: the command was refused ({e}); set_policy: {tightened:?}");
        }
        if let Err(e) = &tightened {
            assert_eq!(e.kind(), &ErrorKind::Unsupported, "iteration {i}: {e}");
        }
        s.stop().await.unwrap();
    }
}
