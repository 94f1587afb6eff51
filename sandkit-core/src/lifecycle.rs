//! Workspace lifecycle beyond commands and sessions: fork, restore, and the journal.

use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{RunId, WorkspaceId};
use crate::lease::{CAS_ATTEMPTS, busy_error, gave_up};
use crate::model::{RunKind, RunRecord, RunStatus, SnapshotRef, WorkspaceRecord, now};
use crate::sandkit::Sandkit;
use crate::spec::{RunQuery, WorkspaceSpec, strip_reserved};
use crate::store::{Order, RunWrite, WorkspaceWrite, WriteBatch};
use crate::workspace::Workspace;

/// One line of the exported journal: a run plus the links needed to follow history
/// across forks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// The run (already redacted: env values and secrets are never stored).
    #[serde(flatten)]
    pub run: RunRecord,
    /// The workspace this one was forked from, if any.
    pub workspace_parent: Option<WorkspaceId>,
}

fn deleted_snapshot(snapshot: &SnapshotRef, run: &RunRecord) -> Error {
    Error::snapshot_unavailable(format!(
        "the snapshot {} of run {} was deleted by snapshot retention; choose a more recent run",
        snapshot.id, run.id
    ))
}

impl Sandkit {
    /// Forks `source` at its head: a new workspace with the same files, policy and
    /// sandbox settings (unless `spec` sets them), `parent` set, and its own history.
    /// The source is untouched; both evolve independently.
    ///
    /// # Errors
    /// `NotFound` when the source does not exist or is deleted while it is forked
    /// (nothing is created); `SnapshotUnavailable` when retention was deleting the
    /// snapshot at that moment (retry); `AlreadyExists` for a taken fork id.
    pub async fn fork_workspace(
        &self,
        source: impl AsRef<str>,
        spec: WorkspaceSpec,
    ) -> Result<Workspace> {
        self.fork(source.as_ref(), None, spec).await
    }

    /// Forks `source` at the snapshot an earlier run of it committed.
    pub async fn fork_workspace_at(
        &self,
        source: impl AsRef<str>,
        run: &RunId,
        spec: WorkspaceSpec,
    ) -> Result<Workspace> {
        self.fork(source.as_ref(), Some(run), spec).await
    }

    async fn fork(
        &self,
        source: &str,
        at: Option<&RunId>,
        spec: WorkspaceSpec,
    ) -> Result<Workspace> {
        spec.validate()?;
        let inner = &self.inner;
        let source = self.workspace(source).await?;
        let src = source.record();
        let snapshot = match at {
            None => src.head.clone(),
            Some(run_id) => {
                let run = source.run(run_id).await?;
                let snapshot = run.snapshot.clone().ok_or_else(|| {
                    Error::invalid_input(format!(
                        "run {run_id} committed no snapshot ({}); fork at a run that did",
                        run.status.as_str()
                    ))
                })?;
                if run.snapshot_deleted_at.is_some() {
                    return Err(deleted_snapshot(&snapshot, &run));
                }
                Some(snapshot)
            }
        };
        if snapshot.is_some() && !inner.provider.capabilities().fork {
            return Err(Error::unsupported(format!(
                "provider {} cannot start several workspaces from one snapshot, so it cannot fork",
                inner.provider.id()
            )));
        }
        let record = forked_record(src, &spec, snapshot.clone())?;
        inner
            .provider
            .capabilities()
            .check_ports(inner.provider.id(), &record.sandbox_config.exposed_ports)?;
        let mut run = RunRecord::started(
            record.id.clone(),
            RunKind::Fork,
            "fork",
            inner.provider.id(),
            inner.config.holder.clone(),
        );
        run.args = vec![
            src.id.to_string(),
            at.map_or_else(|| "head".to_owned(), ToString::to_string),
        ];
        run.policy_description = record
            .policy
            .as_ref()
            .map_or_else(|| "allow-all".to_owned(), |p| p.describe());
        run.base_snapshot = snapshot.clone();
        let run = run.finished(RunStatus::Succeeded, snapshot.clone());
        inner
            .store
            .apply(
                WriteBatch::workspace(WorkspaceWrite::Create(record.clone()))
                    .run(RunWrite::Insert(run)),
            )
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => Error::already_exists(format!(
                    "workspace {} already exists; choose another id for the fork",
                    record.id
                )),
                _ => e,
            })?;
        // Retention may have started deleting this snapshot before our write, or the
        // source may have been deleted since we read it (its deletion forgets snapshots
        // no workspace references, and may have looked before our write): either way,
        // undo the fork rather than leave it with a head that is about to vanish. If the
        // source is still there now, its deletion comes later and sees the fork.
        if let Some(s) = &snapshot {
            let undo = || async {
                let _ = inner
                    .store
                    .apply(WriteBatch::workspace(WorkspaceWrite::Delete {
                        id: record.id.clone(),
                        expected_revision: record.revision,
                    }))
                    .await;
            };
            let tombstoned = match inner.tombstoned(s).await {
                Ok(t) => t,
                Err(e) => {
                    undo().await;
                    return Err(e);
                }
            };
            if tombstoned {
                undo().await;
                return Err(Error::snapshot_unavailable(format!(
                    "snapshot {} was being deleted by retention while forking; retry the fork",
                    s.id
                )));
            }
            let source_left = match inner.store.get_workspace(&src.id).await {
                Ok(found) => found.is_none(),
                Err(e) => {
                    undo().await;
                    return Err(e);
                }
            };
            if source_left {
                undo().await;
                // The source's deletion may have seen this fork and kept the snapshot;
                // with the fork gone nothing holds it.
                inner.forget_snapshots(vec![s.clone()]).await;
                return Err(Error::not_found(format!(
                    "workspace {} was deleted while it was being forked; nothing was created",
                    src.id
                )));
            }
        }
        info!(source = %src.id, fork = %record.id, snapshot = ?snapshot.as_ref().map(|s| &s.id), "workspace forked");
        Ok(Workspace::from_record(self.clone(), record))
    }
}

