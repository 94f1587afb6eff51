//! Credentials never reach logs, errors or `Debug` output: the API token, header values
//! injected by a policy, and command environment values.

mod common;

use std::collections::BTreeMap;

use common::{created, ndjson, spec};
use sandkit_core::{ExecSpec, LogBuffer, Provider, env_map};
use sandkit_policies::{DomainRule, FirewallRules, HeaderRule, Secret};
use sandkit_vercel::{Credentials, VercelProvider};
use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

const TOKEN: &str = "vercel-token-SECRET-0001";
const HEADER_SECRET: &str = "Bearer ghp_SECRET_0002";
const ENV_SECRET: &str = "env-SECRET-0003";

fn rules() -> FirewallRules {
    let mut headers = BTreeMap::new();
    headers.insert("authorization".to_owned(), Secret::new(HEADER_SECRET));
    FirewallRules::Allow(vec![DomainRule {
        domain: "api.github.com".into(),
        service_ids: vec!["github".into()],
        rules: vec![HeaderRule { headers }],
    }])
}

fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, HEADER_SECRET, ENV_SECRET] {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

#[tokio::test]
async fn secrets_stay_out_of_logs_errors_and_debug() {
    let captured = sandkit_testkit::logs::CapturedLogs::trace();

    let server = MockServer::start().await;
    let bearer = format!("Bearer {TOKEN}");
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v3/sandboxes"))
        .and(wiremock::matchers::header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(created()))
        .mount(&server)
        .await;
    wiremock::Mock::given(wiremock::matchers::path(
        "/v2/sandboxes/sessions/sbx_s1/cmd",
    ))
    .respond_with(ndjson(&[
        json!({"command": {"id": "cmd_1", "exitCode": null}}),
        json!({"stream": "stdout", "data": "ok\n"}),
        json!({"command": {"id": "cmd_1", "exitCode": 0}}),
    ]))
    .mount(&server)
    .await;
    // A server that echoes what it was sent in its error message.
    wiremock::Mock::given(wiremock::matchers::path(
        "/v2/sandboxes/sessions/sbx_s1/network-policy",
    ))
    .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
        "code": "bad_request",
        "message": format!("invalid header value {HEADER_SECRET} (token {TOKEN})")
    }})))
    .mount(&server)
    .await;
    wiremock::Mock::given(wiremock::matchers::path(
        "/v2/sandboxes/sessions/sbx_s1/extend-timeout",
    ))
    .respond_with(
        ResponseTemplate::new(401).set_body_json(json!({"error": {"code": "unauthorized"}})),
    )
    .mount(&server)
    .await;

    let credentials = Credentials::access_token(TOKEN, "team_abc", "prj_123").expect("creds");
    let provider = VercelProvider::builder()
        .base_url(server.uri())
        .credentials(credentials.clone())
        .retry(common::fast_retry())
        .build()
        .expect("provider");
    let mut start = spec();
    start.rules = rules();
    let session = provider.start(start.clone()).await.expect("start");
    let exec = ExecSpec {
        command: "sh".into(),
        args: vec!["-c".into(), "echo ok".into()],
        env: env_map([("API_KEY", ENV_SECRET)]),
        ..ExecSpec::default()
    };
    let handle = session.exec(exec.clone()).await.expect("exec");
    assert_eq!(LogBuffer::default().pump(handle).await.expect("exit"), 0);
    let policy_error = session.set_policy(&rules()).await.expect_err("400");
    assert!(
        policy_error.to_string().contains("[redacted]"),
        "{policy_error}"
    );
    let auth_error = session
        .extend(std::time::Duration::from_secs(60))
        .await
        .expect_err("401");

    let mut outputs = vec![
        ("provider debug", format!("{provider:?}")),
        ("credentials debug", format!("{credentials:?}")),
        ("session debug", format!("{session:?}")),
        ("start spec debug", format!("{start:?}")),
        ("exec spec debug", format!("{exec:?}")),
    ];
    for (name, err) in [("policy error", &policy_error), ("auth error", &auth_error)] {
        outputs.push((name, format!("{err} {err:?}")));
    }
    for (what, text) in &outputs {
        assert_clean(what, text);
    }
    let logs = captured.text();
    assert!(
        logs.contains("vercel sandbox started"),
        "capture works: {logs}"
    );
    assert!(
        logs.contains("vercel api call"),
        "requests are logged: {logs}"
    );
    assert_clean("tracing output", &logs);
}
