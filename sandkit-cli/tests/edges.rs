//! Edges of the real `sandkit` binary: databases that are down, read-only or password
//! protected; errors that speak CLI; `--wait` limits; validation before effects; exit
//! codes.

mod common;

use std::time::{Duration, Instant};

use common::{Home, assert_code, stderr, stdout};

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_closed_database_port_fails_fast_naming_host_and_port() {
    let home = Home::new();
    let port = closed_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/x");
    let started = Instant::now();
    let out = home.run(&["--database", &url, "runs", "ws"]);
    let took = started.elapsed();
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("connection refused"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        took < Duration::from_secs(2),
        "a closed port answers at once, yet it took {took:?}"
    );
}

#[test]
fn database_passwords_never_reach_the_logs() {
    let Ok(url) = std::env::var("SANDKIT_TEST_MYSQL_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "SANDKIT_TEST_MYSQL_URL is required under CI"
        );
        eprintln!("skipped: SANDKIT_TEST_MYSQL_URL is unset");
        return;
    };
    // The same server with a password (wrong or right, it must not show).
    let with_password = url.replacen("://root@", "://root:s3cret-pw@", 1);
    assert_ne!(with_password, url, "expects a mysql://root@… URL");
    let home = Home::new();
    let out = home
        .cmd()
        .env("RUST_LOG", "trace")
        .args(["--database", &with_password, "runs", "ws"])
        .output()
        .expect("run");
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("s3cret-pw"), "the password leaks:\n{all}");
    // `generate` connects through SeaORM directly: its spans are filtered out too.
    let out = home
        .cmd()
        .env("RUST_LOG", "trace")
        .args([
            "generate",
            "--adapter",
            "sql",
            "--database-url",
            &with_password,
        ])
        .output()
        .expect("run");
    let generated = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !generated.contains("s3cret-pw"),
        "the password leaks:\n{generated}"
    );
    assert!(all.contains("DEBUG"), "verbose logging is on: {all}");
}

