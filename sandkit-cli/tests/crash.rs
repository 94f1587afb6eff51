//! `kill -9` of `sandkit run` at points of a durable command, on the embedded default:
//! the next `sandkit run` (no `--wait`) recovers at once — the killed holder ran on this
//! machine and its process is gone, so its lease is not waited out — the killed run is
//! `interrupted` with its reason, the head is the last commit, and nothing of the
//! killed sandbox is left: no session directory, no process.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Home, assert_code, stdout};

/// 200 MB in 20 files: big enough that restoring or snapshotting it takes a while.
const BIG: &str = "for i in $(seq 1 20); do head -c 10000000 /dev/urandom > big$i; done";

fn sessions(home: &Home) -> Vec<String> {
    let dir = home.sandkit_dir().join("local").join("sessions");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether some process's command line contains `marker`.
fn process_with(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
}

fn spawn_run(home: &Home, script: &str) -> Child {
    home.std_cmd()
        .args(["run", "ws", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sandkit run")
}

/// Waits for `line` on the child's stdout.
fn wait_for_line(child: &mut Child, line: &str) {
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l == line => return,
            Some(Ok(_)) => {}
            _ => panic!("the run ended before printing {line:?}"),
        }
    }
}

/// Polls until `check` holds (panics after 60 s).
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn kill(child: &mut Child) {
    child.kill().expect("kill -9");
    child.wait().expect("reap");
}

/// The workspace's runs, newest first.
fn runs(home: &Home) -> Vec<serde_json::Value> {
    let out = home.run(&["runs", "ws", "--json"]);
    assert_code(&out, 0);
    serde_json::from_str(&stdout(&out)).expect("runs JSON")
}

/// After the kill: the next run recovers at once and sees the last commit; killed runs
/// that got as far as being journaled (`interrupted_runs` of them so far) are
/// interrupted, saying their holder died; nothing of the sandbox is left.
fn assert_recovered(home: &Home, committed: &str, interrupted_runs: usize, marker: Option<&str>) {
    let next = home.run(&["run", "ws", "--", "cat", "state.txt"]);
    assert_code(&next, 0);
    assert_eq!(stdout(&next), committed, "the head is the last commit");
    let all = runs(home);
    let interrupted: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["status"] == "interrupted")
        .collect();
    assert!(
        all.iter()
            .all(|r| r["status"] == "succeeded" || r["status"] == "interrupted"),
        "{all:#?}"
    );
    assert_eq!(interrupted.len(), interrupted_runs, "{all:#?}");
    for run in interrupted {
        let reason = run["error"].as_str().unwrap_or_default();
        assert!(reason.contains("died"), "{reason}");
    }
    assert_eq!(
        sessions(home),
        Vec::<String>::new(),
        "no session directory is left"
    );
    if let Some(marker) = marker {
        assert!(
            !process_with(marker),
            "a process of the killed sandbox still runs"
        );
    }
}

fn committed_home() -> Home {
    let home = Home::new();
    let first = home.run(&["run", "ws", "--", "sh", "-c", "echo one > state.txt"]);
    assert_code(&first, 0);
    home
}

#[test]
fn killed_while_the_command_runs() {
    let home = committed_home();
    let mut child = spawn_run(&home, "echo two > state.txt; echo started; sleep 3917");
    wait_for_line(&mut child, "started");
    kill(&mut child);
    assert!(process_with("sleep 3917"), "the command outlived the CLI");
    assert_recovered(&home, "one\n", 1, Some("sleep 3917"));
}

#[test]
fn killed_with_a_background_process_in_the_sandbox() {
    let home = committed_home();
    let mut child = spawn_run(&home, "sleep 3918 & echo started; sleep 3919");
    wait_for_line(&mut child, "started");
    kill(&mut child);
    assert_recovered(&home, "one\n", 1, Some("sleep 391"));
}

#[test]
fn killed_before_the_sandbox_starts() {
    let home = committed_home();
    let mut child = spawn_run(&home, "echo two > state.txt");
    std::thread::sleep(Duration::from_millis(20));
    kill(&mut child);
    // Killed this early, it may not have journaled its run yet.
    let journaled = runs(&home).len() > 1;
    assert_recovered(&home, "one\n", usize::from(journaled), None);
}

