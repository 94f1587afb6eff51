//! A stateful fake of the Vercel Sandbox REST API on wiremock (feature `fake`).
//!
//! [`FakeVercel::start`] serves the endpoints [`VercelProvider`] uses, with in-memory
//! sandboxes, sessions (`running` → `snapshotting`/`stopping` → `stopped`), commands run
//! by a tiny built-in shell over a per-session filesystem, snapshots that capture and
//! restore that filesystem, port routes (`https://<subdomain>.vercel.run`) and network
//! policies stored exactly as sent. Like the real service it enforces:
//!
//! * `Authorization: Bearer tok` (401 otherwise) and `teamId=team_abc` (403 otherwise);
//!   `projectId: "prj_123"` in the create body (400 when absent, 404 when another);
//! * strict bodies: an unknown field is a 400, ports ≤ 15 in 1024–65535, timeouts ≥ 1000 ms
//!   (≥ 100 ms for commands), a valid network policy;
//! * 410 `sandbox_stopped` on any session call after a stop, a snapshot or the timeout;
//!   422 `sandbox_snapshotting`/`sandbox_stopping` while one is in progress (see
//!   [`FakeVercel::set_snapshot_duration`]); 410 `snapshot_not_found` when creating from a
//!   deleted or expired snapshot; 201 on snapshot;
//! * `content-type: application/x-ndjson` on command streams, framed as §5.13.
//!
//! Faults are injected with [`FakeVercel::inject`]; every request is recorded
//! ([`FakeVercel::requests`], [`FakeVercel::count`]).
//!
//! # Limitations
//!
//! wiremock sends whole bodies, not live chunks. A wait-mode command runs to its end in
//! virtual time when it is requested and the whole NDJSON body is sent after its
//! (virtual) duration. A detached command advances whenever a request observes its
//! session; its logs endpoint answers with the output produced so far and then ends, and
//! `GET …/cmd/{id}?wait=true` holds at most 250 ms before answering `exitCode: null`
//! while it still runs. The provider copes with both (it reads the logs again and asks
//! again). Only snapshot sources are supported on create; sandbox-by-name endpoints,
//! file endpoints and resume are not served.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sandkit_core::Result<()> {
//! use sandkit_core::Provider;
//! use sandkit_vercel::fake::FakeVercel;
//!
//! let fake = FakeVercel::start().await;
//! let provider = fake.provider();
//! assert_eq!(provider.id(), "vercel");
//! assert_eq!(fake.count("POST", "/v3/sandboxes"), 0);
//! # Ok(()) }
//! ```

mod checks;
mod faults;
mod record;
mod reply;
mod routes;
mod script;
mod shell;
mod state;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::{Credentials, RetryConfig, VercelProvider, VercelProviderBuilder};
pub use faults::{Fault, FaultKind};
pub use record::RecordedRequest;
use reply::{Body, Reply};
use state::Model;

/// The bearer token the fake accepts.
pub const FAKE_TOKEN: &str = "tok";
/// The team id the fake expects in `teamId`.
pub const FAKE_TEAM_ID: &str = "team_abc";
/// The project id the fake expects in the create body.
pub const FAKE_PROJECT_ID: &str = "prj_123";

#[derive(Debug)]
struct Inner {
    model: Model,
    log: Vec<RecordedRequest>,
    faults: Vec<Fault>,
}

