//! The real `sandkit` binary on the embedded default (local provider + SQLite).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Home, assert_code, stderr, stdout};

#[test]
fn help_exits_zero_and_shows_examples() {
    let home = Home::new();
    let out = home.run(&["--help"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("Examples:"));
    for sub in [
        &["run", "--help"][..],
        &["workspace", "create", "--help"],
        &["session", "start", "--help"],
        &["runs", "--help"],
        &["policy", "check", "--help"],
    ] {
        let out = home.run(sub);
        assert_code(&out, 0);
        assert!(stdout(&out).contains("Example"), "{sub:?}");
    }
}

#[test]
fn durable_across_processes() {
    let home = Home::new();
    let out = home.run(&["run", "notes", "--", "sh", "-c", "echo one >> notes.txt"]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("created workspace notes"),
        "{}",
        stderr(&out)
    );
    let out = home.run(&[
        "run",
        "notes",
        "--",
        "sh",
        "-c",
        "echo two >> notes.txt; cat notes.txt",
    ]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "one\ntwo\n");
    assert!(!stderr(&out).contains("created workspace"));
}

#[test]
fn exit_codes_pass_through_and_errors_have_their_own() {
    let home = Home::new();
    let out = home.run(&[
        "run",
        "codes",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_code(&out, 7);
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"));

    let out = home.run(&["workspace", "show", "missing"]);
    assert_code(&out, 4);
    let err = stderr(&out);
    assert!(
        err.starts_with("sandkit: error: Workspace not found: missing"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");

    let out = home.run(&["session", "exec", "codes", "--", "true"]);
    assert_code(&out, 4);
    assert!(
        stderr(&out).contains("sandkit session open codes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_is_a_one_line_error_and_writes_nothing() {
    let home = Home::new();
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["run", "ws", "--policy", "npm,,foo", "--", "true"],
            2,
            "invalid policy",
        ),
        (
            &["run", "ws", "--policy", "nosuchpreset", "--", "true"],
            2,
            "nosuchpreset",
        ),
        (&["run", "ws", "--timeout", "abc", "--", "true"], 2, "10m"),
        (&["workspace", "create", "--port", "0"], 2, "0"),
        (&["run", "bad id", "--", "true"], 2, "' '"),
    ];
    for (args, code, needle) in cases {
        let out = home.run(args);
        assert_code(&out, code);
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    assert!(
        !home.sandkit_dir().exists(),
        "nothing was written for bad input"
    );

    let out = home.run(&[
        "--database",
        "postgres://nobody@127.0.0.1:1/nowhere",
        "run",
        "ws",
        "--",
        "true",
    ]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("cannot open the database"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        !home.sandkit_dir().exists(),
        "an unreachable database writes nothing"
    );
}

#[test]
fn concurrent_runs_one_runs_the_other_is_busy_or_waits() {
    let home = Home::new();
    assert_code(&home.run(&["workspace", "create", "--id", "shared"]), 0);
    let slow = [
        "run",
        "shared",
        "--",
        "sh",
        "-c",
        "sleep 2; echo slow >> log.txt",
    ];
    let mut first = home
        .std_cmd()
        .args(slow)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until the first holds the lease.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = stdout(&home.run(&["--json", "session", "status", "shared"]));
        if status.contains("\"command\"") {
            break;
        }
        assert!(Instant::now() < deadline, "first run never took the lease");
        std::thread::sleep(Duration::from_millis(50));
    }
    let busy = home.run(&["run", "shared", "--", "sh", "-c", "echo fast >> log.txt"]);
    assert_code(&busy, 3);
    assert!(stderr(&busy).contains("busy"), "{}", stderr(&busy));
    let waited = home.run(&[
        "run",
        "shared",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo waited >> log.txt",
    ]);
    assert_code(&waited, 0);
    assert!(stderr(&waited).contains("waiting for workspace shared"));
    assert!(first.wait().expect("first").success());
    let log = home.run(&["run", "shared", "--", "cat", "log.txt"]);
    assert_eq!(stdout(&log), "slow\nwaited\n");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn http_get(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let host = rest.split('/').next()?;
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn sessions_work_across_invocations_with_a_real_http_server() {
    let home = Home::new();
    let port = free_port();
    let port_s = port.to_string();
    let out = home.run(&["session", "open", "demo", "--port", &port_s]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("open on workspace demo"),
        "{}",
        stdout(&out)
    );
    assert_code(
        &home.run(&[
            "session",
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "echo served > index.html",
        ]),
        0,
    );
    let started = home.run(&[
        "session",
        "start",
        "demo",
        "--",
        "python3",
        "-m",
        "http.server",
        &port_s,
        "--bind",
        "127.0.0.1",
    ]);
    assert_code(&started, 0);
    let process = stdout(&started).trim().to_owned();
    assert!(!process.is_empty());
    let url_out = home.run(&["session", "url", "demo", &port_s]);
    assert_code(&url_out, 0);
    let url = stdout(&url_out).trim().to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        if let Some(page) = http_get(&url) {
            break page;
        }
        assert!(Instant::now() < deadline, "server never answered on {url}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(page.contains("200") && page.contains("served"), "{page}");
    let listed = stdout(&home.run(&["session", "logs", "demo"]));
    assert!(listed.contains(&process), "{listed}");
    assert_code(&home.run(&["session", "commit", "demo"]), 0);
    // The server stopped with the session and the port is free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} still taken after commit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = home.run(&["run", "demo", "--", "cat", "index.html"]);
    assert_eq!(stdout(&out), "served\n");
}

#[test]
fn discard_keeps_the_last_commit() {
    let home = Home::new();
    assert_code(
        &home.run(&["run", "d", "--", "sh", "-c", "echo kept > f"]),
        0,
    );
    assert_code(&home.run(&["session", "open", "d"]), 0);
    let busy = home.run(&["run", "d", "--", "true"]);
    assert_code(&busy, 3);
    assert!(stderr(&busy).contains("session"), "{}", stderr(&busy));
    assert_code(
        &home.run(&["session", "exec", "d", "--", "sh", "-c", "echo scratch > f"]),
        0,
    );
    assert_code(&home.run(&["session", "discard", "d"]), 0);
    assert_eq!(stdout(&home.run(&["run", "d", "--", "cat", "f"])), "kept\n");
}

#[test]
fn runs_journal_and_idempotency() {
    let home = Home::new();
    let key_run = [
        "run",
        "j",
        "--idempotency-key",
        "once",
        "--",
        "sh",
        "-c",
        "echo ran >> count",
    ];
    assert_code(&home.run(&key_run), 0);
    let again = home.run(&key_run);
    assert_code(&again, 0);
    assert!(stderr(&again).contains("replayed"), "{}", stderr(&again));
    assert_code(
        &home.run(&[
            "run",
            "j",
            "--env",
            "SECRET_VALUE=hunter2",
            "--",
            "sh",
            "-c",
            "exit 3",
        ]),
        3,
    );
    let out = home.run(&["runs", "j", "--jsonl"]);
    assert_code(&out, 0);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "the replay did not run again");
    assert_eq!(lines[0]["status"], "succeeded");
    assert_eq!(lines[1]["exitCode"], 3);
    assert_eq!(lines[1]["envKeys"][0], "SECRET_VALUE");
    assert!(
        !stdout(&out).contains("hunter2"),
        "env values are never stored"
    );
    let table = stdout(&home.run(&["runs", "j"]));
    assert!(table.starts_with("RUN"), "{table}");
    assert_eq!(table.lines().count(), 3);
}

#[test]
fn policies_from_the_shell() {
    let home = Home::new();
    let out = home.run(&["policy", "check", "npm", "https://registry.npmjs.org/react"]);
    assert_code(&out, 0);
    assert!(stdout(&out).starts_with("allowed"));
    let out = home.run(&[
        "policy",
        "check",
        "npm",
        "https://www.npmjs.com/package/react",
    ]);
    assert_code(&out, 1);
    assert!(stdout(&out).starts_with("denied"));
    let out = home.run(&["policy", "show", "github,npm"]);
    assert_code(&out, 0);
    assert!(stdout(&out).starts_with("allow-services:github,npm"));
    let policy_file = home.path().join("p.json");
    std::fs::write(&policy_file, r#"{"mode":"deny-all"}"#).expect("write");
    let spec = format!("@{}", policy_file.display());
    let out = home.run(&["--json", "policy", "show", &spec]);
    assert_code(&out, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["description"], "deny-all");

    // A workspace default the local provider cannot enforce fails closed, before the
    // workspace exists.
    let out = home.run(&["workspace", "create", "--id", "p", "--policy", "npm"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("cannot enforce"), "{}", stderr(&out));
    assert_code(&home.run(&["workspace", "show", "p"]), 4);
    assert_code(&home.run(&["workspace", "create", "--id", "p"]), 0);
    assert_code(&home.run(&["workspace", "set-policy", "p", "allow-all"]), 0);
    assert_code(&home.run(&["run", "p", "--", "true"]), 0);
}

#[test]
fn fork_restore_gc_and_the_journal() {
    let home = Home::new();
    assert_code(
        &home.run(&["run", "src", "--", "sh", "-c", "echo v1 > f"]),
        0,
    );
    let runs = stdout(&home.run(&["runs", "src", "--jsonl"]));
    let first: serde_json::Value =
        serde_json::from_str(runs.lines().next().expect("a run")).expect("json");
    let first_run = first["id"].as_str().expect("id").to_owned();
    assert_code(
        &home.run(&["run", "src", "--", "sh", "-c", "echo v2 > f"]),
        0,
    );

    let out = home.run(&[
        "workspace",
        "fork",
        "src",
        "--id",
        "fork",
        "--at",
        &first_run,
    ]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out).trim(), "fork");
    assert_eq!(
        stdout(&home.run(&["run", "fork", "--", "cat", "f"])),
        "v1\n"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&home.run(&["--json", "workspace", "show", "fork"])))
            .expect("json");
    assert_eq!(shown["parent"], "src");
    let journal = stdout(&home.run(&["runs", "fork", "--jsonl"]));
    let fork_entry: serde_json::Value =
        serde_json::from_str(journal.lines().next().expect("entry")).expect("json");
    assert_eq!(fork_entry["kind"], "fork");
    assert_eq!(fork_entry["workspaceParent"], "src");

    assert_code(&home.run(&["workspace", "restore", "src", &first_run]), 0);
    assert_eq!(stdout(&home.run(&["run", "src", "--", "cat", "f"])), "v1\n");

    // Retention keeps the last three run snapshots and every head.
    for i in 0..4 {
        assert_code(
            &home.run(&["run", "src", "--", "sh", "-c", &format!("echo {i} > g")]),
            0,
        );
    }
    let dry = home.run(&["gc", "--dry-run"]);
    assert_code(&dry, 0);
    assert!(
        stderr(&dry).contains("0 snapshot(s) would delete"),
        "{}",
        stderr(&dry)
    );
    // Manifests only (dot entries are the provider's bookkeeping).
    let snapshots = std::fs::read_dir(home.sandkit_dir().join("local").join("snapshots"))
        .expect("snapshots dir")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert!(
        snapshots <= 5,
        "old snapshots were deleted after commits: {snapshots}"
    );
    assert_eq!(
        stdout(&home.run(&["run", "fork", "--", "cat", "f"])),
        "v1\n",
        "the fork still works"
    );
    let out = home.run(&["workspace", "restore", "src", "run_doesnotexist"]);
    assert_code(&out, 4);
}
