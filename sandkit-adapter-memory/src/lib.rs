//! An in-memory [`Store`] for Sandkit.
//!
//! Everything lives in one process and is gone when it exits: use it for tests,
//! examples and throwaway work. For durability across restarts and processes use
//! `sandkit-adapter-seaorm` (SQLite, PostgreSQL, MySQL/MariaDB).
//!
//! | capability | supported |
//! |---|---|
//! | atomic batches, compare-and-set, fencing | yes (one mutex) |
//! | shared by several `Sandkit`s in a process | yes (clone the `Arc`) |
//! | shared across processes / durable | no |
//!
//! ```
//! use std::sync::Arc;
//! use sandkit_adapter_memory::MemoryStore;
//! use sandkit_core::Store;
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! assert_eq!(store.id(), "memory");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use sandkit_core::{
    Error, Order, Page, PolicySnapshot, Result, RunId, RunListing, RunRecord, RunWrite,
    SetupRecord, Store, WorkspaceId, WorkspaceListing, WorkspaceRecord, WorkspaceWrite, WriteBatch,
};

#[derive(Debug, Default, Clone)]
struct State {
    workspaces: BTreeMap<WorkspaceId, WorkspaceRecord>,
    runs: BTreeMap<RunId, RunRecord>,
    policies: BTreeMap<String, PolicySnapshot>,
    setups: HashMap<String, SetupRecord>,
}

/// An in-memory store (id `memory`). All operations take one mutex, so batches are
/// atomic and compare-and-set is exact.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn missing_workspace(id: &WorkspaceId) -> Error {
    Error::not_found(format!("workspace {id} does not exist"))
}

fn stale(id: &WorkspaceId, expected: i64, actual: i64) -> Error {
    Error::conflict(format!(
        "workspace {id} changed concurrently (expected revision {expected}, found {actual}); re-read and retry"
    ))
}

/// How to take back one change of a batch that failed part-way.
enum Undo {
    Workspace(WorkspaceId, Option<WorkspaceRecord>),
    Run(RunId, Option<RunRecord>),
    Policy(String, Option<PolicySnapshot>),
}

impl State {
    /// Applies a batch in place; on error, takes back what it changed, so a batch is
    /// all or nothing without copying the whole state.
    fn apply(&mut self, batch: WriteBatch) -> Result<()> {
        let mut undo = Vec::new();
        let result = self.apply_logged(batch, &mut undo);
        if result.is_err() {
            for step in undo.into_iter().rev() {
                match step {
                    Undo::Workspace(id, prev) => restore(&mut self.workspaces, id, prev),
                    Undo::Run(id, prev) => restore(&mut self.runs, id, prev),
                    Undo::Policy(id, prev) => restore(&mut self.policies, id, prev),
                }
            }
        }
        result
    }

    fn apply_logged(&mut self, batch: WriteBatch, undo: &mut Vec<Undo>) -> Result<()> {
        if let Some(write) = batch.workspace {
            self.apply_workspace(write, undo)?;
        }
        for snapshot in batch.policy_snapshots {
            if self.policies.contains_key(&snapshot.id) {
                return Err(Error::already_exists(format!(
                    "policy snapshot {} already exists",
                    snapshot.id
                )));
            }
            undo.push(Undo::Policy(snapshot.id.clone(), None));
            self.policies.insert(snapshot.id.clone(), snapshot);
        }
        for write in batch.runs {
            self.apply_run(write, undo)?;
        }
        Ok(())
    }

