//! The `Provider` trait: where sandboxes run.
//!
//! A provider starts sessions (running sandboxes) fresh or from a snapshot, attaches to
//! live sessions by reference, and deletes snapshots. A [`ProviderSession`] runs
//! commands, applies firewall rules, exposes ports, extends its lifetime and ends by
//! [`snapshot`](ProviderSession::snapshot) or [`stop`](ProviderSession::stop).
//!
//! Providers declare what they can do in [`Capabilities`]; Sandkit validates every
//! request against them *before* calling the provider, and a provider that cannot
//! enforce a policy fails closed with [`ErrorKind::Unsupported`].
//! Every provider passes `sandkit_testkit::provider_suite` for what it declares.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use futures::future::BoxFuture;
use sandkit_policies::{FirewallRules, Policy, PolicyMode, Redactor};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::WorkspaceId;
use crate::model::{EnvMap, SessionRef, SnapshotRef};

/// Which egress policies a provider enforces for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkCapabilities {
    /// Unrestricted egress.
    pub allow_all: bool,
    /// No egress at all.
    pub deny_all: bool,
    /// Egress only to listed domains.
    pub allow_services: bool,
    /// Credential header injection on listed domains.
    pub header_injection: bool,
}

/// Which ports can be exposed, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortCapabilities {
    /// Lowest port number.
    pub min: u16,
    /// Highest port number.
    pub max: u16,
    /// Most ports per sandbox.
    pub max_count: usize,
}

/// What a provider can do. Sandkit checks requests against these before any call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Public URLs for ports; `None` when ports cannot be exposed.
    pub ports: Option<PortCapabilities>,
    /// Session lifetime can be extended.
    pub extend_timeout: bool,
    /// Background processes (`spawn`, `process_logs`, `kill`).
    pub background_processes: bool,
    /// Enforced egress policies.
    pub network: NetworkCapabilities,
    /// Snapshots can be deleted.
    pub snapshot_delete: bool,
    /// A snapshot can seed several independent sessions (forks share heads).
    pub fork: bool,
    /// A session can be attached from another OS process.
    pub cross_process_attach: bool,
    /// Longest session lifetime, when limited.
    pub max_timeout: Option<Duration>,
}

impl Capabilities {
    /// Fails with `Unsupported` unless the provider enforces `policy`'s mode for real.
    /// Checked before credentials are resolved, so an unenforceable policy is reported
    /// as such rather than as a missing credential.
    pub fn check_policy(&self, provider: &str, policy: &Policy) -> Result<()> {
        let net = &self.network;
        let (ok, what) = match policy.mode() {
            PolicyMode::AllowAll => (net.allow_all, "allow-all"),
            PolicyMode::DenyAll => (net.deny_all, "deny-all"),
            _ if policy.requires_header_injection() => (
                net.allow_services && net.header_injection,
                "allow-services with credential header injection",
            ),
            _ => (net.allow_services, "allow-services"),
        };
        unsupported_unless(ok, provider, what)
    }

    /// Fails with `Unsupported` unless the provider enforces `rules` for real.
    pub fn check_rules(&self, provider: &str, rules: &FirewallRules) -> Result<()> {
        let net = &self.network;
        let (ok, what) = match rules {
            FirewallRules::AllowAll => (net.allow_all, "allow-all"),
            FirewallRules::DenyAll => (net.deny_all, "deny-all"),
            FirewallRules::Allow(domains) => {
                if domains.iter().any(|d| !d.rules.is_empty()) {
                    (
                        net.allow_services && net.header_injection,
                        "allow-services with credential header injection",
                    )
                } else {
                    (net.allow_services, "allow-services")
                }
            }
        };
        unsupported_unless(ok, provider, what)
    }

    /// Fails with `InvalidInput` / `Unsupported` unless `ports` can be exposed.
    pub fn check_ports(&self, provider: &str, ports: &[u16]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let Some(caps) = &self.ports else {
            return Err(Error::unsupported(format!(
                "provider {provider} cannot expose ports; create the workspace without exposed ports"
            )));
        };
        if ports.len() > caps.max_count {
            return Err(Error::invalid_input(format!(
                "{} ports requested but provider {provider} exposes at most {}",
                ports.len(),
                caps.max_count
            )));
        }
        if let Some(p) = ports.iter().find(|p| **p < caps.min || **p > caps.max) {
            return Err(Error::invalid_input(format!(
                "port {p} is outside {}–{}, the range provider {provider} can expose",
                caps.min, caps.max
            )));
        }
        Ok(())
    }

