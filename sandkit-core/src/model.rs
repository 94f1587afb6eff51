//! Durable records: workspaces, leases, runs, policy snapshots and setup states.
//!
//! These are the values a [`Store`](crate::Store) persists. Timestamps are UTC with
//! millisecond precision (see [`now`]), so every store can round-trip them exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sandkit_policies::Policy;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{LeaseToken, RunId, WorkspaceId};

/// The current time, truncated to milliseconds (the precision every store keeps).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// Caller-facing lifecycle flag of a workspace (the original's `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceStatus {
    /// In use (default).
    #[default]
    Active,
    /// Not in use (kept for rows created by the TypeScript original).
    Inactive,
    /// Archived by the caller; still readable.
    Archived,
}

impl WorkspaceStatus {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Active => "active",
            WorkspaceStatus::Inactive => "inactive",
            WorkspaceStatus::Archived => "archived",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(WorkspaceStatus::Active),
            "inactive" => Some(WorkspaceStatus::Inactive),
            "archived" => Some(WorkspaceStatus::Archived),
            _ => None,
        }
    }
}

/// Where a workspace is in its lifecycle, derived from its head and lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceState {
    /// No committed snapshot yet: the next start is fresh (or from the setup snapshot).
    Cold,
    /// Has a committed head and no lease.
    Committed,
    /// A durable command holds the lease.
    Running,
    /// A live session holds the lease.
    Session,
}

impl WorkspaceState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceState::Cold => "cold",
            WorkspaceState::Committed => "committed",
            WorkspaceState::Running => "running",
            WorkspaceState::Session => "session",
        }
    }
}

/// Sandbox settings a workspace keeps for every sandbox it starts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxConfig {
    /// Ports exposed as public URLs in sessions.
    #[serde(default)]
    pub exposed_ports: Vec<u16>,
    /// Sandbox lifetime in milliseconds (provider default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Virtual CPUs (provider default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
}

impl SandboxConfig {
    /// The configured sandbox lifetime.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// A provider snapshot: the durable state a sandbox can be restarted from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    /// Provider id (`vercel`, `local`, `fake`, …).
    pub provider: String,
    /// Provider-side snapshot id.
    pub id: String,
}

/// A live provider session (one running sandbox).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRef {
    /// Provider id.
    pub provider: String,
    /// Provider-side session id.
    pub id: String,
}

/// What holds a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    /// A durable command (heartbeated while it runs).
    Command,
    /// A live session (expires with the provider session).
    Session,
}

impl LeaseKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Command => "command",
            LeaseKind::Session => "session",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "command" => Some(LeaseKind::Command),
            "session" => Some(LeaseKind::Session),
            _ => None,
        }
    }
}

/// An exclusive, expiring claim on a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Durable command or session.
    pub kind: LeaseKind,
    /// Fencing token; writes under the lease must present it.
    pub token: LeaseToken,
    /// Who acquired it (`host:pid:instance`), for operators.
    pub holder: String,
    /// The provider session, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionRef>,
    /// The durable run holding the lease (command leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// When it was acquired.
    pub acquired_at: DateTime<Utc>,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Session policy override (durable form: never an explicit secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

impl Lease {
    /// Whether the lease is still in force at `at`: not expired, and — for a durable
    /// command — its holder process not known to be gone (a holder on this machine
    /// whose process no longer runs died; see `holder.rs`), so the next operation
    /// recovers a killed command at once instead of after the lease's TTL.
    pub fn is_live(&self, at: DateTime<Utc>) -> bool {
        self.expires_at > at
            && !(self.kind == LeaseKind::Command && crate::holder::is_gone(&self.holder))
    }
}

/// A workspace row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRecord {
    /// Identity.
    pub id: WorkspaceId,
    /// Human name (default `default`).
    pub name: String,
    /// Caller lifecycle flag.
    pub status: WorkspaceStatus,
    /// Caller JSON (keys starting with `sandkit:` are reserved and stripped).
    pub metadata: Map<String, Value>,
    /// Durable default policy (never holds an explicit secret).
    pub policy: Option<Policy>,
    /// Sandbox settings.
    pub sandbox_config: SandboxConfig,
    /// Last committed snapshot.
    pub head: Option<SnapshotRef>,
    /// Current lease, live or expired.
    pub lease: Option<Lease>,
    /// Incremented by every write; writes compare-and-set on it.
    pub revision: i64,
    /// The workspace this one was forked from.
    pub parent: Option<WorkspaceId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last write.
    pub updated_at: DateTime<Utc>,
}

impl WorkspaceRecord {
    /// A fresh record with defaults, revision 0.
    pub fn new(id: WorkspaceId) -> Self {
        let at = now();
        WorkspaceRecord {
            id,
            name: "default".to_owned(),
            status: WorkspaceStatus::Active,
            metadata: Map::new(),
            policy: None,
            sandbox_config: SandboxConfig::default(),
            head: None,
            lease: None,
            revision: 0,
            parent: None,
            created_at: at,
            updated_at: at,
        }
    }

