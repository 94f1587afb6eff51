//! Durable commands: one command = one committed unit of work.
//!
//! `run_command` = validate → (idempotency lookup) → transaction 1: acquire the command
//! lease and insert the run → start a sandbox from the head with the effective policy →
//! run, streaming output → snapshot → transaction 2 (fenced): commit the head, finish
//! the run, release the lease. The lease is heartbeated while the command runs. The
//! unit of work runs in its own task: it completes even if the caller stops waiting.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sandkit_policies::{FirewallRules, Redactor};
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{RunId, WorkspaceId};
use crate::lease::{AcquireRequest, Heartbeat, busy_error, workspace_renewal};
use crate::model::{
    Lease, LeaseKind, PolicySnapshot, RunFinish, RunKind, RunRecord, RunStatus, SnapshotRef,
    WorkspaceRecord, now, truncation_marker,
};
use crate::output::{CommandResult, LogBuffer, cap_output};
use crate::provider::{LogChunk, LogStream, ProviderSession};
use crate::sandkit::Inner;
use crate::spec::CommandSpec;
use crate::store::RunWrite;
use crate::workspace::{StartPlan, Workspace, finished_result};

/// Extra sandbox lifetime beyond a command's own timeout, to snapshot in.
const SNAPSHOT_MARGIN: Duration = Duration::from_secs(120);

/// Where a durable command is in its unit of work (for progress displays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandPhase {
    /// Lease held; starting the sandbox (restoring the head, or building the setup).
    Starting,
    /// The command runs.
    Running,
    /// The command exited; snapshotting and committing.
    Committing,
    /// Committed (or failed): `wait` returns now.
    Done,
}

/// A durable command started with [`Workspace::spawn_command`]: its output can be
/// followed while it runs, and [`wait`](Command::wait) returns once it is committed.
/// Dropping it does not stop the command or its commit.
#[derive(Clone)]
pub struct Command {
    run_id: RunId,
    logs: LogBuffer,
    phase: watch::Receiver<CommandPhase>,
    result: Shared<BoxFuture<'static, Result<CommandResult>>>,
    interrupt: Arc<watch::Sender<Option<String>>>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("run_id", &self.run_id)
            .finish()
    }
}

impl Command {
    /// The durable run.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Output chunks (raw bytes) from the start, following live until the command ends.
    /// Every call replays from the first chunk kept in memory; past the in-memory cap
    /// ([`DEFAULT_LOG_MEMORY_CAP`](crate::DEFAULT_LOG_MEMORY_CAP)) a stream gets all
    /// output from then on, and the command waits for it when it falls behind, so drop
    /// a stream you stop reading.
    pub fn logs(&self) -> LogStream {
        self.logs.stream()
    }

    /// Waits until the command ran, its snapshot was committed and the lease released.
    pub async fn wait(&self) -> Result<CommandResult> {
        self.result.clone().await
    }

    /// The current phase; `changed().await` on the receiver follows it.
    pub fn phase(&self) -> watch::Receiver<CommandPhase> {
        self.phase.clone()
    }

    /// Stops the command before it commits (e.g. on Ctrl-C): its sandbox is stopped,
    /// the run is journaled as interrupted with `reason`, the lease is released and the
    /// workspace keeps its previous head; [`wait`](Command::wait) then returns an
    /// `Interrupted` error. Once the command has exited and its commit begun, the commit
    /// completes instead. Interrupting a replayed or finished command does nothing.
    pub fn interrupt(&self, reason: impl Into<String>) {
        self.interrupt.send_replace(Some(reason.into()));
    }

    fn replayed(result: CommandResult) -> Self {
        let logs = LogBuffer::default();
        logs.push(LogChunk::stdout(result.stdout_bytes().to_vec()));
        logs.push(LogChunk::stderr(result.stderr_bytes().to_vec()));
        logs.close(None);
        let run_id = result
            .run_id
            .clone()
            .unwrap_or_else(|| RunId::from_stored(String::new()));
        let ready: BoxFuture<'static, Result<CommandResult>> =
            Box::pin(std::future::ready(Ok(result)));
        Command {
            run_id,
            logs,
            phase: watch::channel(CommandPhase::Done).1,
            result: ready.shared(),
            interrupt: Arc::new(watch::channel(None).0),
        }
    }
}

impl Workspace {
    /// Runs a command as one durable unit of work and returns its result once committed.
    /// A non-zero exit code is a result, not an error.
    pub async fn run_command(&self, spec: CommandSpec) -> Result<CommandResult> {
        self.spawn_command(spec).await?.wait().await
    }

