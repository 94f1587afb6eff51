//! [`LocalProvider`]: configuration, start, attach, snapshot deletion.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sandkit_core::{
    Capabilities, Error, ErrorKind, NetworkCapabilities, PortCapabilities, Provider,
    ProviderSession, Result, SessionRef, SnapshotInfo, SnapshotRef, StartSpec,
};
use sandkit_policies::FirewallRules;

use crate::errors::{blocking, io_error, session_gone, snapshot_gone};
use crate::layout::{Layout, SessionPaths, is_valid_id, new_id};
use crate::meta::{self, PolicyKind, SessionMeta};
use crate::mounts;
use crate::procs;
use crate::removal;
use crate::sandbox::Sandboxes;
use crate::session::LocalSession;
use crate::snapshot::{Snapshots, index, old_entries};

/// Provider id recorded in session and snapshot references.
pub const PROVIDER_ID: &str = "local";

/// Session lifetime when a start spec asks for none (zero).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long `kill`, `stop` and `snapshot` wait after SIGTERM before SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);

/// Most ports one session may declare by default.
pub const DEFAULT_MAX_PORTS: usize = 15;

/// `PATH` used when the host has none.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Shared state of a provider and its sessions.
pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) snapshots: Snapshots,
    pub(crate) caps: Capabilities,
    /// Base environment of every command (values never logged).
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) default_timeout: Duration,
    pub(crate) kill_grace: Duration,
    /// How commands are sandboxed; `None`: they run on the host.
    pub(crate) sandboxes: Option<Sandboxes>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProvider")
            .field("root", &self.layout.root())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("default_timeout", &self.default_timeout)
            .field("kill_grace", &self.kill_grace)
            .field("sandboxed", &self.sandboxes.is_some())
            .finish()
    }
}

impl Inner {
    /// The policy kind for `rules`, or `Unsupported` when they cannot be enforced here.
    pub(crate) fn policy_kind(&self, rules: &FirewallRules) -> Result<PolicyKind> {
        self.caps.check_rules(PROVIDER_ID, rules)?;
        match rules {
            FirewallRules::AllowAll => Ok(PolicyKind::AllowAll),
            FirewallRules::DenyAll => Ok(PolicyKind::DenyAll),
            FirewallRules::Allow(_) => Err(Error::unsupported(
                "provider local cannot enforce an allow-services policy, so nothing was \
                 started; use deny-all or allow-all locally, or the vercel provider",
            )),
        }
    }

    /// Stops the session's processes and removes its directory. Returns `false` when
    /// there was no such session. A snapshot in progress (in any OS process) is waited
    /// for, at most [`SNAPSHOT_WAIT`]; if it succeeds the session is gone (`false`).
    pub(crate) async fn end_session(&self, id: &str) -> Result<bool> {
        let paths = self.layout.session(id);
        let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
        let groups = loop {
            let marked = {
                let paths = paths.clone();
                let id = id.to_owned();
                blocking(move || Ok(mark_stopping(&paths, &id))).await?
            };
            match marked {
                Marked::Stopping(groups) => break groups,
                Marked::Gone => return Ok(false),
                Marked::Snapshotting if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(SNAPSHOT_POLL).await;
                }
                Marked::Snapshotting => {
                    return Err(Error::busy(format!(
                        "local session {id} is being snapshotted; retry once the snapshot \
                         finished (a successful snapshot ends the session by itself)"
                    )));
                }
                Marked::Failed(e) => return Err(e),
            }
        };
        procs::terminate(&groups, self.kill_grace).await;
        self.discard_dir(&paths).await;
        Ok(true)
    }

    /// Detaches mounts left in a session directory, moves it to the trash (instantly)
    /// and deletes it in the background. If it cannot be moved (no room for a directory
    /// entry, trash missing), it is deleted in place. Failures are logged: the caller's
    /// work (a snapshot, stopping processes) is done either way.
    pub(crate) async fn discard_dir(&self, paths: &SessionPaths) {
        let trash = self.layout.trash();
        let dir = paths.clone();
        let discarded = blocking(move || {
            discard(&trash, &dir);
            Ok(())
        })
        .await;
        if let Err(e) = discarded {
            tracing::warn!(error = %e, "could not discard an ended session directory");
        }
    }
}