    fn apply_workspace(&mut self, write: WorkspaceWrite, undo: &mut Vec<Undo>) -> Result<()> {
        match write {
            WorkspaceWrite::Create(record) => {
                if self.workspaces.contains_key(&record.id) {
                    return Err(Error::already_exists(format!(
                        "workspace {} already exists",
                        record.id
                    )));
                }
                undo.push(Undo::Workspace(record.id.clone(), None));
                self.workspaces.insert(record.id.clone(), record);
            }
            WorkspaceWrite::Update {
                mut record,
                expected_revision,
            } => {
                let current = self
                    .workspaces
                    .get(&record.id)
                    .ok_or_else(|| missing_workspace(&record.id))?;
                if current.revision != expected_revision {
                    return Err(stale(&record.id, expected_revision, current.revision));
                }
                record.revision = expected_revision + 1;
                record.created_at = current.created_at;
                let prev = self.workspaces.insert(record.id.clone(), record.clone());
                undo.push(Undo::Workspace(record.id, prev));
            }
            WorkspaceWrite::Fenced { id, token, change } => {
                let current = self
                    .workspaces
                    .get_mut(&id)
                    .ok_or_else(|| missing_workspace(&id))?;
                if current.lease.as_ref().map(|l| &l.token) != Some(&token) {
                    return Err(Error::conflict(format!(
                        "the lease on workspace {id} is no longer held by this token"
                    )));
                }
                undo.push(Undo::Workspace(id.clone(), Some(current.clone())));
                current.lease = change.lease;
                if let Some(head) = change.head {
                    current.head = Some(head);
                }
                current.updated_at = change.updated_at;
                current.revision += 1;
            }
            WorkspaceWrite::Delete {
                id,
                expected_revision,
            } => {
                let current = self
                    .workspaces
                    .get(&id)
                    .ok_or_else(|| missing_workspace(&id))?;
                if current.revision != expected_revision {
                    return Err(stale(&id, expected_revision, current.revision));
                }
                let prev = self.workspaces.remove(&id);
                undo.push(Undo::Workspace(id.clone(), prev));
                let runs: Vec<RunId> = self
                    .runs
                    .values()
                    .filter(|r| r.workspace_id == id)
                    .map(|r| r.id.clone())
                    .collect();
                for run in runs {
                    let prev = self.runs.remove(&run);
                    undo.push(Undo::Run(run, prev));
                }
                let policies: Vec<String> = self
                    .policies
                    .values()
                    .filter(|p| p.workspace_id == id)
                    .map(|p| p.id.clone())
                    .collect();
                for policy in policies {
                    let prev = self.policies.remove(&policy);
                    undo.push(Undo::Policy(policy, prev));
                }
            }
        }
        Ok(())
    }

    fn apply_run(&mut self, write: RunWrite, undo: &mut Vec<Undo>) -> Result<()> {
        match write {
            RunWrite::Insert(run) => {
                if !self.workspaces.contains_key(&run.workspace_id) {
                    return Err(missing_workspace(&run.workspace_id));
                }
                if self.runs.contains_key(&run.id) {
                    return Err(Error::already_exists(format!(
                        "run {} already exists",
                        run.id
                    )));
                }
                if let Some(key) = &run.idempotency_key
                    && self.find_by_key(&run.workspace_id, key).is_some()
                {
                    return Err(Error::already_exists(format!(
                        "a run with idempotency key {key:?} already exists in workspace {}",
                        run.workspace_id
                    )));
                }
                undo.push(Undo::Run(run.id.clone(), None));
                self.runs.insert(run.id.clone(), run);
            }
            RunWrite::Finish { id, finish } => {
                let run = self
                    .runs
                    .get_mut(&id)
                    .ok_or_else(|| Error::not_found(format!("run {id} does not exist")))?;
                undo.push(Undo::Run(id.clone(), Some(run.clone())));
                run.status = finish.status;
                run.exit_code = finish.exit_code.or(run.exit_code);
                run.stdout = finish.stdout.or(run.stdout.take());
                run.stderr = finish.stderr.or(run.stderr.take());
                run.stdout_truncated = finish.stdout_truncated;
                run.stderr_truncated = finish.stderr_truncated;
                run.session_id = finish.session_id.or(run.session_id.take());
                run.snapshot = finish.snapshot;
                run.error = finish.error;
                run.finished_at = Some(finish.finished_at);
                if finish.release_idempotency_key {
                    run.idempotency_key = None;
                }
            }
            RunWrite::SnapshotDeleted { id, at } => {
                let run = self
                    .runs
                    .get_mut(&id)
                    .ok_or_else(|| Error::not_found(format!("run {id} does not exist")))?;
                undo.push(Undo::Run(id.clone(), Some(run.clone())));
                run.snapshot_deleted_at = at;
            }
        }
        Ok(())
    }

