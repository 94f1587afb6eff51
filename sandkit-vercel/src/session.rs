//! [`VercelSession`]: one running Vercel sandbox session.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sandkit_core::{
    Error, ExecSpec, LogStream, ProcessHandle, ProcessInfo, ProcessSink, ProviderSession, Result,
    SessionRef, SnapshotRef,
};
use sandkit_policies::FirewallRules;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use crate::client::{ApiClient, Call, Failure};
use crate::config::Settings;
use crate::ndjson::NdjsonLines;
use crate::policy::{describe, network_policy, secret_values};
use crate::process::{deliver, follow, read_first_command, read_wait_stream};
use crate::provider::PROVIDER_ID;
use crate::validate;
use crate::wire::{
    CommandEnvelope, CommandList, Route, SessionEnvelope, SessionOnly, SnapshotEnvelope,
    SnapshotList,
};

/// Pages of 50 snapshots searched for one a failed snapshot request may have taken.
const SNAPSHOT_SEARCH_PAGES: usize = 5;

/// What the session knows about itself from the last session object.
#[derive(Debug)]
struct View {
    deadline_ms: Option<u64>,
    routes: Vec<Route>,
}

/// Shared by a session handle and the tasks following its processes.
pub(crate) struct SessionCore {
    pub(crate) client: Arc<ApiClient>,
    settings: Arc<Settings>,
    pub(crate) id: String,
    view: Mutex<View>,
    ended: AtomicBool,
}

/// A running Vercel session (`sbx_…`).
pub(crate) struct VercelSession {
    core: Arc<SessionCore>,
}

impl fmt::Debug for VercelSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VercelSession")
            .field("id", &self.core.id)
            .field("ended", &self.core.ended.load(Ordering::SeqCst))
            .finish()
    }
}

impl VercelSession {
    pub(crate) fn new(
        client: Arc<ApiClient>,
        settings: Arc<Settings>,
        envelope: SessionEnvelope,
    ) -> Self {
        let view = View {
            deadline_ms: envelope.session.deadline_ms(),
            routes: envelope.routes,
        };
        VercelSession {
            core: Arc::new(SessionCore {
                client,
                settings,
                id: envelope.session.id,
                view: Mutex::new(view),
                ended: AtomicBool::new(false),
            }),
        }
    }
}

impl VercelSession {
    /// Follows command `id` (logs, then exit code) into `sink` in the background.
    fn follow_in_background(&self, id: String, secrets: Vec<String>, sink: ProcessSink) {
        let core = self.core.clone();
        tokio::spawn(async move {
            let output = follow(&core, &id, &secrets, &sink);
            let outcome = core.watched(output).await;
            deliver(sink, outcome).await;
        });
    }
}

fn to_datetime(ms: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(i64::try_from(ms).ok()?).single()
}

impl SessionCore {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `["v2", "sandboxes", "sessions", id, tail…]`.
    pub(crate) fn call(&self, method: reqwest::Method, op: &'static str, tail: &[&str]) -> Call {
        let mut segments = vec!["v2", "sandboxes", "sessions", self.id.as_str()];
        segments.extend_from_slice(tail);
        Call::new(method, op, &segments)
    }

    fn ended_error(&self) -> Error {
        Error::session_unavailable(format!(
            "Vercel session {} has ended (stopped or snapshotted); start a new session",
            self.id
        ))
    }

    fn ensure_live(&self) -> Result<()> {
        if self.ended.load(Ordering::SeqCst) {
            Err(self.ended_error())
        } else {
            Ok(())
        }
    }

