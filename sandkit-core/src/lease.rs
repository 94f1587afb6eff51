//! Leases: acquisition by compare-and-set, recovery of expired leases, fenced writes
//! and heartbeats.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{LeaseToken, WorkspaceId};
use crate::model::{
    Lease, LeaseKind, PolicySnapshot, RunFinish, RunRecord, RunStatus, SnapshotRef,
    WorkspaceRecord, now,
};
use crate::sandkit::Inner;
use crate::store::{FencedChange, RunWrite, WorkspaceWrite, WriteBatch};

/// How often a compare-and-set loop re-reads and retries before giving up.
pub(crate) const CAS_ATTEMPTS: usize = 16;

/// How long best-effort cleanup of a dead holder's provider session may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn busy_error(ws: &WorkspaceRecord, lease: &Lease) -> Error {
    let remaining = (lease.expires_at - now()).num_milliseconds().max(0) as f64 / 1000.0;
    let what = match lease.kind {
        LeaseKind::Command => "a durable command is running".to_owned(),
        LeaseKind::Session => "a live session is open".to_owned(),
    };
    let next = match lease.kind {
        LeaseKind::Command => "wait for it to finish and retry",
        LeaseKind::Session => {
            "attach to it with attach_session() and commit or discard it, or wait for it to expire"
        }
    };
    Error::busy(format!(
        "workspace {} is busy: {what} (holder {}, lease expires in {remaining:.1}s); {next}",
        ws.id, lease.holder
    ))
}

pub(crate) fn gave_up(id: &WorkspaceId) -> Error {
    Error::conflict(format!(
        "workspace {id} kept changing under concurrent writers; retry the call"
    ))
}

pub(crate) fn lease_lost(id: &WorkspaceId) -> Error {
    Error::conflict(format!(
        "the lease on workspace {id} was lost (it expired and another holder took over); \
         nothing was committed — retry the operation"
    ))
}

/// What to acquire.
pub(crate) struct AcquireRequest {
    pub(crate) kind: LeaseKind,
    pub(crate) ttl: Duration,
    pub(crate) run: Option<RunRecord>,
    pub(crate) policy_snapshot: Option<PolicySnapshot>,
    pub(crate) session_policy: Option<sandkit_policies::Policy>,
    /// The session about to be started, when the provider can name it in advance
    /// ([`Provider::planned_session`](crate::Provider::planned_session)): recorded with
    /// the lease, so recovery finds it even if the holder dies during the start.
    pub(crate) session: Option<crate::SessionRef>,
}

