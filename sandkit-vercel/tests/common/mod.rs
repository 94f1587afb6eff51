//! Fixtures of §11 of the Vercel API contract and helpers shared by the wiremock tests.

#![allow(dead_code)]

use std::time::Duration;

use sandkit_core::{Provider, ProviderSession, StartSpec, WorkspaceId};
use sandkit_policies::FirewallRules;
use sandkit_vercel::{
    Credentials, RetryConfig, VercelProvider, VercelProviderBuilder, default_user_agent,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

/// `SESSION_RUNNING` of §11, plus a field the client does not know.
pub fn session_running() -> Value {
    json!({"id":"sbx_s1","memory":4096,"vcpus":2,"region":"iad1","runtime":"node24","timeout":300000,
        "status":"running","requestedAt":1787306400000u64,"startedAt":1787306401000u64,
        "createdAt":1787306400000u64,"updatedAt":1787306401000u64,"cwd":"/vercel/sandbox",
        "networkPolicy":{"mode":"allow-all"},"projectId":"prj_123","sourceSandboxName":"my-box",
        "someFutureField":{"nested":[1,2,3]}})
}

/// `SANDBOX_RUNNING` of §11.
pub fn sandbox_running() -> Value {
    json!({"name":"my-box","persistent":true,"region":"iad1","vcpus":2,"memory":4096,
        "image":"vercel/sandbox/universal@sha256:2c4e8f9a1b3d5e7f","timeout":300000,
        "networkPolicy":{"mode":"allow-all"},"createdAt":1787306400000u64,"updatedAt":1787306401000u64,
        "statusUpdatedAt":1787306401000u64,"expiresAt":1787306701000u64,"currentSessionId":"sbx_s1",
        "status":"running","cwd":"/vercel/sandbox","tags":{"env":"test"},"snapshotExpiration":2592000000u64})
}

/// A merge of `base` with the fields of `patch`.
pub fn with(mut base: Value, patch: Value) -> Value {
    if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The §11.1 create answer, with unknown extra fields.
pub fn created() -> Value {
    json!({"sandbox": sandbox_running(), "session": session_running(),
        "routes":[{"url":"https://sb-abc3000.vercel.run","subdomain":"sb-abc3000","port":3000,"extra":true}],
        "resumed": false, "somethingNew": "ignored"})
}

/// A mock for `method path` that also requires the headers and query every call carries.
pub fn api(verb: &str, route: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(query_param("teamId", "team_abc"))
        .and(header("authorization", "Bearer tok"))
        .and(header("content-type", "application/json"))
        .and(header("user-agent", default_user_agent().as_str()))
}

/// Matches a create body equal to `expected` plus the `name` the provider gives every
/// sandbox it creates (`sandkit-` and 32 hex digits).
pub struct CreateBody(pub Value);

impl wiremock::Match for CreateBody {
    fn matches(&self, request: &wiremock::Request) -> bool {
        let Ok(mut body) = serde_json::from_slice::<Value>(&request.body) else {
            return false;
        };
        let name = body.as_object_mut().and_then(|o| o.remove("name"));
        let named = name
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|n| n.strip_prefix("sandkit-"))
            .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        named && body == self.0
    }
}

/// An NDJSON answer.
pub fn ndjson(lines: &[Value]) -> ResponseTemplate {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ResponseTemplate::new(200).set_body_raw(text, "application/x-ndjson")
}

/// Retries with tiny delays.
pub fn fast_retry() -> RetryConfig {
    RetryConfig {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(20),
    }
}

/// A provider builder for `server` with the contract's credentials (token `tok`, team
/// `team_abc`, project `prj_123`), fast retries and polls.
pub fn builder(server: &MockServer) -> VercelProviderBuilder {
    VercelProvider::builder()
        .base_url(server.uri())
        .credentials(Credentials::access_token("tok", "team_abc", "prj_123").expect("creds"))
        .retry(fast_retry())
        .poll_interval(Duration::from_millis(10))
}

/// [`builder`], built.
pub fn provider(server: &MockServer) -> VercelProvider {
    builder(server).build().expect("provider")
}

/// A start spec for workspace `ws-1`.
pub fn spec() -> StartSpec {
    StartSpec {
        workspace_id: WorkspaceId::new("ws-1").expect("id"),
        from: None,
        rules: FirewallRules::AllowAll,
        ports: vec![3000],
        timeout: Duration::from_secs(300),
        vcpus: Some(2),
        name: None,
    }
}

/// Mounts the create fixture (any body) and starts session `sbx_s1`.
pub async fn session(server: &MockServer) -> Box<dyn ProviderSession> {
    session_of(server, &provider(server)).await
}

/// [`session`], started by `provider`.
pub async fn session_of(
    server: &MockServer,
    provider: &VercelProvider,
) -> Box<dyn ProviderSession> {
    session_from(server, provider, created()).await
}

/// [`session_of`], with `created` as the create answer.
pub async fn session_from(
    server: &MockServer,
    provider: &VercelProvider,
    created: Value,
) -> Box<dyn ProviderSession> {
    let guard = Mock::given(method("POST"))
        .and(path("/v3/sandboxes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created))
        .named("create (setup)")
        .mount_as_scoped(server)
        .await;
    let session = provider.start(spec()).await.expect("start");
    drop(guard);
    session
}