/// How long `stop` and expiry wait for a snapshot in progress.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// How often a snapshot in progress is checked on.
const SNAPSHOT_POLL: Duration = Duration::from_millis(50);

/// Age after which crash leftovers (half-created sessions, temporary snapshot files)
/// are deleted when a provider starts.
const LEFTOVER_AGE: Duration = Duration::from_secs(10 * 60);

/// Name prefix of sessions being created.
const STAGING_PREFIX: &str = ".starting-";

/// What marking a session as stopping found.
enum Marked {
    /// Marked (or, if its metadata could not be rewritten, read): these processes to end.
    Stopping(Vec<procs::Group>),
    /// No such session.
    Gone,
    /// A snapshot is in progress.
    Snapshotting,
    /// The metadata can be neither updated nor read.
    Failed(Error),
}

fn mark_stopping(paths: &SessionPaths, id: &str) -> Marked {
    let marked = meta::update(paths, id, |m| {
        if m.state == meta::SessionState::Snapshotting && meta::snapshot_in_progress(paths) {
            return Err(Error::busy(format!(
                "local session {id} is being snapshotted"
            )));
        }
        m.state = meta::SessionState::Stopping;
        Ok(m.groups())
    });
    let err = match marked {
        Ok(groups) => return Marked::Stopping(groups),
        Err(e) if e.kind() == &ErrorKind::SessionUnavailable => return Marked::Gone,
        Err(e) if e.kind() == &ErrorKind::Busy => return Marked::Snapshotting,
        Err(e) => e,
    };
    // Rewriting the metadata failed (e.g. the disk is full): stop the session anyway.
    match meta::read(paths) {
        Ok(Some(m))
            if m.state == meta::SessionState::Snapshotting && meta::snapshot_in_progress(paths) =>
        {
            Marked::Snapshotting
        }
        Ok(Some(m)) => {
            tracing::warn!(session = %id, error = %err, "could not mark the session as stopping; stopping it anyway");
            Marked::Stopping(m.groups())
        }
        Ok(None) => Marked::Gone,
        Err(_) => Marked::Failed(err),
    }
}

/// See [`Inner::discard_dir`].
fn discard(trash: &Path, paths: &SessionPaths) {
    let stuck = mounts::detach_under(&paths.dir);
    if stuck > 0 {
        tracing::warn!(dir = %paths.dir.display(), mounts = stuck, "mounts left inside an ended session could not be detached; they are not deleted");
    }
    let name = paths
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = trash.join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    match fs::rename(&paths.dir, &dest) {
        Ok(()) => {
            std::thread::spawn(move || removal::remove_tree(&dest));
        }
        Err(_) if fs::symlink_metadata(&paths.dir).is_err() => {}
        Err(e) => {
            tracing::warn!(dir = %paths.dir.display(), error = %e, "could not move an ended session to the trash; deleting it in place");
            // Without its metadata the session reads as gone right away.
            if let Err(e) = fs::remove_file(paths.meta())
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, "could not delete the metadata of an ended session");
            }
            removal::remove_tree(&paths.dir);
        }
    }
}

