//! The `Store` trait: where Sandkit keeps workspaces, runs, policy snapshots and setup
//! states.
//!
//! A store is an adapter over a database. Its one write primitive is
//! [`Store::apply`]: an atomic [`WriteBatch`] made of at most one guarded workspace
//! write plus run and policy-snapshot writes. Every workspace write is guarded, either
//! by a compare-and-set on `revision` or by a lease's fencing token; a lost guard is
//! [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) and nothing of the batch is
//! applied. A durable command is exactly two batches (acquire + insert run; commit +
//! finish + release).
//!
//! Every store passes `sandkit_testkit::store_suite`.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::ids::{LeaseToken, RunId, WorkspaceId};
use crate::model::{
    Lease, PolicySnapshot, RunFinish, RunRecord, RunStatus, SetupRecord, SnapshotRef,
    WorkspaceRecord, WorkspaceStatus,
};

/// A guarded write to one workspace row.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkspaceWrite {
    /// Inserts a new row; `AlreadyExists` when the id is taken.
    Create(WorkspaceRecord),
    /// Replaces every mutable field if the stored revision equals `expected_revision`
    /// (compare-and-set); the stored revision becomes `expected_revision + 1`.
    /// `Conflict` when it differs, `NotFound` when the row is gone.
    Update {
        /// The new contents (its `revision` field is ignored).
        record: WorkspaceRecord,
        /// The revision the caller read.
        expected_revision: i64,
    },
    /// Changes the lease (and possibly the head) if the stored lease carries `token`
    /// (fencing); increments the revision. `Conflict` when the lease is gone or was
    /// taken over, `NotFound` when the row is gone.
    Fenced {
        /// Workspace.
        id: WorkspaceId,
        /// The writer's lease token.
        token: LeaseToken,
        /// What to change.
        change: FencedChange,
    },
    /// Deletes the row with its runs and policy snapshots if the revision matches.
    Delete {
        /// Workspace.
        id: WorkspaceId,
        /// The revision the caller read.
        expected_revision: i64,
    },
}

/// The fields a lease holder may change.
#[derive(Debug, Clone, PartialEq)]
pub struct FencedChange {
    /// The lease after the write: `Some` renews or updates it (same token), `None`
    /// releases it.
    pub lease: Option<Lease>,
    /// A new head to commit, if any.
    pub head: Option<SnapshotRef>,
    /// Write time.
    pub updated_at: DateTime<Utc>,
}

/// A write to a run row.
#[derive(Debug, Clone, PartialEq)]
// Batches are short-lived and hold a handful of writes: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum RunWrite {
    /// Inserts a run; `AlreadyExists` when its id, or its idempotency key within the
    /// workspace, is taken.
    Insert(RunRecord),
    /// Sets a run's final fields; `NotFound` when the run does not exist.
    Finish {
        /// Run.
        id: RunId,
        /// Final fields.
        finish: RunFinish,
    },
    /// Records (or with `None` clears) the deletion of the run's snapshot by retention;
    /// `NotFound` when the run does not exist.
    SnapshotDeleted {
        /// Run.
        id: RunId,
        /// When it was deleted.
        at: Option<DateTime<Utc>>,
    },
}

/// An atomic set of writes: all are applied or none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// At most one guarded workspace write (applied first).
    pub workspace: Option<WorkspaceWrite>,
    /// Policy snapshot rows to insert.
    pub policy_snapshots: Vec<PolicySnapshot>,
    /// Run writes, in order.
    pub runs: Vec<RunWrite>,
}

impl WriteBatch {
    /// A batch holding one workspace write.
    pub fn workspace(write: WorkspaceWrite) -> Self {
        WriteBatch {
            workspace: Some(write),
            ..WriteBatch::default()
        }
    }

    /// Adds a run write.
    pub fn run(mut self, write: RunWrite) -> Self {
        self.runs.push(write);
        self
    }

    /// Adds a policy snapshot.
    pub fn policy_snapshot(mut self, snapshot: PolicySnapshot) -> Self {
        self.policy_snapshots.push(snapshot);
        self
    }
}

/// Filters and cursor for listing workspaces (ordered by id, ascending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceListing {
    /// Only this status.
    pub status: Option<WorkspaceStatus>,
    /// Only names starting with this.
    pub name_prefix: Option<String>,
    /// Only workspaces forked from this one.
    pub parent: Option<WorkspaceId>,
    /// Only workspaces whose head is the snapshot with this provider id.
    pub head: Option<String>,
    /// Only ids greater than this (the previous page's cursor).
    pub after: Option<WorkspaceId>,
    /// Page size (the store may cap it).
    pub limit: usize,
}

/// Sort order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (default).
    #[default]
    Desc,
}

/// Filters and cursor for listing one workspace's runs (ordered by run id, which is
/// time-ordered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunListing {
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Only runs whose committed snapshot exists (set, and not deleted by retention).
    pub live_snapshots: bool,
    /// Continue after this run id (exclusive) in the chosen order.
    pub cursor: Option<RunId>,
    /// Newest or oldest first.
    pub order: Order,
    /// Page size.
    pub limit: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page, `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Persistence for Sandkit. Object-safe: use it as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Stable identity of the store (part of setup ids), e.g. `memory`, `seaorm-sqlite`.
    fn id(&self) -> &str;

    /// Applies a batch atomically (see [`WriteBatch`]).
    async fn apply(&self, batch: WriteBatch) -> Result<()>;

    /// Reads a workspace.
    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<WorkspaceRecord>>;

    /// Lists workspaces by id.
    async fn list_workspaces(&self, query: &WorkspaceListing) -> Result<Page<WorkspaceRecord>>;

    /// Reads a run.
    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>>;

    /// Lists a workspace's runs.
    async fn list_runs(&self, query: &RunListing) -> Result<Page<RunRecord>>;

    /// Finds the run holding an idempotency key in a workspace.
    async fn find_run_by_key(
        &self,
        workspace: &WorkspaceId,
        key: &str,
    ) -> Result<Option<RunRecord>>;

    /// Every run (of any workspace) whose committed snapshot has this provider id.
    async fn find_runs_by_snapshot(&self, snapshot_id: &str) -> Result<Vec<RunRecord>>;

    /// Reads a policy snapshot.
    async fn get_policy_snapshot(&self, id: &str) -> Result<Option<PolicySnapshot>>;

    /// Reads a setup state.
    async fn get_setup(&self, id: &str) -> Result<Option<SetupRecord>>;

    /// Every setup state (one per setup definition: few), so that `gc` knows which
    /// snapshots setups use. The default is `Unsupported`; `gc` then leaves snapshots
    /// no run references alone.
    async fn list_setups(&self) -> Result<Vec<SetupRecord>> {
        Err(crate::Error::unsupported(format!(
            "store {} cannot list setup states",
            self.id()
        )))
    }

    /// Inserts a setup state unless one with its id exists; `true` when inserted.
    async fn put_setup_if_absent(&self, record: &SetupRecord) -> Result<bool>;

    /// Replaces a setup state if its revision equals `expected_revision`; the stored
    /// revision becomes `expected_revision + 1`. `Conflict` otherwise, `NotFound` when gone.
    async fn update_setup(&self, record: &SetupRecord, expected_revision: i64) -> Result<()>;

    /// Deletes a setup state (only at `expected_revision` when given); `true` when a row
    /// was deleted.
    async fn delete_setup(&self, id: &str, expected_revision: Option<i64>) -> Result<bool>;
}
