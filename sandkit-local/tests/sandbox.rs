//! Commands run in sandboxes: probes a hostile command would try, from inside, as root
//! and (as root, through a re-run of this file) as an unprivileged user.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{provider, run, sh, shell, start, start_with};
use sandkit_core::StartSpec;
use sandkit_core::policies::FirewallRules;
use sandkit_local::WORKSPACE;

fn deny_all() -> StartSpec {
    StartSpec {
        rules: FirewallRules::DenyAll,
        ..common::fresh("sandbox-tests")
    }
}

/// Host resources a command must not reach: a directory (readable by everyone) with a
/// secret file and a Unix socket, a TCP port on 127.0.0.1, and a process of this user.
struct Host {
    dir: tempfile::TempDir,
    _socket: std::os::unix::net::UnixListener,
    tcp: std::net::TcpListener,
    sleeper: std::process::Child,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("sandkit-host-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "host secret\n").unwrap();
        let socket = std::os::unix::net::UnixListener::bind(dir.path().join("host.sock")).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sleeper = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        Host {
            dir,
            _socket: socket,
            tcp,
            sleeper,
        }
    }

    fn tcp_probe(&self) -> String {
        let port = self.tcp.local_addr().unwrap().port();
        format!("timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null")
    }

    /// A script printing `LEAK: …` for every host resource it reaches.
    fn script(&self, network: bool) -> String {
        let dir = self.dir.path().display();
        let tcp = self.tcp_probe();
        let pid = self.sleeper.id();
        let mut script = format!(
            r#"
test -e {dir}/host.sock && echo "LEAK: host socket visible"
command -v socat >/dev/null && socat -u OPEN:/dev/null UNIX-CONNECT:{dir}/host.sock 2>/dev/null && echo "LEAK: host socket"
for s in /var/run/postgresql/.s.PGSQL.5432 /run/mysqld/mysqld.sock /run/postgresql; do
  test -e "$s" && echo "LEAK: $s"
done
command -v psql >/dev/null && psql -h /var/run/postgresql -U postgres -c 'select 1' >/dev/null 2>&1 && echo "LEAK: postgres superuser"
cat {dir}/secret.txt 2>/dev/null && echo "LEAK: host file"
for d in /home /root /run /var/run /var/lib /srv /mnt {dir}; do test -e "$d" && echo "LEAK: $d"; done
kill -0 {pid} 2>/dev/null && echo "LEAK: host process"
test -s /etc/shadow && echo "LEAK: /etc/shadow"
touch /usr/sandkit-probe /etc/sandkit-probe /sandkit-probe 2>/dev/null && echo "LEAK: system dirs writable"
echo x > /proc/sys/kernel/hostname 2>/dev/null && echo "LEAK: kernel settings writable"
mount -t tmpfs none /workspace 2>/dev/null && echo "LEAK: mount"
"#
        );
        if !network {
            script.push_str(&format!(
                "{tcp} && echo \"LEAK: host tcp\"\n\
                 test \"$(wc -l < /proc/net/route)\" -le 1 || echo \"LEAK: a route out\"\n"
            ));
        }
        script.push_str("echo probes done\n");
        script
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
    }
}

fn assert_contained(what: &str, out: &common::Ran) {
    assert!(out.stdout.contains("probes done"), "{what}: {out:?}");
    assert!(
        !out.stdout.contains("LEAK"),
        "{what} reached the host: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_all_command_reaches_nothing_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    assert!(p.is_sandboxed() && p.enforces_deny_all());
    let host = Host::new();
    let s = start_with(&p, deny_all()).await;
    assert_contained("a deny-all command", &sh(&*s, &host.script(false)).await);
    // The same probes from a background process.
    let handle = s.spawn(shell(&host.script(false))).await.unwrap();
    let out = sandkit_core::LogBuffer::default();
    out.pump(handle).await.unwrap();
    let (stdout, _) = out.collect();
    assert!(
        stdout.contains("probes done") && !stdout.contains("LEAK"),
        "{stdout}"
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_all_command_has_the_network_and_nothing_else_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let host = Host::new();
    let s = start(&p).await;
    assert_contained("an allow-all command", &sh(&*s, &host.script(true)).await);
    // The host network is there (so the deny-all probe above means something).
    let tcp = sh(&*s, &format!("{} && echo reached", host.tcp_probe())).await;
    assert_eq!(tcp.stdout, "reached\n", "{tcp:?}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_is_at_a_fixed_path_and_tmp_lasts_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let r = sh(
        &*s,
        "pwd; echo $HOME; echo hi > note.txt; echo t > /tmp/t; hostname",
    )
    .await;
    assert_eq!(
        r.stdout,
        format!("{WORKSPACE}\n{WORKSPACE}\nsandkit\n"),
        "{r:?}"
    );
    let work = p.work_dir(&s.session_ref()).unwrap();
    assert_eq!(
        std::fs::read_to_string(work.join("note.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(sh(&*s, "cat /tmp/t /var/tmp/t").await.stdout, "t\nt\n");
    // Absolute working directories are given as the command sees them (or as the host does).
    sh(&*s, "mkdir -p a/b").await;
    for cwd in [
        format!("{WORKSPACE}/a/b"),
        work.join("a/b").display().to_string(),
    ] {
        let mut pwd = shell("pwd");
        pwd.cwd = Some(cwd);
        assert_eq!(run(&*s, pwd).await.stdout, format!("{WORKSPACE}/a/b\n"));
    }
    // Nothing of /tmp is in the snapshot; the next session has a fresh one.
    let snap = s.snapshot().await.unwrap();
    let next = start_with(
        &p,
        StartSpec {
            from: Some(snap),
            ..common::fresh("sandbox-tests")
        },
    )
    .await;
    let r = sh(&*next, "cat note.txt; ls -A /tmp | wc -l").await;
    assert_eq!(r.stdout, "hi\n0\n", "{r:?}");
    next.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_every_process_of_the_sandbox_even_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let work = p.work_dir(&s.session_ref()).unwrap();
    // A daemon that left the command's OS session (setsid) keeps writing a tick file.
    let mut spec =
        shell("setsid sh -c 'while :; do date +%s%N > tick; sleep 0.02; done' & sleep 100");
    spec.timeout = Some(Duration::from_millis(500));
    assert_eq!(run(&*s, spec).await.code, 137);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = std::fs::read_to_string(work.join("tick")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        std::fs::read_to_string(work.join("tick")).unwrap(),
        before,
        "a process of the timed-out command still runs"
    );
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_path_is_shown_even_under_tmp() {
    let host = Host::new();
    let dir = tempfile::tempdir().unwrap();
    let p = sandkit_local::LocalProvider::builder(dir.path())
        .read_only_path(host.dir.path())
        .build()
        .unwrap();
    let s = start(&p).await;
    let secret = host.dir.path().join("secret.txt");
    let r = sh(
        &*s,
        &format!("cat {0}; echo x > {0} || echo refused", secret.display()),
    )
    .await;
    assert_eq!(r.stdout, "host secret\nrefused\n", "{r:?}");
    s.stop().await.unwrap();
}

#[test]
fn the_probes_hold_as_a_normal_user() {
    common::rerun_as_normal_user("the_probes_hold_as_a_normal_user");
}