/// Moves sessions whose creation crashed (`sessions/.starting-*`, older than
/// [`LEFTOVER_AGE`] and not locked by a process still building them) to the trash, and
/// deletes temporary snapshot files as old.
fn clean_leftovers(layout: &Layout, snapshots: &Snapshots) {
    let trash = layout.trash();
    for (name, path) in old_entries(&layout.sessions(), LEFTOVER_AGE) {
        let staging = SessionPaths::at(path);
        if !name.starts_with(STAGING_PREFIX) || meta::snapshot_in_progress(&staging) {
            continue;
        }
        let dest = trash.join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
        match fs::rename(&staging.dir, &dest) {
            Ok(()) => {
                tracing::info!(dir = %name, "removing a session whose creation did not finish")
            }
            Err(e) => {
                tracing::warn!(dir = %name, error = %e, "could not remove a half-created session")
            }
        }
    }
    let removed = snapshots.clean_leftovers(LEFTOVER_AGE);
    if removed > 0 {
        tracing::info!(
            files = removed,
            "removed temporary files of unfinished snapshots"
        );
    }
}

/// Builds a [`LocalProvider`]; start with [`LocalProvider::builder`].
#[derive(Clone)]
pub struct LocalProviderBuilder {
    root: PathBuf,
    default_timeout: Duration,
    kill_grace: Duration,
    ports: RangeInclusive<u16>,
    max_ports: usize,
    path: Option<String>,
    env: BTreeMap<String, String>,
    isolation: bool,
    read_only_paths: Vec<PathBuf>,
}

impl fmt::Debug for LocalProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProviderBuilder")
            .field("root", &self.root)
            .field("default_timeout", &self.default_timeout)
            .field("kill_grace", &self.kill_grace)
            .field("ports", &self.ports)
            .field("max_ports", &self.max_ports)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("isolation", &self.isolation)
            .field("read_only_paths", &self.read_only_paths)
            .finish()
    }
}

impl LocalProviderBuilder {
    /// Whether commands run in sandboxes (default `true`; see the [crate
    /// docs](crate#isolation)). With `false`, or where this machine cannot create them
    /// (no unprivileged user namespaces), commands are plain processes on the host:
    /// [`Capabilities`] then declare no deny-all, and deny-all policies are refused.
    pub fn isolation(mut self, sandboxed: bool) -> Self {
        self.isolation = sandboxed;
        self
    }

    /// Shows a host directory (e.g. a toolchain under `/opt`) read-only inside every
    /// sandbox, at the same path. The system directories (`/usr`, `/etc`, `/bin`,
    /// `/lib*`) are always shown.
    pub fn read_only_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_only_paths.push(path.into());
        self
    }

    /// Session lifetime used when a start spec asks for none (default 5 minutes).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// How long to wait after SIGTERM before SIGKILL when stopping processes
    /// (default 2 s).
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// Ports sessions may declare (default 1024–65535).
    pub fn port_range(mut self, ports: RangeInclusive<u16>) -> Self {
        self.ports = ports;
        self
    }

    /// Most ports one session may declare (default 15).
    pub fn max_ports(mut self, max: usize) -> Self {
        self.max_ports = max;
        self
    }

    /// `PATH` of commands (default: this process's `PATH`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Adds a variable to the base environment of every command. Commands otherwise
    /// get only `HOME` (the session directory), `PATH` and `LANG=C.UTF-8`; a command's
    /// own variables win.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Creates the directories under the root and checks that sandboxes work here.
    pub fn build(self) -> Result<LocalProvider> {
        if self.ports.is_empty() || *self.ports.start() == 0 {
            return Err(Error::invalid_input(format!(
                "port range {:?} is empty or includes port 0; pass e.g. 1024..=65535",
                self.ports
            )));
        }
        let layout = Layout::new(self.root.clone());
        let snapshots = Snapshots::new(&layout);
        for dir in [layout.sessions(), layout.trash()] {
            fs::create_dir_all(&dir)
                .map_err(|e| io_error(format!("creating {}", dir.display()), e))?;
        }
        snapshots
            .init()
            .map_err(|e| io_error("creating the snapshot store", e))?;
        clean_leftovers(&layout, &snapshots);
        empty_trash(&layout);
        let sandboxes = self
            .isolation
            .then(|| {
                Sandboxes::detect(
                    &layout.sandbox_root(),
                    &layout.sandbox_probe(),
                    &self.read_only_paths,
                )
            })
            .flatten();
        let sandboxed = sandboxes.is_some();
        let caps = Capabilities {
            ports: Some(PortCapabilities {
                min: *self.ports.start(),
                max: *self.ports.end(),
                max_count: self.max_ports,
            }),
            extend_timeout: true,
            background_processes: true,
            network: NetworkCapabilities {
                allow_all: true,
                deny_all: sandboxed,
                allow_services: false,
                header_injection: false,
            },
            snapshot_delete: true,
            fork: true,
            cross_process_attach: true,
            max_timeout: None,
        };
        let mut env = BTreeMap::from([
            (
                "PATH".to_owned(),
                self.path
                    .or_else(|| std::env::var("PATH").ok())
                    .unwrap_or_else(|| FALLBACK_PATH.to_owned()),
            ),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ]);
        env.extend(self.env);
        tracing::debug!(root = %self.root.display(), sandboxed, "local provider ready");
        Ok(LocalProvider {
            inner: Arc::new(Inner {
                layout,
                snapshots,
                caps,
                env,
                default_timeout: self.default_timeout,
                kill_grace: self.kill_grace,
                sandboxes,
            }),
        })
    }
}

