//! Runs the `git-agent` binary: on the local provider the GitHub step is refused and
//! explained while the deny-all step runs; on (a fake of) Vercel every policy is
//! enforced and the token is injected by the firewall, never stored.

use std::path::Path;

use sandkit_vercel::fake::{FAKE_PROJECT_ID, FAKE_TEAM_ID, FAKE_TOKEN, FakeVercel};
use serde_json::{Value, json};
use tokio::process::Command;

/// A GitHub token that must never show up in output or in the database.
const GITHUB_TOKEN: &str = "ghp_example_token_never_stored";

/// The example binary with a clean environment.
fn git_agent(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandkit-example-git-agent"));
    for var in sandkit_example_support::ENV_VARS
        .iter()
        .chain(&["GITHUB_TOKEN"])
    {
        cmd.env_remove(var);
    }
    cmd.arg("--home").arg(home).kill_on_drop(true);
    cmd
}

/// Runs to success; returns stdout + stderr (both checked for secrets).
async fn run_ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().await.expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "example failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn journal(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("journal of workspace"))
        .skip(1)
        .take_while(|l| l.starts_with("   "))
        .collect()
}

fn assert_not_in_database(home: &Path, secret: &str) {
    for entry in std::fs::read_dir(home).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("sandkit.db") {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} holds the secret"
            );
        }
    }
}

