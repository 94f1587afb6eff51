//! A [`Store`] decorator that adds up the time spent in each store call, so a figure
//! can say how much of Sandkit's overhead is the database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sandkit_core::{
    Page, PolicySnapshot, Result, RunId, RunListing, RunRecord, SetupRecord, Store, WorkspaceId,
    WorkspaceListing, WorkspaceRecord, WorkspaceWrite, WriteBatch,
};
use serde_json::{Value, json};

/// Calls and total time per store operation.
pub type Tally = BTreeMap<&'static str, (u64, Duration)>;

/// Delegates to the inner store and records how long each call took.
#[derive(Debug)]
pub struct TimedStore {
    inner: Arc<dyn Store>,
    tally: Mutex<Tally>,
}

impl TimedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        TimedStore {
            inner,
            tally: Mutex::new(Tally::new()),
        }
    }

    /// What was recorded since the last call, resetting it.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        let took = started.elapsed();
        let mut tally = self.lock();
        let entry = tally.entry(op).or_default();
        entry.0 += 1;
        entry.1 += took;
        out
    }
}

/// Adds `more` into `into`.
pub fn add(into: &mut Tally, more: Tally) {
    for (op, (calls, took)) in more {
        let entry = into.entry(op).or_default();
        entry.0 += calls;
        entry.1 += took;
    }
}

/// Total time of a tally.
pub fn total(tally: &Tally) -> Duration {
    tally.values().map(|(_, t)| *t).sum()
}

/// Per-operation calls and microseconds, divided by `per` (e.g. per durable command).
pub fn tally_json(tally: &Tally, per: u64) -> Value {
    let per = per.max(1) as f64;
    let ops: serde_json::Map<String, Value> = tally
        .iter()
        .map(|(op, (calls, total))| {
            (
                (*op).to_owned(),
                json!({
                    "calls": crate::stats::round(*calls as f64 / per),
                    "us": crate::stats::round(crate::stats::us(*total) / per),
                }),
            )
        })
        .collect();
    Value::Object(ops)
}

/// Which kind of batch this is, for the breakdown.
fn batch_kind(batch: &WriteBatch) -> &'static str {
    match &batch.workspace {
        Some(WorkspaceWrite::Create(_)) => "apply: create",
        Some(WorkspaceWrite::Update { .. }) if !batch.runs.is_empty() => {
            "apply: acquire lease + insert run"
        }
        Some(WorkspaceWrite::Update { .. }) => "apply: update",
        Some(WorkspaceWrite::Fenced { .. }) if !batch.runs.is_empty() => {
            "apply: commit head + finish run"
        }
        Some(WorkspaceWrite::Fenced { .. }) => "apply: renew lease",
        Some(WorkspaceWrite::Delete { .. }) => "apply: delete",
        None => "apply: runs only (retention marks)",
    }
}

#[async_trait]
impl Store for TimedStore {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn apply(&self, batch: WriteBatch) -> Result<()> {
        let kind = batch_kind(&batch);
        self.timed(kind, self.inner.apply(batch)).await
    }

    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<WorkspaceRecord>> {
        self.timed("get_workspace", self.inner.get_workspace(id))
            .await
    }

    async fn list_workspaces(&self, query: &WorkspaceListing) -> Result<Page<WorkspaceRecord>> {
        self.timed("list_workspaces", self.inner.list_workspaces(query))
            .await
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        self.timed("get_run", self.inner.get_run(id)).await
    }

    async fn list_runs(&self, query: &RunListing) -> Result<Page<RunRecord>> {
        self.timed("list_runs", self.inner.list_runs(query)).await
    }

    async fn find_run_by_key(
        &self,
        workspace: &WorkspaceId,
        key: &str,
    ) -> Result<Option<RunRecord>> {
        self.timed(
            "find_run_by_key",
            self.inner.find_run_by_key(workspace, key),
        )
        .await
    }

    async fn find_runs_by_snapshot(&self, snapshot_id: &str) -> Result<Vec<RunRecord>> {
        self.timed(
            "find_runs_by_snapshot",
            self.inner.find_runs_by_snapshot(snapshot_id),
        )
        .await
    }

    async fn get_policy_snapshot(&self, id: &str) -> Result<Option<PolicySnapshot>> {
        self.timed("get_policy_snapshot", self.inner.get_policy_snapshot(id))
            .await
    }

    async fn get_setup(&self, id: &str) -> Result<Option<SetupRecord>> {
        self.timed("get_setup", self.inner.get_setup(id)).await
    }

    async fn put_setup_if_absent(&self, record: &SetupRecord) -> Result<bool> {
        self.timed(
            "put_setup_if_absent",
            self.inner.put_setup_if_absent(record),
        )
        .await
    }

    async fn update_setup(&self, record: &SetupRecord, expected_revision: i64) -> Result<()> {
        self.timed(
            "update_setup",
            self.inner.update_setup(record, expected_revision),
        )
        .await
    }

    async fn delete_setup(&self, id: &str, expected_revision: Option<i64>) -> Result<bool> {
        self.timed(
            "delete_setup",
            self.inner.delete_setup(id, expected_revision),
        )
        .await
    }
}
