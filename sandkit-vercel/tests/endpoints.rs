//! One wiremock test per endpoint: method, path, query, headers and body exactly as the
//! contract (§5, §11) says, and lenient parsing of the answers (unknown fields ignored).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::*;
use futures::StreamExt;
use sandkit_core::{
    ErrorKind, ExecSpec, LogBuffer, Provider, SessionRef, SnapshotRef, StdStream, env_map,
};
use sandkit_policies::{DomainRule, FirewallRules, HeaderRule, Secret};
use serde_json::json;
use wiremock::matchers::{body_json, query_param};
use wiremock::{MockServer, Request, ResponseTemplate};

fn no_body(request: &Request) -> bool {
    request.body.is_empty()
}

#[tokio::test]
async fn create_sends_the_contract_body_and_parses_the_answer() {
    let server = MockServer::start().await;
    api("POST", "/v3/sandboxes")
        .and(CreateBody(json!({
            "projectId": "prj_123",
            "ports": [3000],
            "timeout": 300000,
            "resources": {"vcpus": 2},
            "persistent": false,
            "networkPolicy": {"mode": "allow-all"},
            "tags": {"sandkit-workspace": "ws-1"},
            "region": "iad1"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(created()))
        .expect(1)
        .mount(&server)
        .await;
    let provider = provider_builder(&server)
        .region("iad1")
        .build()
        .expect("provider");
    let session = provider.start(spec()).await.expect("start");
    assert_eq!(
        session.session_ref(),
        SessionRef {
            provider: "vercel".into(),
            id: "sbx_s1".into()
        }
    );
    assert_eq!(
        session.expires_at(),
        Utc.timestamp_millis_opt(1_787_306_401_000 + 300_000)
            .single()
    );
    assert_eq!(
        session.url(3000).await.expect("url"),
        "https://sb-abc3000.vercel.run"
    );
    let err = session.url(4000).await.expect_err("unknown port");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    server.verify().await;
}

fn provider_builder(server: &MockServer) -> sandkit_vercel::VercelProviderBuilder {
    sandkit_vercel::VercelProvider::builder()
        .base_url(server.uri())
        .credentials(
            sandkit_vercel::Credentials::access_token("tok", "team_abc", "prj_123").expect("creds"),
        )
        .retry(fast_retry())
}

#[tokio::test]
async fn create_from_a_snapshot_with_an_injected_header_policy() {
    let server = MockServer::start().await;
    api("POST", "/v3/sandboxes")
        .and(CreateBody(json!({
            "projectId": "prj_123",
            "source": {"type": "snapshot", "snapshotId": "snap_1"},
            "ports": [],
            "timeout": 60000,
            "persistent": false,
            "networkPolicy": {"allow": {
                "api.github.com": [{"transform": [{"headers": {"authorization": "Bearer ghp_x"}}]}],
                "registry.npmjs.org": []
            }},
            "tags": {"sandkit-workspace": "ws-1"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(created()))
        .expect(1)
        .mount(&server)
        .await;
    let mut spec = spec();
    spec.from = Some(SnapshotRef {
        provider: "vercel".into(),
        id: "snap_1".into(),
    });
    spec.ports = Vec::new();
    spec.vcpus = None;
    spec.timeout = Duration::from_secs(60);
    spec.rules = github_and_npm();
    provider(&server).start(spec).await.expect("start");
    server.verify().await;
}

fn github_and_npm() -> FirewallRules {
    let mut headers = BTreeMap::new();
    headers.insert("authorization".to_owned(), Secret::new("Bearer ghp_x"));
    FirewallRules::Allow(vec![
        DomainRule {
            domain: "api.github.com".into(),
            service_ids: vec!["github".into()],
            rules: vec![HeaderRule { headers }],
        },
        DomainRule {
            domain: "registry.npmjs.org".into(),
            service_ids: vec!["npm".into()],
            rules: Vec::new(),
        },
    ])
}

#[tokio::test]
async fn attach_gets_the_session() {
    let server = MockServer::start().await;
    api("GET", "/v2/sandboxes/sessions/sbx_s1")
        .and(no_body)
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"session": session_running(), "routes": [], "new": 1})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let reference = SessionRef {
        provider: "vercel".into(),
        id: "sbx_s1".into(),
    };
    let session = provider(&server).attach(&reference).await.expect("attach");
    assert_eq!(session.session_ref(), reference);
    server.verify().await;
}

#[tokio::test]
async fn attach_to_a_snapshotting_or_stopped_session_is_unavailable() {
    for status in [
        "snapshotting",
        "stopped",
        "failed",
        "aborted",
        "hibernating",
    ] {
        let server = MockServer::start().await;
        api("GET", "/v2/sandboxes/sessions/sbx_s1")
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "session": with(session_running(), json!({"status": status, "snapshottedAt": 1787306500000u64})),
                "routes": []
            })))
            .mount(&server)
            .await;
        let err = provider(&server)
            .attach(&SessionRef {
                provider: "vercel".into(),
                id: "sbx_s1".into(),
            })
            .await
            .expect_err(status);
        assert_eq!(
            err.kind(),
            &ErrorKind::SessionUnavailable,
            "{status}: {err}"
        );
    }
}

#[tokio::test]
async fn exec_runs_with_wait_and_logs_and_parses_ndjson() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    let script = "echo hi; echo oops >&2; exit 3";
    api("POST", "/v2/sandboxes/sessions/sbx_s1/cmd")
        .and(body_json(json!({
            "command": "sh", "args": ["-c", script], "env": {}, "sudo": false,
            "wait": true, "logs": true, "timeout": 60000
        })))
        .respond_with(ndjson(&[
            json!({"command":{"id":"cmd_2","name":"sh","args":["-c",script],"cwd":"/vercel/sandbox","sessionId":"sbx_s1","exitCode":null,"startedAt":1787306420000u64}}),
            json!({"stream":"stdout","data":"hi\n"}),
            json!({"stream":"stderr","data":"oops\n"}),
            json!({"stream":"future-stream","data":"ignored"}),
            json!({"command":{"id":"cmd_2","name":"sh","args":["-c",script],"cwd":"/vercel/sandbox","sessionId":"sbx_s1","exitCode":3,"durationMs":41,"startedAt":1787306420000u64,"extra":1}}),
        ]))
        .expect(1)
        .mount(&server)
        .await;
    let spec = ExecSpec {
        command: "sh".into(),
        args: vec!["-c".into(), script.into()],
        timeout: Some(Duration::from_secs(60)),
        ..ExecSpec::default()
    };
    let handle = session.exec(spec).await.expect("exec");
    assert_eq!(handle.id, "cmd_2");
    let log = LogBuffer::default();
    assert_eq!(log.pump(handle).await.expect("exit"), 3);
    assert_eq!(log.collect(), ("hi\n".to_owned(), "oops\n".to_owned()));
    server.verify().await;
}