fn local_enforces_deny_all() -> bool {
    let probe = tempfile::tempdir().unwrap();
    sandkit_local::LocalProvider::new(probe.path())
        .unwrap()
        .enforces_deny_all()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_local_the_github_step_is_refused_and_explained_and_deny_all_runs() {
    let home = tempfile::tempdir().unwrap();
    let (stdout, stderr) = run_ok(git_agent(home.path()).env("GITHUB_TOKEN", GITHUB_TOKEN)).await;

    assert!(stdout.contains("provider: local"), "{stdout}");
    assert!(
        stdout.contains("0. setup: tools installed under allow-all"),
        "{stdout}"
    );
    assert!(
        stdout.contains("has the default policy allow-services:github"),
        "{stdout}"
    );
    // The GitHub step: refused up front, with the reason and the way out.
    let fetch: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("1. fetch"))
        .skip(1)
        .take_while(|l| l.starts_with("   "))
        .collect();
    let fetch = fetch.join("\n");
    assert!(fetch.contains("REFUSED, nothing ran"), "{stdout}");
    assert!(fetch.contains("provider local cannot enforce"), "{stdout}");
    assert!(
        fetch.contains("never runs a command with weaker egress"),
        "{stdout}"
    );
    assert!(fetch.contains("SANDKIT_PROVIDER=vercel"), "{stdout}");
    assert!(
        !fetch.contains("| "),
        "the refused step printed output:\n{stdout}"
    );

    if local_enforces_deny_all() {
        assert!(
            fetch.contains("under deny-all, which it does enforce"),
            "{stdout}"
        );
        assert!(
            stdout.contains("   | tests passed, with no network"),
            "{stdout}"
        );
        assert!(
            stdout.contains("done: fetch refused, tests ran"),
            "{stdout}"
        );
        // Only the deny-all step started: the refused one left no run behind.
        let runs = journal(&stdout);
        assert_eq!(runs.len(), 1, "{stdout}");
        assert!(
            runs[0].ends_with("-> succeeded (exit 0) under deny-all"),
            "{stdout}"
        );
    } else {
        assert!(
            stdout.contains("cannot enforce deny-all either"),
            "{stdout}"
        );
        assert!(
            stdout.contains("done: fetch refused, tests refused"),
            "{stdout}"
        );
        assert!(journal(&stdout).is_empty(), "{stdout}");
    }
    assert!(!stdout.contains(GITHUB_TOKEN) && !stderr.contains(GITHUB_TOKEN));
    assert_not_in_database(home.path(), GITHUB_TOKEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_github_token_the_github_step_names_the_variable() {
    // On a provider that can enforce the GitHub policy, a missing token is named.
    let fake = FakeVercel::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = git_agent(home.path());
    cmd.env("SANDKIT_PROVIDER", "vercel")
        .env("SANDKIT_VERCEL_BASE_URL", fake.uri())
        .env("VERCEL_TOKEN", FAKE_TOKEN)
        .env("VERCEL_TEAM_ID", FAKE_TEAM_ID)
        .env("VERCEL_PROJECT_ID", FAKE_PROJECT_ID)
        .env_remove("GITHUB_TOKEN");
    let (stdout, _) = run_ok(&mut cmd).await;
    assert!(
        stdout.contains("NOT RUN, a credential is missing"),
        "{stdout}"
    );
    assert!(stdout.contains("GITHUB_TOKEN"), "{stdout}");
}

#[tokio::test]
async fn a_malformed_repo_is_refused_before_anything_starts() {
    let home = tempfile::tempdir().unwrap();
    let out = git_agent(home.path())
        .args(["--repo", "not a repo"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not OWNER/NAME"), "{stderr}");
    assert!(!home.path().join("sandkit.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_vercel_every_policy_is_enforced_and_the_token_only_reaches_the_firewall() {
    let fake = FakeVercel::start().await;
    let home = tempfile::tempdir().unwrap();
    let vercel = |cmd: &mut Command| {
        cmd.env("SANDKIT_PROVIDER", "vercel")
            .env("SANDKIT_VERCEL_BASE_URL", fake.uri())
            .env("VERCEL_TOKEN", FAKE_TOKEN)
            .env("VERCEL_TEAM_ID", FAKE_TEAM_ID)
            .env("VERCEL_PROJECT_ID", FAKE_PROJECT_ID)
            .env("GITHUB_TOKEN", GITHUB_TOKEN);
    };
    let mut first = git_agent(home.path());
    vercel(&mut first);
    let (stdout, stderr) = run_ok(&mut first).await;

    assert!(
        stdout.contains(
            "provider vercel enforces: allow-all, deny-all, allow-services with credential headers"
        ),
        "{stdout}"
    );
    // The fetch ran under GitHub-only egress, with the tools of the setup snapshot.
    assert!(
        stdout.contains("   | agent-git 1.0\n   | fix: handle empty input\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("   | tests passed, with no network"),
        "{stdout}"
    );
    assert!(stdout.contains("done: fetch ran, tests ran"), "{stdout}");
    let runs = journal(&stdout);
    assert_eq!(runs.len(), 2, "{stdout}");
    assert!(
        runs[0].ends_with("-> succeeded (exit 0) under allow-services:github"),
        "{stdout}"
    );
    assert!(
        runs[1].ends_with("-> succeeded (exit 0) under deny-all"),
        "{stdout}"
    );

    // Three sandboxes, each created with its own policy: setup (allow-all), fetch
    // (GitHub with the token injected as headers), tests (deny-all).
    let creates = fake.requests_matching("POST", "/v3/sandboxes");
    let policies: Vec<Value> = creates
        .iter()
        .map(|r| r.body.as_ref().unwrap()["networkPolicy"].clone())
        .collect();
    assert_eq!(policies.len(), 3, "{policies:#?}");
    assert_eq!(policies[0], json!({"mode": "allow-all"}));
    assert_eq!(policies[2], json!({"mode": "deny-all"}));
    let allow = policies[1]["allow"]
        .as_object()
        .expect("allow-services form");
    let mut domains: Vec<&str> = allow.keys().map(String::as_str).collect();
    domains.sort_unstable();
    assert_eq!(
        domains,
        ["*.githubusercontent.com", "api.github.com", "github.com"]
    );
    assert_eq!(
        allow["api.github.com"][0]["transform"][0]["headers"]["authorization"],
        json!(format!("Bearer {GITHUB_TOKEN}"))
    );
    // …and nowhere else: not in the output, not in the database.
    assert!(!stdout.contains(GITHUB_TOKEN) && !stderr.contains(GITHUB_TOKEN));
    assert_not_in_database(home.path(), GITHUB_TOKEN);

    // A second process reuses the setup snapshot and the workspace's head.
    let mut second = git_agent(home.path());
    vercel(&mut second);
    let (stdout, _) = run_ok(&mut second).await;
    assert!(
        stdout.contains("   | fix: handle empty input\n   | fix: handle empty input\n"),
        "{stdout}"
    );
    assert_eq!(
        fake.count("POST", "/v3/sandboxes"),
        5,
        "the setup was built again"
    );
}