    /// Fails with `InvalidInput` when `timeout` exceeds the provider's maximum.
    pub fn check_timeout(&self, provider: &str, timeout: Duration) -> Result<()> {
        match self.max_timeout {
            Some(max) if timeout > max => Err(Error::invalid_input(format!(
                "timeout {}s exceeds the {}s maximum of provider {provider}",
                timeout.as_secs(),
                max.as_secs()
            ))),
            _ => Ok(()),
        }
    }
}

fn unsupported_unless(ok: bool, provider: &str, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::unsupported(format!(
            "provider {provider} cannot enforce the {what} policy, so nothing was started; \
             use a provider that can (e.g. vercel) or a policy it supports"
        )))
    }
}

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct StartSpec {
    /// Workspace it is for (providers may tag the sandbox with it).
    pub workspace_id: WorkspaceId,
    /// Snapshot to restore, or `None` for a fresh sandbox.
    pub from: Option<SnapshotRef>,
    /// Egress rules to enforce from the first instant (credentials resolved; `Debug`
    /// redacts them).
    pub rules: FirewallRules,
    /// Ports to expose.
    pub ports: Vec<u16>,
    /// Session lifetime.
    pub timeout: Duration,
    /// Virtual CPUs, provider default when `None`.
    pub vcpus: Option<u32>,
    /// The name the caller chose for the session and recorded before starting it
    /// (see [`Provider::planned_session`]); providers that name sessions use it, others
    /// ignore it. `None`: the provider picks.
    pub name: Option<String>,
}

/// One command to run in a session.
#[derive(Clone, Default)]
pub struct ExecSpec {
    /// Executable (no shell parsing).
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Working directory (relative to the sandbox's working directory when relative).
    pub cwd: Option<String>,
    /// Environment variables (values may be secrets; `Debug` shows only names).
    pub env: EnvMap,
    /// Kill the command after this long.
    pub timeout: Option<Duration>,
}

impl fmt::Debug for ExecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSpec")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of command output as it arrived: raw bytes, not line-aligned and not
/// necessarily valid UTF-8 (a multi-byte character may be split across chunks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Source stream.
    pub stream: StdStream,
    /// The bytes, exactly as the command wrote them.
    pub bytes: Bytes,
}

impl LogChunk {
    /// A chunk of `stream`.
    pub fn new(stream: StdStream, bytes: impl Into<Bytes>) -> Self {
        LogChunk {
            stream,
            bytes: bytes.into(),
        }
    }

    /// A stdout chunk.
    pub fn stdout(bytes: impl Into<Bytes>) -> Self {
        Self::new(StdStream::Stdout, bytes)
    }

    /// A stderr chunk.
    pub fn stderr(bytes: impl Into<Bytes>) -> Self {
        Self::new(StdStream::Stderr, bytes)
    }

    /// The bytes as text; invalid UTF-8 (including a character split across chunks)
    /// becomes U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the chunk holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A stream of log chunks; it ends when the process's output ends.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogChunk>> + Send + 'static>>;

/// Chunks a [`ProcessSink`] queues before [`ProcessSink::send`] waits for the reader:
/// a slow reader slows the process down instead of growing memory.
pub const PROCESS_OUTPUT_BACKLOG: usize = 64;

/// A running process: its output stream and its exit code.
///
/// Drain `output` to its end, then await `exit`. Output is backpressured: a provider
/// feeding a [`ProcessHandle::channel`] waits while [`PROCESS_OUTPUT_BACKLOG`] chunks
/// are unread, so a reader that stops reading (without dropping the handle) holds the
/// process's output up.
pub struct ProcessHandle {
    /// Provider-side process/command id.
    pub id: String,
    /// Output as it arrives.
    pub output: LogStream,
    /// Exit code once the process ends (137 when killed by its timeout).
    pub exit: BoxFuture<'static, Result<i32>>,
}

impl fmt::Debug for ProcessHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("id", &self.id)
            .finish()
    }
}

