//! `FakeProvider`: an in-memory, scripted provider with fault injection.
//!
//! Sessions hold an in-memory filesystem; snapshots copy it. Commands run in a tiny
//! shell (see the `shell` module docs for the command set). Faults can fail the next
//! start / exec / snapshot, delay every call, lose sessions or snapshots. Counters record
//! every call so tests can assert exact costs.

mod shell;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sandkit_core::{
    Capabilities, Error, ExecSpec, LogBuffer, LogStream, NetworkCapabilities, PortCapabilities,
    ProcessHandle, ProcessInfo, Provider, ProviderSession, Result, SessionRef, SnapshotRef,
    StartSpec, WorkspaceId,
};
use sandkit_policies::FirewallRules;
use shell::{Machine, SharedMachine};
use tokio::sync::Notify;

/// Working directory of every fake session.
pub const FAKE_ROOT: &str = "/workspace";

/// How many times each provider operation was called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calls {
    /// `start` calls.
    pub starts: u64,
    /// `start` calls that restored a snapshot.
    pub restores: u64,
    /// `attach` calls.
    pub attaches: u64,
    /// `exec` calls.
    pub execs: u64,
    /// `spawn` calls.
    pub spawns: u64,
    /// `set_policy` calls.
    pub set_policies: u64,
    /// `snapshot` calls.
    pub snapshots: u64,
    /// `stop` calls.
    pub stops: u64,
    /// `extend` calls.
    pub extends: u64,
    /// `delete_snapshot` calls.
    pub deletes: u64,
}

impl Calls {
    /// Calls that cost a provider round trip in a durable command (start, exec,
    /// set_policy, snapshot, stop).
    pub fn total(&self) -> u64 {
        self.starts
            + self.attaches
            + self.execs
            + self.spawns
            + self.set_policies
            + self.snapshots
            + self.stops
            + self.extends
            + self.deletes
    }
}

#[derive(Debug, Default)]
struct Faults {
    fail_start: u32,
    fail_exec: u32,
    fail_snapshot: u32,
    fail_delete: u32,
    delay: Duration,
    /// Appended to every injected failure's message (a provider echoing its input).
    message: Option<String>,
    /// The provider's own secret (an API token), reported by `Provider::secrets`.
    token: Option<String>,
}

#[derive(Debug)]
struct Proc {
    command: Vec<String>,
    logs: LogBuffer,
    exit: Arc<Mutex<Option<i32>>>,
    cancel: Arc<Notify>,
}

#[derive(Debug)]
struct FakeSession {
    workspace: String,
    machine: SharedMachine,
    alive: bool,
    expires_at: DateTime<Utc>,
    ports: Vec<u16>,
    procs: HashMap<String, Proc>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<String, FakeSession>,
    snapshots: HashMap<String, std::collections::BTreeMap<String, String>>,
    /// The snapshot each session ended with.
    ended_with: HashMap<String, String>,
    faults: Faults,
    calls: Calls,
    max_alive_per_workspace: usize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    next_id: AtomicU64,
    caps: Capabilities,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next(&self, prefix: &str) -> String {
        format!("{prefix}_{}", self.next_id.fetch_add(1, Ordering::SeqCst))
    }

    async fn pause(&self) {
        let delay = self.lock().faults.delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// An in-memory provider for tests (id `fake`). Clones share state.
#[derive(Debug, Clone)]
pub struct FakeProvider {
    shared: Arc<Shared>,
}

impl Default for FakeProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeProvider {
    /// A provider declaring every capability.
    pub fn new() -> Self {
        Self::with_capabilities(Self::full_capabilities())
    }

    /// A provider declaring exactly `caps`.
    pub fn with_capabilities(caps: Capabilities) -> Self {
        FakeProvider {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                next_id: AtomicU64::new(1),
                caps,
            }),
        }
    }

