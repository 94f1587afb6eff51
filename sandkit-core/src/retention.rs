//! Snapshot retention: delete provider snapshots nobody can need any more.
//!
//! A snapshot is kept while it is any workspace's head or one of the last N run
//! snapshots (N = [`Config::keep_snapshots`](crate::Config::keep_snapshots)) of any
//! workspace that references it — so a fork pins the snapshot it started from. Deletion
//! is two-phase so that it never races a fork or restore into deleting a snapshot they
//! just took: the runs holding it are first marked deleted (a tombstone that forks and
//! restores check after their own write), references are checked again, and only then is
//! the snapshot deleted at the provider. A failed deletion clears the tombstone, so the
//! next pass retries it; nothing here ever blocks a commit.
//!
//! [`Sandkit::gc`] also sweeps what no workspace, run or setup references, when the
//! provider lists its snapshots and the store its setups: snapshots taken by a holder
//! that died before its commit, and snapshots whose runs all carry a tombstone (a
//! process killed between the tombstone and the provider call). Only snapshots older
//! than [`Config::unreferenced_grace`](crate::Config::unreferenced_grace) are touched,
//! so a commit in flight never loses its snapshot.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::error::{ErrorKind, Result};
use crate::ids::{RunId, WorkspaceId};
use crate::model::{RunRecord, SnapshotRef, now};
use crate::sandkit::{Inner, Sandkit};
use crate::store::{Order, RunListing, RunWrite, WorkspaceListing, WriteBatch};

/// Page size used when walking runs and workspaces.
const PAGE: usize = 500;

/// What a retention pass did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Snapshots deleted at the provider (or that would be, in a dry run).
    pub deleted: Vec<SnapshotRef>,
    /// Candidates kept because something still references them.
    pub kept: usize,
    /// Deletions that failed (retried by the next pass), with the reason.
    pub failed: Vec<(SnapshotRef, String)>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// How many of `deleted` nothing referenced (see the module docs).
    pub unreferenced: usize,
    /// Setup builds abandoned by a builder that died, whose sandbox and claim were
    /// discarded (or would be, in a dry run).
    pub abandoned_setups: usize,
}

impl Sandkit {
    /// Runs snapshot retention over every workspace now (commits also trigger it for
    /// their workspace). With `dry_run`, reports what would be deleted and changes nothing.
    pub async fn gc(&self, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let inner = &self.inner;
        inner
            .each_workspace(async |ws| inner.collect(&ws.id, dry_run, &mut report).await)
            .await?;
        self.inner.sweep_unreferenced(dry_run, &mut report).await?;
        report.abandoned_setups = self.inner.sweep_abandoned_setups(dry_run).await?;
        Ok(report)
    }
}

impl Inner {
    /// Calls `visit` with every workspace, a page at a time.
    pub(crate) async fn each_workspace(
        &self,
        mut visit: impl AsyncFnMut(&crate::model::WorkspaceRecord) -> Result<()>,
    ) -> Result<()> {
        let mut after = None;
        loop {
            let page = self
                .store
                .list_workspaces(&WorkspaceListing {
                    after: after.clone(),
                    limit: PAGE,
                    ..WorkspaceListing::default()
                })
                .await?;
            for ws in &page.items {
                visit(ws).await?;
            }
            match page.next_cursor {
                Some(c) => after = Some(WorkspaceId::from_stored(c)),
                None => return Ok(()),
            }
        }
    }