    fn mark_ended(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Turns a failure of a session-scoped call into an error: 410 and 422 mean the
    /// session is gone (after waiting for a stop or snapshot in progress to settle).
    pub(crate) async fn fail(&self, call: &Call, failure: Failure) -> Error {
        match failure.status() {
            Some((410, code)) if code != Some("snapshot_not_found") => {
                self.mark_ended();
                Error::session_unavailable(format!(
                    "Vercel session {} is stopped (410 {}); start a new session",
                    self.id,
                    code.unwrap_or("gone")
                ))
            }
            Some((422, Some(code @ ("sandbox_stopping" | "sandbox_snapshotting")))) => {
                let code = code.to_owned();
                self.settle().await;
                self.mark_ended();
                Error::session_unavailable(format!(
                    "Vercel session {} was {} ({code}) and has stopped; start a new session",
                    self.id,
                    if code == "sandbox_stopping" {
                        "stopping"
                    } else {
                        "being snapshotted"
                    }
                ))
            }
            // A session-level endpoint answering 404: the session is gone (deleted outside
            // Sandkit) — unless the session itself still answers as live, in which case
            // the endpoint is what is missing (a route this server does not serve), and
            // that stays NotFound. A command-level 404 (`…/cmd/{id}…`) stays NotFound.
            Some((404, _)) if !addresses_a_command(call) => {
                if call.segments.len() > 4 && self.still_live().await {
                    return self.client.error(call, failure);
                }
                self.mark_ended();
                Error::session_unavailable(format!(
                    "Vercel session {} no longer exists (404); start a new session",
                    self.id
                ))
            }
            _ => self.client.error(call, failure),
        }
    }

    /// Whether the session answers `GET` as running (any failure to tell: `false`).
    async fn still_live(&self) -> bool {
        let call = self.call(reqwest::Method::GET, "get session", &[]);
        match self.client.json::<SessionEnvelope>(&call).await {
            Ok(found) => {
                self.remember(&found.session);
                !found.session.status.is_over()
            }
            Err(_) => false,
        }
    }

    /// Polls the session until it is no longer stopping or snapshotting (bounded).
    async fn settle(&self) {
        let started = Instant::now();
        let call = self.call(reqwest::Method::GET, "get session", &[]);
        while started.elapsed() < self.settings.settle_limit {
            tokio::time::sleep(self.settings.poll_interval).await;
            match self.client.json::<SessionEnvelope>(&call).await {
                Ok(found) if found.session.status.is_settling() => {
                    debug!(session = %self.id, status = found.session.status.as_str(), "waiting for the session to settle");
                }
                _ => return,
            }
        }
    }

    /// Sends a session-scoped call and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        self.ensure_live()?;
        match self.client.json(&call).await {
            Ok(value) => Ok(value),
            Err(failure) => Err(self.fail(&call, failure).await),
        }
    }

    /// Sends a session-scoped call answered with NDJSON.
    pub(crate) async fn ndjson(&self, call: Call) -> Result<NdjsonLines> {
        self.ensure_live()?;
        match self.client.ndjson(&call).await {
            Ok(lines) => Ok(lines),
            Err(failure) => Err(self.fail(&call, failure).await),
        }
    }

    /// How often to poll while waiting.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    /// Runs `work`, a stream or long poll (these have no request timeout), watching
    /// the session: once its deadline plus [`Settings::deadline_grace`] has passed, the
    /// session is fetched, and again every grace period; when it is no longer running,
    /// `work` is abandoned with `SessionUnavailable`. Before the deadline nothing extra
    /// is sent; an extension (from any process) moves the next check.
    pub(crate) async fn watched<F: Future>(&self, work: F) -> Result<F::Output> {
        let mut work = std::pin::pin!(work);
        loop {
            let now = tokio::time::Instant::now();
            let wait = self
                .until_deadline()
                .saturating_add(self.settings.deadline_grace);
            let check_at = now
                .checked_add(wait)
                .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
            tokio::select! {
                out = &mut work => return Ok(out),
                () = tokio::time::sleep_until(check_at) => {
                    if let Some(ended) = self.ended_past_deadline().await {
                        return Err(ended);
                    }
                }
            }
        }
    }

    /// Time left until the session's deadline as last seen (zero when passed or unknown).
    fn until_deadline(&self) -> Duration {
        let Some(deadline_ms) = self.view().deadline_ms else {
            return Duration::ZERO;
        };
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    }