#[tokio::test]
async fn exec_sends_cwd_and_env_when_set() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/cmd")
        .and(body_json(json!({
            "command": "npm", "args": ["test"], "cwd": "/vercel/sandbox/app",
            "env": {"CI": "1"}, "sudo": false, "wait": true, "logs": true
        })))
        .respond_with(ndjson(&[
            json!({"command":{"id":"cmd_3","exitCode":null}}),
            json!({"command":{"id":"cmd_3","exitCode":0}}),
        ]))
        .expect(1)
        .mount(&server)
        .await;
    let spec = ExecSpec {
        command: "npm".into(),
        args: vec!["test".into()],
        cwd: Some("/vercel/sandbox/app".into()),
        env: env_map([("CI", "1")]),
        timeout: None,
    };
    let log = LogBuffer::default();
    let handle = session.exec(spec).await.expect("exec");
    assert_eq!(log.pump(handle).await.expect("exit"), 0);
    server.verify().await;
}

fn command(id: &str, exit: serde_json::Value) -> serde_json::Value {
    json!({"command": {"id": id, "name": "npm", "args": ["run", "dev"], "cwd": "/vercel/sandbox/app",
        "sessionId": "sbx_s1", "exitCode": exit, "startedAt": 1787306410000u64, "durationMs": 5321}})
}

fn logs_fixture() -> ResponseTemplate {
    ndjson(&[
        json!({"stream":"stdout","data":"> next dev\n"}),
        json!({"stream":"stdout","data":"ready on 3000\n"}),
    ])
}

