//! The `Sandkit` facade and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sandkit_policies::{CredentialEnv, ProcessEnv};
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::ids::WorkspaceId;
use crate::model::{WorkspaceRecord, now};
use crate::provider::Provider;
use crate::setup::SetupDef;
use crate::spec::{ListOptions, SetupSpec, WorkspaceSpec, page_size, strip_reserved};
use crate::store::{Page, Store, WorkspaceListing, WorkspaceWrite, WriteBatch};
use crate::workspace::Workspace;

/// Tunables with sensible defaults; set them on [`SandkitBuilder`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a durable command's lease lasts without a heartbeat (default 30 s).
    pub command_lease_ttl: Duration,
    /// How often a running command renews its lease (default a third of the TTL).
    pub heartbeat_interval: Duration,
    /// Sandbox lifetime when neither the workspace nor the call sets one (default 15 min).
    pub default_sandbox_timeout: Duration,
    /// Bytes of stdout and of stderr kept per run in the store (default 64 KiB each).
    pub output_cap: usize,
    /// How long to wait for another process building the setup snapshot (poll interval).
    pub setup_poll_interval: Duration,
    /// Who this instance is, recorded as lease holder (`host:pid:random` by default).
    pub holder: String,
    /// Snapshot retention: keep the snapshots of each workspace's last N runs (default
    /// 3) besides every head; `None` keeps every snapshot.
    pub keep_snapshots: Option<usize>,
    /// How old a snapshot that no workspace, run or setup references must be before
    /// [`Sandkit::gc`] deletes it (default 1 h: far longer than any commit takes).
    pub unreferenced_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let ttl = Duration::from_secs(30);
        Config {
            command_lease_ttl: ttl,
            heartbeat_interval: ttl / 3,
            default_sandbox_timeout: Duration::from_secs(15 * 60),
            output_cap: 64 * 1024,
            setup_poll_interval: Duration::from_millis(250),
            holder: crate::holder::default_holder(),
            keep_snapshots: Some(3),
            unreferenced_grace: Duration::from_secs(60 * 60),
        }
    }
}

pub(crate) struct Inner {
    /// Background work (snapshot retention) still running; see [`Sandkit::settle`].
    pub(crate) background: tokio::sync::watch::Sender<usize>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) setup: Option<SetupDef>,
    pub(crate) credentials: Arc<dyn CredentialEnv>,
    pub(crate) config: Config,
}

/// Entry point: durable workspaces over a [`Store`] and a [`Provider`].
///
/// Cheap to clone (`Arc` inside), `Send + Sync`.
#[derive(Clone)]
pub struct Sandkit {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Sandkit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandkit")
            .field("store", &self.inner.store.id())
            .field("provider", &self.inner.provider.id())
            .field("setup", &self.inner.setup.as_ref().map(|s| &s.id))
            .finish()
    }
}

/// Builds a [`Sandkit`].
#[derive(Default)]
pub struct SandkitBuilder {
    store: Option<Arc<dyn Store>>,
    provider: Option<Arc<dyn Provider>>,
    setup: Option<SetupSpec>,
    credentials: Option<Arc<dyn CredentialEnv>>,
    config: Config,
    heartbeat_set: bool,
}

impl fmt::Debug for SandkitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandkitBuilder")
            .field("store", &self.store.as_ref().map(|s| s.id().to_owned()))
            .field(
                "provider",
                &self.provider.as_ref().map(|p| p.id().to_owned()),
            )
            .field("setup", &self.setup)
            .field("config", &self.config)
            .finish()
    }
}

impl SandkitBuilder {
    /// Where workspaces and runs are kept (required): e.g. `MemoryStore` from
    /// `sandkit-adapter-memory` or `SeaOrmStore` from `sandkit-adapter-seaorm`.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Where sandboxes run (required): e.g. `LocalProvider` or `VercelProvider`.
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// A shared setup bootstrap whose snapshot seeds every cold workspace.
    pub fn setup(mut self, setup: SetupSpec) -> Self {
        self.setup = Some(setup);
        self
    }

    /// Where default credentials come from (default: the process environment).
    pub fn credentials(mut self, env: Arc<dyn CredentialEnv>) -> Self {
        self.credentials = Some(env);
        self
    }

