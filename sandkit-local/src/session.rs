//! [`LocalSession`]: one live session (a directory plus the processes started in it).

use std::fmt;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sandkit_core::{
    Error, ExecSpec, LogStream, ProcessHandle, ProcessInfo, ProviderSession, Result, SessionRef,
    SnapshotRef,
};
use sandkit_policies::FirewallRules;

use crate::background::{self, SUPERVISOR, SUPERVISOR_NAME, Watch};
use crate::errors::{blocking, io_error, session_gone};
use crate::expiry;
use crate::foreground;
use crate::launch::{self, Isolation, Target};
use crate::layout::{SessionPaths, new_id};
use crate::meta::{self, PolicyKind, ProcessRecord, SessionMeta, SessionState};
use crate::procs::{self, Group};
use crate::provider::{Inner, PROVIDER_ID};

/// Where a background process reports its end (`None` for foreground commands).
fn watch(dir: &std::path::Path, record: &ProcessRecord) -> Option<Watch> {
    Some(Watch {
        exit_file: dir.join(record.exit_file.as_ref()?),
        group: record.group(),
    })
}

/// The exit code of a recorded process once it ended (reads files and `/proc`).
fn exit_code(dir: &std::path::Path, record: &ProcessRecord) -> Option<i32> {
    record.exit_code.or_else(|| match watch(dir, record) {
        Some(w) => w.exit_code(),
        None => (!record.group().leader_running()).then_some(-1),
    })
}

/// A handle on a local session. Every call re-reads the session metadata, so handles
/// in different OS processes see the same session.
pub(crate) struct LocalSession {
    inner: Arc<Inner>,
    id: String,
    paths: SessionPaths,
    expires_at: Mutex<DateTime<Utc>>,
}

impl fmt::Debug for LocalSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSession")
            .field("id", &self.id)
            .field("dir", &self.paths.dir)
            .finish()
    }
}

/// What a command needs from the session, resolved before it starts.
struct Launch {
    meta: SessionMeta,
    target: Target,
    env: std::collections::BTreeMap<String, String>,
    isolation: Isolation,
    /// The session's launch lock (shared), held until the command is registered, so
    /// the policy it was started under cannot change before `set_policy` sees it.
    _launching: std::fs::File,
}

impl LocalSession {
    pub(crate) fn new(inner: Arc<Inner>, id: String, expires_at: DateTime<Utc>) -> Self {
        let paths = inner.layout.session(&id);
        LocalSession {
            inner,
            id,
            paths,
            expires_at: Mutex::new(expires_at),
        }
    }

    fn cached_expiry(&self) -> MutexGuard<'_, DateTime<Utc>> {
        self.expires_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The metadata of a live session. A stopped, snapshotted or unknown session is
    /// `SessionUnavailable`; an expired one is stopped now, then reported unavailable.
    pub(crate) async fn live(&self) -> Result<SessionMeta> {
        let paths = self.paths.clone();
        let mut meta = blocking(move || meta::read(&paths))
            .await?
            .ok_or_else(|| session_gone(&self.id, "is stopped or unknown"))?;
        if meta.state == SessionState::Snapshotting && !meta::snapshot_in_progress(&self.paths) {
            meta = self.reopen_after_dead_snapshot().await?;
        }
        if meta.state != SessionState::Live {
            return Err(session_gone(&self.id, "was snapshotted or stopped"));
        }
        if meta.expires_at <= sandkit_core::now() {
            tracing::info!(session = %self.id, "stopping an expired local session");
            self.inner.end_session(&self.id).await?;
            return Err(session_gone(
                &self.id,
                "expired (extend sessions that need longer)",
            ));
        }
        *self.cached_expiry() = meta.expires_at;
        Ok(meta)
    }