/// The provider's side of a [`ProcessHandle`] made by [`ProcessHandle::channel`].
#[derive(Debug)]
pub struct ProcessSink {
    output: mpsc::Sender<Result<LogChunk>>,
    exit: oneshot::Sender<Result<i32>>,
}

impl ProcessSink {
    /// Sends a chunk, waiting while [`PROCESS_OUTPUT_BACKLOG`] chunks are unread.
    /// Returns `false` (at once) when the reader went away; the chunk is then dropped.
    pub async fn send(&self, chunk: LogChunk) -> bool {
        self.output.send(Ok(chunk)).await.is_ok()
    }

    /// Whether the reader went away (the provider may stop following the process).
    pub fn is_closed(&self) -> bool {
        self.output.is_closed()
    }

    /// Ends the output with an error.
    pub async fn fail(self, error: Error) {
        let _ = self.output.send(Err(error.clone())).await;
        let _ = self.exit.send(Err(error));
    }

    /// Ends the output and reports the exit code.
    pub fn finish(self, exit_code: i32) {
        drop(self.output);
        let _ = self.exit.send(Ok(exit_code));
    }
}

impl ProcessHandle {
    /// A handle fed through a [`ProcessSink`], for providers that push output.
    pub fn channel(id: impl Into<String>) -> (ProcessSink, ProcessHandle) {
        let (out_tx, mut out_rx) = mpsc::channel(PROCESS_OUTPUT_BACKLOG);
        let (exit_tx, exit_rx) = oneshot::channel();
        let output = Box::pin(futures::stream::poll_fn(move |cx| out_rx.poll_recv(cx)));
        let exit = Box::pin(async move {
            exit_rx.await.unwrap_or_else(|_| {
                Err(Error::provider(
                    None,
                    None,
                    "the provider dropped the process before reporting its exit code",
                ))
            })
        });
        (
            ProcessSink {
                output: out_tx,
                exit: exit_tx,
            },
            ProcessHandle {
                id: id.into(),
                output,
                exit,
            },
        )
    }
}

/// A background process known to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    /// Provider-side id.
    pub id: String,
    /// Executable and arguments.
    pub command: Vec<String>,
    /// Exit code once it ended.
    pub exit_code: Option<i32>,
}

