//! The workspace handle: durable commands, policy, lease, reset and the run journal.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sandkit_policies::{FirewallRules, Policy};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{RunId, WorkspaceId};
use crate::lease::{CAS_ATTEMPTS, busy_error, gave_up};
use crate::model::{
    Lease, LeaseKind, RunRecord, RunStatus, SnapshotRef, WorkspaceRecord, WorkspaceState, now,
};
use crate::provider::{ProviderSession, StartSpec};
use crate::sandkit::{Inner, Sandkit};
use crate::spec::{RunQuery, page_size};
use crate::store::{Page, RunListing, WorkspaceWrite, WriteBatch};

/// A handle on one workspace. Cheap to clone; it holds the record as last read.
#[derive(Clone)]
pub struct Workspace {
    pub(crate) sandkit: Sandkit,
    pub(crate) record: WorkspaceRecord,
}

impl fmt::Debug for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workspace")
            .field("id", &self.record.id)
            .field("name", &self.record.name)
            .field("state", &self.record.state())
            .finish()
    }
}

/// A live lease as seen by [`Workspace::lease`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    /// Durable command or session.
    pub kind: LeaseKind,
    /// Who holds it.
    pub holder: String,
    /// Provider session id, once started.
    pub session_id: Option<String>,
    /// The durable run holding it.
    pub run_id: Option<RunId>,
    /// When it was taken.
    pub acquired_at: DateTime<Utc>,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Time left at the moment of reading.
    #[serde(with = "millis")]
    pub remaining: Duration,
    /// Description of the session policy override, if any.
    pub policy: Option<String>,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl LeaseInfo {
    /// The view of a stored lease.
    pub fn from_lease(lease: &Lease) -> Self {
        LeaseInfo {
            kind: lease.kind,
            holder: lease.holder.clone(),
            session_id: lease.session.as_ref().map(|s| s.id.clone()),
            run_id: lease.run_id.clone(),
            acquired_at: lease.acquired_at,
            expires_at: lease.expires_at,
            remaining: crate::lease::remaining(lease.expires_at),
            policy: lease.policy.as_ref().map(Policy::describe),
        }
    }
}

impl Workspace {
    pub(crate) fn from_record(sandkit: Sandkit, record: WorkspaceRecord) -> Self {
        Workspace { sandkit, record }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.sandkit.inner
    }

    /// Identity.
    pub fn id(&self) -> &WorkspaceId {
        &self.record.id
    }

    /// The record as last read (see [`refresh`](Self::refresh)).
    pub fn record(&self) -> &WorkspaceRecord {
        &self.record
    }

    /// Lifecycle state as last read.
    pub fn state(&self) -> WorkspaceState {
        self.record.state()
    }

    /// The Sandkit this handle belongs to.
    pub fn sandkit(&self) -> &Sandkit {
        &self.sandkit
    }

    /// Re-reads the record.
    pub async fn refresh(&mut self) -> Result<&WorkspaceRecord> {
        self.record = self.inner().load(&self.record.id).await?;
        Ok(&self.record)
    }

    /// The live lease, if any. Reading never changes anything: a lease that expired
    /// or whose holder died reads as `None` here and is recovered by the next
    /// operation (or by [`recover`](Self::recover)).
    pub async fn lease(&self) -> Result<Option<LeaseInfo>> {
        let ws = self.inner().load(self.id()).await?;
        Ok(ws.live_lease(now()).map(LeaseInfo::from_lease))
    }

