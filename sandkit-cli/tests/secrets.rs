//! The real `sandkit` binary never prints or stores a secret: a provider error quoting
//! the API token (raw or as a Basic header's base64) or a command's env value reaches
//! neither stderr, nor the stored `runs.error`, nor `sandkit runs --json`; a command's
//! env secret echoed in its own output is scrubbed in the stored copy only.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Home, assert_code, stderr, stdout};
use sandkit_vercel::fake::{FAKE_PROJECT_ID, FAKE_TEAM_ID, FakeVercel, Fault};

const API_TOKEN: &str = "vercel-cli-token-0099";
const ENV_VALUE: &str = "cli-env-secret-0100";
const GITHUB_TOKEN: &str = "ghp_cli_secret_0101";

/// The Basic header the github preset injects for github.com.
fn basic() -> String {
    STANDARD.encode(format!("x-access-token:{GITHUB_TOKEN}"))
}

fn forms() -> Vec<String> {
    vec![
        API_TOKEN.to_owned(),
        STANDARD.encode(API_TOKEN),
        GITHUB_TOKEN.to_owned(),
        basic(),
        ENV_VALUE.to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for form in forms() {
        assert!(!text.contains(&form), "{what} leaks {form}: {text}");
    }
}

#[test]
fn a_provider_error_quoting_the_token_is_scrubbed_everywhere() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fake = runtime.block_on(FakeVercel::start());
    let echo = format!(
        "invalid credentials {API_TOKEN} ({}), header Basic {}, token {GITHUB_TOKEN}, env {ENV_VALUE}",
        STANDARD.encode(API_TOKEN),
        basic()
    );
    fake.inject(Fault::status_with_message(400, echo).on("POST", "/v3/sandboxes"));
    let home = Home::new();
    let vercel = |args: &[&str]| {
        home.cmd()
            .env("SANDKIT_VERCEL_BASE_URL", fake.uri())
            .env("VERCEL_TOKEN", API_TOKEN)
            .env("VERCEL_TEAM_ID", FAKE_TEAM_ID)
            .env("VERCEL_PROJECT_ID", FAKE_PROJECT_ID)
            .env("GITHUB_TOKEN", GITHUB_TOKEN)
            .env_remove("VERCEL_OIDC_TOKEN")
            .env("RUST_LOG", "trace")
            .args(["--provider", "vercel"])
            .args(args)
            .output()
            .expect("run sandkit")
    };
    let env = format!("K={ENV_VALUE}");
    let out = vercel(&[
        "run", "ws", "--policy", "github", "--env", &env, "--", "true",
    ]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("[redacted]"), "{err}");
    assert_clean("stderr", &err);
    assert_clean("stdout", &stdout(&out));

    let out = vercel(&["--json", "runs", "ws"]);
    assert_code(&out, 0);
    let json = stdout(&out);
    assert!(json.contains("[redacted]"), "the error is listed: {json}");
    assert_clean("runs --json", &json);
    let out = vercel(&["runs", "ws", "--jsonl"]);
    assert_clean("runs --jsonl", &stdout(&out));

    let db = std::fs::read(home.sandkit_dir().join("sandkit.db")).expect("db");
    let wal = std::fs::read(home.sandkit_dir().join("sandkit.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert_clean("the database file", &String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn a_command_echoing_its_env_secret_is_stored_scrubbed_but_shown_live() {
    let home = Home::new();
    let out = home.run(&[
        "run",
        "ws",
        "--env",
        &format!("TOKEN={ENV_VALUE}"),
        "--",
        "sh",
        "-c",
        "echo token=$TOKEN",
    ]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), format!("token={ENV_VALUE}\n"));
    let out = home.run(&["--json", "runs", "ws"]);
    assert_code(&out, 0);
    let json = stdout(&out);
    assert!(json.contains("token=[redacted]"), "{json}");
    assert_clean("runs --json", &json);
}