    /// Retention for one workspace in a background task; errors are logged.
    pub(crate) fn collect_in_background(self: &Arc<Self>, id: WorkspaceId) {
        if self.config.keep_snapshots.is_none() || !self.provider.capabilities().snapshot_delete {
            return;
        }
        let inner = self.clone();
        self.background.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            let mut report = GcReport::default();
            if let Err(e) = inner.collect(&id, false, &mut report).await {
                warn!(workspace = %id, error = %e, "snapshot retention failed; the next pass retries");
            } else if !report.deleted.is_empty() {
                info!(workspace = %id, deleted = report.deleted.len(), "old snapshots deleted");
            }
            inner.background.send_modify(|n| *n -= 1);
        });
    }

    /// One retention pass over a workspace's run snapshots.
    pub(crate) async fn collect(
        &self,
        id: &WorkspaceId,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let Some(keep) = self.config.keep_snapshots else {
            return Ok(());
        };
        if !self.provider.capabilities().snapshot_delete {
            return Ok(());
        }
        let Some(ws) = self.store.get_workspace(id).await? else {
            return Ok(());
        };
        let runs = self.runs_with_snapshots(id).await?;
        let mut seen = HashSet::new();
        for run in runs.iter().skip(keep) {
            let Some(snapshot) = &run.snapshot else {
                continue;
            };
            if !seen.insert(snapshot.id.clone())
                || ws.head.as_ref().is_some_and(|h| h.id == snapshot.id)
            {
                continue;
            }
            // A referenced snapshot (pinned by a fork) is skipped with reads only;
            // tombstoning it first would cost two writes on every pass. `delete` checks
            // again after its tombstone, which is the check that counts.
            if self.referenced(snapshot, keep).await? {
                report.kept += 1;
            } else if dry_run {
                report.deleted.push(snapshot.clone());
            } else {
                self.delete(snapshot, keep, report).await?;
            }
        }
        Ok(())
    }

    /// Deletes the provider's snapshots older than the grace period that no head, no
    /// setup and no run without a tombstone references.
    async fn sweep_unreferenced(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        if self.config.keep_snapshots.is_none() || !self.provider.capabilities().snapshot_delete {
            return Ok(());
        }
        let unsupported = |e: &crate::Error| e.kind() == &ErrorKind::Unsupported;
        let listed = match self.provider.list_snapshots().await {
            Ok(listed) => listed,
            Err(e) if unsupported(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        let setups: HashSet<String> = match self.store.list_setups().await {
            Ok(setups) => setups
                .into_iter()
                .filter_map(|s| s.snapshot.map(|snap| snap.id))
                .collect(),
            Err(e) if unsupported(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        let cutoff = now() - crate::lease::chrono_duration(self.config.unreferenced_grace);
        for info in listed {
            let snapshot = &info.snapshot;
            if snapshot.provider != self.provider.id()
                || info.created_at > cutoff
                || setups.contains(&snapshot.id)
                || report.deleted.contains(snapshot)
            {
                continue;
            }
            let holders = self.store.find_runs_by_snapshot(&snapshot.id).await?;
            if holders.iter().any(|r| r.snapshot_deleted_at.is_none()) {
                continue;
            }
            let heads = self
                .store
                .list_workspaces(&WorkspaceListing {
                    head: Some(snapshot.id.clone()),
                    limit: 1,
                    ..WorkspaceListing::default()
                })
                .await?;
            if !heads.items.is_empty() {
                continue;
            }
            if dry_run {
                report.deleted.push(snapshot.clone());
                report.unreferenced += 1;
                continue;
            }
            match self.provider.delete_snapshot(snapshot).await {
                Ok(()) => {
                    info!(snapshot = %snapshot.id, runs = holders.len(), "deleted a snapshot nothing references");
                    report.deleted.push(snapshot.clone());
                    report.unreferenced += 1;
                }
                Err(e) => {
                    warn!(snapshot = %snapshot.id, error = %e, "could not delete a snapshot nothing references; the next gc retries it");
                    report.failed.push((snapshot.clone(), e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Tombstone → re-check → delete at the provider (or undo the tombstone).
    async fn delete(
        &self,
        snapshot: &SnapshotRef,
        keep: usize,
        report: &mut GcReport,
    ) -> Result<()> {
        let holders = self.store.find_runs_by_snapshot(&snapshot.id).await?;
        if !self.mark(&holders, Some(now())).await? {
            // A holder vanished meanwhile (its workspace was deleted): no tombstone was
            // written, so forks would not see one. Try again on a later pass.
            report.kept += 1;
            return Ok(());
        }
        if self.referenced(snapshot, keep).await? {
            debug!(snapshot = %snapshot.id, "snapshot was taken by a fork or restore meanwhile; keeping it");
            self.mark(&holders, None).await?;
            report.kept += 1;
            return Ok(());
        }
        match self.provider.delete_snapshot(snapshot).await {
            Ok(()) => {
                debug!(snapshot = %snapshot.id, "snapshot deleted by retention");
                report.deleted.push(snapshot.clone());
            }
            Err(e) => {
                warn!(snapshot = %snapshot.id, error = %e, "snapshot deletion failed; retrying on the next pass");
                self.mark(&holders, None).await?;
                report.failed.push((snapshot.clone(), e.to_string()));
            }
        }
        Ok(())
    }

    /// Sets (or clears) the tombstone of every run holding a snapshot, atomically;
    /// `false` when one of them no longer exists (then nothing was written).
    async fn mark(
        &self,
        runs: &[RunRecord],
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<bool> {
        let mut batch = WriteBatch::default();
        for run in runs {
            batch = batch.run(RunWrite::SnapshotDeleted {
                id: run.id.clone(),
                at,
            });
        }
        match self.store.apply(batch).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == &ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether any workspace's head is `snapshot`, or any workspace keeps it among its
    /// last `keep` run snapshots (tombstoned runs of this snapshot still count).
    pub(crate) async fn referenced(&self, snapshot: &SnapshotRef, keep: usize) -> Result<bool> {
        let heads = self
            .store
            .list_workspaces(&WorkspaceListing {
                head: Some(snapshot.id.clone()),
                limit: 1,
                ..WorkspaceListing::default()
            })
            .await?;
        if !heads.items.is_empty() {
            return Ok(true);
        }
        let holders = self.store.find_runs_by_snapshot(&snapshot.id).await?;
        let workspaces: HashSet<WorkspaceId> =
            holders.iter().map(|r| r.workspace_id.clone()).collect();
        for ws in workspaces {
            // The workspace's live run snapshots plus its runs of this snapshot (which
            // may carry our own tombstone), newest first: is one of the latter kept?
            let mut ranked: Vec<(RunId, bool)> = self
                .runs_with_snapshots(&ws)
                .await?
                .into_iter()
                .map(|r| {
                    let holds = r.snapshot.as_ref().is_some_and(|s| s.id == snapshot.id);
                    (r.id, holds)
                })
                .collect();
            ranked.extend(
                holders
                    .iter()
                    .filter(|h| h.workspace_id == ws)
                    .map(|h| (h.id.clone(), true)),
            );
            ranked.sort_by(|a, b| b.0.cmp(&a.0));
            ranked.dedup_by(|a, b| a.0 == b.0);
            if ranked.iter().take(keep).any(|(_, holds)| *holds) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A workspace's runs that hold a live snapshot, newest first (the store filters,
    /// so in steady state this reads about `keep` rows).
    async fn runs_with_snapshots(&self, id: &WorkspaceId) -> Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        let mut cursor: Option<RunId> = None;
        loop {
            let page = self
                .store
                .list_runs(&RunListing {
                    workspace_id: id.clone(),
                    status: None,
                    live_snapshots: true,
                    cursor: cursor.clone(),
                    order: Order::Desc,
                    limit: PAGE,
                })
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(RunId::from_stored(c)),
                None => return Ok(out),
            }
        }
    }

    /// Whether any run holding `snapshot` carries a retention tombstone.
    pub(crate) async fn tombstoned(&self, snapshot: &SnapshotRef) -> Result<bool> {
        Ok(self
            .store
            .find_runs_by_snapshot(&snapshot.id)
            .await?
            .iter()
            .any(|r| r.snapshot_deleted_at.is_some()))
    }

    /// Deletes the snapshots of a deleted workspace that nobody else references.
    pub(crate) async fn forget_snapshots(&self, snapshots: Vec<SnapshotRef>) {
        let Some(keep) = self.config.keep_snapshots else {
            return;
        };
        if !self.provider.capabilities().snapshot_delete {
            return;
        }
        let mut report = GcReport::default();
        let mut seen = HashSet::new();
        for snapshot in snapshots {
            if !seen.insert(snapshot.id.clone()) {
                continue;
            }
            let outcome = match self.referenced(&snapshot, keep).await {
                Ok(false) => self.delete(&snapshot, keep, &mut report).await,
                Ok(true) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                warn!(snapshot = %snapshot.id, error = %e, "could not delete a deleted workspace's snapshot");
            }
        }
    }
}