/// Deletes what ended sessions left in the trash, in the background.
fn empty_trash(layout: &Layout) {
    let trash = layout.trash();
    std::thread::spawn(move || {
        for entry in fs::read_dir(&trash).into_iter().flatten().flatten() {
            removal::remove_tree(&entry.path());
        }
    });
}

/// The local provider: sessions are directories and processes on this machine.
/// Clones share state. See the [crate docs](crate) for what it enforces.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

impl LocalProvider {
    /// A provider with default settings storing everything under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalProvider> {
        Self::builder(root).build()
    }

    /// A builder for a provider storing everything under `root`.
    pub fn builder(root: impl Into<PathBuf>) -> LocalProviderBuilder {
        LocalProviderBuilder {
            root: root.into(),
            default_timeout: DEFAULT_TIMEOUT,
            kill_grace: DEFAULT_KILL_GRACE,
            ports: 1024..=65535,
            max_ports: DEFAULT_MAX_PORTS,
            path: None,
            env: BTreeMap::new(),
            isolation: true,
            read_only_paths: Vec::new(),
        }
    }

    /// The provider root.
    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    /// Whether deny-all policies can be enforced here (commands run in sandboxes).
    pub fn enforces_deny_all(&self) -> bool {
        self.is_sandboxed()
    }

    /// Whether commands run in sandboxes (see the [crate docs](crate#isolation)) rather
    /// than as plain processes on the host.
    pub fn is_sandboxed(&self) -> bool {
        self.inner.sandboxes.is_some()
    }

    /// The working directory of a live session (its `HOME` and default `cwd`).
    pub fn work_dir(&self, session: &SessionRef) -> Result<PathBuf> {
        check_provider(session)?;
        if !is_valid_id(&session.id) {
            return Err(session_gone(&session.id, "is unknown"));
        }
        let paths = self.inner.layout.session(&session.id);
        match meta::read(&paths)? {
            Some(_) => Ok(paths.work()),
            None => Err(session_gone(&session.id, "is stopped or unknown")),
        }
    }

    /// Stops every expired session (its processes and directory). Expired sessions
    /// are otherwise stopped when next touched. Returns how many were stopped.
    pub async fn reap_expired(&self) -> Result<usize> {
        let sessions = self.inner.layout.sessions();
        let ids = blocking(move || {
            let listing = fs::read_dir(&sessions).map_err(|e| io_error("listing sessions", e))?;
            Ok(listing
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|id| is_valid_id(id))
                .collect::<Vec<_>>())
        })
        .await?;
        let mut stopped = 0;
        let now = sandkit_core::now();
        for id in ids {
            let paths = self.inner.layout.session(&id);
            let expired = blocking(move || {
                Ok(match meta::read(&paths) {
                    // Left alone while a snapshot runs; a failed one reopens it, and
                    // a later call reaps it.
                    Ok(Some(m)) if meta::snapshot_in_progress(&paths) => {
                        tracing::debug!(session = %m.id, "not reaping a session being snapshotted");
                        false
                    }
                    Ok(Some(m)) => m.expires_at <= now,
                    Ok(None) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping an unreadable session");
                        false
                    }
                })
            })
            .await?;
            if expired && self.inner.end_session(&id).await? {
                tracing::info!(session = %id, "stopped an expired local session");
                stopped += 1;
            }
        }
        Ok(stopped)
    }
}