    /// Starts a durable command and returns as soon as its lease is held: follow
    /// [`Command::logs`], then [`Command::wait`].
    pub async fn spawn_command(&self, spec: CommandSpec) -> Result<Command> {
        spec.validate()?;
        let inner = self.inner().clone();
        if let Some(key) = spec.get_idempotency_key()
            && let Some(found) = inner.replay(self.id(), key).await?
        {
            return Ok(Command::replayed(found));
        }
        let ws = inner.load(self.id()).await?;
        let (policy, rules) = inner.effective_rules(spec.policy.as_ref(), &ws)?;
        let timeout = sandbox_timeout(&inner, &ws, spec.timeout);
        inner.check_sandbox_config(&ws, timeout)?;
        let redactor = operation_redactor(&inner, &rules, &spec);

        let mut run = RunRecord::started(
            ws.id.clone(),
            RunKind::Command,
            spec.command.clone(),
            inner.provider.id(),
            inner.config.holder.clone(),
        );
        run.args = spec.args.clone();
        run.cwd = spec.cwd.clone();
        run.env_keys = spec.env.keys().cloned().collect();
        run.policy_description = policy.describe();
        run.policy_snapshot_id = Some(crate::ids::policy_snapshot_id());
        run.base_snapshot = ws.head.clone();
        run.idempotency_key = spec.idempotency_key.clone();
        let at = run.started_at;
        let policy_snapshot = PolicySnapshot {
            id: run.policy_snapshot_id.clone().unwrap_or_default(),
            workspace_id: ws.id.clone(),
            policy_id: policy.describe(),
            config: policy.redacted(),
            created_at: at,
        };
        let run_id = run.id.clone();
        let name = crate::ids::session_name();
        let acquired = inner
            .acquire(
                self.id(),
                AcquireRequest {
                    kind: LeaseKind::Command,
                    ttl: inner.config.command_lease_ttl,
                    run: Some(run),
                    policy_snapshot: Some(policy_snapshot),
                    session_policy: None,
                    session: inner.provider.planned_session(&name),
                },
                Some(ws.clone()),
            )
            .await;
        let (ws, lease) = match acquired {
            Ok(pair) => pair,
            // The same key raced in from another caller: answer like that caller will.
            Err(e) if e.kind() == &ErrorKind::AlreadyExists => {
                if let Some(key) = spec.get_idempotency_key()
                    && let Some(found) = inner.replay(self.id(), key).await?
                {
                    return Ok(Command::replayed(found));
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };

        let logs = LogBuffer::default();
        let (phase_tx, phase) = watch::channel(CommandPhase::Starting);
        let (interrupt, interrupted) = watch::channel(None);
        let unit = UnitOfWork {
            phase: phase_tx,
            interrupted,
            inner: inner.clone(),
            ws,
            lease,
            run_id: run_id.clone(),
            spec,
            plan: StartPlan {
                rules,
                timeout,
                name: Some(name),
            },
            logs: logs.clone(),
            redactor,
        };
        let span = info_span!("run_command", workspace = %self.id(), run = %run_id);
        let task = tokio::spawn(unit.run().instrument(span));
        let result: BoxFuture<'static, Result<CommandResult>> = Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                Err(Error::storage(format!(
                    "the durable command task ended abnormally ({e}); its lease will expire and the next operation recovers it"
                )))
            })
        });
        Ok(Command {
            run_id,
            logs,
            phase,
            result: result.shared(),
            interrupt: Arc::new(interrupt),
        })
    }
}

/// Every secret value Sandkit resolved for a command: injected credentials, the
/// command's environment values and the provider's own tokens.
pub(crate) fn operation_redactor(
    inner: &Inner,
    rules: &FirewallRules,
    spec: &CommandSpec,
) -> Redactor {
    let mut redactor = inner.provider.secrets();
    redactor.add_rules(rules);
    for value in spec.env.values() {
        redactor.add(value);
    }
    redactor
}

fn sandbox_timeout(
    inner: &Inner,
    ws: &WorkspaceRecord,
    command_timeout: Option<Duration>,
) -> Duration {
    let base = ws
        .sandbox_config
        .timeout()
        .unwrap_or(inner.config.default_sandbox_timeout);
    match command_timeout {
        Some(t) => base.max(t.saturating_add(SNAPSHOT_MARGIN)),
        None => base,
    }
}

impl Inner {
    /// The recorded result of a finished run with this key; `Busy` while it runs.
    async fn replay(&self, ws: &WorkspaceId, key: &str) -> Result<Option<CommandResult>> {
        let Some(run) = self.store.find_run_by_key(ws, key).await? else {
            return Ok(None);
        };
        if let Some(result) = finished_result(&run) {
            info!(workspace = %ws, run = %run.id, "idempotency key matched a finished run; replaying its result");
            return Ok(Some(result));
        }
        if run.status == RunStatus::Started {
            let record = self.load(ws).await?;
            if let Some(lease) = record.live_lease(now()) {
                if lease.run_id.as_ref() == Some(&run.id) {
                    return Err(Error::busy(format!(
                        "run {} with idempotency key {key:?} is still in flight in workspace {ws}; wait for it and retry",
                        run.id
                    )));
                }
                return Err(busy_error(&record, lease));
            }
        }
        // Started under an expired lease: acquiring recovers it and frees the key.
        Ok(None)
    }
}

