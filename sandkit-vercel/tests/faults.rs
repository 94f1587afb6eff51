//! Retries and error mapping: transient faults recover without running a command twice,
//! permanent ones become the typed errors of the contract (§3–4).

mod common;

use std::time::{Duration, Instant};

use sandkit_core::{
    ErrorKind, ExecSpec, LogBuffer, Provider, ProviderSession, SessionRef, SnapshotRef,
};
use sandkit_testkit::provider_suite::{fresh, sh, shell};
use sandkit_vercel::fake::{FAKE_PROJECT_ID, FAKE_TEAM_ID, FakeVercel, Fault};
use sandkit_vercel::{Credentials, VercelProvider};
use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

const CMD: &str = "/v2/sandboxes/sessions/*/cmd";

async fn started(fake: &FakeVercel) -> Box<dyn ProviderSession> {
    fake.provider().start(fresh("faults")).await.expect("start")
}

/// Runs `echo run >> runs.txt` and returns how many times it ran in total.
async fn append_run(session: &dyn ProviderSession) -> Result<usize, sandkit_core::Error> {
    let handle = session.exec(shell("echo run >> runs.txt")).await?;
    let code = LogBuffer::default().pump(handle).await?;
    assert_eq!(code, 0);
    Ok(sh(session, "cat runs.txt").await.stdout.lines().count())
}

#[tokio::test]
async fn two_503s_then_success_run_the_command_once() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::status(503).on("POST", CMD).times(2));
    assert_eq!(append_run(&*session).await.expect("recovered"), 1);
    // Two refused attempts, the successful one, and the `cat`.
    assert_eq!(fake.count("POST", CMD), 4);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::rate_limited(1).on("POST", CMD));
    let began = Instant::now();
    assert_eq!(append_run(&*session).await.expect("recovered"), 1);
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(fake.count("POST", CMD), 3);
}

#[tokio::test]
async fn a_long_retry_after_is_rate_limited_at_once() {
    let fake = FakeVercel::start().await;
    fake.inject(Fault::rate_limited(60).on("POST", "/v3/sandboxes"));
    let began = Instant::now();
    let err = fake
        .provider()
        .start(fresh("faults"))
        .await
        .expect_err("rate limited");
    assert_eq!(
        err.kind(),
        &ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        },
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(fake.count("POST", "/v3/sandboxes"), 1);
}

#[tokio::test]
async fn persistent_refusals_stop_after_three_attempts() {
    let fake = FakeVercel::start().await;
    fake.inject(Fault::status(503).on("POST", "/v3/sandboxes").times(10));
    let err = fake
        .provider()
        .start(fresh("faults"))
        .await
        .expect_err("503");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Provider {
                status: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(fake.count("POST", "/v3/sandboxes"), 3);
}

#[tokio::test]
async fn an_ambiguous_server_error_on_a_create_is_not_retried() {
    // A 500/502/504 may come after the backend created the sandbox: sending the create
    // again could start a second one, so it is reported.
    let fake = FakeVercel::start().await;
    fake.inject(Fault::status(502).on("POST", "/v3/sandboxes").times(1));
    let err = fake
        .provider()
        .start(fresh("faults"))
        .await
        .expect_err("502");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Provider {
                status: Some(502),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fake.count("POST", "/v3/sandboxes"), 1);
    // Reads are still retried on any 5xx.
    let session = fake.provider().start(fresh("faults")).await.expect("start");
    let reference = session.session_ref();
    fake.inject(
        Fault::status(500)
            .on("GET", "/v2/sandboxes/sessions/*")
            .times(2),
    );
    fake.provider()
        .attach(&reference)
        .await
        .expect("attach after two 500s");
}

#[tokio::test]
async fn a_dropped_stream_is_an_error_and_the_command_is_not_sent_again() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::drop_stream().on("POST", CMD));
    let handle = session
        .exec(shell("echo run >> runs.txt"))
        .await
        .expect("started");
    let err = LogBuffer::default()
        .pump(handle)
        .await
        .expect_err("stream ended early");
    assert_eq!(
        err.kind(),
        &ErrorKind::Provider {
            status: None,
            code: Some("stream_ended_early".into())
        },
        "{err}"
    );
    assert_eq!(fake.count("POST", CMD), 1);
    assert_eq!(sh(&*session, "cat runs.txt").await.stdout, "run\n");
}