#[test]
fn killed_while_restoring_a_200_mb_head_and_while_snapshotting_one() {
    let home = Home::new();
    let big = home.run(&[
        "run",
        "ws",
        "--",
        "sh",
        "-c",
        &format!("{BIG}; echo one > state.txt"),
    ]);
    assert_code(&big, 0);

    // During the start: the session is still being created from the head.
    let mut child = spawn_run(&home, "echo two > state.txt");
    wait_until("the session to be created", || {
        sessions(&home).iter().any(|s| s.starts_with(".starting-"))
    });
    kill(&mut child);
    assert_recovered(&home, "one\n", 1, None);

    // During the snapshot of 200 MB of new files.
    let mut child = spawn_run(
        &home,
        &format!(
            "{}; echo two > state.txt; echo written",
            BIG.replace("big$i", "new$i")
        ),
    );
    wait_for_line(&mut child, "written");
    std::thread::sleep(Duration::from_millis(30));
    kill(&mut child);
    assert_recovered(&home, "one\n", 2, None);
}

#[test]
fn a_finished_run_leaves_nothing_behind() {
    let home = committed_home();
    let out = home.run(&["run", "ws", "--", "sh", "-c", "echo two > state.txt"]);
    assert_code(&out, 0);
    assert_eq!(sessions(&home), Vec::<String>::new());
}

/// Sends `signal` (`INT`, `TERM`) to the child.
fn send(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

fn signal_stops_the_run(signal: &str, code: i32, marker: &str) {
    let home = committed_home();
    let mut child = home
        .std_cmd()
        .args(["run", "ws", "--", "sh", "-c"])
        .arg(format!("echo two > state.txt; echo started; {marker}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_line(&mut child, "started");
    send(&child, signal);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("SIG")).collect();
    assert_eq!(said.len(), 1, "one line says so: {stderr}");
    assert!(said[0].contains(&format!("SIG{signal}")), "{stderr}");
    assert!(!process_with(marker), "the command was stopped");
    assert_eq!(sessions(&home), Vec::<String>::new());
    let all = runs(&home);
    let stopped = all
        .iter()
        .find(|r| r["status"] == "interrupted")
        .unwrap_or_else(|| panic!("{all:#?}"));
    let reason = stopped["error"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("SIG{signal}")), "{reason}");
    let next = home.run(&["run", "ws", "--", "cat", "state.txt"]);
    assert_code(&next, 0);
    assert_eq!(stdout(&next), "one\n", "the lease was released at once");
}

#[test]
fn ctrl_c_stops_the_command_journals_it_and_exits_130() {
    signal_stops_the_run("INT", 130, "sleep 3921");
}

#[test]
fn sigterm_stops_the_command_journals_it_and_exits_143() {
    signal_stops_the_run("TERM", 143, "sleep 3922");
}

/// Ctrl-C on `session exec` stops that command (exit 130, one line) and leaves the
/// session open and usable.
#[test]
fn ctrl_c_on_session_exec_stops_the_command_not_the_session() {
    let home = Home::new();
    assert_code(&home.run(&["session", "open", "ws"]), 0);
    let marker = "sleep 3923";
    let mut child = home
        .std_cmd()
        .args(["session", "exec", "ws", "--", "sh", "-c"])
        .arg(format!("echo started; {marker}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_line(&mut child, "started");
    send(&child, "INT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("SIGINT")).collect();
    assert_eq!(said.len(), 1, "one line says so: {stderr}");
    assert!(said[0].contains("session stays open"), "{stderr}");
    assert!(!process_with(marker), "the command was stopped");
    let again = home.run(&["session", "exec", "ws", "--", "echo", "still open"]);
    assert_code(&again, 0);
    assert_eq!(stdout(&again), "still open\n");
    assert_code(&home.run(&["session", "discard", "ws"]), 0);
}

/// A `session commit` killed mid-snapshot strands nothing: the session reopens, and a
/// second `session commit` (another process) commits the work; `run` then sees it.
#[test]
fn a_session_commit_killed_mid_snapshot_can_be_retried() {
    let home = Home::new();
    assert_code(&home.run(&["session", "open", "ws"]), 0);
    let wrote = home.run(&[
        "session",
        "exec",
        "ws",
        "--",
        "sh",
        "-c",
        &format!("{BIG}; echo work > state.txt"),
    ]);
    assert_code(&wrote, 0);
    let session_dir = sessions(&home)
        .into_iter()
        .next()
        .expect("the session directory");
    let meta = home
        .sandkit_dir()
        .join("local")
        .join("sessions")
        .join(session_dir)
        .join("session.json");
    let mut commit = home
        .std_cmd()
        .args(["session", "commit", "ws"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn commit");
    wait_until("the snapshot to start", || {
        std::fs::read_to_string(&meta).is_ok_and(|m| m.contains("\"snapshotting\""))
    });
    kill(&mut commit);

    let retried = home.run(&["session", "commit", "ws"]);
    assert_code(&retried, 0);
    let next = home.run(&["run", "ws", "--", "cat", "state.txt"]);
    assert_code(&next, 0);
    assert_eq!(stdout(&next), "work\n", "the session's work was committed");
    assert_eq!(sessions(&home), Vec::<String>::new());
}