    /// Recovers a lease that expired or whose holder died, now: its run is marked
    /// interrupted and its provider session stopped, so nothing of it still runs.
    /// Returns whether there was one. Other operations do this on their own; call it
    /// when a status must be the whole truth (`sandkit session status` does).
    pub async fn recover(&self) -> Result<bool> {
        let ws = self.inner().load(self.id()).await?;
        match &ws.lease {
            Some(lease) if !lease.is_live(now()) => {
                self.inner().release_expired(&ws).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Replaces the durable default policy (explicit secrets are refused). Applies to
    /// later durable commands and to session commands without an override.
    pub async fn set_policy(&self, policy: Policy) -> Result<()> {
        policy.ensure_durable()?;
        self.update(|record| {
            record.policy = Some(policy.clone());
            Ok(())
        })
        .await
    }

    /// Replaces the ports exposed by later sandboxes of this workspace (a live session
    /// keeps the ports it started with).
    pub async fn set_exposed_ports(&self, ports: impl IntoIterator<Item = u16>) -> Result<()> {
        let ports: Vec<u16> = ports.into_iter().collect();
        crate::spec::validate_ports(&ports)?;
        let inner = self.inner();
        inner
            .provider
            .capabilities()
            .check_ports(inner.provider.id(), &ports)?;
        self.update(|record| {
            record.sandbox_config.exposed_ports = ports.clone();
            Ok(())
        })
        .await
    }

    /// Moves the workspace back to cold (its next start is fresh, or from the setup
    /// snapshot): the explicit answer to a head snapshot the provider no longer has.
    /// `Busy` while a lease is live.
    pub async fn reset(&self) -> Result<()> {
        let ws = self.inner().load(self.id()).await?;
        if ws.lease.as_ref().is_some_and(|l| !l.is_live(now())) {
            // Recover the dead holder first: its run is marked interrupted.
            self.inner().release_expired(&ws).await?;
        }
        self.update(|record| {
            if let Some(lease) = record.live_lease(now()) {
                return Err(busy_error(record, lease));
            }
            record.head = None;
            record.lease = None;
            Ok(())
        })
        .await?;
        info!(workspace = %self.id(), "workspace reset to cold");
        Ok(())
    }

    /// A page of this workspace's durable runs.
    pub async fn runs(&self, query: RunQuery) -> Result<Page<RunRecord>> {
        let listing = RunListing {
            workspace_id: self.id().clone(),
            status: query.status,
            live_snapshots: false,
            cursor: query
                .cursor
                .map(|c| {
                    RunId::new(c).map_err(|_| {
                        Error::invalid_input("cursor is not one this listing returned")
                    })
                })
                .transpose()?,
            order: query.order,
            limit: page_size(query.limit)?,
        };
        self.inner().store.list_runs(&listing).await
    }

    /// One run of this workspace.
    pub async fn run(&self, id: &RunId) -> Result<RunRecord> {
        match self.inner().store.get_run(id).await? {
            Some(run) if &run.workspace_id == self.id() => Ok(run),
            _ => Err(Error::not_found(format!(
                "run {id} not found in workspace {}; list runs with runs()",
                self.id()
            ))),
        }
    }

    /// Read-modify-write of the record with compare-and-set, retried on conflicts.
    /// An expired lease found on the way is left for the next lease operation.
    async fn update(
        &self,
        mut change: impl FnMut(&mut WorkspaceRecord) -> Result<()>,
    ) -> Result<()> {
        self.update_if(|record| change(record).map(|()| true)).await
    }

    /// [`update`](Self::update) where `change` may decline (`false`): then nothing is
    /// written.
    pub(crate) async fn update_if(
        &self,
        mut change: impl FnMut(&mut WorkspaceRecord) -> Result<bool>,
    ) -> Result<()> {
        let inner = self.inner();
        for _ in 0..CAS_ATTEMPTS {
            let ws = inner.load(self.id()).await?;
            let mut record = ws.clone();
            if !change(&mut record)? {
                return Ok(());
            }
            record.updated_at = now();
            let write = WorkspaceWrite::Update {
                record,
                expected_revision: ws.revision,
            };
            match inner.store.apply(WriteBatch::workspace(write)).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == &ErrorKind::Conflict => {
                    debug!(workspace = %self.id(), "update lost a race; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(self.id()))
    }
}

/// Everything needed to start a sandbox for a workspace.
pub(crate) struct StartPlan {
    pub(crate) rules: FirewallRules,
    pub(crate) timeout: Duration,
    /// The session's name, recorded in the lease before the start (when the provider
    /// names sessions).
    pub(crate) name: Option<String>,
}

impl Inner {
    /// Resolves the effective policy (override → default → allow-all), compiles it
    /// with credentials and checks the provider can enforce it.
    pub(crate) fn effective_rules(
        &self,
        override_policy: Option<&Policy>,
        ws: &WorkspaceRecord,
    ) -> Result<(Policy, FirewallRules)> {
        let policy = override_policy
            .or(ws.policy.as_ref())
            .cloned()
            .unwrap_or_else(Policy::allow_all);
        self.provider
            .capabilities()
            .check_policy(self.provider.id(), &policy)?;
        let rules = policy.compile(&*self.credentials)?;
        self.provider
            .capabilities()
            .check_rules(self.provider.id(), &rules)?;
        Ok((policy, rules))
    }

    /// Validates the workspace's sandbox settings against the provider.
    pub(crate) fn check_sandbox_config(
        &self,
        ws: &WorkspaceRecord,
        timeout: Duration,
    ) -> Result<()> {
        let caps = self.provider.capabilities();
        caps.check_ports(self.provider.id(), &ws.sandbox_config.exposed_ports)?;
        caps.check_timeout(self.provider.id(), timeout)
    }

    /// Starts a sandbox from the head, else from the setup snapshot (building it if
    /// needed, rebuilding once if the provider lost it), else fresh. Returns the session
    /// and the snapshot it started from.
    pub(crate) async fn start_for(
        self: &Arc<Self>,
        ws: &WorkspaceRecord,
        plan: StartPlan,
    ) -> Result<(Box<dyn ProviderSession>, Option<SnapshotRef>)> {
        let spec = |from: Option<SnapshotRef>| StartSpec {
            workspace_id: ws.id.clone(),
            from,
            rules: plan.rules.clone(),
            ports: ws.sandbox_config.exposed_ports.clone(),
            timeout: plan.timeout,
            vcpus: ws.sandbox_config.vcpus,
            name: plan.name.clone(),
        };
        if let Some(head) = &ws.head {
            debug!(workspace = %ws.id, snapshot = %head.id, "starting from head");
            return match self.provider.start(spec(Some(head.clone()))).await {
                Ok(s) => Ok((s, Some(head.clone()))),
                Err(e) if e.kind() == &ErrorKind::SnapshotUnavailable => Err(Error::new(
                    ErrorKind::SnapshotUnavailable,
                    format!(
                        "the head snapshot {} of workspace {} is no longer available at provider {}; \
                         call reset() to start it from cold (or restore an earlier run) — nothing was changed",
                        head.id, ws.id, head.provider
                    ),
                )
                .with_source(e)),
                Err(e) => Err(e),
            };
        }
        if self.setup.is_none() {
            debug!(workspace = %ws.id, "starting fresh");
            return Ok((self.provider.start(spec(None)).await?, None));
        }
        let setup = self.ensure_setup().await?;
        match self.provider.start(spec(Some(setup.clone()))).await {
            Ok(s) => Ok((s, Some(setup))),
            Err(e) if e.kind() == &ErrorKind::SnapshotUnavailable => {
                let rebuilt = self.rebuild_setup(&setup).await?;
                let s = self.provider.start(spec(Some(rebuilt.clone()))).await?;
                Ok((s, Some(rebuilt)))
            }
            Err(e) => Err(e),
        }
    }
}

pub(crate) fn finished_result(run: &RunRecord) -> Option<crate::output::CommandResult> {
    let exit_code = run.exit_code?;
    if !matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
        return None;
    }
    let mut result = crate::output::CommandResult::new(
        exit_code,
        run.stdout_text().unwrap_or_default().to_owned(),
        run.stderr_text().unwrap_or_default().to_owned(),
    );
    result.run_id = Some(run.id.clone());
    result.replayed = true;
    result.stdout_truncated = run.stdout_truncated;
    result.stderr_truncated = run.stderr_truncated;
    Some(result)
}
