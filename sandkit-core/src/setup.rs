//! The shared setup bootstrap: built once per definition, even under concurrency.

use std::sync::{Arc, Mutex};

use sandkit_policies::{FirewallRules, Policy};
use sha2::{Digest, Sha256};
use tracing::{Instrument, info, info_span, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{LeaseToken, WorkspaceId};
use crate::lease::{Heartbeat, Renew, chrono_duration};
use crate::model::{SetupBuild, SetupRecord, SnapshotRef, now};
use crate::output::LogBuffer;
use crate::provider::{ExecSpec, StartSpec};
use crate::sandkit::Inner;
use crate::spec::SetupSpec;

/// Bytes of a failed setup's stderr kept in the error.
const SETUP_STDERR_CAP: usize = 4096;

/// A validated setup definition and its id.
#[derive(Debug, Clone)]
pub(crate) struct SetupDef {
    pub(crate) spec: SetupSpec,
    pub(crate) policy: Policy,
    pub(crate) id: String,
}

impl SetupDef {
    pub(crate) fn new(store_id: &str, spec: SetupSpec) -> Result<Self> {
        let policy = spec.validate()?;
        let id = setup_id(store_id, &spec.command, &spec.args, &policy);
        Ok(SetupDef { spec, policy, id })
    }
}

/// `<store id>:setup:<sha256 hex of the canonical definition>`: command, args and the
/// redacted policy (description and config) — never a secret, always a fixed length.
pub fn setup_id(store_id: &str, command: &str, args: &[String], policy: &Policy) -> String {
    let canonical = serde_json::json!({
        "command": command,
        "args": args,
        "policy": { "id": policy.describe(), "config": policy.redacted() },
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    format!("{store_id}:setup:{}", hex::encode(digest))
}

impl Inner {
    fn setup_def(&self) -> Result<&SetupDef> {
        self.setup
            .as_ref()
            .ok_or_else(|| Error::invalid_input("no setup is configured on this Sandkit"))
    }

    /// The setup snapshot, building it if nobody has (or waiting for whoever is).
    pub(crate) async fn ensure_setup(self: &Arc<Self>) -> Result<SnapshotRef> {
        let def = self.setup_def()?;
        let mut corrupt_retry = true;
        loop {
            let current = match self.store.get_setup(&def.id).await {
                Ok(r) => r,
                Err(e) if corrupt_retry && matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                    warn!(setup = %def.id, error = %e, "setup state unreadable; rebuilding it");
                    corrupt_retry = false;
                    self.store.delete_setup(&def.id, None).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let at = now();
            let claim = SetupBuild {
                token: LeaseToken::generate(),
                holder: self.config.holder.clone(),
                expires_at: at + chrono_duration(self.config.command_lease_ttl),
            };
            match current {
                Some(record) if record.snapshot.is_some() => {
                    return record
                        .snapshot
                        .ok_or_else(|| Error::storage("setup snapshot vanished"));
                }
                Some(record) if record.build.as_ref().is_some_and(|b| b.expires_at > at) => {
                    tokio::time::sleep(self.config.setup_poll_interval).await;
                }
                Some(record) => {
                    let mut next = record.clone();
                    next.build = Some(claim);
                    next.updated_at = at;
                    match self.store.update_setup(&next, record.revision).await {
                        Ok(()) => {
                            next.revision = record.revision + 1;
                            if let Some(dead) = &record.build {
                                self.discard_dead_build(&def.id, dead).await;
                            }
                            return self.build_setup(next).await;
                        }
                        Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                        Err(e) => return Err(e),
                    }
                }
                None => {
                    let record = SetupRecord {
                        id: def.id.clone(),
                        snapshot: None,
                        build: Some(claim),
                        revision: 0,
                        created_at: at,
                        updated_at: at,
                    };
                    if self.store.put_setup_if_absent(&record).await? {
                        return self.build_setup(record).await;
                    }
                }
            }
        }
    }

    /// Drops a setup snapshot the provider no longer has, then builds a new one.
    pub(crate) async fn rebuild_setup(
        self: &Arc<Self>,
        stale: &SnapshotRef,
    ) -> Result<SnapshotRef> {
        let def = self.setup_def()?;
        if let Some(record) = self.store.get_setup(&def.id).await?
            && record.snapshot.as_ref() == Some(stale)
        {
            warn!(setup = %def.id, snapshot = %stale.id, "setup snapshot is gone at the provider; rebuilding");
            self.store
                .delete_setup(&def.id, Some(record.revision))
                .await?;
        }
        self.ensure_setup().await
    }

    /// Discards the sandbox an abandoned build claim started (its builder died or
    /// stalled past the claim's expiry), found by the name derived from its token.
    pub(crate) async fn discard_dead_build(&self, setup: &str, dead: &SetupBuild) {
        let name = crate::ids::setup_session_name(&dead.token);
        if let Some(session) = self.provider.planned_session(&name) {
            warn!(setup, holder = %dead.holder, "taking over an abandoned setup build");
            self.discard_left_session(&session, &format!("setup {setup}"))
                .await;
        }
    }

    /// Ends setup builds whose builder died (claim expired, no snapshot): discards the
    /// sandbox each left, then the claim, so the next use builds afresh. Returns how
    /// many there were (in a dry run, how many there are).
    pub(crate) async fn sweep_abandoned_setups(&self, dry_run: bool) -> Result<usize> {
        let setups = match self.store.list_setups().await {
            Ok(setups) => setups,
            Err(e) if e.kind() == &ErrorKind::Unsupported => return Ok(0),
            Err(e) => return Err(e),
        };
        let at = now();
        let mut swept = 0;
        for record in setups {
            let Some(dead) = record
                .build
                .as_ref()
                .filter(|b| b.expires_at <= at && record.snapshot.is_none())
            else {
                continue;
            };
            if dry_run {
                swept += 1;
                continue;
            }
            // The sandbox first: a claim deleted first would lose the name.
            self.discard_dead_build(&record.id, dead).await;
            // `false`: someone took the claim over meanwhile; it is theirs now.
            if self
                .store
                .delete_setup(&record.id, Some(record.revision))
                .await?
            {
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Runs the setup command under our build claim and records its snapshot.
    async fn build_setup(self: &Arc<Self>, record: SetupRecord) -> Result<SnapshotRef> {
        let def = self.setup_def()?;
        let span = info_span!("setup", setup = %def.id);
        let shared = Arc::new(Mutex::new(record));
        let heartbeat = Heartbeat::start(
            format!("setup {}", def.id),
            self.config.heartbeat_interval,
            setup_renewal(self.clone(), shared.clone()),
        );
        let name = crate::ids::setup_session_name(&record_token(&shared));
        let built = self
            .run_setup_command(def, name)
            .instrument(span.clone())
            .await;
        heartbeat.stop().await;
        let mut record = lock(&shared).clone();
        let expected = record.revision;
        match built {
            Ok(snapshot) => {
                record.snapshot = Some(snapshot.clone());
                record.build = None;
                record.updated_at = now();
                if let Err(e) = self.store.update_setup(&record, expected).await {
                    if e.kind() == &ErrorKind::Conflict {
                        // Our claim was taken over: the snapshot is nobody's.
                        let _ = self.provider.delete_snapshot(&snapshot).await;
                        return Err(Error::conflict(
                            "another process took over the setup build while it ran; retry",
                        ));
                    }
                    return Err(e);
                }
                span.in_scope(|| info!(snapshot = %snapshot.id, "setup snapshot built"));
                Ok(snapshot)
            }
            Err(e) => {
                // Persist nothing: drop our claim so the next use tries again.
                if let Err(del) = self.store.delete_setup(&def.id, Some(expected)).await {
                    warn!(setup = %def.id, error = %del, "could not drop the failed setup claim");
                }
                Err(e)
            }
        }
    }

    async fn run_setup_command(&self, def: &SetupDef, name: String) -> Result<SnapshotRef> {
        self.provider
            .capabilities()
            .check_policy(self.provider.id(), &def.policy)?;
        let rules: FirewallRules = def.policy.compile(&*self.credentials)?;
        self.provider
            .capabilities()
            .check_rules(self.provider.id(), &rules)?;
        let session = self
            .provider
            .start(StartSpec {
                workspace_id: WorkspaceId::from_stored("sandkit-setup".to_owned()),
                from: None,
                rules,
                ports: Vec::new(),
                timeout: self.config.default_sandbox_timeout,
                vcpus: None,
                name: Some(name),
            })
            .await?;
        let exec = ExecSpec {
            command: def.spec.command.clone(),
            args: def.spec.args.clone(),
            ..ExecSpec::default()
        };
        let log = LogBuffer::default();
        let exit = match session.exec(exec).await {
            Ok(handle) => log.pump(handle).await,
            Err(e) => Err(e),
        };
        let exit_code = match exit {
            Ok(code) => code,
            Err(e) => {
                let _ = session.stop().await;
                return Err(e.context("setup command"));
            }
        };
        if exit_code != 0 {
            let _ = session.stop().await;
            let (_, stderr) = log.collect();
            // Keep the end of stderr, where the reason usually is, bounded.
            let stderr = stderr.trim();
            let mut start = stderr.len().saturating_sub(SETUP_STDERR_CAP);
            while !stderr.is_char_boundary(start) {
                start += 1;
            }
            let stderr = stderr[start..].to_owned();
            return Err(Error::new(
                ErrorKind::SetupFailed {
                    exit_code,
                    stderr: stderr.clone(),
                },
                format!(
                    "Workspace setup failed with exit code {exit_code}: {stderr}; nothing was \
                     persisted — fix the setup command and retry"
                ),
            ));
        }
        session.snapshot().await
    }
}

/// The token of the build claim in `record`.
fn record_token(record: &Mutex<SetupRecord>) -> LeaseToken {
    lock(record)
        .build
        .as_ref()
        .map_or_else(LeaseToken::generate, |b| b.token.clone())
}

fn lock(record: &Mutex<SetupRecord>) -> std::sync::MutexGuard<'_, SetupRecord> {
    record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn setup_renewal(inner: Arc<Inner>, record: Arc<Mutex<SetupRecord>>) -> Renew {
    Arc::new(move || {
        let inner = inner.clone();
        let record = record.clone();
        Box::pin(async move {
            let (next, expected) = {
                let mut r = lock(&record).clone();
                if let Some(build) = &mut r.build {
                    build.expires_at = now() + chrono_duration(inner.config.command_lease_ttl);
                }
                r.updated_at = now();
                let expected = r.revision;
                (r, expected)
            };
            inner.store.update_setup(&next, expected).await?;
            let mut r = lock(&record);
            *r = next;
            r.revision = expected + 1;
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_ids_are_stable_hashes_of_the_definition() {
        let a = setup_id(
            "memory",
            "sh",
            &["-c".into(), "true".into()],
            &Policy::allow_all(),
        );
        let b = setup_id(
            "memory",
            "sh",
            &["-c".into(), "true".into()],
            &Policy::allow_all(),
        );
        let c = setup_id(
            "memory",
            "sh",
            &["-c".into(), "false".into()],
            &Policy::allow_all(),
        );
        let d = setup_id(
            "memory",
            "sh",
            &["-c".into(), "true".into()],
            &Policy::deny_all(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.starts_with("memory:setup:"));
        assert_eq!(a.len(), "memory:setup:".len() + 64);
    }
}