impl Inner {
    /// Consumes the first pending fault that applies to `request` and passes `want`.
    fn take_fault(
        &mut self,
        request: &RecordedRequest,
        want: impl Fn(&FaultKind) -> bool,
    ) -> Option<FaultKind> {
        let index = self
            .faults
            .iter()
            .position(|f| f.times > 0 && want(&f.kind) && f.applies_to(request))?;
        let fault = &mut self.faults[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handle(&self, request: &Request) -> Reply {
        let recorded = RecordedRequest::from_wiremock(request);
        let mut inner = self.lock();
        inner.log.push(recorded.clone());
        let refused = inner.take_fault(&recorded, |k| {
            matches!(
                k,
                FaultKind::Status(_)
                    | FaultKind::StatusMessage { .. }
                    | FaultKind::RateLimited { .. }
            )
        });
        match refused {
            Some(FaultKind::Status(status)) => {
                let code = if status >= 500 {
                    "internal_server_error"
                } else {
                    "injected_fault"
                };
                return Reply::error(status, code, "fake: injected failure");
            }
            Some(FaultKind::StatusMessage { status, message }) => {
                return Reply::error(status, "injected_fault", message);
            }
            Some(FaultKind::RateLimited { retry_after }) => {
                let mut reply = Reply::error(429, "rate_limited", "Too many requests");
                reply.retry_after = retry_after;
                return reply;
            }
            _ => {}
        }
        if let Some(refusal) = check_request(&recorded) {
            return refusal;
        }
        let body = match parse_body(request) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let segments: Vec<&str> = recorded
            .path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut reply = routes::route(
            &mut inner.model,
            &recorded.method,
            &segments,
            &recorded.query,
            body.as_ref(),
        );
        if let Body::Ndjson(lines) = &mut reply.body
            && inner
                .take_fault(&recorded, |k| *k == FaultKind::DropStream)
                .is_some()
        {
            lines.truncate(1);
        }
        if let Some(FaultKind::FailAfter(status)) =
            inner.take_fault(&recorded, |k| matches!(k, FaultKind::FailAfter(_)))
        {
            reply = Reply::error(
                status,
                "internal_server_error",
                "fake: injected failure after handling",
            );
        }
        if let Some(FaultKind::Delay(delay)) =
            inner.take_fault(&recorded, |k| matches!(k, FaultKind::Delay(_)))
        {
            reply = reply.delayed(delay);
        }
        reply
    }
}

/// Authentication, team scope and body content type, as the real service checks them.
fn check_request(request: &RecordedRequest) -> Option<Reply> {
    if request.header("authorization") != Some(&format!("Bearer {FAKE_TOKEN}")) {
        return Some(Reply::error(
            401,
            "unauthorized",
            "The request is missing an authentication token or it is not valid.",
        ));
    }
    if request.query_param("teamId") != Some(FAKE_TEAM_ID) {
        return Some(Reply::error(
            403,
            "forbidden",
            "You don't have permission to access this resource: teamId is missing or not the token's team.",
        ));
    }
    let content_type = request.header("content-type").unwrap_or("");
    if request.body.is_some() && !content_type.starts_with("application/json") {
        return Some(Reply::bad_request(format!(
            "Invalid request: expected content-type application/json, got {content_type:?}."
        )));
    }
    None
}

fn parse_body(request: &Request) -> Result<Option<Value>, Reply> {
    if request.body.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&request.body)
        .map(Some)
        .map_err(|e| Reply::bad_request(format!("Invalid request: the body is not JSON ({e}).")))
}

struct Responder(Arc<Shared>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.handle(request).into_template()
    }
}

/// Matches (and records) the requests a pending [`FaultKind::Disconnect`] applies to.
struct DisconnectMatcher(Arc<Shared>);

impl Match for DisconnectMatcher {
    fn matches(&self, request: &Request) -> bool {
        let recorded = RecordedRequest::from_wiremock(request);
        let mut inner = self.0.lock();
        let hit = inner
            .take_fault(&recorded, |k| *k == FaultKind::Disconnect)
            .is_some();
        if hit {
            inner.log.push(recorded);
        }
        hit
    }
}

