//! Live sessions: an exclusive lease on a running sandbox, ended by commit or discard.
//!
//! A session can be attached from any process while its lease is live and its provider
//! session is up. Its policy override is stored with the lease (durable form only) and
//! restored on attach. If it expires or is lost, the workspace falls back to its last
//! committed head.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sandkit_policies::{FirewallRules, Policy, Redactor};
use tracing::{Instrument, info, info_span, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{LeaseToken, WorkspaceId};
use crate::lease::{AcquireRequest, Heartbeat, workspace_renewal};
use crate::model::{
    Lease, LeaseKind, RunKind, RunRecord, RunStatus, SnapshotRef, WorkspaceRecord, now,
};
use crate::output::{CommandResult, LogBuffer};
use crate::provider::{LogStream, ProcessHandle, ProcessInfo, ProviderSession};
use crate::sandkit::Inner;
use crate::spec::{CommandSpec, SessionOptions};
use crate::store::RunWrite;
use crate::workspace::{LeaseInfo, StartPlan, Workspace};

struct SessionState {
    inner: Arc<Inner>,
    workspace_id: WorkspaceId,
    token: LeaseToken,
    provider: Box<dyn ProviderSession>,
    applied: Mutex<Option<FirewallRules>>,
    ended: AtomicBool,
}

/// A live session. Cheap to clone; all clones share the lease.
#[derive(Clone)]
pub struct Session {
    state: Arc<SessionState>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("workspace", &self.state.workspace_id)
            .field("session", &self.state.provider.session_ref().id)
            .field("ended", &self.state.ended.load(Ordering::SeqCst))
            .finish()
    }
}

impl Workspace {
    /// Opens a live session: takes the session lease and starts a sandbox from the head
    /// (or the setup snapshot, or fresh). `Busy` while another lease is live.
    pub async fn open_session(&self, opts: SessionOptions) -> Result<Session> {
        if let Some(policy) = &opts.policy {
            policy
                .ensure_durable()
                .map_err(|e| Error::from(e).context("session policy"))?;
        }
        if opts.timeout.is_some_and(|t| t < Duration::from_secs(1)) {
            return Err(Error::invalid_input("session timeout must be at least 1s"));
        }
        let inner = self.inner().clone();
        let ws = inner.load(self.id()).await?;
        let timeout = opts
            .timeout
            .or(ws.sandbox_config.timeout())
            .unwrap_or(inner.config.default_sandbox_timeout);
        let (_, rules) = inner.effective_rules(opts.policy.as_ref(), &ws)?;
        inner.check_sandbox_config(&ws, timeout)?;

        let name = crate::ids::session_name();
        let (ws, lease) = inner
            .acquire(
                self.id(),
                AcquireRequest {
                    kind: LeaseKind::Session,
                    ttl: inner.config.command_lease_ttl,
                    run: None,
                    policy_snapshot: None,
                    session_policy: opts.policy.clone(),
                    session: inner.provider.planned_session(&name),
                },
                Some(ws.clone()),
            )
            .await?;
        // Keep the provisional lease alive while the sandbox starts (setup may run).
        let shared = Arc::new(Mutex::new(lease.clone()));
        let heartbeat = Heartbeat::start(
            format!("workspace {} (opening session)", ws.id),
            inner.config.heartbeat_interval,
            workspace_renewal(
                inner.clone(),
                ws.id.clone(),
                shared.clone(),
                inner.config.command_lease_ttl,
            ),
        );
        let plan = StartPlan {
            rules: rules.clone(),
            timeout,
            name: Some(name),
        };
        let span = info_span!("open_session", workspace = %ws.id);
        let started = inner.start_for(&ws, plan).instrument(span).await;
        heartbeat.stop().await;
        let provider_session = match started {
            Ok((session, _)) => session,
            Err(e) => {
                if let Err(release) = inner
                    .fenced(&ws.id, &lease.token, None, None, Vec::new())
                    .await
                {
                    warn!(error = %release, "could not release the session lease after a failed start");
                }
                return Err(e);
            }
        };
        let mut live = shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        live.session = Some(provider_session.session_ref());
        live.expires_at = provider_session
            .expires_at()
            .unwrap_or_else(|| now() + crate::lease::chrono_duration(timeout));
        if let Err(e) = inner
            .fenced(&ws.id, &lease.token, Some(live.clone()), None, Vec::new())
            .await
        {
            let _ = provider_session.stop().await;
            return Err(e);
        }
        info!(workspace = %ws.id, session = %provider_session.session_ref().id, expires_at = %live.expires_at, "session opened");
        Ok(Session::new(
            inner,
            ws.id,
            lease.token,
            provider_session,
            Some(rules),
        ))
    }