#[tokio::test]
async fn a_sandbox_created_behind_a_gateway_error_is_used_not_leaked() {
    let fake = FakeVercel::start().await;
    fake.inject(Fault::fail_after(502).on("POST", "/v3/sandboxes"));
    let session = fake
        .provider()
        .start(fresh("faults"))
        .await
        .expect("the sandbox was created");
    assert_eq!(
        fake.count("POST", "/v3/sandboxes"),
        1,
        "never created twice"
    );
    let looked_up = fake.requests_matching("GET", "/v2/sandboxes/*");
    assert_eq!(looked_up.len(), 1, "found by its name");
    assert!(
        looked_up[0].path.contains("/sandkit-"),
        "{:?}",
        looked_up[0].path
    );
    assert_eq!(
        fake.session_status(&session.session_ref().id),
        Some("running")
    );
    assert_eq!(sh(&*session, "echo ok").await.stdout, "ok\n");
}

#[tokio::test]
async fn a_connection_lost_after_sending_a_command_is_not_retried() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::disconnect().on("POST", CMD));
    let err = session
        .exec(shell("echo run >> runs.txt"))
        .await
        .expect_err("disconnect");
    assert!(
        matches!(err.kind(), ErrorKind::Provider { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not retried"), "{err}");
    assert_eq!(fake.count("POST", CMD), 1);
}

#[tokio::test]
async fn a_connection_lost_on_a_read_is_retried() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::disconnect().on("GET", "/v2/sandboxes/sessions/*"));
    let attached = fake
        .provider()
        .attach(&session.session_ref())
        .await
        .expect("attach after a retry");
    assert_eq!(attached.session_ref(), session.session_ref());
    assert_eq!(fake.count("GET", "/v2/sandboxes/sessions/*"), 2);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_a_read_is_retried() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::delay(Duration::from_secs(3)).on("GET", "/v2/sandboxes/sessions/*"));
    let provider = fake
        .provider_builder()
        .request_timeout(Duration::from_millis(500))
        .build()
        .expect("provider");
    provider
        .attach(&session.session_ref())
        .await
        .expect("attach after a retry");
    assert_eq!(fake.count("GET", "/v2/sandboxes/sessions/*"), 2);
}