    /// Every capability on.
    pub fn full_capabilities() -> Capabilities {
        Capabilities {
            ports: Some(PortCapabilities {
                min: 1,
                max: 65535,
                max_count: 16,
            }),
            extend_timeout: true,
            background_processes: true,
            network: NetworkCapabilities {
                allow_all: true,
                deny_all: true,
                allow_services: true,
                header_injection: true,
            },
            snapshot_delete: true,
            fork: true,
            cross_process_attach: false,
            max_timeout: Some(Duration::from_secs(24 * 3600)),
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> Calls {
        self.shared.lock().calls.clone()
    }

    /// Resets the call counters.
    pub fn reset_calls(&self) {
        self.shared.lock().calls = Calls::default();
    }

    /// Fails the next `n` starts with a provider error.
    pub fn fail_next_start(&self, n: u32) {
        self.shared.lock().faults.fail_start = n;
    }

    /// Fails the next `n` execs with a provider error.
    pub fn fail_next_exec(&self, n: u32) {
        self.shared.lock().faults.fail_exec = n;
    }

    /// Fails the next `n` snapshots with a provider error.
    pub fn fail_next_snapshot(&self, n: u32) {
        self.shared.lock().faults.fail_snapshot = n;
    }

    /// Fails the next `n` snapshot deletions with a provider error.
    pub fn fail_next_delete(&self, n: u32) {
        self.shared.lock().faults.fail_delete = n;
    }

    /// Appends `message` to the message of every injected failure from now on: a
    /// provider that echoes what it was sent (e.g. a credential) in its errors.
    pub fn set_fault_message(&self, message: impl Into<String>) {
        self.shared.lock().faults.message = Some(message.into());
    }

    /// Gives the provider an API token of its own, which it reports through
    /// [`Provider::secrets`] so that Sandkit scrubs it.
    pub fn set_token(&self, token: impl Into<String>) {
        self.shared.lock().faults.token = Some(token.into());
    }

    /// Sleeps this long before every provider call.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().faults.delay = delay;
    }

    /// Kills a session as if the provider lost it.
    pub fn lose_session(&self, id: &str) {
        if let Some(s) = self.shared.lock().sessions.get_mut(id) {
            s.alive = false;
        }
    }

    /// Kills every live session.
    pub fn lose_all_sessions(&self) {
        for s in self.shared.lock().sessions.values_mut() {
            s.alive = false;
        }
    }

    /// Deletes a snapshot as if it expired.
    pub fn lose_snapshot(&self, id: &str) {
        self.shared.lock().snapshots.remove(id);
    }

    /// Ids of the snapshots that exist.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.shared.lock().snapshots.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// A file of a snapshot (path relative to the session root).
    pub fn snapshot_file(&self, snapshot: &str, path: &str) -> Option<String> {
        self.shared
            .lock()
            .snapshots
            .get(snapshot)
            .and_then(|f| f.get(&shell::resolve(FAKE_ROOT, path)).cloned())
    }

    /// Live sessions now.
    pub fn alive_sessions(&self) -> usize {
        self.shared
            .lock()
            .sessions
            .values()
            .filter(|s| s.alive)
            .count()
    }

    /// The most sessions ever alive at once for a single workspace.
    pub fn max_alive_per_workspace(&self) -> usize {
        self.shared.lock().max_alive_per_workspace
    }

    /// The rules last applied to a session.
    pub fn session_rules(&self, id: &str) -> Option<FirewallRules> {
        self.shared
            .lock()
            .sessions
            .get(id)
            .and_then(|s| shell_rules(&s.machine))
    }

    fn handle(&self, id: String) -> Box<dyn ProviderSession> {
        Box::new(FakeSessionHandle {
            shared: self.shared.clone(),
            id,
        })
    }
}

fn shell_rules(machine: &SharedMachine) -> Option<FirewallRules> {
    machine
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .rules
        .clone()
}

fn injected(what: &str, faults: &Faults) -> Error {
    let echo = faults
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Error::provider(
        Some(500),
        Some("injected".into()),
        format!("injected {what} failure{echo}"),
    )
}

#[async_trait]
impl Provider for FakeProvider {
    fn id(&self) -> &str {
        "fake"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.shared.caps
    }

    fn secrets(&self) -> sandkit_core::policies::Redactor {
        let mut redactor = sandkit_core::policies::Redactor::new();
        if let Some(token) = &self.shared.lock().faults.token {
            redactor.add(token);
        }
        redactor
    }

    async fn start(&self, spec: StartSpec) -> Result<Box<dyn ProviderSession>> {
        self.shared.pause().await;
        let id = spec.name.clone().unwrap_or_else(|| self.shared.next("sbx"));
        {
            let mut st = self.shared.lock();
            st.calls.starts += 1;
            if st.faults.fail_start > 0 {
                st.faults.fail_start -= 1;
                return Err(injected("start", &st.faults));
            }
            let files = match &spec.from {
                Some(snap) => {
                    st.calls.restores += 1;
                    st.snapshots.get(&snap.id).cloned().ok_or_else(|| {
                        Error::snapshot_unavailable(format!(
                            "fake snapshot {} does not exist",
                            snap.id
                        ))
                    })?
                }
                None => Default::default(),
            };
            let workspace = spec.workspace_id.to_string();
            st.sessions.insert(
                id.clone(),
                FakeSession {
                    workspace: workspace.clone(),
                    machine: Arc::new(Mutex::new(Machine {
                        files,
                        rules: Some(spec.rules.clone()),
                    })),
                    alive: true,
                    expires_at: sandkit_core::now()
                        + chrono::Duration::from_std(spec.timeout).unwrap_or(chrono::Duration::MAX),
                    ports: spec.ports.clone(),
                    procs: HashMap::new(),
                },
            );
            let alive = st
                .sessions
                .values()
                .filter(|s| s.alive && s.workspace == workspace)
                .count();
            st.max_alive_per_workspace = st.max_alive_per_workspace.max(alive);
        }
        Ok(self.handle(id))
    }