    /// Attaches to the live session from any handle or process. `NoActiveSession` when
    /// there is none; a session whose lease expired or whose sandbox is gone is released
    /// (the workspace keeps its head) and reported as `NoActiveSession`.
    pub async fn attach_session(&self) -> Result<Session> {
        match self.attach_or_finish().await? {
            Attach::Live(session) => Ok(session),
            Attach::Finished(snapshot) => Err(Error::no_active_session(format!(
                "There is no active sandbox session to attach for workspace {}: it was being \
                 committed by a process that died after taking its snapshot, and that commit \
                 is now finished (snapshot {} is the head); open a new session",
                self.id(),
                snapshot.id
            ))),
        }
    }

    /// Commits the live session from any process: [`attach_session`](Self::attach_session)
    /// then [`Session::commit`]. Safe to retry after a crash: when the process that was
    /// committing died after the provider took the snapshot, this finishes that commit
    /// (the snapshot becomes the head) instead of failing or taking another.
    pub async fn commit_session(&self) -> Result<()> {
        match self.attach_or_finish().await? {
            Attach::Live(session) => session.commit().await,
            Attach::Finished(snapshot) => {
                info!(workspace = %self.id(), snapshot = %snapshot.id, "session commit finished by recovery");
                Ok(())
            }
        }
    }