struct UnitOfWork {
    phase: watch::Sender<CommandPhase>,
    /// Set (with a reason) by [`Command::interrupt`].
    interrupted: watch::Receiver<Option<String>>,
    inner: Arc<Inner>,
    ws: WorkspaceRecord,
    lease: Lease,
    run_id: RunId,
    spec: CommandSpec,
    plan: StartPlan,
    logs: LogBuffer,
    /// Every secret value resolved for this command, scrubbed from what is stored or logged.
    redactor: Redactor,
}

/// What the sandbox phase produced.
struct Ran {
    exit_code: i32,
    snapshot: SnapshotRef,
    session_id: String,
}

impl UnitOfWork {
    async fn run(self) -> Result<CommandResult> {
        let phase = self.phase.clone();
        let result = self.run_inner().await;
        let _ = phase.send(CommandPhase::Done);
        result
    }

    async fn run_inner(self) -> Result<CommandResult> {
        let shared_lease = Arc::new(Mutex::new(self.lease.clone()));
        let heartbeat = Heartbeat::start(
            format!("workspace {}", self.ws.id),
            self.inner.config.heartbeat_interval,
            workspace_renewal(
                self.inner.clone(),
                self.ws.id.clone(),
                shared_lease.clone(),
                self.inner.config.command_lease_ttl,
            ),
        );
        let lost = heartbeat.lost();
        let mut interrupted = self.interrupted.clone();
        let ran = tokio::select! {
            ran = self.sandbox_phase(&shared_lease) => ran,
            () = lost => {
                // Taken over mid-run: stop our sandbox; the new holder owns the workspace.
                self.discard_session(&shared_lease).await;
                Err(crate::lease::lease_lost(&self.ws.id))
            }
            reason = async {
                let reason = interrupted
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .map(|r| r.clone().unwrap_or_default());
                match reason {
                    Some(reason) => reason,
                    // Every handle dropped: nobody can interrupt any more.
                    None => std::future::pending().await,
                }
            } => {
                self.discard_session(&shared_lease).await;
                Err(Error::interrupted(format!(
                    "interrupted ({reason}) before it committed: its sandbox was stopped and \
                     workspace {} keeps its previous head",
                    self.ws.id
                )))
            }
        };
        heartbeat.stop().await;
        let token = self.lease.token.clone();
        match ran {
            Ok(ran) => self.commit(ran, token).await,
            Err(e) => {
                let e = e.redacted(&self.redactor);
                self.logs.close(Some(e.clone()));
                let status = if e.kind() == &ErrorKind::Interrupted {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Failed
                };
                let mut finish = RunFinish::without_result(status, e.to_string());
                finish.session_id = lock(&shared_lease).session.as_ref().map(|s| s.id.clone());
                let release = self
                    .inner
                    .fenced(
                        &self.ws.id,
                        &token,
                        None,
                        None,
                        vec![RunWrite::Finish {
                            id: self.run_id.clone(),
                            finish,
                        }],
                    )
                    .await;
                if let Err(release) = release {
                    let release = release.redacted(&self.redactor);
                    warn!(error = %release, "could not record the failed run; its lease will expire and be recovered");
                }
                // The error goes back to the caller, who reports it: logging it louder
                // here would print every failure twice.
                if status == RunStatus::Interrupted {
                    info!(error = %e, "durable command interrupted; the workspace keeps its previous head");
                } else {
                    info!(error = %e, "durable command failed; the workspace keeps its previous head");
                }
                Err(e)
            }
        }
    }

    /// Stops the sandbox the lease names, when this unit of work gives it up midway.
    async fn discard_session(&self, shared_lease: &Mutex<Lease>) {
        let session = lock(shared_lease).session.clone();
        if let Some(session) = session
            && let Err(e) = self.inner.provider.discard_session(&session).await
        {
            let e = e.redacted(&self.redactor);
            warn!(session = %session.id, error = %e, "could not stop the sandbox of an abandoned command");
        }
    }