    /// A session left `Snapshotting` by a process that died taking its snapshot (the
    /// snapshot lock is free) is whole again — its processes were stopped, its files
    /// untouched — so it is reopened, and a commit can be retried. If the snapshot did
    /// complete, the session ends as a finished snapshot does, so that the commit's
    /// retry (or recovery) finds that snapshot instead of taking another.
    async fn reopen_after_dead_snapshot(&self) -> Result<SessionMeta> {
        let (store, id) = (self.inner.snapshots.clone(), self.id.clone());
        if let Some(snapshot) = blocking(move || store.of_session(&id)).await? {
            tracing::warn!(session = %self.id, %snapshot, "ending a session whose snapshotting process died after its snapshot");
            self.inner.end_session(&self.id).await?;
            return Err(session_gone(&self.id, "was snapshotted"));
        }
        let paths = self.paths.clone();
        let reopened = self
            .update(move |m| {
                if m.state == SessionState::Snapshotting && !meta::snapshot_in_progress(&paths) {
                    m.state = SessionState::Live;
                }
                Ok(m.clone())
            })
            .await?;
        if reopened.state == SessionState::Live {
            tracing::warn!(session = %self.id, "reopened a session whose snapshot was interrupted (its snapshotting process died)");
        }
        Ok(reopened)
    }

    async fn update<R: Send + 'static>(
        &self,
        change: impl FnOnce(&mut SessionMeta) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let paths = self.paths.clone();
        let id = self.id.clone();
        blocking(move || meta::update(&paths, &id, change)).await
    }

    fn isolation(&self, policy: PolicyKind) -> Result<Isolation> {
        let sandboxed = self.inner.sandboxes.is_some();
        match policy {
            PolicyKind::AllowAll if sandboxed => Ok(Isolation::Sandbox { host_network: true }),
            PolicyKind::AllowAll => Ok(Isolation::Host),
            PolicyKind::DenyAll if sandboxed => Ok(Isolation::Sandbox {
                host_network: false,
            }),
            PolicyKind::DenyAll => Err(Error::unsupported(
                "this session's deny-all policy cannot be enforced on this machine (commands \
                 run on the host: sandboxes are unavailable or turned off), so the command \
                 was not started",
            )),
        }
    }

    /// Where a command with working directory `cwd` (relative to the workspace) runs,
    /// and its `HOME`.
    fn target(
        &self,
        isolation: Isolation,
        cwd: &std::path::Path,
    ) -> Result<(Target, std::path::PathBuf)> {
        let work = self.paths.work();
        let (Isolation::Sandbox { host_network }, Some(sandboxes)) =
            (isolation, &self.inner.sandboxes)
        else {
            return Ok((Target::Host(work.join(cwd)), work));
        };
        let tmp = self.paths.tmp();
        if let Err(e) = std::fs::create_dir(&tmp)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(io_error("creating the session's /tmp", e));
        }
        let home = std::path::PathBuf::from(crate::WORKSPACE);
        let plan = sandboxes
            .plan(&work, &tmp, &home.join(cwd), host_network)
            .map_err(|e| io_error("preparing the command's sandbox", e))?;
        Ok((Target::Sandbox(plan), home))
    }

    async fn prepare(&self, spec: &ExecSpec) -> Result<Launch> {
        if spec.command.is_empty() {
            return Err(Error::invalid_input(
                "command is empty; pass an executable name",
            ));
        }
        let (paths, id) = (self.paths.clone(), self.id.clone());
        let launching = blocking(move || meta::launch_lock(&paths, &id, false)).await?;
        let meta = self.live().await?;
        let isolation = self.isolation(meta.policy)?;
        let cwd = launch::resolve_cwd(&self.paths.work(), spec.cwd.as_deref())?;
        let (target, home) = self.target(isolation, &cwd)?;
        let env = launch::environment(&self.inner.env, &home, spec);
        Ok(Launch {
            meta,
            target,
            env,
            isolation,
            _launching: launching,
        })
    }

    /// Records a started process. If the session ended meanwhile, the process is
    /// killed and the call fails. The caller holds the launch lock (see [`Launch`]), so
    /// the policy cannot have been tightened since the command was prepared; should it
    /// be deny-all anyway for a process with the host network, that process is killed
    /// too.
    async fn register(&self, record: ProcessRecord) -> Result<()> {
        let group = record.group();
        let registered = self
            .update(move |m| {
                let refused = if m.state != SessionState::Live {
                    Some(session_gone(&m.id, "was snapshotted or stopped"))
                } else if m.policy == PolicyKind::DenyAll && record.host_network {
                    Some(Error::conflict(format!(
                        "local session {} was switched to deny-all while `{}` was starting \
                         with network access, so it was stopped; run it again (it will run \
                         without network)",
                        m.id,
                        record.command.first().map_or("", String::as_str)
                    )))
                } else {
                    None
                };
                if let Some(e) = refused {
                    group.signal(libc::SIGKILL);
                    return Err(e);
                }
                // Forget finished foreground commands all of whose processes ended.
                let groups: Vec<Group> = m.processes.iter().map(ProcessRecord::group).collect();
                let alive = procs::alive_groups(&groups);
                m.processes.retain(|p| {
                    p.background || p.exit_code.is_none() || alive.contains(&p.group())
                });
                m.processes.push(record);
                Ok(())
            })
            .await;
        if registered.is_err() {
            procs::kill_now(&[group]).await;
        }
        registered
    }

    fn record(
        &self,
        id: &str,
        spec: &ExecSpec,
        pid: i32,
        background: bool,
        isolation: Isolation,
    ) -> ProcessRecord {
        let group = Group::of_leader(pid);
        let file = |ext: &str| background.then(|| format!("procs/{id}.{ext}"));
        ProcessRecord {
            id: id.to_owned(),
            background,
            command: std::iter::once(spec.command.clone())
                .chain(spec.args.iter().cloned())
                .collect(),
            pid,
            pgid: group.leader,
            start_ticks: group.start_ticks,
            started_at: sandkit_core::now(),
            stdout_log: file("out"),
            stderr_log: file("err"),
            exit_file: file("exit"),
            exit_code: None,
            host_network: isolation.host_network(),
        }
    }

    fn watch(&self, record: &ProcessRecord) -> Option<Watch> {
        watch(&self.paths.dir, record)
    }

    fn find(&self, meta: &SessionMeta, process_id: &str) -> Result<ProcessRecord> {
        meta.process(process_id).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "process {process_id} is not a process of local session {}; list them with \
                 `processes()`",
                self.id
            ))
        })
    }
}