    /// Durable command lease TTL (the heartbeat follows at a third unless set).
    pub fn command_lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.command_lease_ttl = ttl;
        if !self.heartbeat_set {
            self.config.heartbeat_interval = ttl / 3;
        }
        self
    }

    /// How often a running command renews its lease.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.heartbeat_set = true;
        self
    }

    /// Sandbox lifetime when neither the workspace nor the call sets one.
    pub fn default_sandbox_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_sandbox_timeout = timeout;
        self
    }

    /// Bytes of stdout and of stderr kept per run in the store.
    pub fn output_cap(mut self, bytes: usize) -> Self {
        self.config.output_cap = bytes;
        self
    }

    /// Lease holder name recorded for this instance.
    pub fn holder(mut self, holder: impl Into<String>) -> Self {
        self.config.holder = holder.into();
        self
    }

    /// Snapshot retention: after each commit, delete at the provider the snapshots that
    /// are no longer a head nor among the last `n` runs' snapshots of any workspace
    /// (`n` ≥ 1; default 3).
    pub fn keep_snapshots(mut self, n: usize) -> Self {
        self.config.keep_snapshots = Some(n);
        self
    }

    /// How old a snapshot nothing references must be before `gc` deletes it (default
    /// 1 h). Such snapshots come from holders that died between their snapshot and
    /// its commit, and from deletions retention never saw confirmed.
    pub fn unreferenced_grace(mut self, grace: Duration) -> Self {
        self.config.unreferenced_grace = grace;
        self
    }

    /// Turns snapshot retention off: every snapshot is kept.
    pub fn keep_all_snapshots(mut self) -> Self {
        self.config.keep_snapshots = None;
        self
    }

    /// Poll interval while waiting for another process to build the setup snapshot.
    pub fn setup_poll_interval(mut self, interval: Duration) -> Self {
        self.config.setup_poll_interval = interval;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Sandkit> {
        let provider = self.provider.ok_or_else(|| {
            Error::invalid_input(
                "Sandkit needs a provider: call .provider(Arc::new(LocalProvider::new(dir)?)) \
                 or .provider(Arc::new(VercelProvider::from_env()?))",
            )
        })?;
        let store = self.store.ok_or_else(|| {
            Error::invalid_input(
                "Sandkit needs a store: call .store(Arc::new(MemoryStore::new())) for tests, \
                 or .store(Arc::new(SeaOrmStore::connect(url).await?)) to keep workspaces durably",
            )
        })?;
        let config = self.config;
        if config.command_lease_ttl < Duration::from_millis(100) {
            return Err(Error::invalid_input(
                "command_lease_ttl must be at least 100ms",
            ));
        }
        if config.heartbeat_interval.is_zero()
            || config.heartbeat_interval >= config.command_lease_ttl
        {
            return Err(Error::invalid_input(
                "heartbeat_interval must be positive and shorter than command_lease_ttl",
            ));
        }
        if config.keep_snapshots == Some(0) {
            return Err(Error::invalid_input(
                "keep_snapshots must be at least 1; use keep_all_snapshots() to turn retention off",
            ));
        }
        if config.holder.trim().is_empty() {
            return Err(Error::invalid_input("holder must not be blank"));
        }
        let setup = self
            .setup
            .map(|spec| SetupDef::new(store.id(), spec))
            .transpose()?;
        Ok(Sandkit {
            inner: Arc::new(Inner {
                background: tokio::sync::watch::channel(0).0,
                store,
                provider,
                setup,
                credentials: self.credentials.unwrap_or_else(|| Arc::new(ProcessEnv)),
                config,
            }),
        })
    }
}

impl Sandkit {
    /// Starts building a Sandkit.
    pub fn builder() -> SandkitBuilder {
        SandkitBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.inner.provider
    }

    /// The tunables in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The setup state id, when a setup is configured.
    pub fn setup_id(&self) -> Option<&str> {
        self.inner.setup.as_ref().map(|s| s.id.as_str())
    }

    /// Waits until background work started by earlier calls (snapshot retention after
    /// commits) has finished. Call it before a short-lived process exits, so that no
    /// deletion is cut short.
    pub async fn settle(&self) {
        let mut pending = self.inner.background.subscribe();
        let _ = pending.wait_for(|n| *n == 0).await;
    }

    /// Builds the setup snapshot now unless it exists; a no-op without a setup.
    pub async fn bootstrap(&self) -> Result<()> {
        if self.inner.setup.is_none() {
            return Ok(());
        }
        self.inner.ensure_setup().await.map(|_| ())
    }