    async fn snapshot_exists(&self, snapshot: &SnapshotRef) -> Result<bool> {
        Ok(snapshot.provider == "fake" && self.shared.lock().snapshots.contains_key(&snapshot.id))
    }

    async fn find_session_snapshot(&self, session: &SessionRef) -> Result<Option<SnapshotRef>> {
        let st = self.shared.lock();
        Ok(st
            .ended_with
            .get(&session.id)
            .filter(|id| st.snapshots.contains_key(*id))
            .map(|id| SnapshotRef {
                provider: "fake".to_owned(),
                id: id.clone(),
            }))
    }

    fn planned_session(&self, name: &str) -> Option<SessionRef> {
        Some(SessionRef {
            provider: "fake".to_owned(),
            id: name.to_owned(),
        })
    }

    async fn attach(&self, session: &SessionRef) -> Result<Box<dyn ProviderSession>> {
        self.shared.pause().await;
        {
            let mut st = self.shared.lock();
            st.calls.attaches += 1;
            live(&st, &session.id)?;
        }
        Ok(self.handle(session.id.clone()))
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        self.shared.pause().await;
        let mut st = self.shared.lock();
        st.calls.deletes += 1;
        if st.faults.fail_delete > 0 {
            st.faults.fail_delete -= 1;
            return Err(injected("delete", &st.faults));
        }
        st.snapshots.remove(&snapshot.id);
        Ok(())
    }
}

fn live<'a>(st: &'a State, id: &str) -> Result<&'a FakeSession> {
    match st.sessions.get(id) {
        Some(s) if s.alive && s.expires_at > sandkit_core::now() => Ok(s),
        Some(_) => Err(Error::session_unavailable(format!(
            "fake session {id} is stopped or expired"
        ))),
        None => Err(Error::session_unavailable(format!(
            "fake session {id} does not exist"
        ))),
    }
}

#[derive(Debug)]
struct FakeSessionHandle {
    shared: Arc<Shared>,
    id: String,
}

impl FakeSessionHandle {
    fn machine(&self) -> Result<SharedMachine> {
        Ok(live(&self.shared.lock(), &self.id)?.machine.clone())
    }

    fn launch(&self, spec: ExecSpec, machine: SharedMachine) -> (ProcessHandle, Arc<Notify>) {
        let pid = self.shared.next("cmd");
        let (sink, handle) = ProcessHandle::channel(pid);
        let cwd = match &spec.cwd {
            Some(c) => shell::resolve(FAKE_ROOT, c),
            None => FAKE_ROOT.to_owned(),
        };
        let timeout = spec.timeout.unwrap_or(Duration::MAX);
        let cancel = Arc::new(Notify::new());
        let killed = cancel.clone();
        tokio::spawn(async move {
            let run = shell::run(machine, cwd, spec.command, spec.args, spec.env, &sink);
            let code = tokio::select! {
                code = run => code,
                // Killed by its timeout, like SIGKILL on a real provider.
                () = tokio::time::sleep(timeout) => 137,
                () = killed.notified() => 143,
            };
            sink.finish(code);
        });
        (handle, cancel)
    }
}

#[async_trait]
impl ProviderSession for FakeSessionHandle {
    fn session_ref(&self) -> SessionRef {
        SessionRef {
            provider: "fake".to_owned(),
            id: self.id.clone(),
        }
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.shared
            .lock()
            .sessions
            .get(&self.id)
            .map(|s| s.expires_at)
    }

    async fn set_policy(&self, rules: &FirewallRules) -> Result<()> {
        self.shared.pause().await;
        self.shared.lock().calls.set_policies += 1;
        let machine = self.machine()?;
        machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rules = Some(rules.clone());
        Ok(())
    }

    async fn exec(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        self.shared.pause().await;
        let machine = {
            let mut st = self.shared.lock();
            st.calls.execs += 1;
            if st.faults.fail_exec > 0 {
                st.faults.fail_exec -= 1;
                return Err(injected("exec", &st.faults));
            }
            live(&st, &self.id)?.machine.clone()
        };
        Ok(self.launch(spec, machine).0)
    }