#[tokio::test]
async fn an_unreachable_api_is_a_provider_error_naming_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let provider = VercelProvider::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .credentials(Credentials::access_token("tok", "team_abc", "prj_123").expect("creds"))
        .retry(common::fast_retry())
        .build()
        .expect("provider");
    let err = provider
        .start(fresh("faults"))
        .await
        .expect_err("unreachable");
    assert!(
        matches!(err.kind(), ErrorKind::Provider { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn calls_on_a_stopped_session_are_session_unavailable() {
    let fake = FakeVercel::start().await;
    let first = started(&fake).await;
    let second = fake
        .provider()
        .attach(&first.session_ref())
        .await
        .expect("attach");
    first.stop().await.expect("stop");
    let err = second.exec(shell("echo x")).await.expect_err("410");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    assert_eq!(
        second.snapshot().await.expect_err("ended").kind(),
        &ErrorKind::SessionUnavailable
    );
    assert_eq!(
        fake.session_status(&first.session_ref().id),
        Some("stopped")
    );
}

#[tokio::test]
async fn an_expired_snapshot_is_unavailable() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    sh(&*session, "echo x > x.txt").await;
    let snap = session.snapshot().await.expect("snapshot");
    assert!(fake.expire_snapshot(&snap.id));
    let mut spec = fresh("faults");
    spec.from = Some(snap);
    let err = fake.provider().start(spec).await.expect_err("expired");
    assert_eq!(err.kind(), &ErrorKind::SnapshotUnavailable, "{err}");
}

const SNAPSHOT: &str = "/v2/sandboxes/sessions/*/snapshot";

#[tokio::test]
async fn a_snapshot_taken_behind_a_gateway_error_is_found_not_lost() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    sh(&*session, "echo kept > kept.txt").await;
    fake.inject(Fault::fail_after(502).on("POST", SNAPSHOT));
    let snap = session.snapshot().await.expect("the snapshot was taken");
    assert_eq!(fake.count("POST", SNAPSHOT), 1, "never sent twice");
    assert_eq!(
        fake.snapshots_of(&session.session_ref().id),
        vec![snap.id.clone()]
    );
    let mut spec = fresh("faults");
    spec.from = Some(snap);
    let restored = fake.provider().start(spec).await.expect("restore");
    assert_eq!(sh(&*restored, "cat kept.txt").await.stdout, "kept\n");
}

#[tokio::test]
async fn a_snapshot_refused_with_a_server_error_is_reported_and_the_session_lives_on() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    sh(&*session, "echo v1 > f").await;
    fake.inject(Fault::status(500).on("POST", SNAPSHOT));
    let err = session.snapshot().await.expect_err("not taken");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Provider {
                status: Some(500),
                ..
            }
        ),
        "{err}"
    );
    assert!(fake.snapshots_of(&session.session_ref().id).is_empty());
    assert_eq!(sh(&*session, "cat f").await.stdout, "v1\n", "still running");
}

/// Waits (bounded) until the fake reports `status` for session `id`.
async fn wait_for_status(fake: &FakeVercel, id: &str, status: &str) {
    for _ in 0..500 {
        if fake.session_status(id) == Some(status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "session {id} never became {status}: {:?}",
        fake.session_status(id)
    );
}

#[tokio::test]
async fn a_session_being_snapshotted_is_awaited_then_unavailable() {
    let fake = FakeVercel::start().await;
    fake.set_snapshot_duration(Duration::from_millis(1500));
    let owner = started(&fake).await;
    let other = fake
        .provider()
        .attach(&owner.session_ref())
        .await
        .expect("attach");
    let id = owner.session_ref().id;
    let snapshot = tokio::spawn(async move { owner.snapshot().await });
    wait_for_status(&fake, &id, "snapshotting").await;
    fake.clear_requests();
    let err = other.exec(shell("echo x")).await.expect_err("422");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    assert!(err.to_string().contains("sandbox_snapshotting"), "{err}");
    // The client polled the session until the snapshot finished.
    assert!(fake.count("GET", "/v2/sandboxes/sessions/*") >= 2);
    assert_eq!(fake.session_status(&id), Some("stopped"));
    snapshot.await.expect("task").expect("snapshot");
}

#[tokio::test]
async fn a_stopping_session_is_awaited_then_unavailable() {
    let fake = FakeVercel::start().await;
    fake.set_stop_duration(Duration::from_millis(1500));
    let owner = started(&fake).await;
    let other = fake
        .provider()
        .attach(&owner.session_ref())
        .await
        .expect("attach");
    let id = owner.session_ref().id;
    let stop = tokio::spawn(async move { owner.stop().await });
    wait_for_status(&fake, &id, "stopping").await;
    let err = other
        .set_policy(&sandkit_policies::FirewallRules::DenyAll)
        .await
        .expect_err("422");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err}");
    assert!(err.to_string().contains("sandbox_stopping"), "{err}");
    stop.await.expect("task").expect("stop");
}