    /// Creates a workspace. No sandbox starts until it is used.
    pub async fn create_workspace(&self, spec: WorkspaceSpec) -> Result<Workspace> {
        spec.validate()?;
        let caps = self.inner.provider.capabilities();
        caps.check_ports(self.inner.provider.id(), &spec.exposed_ports)?;
        if let Some(t) = spec.timeout {
            caps.check_timeout(self.inner.provider.id(), t)?;
        }
        let id = match spec.id {
            Some(raw) => WorkspaceId::new(raw)?,
            None => WorkspaceId::generate(),
        };
        let mut record = WorkspaceRecord::new(id.clone());
        if let Some(name) = spec.name {
            record.name = name.trim().to_owned();
        }
        record.metadata = strip_reserved(spec.metadata);
        record.policy = spec.policy;
        record.sandbox_config.exposed_ports = spec.exposed_ports;
        record.sandbox_config.timeout_ms = spec.timeout.map(|t| t.as_millis() as u64);
        record.sandbox_config.vcpus = spec.vcpus;
        if let Some(status) = spec.status {
            record.status = status;
        }
        self.inner
            .store
            .apply(WriteBatch::workspace(WorkspaceWrite::Create(record.clone())))
            .await
            .map_err(|e| match e.kind() {
                crate::ErrorKind::AlreadyExists => Error::already_exists(format!(
                    "workspace {id} already exists; open it with sandkit.workspace(\"{id}\") or choose another id"
                )),
                _ => e,
            })?;
        info!(workspace = %id, "workspace created");
        Ok(Workspace::from_record(self.clone(), record))
    }

    /// Opens an existing workspace; `NotFound` when it does not exist.
    pub async fn workspace(&self, id: impl AsRef<str>) -> Result<Workspace> {
        let id = WorkspaceId::new(id.as_ref())?;
        let record = self.inner.load(&id).await?;
        Ok(Workspace::from_record(self.clone(), record))
    }

    /// Lists workspaces by id, a page at a time.
    pub async fn list_workspaces(&self, opts: ListOptions) -> Result<Page<WorkspaceRecord>> {
        let listing = WorkspaceListing {
            status: opts.status,
            name_prefix: opts.name_prefix,
            parent: opts.parent.map(WorkspaceId::new).transpose()?,
            head: None,
            after: opts
                .cursor
                .map(|c| {
                    WorkspaceId::new(c).map_err(|_| {
                        Error::invalid_input("cursor is not one this listing returned")
                    })
                })
                .transpose()?,
            limit: page_size(opts.limit)?,
        };
        self.inner.store.list_workspaces(&listing).await
    }

    /// Deletes a workspace with its runs; `Busy` while a lease is live.
    pub async fn delete_workspace(&self, id: impl AsRef<str>) -> Result<()> {
        let id = WorkspaceId::new(id.as_ref())?;
        for _ in 0..crate::lease::CAS_ATTEMPTS {
            let ws = self.inner.load(&id).await?;
            if let Some(lease) = ws.live_lease(now()) {
                return Err(crate::lease::busy_error(&ws, lease));
            }
            let snapshots = self.snapshots_of(&ws).await?;
            let write = WorkspaceWrite::Delete {
                id: id.clone(),
                expected_revision: ws.revision,
            };
            match self.inner.store.apply(WriteBatch::workspace(write)).await {
                Ok(()) => {
                    info!(workspace = %id, "workspace deleted");
                    // Its snapshots go too, unless a fork still needs them.
                    self.inner.forget_snapshots(snapshots).await;
                    return Ok(());
                }
                Err(e) if e.kind() == &crate::ErrorKind::Conflict => {
                    debug!(workspace = %id, "delete lost a race; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(crate::lease::gave_up(&id))
    }
}

impl Sandkit {
    /// The head and every run snapshot of a workspace.
    async fn snapshots_of(&self, ws: &WorkspaceRecord) -> Result<Vec<crate::SnapshotRef>> {
        let mut out: Vec<crate::SnapshotRef> = ws.head.iter().cloned().collect();
        let mut cursor = None;
        loop {
            let page = self
                .inner
                .store
                .list_runs(&crate::store::RunListing {
                    workspace_id: ws.id.clone(),
                    status: None,
                    live_snapshots: false,
                    cursor,
                    order: crate::store::Order::Asc,
                    limit: 500,
                })
                .await?;
            out.extend(
                page.items
                    .into_iter()
                    .filter(|r| r.snapshot_deleted_at.is_none())
                    .filter_map(|r| r.snapshot),
            );
            match page.next_cursor {
                Some(c) => cursor = Some(crate::RunId::from_stored(c)),
                None => return Ok(out),
            }
        }
    }
}

impl Inner {
    /// Reads a workspace or fails with `NotFound`.
    pub(crate) async fn load(&self, id: &WorkspaceId) -> Result<WorkspaceRecord> {
        self.store.get_workspace(id).await?.ok_or_else(|| {
            Error::not_found(format!(
                "Workspace not found: {id}; create it with create_workspace or check the id"
            ))
        })
    }
}
