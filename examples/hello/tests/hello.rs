//! Runs the `hello` binary as a user does: two OS processes against one home, on the
//! local provider, then on (a fake of) Vercel selected by one environment variable.

use std::path::Path;
use std::process::Output;

use sandkit_vercel::fake::{FAKE_PROJECT_ID, FAKE_TEAM_ID, FAKE_TOKEN, FakeVercel};
use tokio::process::Command;

/// The example binary with a clean environment: no provider choice, no credentials.
fn hello() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandkit-example-hello"));
    for var in sandkit_example_support::ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.kill_on_drop(true);
    cmd
}

async fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.output().await.expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "example failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// The lines `hello.txt` held, as printed after "hello.txt holds:".
fn file_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.contains("hello.txt holds:"))
        .skip(1)
        .take_while(|l| l.starts_with("   ") && !l.contains("journal"))
        .map(str::trim)
        .collect()
}

/// Journal lines (one per durable run).
fn journal(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("journal of workspace"))
        .skip(1)
        .collect()
}

async fn twice(home: &Path, setup: impl Fn(&mut Command)) -> (String, String) {
    let mut first = hello();
    first.arg("--home").arg(home);
    setup(&mut first);
    let first = run_ok(&mut first).await;
    let mut second = hello();
    second.arg("--home").arg(home);
    setup(&mut second);
    let second = run_ok(&mut second).await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_continues_where_the_first_stopped() {
    let home = tempfile::tempdir().unwrap();
    let (first, second) = twice(home.path(), |_| {}).await;

    assert!(first.contains("provider: local"), "{first}");
    assert!(first.contains("1. appended a line to hello.txt in workspace hello"));
    assert!(first.contains("2. restarted and reopened workspace hello (committed)"));
    assert_eq!(file_lines(&first), ["hello from sandkit"], "{first}");
    assert_eq!(journal(&first).len(), 2, "{first}");

    // The second OS process found the workspace in the database and its file in the
    // committed snapshot.
    assert_eq!(
        file_lines(&second),
        ["hello from sandkit", "hello from sandkit"],
        "{second}"
    );
    let runs = journal(&second);
    assert_eq!(runs.len(), 4, "{second}");
    assert!(
        runs.iter().all(|r| r.contains("-> succeeded (exit 0)")),
        "{second}"
    );
    assert!(home.path().join("sandkit.db").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_home_it_runs_in_a_temporary_directory_it_removes() {
    let stdout = run_ok(&mut hello()).await;
    assert_eq!(file_lines(&stdout), ["hello from sandkit"], "{stdout}");
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("provider: local; state in "))
        .expect("the state directory is printed");
    assert!(stdout.contains("pass --home DIR"));
    assert!(!Path::new(dir).exists(), "{dir} was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_variable_switches_it_to_vercel() {
    let fake = FakeVercel::start().await;
    let home = tempfile::tempdir().unwrap();
    let uri = fake.uri();
    let (first, second) = twice(home.path(), |cmd| {
        cmd.env("SANDKIT_PROVIDER", "vercel")
            .env("SANDKIT_VERCEL_BASE_URL", &uri)
            .env("VERCEL_TOKEN", FAKE_TOKEN)
            .env("VERCEL_TEAM_ID", FAKE_TEAM_ID)
            .env("VERCEL_PROJECT_ID", FAKE_PROJECT_ID);
    })
    .await;

    assert!(first.contains("provider: vercel"), "{first}");
    assert_eq!(file_lines(&first), ["hello from sandkit"], "{first}");
    assert_eq!(
        file_lines(&second),
        ["hello from sandkit", "hello from sandkit"],
        "{second}"
    );
    // Four durable commands, each one sandbox started from the last snapshot and one
    // snapshot taken.
    assert_eq!(fake.count("POST", "/v3/sandboxes"), 4);
    assert_eq!(fake.count("POST", "/v2/sandboxes/sessions/*/snapshot"), 4);
    // Local sandboxes were not used.
    assert!(!home.path().join("local").exists());
}

#[tokio::test]
async fn an_unknown_provider_or_missing_credentials_say_what_to_set() {
    let out = hello()
        .env("SANDKIT_PROVIDER", "aws")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("set it to local (default) or vercel"),
        "{stderr}"
    );

    let out = hello()
        .env("SANDKIT_PROVIDER", "vercel")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("VERCEL_OIDC_TOKEN"), "{stderr}");
    assert!(stderr.contains("[credentials]"), "{stderr}");
}