fn check_provider(session: &SessionRef) -> Result<()> {
    if session.provider == PROVIDER_ID {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "session {} belongs to provider {}, not {PROVIDER_ID}; attach with that provider",
            session.id, session.provider
        )))
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn id(&self) -> &str {
        PROVIDER_ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    async fn start(&self, spec: StartSpec) -> Result<Box<dyn ProviderSession>> {
        let inner = &self.inner;
        inner.caps.check_ports(PROVIDER_ID, &spec.ports)?;
        let policy = inner.policy_kind(&spec.rules)?;
        let from = match &spec.from {
            Some(snap) if snap.provider != PROVIDER_ID => {
                return Err(Error::snapshot_unavailable(format!(
                    "snapshot {} was made by provider {}, which the local provider cannot \
                     restore; reset the workspace or use that provider",
                    snap.id, snap.provider
                )));
            }
            Some(snap) if !is_valid_id(&snap.id) => return Err(snapshot_gone(&snap.id)),
            Some(snap) => Some(snap.id.clone()),
            None => None,
        };
        let timeout = if spec.timeout.is_zero() {
            inner.default_timeout
        } else {
            spec.timeout
        };
        let lifetime = chrono::Duration::from_std(timeout).map_err(|_| {
            Error::invalid_input(format!(
                "timeout {timeout:?} is too long; pass at most a few years"
            ))
        })?;
        let id = match spec.name {
            Some(name) if is_valid_id(&name) => name,
            Some(name) => {
                return Err(Error::invalid_input(format!(
                    "session name {name:?} is not valid for the local provider: use at most \
                     100 ASCII letters, digits, '_' or '-'"
                )));
            }
            None => new_id("sbx"),
        };
        let meta = SessionMeta::new(
            id.clone(),
            spec.workspace_id.to_string(),
            sandkit_core::now() + lifetime,
            spec.ports.clone(),
            policy,
            from.clone(),
        );
        let expires_at = meta.expires_at;
        let provider = Arc::clone(inner);
        let started = std::time::Instant::now();
        blocking(move || create_session(&provider, &meta)).await?;
        tracing::info!(session = %id, from = ?from, elapsed_ms = started.elapsed().as_millis() as u64, "local session started");
        Ok(Box::new(LocalSession::new(
            Arc::clone(inner),
            id,
            expires_at,
        )))
    }

    async fn attach(&self, session: &SessionRef) -> Result<Box<dyn ProviderSession>> {
        check_provider(session)?;
        if !is_valid_id(&session.id) {
            return Err(session_gone(&session.id, "is unknown"));
        }
        let handle = LocalSession::new(
            Arc::clone(&self.inner),
            session.id.clone(),
            sandkit_core::now(),
        );
        handle.live().await?;
        Ok(Box::new(handle))
    }

    fn planned_session(&self, name: &str) -> Option<SessionRef> {
        is_valid_id(name).then(|| SessionRef {
            provider: PROVIDER_ID.to_owned(),
            id: name.to_owned(),
        })
    }

    /// Ends the session (its processes, its directory) whatever state it is in, and
    /// removes what a start that never finished left (`sessions/.starting-<id>`), once
    /// no process is building it any more.
    async fn discard_session(&self, session: &SessionRef) -> Result<()> {
        check_provider(session)?;
        if !is_valid_id(&session.id) {
            return Ok(());
        }
        self.inner.end_session(&session.id).await?;
        let staging = SessionPaths::at(
            self.inner
                .layout
                .sessions()
                .join(format!("{STAGING_PREFIX}{}", session.id)),
        );
        let trash = self.inner.layout.trash();
        let id = session.id.clone();
        blocking(move || {
            if fs::symlink_metadata(&staging.dir).is_err() {
                return Ok(());
            }
            match meta::try_snapshot_lock(&staging, &id)? {
                Some(_unused) => {
                    tracing::info!(session = %id, "removing a session whose start did not finish");
                    discard(&trash, &staging);
                    Ok(())
                }
                None => Err(Error::busy(format!(
                    "local session {id} is still being created by a running process; \
                     discard it once that start has finished"
                ))),
            }
        })
        .await
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let snapshots = self.inner.snapshots.clone();
        let listed = blocking(move || snapshots.list()).await?;
        Ok(listed
            .into_iter()
            .map(|(id, written)| {
                SnapshotInfo::new(
                    SnapshotRef {
                        provider: PROVIDER_ID.to_owned(),
                        id,
                    },
                    chrono::DateTime::<chrono::Utc>::from(written),
                )
            })
            .collect())
    }

    async fn snapshot_exists(&self, snapshot: &SnapshotRef) -> Result<bool> {
        if snapshot.provider != PROVIDER_ID {
            return Ok(false);
        }
        let (store, id) = (self.inner.snapshots.clone(), snapshot.id.clone());
        blocking(move || Ok(store.exists(&id))).await
    }

    async fn find_session_snapshot(&self, session: &SessionRef) -> Result<Option<SnapshotRef>> {
        if session.provider != PROVIDER_ID {
            return Ok(None);
        }
        let (store, id) = (self.inner.snapshots.clone(), session.id.clone());
        let found = blocking(move || store.of_session(&id)).await?;
        Ok(found.map(|id| SnapshotRef {
            provider: PROVIDER_ID.to_owned(),
            id,
        }))
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        if snapshot.provider != PROVIDER_ID {
            return Err(Error::invalid_input(format!(
                "snapshot {} belongs to provider {}, not {PROVIDER_ID}",
                snapshot.id, snapshot.provider
            )));
        }
        let store = self.inner.snapshots.clone();
        let id = snapshot.id.clone();
        blocking(move || store.delete(&id)).await
    }
}