    /// The lifecycle state derived from head and lease (an expired lease still counts
    /// until the next operation recovers it).
    pub fn state(&self) -> WorkspaceState {
        match (&self.lease, &self.head) {
            (Some(l), _) if l.kind == LeaseKind::Command => WorkspaceState::Running,
            (Some(_), _) => WorkspaceState::Session,
            (None, Some(_)) => WorkspaceState::Committed,
            (None, None) => WorkspaceState::Cold,
        }
    }

    /// The lease if it is live at `at`.
    pub fn live_lease(&self, at: DateTime<Utc>) -> Option<&Lease> {
        self.lease.as_ref().filter(|l| l.is_live(at))
    }
}

/// Outcome of a durable run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Holding the lease, not finished.
    Started,
    /// Exited 0 and committed.
    Succeeded,
    /// Exited non-zero (committed), or failed before producing a result.
    Failed,
    /// Its holder stopped heartbeating; recovered by a later operation.
    Interrupted,
}

impl RunStatus {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Started => "started",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "started" => Some(RunStatus::Started),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            "interrupted" => Some(RunStatus::Interrupted),
            _ => None,
        }
    }

    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        self != RunStatus::Started
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A durable command.
    #[default]
    Command,
    /// A head restored to an earlier run's snapshot.
    Restore,
    /// A live session committed its sandbox as the new head.
    Session,
    /// The workspace was forked from another's snapshot (its first run).
    Fork,
}

impl RunKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Command => "command",
            RunKind::Restore => "restore",
            RunKind::Session => "session",
            RunKind::Fork => "fork",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "command" => Some(RunKind::Command),
            "restore" => Some(RunKind::Restore),
            "session" => Some(RunKind::Session),
            "fork" => Some(RunKind::Fork),
            _ => None,
        }
    }
}

/// A durable run: one row of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Identity.
    pub id: RunId,
    /// Workspace it ran in.
    pub workspace_id: WorkspaceId,
    /// Command or restore.
    pub kind: RunKind,
    /// Executable.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Working directory, when given.
    pub cwd: Option<String>,
    /// Names of the environment variables passed (never their values).
    pub env_keys: Vec<String>,
    /// Policy description (`allow-all`, `allow-services:github,npm`, …).
    pub policy_description: String,
    /// Id of the redacted policy snapshot row.
    pub policy_snapshot_id: Option<String>,
    /// Provider id.
    pub provider: String,
    /// Provider session the command ran in, once known.
    pub session_id: Option<String>,
    /// Outcome.
    pub status: RunStatus,
    /// Exit code when the command finished.
    pub exit_code: Option<i32>,
    /// Captured standard output as text (capped; invalid UTF-8 replaced by U+FFFD).
    /// When cut, it ends with a marker line saying how many bytes were written in
    /// all: use [`stdout_text`](RunRecord::stdout_text) and
    /// [`stdout_bytes_written`](RunRecord::stdout_bytes_written).
    pub stdout: Option<String>,
    /// Captured standard error, likewise.
    pub stderr: Option<String>,
    /// Whether `stdout` was cut (at the store's cap or the in-memory cap).
    pub stdout_truncated: bool,
    /// Whether `stderr` was cut.
    pub stderr_truncated: bool,
    /// Snapshot the sandbox started from.
    pub base_snapshot: Option<SnapshotRef>,
    /// Snapshot the run committed.
    pub snapshot: Option<SnapshotRef>,
    /// When snapshot retention deleted `snapshot` at the provider.
    pub snapshot_deleted_at: Option<DateTime<Utc>>,
    /// Why the run failed without a result, or was interrupted.
    pub error: Option<String>,
    /// Caller idempotency key (unique per workspace).
    pub idempotency_key: Option<String>,
    /// Who ran it.
    pub holder: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunRecord {
    /// A run that has just started: the given identity, everything else empty.
    pub fn started(
        workspace_id: WorkspaceId,
        kind: RunKind,
        command: impl Into<String>,
        provider: impl Into<String>,
        holder: impl Into<String>,
    ) -> Self {
        RunRecord {
            id: RunId::generate(),
            workspace_id,
            kind,
            command: command.into(),
            args: Vec::new(),
            cwd: None,
            env_keys: Vec::new(),
            policy_description: "allow-all".to_owned(),
            policy_snapshot_id: None,
            provider: provider.into(),
            session_id: None,
            status: RunStatus::Started,
            exit_code: None,
            stdout: None,
            stderr: None,
            stdout_truncated: false,
            stderr_truncated: false,
            base_snapshot: None,
            snapshot: None,
            snapshot_deleted_at: None,
            error: None,
            idempotency_key: None,
            holder: holder.into(),
            started_at: now(),
            finished_at: None,
        }
    }

    /// Standard output as captured, without the truncation marker (see
    /// [`stdout_bytes_written`](RunRecord::stdout_bytes_written)).
    pub fn stdout_text(&self) -> Option<&str> {
        self.stdout
            .as_deref()
            .map(|text| split_marker(text, "stdout").0)
    }

    /// Standard error as captured, without the truncation marker.
    pub fn stderr_text(&self) -> Option<&str> {
        self.stderr
            .as_deref()
            .map(|text| split_marker(text, "stderr").0)
    }

    /// How many bytes the command wrote to stdout in all. A truncated `stdout` ends with
    /// a marker line `[sandkit: stdout truncated; N bytes written]` giving N; otherwise
    /// it is the stored text's length. `None` when no output was recorded (or a
    /// truncated run was recorded before the marker existed).
    pub fn stdout_bytes_written(&self) -> Option<u64> {
        bytes_written(self.stdout.as_deref(), self.stdout_truncated, "stdout")
    }

    /// How many bytes the command wrote to stderr in all, likewise.
    pub fn stderr_bytes_written(&self) -> Option<u64> {
        bytes_written(self.stderr.as_deref(), self.stderr_truncated, "stderr")
    }

    /// Marks the run finished now with `status` (for runs recorded after the fact:
    /// session commits, forks, restores).
    pub fn finished(mut self, status: RunStatus, snapshot: Option<SnapshotRef>) -> Self {
        self.status = status;
        self.snapshot = snapshot;
        self.finished_at = Some(now());
        self
    }
}