    /// Fetches the session past its deadline: the error that ends a wait when it has
    /// ended for good (or cannot be checked because the credentials are refused, which
    /// would otherwise keep the wait open for ever); `None` while it runs, is still
    /// settling, or cannot be reached (the caller keeps waiting).
    async fn ended_past_deadline(&self) -> Option<Error> {
        let call = self.call(reqwest::Method::GET, "get session", &[]);
        let ended = |what: String| {
            Error::session_unavailable(format!(
                "Vercel session {} {what} past its deadline while a command stream or wait was \
                 open; start a new session",
                self.id
            ))
        };
        match self.client.json::<SessionEnvelope>(&call).await {
            Ok(found) => {
                self.remember(&found.session);
                let status = found.session.status;
                if !status.is_over() {
                    return None;
                }
                self.mark_ended();
                Some(ended(format!("is {}", status.as_str())))
            }
            Err(failure) => match failure.status() {
                Some((404 | 410, _)) => {
                    self.mark_ended();
                    Some(ended("is gone".to_owned()))
                }
                Some((401 | 403, _)) => Some(self.client.error(&call, failure)),
                _ => None,
            },
        }
    }

    /// After a snapshot request that failed but may have worked: waits for the session
    /// to settle and, if it was snapshotted, finds the snapshot taken from it. `None`
    /// when it was not (or this cannot be told): the caller reports the failure.
    async fn snapshot_taken(&self) -> Option<String> {
        self.settle().await;
        let call = self.call(reqwest::Method::GET, "get session", &[]);
        // A session that was not snapshotted says so; otherwise the list decides.
        if let Ok(found) = self.client.json::<SessionEnvelope>(&call).await
            && found.session.snapshotted_at.is_none()
        {
            return None;
        }
        match snapshot_of_session(&self.client, &self.id).await {
            Ok(found) => found,
            Err(failure) => {
                debug!(session = %self.id, failure = ?failure.status(), "cannot list snapshots to find the one taken");
                None
            }
        }
    }

    fn remember(&self, session: &crate::wire::Session) {
        self.view().deadline_ms = session.deadline_ms();
    }
}

/// The run-command body (§5.13): `args`, `env`, `sudo` always; `cwd`/`timeout` when set.
fn run_body(spec: &ExecSpec, wait: bool) -> Value {
    let mut body = Map::new();
    body.insert("command".into(), json!(spec.command));
    body.insert("args".into(), json!(spec.args));
    if let Some(cwd) = &spec.cwd {
        body.insert("cwd".into(), json!(cwd));
    }
    body.insert("env".into(), json!(spec.env));
    body.insert("sudo".into(), json!(false));
    if wait {
        body.insert("wait".into(), json!(true));
        body.insert("logs".into(), json!(true));
    }
    if let Some(t) = spec.timeout {
        body.insert("timeout".into(), json!(validate::ms(t)));
    }
    Value::Object(body)
}

fn env_values(spec: &ExecSpec) -> Vec<String> {
    spec.env
        .values()
        .filter(|v| v.len() >= 3)
        .cloned()
        .collect()
}

#[async_trait]
impl ProviderSession for VercelSession {
    fn session_ref(&self) -> SessionRef {
        SessionRef {
            provider: PROVIDER_ID.to_owned(),
            id: self.core.id.clone(),
        }
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.core.view().deadline_ms.and_then(to_datetime)
    }

    async fn set_policy(&self, rules: &FirewallRules) -> Result<()> {
        validate::rules(rules)?;
        let call = self
            .core
            .call(
                reqwest::Method::POST,
                "update network policy",
                &["network-policy"],
            )
            .body(network_policy(rules))
            .secrets(secret_values(rules))
            .idempotent();
        let updated: SessionOnly = self.core.json(call).await?;
        self.core.remember(&updated.session);
        info!(session = %self.core.id, policy = %describe(rules), "vercel network policy updated");
        Ok(())
    }