/// Builds the session in a staging directory, then renames it into place, so no
/// other process ever attaches to a half-restored session.
fn create_session(inner: &Inner, meta: &SessionMeta) -> Result<()> {
    let staging = SessionPaths::at(
        inner
            .layout
            .sessions()
            .join(format!("{STAGING_PREFIX}{}", meta.id)),
    );
    let built = (|| {
        fs::create_dir(&staging.dir).map_err(|e| io_error("creating the session directory", e))?;
        // Tells a provider starting meanwhile that this directory is not a leftover.
        let _building = meta::try_snapshot_lock(&staging, &meta.id)?;
        for dir in [staging.procs(), staging.tmp()] {
            fs::create_dir(dir).map_err(|e| io_error("creating the session directory", e))?;
        }
        match &meta.from_snapshot {
            Some(snap) => {
                let entries = inner.snapshots.restore(snap, &staging.work())?;
                if let Err(e) = index::save(&staging.index(), &entries) {
                    tracing::warn!(error = %e, "could not save the snapshot index; the next snapshot re-reads every file");
                }
            }
            None => fs::create_dir(staging.work())
                .map_err(|e| io_error("creating the session directory", e))?,
        }
        meta::create(&staging, meta)?;
        fs::rename(&staging.dir, inner.layout.session(&meta.id).dir)
            .map_err(|e| io_error("publishing the session directory", e))
    })();
    if built.is_err() {
        removal::remove_tree(&staging.dir);
    }
    built
}
