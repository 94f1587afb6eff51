//! A Vercel error that quotes a secret — the API token, an injected credential or a
//! command's env value, raw or encoded — never reaches the returned error, the run row,
//! the journal export or the logs.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use futures::StreamExt;
use sandkit_adapter_memory::MemoryStore;
use sandkit_core::policies::{Policy, Secret, presets};
use sandkit_core::{CommandSpec, RunQuery, Sandkit, WorkspaceSpec};
use sandkit_vercel::Credentials;
use sandkit_vercel::fake::{FAKE_PROJECT_ID, FAKE_TEAM_ID, FakeVercel, Fault};

const API_TOKEN: &str = "vercel-api-token-0042";
const GITHUB_TOKEN: &str = "ghp_github+token/0043";
const ENV_VALUE: &str = "env-value-secret-0044";

/// Every form of every secret a careless server could echo.
fn echoes() -> Vec<(&'static str, String)> {
    let basic = STANDARD.encode(format!("x-access-token:{GITHUB_TOKEN}"));
    vec![
        ("raw api token", API_TOKEN.to_owned()),
        ("raw github token", GITHUB_TOKEN.to_owned()),
        ("basic header base64", basic),
        ("base64 no padding", STANDARD_NO_PAD.encode(GITHUB_TOKEN)),
        ("base64url", URL_SAFE_NO_PAD.encode(API_TOKEN)),
        (
            "percent-encoded",
            GITHUB_TOKEN.replace('+', "%2B").replace('/', "%2F"),
        ),
        ("raw env value", ENV_VALUE.to_owned()),
    ]
}

fn leaks(text: &str) -> Option<String> {
    echoes()
        .into_iter()
        .find(|(_, form)| text.contains(form.as_str()))
        .map(|(what, _)| what.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_echoing_any_form_of_a_secret_is_stored_and_returned_scrubbed() {
    let fake = FakeVercel::start().await;
    // The fake checks its own token; answer every create with an echoing error instead.
    let credentials =
        Credentials::access_token(API_TOKEN, FAKE_TEAM_ID, FAKE_PROJECT_ID).expect("credentials");
    let provider = fake
        .provider_builder()
        .credentials(credentials)
        .build()
        .expect("provider");
    let sandkit = Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(Arc::new(provider))
        .build()
        .expect("sandkit");
    let ws = sandkit
        .create_workspace(WorkspaceSpec::new().id("echo"))
        .await
        .expect("workspace");
    for (what, form) in echoes() {
        fake.inject(
            Fault::status_with_message(400, format!("bad request: got {form} here"))
                .on("POST", "/v3/sandboxes"),
        );
        let policy = Policy::allow_services([presets::github().api_key(Secret::new(GITHUB_TOKEN))])
            .expect("policy");
        let error = ws
            .run_command(
                CommandSpec::new("true")
                    .env("SECRET_ENV", ENV_VALUE)
                    .policy(policy),
            )
            .await
            .expect_err("the create fails");
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("[redacted]"), "{what}: {shown}");
        assert_eq!(leaks(&shown), None, "{what} leaks from the error: {shown}");
    }
    let runs = ws.runs(RunQuery::default()).await.expect("runs");
    assert_eq!(runs.items.len(), echoes().len());
    for run in &runs.items {
        let row = serde_json::to_string(run).expect("row");
        assert!(
            run.error
                .as_deref()
                .is_some_and(|e| e.contains("[redacted]")),
            "{row}"
        );
        assert_eq!(leaks(&row), None, "the stored row leaks: {row}");
    }
    let export: Vec<String> = ws
        .journal()
        .map(|entry| serde_json::to_string(&entry.expect("entry")).expect("json"))
        .collect()
        .await;
    for line in &export {
        assert_eq!(leaks(line), None, "the export leaks: {line}");
    }
}