    async fn exec(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        validate::exec(&spec)?;
        let secrets = env_values(&spec);
        let call = self
            .core
            .call(reqwest::Method::POST, "run command", &["cmd"])
            .body(run_body(&spec, true))
            .secrets(secrets.clone())
            .long();
        let core = &self.core;
        let (lines, command) = core
            .watched(async {
                let mut lines = core.ndjson(call).await?;
                let command = read_first_command(&mut lines, core, &secrets).await?;
                Ok::<_, Error>((lines, command))
            })
            .await??;
        debug!(session = %self.core.id, command = %command.id, "vercel command started");
        let (sink, handle) = ProcessHandle::channel(command.id.clone());
        let core = self.core.clone();
        tokio::spawn(async move {
            let output = read_wait_stream(lines, &core, &command.id, &secrets, &sink);
            let outcome = core.watched(output).await;
            deliver(sink, outcome).await;
        });
        Ok(handle)
    }

    async fn spawn(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        validate::exec(&spec)?;
        let secrets = env_values(&spec);
        let call = self
            .core
            .call(reqwest::Method::POST, "start command", &["cmd"])
            .body(run_body(&spec, false))
            .secrets(secrets.clone());
        let started: CommandEnvelope = self.core.json(call).await?;
        let id = started.command.id;
        info!(session = %self.core.id, command = %id, "vercel background command started");
        let (sink, handle) = ProcessHandle::channel(id.clone());
        self.follow_in_background(id, secrets, sink);
        Ok(handle)
    }

    async fn processes(&self) -> Result<Vec<ProcessInfo>> {
        let call = self
            .core
            .call(reqwest::Method::GET, "list commands", &["cmd"]);
        let list: CommandList = self.core.json(call).await?;
        Ok(list
            .commands
            .into_iter()
            .map(|c| ProcessInfo {
                exit_code: c.exit(),
                command: std::iter::once(c.name).chain(c.args).collect(),
                id: c.id,
            })
            .collect())
    }

    async fn process_logs(&self, process_id: &str) -> Result<LogStream> {
        crate::validate::api_id("command", process_id)?;
        // Fail fast on an unknown process instead of inside the stream.
        let call = self
            .core
            .call(reqwest::Method::GET, "get command", &["cmd", process_id]);
        let _: CommandEnvelope = self.core.json(call).await.map_err(|e| {
            if e.kind() == &sandkit_core::ErrorKind::NotFound {
                Error::not_found(format!(
                    "Vercel session {} has no process {process_id}",
                    self.core.id
                ))
            } else {
                e
            }
        })?;
        let (sink, handle) = ProcessHandle::channel(process_id);
        self.follow_in_background(process_id.to_owned(), Vec::new(), sink);
        Ok(handle.output)
    }

    async fn kill(&self, process_id: &str) -> Result<()> {
        crate::validate::api_id("command", process_id)?;
        let call = self
            .core
            .call(
                reqwest::Method::POST,
                "kill command",
                &["cmd", process_id, "kill"],
            )
            .body(json!({ "signal": 15 }))
            .idempotent();
        let _: CommandEnvelope = self.core.json(call).await.map_err(|e| {
            if e.kind() == &sandkit_core::ErrorKind::NotFound {
                Error::not_found(format!(
                    "Vercel session {} has no process {process_id} to kill",
                    self.core.id
                ))
            } else {
                e
            }
        })?;
        info!(session = %self.core.id, command = %process_id, "vercel command killed");
        Ok(())
    }

    async fn snapshot(&self) -> Result<SnapshotRef> {
        // Always explicit: without it the platform expires the snapshot (a head!)
        // 30 days after last use.
        let expiration = validate::ms(self.core.settings.snapshot_expiration);
        let call = self
            .core
            .call(reqwest::Method::POST, "snapshot session", &["snapshot"])
            .body(json!({ "expiration": expiration }));
        self.core.ensure_live()?;
        let id = match self.core.client.json::<SnapshotEnvelope>(&call).await {
            Ok(taken) => taken.snapshot.id,
            // A snapshot request is never sent twice; when it may have worked, look.
            Err(failure) if failure.maybe_acted() => match self.core.snapshot_taken().await {
                Some(id) => {
                    warn!(session = %self.core.id, snapshot = %id, "the snapshot request failed, but the snapshot was taken; using it");
                    id
                }
                None => return Err(self.core.fail(&call, failure).await),
            },
            Err(failure) => return Err(self.core.fail(&call, failure).await),
        };
        self.core.mark_ended();
        info!(session = %self.core.id, snapshot = %id, "vercel snapshot taken");
        Ok(SnapshotRef {
            provider: PROVIDER_ID.to_owned(),
            id,
        })
    }