/// The fake Vercel Sandbox API. Dropping it shuts the server down.
pub struct FakeVercel {
    server: MockServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for FakeVercel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeVercel")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl FakeVercel {
    /// Starts a fake on a free loopback port with no state.
    pub async fn start() -> FakeVercel {
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                model: Model::new(FAKE_PROJECT_ID),
                log: Vec::new(),
                faults: Vec::new(),
            }),
        });
        Mock::given(DisconnectMatcher(shared.clone()))
            .respond_with_err(|_: &Request| {
                std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fake Vercel API: injected disconnect",
                )
            })
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(shared.clone()))
            .with_priority(10)
            .mount(&server)
            .await;
        FakeVercel { server, shared }
    }

    /// Base URL to point a provider at.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The underlying wiremock server (to mount extra mocks with a higher priority).
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// A provider builder set up for this fake: token [`FAKE_TOKEN`], team
    /// [`FAKE_TEAM_ID`], project [`FAKE_PROJECT_ID`], 10 ms retry backoff, 20 ms polling.
    pub fn provider_builder(&self) -> VercelProviderBuilder {
        let credentials = Credentials::access_token(FAKE_TOKEN, FAKE_TEAM_ID, FAKE_PROJECT_ID)
            .expect("the fake's fixed credentials are non-empty");
        VercelProvider::builder()
            .base_url(self.uri())
            .credentials(credentials)
            .retry(RetryConfig {
                attempts: 3,
                base_delay: Duration::from_millis(10),
                max_retry_after: Duration::from_secs(20),
            })
            .poll_interval(Duration::from_millis(20))
    }

    /// A provider configured against this fake (see [`FakeVercel::provider_builder`]).
    pub fn provider(&self) -> VercelProvider {
        self.provider_builder()
            .build()
            .expect("the fake's provider configuration is valid")
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.clone()
    }

    /// The requests with `method` whose path matches `pattern` (`*` = one segment).
    pub fn requests_matching(&self, method: &str, pattern: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.matches(method, pattern))
            .cloned()
            .collect()
    }

    /// How many requests with `method` had a path matching `pattern`.
    pub fn count(&self, method: &str, pattern: &str) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.matches(method, pattern))
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Adds a fault for the next matching requests.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Makes snapshot `id` expire now (creating from it is then 410
    /// `snapshot_not_found`). Returns whether it exists.
    pub fn expire_snapshot(&self, id: &str) -> bool {
        self.shared.lock().model.expire_snapshot(id)
    }

    /// Snapshots take this long: the session is `snapshotting` meanwhile (its calls
    /// answer 422 `sandbox_snapshotting`) and the snapshot answer arrives after it.
    pub fn set_snapshot_duration(&self, duration: Duration) {
        self.shared.lock().model.snapshot_delay = duration;
    }

    /// Stops take this long: the session is `stopping` meanwhile (422 `sandbox_stopping`).
    pub fn set_stop_duration(&self, duration: Duration) {
        self.shared.lock().model.stop_delay = duration;
    }

    /// The network policy of a session exactly as last sent (request form).
    pub fn network_policy(&self, session_id: &str) -> Option<Value> {
        self.shared
            .lock()
            .model
            .sessions
            .get(session_id)
            .map(|s| s.policy.clone())
    }

    /// A session's status (`running`, `snapshotting`, `stopping`, `stopped`).
    pub fn session_status(&self, session_id: &str) -> Option<&'static str> {
        self.shared
            .lock()
            .model
            .session_status(session_id)
            .map(state::Status::as_str)
    }

    /// The ids of the sessions running now (not stopping, snapshotting or stopped).
    pub fn running_sessions(&self) -> Vec<String> {
        let mut inner = self.shared.lock();
        let ids: Vec<String> = inner.model.sessions.keys().cloned().collect();
        ids.into_iter()
            .filter(|id| inner.model.session_status(id) == Some(state::Status::Running))
            .collect()
    }

    /// Content of a file in a session (`path` relative to `/vercel/sandbox` or absolute).
    pub fn file(&self, session_id: &str, path: &str) -> Option<String> {
        let inner = self.shared.lock();
        let session = inner.model.sessions.get(session_id)?;
        session
            .fs
            .files
            .get(&shell::resolve(state::CWD, path))
            .cloned()
    }

    /// Content of a file captured in a snapshot.
    pub fn snapshot_file(&self, snapshot_id: &str, path: &str) -> Option<String> {
        let inner = self.shared.lock();
        let snapshot = inner.model.snapshots.get(snapshot_id)?;
        snapshot
            .fs
            .files
            .get(&shell::resolve(state::CWD, path))
            .cloned()
    }

    /// Ids of the snapshots taken from a session, sorted by id.
    pub fn snapshots_of(&self, session_id: &str) -> Vec<String> {
        self.shared
            .lock()
            .model
            .snapshots
            .iter()
            .filter(|(_, s)| s.source_session == session_id)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The session timeout in milliseconds (grows with extend-timeout).
    pub fn session_timeout_ms(&self, session_id: &str) -> Option<u64> {
        self.shared
            .lock()
            .model
            .sessions
            .get(session_id)
            .map(|s| s.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::record::path_matches;
    use super::*;

    #[test]
    fn path_patterns() {
        assert!(path_matches(
            "/v2/sandboxes/sessions/*/cmd",
            "/v2/sandboxes/sessions/sbx_1/cmd"
        ));
        assert!(!path_matches(
            "/v2/sandboxes/sessions/*/cmd",
            "/v2/sandboxes/sessions/sbx_1/cmd/c"
        ));
        assert!(path_matches("/v3/sandboxes", "/v3/sandboxes/"));
    }

    #[test]
    fn faults_are_consumed_in_order() {
        let mut inner = Inner {
            model: Model::default(),
            log: Vec::new(),
            faults: vec![Fault::status(503).on("POST", "/v3/sandboxes").times(2)],
        };
        let request = RecordedRequest {
            method: "POST".into(),
            path: "/v3/sandboxes".into(),
            query: Vec::new(),
            headers: BTreeMap::new(),
            body: None,
        };
        let other = RecordedRequest {
            method: "GET".into(),
            ..request.clone()
        };
        let any = |_: &FaultKind| true;
        assert_eq!(inner.take_fault(&other, any), None);
        assert_eq!(
            inner.take_fault(&request, any),
            Some(FaultKind::Status(503))
        );
        assert_eq!(
            inner.take_fault(&request, any),
            Some(FaultKind::Status(503))
        );
        assert_eq!(inner.take_fault(&request, any), None);
    }
}