#[async_trait]
impl ProviderSession for LocalSession {
    fn session_ref(&self) -> SessionRef {
        SessionRef {
            provider: PROVIDER_ID.to_owned(),
            id: self.id.clone(),
        }
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Some(*self.cached_expiry())
    }

    async fn set_policy(&self, rules: &FirewallRules) -> Result<()> {
        let kind = self.inner.policy_kind(rules)?;
        self.live().await?;
        let (paths, id) = (self.paths.clone(), self.id.clone());
        // Waits for commands being started: once they are registered, the check below
        // sees those running with the host network.
        blocking(move || {
            let _launches = meta::launch_lock(&paths, &id, true)?;
            meta::update(&paths, &id, move |m| {
                if kind == PolicyKind::DenyAll && m.policy == PolicyKind::AllowAll {
                    let networked: Vec<Group> = m
                        .processes
                        .iter()
                        .filter(|p| p.host_network)
                        .map(ProcessRecord::group)
                        .collect();
                    let running = procs::alive_groups(&networked).len();
                    if running > 0 {
                        return Err(Error::unsupported(format!(
                            "{running} process(es) of this session run with network access and \
                             the local provider cannot move them into a deny-all network \
                             namespace; kill them first, then set the policy"
                        )));
                    }
                }
                m.policy = kind;
                Ok(())
            })
        })
        .await
    }