    async fn spawn(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        self.shared.pause().await;
        let machine = {
            let mut st = self.shared.lock();
            st.calls.spawns += 1;
            live(&st, &self.id)?.machine.clone()
        };
        let command: Vec<String> = std::iter::once(spec.command.clone())
            .chain(spec.args.clone())
            .collect();
        let (mut handle, cancel) = self.launch(spec, machine);
        // Tee the output into a per-process log so other handles can read it.
        let logs = LogBuffer::default();
        let exit = Arc::new(Mutex::new(None));
        let (sink, caller) = ProcessHandle::channel(handle.id.clone());
        {
            let logs = logs.clone();
            let exit = exit.clone();
            tokio::spawn(async move {
                use futures::StreamExt;
                while let Some(item) = handle.output.next().await {
                    if let Ok(chunk) = item {
                        logs.push(chunk.clone());
                        sink.send(chunk).await;
                    }
                }
                let code = handle.exit.await.unwrap_or(-1);
                *exit
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(code);
                logs.close(None);
                sink.finish(code);
            });
        }
        let mut st = self.shared.lock();
        if let Some(s) = st.sessions.get_mut(&self.id) {
            s.procs.insert(
                caller.id.clone(),
                Proc {
                    command,
                    logs,
                    exit,
                    cancel,
                },
            );
        }
        Ok(caller)
    }

    async fn processes(&self) -> Result<Vec<ProcessInfo>> {
        let st = self.shared.lock();
        let s = live(&st, &self.id)?;
        let mut out: Vec<ProcessInfo> = s
            .procs
            .iter()
            .map(|(id, p)| ProcessInfo {
                id: id.clone(),
                command: p.command.clone(),
                exit_code: *p
                    .exit
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn process_logs(&self, process_id: &str) -> Result<LogStream> {
        let st = self.shared.lock();
        let s = live(&st, &self.id)?;
        let p = s
            .procs
            .get(process_id)
            .ok_or_else(|| Error::not_found(format!("process {process_id} not found")))?;
        Ok(p.logs.stream())
    }

    async fn kill(&self, process_id: &str) -> Result<()> {
        let st = self.shared.lock();
        let s = live(&st, &self.id)?;
        let p = s
            .procs
            .get(process_id)
            .ok_or_else(|| Error::not_found(format!("process {process_id} not found")))?;
        p.cancel.notify_one();
        Ok(())
    }

    async fn snapshot(&self) -> Result<SnapshotRef> {
        self.shared.pause().await;
        let id = self.shared.next("snap");
        let mut st = self.shared.lock();
        st.calls.snapshots += 1;
        if st.faults.fail_snapshot > 0 {
            st.faults.fail_snapshot -= 1;
            return Err(injected("snapshot", &st.faults));
        }
        let files = {
            let s = live(&st, &self.id)?;
            s.machine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .files
                .clone()
        };
        st.snapshots.insert(id.clone(), files);
        st.ended_with.insert(self.id.clone(), id.clone());
        if let Some(s) = st.sessions.get_mut(&self.id) {
            s.alive = false;
            for p in s.procs.values() {
                p.cancel.notify_one();
            }
        }
        Ok(SnapshotRef {
            provider: "fake".to_owned(),
            id,
        })
    }

    async fn stop(&self) -> Result<()> {
        self.shared.pause().await;
        let mut st = self.shared.lock();
        st.calls.stops += 1;
        let s = st.sessions.get_mut(&self.id).ok_or_else(|| {
            Error::session_unavailable(format!("fake session {} does not exist", self.id))
        })?;
        s.alive = false;
        for p in s.procs.values() {
            p.cancel.notify_one();
        }
        Ok(())
    }

    async fn url(&self, port: u16) -> Result<String> {
        let st = self.shared.lock();
        let s = live(&st, &self.id)?;
        if !s.ports.contains(&port) {
            return Err(Error::invalid_input(format!("port {port} is not exposed")));
        }
        Ok(format!("https://{}-{port}.fake.sandkit.invalid", self.id))
    }

    async fn extend(&self, by: Duration) -> Result<DateTime<Utc>> {
        self.shared.pause().await;
        let mut st = self.shared.lock();
        st.calls.extends += 1;
        live(&st, &self.id)?;
        let s = st
            .sessions
            .get_mut(&self.id)
            .ok_or_else(|| Error::session_unavailable("gone"))?;
        s.expires_at += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        Ok(s.expires_at)
    }
}

/// The workspace a session was started for.
pub fn session_workspace(provider: &FakeProvider, session: &str) -> Option<WorkspaceId> {
    provider
        .shared
        .lock()
        .sessions
        .get(session)
        .map(|s| WorkspaceId::from_stored(s.workspace.clone()))
}