fn forked_record(
    src: &WorkspaceRecord,
    spec: &WorkspaceSpec,
    head: Option<SnapshotRef>,
) -> Result<WorkspaceRecord> {
    let id = match &spec.id {
        Some(raw) => WorkspaceId::new(raw.clone())?,
        None => WorkspaceId::generate(),
    };
    let mut record = WorkspaceRecord::new(id);
    record.name = spec
        .name
        .as_ref()
        .map_or_else(|| format!("{} (fork)", src.name), |n| n.trim().to_owned());
    record.metadata = if spec.metadata.is_empty() {
        src.metadata.clone()
    } else {
        strip_reserved(spec.metadata.clone())
    };
    record.policy = spec.policy.clone().or_else(|| src.policy.clone());
    record.sandbox_config = src.sandbox_config.clone();
    if !spec.exposed_ports.is_empty() {
        record.sandbox_config.exposed_ports = spec.exposed_ports.clone();
    }
    if let Some(t) = spec.timeout {
        record.sandbox_config.timeout_ms = Some(t.as_millis() as u64);
    }
    if spec.vcpus.is_some() {
        record.sandbox_config.vcpus = spec.vcpus;
    }
    if let Some(status) = spec.status {
        record.status = status;
    }
    record.head = head;
    record.parent = Some(src.id.clone());
    Ok(record)
}