    async fn exec(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        let launch = self.prepare(&spec).await?;
        let id = new_id("proc");
        let mut cmd = launch::command(&spec.command, &spec.args, &launch.env, launch.target, None);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if launch::isolation_failed(&e) => {
                return Err(launch::isolation_error(&spec.command));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Ok(foreground::not_started(id, &spec.command, &e));
            }
            Err(e) => return Err(io_error(format!("starting {}", spec.command), e)),
        };
        let pid = child.id().map_or(0, |p| p as i32);
        let record = self.record(&id, &spec, pid, false, launch.isolation);
        let group = record.group();
        self.register(record).await?;
        tracing::debug!(session = %self.id, process = %id, command = %spec.command, policy = ?launch.meta.policy, "exec");
        let (sink, handle) = ProcessHandle::channel(id.clone());
        let paths = self.paths.clone();
        let session = self.id.clone();
        let timeout = spec.timeout;
        tokio::spawn(async move {
            let code = foreground::supervise(child, group, timeout, &sink).await;
            // Keep the record while processes it left behind still run, so that
            // `stop` and `snapshot` end them too.
            let forgotten = blocking(move || {
                let lingering = group.alive();
                meta::update(&paths, &session, |m| {
                    if lingering {
                        if let Some(p) = m.processes.iter_mut().find(|p| p.id == id) {
                            p.exit_code = Some(code);
                        }
                    } else {
                        m.processes.retain(|p| p.id != id);
                    }
                    Ok(())
                })
            })
            .await;
            if let Err(e) = forgotten {
                tracing::debug!(error = %e, "finished command not unregistered (session ended)");
            }
            sink.finish(code);
        });
        Ok(handle)
    }

    async fn spawn(&self, spec: ExecSpec) -> Result<ProcessHandle> {
        let launch = self.prepare(&spec).await?;
        let id = new_id("proc");
        let procs_dir = self.paths.procs();
        let [out, err, exit] =
            ["out", "err", "exit"].map(|ext| procs_dir.join(format!("{id}.{ext}")));
        let (out_log, err_log, exit_log) = {
            let (out, err, exit) = (out.clone(), err.clone(), exit.clone());
            blocking(move || {
                let open = |p: &std::path::Path| {
                    std::fs::File::create(p).map_err(|e| io_error("creating a process log", e))
                };
                Ok((open(&out)?, open(&err)?, open(&exit)?))
            })
            .await?
        };
        let mut args = vec![
            "-c".to_owned(),
            SUPERVISOR.to_owned(),
            SUPERVISOR_NAME.to_owned(),
            spec.command.clone(),
        ];
        args.extend(spec.args.iter().cloned());
        let exit_fd = std::os::fd::AsRawFd::as_raw_fd(&exit_log);
        let mut cmd = launch::command("/bin/sh", &args, &launch.env, launch.target, Some(exit_fd));
        cmd.stdout(out_log).stderr(err_log);
        let mut child = cmd.spawn().map_err(|e| {
            if launch::isolation_failed(&e) {
                launch::isolation_error(&spec.command)
            } else {
                io_error("starting a background process with /bin/sh", e)
            }
        })?;
        drop(exit_log);
        let pid = child.id().map_or(0, |p| p as i32);
        let record = self.record(&id, &spec, pid, true, launch.isolation);
        let watch = Watch {
            exit_file: exit,
            group: record.group(),
        };
        self.register(record).await?;
        let (paths, group) = (self.paths.clone(), watch.group);
        let (expires_at, grace) = (launch.meta.expires_at, self.inner.kill_grace);
        blocking(move || {
            expiry::watch(&paths, group, expires_at, grace)
                .map_err(|e| io_error("starting the session's expiry watchdog", e))
        })
        .await?;
        tracing::debug!(session = %self.id, process = %id, command = %spec.command, policy = ?launch.meta.policy, "spawn");
        // Reap the supervisor while this OS process lives; record how it ended if it
        // could not (killed by SIGKILL).
        let reaper = watch.clone();
        tokio::spawn(async move {
            if let Ok(status) = child.wait().await {
                let code = foreground::exit_code(status);
                let _ = blocking(move || {
                    reaper.record_if_missing(code);
                    Ok(())
                })
                .await;
            }
        });
        Ok(background::handle(id, [out, err], watch))
    }

    async fn processes(&self) -> Result<Vec<ProcessInfo>> {
        let meta = self.live().await?;
        let dir = self.paths.dir.clone();
        blocking(move || {
            Ok(meta
                .processes
                .iter()
                .filter(|p| p.background)
                .map(|p| ProcessInfo {
                    id: p.id.clone(),
                    command: p.command.clone(),
                    exit_code: exit_code(&dir, p),
                })
                .collect())
        })
        .await
    }

    async fn process_logs(&self, process_id: &str) -> Result<LogStream> {
        let meta = self.live().await?;
        let record = self.find(&meta, process_id)?;
        let (Some(out), Some(err), Some(watch)) = (
            record.stdout_log.as_ref(),
            record.stderr_log.as_ref(),
            self.watch(&record),
        ) else {
            return Err(Error::not_found(format!(
                "process {process_id} ran in the foreground and kept no logs; start it with \
                 `spawn` to read its logs later"
            )));
        };
        Ok(background::follow(
            [self.paths.dir.join(out), self.paths.dir.join(err)],
            watch,
        ))
    }

    async fn kill(&self, process_id: &str) -> Result<()> {
        let meta = self.live().await?;
        let record = self.find(&meta, process_id)?;
        let group = record.group();
        let killed = procs::terminate(&[group], self.inner.kill_grace).await;
        if let Some(watch) = self.watch(&record) {
            let code = if killed.is_empty() {
                procs::signal_exit_code(libc::SIGTERM)
            } else {
                background::KILLED_EXIT_CODE
            };
            blocking(move || {
                watch.record_if_missing(code);
                Ok(())
            })
            .await?;
        }
        tracing::debug!(session = %self.id, process = %process_id, "killed");
        Ok(())
    }

    async fn snapshot(&self) -> Result<SnapshotRef> {
        self.live().await?;
        // Held until the snapshot ended (either way): `stop` and expiry wait for it
        // rather than moving the directory away mid-capture.
        let (paths, id) = (self.paths.clone(), self.id.clone());
        let _snapshotting = blocking(move || meta::snapshot_lock(&paths, &id))
            .await?
            .ok_or_else(|| session_gone(&self.id, "is being snapshotted by another call"))?;
        let groups = self
            .update(|m| {
                if m.state != SessionState::Live {
                    return Err(session_gone(&m.id, "was snapshotted or stopped"));
                }
                m.state = SessionState::Snapshotting;
                Ok(m.groups())
            })
            .await?;
        procs::terminate(&groups, self.inner.kill_grace).await;
        let started = std::time::Instant::now();
        let store = self.inner.snapshots.clone();
        let paths = self.paths.clone();
        let session = self.id.clone();
        let created = blocking(move || store.create(&session, &paths.work(), &paths.index())).await;
        match created {
            Ok(snapshot) => {
                // The snapshot is stored: failing to clean up is logged, not reported.
                self.inner.discard_dir(&self.paths).await;
                tracing::info!(session = %self.id, %snapshot, elapsed_ms = started.elapsed().as_millis() as u64, "local snapshot taken; session ended");
                Ok(SnapshotRef {
                    provider: PROVIDER_ID.to_owned(),
                    id: snapshot,
                })
            }
            Err(e) => {
                // The session stays usable (its processes were stopped) so the caller
                // can retry or discard.
                let reopened = self
                    .update(|m| {
                        m.state = SessionState::Live;
                        Ok(())
                    })
                    .await;
                if let Err(r) = reopened {
                    tracing::warn!(error = %r, "could not reopen the session after a failed snapshot");
                }
                Err(e)
            }
        }
    }

    async fn stop(&self) -> Result<()> {
        if self.inner.end_session(&self.id).await? {
            tracing::info!(session = %self.id, "local session stopped");
            Ok(())
        } else {
            Err(session_gone(&self.id, "is already stopped or unknown"))
        }
    }

    async fn url(&self, port: u16) -> Result<String> {
        let meta = self.live().await?;
        if !meta.ports.contains(&port) {
            return Err(Error::invalid_input(format!(
                "port {port} was not declared when local session {} started (declared: {:?}); \
                 add it to the workspace's exposed ports",
                self.id, meta.ports
            )));
        }
        if meta.policy == PolicyKind::DenyAll {
            return Err(Error::unsupported(format!(
                "port {port} of local session {} is unreachable: its deny-all commands run in \
                 their own network namespace; use allow-all to serve ports locally",
                self.id
            )));
        }
        Ok(format!("http://127.0.0.1:{port}"))
    }

    async fn extend(&self, by: Duration) -> Result<DateTime<Utc>> {
        let by = chrono::Duration::from_std(by)
            .map_err(|_| Error::invalid_input("extension is too long; pass at most a few years"))?;
        self.live().await?;
        let expires_at = self
            .update(move |m| {
                m.expires_at += by;
                Ok(m.expires_at)
            })
            .await?;
        *self.cached_expiry() = expires_at;
        let paths = self.paths.clone();
        blocking(move || {
            expiry::extend(&paths, expires_at)
                .map_err(|e| io_error("moving the session's expiry deadline", e))
        })
        .await?;
        Ok(expires_at)
    }
}