    fn find_by_key(&self, workspace: &WorkspaceId, key: &str) -> Option<&RunRecord> {
        self.runs
            .values()
            .find(|r| &r.workspace_id == workspace && r.idempotency_key.as_deref() == Some(key))
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn id(&self) -> &str {
        "memory"
    }

    async fn apply(&self, batch: WriteBatch) -> Result<()> {
        self.lock().apply(batch)
    }

    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<WorkspaceRecord>> {
        Ok(self.lock().workspaces.get(id).cloned())
    }

    async fn list_workspaces(&self, query: &WorkspaceListing) -> Result<Page<WorkspaceRecord>> {
        let state = self.lock();
        let mut items: Vec<WorkspaceRecord> = state
            .workspaces
            .values()
            .filter(|w| query.after.as_ref().is_none_or(|a| &w.id > a))
            .filter(|w| query.status.is_none_or(|s| w.status == s))
            .filter(|w| {
                query
                    .name_prefix
                    .as_ref()
                    .is_none_or(|p| w.name.starts_with(p.as_str()))
            })
            .filter(|w| query.parent.is_none() || w.parent == query.parent)
            .filter(|w| {
                query
                    .head
                    .as_ref()
                    .is_none_or(|h| w.head.as_ref().is_some_and(|head| &head.id == h))
            })
            .take(query.limit + 1)
            .cloned()
            .collect();
        Ok(page(&mut items, query.limit, |w| w.id.to_string()))
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        Ok(self.lock().runs.get(id).cloned())
    }

    async fn list_runs(&self, query: &RunListing) -> Result<Page<RunRecord>> {
        let state = self.lock();
        let matches = |r: &&RunRecord| {
            r.workspace_id == query.workspace_id
                && query.status.is_none_or(|s| r.status == s)
                && (!query.live_snapshots
                    || (r.snapshot.is_some() && r.snapshot_deleted_at.is_none()))
        };
        let mut items: Vec<RunRecord> = match query.order {
            Order::Asc => state
                .runs
                .values()
                .filter(|r| query.cursor.as_ref().is_none_or(|c| &r.id > c))
                .filter(matches)
                .take(query.limit + 1)
                .cloned()
                .collect(),
            Order::Desc => state
                .runs
                .values()
                .rev()
                .filter(|r| query.cursor.as_ref().is_none_or(|c| &r.id < c))
                .filter(matches)
                .take(query.limit + 1)
                .cloned()
                .collect(),
        };
        Ok(page(&mut items, query.limit, |r| r.id.to_string()))
    }

    async fn find_run_by_key(
        &self,
        workspace: &WorkspaceId,
        key: &str,
    ) -> Result<Option<RunRecord>> {
        Ok(self.lock().find_by_key(workspace, key).cloned())
    }

    async fn find_runs_by_snapshot(&self, snapshot_id: &str) -> Result<Vec<RunRecord>> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|r| r.snapshot.as_ref().is_some_and(|s| s.id == snapshot_id))
            .cloned()
            .collect())
    }

    async fn get_policy_snapshot(&self, id: &str) -> Result<Option<PolicySnapshot>> {
        Ok(self.lock().policies.get(id).cloned())
    }

    async fn get_setup(&self, id: &str) -> Result<Option<SetupRecord>> {
        Ok(self.lock().setups.get(id).cloned())
    }

    async fn list_setups(&self) -> Result<Vec<SetupRecord>> {
        Ok(self.lock().setups.values().cloned().collect())
    }

    async fn put_setup_if_absent(&self, record: &SetupRecord) -> Result<bool> {
        let mut state = self.lock();
        if state.setups.contains_key(&record.id) {
            return Ok(false);
        }
        state.setups.insert(record.id.clone(), record.clone());
        Ok(true)
    }

    async fn update_setup(&self, record: &SetupRecord, expected_revision: i64) -> Result<()> {
        let mut state = self.lock();
        let current = state
            .setups
            .get_mut(&record.id)
            .ok_or_else(|| Error::not_found(format!("setup state {} does not exist", record.id)))?;
        if current.revision != expected_revision {
            return Err(Error::conflict(format!(
                "setup state {} changed concurrently; re-read and retry",
                record.id
            )));
        }
        let created_at = current.created_at;
        *current = record.clone();
        current.revision = expected_revision + 1;
        current.created_at = created_at;
        Ok(())
    }

    async fn delete_setup(&self, id: &str, expected_revision: Option<i64>) -> Result<bool> {
        let mut state = self.lock();
        match state.setups.get(id) {
            Some(r) if expected_revision.is_none_or(|e| e == r.revision) => {
                state.setups.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Puts back (or removes) one entry.
fn restore<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, prev: Option<V>) {
    match prev {
        Some(value) => {
            map.insert(key, value);
        }
        None => {
            map.remove(&key);
        }
    }
}

/// Trims the one look-ahead item and sets the cursor.
fn page<T>(items: &mut Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more { items.last().map(cursor) } else { None };
    Page {
        items: std::mem::take(items),
        next_cursor,
    }
}