/// The marker line appended to a stored stream that was cut.
pub(crate) fn truncation_marker(stream: &str, written: u64) -> String {
    format!("\n[sandkit: {stream} truncated; {written} bytes written]\n")
}

/// Splits a stored stream into its text and the bytes-written count of its marker.
fn split_marker<'a>(text: &'a str, stream: &str) -> (&'a str, Option<u64>) {
    let head = format!("\n[sandkit: {stream} truncated; ");
    let Some(at) = text.rfind(&head) else {
        return (text, None);
    };
    let written = text[at + head.len()..]
        .strip_suffix(" bytes written]\n")
        .and_then(|n| n.parse().ok());
    match written {
        Some(n) => (&text[..at], Some(n)),
        None => (text, None),
    }
}

fn bytes_written(text: Option<&str>, truncated: bool, stream: &str) -> Option<u64> {
    let text = text?;
    if truncated {
        split_marker(text, stream).1
    } else {
        Some(text.len() as u64)
    }
}

/// The final fields of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFinish {
    /// Final status.
    pub status: RunStatus,
    /// Exit code when the command finished.
    pub exit_code: Option<i32>,
    /// Captured standard output (capped).
    pub stdout: Option<String>,
    /// Captured standard error (capped).
    pub stderr: Option<String>,
    /// Whether `stdout` was cut.
    pub stdout_truncated: bool,
    /// Whether `stderr` was cut.
    pub stderr_truncated: bool,
    /// Provider session the command ran in.
    pub session_id: Option<String>,
    /// Snapshot committed by the run.
    pub snapshot: Option<SnapshotRef>,
    /// Why it failed without a result.
    pub error: Option<String>,
    /// Clears the run's idempotency key so that the key can run again (set for runs
    /// that produced no result: interrupted, or failed before the command finished).
    pub release_idempotency_key: bool,
    /// End time.
    pub finished_at: DateTime<Utc>,
}

impl RunFinish {
    /// A finish with no result: the run was interrupted or failed before exiting.
    pub fn without_result(status: RunStatus, error: impl Into<String>) -> Self {
        RunFinish {
            status,
            exit_code: None,
            stdout: None,
            stderr: None,
            stdout_truncated: false,
            stderr_truncated: false,
            session_id: None,
            snapshot: None,
            error: Some(error.into()),
            release_idempotency_key: true,
            finished_at: now(),
        }
    }
}

/// The redacted policy a run used (a `sandkit_policies` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySnapshot {
    /// Identity.
    pub id: String,
    /// Workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// Policy description.
    pub policy_id: String,
    /// Redacted policy.
    pub config: Policy,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A claim on building a setup snapshot, so that concurrent first uses build it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupBuild {
    /// Fencing token of the builder.
    pub token: LeaseToken,
    /// Who builds it.
    pub holder: String,
    /// When the claim lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A shared setup state (a `sandkit_setup_states` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupRecord {
    /// `<store id>:setup:<sha256 of the setup definition>`.
    pub id: String,
    /// The setup snapshot once built.
    pub snapshot: Option<SnapshotRef>,
    /// The builder's claim while it is being built.
    pub build: Option<SetupBuild>,
    /// Incremented by every write.
    pub revision: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last write time.
    pub updated_at: DateTime<Utc>,
}

/// Free-form key/value pairs passed to a sandbox (commands' environment).
pub type EnvMap = BTreeMap<String, String>;
