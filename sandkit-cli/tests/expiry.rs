//! A session opened from the CLI expires on time with no Sandkit process running,
//! and `session status` tells the truth about it.

mod common;

use std::time::{Duration, Instant};

use common::{Home, assert_code, stdout};

/// Pids of running processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("X");
            state != "Z" && state != "X"
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| raw.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn an_open_session_expires_with_no_sandkit_process_running() {
    let home = Home::new();
    assert_code(&home.run(&["workspace", "create", "--id", "ws"]), 0);
    assert_code(&home.run(&["session", "open", "ws", "--timeout", "3s"]), 0);
    // A marker no other test uses, so the scan below finds only this session's process.
    let marker = format!("{}", 4_000 + std::process::id() % 5_000);
    assert_code(
        &home.run(&["session", "start", "ws", "--", "sleep", &marker]),
        0,
    );
    let started = Instant::now();
    while processes_with(&marker).is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !processes_with(&marker).is_empty(),
        "the background process runs"
    );
    let status = home.run(&["session", "status", "ws"]);
    assert_code(&status, 0);
    assert!(
        stdout(&status).contains("session lease held"),
        "{}",
        stdout(&status)
    );

    // Every `sandkit` call has exited; only the session's watchdog can stop it now.
    while !processes_with(&marker).is_empty() && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        processes_with(&marker).is_empty(),
        "the session's process still runs {:?} after its 3 s expiry",
        started.elapsed()
    );
    let status = home.run(&["session", "status", "ws"]);
    assert_code(&status, 0);
    assert!(
        stdout(&status).contains("no live session"),
        "{}",
        stdout(&status)
    );
    // The workspace is usable again at once.
    assert_code(&home.run(&["run", "ws", "--", "true"]), 0);
}

#[test]
fn status_never_reports_no_session_while_its_processes_run() {
    let home = Home::new();
    assert_code(&home.run(&["workspace", "create", "--id", "ws"]), 0);
    assert_code(&home.run(&["session", "open", "ws", "--timeout", "2s"]), 0);
    let marker = format!("{}", 10_000 + std::process::id() % 5_000);
    assert_code(
        &home.run(&["session", "start", "ws", "--", "sleep", &marker]),
        0,
    );
    // Poll status as fast as a user could: whenever it says there is no live
    // session, nothing of the session may be left running.
    let started = Instant::now();
    loop {
        let status = home.run(&["session", "status", "ws"]);
        assert_code(&status, 0);
        if stdout(&status).contains("no live session") {
            assert!(
                processes_with(&marker).is_empty(),
                "status said no live session while {marker} still runs"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the session never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `workspace check` finds a head the provider lost (here: its manifest deleted behind
/// Sandkit's back), says the way out, and passes again once it was taken.
#[test]
fn workspace_check_finds_a_lost_head() {
    let home = Home::new();
    assert_code(&home.run(&["workspace", "create", "--id", "ws"]), 0);
    assert_code(&home.run(&["run", "ws", "--", "sh", "-c", "echo v > f"]), 0);
    let ok = home.run(&["workspace", "check"]);
    assert_code(&ok, 0);

    let runs: serde_json::Value =
        serde_json::from_str(&stdout(&home.run(&["runs", "ws", "--json"]))).expect("json");
    let head = runs[0]["snapshot"]["id"]
        .as_str()
        .expect("snapshot id")
        .to_owned();
    std::fs::remove_file(
        home.sandkit_dir()
            .join("local")
            .join("snapshots")
            .join(&head),
    )
    .expect("delete the manifest");

    let found = home.run(&["workspace", "check"]);
    assert_code(&found, 1);
    let text = stdout(&found);
    assert!(
        text.contains("workspace ws") && text.contains(&head),
        "{text}"
    );
    assert!(text.contains("sandkit workspace reset ws"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&home.run(&["--json", "workspace", "check"]))).expect("json");
    assert_eq!(report["missing"][0]["role"], "head", "{report}");

    assert_code(&home.run(&["workspace", "reset", "ws"]), 0);
    assert_code(&home.run(&["workspace", "check"]), 0);
}