    async fn stop(&self) -> Result<()> {
        if self.core.ended.load(Ordering::SeqCst) {
            return Ok(());
        }
        let call = self
            .core
            .call(reqwest::Method::POST, "stop session", &["stop"])
            .idempotent();
        match self.core.json::<Value>(call).await {
            Ok(_) => {}
            Err(e) if e.kind() == &sandkit_core::ErrorKind::SessionUnavailable => {}
            Err(e) => return Err(e),
        }
        self.core.mark_ended();
        info!(session = %self.core.id, "vercel session stopped");
        Ok(())
    }

    async fn url(&self, port: u16) -> Result<String> {
        let view = self.core.view();
        let route = view
            .routes
            .iter()
            .find(|r| r.port == Some(u64::from(port)))
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "port {port} is not exposed by Vercel session {}; list it in the ports the \
                     sandbox starts with",
                    self.core.id
                ))
            })?;
        Ok(format!("https://{}.vercel.run", route.subdomain))
    }

    async fn extend(&self, by: Duration) -> Result<DateTime<Utc>> {
        if by < validate::MIN_SESSION_TIMEOUT {
            return Err(Error::invalid_input(format!(
                "extend by {}ms is below Vercel's minimum of 1s",
                by.as_millis()
            )));
        }
        let call = self
            .core
            .call(
                reqwest::Method::POST,
                "extend session timeout",
                &["extend-timeout"],
            )
            .body(json!({ "duration": validate::ms(by) }));
        let extended: SessionOnly = match self.core.json(call).await {
            Ok(extended) => extended,
            Err(e)
                if matches!(e.kind(), sandkit_core::ErrorKind::Provider { code: Some(code), .. }
                    if code == "sandbox_timeout_invalid") =>
            {
                return Err(Error::invalid_input(format!(
                    "extending Vercel session {} by {}s would exceed the plan's maximum lifetime \
                     (45 min Hobby, 24 h Pro); extend by less",
                    self.core.id,
                    by.as_secs()
                ))
                .with_source(e));
            }
            Err(e) => return Err(e),
        };
        self.core.remember(&extended.session);
        let expires = self.expires_at().ok_or_else(|| {
            Error::provider(
                None,
                None,
                format!(
                    "Vercel extended session {} but its answer has no timeout or start time",
                    self.core.id
                ),
            )
        })?;
        info!(session = %self.core.id, %expires, "vercel session extended");
        Ok(expires)
    }
}

/// Whether a call addresses one command of a session (`…/sessions/{id}/cmd/{cmd_id}…`).
fn addresses_a_command(call: &Call) -> bool {
    let segments = &call.segments;
    segments
        .iter()
        .position(|s| s == "cmd")
        .is_some_and(|i| i + 1 < segments.len())
}

/// The usable snapshot taken from session `id`, if any. Newest first: a snapshot a
/// commit just took is on the first pages unless the project takes hundreds of
/// snapshots a minute (at most [`SNAPSHOT_SEARCH_PAGES`] pages are read).
pub(crate) async fn snapshot_of_session(
    client: &ApiClient,
    id: &str,
) -> std::result::Result<Option<String>, Failure> {
    let mut cursor: Option<String> = None;
    for _ in 0..SNAPSHOT_SEARCH_PAGES {
        let mut list = Call::get("list snapshots", &["v2", "sandboxes", "snapshots"])
            .query("project", client.credentials().project_id())
            .query("sortOrder", "desc")
            .query("limit", "50");
        if let Some(c) = cursor.take() {
            list = list.query("cursor", c);
        }
        let page = client.json::<SnapshotList>(&list).await?;
        let found = page
            .snapshots
            .into_iter()
            .find(|s| s.source_session_id.as_deref() == Some(id) && s.is_usable());
        if let Some(snapshot) = found {
            return Ok(Some(snapshot.id));
        }
        cursor = page.pagination.and_then(|p| p.next);
        if cursor.is_none() {
            break;
        }
    }
    Ok(None)
}