#[tokio::test]
async fn spawn_runs_detached_then_follows_logs_and_waits() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/cmd")
        .and(body_json(json!({
            "command": "npm", "args": ["run", "dev"], "cwd": "/vercel/sandbox/app",
            "env": {}, "sudo": false
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(command("cmd_1", json!(null))))
        .expect(1)
        .mount(&server)
        .await;
    api("GET", "/v2/sandboxes/sessions/sbx_s1/cmd/cmd_1/logs")
        .and(no_body)
        .respond_with(logs_fixture())
        .expect(2)
        .mount(&server)
        .await;
    api("GET", "/v2/sandboxes/sessions/sbx_s1/cmd/cmd_1")
        .and(query_param("wait", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(command("cmd_1", json!(0))))
        .expect(1)
        .mount(&server)
        .await;
    let spec = ExecSpec {
        command: "npm".into(),
        args: vec!["run".into(), "dev".into()],
        cwd: Some("/vercel/sandbox/app".into()),
        ..ExecSpec::default()
    };
    let handle = session.spawn(spec).await.expect("spawn");
    assert_eq!(handle.id, "cmd_1");
    let log = LogBuffer::default();
    assert_eq!(log.pump(handle).await.expect("exit"), 0);
    // The final replay of the logs is not delivered twice.
    assert_eq!(log.collect().0, "> next dev\nready on 3000\n");
    server.verify().await;
}

#[tokio::test]
async fn process_logs_checks_the_command_then_replays_its_logs() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("GET", "/v2/sandboxes/sessions/sbx_s1/cmd/cmd_1")
        .and(wiremock::matchers::query_param_is_missing("wait"))
        .respond_with(ResponseTemplate::new(200).set_body_json(command("cmd_1", json!(0))))
        .expect(1)
        .mount(&server)
        .await;
    api("GET", "/v2/sandboxes/sessions/sbx_s1/cmd/cmd_1")
        .and(query_param("wait", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(command("cmd_1", json!(0))))
        .expect(1)
        .mount(&server)
        .await;
    api("GET", "/v2/sandboxes/sessions/sbx_s1/cmd/cmd_1/logs")
        .respond_with(logs_fixture())
        .expect(2)
        .mount(&server)
        .await;
    let chunks: Vec<_> = session
        .process_logs("cmd_1")
        .await
        .expect("logs")
        .map(|c| c.expect("chunk"))
        .collect()
        .await;
    assert!(chunks.iter().all(|c| c.stream == StdStream::Stdout));
    let text: String = chunks.iter().map(|c| c.text()).collect();
    assert_eq!(text, "> next dev\nready on 3000\n");
    server.verify().await;
}

#[tokio::test]
async fn kill_sends_sigterm() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/cmd/cmd_1/kill")
        .and(body_json(json!({"signal": 15})))
        .respond_with(ResponseTemplate::new(200).set_body_json(command("cmd_1", json!(null))))
        .expect(1)
        .mount(&server)
        .await;
    session.kill("cmd_1").await.expect("kill");
    server.verify().await;
}

#[tokio::test]
async fn processes_lists_commands() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    let mut finished = command("cmd_2", json!(1))["command"].clone();
    finished["id"] = json!("cmd_2");
    api("GET", "/v2/sandboxes/sessions/sbx_s1/cmd")
        .and(no_body)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "commands": [finished, command("cmd_1", json!(null))["command"]]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let list = session.processes().await.expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, "cmd_2");
    assert_eq!(list[0].exit_code, Some(1));
    assert_eq!(list[1].exit_code, None);
    assert_eq!(list[1].command, ["npm", "run", "dev"]);
    server.verify().await;
}

#[tokio::test]
async fn set_policy_posts_the_record_form() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/network-policy")
        .and(body_json(json!({"allow": {
            "api.github.com": [{"transform": [{"headers": {"authorization": "Bearer ghp_x"}}]}],
            "registry.npmjs.org": []
        }})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"session": with(session_running(), json!({
            "networkPolicy": {"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"],
                "injectionRules": [{"domain": "api.github.com", "headerNames": ["authorization"]}]}
        }))})))
        .expect(1)
        .mount(&server)
        .await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/network-policy")
        .and(body_json(json!({"mode": "deny-all"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"session": with(
            session_running(), json!({"networkPolicy": {"mode": "deny-all"}}))})),
        )
        .expect(1)
        .mount(&server)
        .await;
    session.set_policy(&github_and_npm()).await.expect("policy");
    session
        .set_policy(&FirewallRules::DenyAll)
        .await
        .expect("deny");
    server.verify().await;
}