#[test]
fn a_read_only_home_still_answers_reads_and_refuses_writes_clearly() {
    let home = Home::new();
    assert_code(&home.run(&["run", "ro", "--", "sh", "-c", "echo hi"]), 0);
    // Read-only for real (root ignores permission bits): run as an unprivileged user
    // when root, with the home left readable by everyone.
    let dir = home.sandkit_dir();
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let chmod = |mode: &str| {
        let status = std::process::Command::new("chmod")
            .args(["-R", mode])
            .arg(home.path())
            .status()
            .expect("chmod");
        assert!(status.success());
    };
    chmod("a+rX,a-w");
    let run = |args: &[&str]| {
        let mut cmd = if is_root {
            let mut cmd = std::process::Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(assert_cmd::cargo::cargo_bin("sandkit"));
            cmd
        } else {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("sandkit"))
        };
        cmd.current_dir(home.path())
            .env_remove("SANDKIT_DATABASE_URL")
            .env_remove("SANDKIT_PROVIDER")
            .env_remove("RUST_LOG")
            .env("SANDKIT_HOME", &dir)
            .args(args)
            .output()
            .expect("run sandkit")
    };
    let runs = run(&["runs", "ro"]);
    let list = run(&["workspace", "list"]);
    let write = run(&["run", "ro", "--", "true"]);
    chmod("u+w");
    assert_code(&runs, 0);
    assert!(stdout(&runs).contains("succeeded"), "{}", stdout(&runs));
    assert_code(&list, 0);
    assert!(stdout(&list).contains("ro"), "{}", stdout(&list));
    assert_code(&write, 1);
    let err = stderr(&write);
    assert!(err.contains("read-only") && err.contains("--home"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn errors_name_cli_commands_not_rust_apis() {
    let home = Home::new();
    assert_code(&home.run(&["workspace", "create", "--id", "w"]), 0);
    let out = home.run(&["session", "exec", "w", "--", "true"]);
    assert_code(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("sandkit session open w"), "{err}");
    assert!(!err.contains("()"), "{err}");

    assert_code(&home.run(&["session", "open", "w"]), 0);
    let busy = home.run(&["run", "w", "--", "true"]);
    assert_code(&busy, 3);
    let err = stderr(&busy);
    assert!(!err.contains("()"), "{err}");
    assert!(
        err.contains("--wait"),
        "the busy refusal says how to wait: {err}"
    );
    assert!(err.contains("sandkit session commit w"), "{err}");
    assert_code(&home.run(&["session", "discard", "w"]), 0);
}

#[test]
fn wait_with_a_limit_gives_up_with_the_busy_code() {
    let home = Home::new();
    assert_code(&home.run(&["session", "open", "held"]), 0);
    let started = Instant::now();
    let out = home.run(&["run", "held", "--wait", "1s", "--", "true"]);
    assert_code(&out, 3);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let err = stderr(&out);
    assert!(
        err.contains("waiting for workspace held (at most 1s)"),
        "{err}"
    );
    assert!(err.contains("gave up waiting"), "{err}");
    let out = home.run(&["session", "open", "held", "--wait", "1s"]);
    assert_code(&out, 3);
    assert!(stderr(&out).contains("gave up waiting"), "{}", stderr(&out));
    assert_code(&home.run(&["session", "discard", "held"]), 0);
    // Bare --wait still waits (the workspace is free now: it just runs).
    assert_code(&home.run(&["run", "held", "--wait", "--", "true"]), 0);
}

#[test]
fn one_line_per_failure_without_colours_or_spurious_warnings() {
    let home = Home::new();
    let out = home.run(&["run", "f", "--", "sh", "-c", "exit 3"]);
    assert_code(&out, 3);
    let out = home.run(&["session", "open", "f"]);
    assert_code(&out, 0);
    let out = home.run(&["session", "commit", "f"]);
    assert_code(&out, 0);
    // A failure inside the unit of work: exactly one error line, no ANSI escapes.
    let out = home.run(&["run", "f", "--cwd", "no-such-dir", "--", "true"]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colours when stderr is not a terminal: {err:?}"
    );
    assert!(!err.contains("ERROR"), "{err}");
    assert!(
        !err.contains("could not delete an ended session directory"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn validation_comes_before_effects_and_already_exists_has_its_own_code() {
    let home = Home::new();
    // An invalid --cwd: refused before anything is journaled (nothing is even created).
    let out = home.run(&["run", "v", "--cwd", "../outside", "--", "true"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--cwd"), "{}", stderr(&out));
    assert!(!home.sandkit_dir().exists(), "nothing was written");

    // A policy the local provider cannot enforce: refused before the workspace exists.
    let out = home.run(&["run", "v", "--policy", "npm", "--", "true"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("cannot enforce"), "{}", stderr(&out));
    assert_code(&home.run(&["workspace", "show", "v"]), 4);
    let out = home.run(&["workspace", "create", "--id", "v", "--policy", "npm"]);
    assert_code(&out, 1);
    assert_code(&home.run(&["workspace", "show", "v"]), 4);
    let out = home.run(&["session", "open", "v", "--policy", "npm"]);
    assert_code(&out, 1);
    assert_code(&home.run(&["workspace", "show", "v"]), 4);

    assert_code(&home.run(&["workspace", "create", "--id", "v"]), 0);
    let out = home.run(&["workspace", "create", "--id", "v"]);
    assert_code(&out, 5);
    assert_code(&home.run(&["--json", "runs", "v"]), 0);
    assert_eq!(stdout(&home.run(&["--json", "runs", "v"])).trim(), "[]");
}

#[test]
fn help_documents_every_exit_code() {
    let out = Home::new().run(&["--help"]);
    assert_code(&out, 0);
    let help = stdout(&out);
    for needle in [
        "Exit codes",
        "already exists",
        "busy",
        "not found",
        "invalid input",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    assert!(help.contains("\n  5 "), "{help}");
}