#[tokio::test]
async fn a_rejected_token_names_the_variable_to_check() {
    let fake = FakeVercel::start().await;
    let provider = fake
        .provider_builder()
        .credentials(
            Credentials::access_token("wrong-token-123", FAKE_TEAM_ID, FAKE_PROJECT_ID)
                .expect("creds"),
        )
        .build()
        .expect("provider");
    let err = provider.start(fresh("faults")).await.expect_err("401");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Provider {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert!(text.contains("VERCEL_TOKEN"), "{text}");
    assert!(!text.contains("wrong-token-123"), "{text}");
    assert_eq!(fake.count("POST", "/v3/sandboxes"), 1, "401 is not retried");
}

#[tokio::test]
async fn a_rejected_oidc_token_says_to_refresh_it() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"code": "unauthorized"}})),
        )
        .mount(&server)
        .await;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"owner_id":"team_abc","project_id":"prj_123"}"#);
    let creds = Credentials::oidc(format!("eyJhbGciOiJSUzI1NiJ9.{claims}.sig")).expect("oidc");
    let provider = VercelProvider::builder()
        .base_url(server.uri())
        .credentials(creds)
        .build()
        .expect("provider");
    let err = provider.start(fresh("faults")).await.expect_err("401");
    assert!(err.to_string().contains("VERCEL_OIDC_TOKEN"), "{err}");
    assert!(err.to_string().contains("vercel env pull"), "{err}");
}

#[tokio::test]
async fn a_forbidden_team_names_team_and_project() {
    let fake = FakeVercel::start().await;
    let provider = fake
        .provider_builder()
        .credentials(
            Credentials::access_token("tok", "team_other", FAKE_PROJECT_ID).expect("creds"),
        )
        .build()
        .expect("provider");
    let err = provider.start(fresh("faults")).await.expect_err("403");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Provider {
                status: Some(403),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("VERCEL_TEAM_ID") && text.contains("team_other"),
        "{text}"
    );
    assert!(text.contains("VERCEL_PROJECT_ID"), "{text}");
}

#[tokio::test]
async fn unknown_processes_are_not_found() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    assert_eq!(
        session.kill("cmd_nope").await.expect_err("404").kind(),
        &ErrorKind::NotFound
    );
    assert_eq!(
        session
            .process_logs("cmd_nope")
            .await
            .err()
            .map(|e| e.kind().clone()),
        Some(ErrorKind::NotFound)
    );
}

#[tokio::test]
async fn other_statuses_carry_the_server_message() {
    let server = MockServer::start().await;
    common::api("POST", "/v3/sandboxes")
        .respond_with(ResponseTemplate::new(402).set_body_json(json!({"error": {
            "code": "payment_required", "message": "Your account is soft-blocked."}})))
        .expect(1)
        .mount(&server)
        .await;
    let err = common::provider(&server)
        .start(fresh("faults"))
        .await
        .expect_err("402");
    assert_eq!(
        err.kind(),
        &ErrorKind::Provider {
            status: Some(402),
            code: Some("payment_required".into())
        }
    );
    assert!(
        err.to_string().contains("Your account is soft-blocked."),
        "{err}"
    );
    assert!(!err.is_retryable());
    server.verify().await;
}

#[tokio::test]
async fn an_error_line_and_a_wrong_content_type_are_typed_errors() {
    let server = MockServer::start().await;
    let session = common::session(&server).await;
    let guard = common::api("POST", "/v2/sandboxes/sessions/sbx_s1/cmd")
        .respond_with(common::ndjson(&[
            json!({"command": {"id": "cmd_2", "exitCode": null}}),
            json!({"stream": "stdout", "data": "partial"}),
            json!({"stream": "error", "data": {"code": "sandbox_stream_closed",
                "message": "Sandbox stream was closed and is not accepting commands."}}),
        ]))
        .expect(1)
        .mount_as_scoped(&server)
        .await;
    let handle = session.exec(shell("echo x")).await.expect("started");
    let log = LogBuffer::default();
    let err = log.pump(handle).await.expect_err("error line");
    assert_eq!(
        err.kind(),
        &ErrorKind::Provider {
            status: None,
            code: Some("sandbox_stream_closed".into())
        }
    );
    assert_eq!(log.collect().0, "partial");
    drop(guard);

    common::api("POST", "/v2/sandboxes/sessions/sbx_s1/cmd")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"command": {"id": "cmd_3"}})))
        .expect(1)
        .mount(&server)
        .await;
    let err = session.exec(shell("echo x")).await.expect_err("not ndjson");
    assert!(err.to_string().contains("application/x-ndjson"), "{err}");
    server.verify().await;
}