impl Workspace {
    /// Moves the head back to the snapshot an earlier run committed, journaled as a run
    /// of kind `restore` — the explicit answer to a lost or unwanted head. `Busy` while a
    /// lease is live.
    pub async fn restore(&self, run_id: &RunId) -> Result<RunRecord> {
        let target = self.run(run_id).await?;
        let snapshot = target.snapshot.clone().ok_or_else(|| {
            Error::invalid_input(format!(
                "run {run_id} committed no snapshot ({}); restore a run that did",
                target.status.as_str()
            ))
        })?;
        if target.snapshot_deleted_at.is_some() {
            return Err(deleted_snapshot(&snapshot, &target));
        }
        let inner = self.inner();
        for _ in 0..CAS_ATTEMPTS {
            let ws = inner.load(self.id()).await?;
            if let Some(lease) = ws.live_lease(now()) {
                return Err(busy_error(&ws, lease));
            }
            if ws.lease.is_some() {
                inner.release_expired(&ws).await?;
                continue;
            }
            let mut run = RunRecord::started(
                ws.id.clone(),
                RunKind::Restore,
                "restore",
                inner.provider.id(),
                inner.config.holder.clone(),
            );
            run.args = vec![run_id.to_string()];
            run.policy_description = ws
                .policy
                .as_ref()
                .map_or_else(|| "allow-all".to_owned(), |p| p.describe());
            run.base_snapshot = ws.head.clone();
            let run = run.finished(RunStatus::Succeeded, Some(snapshot.clone()));
            let mut record = ws.clone();
            record.head = Some(snapshot.clone());
            record.updated_at = now();
            let batch = WriteBatch::workspace(WorkspaceWrite::Update {
                record,
                expected_revision: ws.revision,
            })
            .run(RunWrite::Insert(run.clone()));
            match inner.store.apply(batch).await {
                Ok(()) => {
                    if inner.tombstoned(&snapshot).await? {
                        self.undo_restore(&ws, &snapshot).await?;
                        return Err(Error::snapshot_unavailable(format!(
                            "snapshot {} was being deleted by retention while restoring; the head is unchanged",
                            snapshot.id
                        )));
                    }
                    info!(workspace = %ws.id, run = %run_id, snapshot = %snapshot.id, "head restored");
                    return Ok(run);
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(self.id()))
    }

    /// Puts the previous head back after a restore lost a race with retention.
    async fn undo_restore(&self, before: &WorkspaceRecord, snapshot: &SnapshotRef) -> Result<()> {
        self.update_if(|record| {
            if record.head.as_ref() != Some(snapshot) {
                return Ok(false);
            }
            record.head = before.head.clone();
            Ok(true)
        })
        .await
    }

    /// The whole run journal, oldest first, as [`JournalEntry`]s (redacted: the store
    /// never holds env values or secrets).
    pub fn journal(&self) -> impl Stream<Item = Result<JournalEntry>> + Send + 'static {
        self.journal_stream(None)
    }

    /// Like [`journal`](Self::journal), then keeps polling every `poll` and yields each
    /// new run once it has finished. Never ends on its own.
    pub fn follow_journal(
        &self,
        poll: Duration,
    ) -> impl Stream<Item = Result<JournalEntry>> + Send + 'static {
        self.journal_stream(Some(poll))
    }

    fn journal_stream(
        &self,
        follow: Option<Duration>,
    ) -> impl Stream<Item = Result<JournalEntry>> + Send + 'static {
        struct State {
            ws: Workspace,
            parent: Option<WorkspaceId>,
            cursor: Option<String>,
            buffered: std::collections::VecDeque<RunRecord>,
            done: bool,
        }
        let state = State {
            parent: self.record.parent.clone(),
            ws: self.clone(),
            cursor: None,
            buffered: Default::default(),
            done: false,
        };
        futures::stream::unfold(state, move |mut st| async move {
            loop {
                if st.done {
                    return None;
                }
                if let Some(run) = st.buffered.pop_front() {
                    let entry = JournalEntry {
                        run,
                        workspace_parent: st.parent.clone(),
                    };
                    return Some((Ok(entry), st));
                }
                let page = st
                    .ws
                    .runs(RunQuery {
                        cursor: st.cursor.clone(),
                        order: Order::Asc,
                        limit: Some(500),
                        ..RunQuery::default()
                    })
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                };
                let last_page = page.next_cursor.is_none();
                for run in page.items {
                    // When following, a run still in progress holds the cursor back
                    // until it finishes, so every entry is emitted complete and in order.
                    if follow.is_some() && run.status == RunStatus::Started {
                        break;
                    }
                    st.cursor = Some(run.id.to_string());
                    st.buffered.push_back(run);
                }
                if st.buffered.is_empty() && last_page {
                    match follow {
                        Some(poll) => tokio::time::sleep(poll).await,
                        None => return None,
                    }
                } else if st.buffered.is_empty() {
                    // Held back by a run in progress on a full page.
                    if let Some(poll) = follow {
                        tokio::time::sleep(poll).await;
                    }
                }
            }
        })
    }
}
