//! A [`Provider`] wrapper for the scenarios: it records the commands it runs (so a
//! scenario can count, say, setup builds) and, in a crash child, stops dead at one
//! step of a durable command so that the parent can `kill -9` it there.
//!
//! Stopping means: print `READY <step>` on stdout and never return. The parent reads
//! the line and sends SIGKILL; nothing in the child runs after the step.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sandkit_core::policies::FirewallRules;
use sandkit_core::{
    Capabilities, Error, ExecSpec, LogStream, ProcessHandle, ProcessInfo, Provider,
    ProviderSession, Result, SessionRef, SnapshotInfo, SnapshotRef, StartSpec,
};

/// Environment variable naming the step at which a crash child stops.
pub const CRASH_VAR: &str = "SMOKE_CRASH_AT";

/// How long a Vercel command request is given to reach the API before the child
/// reports it running (its answer only comes when the command ends).
const VERCEL_EXEC_GRACE: Duration = Duration::from_millis(300);

/// A step of a durable command at which a crash child stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashStep {
    /// At sandbox start: the lease and the run row exist, no sandbox yet.
    Start,
    /// While the command runs in the sandbox.
    Exec,
    /// Right after the snapshot was taken, before the commit.
    Snapshot,
}

impl CrashStep {
    /// Every step, in the order a durable command reaches them.
    pub const ALL: [CrashStep; 3] = [CrashStep::Start, CrashStep::Exec, CrashStep::Snapshot];

    /// The name used in `SMOKE_CRASH_AT` and in `READY` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashStep::Start => "start",
            CrashStep::Exec => "exec",
            CrashStep::Snapshot => "snapshot",
        }
    }

    /// Parses a step name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw.trim())
    }
}

/// Prints `READY <step> [detail]` and flushes, so the parent sees it at once.
fn announce(step: CrashStep, detail: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "READY {} {detail}", step.as_str());
    let _ = out.flush();
}

/// Announces `step`, then waits for the SIGKILL that ends the process.
async fn stop_dead<T>(step: CrashStep, detail: &str) -> T {
    announce(step, detail);
    std::future::pending().await
}

#[derive(Debug, Default)]
struct Journal {
    commands: Vec<String>,
}

/// The wrapper: delegates everything to the inner provider.
#[derive(Debug, Clone)]
pub struct Instrumented {
    inner: Arc<dyn Provider>,
    crash_at: Option<CrashStep>,
    journal: Arc<Mutex<Journal>>,
}

impl Instrumented {
    /// Wraps `inner`; it records commands and never stops.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Instrumented {
            inner,
            crash_at: None,
            journal: Arc::default(),
        }
    }

    /// Stops dead at `step` (crash children only: the process never gets past it).
    pub fn crash_at(mut self, step: Option<CrashStep>) -> Self {
        self.crash_at = step;
        self
    }

    /// How many commands run through this provider (and its clones) contained `needle`
    /// in their command line.
    pub fn commands_containing(&self, needle: &str) -> usize {
        self.lock()
            .commands
            .iter()
            .filter(|c| c.contains(needle))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wrap(&self, session: Box<dyn ProviderSession>) -> Box<dyn ProviderSession> {
        Box::new(InstrumentedSession {
            inner: session,
            provider: self.clone(),
        })
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Provider for Instrumented {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    async fn start(&self, spec: StartSpec) -> Result<Box<dyn ProviderSession>> {
        if self.crash_at == Some(CrashStep::Start) {
            return stop_dead(CrashStep::Start, "").await;
        }
        let session = self.inner.start(spec).await?;
        Ok(self.wrap(session))
    }

    async fn attach(&self, session: &SessionRef) -> Result<Box<dyn ProviderSession>> {
        let session = self.inner.attach(session).await?;
        Ok(self.wrap(session))
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        self.inner.delete_snapshot(snapshot).await
    }

    fn planned_session(&self, name: &str) -> Option<SessionRef> {
        self.inner.planned_session(name)
    }

    async fn discard_session(&self, session: &SessionRef) -> Result<()> {
        self.inner.discard_session(session).await
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        self.inner.list_snapshots().await
    }

    async fn find_session_snapshot(&self, session: &SessionRef) -> Result<Option<SnapshotRef>> {
        self.inner.find_session_snapshot(session).await
    }

    async fn snapshot_exists(&self, snapshot: &SnapshotRef) -> Result<bool> {
        self.inner.snapshot_exists(snapshot).await
    }

    fn secrets(&self) -> sandkit_core::policies::Redactor {
        self.inner.secrets()
    }
}

#[derive(Debug)]
struct InstrumentedSession {
    inner: Box<dyn ProviderSession>,
    provider: Instrumented,
}

impl InstrumentedSession {
    fn record(&self, spec: &ExecSpec) {
        let line = std::iter::once(spec.command.as_str())
            .chain(spec.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        self.provider.lock().commands.push(line);
    }

    /// Starts the command, reports it running, and never returns.
    async fn exec_then_stop(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        let vercel = self.provider.inner.id() == sandkit_vercel::PROVIDER_ID;
        let exec = self.inner.exec(spec);
        tokio::pin!(exec);
        // The local provider answers once the process runs. Vercel answers when the
        // command ends, so there the request is given time to arrive (the parent
        // confirms it with the fake API's request log).
        let answered = if vercel {
            tokio::select! {
                handle = &mut exec => Some(handle),
                () = tokio::time::sleep(VERCEL_EXEC_GRACE) => None,
            }
        } else {
            Some(exec.as_mut().await)
        };
        announce(CrashStep::Exec, "");
        // Keep the command (or its request) alive until the SIGKILL.
        let _running = match answered {
            Some(handle) => handle,
            None => exec.await,
        };
        std::future::pending().await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ProviderSession for InstrumentedSession {
    fn session_ref(&self) -> SessionRef {
        self.inner.session_ref()
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.inner.expires_at()
    }

    async fn set_policy(&self, rules: &FirewallRules) -> Result<()> {
        self.inner.set_policy(rules).await
    }

    async fn exec(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        self.record(&spec);
        if self.provider.crash_at == Some(CrashStep::Exec) {
            return self.exec_then_stop(spec).await;
        }
        self.inner.exec(spec).await
    }

    async fn spawn(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        self.record(&spec);
        self.inner.spawn(spec).await
    }

    async fn processes(&self) -> Result<Vec<ProcessInfo>> {
        self.inner.processes().await
    }

    async fn process_logs(&self, process_id: &str) -> Result<LogStream> {
        self.inner.process_logs(process_id).await
    }

    async fn kill(&self, process_id: &str) -> Result<()> {
        self.inner.kill(process_id).await
    }

    async fn snapshot(&self) -> Result<SnapshotRef> {
        let snapshot = self.inner.snapshot().await?;
        if self.provider.crash_at == Some(CrashStep::Snapshot) {
            return stop_dead(CrashStep::Snapshot, &snapshot.id).await;
        }
        Ok(snapshot)
    }

    async fn stop(&self) -> Result<()> {
        self.inner.stop().await
    }

    async fn url(&self, port: u16) -> Result<String> {
        self.inner.url(port).await
    }

    async fn extend(&self, by: Duration) -> Result<DateTime<Utc>> {
        self.inner.extend(by).await
    }

    fn unsupported(&self, what: &str) -> Error {
        self.inner.unsupported(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_steps_round_trip_their_names() {
        for step in CrashStep::ALL {
            assert_eq!(CrashStep::parse(step.as_str()), Some(step));
        }
        assert_eq!(CrashStep::parse(" exec "), Some(CrashStep::Exec));
        assert_eq!(CrashStep::parse("commit"), None);
    }
}
