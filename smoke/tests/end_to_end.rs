//! The `sandkit-smoke` binary end to end: one quick scenario really runs (with its
//! child processes) on both providers, and the report's shape and exit codes hold.

use std::process::{Command, Output};

fn smoke(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandkit-smoke"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run sandkit-smoke")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_durability_scenario_passes_on_sqlite_with_both_providers() {
    let out = smoke(&["--scenario", "durability", "--backend", "sqlite"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    for backend in ["vercel-fake/sqlite", "local/sqlite"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("PASS  durability") && l.contains(backend)),
            "no PASS line for {backend}:\n{text}"
        );
    }
    assert_eq!(lines.last(), Some(&"2 passed, 0 failed"), "{text}");
}

#[test]
fn an_unreachable_database_server_fails_its_runs_and_the_exit_code() {
    let out = Command::new(env!("CARGO_BIN_EXE_sandkit-smoke"))
        .args(["--scenario", "durability", "--backend", "local/postgres"])
        .env(
            "SANDKIT_TEST_POSTGRES_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .expect("run sandkit-smoke");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL  durability") && l.contains("SANDKIT_TEST_POSTGRES_URL")),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("0 passed, 1 failed"), "{text}");
}

#[test]
fn selections_are_listed_and_bad_ones_refused() {
    let listed = smoke(&["--list", "--backend", "local"]);
    assert!(listed.status.success());
    let text = stdout(&listed);
    assert!(
        text.contains("crash-recovery") && text.contains("* local/mysql"),
        "{text}"
    );
    assert!(!text.contains("* vercel-fake/sqlite"), "{text}");

    let bad = smoke(&["--scenario", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scenario \"nope\""));
}
