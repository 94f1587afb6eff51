//! Secrets never reach a row, a log or an export: every secret value Sandkit resolved
//! for a durable command (injected credentials, env values, the provider's token) is
//! scrubbed — raw and encoded — from errors, stored output and the journal.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Rig, all_runs, new_ws, sh};
use futures::StreamExt;
use sandkit_core::policies::{MapEnv, Policy, presets};
use sandkit_core::{SessionOptions, Workspace};

const GITHUB_TOKEN: &str = "ghp_core_redaction_0001";
const ENV_VALUE: &str = "env-secret-value-0002";
const PROVIDER_TOKEN: &str = "provider-token-0003";

fn forms() -> Vec<(&'static str, String)> {
    vec![
        ("credential", GITHUB_TOKEN.to_owned()),
        (
            "basic header",
            STANDARD.encode(format!("x-access-token:{GITHUB_TOKEN}")),
        ),
        ("env value", ENV_VALUE.to_owned()),
        ("env value base64url", URL_SAFE_NO_PAD.encode(ENV_VALUE)),
        ("provider token", PROVIDER_TOKEN.to_owned()),
        ("provider token base64", STANDARD.encode(PROVIDER_TOKEN)),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for (form, value) in forms() {
        assert!(!text.contains(&value), "{what} leaks the {form}: {text}");
    }
}

fn rig() -> Rig {
    let mut rig = Rig::new();
    rig.env = MapEnv::new().with("GITHUB_TOKEN", GITHUB_TOKEN);
    rig.provider.set_token(PROVIDER_TOKEN);
    rig
}

fn policy() -> Policy {
    Policy::allow_services([presets::github()]).expect("policy")
}

async fn export(ws: &Workspace) -> String {
    ws.journal()
        .map(|e| serde_json::to_string(&e.expect("entry")).expect("json"))
        .collect::<Vec<_>>()
        .await
        .join("\n")
}

#[tokio::test]
async fn a_failure_echoing_secrets_is_scrubbed_from_the_error_row_export_and_logs() {
    let captured = sandkit_testkit::logs::CapturedLogs::trace();

    let rig = rig();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let echoed: Vec<String> = forms().into_iter().map(|(_, v)| v).collect();
    rig.provider
        .set_fault_message(format!("request carried {}", echoed.join(" and ")));
    for fail in [
        |rig: &Rig| rig.provider.fail_next_start(1),
        |rig: &Rig| rig.provider.fail_next_exec(1),
        |rig: &Rig| rig.provider.fail_next_snapshot(1),
    ] {
        fail(&rig);
        let error = ws
            .run_command(sh("true").env("TOKEN", ENV_VALUE).policy(policy()))
            .await
            .expect_err("injected failure");
        let shown = format!("{error} {error:?} {:?}", error.kind());
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_clean("the error", &shown);
    }
    let runs = all_runs(&ws).await;
    assert_eq!(runs.len(), 3);
    for run in &runs {
        assert!(
            run.error
                .as_deref()
                .is_some_and(|e| e.contains("[redacted]"))
        );
        assert_clean("a stored run", &serde_json::to_string(run).expect("json"));
    }
    assert_clean("the journal export", &export(&ws).await);
    let logs = captured.text();
    assert!(
        logs.contains("durable command failed"),
        "capture works: {logs}"
    );
    assert_clean("the logs", &logs);
}

#[tokio::test]
async fn a_secret_the_command_prints_is_scrubbed_in_the_stored_row_only() {
    let rig = rig();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let result = ws
        .run_command(sh("echo got $TOKEN; echo $TOKEN >&2").env("TOKEN", ENV_VALUE))
        .await
        .expect("run");
    // What the caller sees (the live stream and the result) is its own output: unchanged.
    assert_eq!(result.exit_code, 0);
    assert!(result.stdout.contains(ENV_VALUE), "{}", result.stdout);
    let run = &all_runs(&ws).await[0];
    assert_eq!(run.stdout.as_deref(), Some("got [redacted]\n"));
    assert_eq!(run.stderr.as_deref(), Some("[redacted]\n"));
    assert_clean("the journal export", &export(&ws).await);
}

#[tokio::test]
async fn short_values_are_not_redacted() {
    let rig = rig();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    ws.run_command(sh("echo $V").env("V", "short"))
        .await
        .expect("run");
    let run = &all_runs(&ws).await[0];
    assert_eq!(run.stdout.as_deref(), Some("short\n"));
}

#[tokio::test]
async fn session_exec_errors_are_scrubbed_too() {
    let rig = rig();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let session = ws
        .open_session(SessionOptions::new())
        .await
        .expect("session");
    rig.provider
        .set_fault_message(format!("echo {ENV_VALUE} {PROVIDER_TOKEN}"));
    rig.provider.fail_next_exec(1);
    let error = session
        .exec(sh("true").env("TOKEN", ENV_VALUE))
        .await
        .expect_err("injected");
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert_clean("the session error", &shown);
    session.discard().await.expect("discard");
}