    async fn attach_or_finish(&self) -> Result<Attach> {
        let inner = self.inner().clone();
        let ws = inner.load(self.id()).await?;
        let none = |why: &str| {
            Error::no_active_session(format!(
                "There is no active sandbox session to attach for workspace {}{why}; open one with open_session()",
                ws.id
            ))
        };
        let Some(lease) = ws.lease.clone() else {
            return Err(none(""));
        };
        if lease.kind != LeaseKind::Session {
            return Err(none(" (a durable command holds it)"));
        }
        if !lease.is_live(now()) {
            if let Some(snapshot) = inner.release_expired(&ws).await? {
                return Ok(Attach::Finished(snapshot));
            }
            return Err(none(
                " (its lease expired; the workspace keeps its last commit)",
            ));
        }
        let Some(session_ref) = &lease.session else {
            return Err(Error::busy(format!(
                "the session of workspace {} is still starting; retry in a moment",
                ws.id
            )));
        };
        match inner.provider.attach(session_ref).await {
            Ok(provider_session) => {
                info!(workspace = %ws.id, session = %session_ref.id, "session attached");
                Ok(Attach::Live(Session::new(
                    inner,
                    ws.id.clone(),
                    lease.token.clone(),
                    provider_session,
                    None,
                )))
            }
            Err(e) if e.kind() == &ErrorKind::SessionUnavailable => {
                warn!(workspace = %ws.id, session = %session_ref.id, error = %e, "session lost at the provider; releasing its lease");
                if let Some(snapshot) = inner.release_expired(&ws).await? {
                    return Ok(Attach::Finished(snapshot));
                }
                Err(none(
                    " (its sandbox is gone at the provider; the workspace keeps its last commit)",
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// What attaching found: the live session, or a commit left half done by a dead
/// process, now finished with this snapshot as the head.
enum Attach {
    Live(Session),
    Finished(SnapshotRef),
}

impl Session {
    fn new(
        inner: Arc<Inner>,
        workspace_id: WorkspaceId,
        token: LeaseToken,
        provider: Box<dyn ProviderSession>,
        applied: Option<FirewallRules>,
    ) -> Self {
        Session {
            state: Arc::new(SessionState {
                inner,
                workspace_id,
                token,
                provider,
                applied: Mutex::new(applied),
                ended: AtomicBool::new(false),
            }),
        }
    }

    /// Provider session id.
    pub fn id(&self) -> String {
        self.state.provider.session_ref().id
    }

    /// The workspace.
    pub fn workspace_id(&self) -> &WorkspaceId {
        &self.state.workspace_id
    }

    /// The session lease as stored now.
    pub async fn lease(&self) -> Result<LeaseInfo> {
        let ws = self.active().await?;
        let lease = ws.lease.as_ref().ok_or_else(|| self.gone(&ws))?;
        Ok(LeaseInfo::from_lease(lease))
    }

    /// Checks this session still holds a live lease; returns the current record.
    async fn active(&self) -> Result<WorkspaceRecord> {
        if self.state.ended.load(Ordering::SeqCst) {
            return Err(Error::session_unavailable(
                "This session was already committed or discarded; open a new one with open_session()",
            ));
        }
        let ws = self.state.inner.load(&self.state.workspace_id).await?;
        match &ws.lease {
            Some(l) if l.token == self.state.token && l.is_live(now()) => Ok(ws),
            _ => Err(self.gone(&ws)),
        }
    }

    fn gone(&self, ws: &WorkspaceRecord) -> Error {
        let why = match &ws.lease {
            Some(l) if l.token == self.state.token => {
                format!("its lease expired at {}", l.expires_at)
            }
            Some(_) => "its lease was taken over".to_owned(),
            None => "its lease was released".to_owned(),
        };
        Error::session_unavailable(format!(
            "This session of workspace {} is no longer active ({why}); the workspace keeps its last commit — open a new session",
            ws.id
        ))
    }

    /// Applies `rules` unless they are already in force.
    async fn apply(&self, rules: FirewallRules) -> Result<()> {
        let current = self
            .state
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if current.as_ref() == Some(&rules) {
            return Ok(());
        }
        self.state.provider.set_policy(&rules).await?;
        *self
            .state
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(rules);
        Ok(())
    }

    /// Rules for a call: explicit → session override → workspace default → allow-all.
    async fn rules_for(
        &self,
        explicit: Option<&Policy>,
    ) -> Result<(WorkspaceRecord, FirewallRules)> {
        let ws = self.active().await?;
        let session_policy = ws.lease.as_ref().and_then(|l| l.policy.clone());
        let chosen = explicit.or(session_policy.as_ref());
        let (_, rules) = self.state.inner.effective_rules(chosen, &ws)?;
        Ok((ws, rules))
    }

    /// Runs a command to completion in the session (not journaled, not committed).
    pub async fn exec(&self, spec: CommandSpec) -> Result<CommandResult> {
        let (handle, redactor) = self.start_exec(spec).await?;
        let log = LogBuffer::default();
        let exit_code = log.pump(handle).await.map_err(|e| e.redacted(&redactor))?;
        Ok(CommandResult::from_logs(exit_code, &log))
    }

    /// Runs a command in the session like [`exec`](Session::exec), but hands back its
    /// live output instead of collecting it: drain [`ProcessHandle::output`] (raw
    /// bytes, any size, backpressured), then await [`ProcessHandle::exit`]. Dropping
    /// the handle stops following the command; it runs on in the session.
    pub async fn exec_streaming(&self, spec: CommandSpec) -> Result<ProcessHandle> {
        Ok(self.start_exec(spec).await?.0)
    }

    /// Applies the command's policy and starts it; with the redactor of the secrets
    /// resolved for it (errors never carry one).
    async fn start_exec(&self, spec: CommandSpec) -> Result<(ProcessHandle, Redactor)> {
        no_key(&spec, "exec")?;
        spec.validate()?;
        let (_, rules) = self.rules_for(spec.policy.as_ref()).await?;
        let redactor = crate::durable::operation_redactor(&self.state.inner, &rules, &spec);
        let started = async {
            self.apply(rules).await?;
            self.state.provider.exec(spec.exec_spec()).await
        }
        .await;
        match started {
            Ok(handle) => Ok((handle, redactor)),
            Err(e) => Err(e.redacted(&redactor)),
        }
    }

    /// Starts a background process; it keeps running until it exits, is killed, or the
    /// session ends.
    pub async fn start_process(&self, spec: CommandSpec) -> Result<Process> {
        no_key(&spec, "start_process")?;
        spec.validate()?;
        let caps = self.state.inner.provider.capabilities();
        if !caps.background_processes {
            return Err(Error::unsupported(format!(
                "provider {} does not support background processes; use exec() instead",
                self.state.inner.provider.id()
            )));
        }
        let (_, rules) = self.rules_for(spec.policy.as_ref()).await?;
        let redactor = crate::durable::operation_redactor(&self.state.inner, &rules, &spec);
        self.apply(rules).await.map_err(|e| e.redacted(&redactor))?;
        let handle = self
            .state
            .provider
            .spawn(spec.exec_spec())
            .await
            .map_err(|e| e.redacted(&redactor))?;
        let id = handle.id.clone();
        let logs = LogBuffer::default();
        let pump = {
            let logs = logs.clone();
            tokio::spawn(async move { logs.pump(handle).await })
        };
        let exit: BoxFuture<'static, Result<i32>> = Box::pin(async move {
            pump.await.unwrap_or_else(|e| {
                Err(Error::provider(
                    None,
                    None,
                    format!("process log task failed: {e}"),
                ))
            })
        });
        info!(workspace = %self.state.workspace_id, process = %id, "background process started");
        Ok(Process {
            id,
            logs,
            exit: exit.shared(),
            session: self.clone(),
        })
    }

    /// Background processes of this session (also those started by other processes).
    pub async fn processes(&self) -> Result<Vec<ProcessInfo>> {
        self.active().await?;
        self.state.provider.processes().await
    }

    /// A background process's output from its start, following until it ends (works
    /// for processes started by another OS process where the provider supports it).
    pub async fn process_logs(&self, process_id: &str) -> Result<LogStream> {
        self.active().await?;
        self.state.provider.process_logs(process_id).await
    }

    /// Stops a background process.
    pub async fn kill(&self, process_id: &str) -> Result<()> {
        self.active().await?;
        self.state.provider.kill(process_id).await
    }

    /// Public URL of a port the workspace exposes.
    pub async fn url(&self, port: u16) -> Result<String> {
        let ws = self.active().await?;
        if !ws.sandbox_config.exposed_ports.contains(&port) {
            return Err(Error::invalid_input(format!(
                "port {port} is not exposed by workspace {}; create the workspace with exposed_ports([{port}])",
                ws.id
            )));
        }
        self.state.provider.url(port).await
    }

    /// Extends the session (and its lease) by `by`; returns the new expiry.
    pub async fn extend(&self, by: Duration) -> Result<DateTime<Utc>> {
        if by.is_zero() {
            return Err(Error::invalid_input("extend duration must be positive"));
        }
        let ws = self.active().await?;
        if !self.state.inner.provider.capabilities().extend_timeout {
            return Err(Error::unsupported(format!(
                "provider {} cannot extend sessions",
                self.state.inner.provider.id()
            )));
        }
        let provider_expiry = self.state.provider.extend(by).await?;
        // Never move the expiry backwards (another handle may have extended further).
        let lease = self
            .state
            .inner
            .update_lease(&ws.id, &self.state.token, |lease| {
                lease.expires_at = lease.expires_at.max(provider_expiry);
            })
            .await?;
        info!(workspace = %ws.id, expires_at = %lease.expires_at, "session extended");
        Ok(lease.expires_at)
    }

    /// Sets the session policy override (no explicit secrets: it is stored with the
    /// lease and restored on attach). The workspace default is unchanged.
    pub async fn set_policy(&self, policy: Policy) -> Result<()> {
        policy
            .ensure_durable()
            .map_err(|e| Error::from(e).context("session policy"))?;
        let (ws, rules) = self.rules_for(Some(&policy)).await?;
        self.apply(rules).await?;
        self.state
            .inner
            .update_lease(&ws.id, &self.state.token, |lease| {
                lease.policy = Some(policy.clone());
            })
            .await
            .map(|_| ())
    }

    /// Snapshots the sandbox (ending it), makes the snapshot the workspace head and
    /// releases the lease.
    pub async fn commit(&self) -> Result<()> {
        let ws = self.active().await?;
        let snapshot = self.state.provider.snapshot().await?;
        self.state.ended.store(true, Ordering::SeqCst);
        // The commit is journaled as a run, so retention and forks see its snapshot.
        let inner = &self.state.inner;
        let lease = ws.lease.as_ref().ok_or_else(|| self.gone(&ws))?;
        let run = session_run(&ws, lease, inner.provider.id(), &self.id(), &snapshot);
        let committed = inner
            .fenced(
                &ws.id,
                &self.state.token,
                None,
                Some(snapshot.clone()),
                vec![RunWrite::Insert(run)],
            )
            .await;
        if let Err(e) = committed {
            inner.resolve_failed_commit(&ws.id, &snapshot, e).await?;
        }
        info!(workspace = %ws.id, snapshot = %snapshot.id, "session committed");
        inner.collect_in_background(ws.id.clone());
        Ok(())
    }

    /// Stops the sandbox and releases the lease; the head is unchanged.
    pub async fn discard(&self) -> Result<()> {
        if self.state.ended.swap(true, Ordering::SeqCst) {
            return Err(Error::session_unavailable(
                "This session was already committed or discarded",
            ));
        }
        if let Err(e) = self.state.provider.stop().await
            && e.kind() != &ErrorKind::SessionUnavailable
        {
            self.state.ended.store(false, Ordering::SeqCst);
            return Err(e);
        }
        match self
            .state
            .inner
            .fenced(
                &self.state.workspace_id,
                &self.state.token,
                None,
                None,
                Vec::new(),
            )
            .await
        {
            // Already released or taken over: the sandbox is stopped either way.
            Ok(()) => {}
            Err(e) if e.kind() == &ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
        info!(workspace = %self.state.workspace_id, "session discarded");
        Ok(())
    }
}

/// The journal entry of a committed session (kind `session`), so retention and forks
/// see its snapshot.
pub(crate) fn session_run(
    ws: &WorkspaceRecord,
    lease: &Lease,
    provider: &str,
    session_id: &str,
    snapshot: &SnapshotRef,
) -> RunRecord {
    let mut run = RunRecord::started(
        ws.id.clone(),
        RunKind::Session,
        "session",
        provider,
        lease.holder.clone(),
    );
    run.policy_description = lease
        .policy
        .as_ref()
        .or(ws.policy.as_ref())
        .map_or_else(|| "allow-all".to_owned(), Policy::describe);
    run.session_id = Some(session_id.to_owned());
    run.base_snapshot = ws.head.clone();
    run.started_at = lease.acquired_at;
    run.finished(RunStatus::Succeeded, Some(snapshot.clone()))
}

fn no_key(spec: &CommandSpec, what: &str) -> Result<()> {
    if spec.idempotency_key.is_some() {
        return Err(Error::invalid_input(format!(
            "idempotency keys apply to durable commands; session {what} is not journaled — use run_command"
        )));
    }
    Ok(())
}

/// A background process started with [`Session::start_process`].
#[derive(Clone)]
pub struct Process {
    id: String,
    logs: LogBuffer,
    exit: Shared<BoxFuture<'static, Result<i32>>>,
    session: Session,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process").field("id", &self.id).finish()
    }
}

impl Process {
    /// Provider-side process id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Output from the start, following until it ends; every call replays.
    pub fn logs(&self) -> LogStream {
        self.logs.stream()
    }

    /// Waits for the process to exit.
    pub async fn wait(&self) -> Result<CommandResult> {
        let exit_code = self.exit.clone().await?;
        Ok(CommandResult::from_logs(exit_code, &self.logs))
    }

    /// Stops it.
    pub async fn kill(&self) -> Result<()> {
        self.session.kill(&self.id).await
    }
}