impl Inner {
    /// Takes the workspace lease: one compare-and-set that also inserts the run (if any)
    /// and, when the previous lease had expired, marks its run interrupted.
    ///
    /// `read` is a record the caller just read, used for the first attempt (saving a
    /// round trip); later attempts re-read.
    pub(crate) async fn acquire(
        &self,
        id: &WorkspaceId,
        req: AcquireRequest,
        mut read: Option<WorkspaceRecord>,
    ) -> Result<(WorkspaceRecord, Lease)> {
        for _ in 0..CAS_ATTEMPTS {
            let ws = match read.take() {
                Some(ws) => ws,
                None => self.load(id).await?,
            };
            let at = now();
            let mut batch = WriteBatch::default();
            let mut ws = ws;
            if let Some(old) = ws.lease.clone() {
                if old.is_live(at) {
                    return Err(busy_error(&ws, &old));
                }
                if let Some(finish) = interrupted_finish(&old) {
                    batch = batch.run(finish);
                }
                // A session whose commit died after its snapshot: finish that commit
                // first, so the work is kept and this lease starts from it.
                if let (Some(snapshot), Some(session)) = (
                    self.snapshot_of_dead_commit(&ws, &old).await,
                    old.session.as_ref(),
                ) {
                    let run = crate::session::session_run(
                        &ws,
                        &old,
                        self.provider.id(),
                        &session.id,
                        &snapshot,
                    );
                    batch = batch.run(RunWrite::Insert(run));
                    warn!(workspace = %id, snapshot = %snapshot.id, "finishing the commit of a session whose committing process died after its snapshot");
                    ws.head = Some(snapshot);
                }
            }
            let lease = Lease {
                kind: req.kind,
                token: LeaseToken::generate(),
                holder: self.config.holder.clone(),
                session: req.session.clone(),
                run_id: req.run.as_ref().map(|r| r.id.clone()),
                acquired_at: at,
                expires_at: at + chrono_duration(req.ttl),
                policy: req.session_policy.clone(),
            };
            let mut record = ws.clone();
            record.lease = Some(lease.clone());
            record.updated_at = at;
            batch.workspace = Some(WorkspaceWrite::Update {
                record: record.clone(),
                expected_revision: ws.revision,
            });
            if let Some(snapshot) = &req.policy_snapshot {
                batch = batch.policy_snapshot(snapshot.clone());
            }
            if let Some(run) = &req.run {
                // The run starts when its lease does (so the journal shows lease
                // intervals), from the head it can see now.
                let mut run = run.clone();
                run.started_at = at;
                run.base_snapshot = ws.head.clone();
                batch = batch.run(RunWrite::Insert(run));
            }
            match self.store.apply(batch).await {
                Ok(()) => {
                    // Only the winner of the takeover stops the dead holder's sandbox.
                    if let Some(old) = &ws.lease {
                        self.cleanup_expired(&ws, old).await;
                    }
                    record.revision = ws.revision + 1;
                    info!(workspace = %id, kind = lease.kind.as_str(), run = ?lease.run_id, "lease acquired");
                    return Ok((record, lease));
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => {
                    debug!(workspace = %id, "lease acquisition lost a race; re-reading");
                }
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(id))
    }

    /// Releases an expired lease without taking a new one (used when an operation
    /// finds a dead session and only needs the workspace back at its head).
    ///
    /// A session whose commit died between its snapshot and the store write has its
    /// commit finished here: the snapshot it ended with becomes the head (journaled as
    /// a `session` run), and is returned.
    pub(crate) async fn release_expired(
        &self,
        ws: &WorkspaceRecord,
    ) -> Result<Option<SnapshotRef>> {
        let Some(old) = &ws.lease else {
            return Ok(None);
        };
        let finished = self.snapshot_of_dead_commit(ws, old).await;
        let mut record = ws.clone();
        record.lease = None;
        record.updated_at = now();
        if let Some(snapshot) = &finished {
            record.head = Some(snapshot.clone());
        }
        let mut batch = WriteBatch::workspace(WorkspaceWrite::Update {
            record,
            expected_revision: ws.revision,
        });
        if let (Some(snapshot), Some(session)) = (&finished, &old.session) {
            let run =
                crate::session::session_run(ws, old, self.provider.id(), &session.id, snapshot);
            batch = batch.run(RunWrite::Insert(run));
        } else if let Some(finish) = interrupted_finish(old) {
            batch = batch.run(finish);
        }
        match self.store.apply(batch).await {
            Ok(()) => {
                self.cleanup_expired(ws, old).await;
                match &finished {
                    Some(snapshot) => {
                        warn!(workspace = %ws.id, snapshot = %snapshot.id, "finished the commit of a session whose committing process died after its snapshot")
                    }
                    None => {
                        info!(workspace = %ws.id, "expired lease released; workspace keeps its head")
                    }
                }
                Ok(finished)
            }
            // Someone else recovered or re-acquired it first: fine.
            Err(e) if e.kind() == &ErrorKind::Conflict => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The snapshot a dead session lease's session ended with (its commit died before
    /// recording it), unless it already is the head. Lookup failures are logged and
    /// read as none: the lease is released either way.
    async fn snapshot_of_dead_commit(
        &self,
        ws: &WorkspaceRecord,
        old: &Lease,
    ) -> Option<SnapshotRef> {
        let session = old
            .session
            .as_ref()
            .filter(|_| old.kind == LeaseKind::Session)?;
        match self.provider.find_session_snapshot(session).await {
            Ok(found) => found.filter(|s| ws.head.as_ref() != Some(s)),
            Err(e) => {
                warn!(workspace = %ws.id, session = %session.id, error = %e, "could not look for the snapshot of a dead session");
                None
            }
        }
    }

    /// Best-effort stop of a dead holder's provider session.
    async fn cleanup_expired(&self, ws: &WorkspaceRecord, old: &Lease) {
        if old.is_live(now()) {
            warn!(
                workspace = %ws.id,
                holder = %old.holder,
                kind = old.kind.as_str(),
                "releasing the lease of a session lost at the provider"
            );
        } else {
            warn!(
                workspace = %ws.id,
                holder = %old.holder,
                kind = old.kind.as_str(),
                expired_at = %old.expires_at,
                "recovering an expired lease"
            );
        }
        if let Some(session) = &old.session {
            self.discard_left_session(session, &format!("workspace {}", ws.id))
                .await;
        }
    }

    /// Best-effort discard of a session a dead holder left (bounded in time; failures
    /// are logged: the provider's own timeout ends the session in the worst case).
    pub(crate) async fn discard_left_session(&self, session: &crate::SessionRef, owner: &str) {
        let discard = self.provider.discard_session(session);
        match tokio::time::timeout(CLEANUP_TIMEOUT, discard).await {
            Ok(Ok(())) => {
                info!(owner, session = %session.id, "discarded the dead holder's session")
            }
            Ok(Err(e)) => {
                warn!(owner, session = %session.id, error = %e, "could not discard the dead holder's session")
            }
            Err(_) => {
                warn!(owner, session = %session.id, "discarding the dead holder's session timed out")
            }
        }
    }

    /// A fenced write under `token`.
    pub(crate) async fn fenced(
        &self,
        id: &WorkspaceId,
        token: &LeaseToken,
        lease: Option<Lease>,
        head: Option<SnapshotRef>,
        runs: Vec<RunWrite>,
    ) -> Result<()> {
        let mut batch = WriteBatch::workspace(WorkspaceWrite::Fenced {
            id: id.clone(),
            token: token.clone(),
            change: FencedChange {
                lease,
                head,
                updated_at: now(),
            },
        });
        batch.runs = runs;
        self.store.apply(batch).await.map_err(|e| {
            if e.kind() == &ErrorKind::Conflict {
                lease_lost(id)
            } else {
                e
            }
        })
    }
}

impl Inner {
    /// After a commit write failed: deletes the new snapshot only when the write surely
    /// did not happen (fenced off, or the workspace is gone). Any other error may have
    /// reached us after the database applied the write, so the head is read back: when it
    /// is the new snapshot, the commit happened. Otherwise the snapshot is left alone —
    /// deleting a snapshot that might be a head could lose it.
    pub(crate) async fn resolve_failed_commit(
        &self,
        id: &WorkspaceId,
        snapshot: &SnapshotRef,
        error: Error,
    ) -> Result<()> {
        if matches!(error.kind(), ErrorKind::Conflict | ErrorKind::NotFound) {
            let _ = self.provider.delete_snapshot(snapshot).await;
            return Err(error);
        }
        match self.store.get_workspace(id).await {
            Ok(Some(ws)) if ws.head.as_ref() == Some(snapshot) => {
                warn!(workspace = %id, error = %error, "the commit was applied although the store reported an error");
                Ok(())
            }
            _ => Err(error),
        }
    }
}

impl Inner {
    /// Changes fields of a live lease held by `token` with compare-and-set on the
    /// revision (retried), so that concurrent changes through several handles of one
    /// session never overwrite each other. `Conflict` when the lease is gone or taken.
    pub(crate) async fn update_lease(
        &self,
        id: &WorkspaceId,
        token: &LeaseToken,
        mut change: impl FnMut(&mut Lease),
    ) -> Result<Lease> {
        for _ in 0..CAS_ATTEMPTS {
            let ws = self.load(id).await?;
            let mut record = ws.clone();
            let lease = match record.lease.as_mut() {
                Some(lease) if &lease.token == token && lease.is_live(now()) => lease,
                _ => return Err(lease_lost(id)),
            };
            change(lease);
            let updated = lease.clone();
            record.updated_at = now();
            let write = WorkspaceWrite::Update {
                record,
                expected_revision: ws.revision,
            };
            match self.store.apply(WriteBatch::workspace(write)).await {
                Ok(()) => return Ok(updated),
                Err(e) if e.kind() == &ErrorKind::Conflict => {
                    debug!(workspace = %id, "lease update lost a race; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(id))
    }
}

fn interrupted_finish(old: &Lease) -> Option<RunWrite> {
    let run_id = old.run_id.clone()?;
    let reason = if old.expires_at > now() {
        format!(
            "interrupted: holder {} died (its process no longer runs on this machine)",
            old.holder
        )
    } else {
        format!(
            "interrupted: holder {} stopped renewing its lease (expired {})",
            old.holder, old.expires_at
        )
    };
    Some(RunWrite::Finish {
        id: run_id,
        finish: RunFinish::without_result(RunStatus::Interrupted, reason),
    })
}

pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Renews something on an interval until stopped; reports when renewal is refused.
pub(crate) struct Heartbeat {
    stop: watch::Sender<bool>,
    lost: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

/// One renewal; `Conflict` means the claim is gone.
pub(crate) type Renew = Arc<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

impl Heartbeat {
    pub(crate) fn start(what: String, interval: Duration, renew: Renew) -> Heartbeat {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (lost_tx, lost_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop_rx.changed() => return,
                }
                if *stop_rx.borrow() {
                    return;
                }
                match renew().await {
                    Ok(()) => debug!(%what, "lease renewed"),
                    Err(e) if e.kind() == &ErrorKind::Conflict => {
                        warn!(%what, "lease lost while renewing");
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => warn!(%what, error = %e, "lease renewal failed; will retry"),
                }
            }
        });
        Heartbeat {
            stop: stop_tx,
            lost: lost_rx,
            task,
        }
    }

    /// Resolves when a renewal was refused (the claim was taken over).
    pub(crate) fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            while !*lost.borrow_and_update() {
                if lost.changed().await.is_err() {
                    // Heartbeat stopped without losing: never resolve.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Stops renewing, waiting for an in-flight renewal to finish.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A workspace lease kept alive by fenced heartbeats; the main flow updates the
/// in-memory copy (e.g. with the session ref) and the next beat persists it.
pub(crate) fn workspace_renewal(
    inner: Arc<Inner>,
    id: WorkspaceId,
    lease: Arc<Mutex<Lease>>,
    ttl: Duration,
) -> Renew {
    Arc::new(move || {
        let inner = inner.clone();
        let id = id.clone();
        let lease = lease.clone();
        Box::pin(async move {
            let next = {
                let mut l = lease
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                l.expires_at = now() + chrono_duration(ttl);
                l.clone()
            };
            let token = next.token.clone();
            inner
                .fenced(&id, &token, Some(next), None, Vec::new())
                .await
        })
    })
}

/// Seconds until `at`, never negative.
pub(crate) fn remaining(at: DateTime<Utc>) -> Duration {
    (at - now()).to_std().unwrap_or(Duration::ZERO)
}