/// A sandbox provider. Object-safe: use it as `Arc<dyn Provider>`.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// Stable identity (`vercel`, `local`, `fake`), recorded in snapshot refs and runs.
    fn id(&self) -> &str;

    /// What this provider can do.
    fn capabilities(&self) -> &Capabilities;

    /// Starts a session, fresh or from `spec.from`. A missing snapshot is
    /// `SnapshotUnavailable`.
    async fn start(&self, spec: StartSpec) -> Result<Box<dyn ProviderSession>>;

    /// Reconnects to a live session. A stopped, expired or unknown one is
    /// `SessionUnavailable`.
    async fn attach(&self, session: &SessionRef) -> Result<Box<dyn ProviderSession>>;

    /// Secret values this provider holds (API tokens), so that Sandkit can scrub them
    /// from every error, log line and stored row. The default: none.
    fn secrets(&self) -> Redactor {
        Redactor::new()
    }

    /// Deletes a snapshot. Deleting a missing one succeeds.
    async fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        let _ = snapshot;
        Err(Error::unsupported(format!(
            "provider {} cannot delete snapshots",
            self.id()
        )))
    }

    /// The reference of the session a [`start`](Provider::start) with
    /// [`StartSpec::name`] `name` creates, known before it exists. Sandkit records it
    /// in the lease before starting (intent before effect), so that when the holder
    /// dies at any point of the start, [`discard_session`](Provider::discard_session)
    /// still finds what it left. `None` (the default): the provider cannot name a
    /// session in advance; Sandkit then records the session as soon as it starts.
    fn planned_session(&self, name: &str) -> Option<SessionRef> {
        let _ = name;
        None
    }

    /// Every snapshot this provider holds for Sandkit, so that `gc` finds the ones no
    /// workspace, run or setup references: taken by a holder that died before its
    /// commit, or whose deletion by retention was never confirmed. The default is
    /// `Unsupported`; `gc` then skips that sweep.
    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        Err(Error::unsupported(format!(
            "provider {} cannot list its snapshots",
            self.id()
        )))
    }

    /// Whether `snapshot` still exists at the provider (a start from it would find
    /// it). The default is `Unsupported`: the provider cannot tell without starting.
    async fn snapshot_exists(&self, snapshot: &SnapshotRef) -> Result<bool> {
        let _ = snapshot;
        Err(Error::unsupported(format!(
            "provider {} cannot check whether a snapshot exists",
            self.id()
        )))
    }

    /// The snapshot `session` ended with, when it ended by one: found after the process
    /// that took it died before recording it (between a session's snapshot and its
    /// commit), so recovery can finish that commit instead of losing the work.
    /// `Ok(None)` (the default): no such snapshot, or the provider cannot tell.
    async fn find_session_snapshot(&self, session: &SessionRef) -> Result<Option<SnapshotRef>> {
        let _ = session;
        Ok(None)
    }

    /// Stops every process of `session` and removes everything it holds, in whatever
    /// state a dead holder left it: being created, live, snapshotting or stopped.
    /// Succeeds when nothing is left, including when the session never existed.
    ///
    /// The default attaches and stops; providers whose sessions leave more behind
    /// (half-created ones, a reference planned but never started) override it.
    async fn discard_session(&self, session: &SessionRef) -> Result<()> {
        match self.attach(session).await {
            Ok(live) => match live.stop().await {
                Err(e) if !gone(&e) => Err(e),
                _ => Ok(()),
            },
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A snapshot as its provider lists it ([`Provider::list_snapshots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The snapshot.
    pub snapshot: SnapshotRef,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
}

impl SnapshotInfo {
    /// A listed snapshot.
    pub fn new(snapshot: SnapshotRef, created_at: DateTime<Utc>) -> Self {
        SnapshotInfo {
            snapshot,
            created_at,
        }
    }
}

/// Whether `error` says the session is already gone.
fn gone(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::SessionUnavailable | ErrorKind::NotFound
    )
}

/// One running sandbox.
#[async_trait]
pub trait ProviderSession: Send + Sync + fmt::Debug {
    /// Reference another process can attach with.
    fn session_ref(&self) -> SessionRef;

    /// When the provider will stop the session unless extended.
    fn expires_at(&self) -> Option<DateTime<Utc>>;

    /// Replaces the egress rules.
    async fn set_policy(&self, rules: &FirewallRules) -> Result<()>;

    /// Runs a command in the foreground, streaming its output.
    async fn exec(&self, spec: ExecSpec) -> Result<ProcessHandle>;

    /// Starts a background process that outlives this handle.
    async fn spawn(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        let _ = spec;
        Err(self.unsupported("background processes"))
    }

    /// Background processes of this session.
    async fn processes(&self) -> Result<Vec<ProcessInfo>> {
        Err(self.unsupported("background processes"))
    }

    /// A background process's output from its start, following until it ends.
    async fn process_logs(&self, process_id: &str) -> Result<LogStream> {
        let _ = process_id;
        Err(self.unsupported("background processes"))
    }

    /// Stops a background process.
    async fn kill(&self, process_id: &str) -> Result<()> {
        let _ = process_id;
        Err(self.unsupported("background processes"))
    }

    /// Captures the filesystem as a snapshot. This ends the session.
    async fn snapshot(&self) -> Result<SnapshotRef>;

    /// Stops the session, discarding its changes.
    async fn stop(&self) -> Result<()>;

    /// Public URL of an exposed port.
    async fn url(&self, port: u16) -> Result<String> {
        let _ = port;
        Err(self.unsupported("public URLs for ports"))
    }

    /// Extends the lifetime by `by`; returns the new expiry.
    async fn extend(&self, by: Duration) -> Result<DateTime<Utc>> {
        let _ = by;
        Err(self.unsupported("extending a session"))
    }

    /// The error for a capability this session lacks.
    fn unsupported(&self, what: &str) -> Error {
        Error::unsupported(format!(
            "provider {} does not support {what}",
            self.session_ref().provider
        ))
    }
}
