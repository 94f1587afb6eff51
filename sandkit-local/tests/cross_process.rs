//! A second OS process attaches to a session by reference, execs, starts a process
//! that outlives it, and commits.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{host_provider, process_running, sh, start, start_with};
use futures::StreamExt;
use sandkit_core::{ErrorKind, ProviderSession};

const PROBE: &str = env!("CARGO_BIN_EXE_sandkit-local-probe");

struct Probe {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn probe(root: &Path, session: &str, args: &[&str]) -> Probe {
    // The test follows a background process by its host pid: commands run on the host.
    let out = tokio::process::Command::new(PROBE)
        .env("SANDKIT_LOCAL_ISOLATION", "off")
        .arg(root)
        .arg(session)
        .args(args)
        .output()
        .await
        .expect("run the probe");
    Probe {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn first_chunk(s: &dyn ProviderSession, id: &str) -> String {
    let mut logs = s.process_logs(id).await.expect("logs");
    tokio::time::timeout(Duration::from_secs(10), logs.next())
        .await
        .expect("output in time")
        .expect("output")
        .expect("chunk")
        .text()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_os_process_attaches_execs_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let p = host_provider(root);
    let s = start(&p).await;
    let id = s.session_ref().id;
    sh(&*s, "echo from-parent > shared.txt").await;

    let read = probe(root, &id, &["exec", "cat", "shared.txt"]).await;
    assert_eq!(
        (read.code, read.stdout.as_str()),
        (0, "from-parent\n"),
        "{}",
        read.stderr
    );
    let wrote = probe(
        root,
        &id,
        &["exec", "sh", "-c", "echo from-child >> shared.txt; exit 3"],
    )
    .await;
    assert_eq!(wrote.code, 3, "{}", wrote.stderr);

    // A background process started by the probe outlives it.
    let spawned = probe(root, &id, &["spawn", "sh", "-c", "echo $$; exec sleep 60"]).await;
    assert_eq!(spawned.code, 0, "{}", spawned.stderr);
    let process = spawned.stdout.trim().to_owned();
    let pid: i32 = first_chunk(&*s, &process).await.trim().parse().unwrap();
    assert!(
        process_running(pid),
        "the background process died with the probe"
    );
    let listed = s.processes().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|pi| pi.id == process && pi.exit_code.is_none())
    );

    let committed = probe(root, &id, &["snapshot"]).await;
    assert_eq!(committed.code, 0, "{}", committed.stderr);
    let snapshot = committed.stdout.trim().to_owned();
    assert!(
        !process_running(pid),
        "commit stops the session's processes"
    );
    let err = s.exec(common::shell("true")).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
    let gone = probe(root, &id, &["exec", "true"]).await;
    assert_eq!(gone.code, 2);
    assert!(gone.stderr.contains(&id), "{}", gone.stderr);

    let mut spec = common::fresh("local-tests");
    spec.from = Some(sandkit_core::SnapshotRef {
        provider: "local".into(),
        id: snapshot,
    });
    let restored = start_with(&p, spec).await;
    assert_eq!(
        sh(&*restored, "cat shared.txt").await.stdout,
        "from-parent\nfrom-child\n"
    );
    restored.stop().await.unwrap();
}