#[tokio::test]
async fn invalid_input_is_rejected_before_any_request() {
    let fake = FakeVercel::start().await;
    let provider = fake.provider();
    let mut bad_specs = Vec::new();
    let mut too_many = fresh("faults");
    too_many.ports = (3000..3016).collect();
    bad_specs.push(too_many);
    let mut low_port = fresh("faults");
    low_port.ports = vec![80];
    bad_specs.push(low_port);
    let mut twice = fresh("faults");
    twice.ports = vec![3000, 3000];
    bad_specs.push(twice);
    let mut short = fresh("faults");
    short.timeout = Duration::from_millis(500);
    bad_specs.push(short);
    let mut long = fresh("faults");
    long.timeout = Duration::from_secs(25 * 3600);
    bad_specs.push(long);
    let mut odd = fresh("faults");
    odd.vcpus = Some(3);
    bad_specs.push(odd);
    let mut foreign = fresh("faults");
    foreign.from = Some(SnapshotRef {
        provider: "local".into(),
        id: "snap_1".into(),
    });
    bad_specs.push(foreign);
    for spec in bad_specs {
        let err = provider.start(spec).await.expect_err("invalid");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
    }
    let foreign_session = SessionRef {
        provider: "local".into(),
        id: "sbx_1".into(),
    };
    assert_eq!(
        provider
            .attach(&foreign_session)
            .await
            .err()
            .map(|e| e.kind().clone()),
        Some(ErrorKind::InvalidInput)
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());

    let session = provider.start(fresh("faults")).await.expect("start");
    fake.clear_requests();
    let bad_exec = [
        ExecSpec::default(),
        ExecSpec {
            timeout: Some(Duration::from_millis(50)),
            ..shell("echo x")
        },
        ExecSpec {
            env: sandkit_core::env_map([("A=B", "x")]),
            ..shell("echo x")
        },
    ];
    for spec in bad_exec {
        assert_eq!(
            session.exec(spec.clone()).await.expect_err("exec").kind(),
            &ErrorKind::InvalidInput
        );
        assert_eq!(
            session.spawn(spec).await.expect_err("spawn").kind(),
            &ErrorKind::InvalidInput
        );
    }
    assert_eq!(
        session
            .extend(Duration::from_millis(10))
            .await
            .expect_err("extend")
            .kind(),
        &ErrorKind::InvalidInput
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[tokio::test]
async fn a_session_deleted_outside_sandkit_is_unavailable_not_missing() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::status(404).on("POST", "/v2/sandboxes/sessions/*/network-policy"));
    fake.inject(Fault::status(404).on("GET", "/v2/sandboxes/sessions/*"));
    let err = session
        .set_policy(&sandkit_core::policies::FirewallRules::DenyAll)
        .await
        .expect_err("404");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable, "{err:?}");
    // Stopping a session that no longer exists is already done.
    fake.inject(Fault::status(404).on("POST", "/v2/sandboxes/sessions/*/stop"));
    session.stop().await.expect("stop of a gone session");
}

/// A 404 from a session-level route while the session itself answers as running is a
/// missing endpoint, not a lost session: NotFound, and the session stays usable.
#[tokio::test]
async fn a_missing_endpoint_is_not_reported_as_a_lost_session() {
    let fake = FakeVercel::start().await;
    let session = started(&fake).await;
    fake.inject(Fault::status(404).on("POST", "/v2/sandboxes/sessions/*/network-policy"));
    let err = session
        .set_policy(&sandkit_core::policies::FirewallRules::DenyAll)
        .await
        .expect_err("404");
    assert_eq!(err.kind(), &ErrorKind::NotFound, "{err:?}");
    assert!(!err.to_string().contains("no longer exists"), "{err}");
    let ran = sh(&*session, "echo alive").await;
    assert_eq!(ran.stdout, "alive\n", "the session is still usable");
}