#[tokio::test]
async fn extend_posts_the_duration_and_returns_the_new_expiry() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/extend-timeout")
        .and(body_json(json!({"duration": 300000})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"session": with(session_running(), json!({"timeout": 600000}))}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let expires = session
        .extend(Duration::from_secs(300))
        .await
        .expect("extend");
    let expected = Utc
        .timestamp_millis_opt(1_787_306_401_000 + 600_000)
        .single()
        .expect("time");
    assert_eq!(expires, expected);
    assert_eq!(session.expires_at(), Some(expected));
    server.verify().await;
}

#[tokio::test]
async fn extend_beyond_the_plan_is_invalid_input() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/extend-timeout")
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "sandbox_timeout_invalid", "message": "The requested timeout exceeds the maximum allowed."}})))
        .expect(1)
        .mount(&server)
        .await;
    let err = session
        .extend(Duration::from_secs(432_000))
        .await
        .expect_err("too long");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
    server.verify().await;
}

#[tokio::test]
async fn stop_posts_without_a_body() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/stop")
        .and(no_body)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "session": with(session_running(), json!({"status": "stopped", "stoppedAt": 1787306700000u64,
                "duration": 299000, "networkTransfer": {"ingress": 1300, "egress": 1800}})),
            "sandbox": with(sandbox_running(), json!({"status": "stopped", "currentSnapshotId": "snap_2"})),
            "snapshot": {"id": "snap_2", "sourceSessionId": "sbx_s1", "status": "created", "sizeBytes": 241000000,
                "createdAt": 1787306700000u64, "updatedAt": 1787306700000u64, "creationMethod": "automatic"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    session.stop().await.expect("stop");
    // Stopping again, or using the session, needs no request.
    session.stop().await.expect("stop again");
    let err = session
        .exec(ExecSpec {
            command: "ls".into(),
            ..ExecSpec::default()
        })
        .await
        .expect_err("stopped");
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
    server.verify().await;
}

fn snapshot_answer() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "snapshot": {"id":"snap_3","sourceSessionId":"sbx_s1","region":"iad1","regions":["iad1"],"status":"created",
            "sizeBytes":241000000,"expiresAt":1787911500000u64,"createdAt":1787306700000u64,"updatedAt":1787306700000u64,
            "lastUsedAt":1787306700000u64,"creationMethod":"manual","parentId":"snap_2","newField":true},
        "session": with(session_running(), json!({"status":"stopped","snapshottedAt":1787306690000u64,"stoppedAt":1787306700000u64}))
    }))
}

#[tokio::test]
async fn snapshot_never_expires_by_default_and_accepts_201() {
    let server = MockServer::start().await;
    let session = session(&server).await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/snapshot")
        .and(body_json(json!({"expiration": 0})))
        .respond_with(snapshot_answer())
        .expect(1)
        .mount(&server)
        .await;
    let snap = session.snapshot().await.expect("snapshot");
    assert_eq!(
        snap,
        SnapshotRef {
            provider: "vercel".into(),
            id: "snap_3".into()
        }
    );
    server.verify().await;
}

#[tokio::test]
async fn snapshot_sends_the_configured_expiration() {
    let server = MockServer::start().await;
    api("POST", "/v3/sandboxes")
        .respond_with(ResponseTemplate::new(200).set_body_json(created()))
        .mount(&server)
        .await;
    api("POST", "/v2/sandboxes/sessions/sbx_s1/snapshot")
        .and(body_json(json!({"expiration": 604800000})))
        .respond_with(snapshot_answer())
        .expect(1)
        .mount(&server)
        .await;
    let provider = provider_builder(&server)
        .snapshot_expiration(Duration::from_secs(7 * 24 * 3600))
        .build()
        .expect("provider");
    let session = provider.start(spec()).await.expect("start");
    session.snapshot().await.expect("snapshot");
    server.verify().await;
}

#[tokio::test]
async fn delete_snapshot_deletes_and_treats_missing_as_done() {
    let server = MockServer::start().await;
    api("DELETE", "/v2/sandboxes/snapshots/snap_3")
        .and(no_body)
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"snapshot": {
            "id":"snap_3","sourceSessionId":"sbx_s1","status":"deleted","sizeBytes":0,
            "createdAt":1787306700000u64,"updatedAt":1787306700000u64}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    api("DELETE", "/v2/sandboxes/snapshots/snap_x")
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error": {"code": "not_found", "message": "Snapshot not found: snap_x"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let p = provider(&server);
    for id in ["snap_3", "snap_x"] {
        p.delete_snapshot(&SnapshotRef {
            provider: "vercel".into(),
            id: id.into(),
        })
        .await
        .expect("deleted");
    }
    server.verify().await;
}