    /// Start → run → snapshot. On failure after start, the sandbox is stopped.
    async fn sandbox_phase(&self, shared_lease: &Mutex<Lease>) -> Result<Ran> {
        let plan = StartPlan {
            rules: self.plan.rules.clone(),
            timeout: self.plan.timeout,
            name: self.plan.name.clone(),
        };
        let (session, base) = self.inner.start_for(&self.ws, plan).await?;
        let session_ref = session.session_ref();
        let unrecorded = {
            let mut lease = lock(shared_lease);
            let unrecorded = lease.session.is_none();
            lease.session = Some(session_ref.clone());
            unrecorded.then(|| lease.clone())
        };
        if let Some(lease) = unrecorded {
            // The provider could not name the session in advance: record it now, so
            // that recovery can stop it if this process dies.
            let token = lease.token.clone();
            if let Err(e) = self
                .inner
                .fenced(&self.ws.id, &token, Some(lease), None, Vec::new())
                .await
            {
                let _ = session.stop().await;
                return Err(e);
            }
        }
        info!(session = %session_ref.id, from = ?base.as_ref().map(|s| &s.id), "sandbox started");
        let _ = self.phase.send(CommandPhase::Running);
        let executed = self.execute(&*session).await;
        let _ = self.phase.send(CommandPhase::Committing);
        match executed {
            Ok(exit_code) => {
                let snapshot = match session.snapshot().await {
                    Ok(snapshot) => snapshot,
                    Err(e) => {
                        // The sandbox may still be running: do not leave it behind.
                        let _ = session.stop().await;
                        return Err(e.context(format!(
                            "the command exited with {exit_code} but its snapshot failed, so nothing was committed"
                        )));
                    }
                };
                Ok(Ran {
                    exit_code,
                    snapshot,
                    session_id: session_ref.id,
                })
            }
            Err(e) => {
                if let Err(stop) = session.stop().await {
                    let stop = stop.redacted(&self.redactor);
                    warn!(error = %stop, "could not stop the sandbox after a failure");
                }
                Err(e)
            }
        }
    }

    async fn execute(&self, session: &dyn ProviderSession) -> Result<i32> {
        let handle = session.exec(self.spec.exec_spec()).await?;
        // Providers enforce the command timeout; this backstop bounds a provider that
        // hangs (by the command timeout, else the sandbox lifetime, plus a margin).
        let limit = self
            .spec
            .timeout
            .unwrap_or(self.plan.timeout)
            .saturating_add(SNAPSHOT_MARGIN);
        tokio::time::timeout(limit, self.logs.pump(handle))
            .await
            .unwrap_or_else(|_| {
                Err(Error::provider(
                    None,
                    None,
                    format!(
                        "the provider did not end the command within {}s; the sandbox was stopped",
                        limit.as_secs()
                    ),
                ))
            })
    }

    async fn commit(&self, ran: Ran, token: crate::ids::LeaseToken) -> Result<CommandResult> {
        let mut result = CommandResult::from_logs(ran.exit_code, &self.logs);
        result.run_id = Some(self.run_id.clone());
        let cap = self.inner.config.output_cap;
        let (out_written, err_written) = self.logs.written();
        // The stored copy never holds a secret, even one the command printed itself
        // (the live stream and the returned result are the caller's own output).
        let (stored_out, out_cut) = stored_output(
            &self.redactor.scrub(&result.stdout),
            result.stdout_truncated,
            out_written,
            cap,
            "stdout",
        );
        let (stored_err, err_cut) = stored_output(
            &self.redactor.scrub(&result.stderr),
            result.stderr_truncated,
            err_written,
            cap,
            "stderr",
        );
        let finish = RunFinish {
            status: if ran.exit_code == 0 {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            },
            exit_code: Some(ran.exit_code),
            stdout: Some(stored_out),
            stderr: Some(stored_err),
            stdout_truncated: out_cut,
            stderr_truncated: err_cut,
            session_id: Some(ran.session_id),
            snapshot: Some(ran.snapshot.clone()),
            error: None,
            release_idempotency_key: false,
            finished_at: now(),
        };
        let committed = self
            .inner
            .fenced(
                &self.ws.id,
                &token,
                None,
                Some(ran.snapshot.clone()),
                vec![RunWrite::Finish {
                    id: self.run_id.clone(),
                    finish,
                }],
            )
            .await;
        if let Err(e) = committed {
            self.inner
                .resolve_failed_commit(&self.ws.id, &ran.snapshot, e)
                .await
                .map_err(|e| e.redacted(&self.redactor))?;
        }
        info!(exit_code = ran.exit_code, snapshot = %ran.snapshot.id, "durable command committed");
        self.inner.collect_in_background(self.ws.id.clone());
        Ok(result)
    }
}

/// The journal's copy of a stream: `text` cut at `cap`; when anything is missing (cut
/// here or over the in-memory cap), followed by a marker line with the bytes written.
fn stored_output(
    text: &str,
    truncated: bool,
    written: u64,
    cap: usize,
    stream: &str,
) -> (String, bool) {
    let (mut stored, cut) = cap_output(text, cap);
    if cut || truncated {
        stored.push_str(&truncation_marker(stream, written));
    }
    (stored, cut || truncated)
}

fn lock(lease: &Mutex<Lease>) -> std::sync::MutexGuard<'_, Lease> {
    lease
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
