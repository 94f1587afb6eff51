//! [`Sandkit::check`]: which workspaces point at snapshots their provider no longer has
//! (expired or deleted outside Sandkit), found before a start fails on them.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{ErrorKind, Result};
use crate::ids::WorkspaceId;
use crate::model::SnapshotRef;
use crate::sandkit::Sandkit;

/// What a missing snapshot was to Sandkit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum SnapshotRole {
    /// A workspace's head: its next start fails until it is reset or restored.
    Head,
    /// A setup snapshot: the next cold start rebuilds it.
    Setup,
}

/// A snapshot Sandkit references that the provider no longer has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MissingSnapshot {
    /// The workspace whose head it is (`None` for a setup snapshot).
    pub workspace: Option<WorkspaceId>,
    /// The setup it belongs to (`None` for a head).
    pub setup: Option<String>,
    /// What it was.
    pub role: SnapshotRole,
    /// The snapshot.
    pub snapshot: SnapshotRef,
}

/// What [`Sandkit::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CheckReport {
    /// Snapshots asked about at the provider (each once).
    pub checked: usize,
    /// Those that are gone.
    pub missing: Vec<MissingSnapshot>,
}

impl Sandkit {
    /// Asks the provider about every head and setup snapshot (read-only: nothing is
    /// changed). A workspace listed here fails its next start with
    /// `SnapshotUnavailable`; reset it (cold start) or restore an earlier run. A missing
    /// setup snapshot is rebuilt by the next cold start on its own.
    ///
    /// `Unsupported` when the provider cannot tell whether a snapshot exists.
    pub async fn check(&self) -> Result<CheckReport> {
        let inner = &self.inner;
        let mut known: HashMap<String, bool> = HashMap::new();
        let mut report = CheckReport::default();
        let mut exists = async |snapshot: &SnapshotRef| -> Result<bool> {
            if let Some(found) = known.get(&snapshot.id) {
                return Ok(*found);
            }
            let found = if snapshot.provider == inner.provider.id() {
                inner.provider.snapshot_exists(snapshot).await?
            } else {
                // Made by another provider: this one cannot start from it either.
                false
            };
            known.insert(snapshot.id.clone(), found);
            Ok(found)
        };
        inner
            .each_workspace(async |ws| {
                if let Some(head) = &ws.head
                    && !exists(head).await?
                {
                    report.missing.push(MissingSnapshot {
                        workspace: Some(ws.id.clone()),
                        setup: None,
                        role: SnapshotRole::Head,
                        snapshot: head.clone(),
                    });
                }
                Ok(())
            })
            .await?;
        let setups = match inner.store.list_setups().await {
            Ok(setups) => setups,
            Err(e) if e.kind() == &ErrorKind::Unsupported => Vec::new(),
            Err(e) => return Err(e),
        };
        for setup in setups {
            if let Some(snapshot) = &setup.snapshot
                && !exists(snapshot).await?
            {
                report.missing.push(MissingSnapshot {
                    workspace: None,
                    setup: Some(setup.id.clone()),
                    role: SnapshotRole::Setup,
                    snapshot: snapshot.clone(),
                });
            }
        }
        report.checked = known.len();
        Ok(report)
    }
}
