//! Command streams and waits for an exit code have no request timeout: they end with
//! the command, or, when the connection goes silent, once the session is found stopped
//! (or cannot be checked with these credentials) past its deadline. What the server
//! says on them never echoes a secret.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use sandkit_core::{ErrorKind, LogBuffer, ProviderSession};
use sandkit_testkit::provider_suite::shell;
use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

const SESSION: &str = "/v2/sandboxes/sessions/sbx_s1";
const CMD: &str = "/v2/sandboxes/sessions/sbx_s1/cmd";

/// A session that started an hour ago with a 5-minute timeout (its deadline has
/// passed), checked every 100 ms.
async fn watched_session(server: &MockServer) -> Box<dyn ProviderSession> {
    let provider = common::builder(server)
        .deadline_grace(Duration::from_millis(100))
        .build()
        .expect("provider");
    let hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let mut created = common::created();
    created["session"] = common::with(
        common::session_running(),
        json!({"createdAt": hour_ago, "startedAt": hour_ago, "timeout": 300_000}),
    );
    let session = common::session_from(server, &provider, created).await;
    assert!(
        session.expires_at().expect("deadline") < chrono::Utc::now(),
        "the session's deadline should have passed"
    );
    session
}

/// The session object with `status`.
fn session_in(status: &str) -> serde_json::Value {
    json!({ "session": common::with(common::session_running(), json!({ "status": status })) })
}

/// A command stream that starts with `cmd_1`, prints `out` and exits 0.
fn finished_stream() -> ResponseTemplate {
    common::ndjson(&[
        json!({"command": {"id": "cmd_1", "exitCode": null}}),
        json!({"stream": "stdout", "data": "out"}),
        json!({"command": {"id": "cmd_1", "exitCode": 0}}),
    ])
}

/// The command request answers after `delay` (then runs to exit 0).
async fn command_answers_after(server: &MockServer, delay: Duration) {
    common::api("POST", CMD)
        .respond_with(finished_stream().set_delay(delay))
        .mount(server)
        .await;
}

/// Checks of the session get `answer`, `times` times.
async fn session_checks_get(
    server: &MockServer,
    answer: ResponseTemplate,
    times: impl Into<wiremock::Times>,
) {
    common::api("GET", SESSION)
        .respond_with(answer)
        .expect(times)
        .mount(server)
        .await;
}

/// Guards the test against hanging: a wait that never ends fails here.
async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} still hangs after 30 s"))
}

#[tokio::test]
async fn a_silent_stream_of_a_stopped_session_ends_as_unavailable() {
    let server = MockServer::start().await;
    let session = watched_session(&server).await;
    command_answers_after(&server, Duration::from_secs(600)).await;
    let stopped = ResponseTemplate::new(200).set_body_json(session_in("stopped"));
    session_checks_get(&server, stopped, 1).await;
    let err = bounded("exec", session.exec(shell("sleep 1000")))
        .await
        .expect_err("the session stopped");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    assert!(err.to_string().contains("sbx_s1"), "{err}");
    // The session is known to be over: nothing more is sent.
    let again = session.exec(shell("true")).await.expect_err("ended");
    assert_eq!(again.kind(), &ErrorKind::SessionUnavailable);
    server.verify().await;
}

#[tokio::test]
async fn a_silent_command_in_a_running_session_is_waited_for() {
    let server = MockServer::start().await;
    let session = watched_session(&server).await;
    command_answers_after(&server, Duration::from_millis(800)).await;
    let running = ResponseTemplate::new(200).set_body_json(session_in("running"));
    session_checks_get(&server, running, 1..).await;
    let handle = bounded("exec", session.exec(shell("sleep 1")))
        .await
        .expect("the command started");
    let log = LogBuffer::default();
    assert_eq!(log.pump(handle).await.expect("finished"), 0);
    assert_eq!(log.collect().0, "out");
    server.verify().await;
}

#[tokio::test]
async fn a_wait_for_a_background_command_ends_when_the_session_is_gone() {
    let server = MockServer::start().await;
    let session = watched_session(&server).await;
    common::api("POST", CMD)
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"command": {"id": "cmd_1", "exitCode": null}})),
        )
        .mount(&server)
        .await;
    common::api("GET", &format!("{CMD}/cmd_1/logs"))
        .respond_with(common::ndjson(&[]).set_delay(Duration::from_secs(600)))
        .mount(&server)
        .await;
    let gone = ResponseTemplate::new(410).set_body_json(
        json!({"error": {"code": "sandbox_stopped", "message": "Sandbox is stopped"}}),
    );
    session_checks_get(&server, gone, 1).await;
    let handle = session.spawn(shell("sleep 1000")).await.expect("started");
    let err = bounded("wait", handle.exit)
        .await
        .expect_err("the session is gone");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    server.verify().await;
}

#[tokio::test]
async fn an_error_line_never_echoes_the_commands_env_values() {
    let server = MockServer::start().await;
    let session = common::session(&server).await;
    let secret = "sk-live-do-not-print";
    common::api("POST", CMD)
        .respond_with(common::ndjson(&[
            json!({"command": {"id": "cmd_1", "exitCode": null}}),
            json!({"stream": "error", "data": {"code": "bad_env",
                "message": format!("could not export API_KEY={secret}")}}),
        ]))
        .mount(&server)
        .await;
    let mut spec = shell("echo x");
    spec.env = BTreeMap::from([("API_KEY".to_owned(), secret.to_owned())]);
    let handle = session.exec(spec).await.expect("started");
    let err = LogBuffer::default()
        .pump(handle)
        .await
        .expect_err("error line");
    assert!(!err.to_string().contains(secret), "{err}");
    assert!(err.to_string().contains("[redacted]"), "{err}");
}

#[tokio::test]
async fn a_check_refused_for_the_credentials_ends_the_wait_with_the_auth_error() {
    let server = MockServer::start().await;
    let session = watched_session(&server).await;
    common::api("POST", CMD)
        .respond_with(finished_stream().set_delay(Duration::from_secs(600)))
        .mount(&server)
        .await;
    common::api("GET", SESSION)
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"error": {"code": "unauthorized", "message": "token expired"}}),
            ),
        )
        .mount(&server)
        .await;
    let err = bounded("exec", session.exec(shell("sleep 1000")))
        .await
        .expect_err("cannot be checked");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Provider {
                status: Some(401),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("VERCEL_TOKEN"), "{err}");
}

#[tokio::test]
async fn a_stopped_session_on_the_stream_stays_unavailable_whatever_the_env_holds() {
    let server = MockServer::start().await;
    let session = common::session(&server).await;
    common::api("POST", CMD)
        .respond_with(common::ndjson(&[
            json!({"command": {"id": "cmd_1", "exitCode": null}}),
            json!({"stream": "error", "data": {"code": "sandbox_stopped",
                "message": "the sandbox stopped"}}),
        ]))
        .mount(&server)
        .await;
    let mut spec = shell("echo x");
    // A value that occurs inside the error code must not garble its meaning.
    spec.env = BTreeMap::from([("ENVIRONMENT".to_owned(), "sandbox".to_owned())]);
    let handle = session.exec(spec).await.expect("started");
    let err = LogBuffer::default()
        .pump(handle)
        .await
        .expect_err("stopped");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
}
