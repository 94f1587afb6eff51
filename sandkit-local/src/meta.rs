//! Session metadata: one JSON file per session, updated under a file lock so that
//! several OS processes can share a session.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use sandkit_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::errors::{corrupt, io_error, session_gone};
use crate::layout::SessionPaths;
use crate::procs::Group;

/// Current metadata format.
const VERSION: u32 = 1;

/// Which egress policy the session's commands run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum PolicyKind {
    /// Host network.
    AllowAll,
    /// A fresh network namespace per command.
    DenyAll,
}

/// Lifecycle of a session directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum SessionState {
    /// Accepting commands.
    Live,
    /// A snapshot is being taken; commands are refused.
    Snapshotting,
    /// Being stopped.
    Stopping,
}

/// A process started in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProcessRecord {
    /// Provider-side id (`proc_…`).
    pub(crate) id: String,
    /// Started with `spawn` (logs on disk) rather than `exec`.
    pub(crate) background: bool,
    /// Executable and arguments.
    pub(crate) command: Vec<String>,
    /// Leader pid.
    pub(crate) pid: i32,
    /// Process group id (equal to `pid`: every command leads its own OS session and
    /// process group, and is tracked by session id, see [`crate::procs`]).
    pub(crate) pgid: i32,
    /// Leader start time in clock ticks since boot (guards against pid reuse).
    pub(crate) start_ticks: u64,
    /// When it started.
    pub(crate) started_at: DateTime<Utc>,
    /// Standard output log, relative to the session directory (background only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stdout_log: Option<String>,
    /// Standard error log, relative to the session directory (background only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stderr_log: Option<String>,
    /// File the exit code is written to, relative to the session directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_file: Option<String>,
    /// Exit code, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_code: Option<i32>,
    /// Started with the host network (not in a deny-all namespace). Records written
    /// before this field existed count as having it.
    #[serde(default = "host_network_unknown")]
    pub(crate) host_network: bool,
}

fn host_network_unknown() -> bool {
    true
}

impl ProcessRecord {
    pub(crate) fn group(&self) -> Group {
        Group {
            leader: self.pgid,
            start_ticks: self.start_ticks,
        }
    }
}

/// Everything another OS process needs to use the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionMeta {
    /// Format version.
    pub(crate) version: u32,
    /// Session id.
    pub(crate) id: String,
    /// Workspace the session belongs to.
    pub(crate) workspace: String,
    /// Creation time.
    pub(crate) created_at: DateTime<Utc>,
    /// When the session ends unless extended.
    pub(crate) expires_at: DateTime<Utc>,
    /// Declared ports.
    pub(crate) ports: Vec<u16>,
    /// Egress policy of new commands.
    pub(crate) policy: PolicyKind,
    /// Lifecycle state.
    pub(crate) state: SessionState,
    /// Snapshot it was restored from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from_snapshot: Option<String>,
    /// Running foreground commands and all background processes.
    #[serde(default)]
    pub(crate) processes: Vec<ProcessRecord>,
}

impl SessionMeta {
    pub(crate) fn new(
        id: String,
        workspace: String,
        expires_at: DateTime<Utc>,
        ports: Vec<u16>,
        policy: PolicyKind,
        from_snapshot: Option<String>,
    ) -> Self {
        SessionMeta {
            version: VERSION,
            id,
            workspace,
            created_at: sandkit_core::now(),
            expires_at,
            ports,
            policy,
            state: SessionState::Live,
            from_snapshot,
            processes: Vec::new(),
        }
    }

    /// Process groups of every recorded process (some may have ended).
    pub(crate) fn groups(&self) -> Vec<Group> {
        self.processes.iter().map(ProcessRecord::group).collect()
    }

    pub(crate) fn process(&self, id: &str) -> Option<&ProcessRecord> {
        self.processes.iter().find(|p| p.id == id)
    }
}

/// Takes the session's snapshot lock without waiting. `Ok(None)` when another call
/// holds it (a snapshot is in progress), `SessionUnavailable` when the session is gone.
pub(crate) fn try_snapshot_lock(paths: &SessionPaths, id: &str) -> Result<Option<File>> {
    let file = open_snapshot_lock(paths, id)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(io_error("locking the session snapshot lock", e))
        }
    }
}

/// Takes the session's snapshot lock to snapshot it. While the session is still live,
/// another holder is only checking for a snapshot ([`snapshot_in_progress`]) or about
/// to mark the session as snapshotting: that is waited for. `Ok(None)` when a snapshot
/// is in progress, `SessionUnavailable` when the session is gone.
pub(crate) fn snapshot_lock(paths: &SessionPaths, id: &str) -> Result<Option<File>> {
    let file = open_snapshot_lock(paths, id)?;
    match file.try_lock() {
        Ok(()) => return Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(io_error("locking the session snapshot lock", e));
        }
    }
    match read(paths)? {
        None => Err(session_gone(id, "is stopped or unknown")),
        Some(m) if m.state != SessionState::Live => Ok(None),
        Some(_) => {
            file.lock()
                .map_err(|e| io_error("locking the session snapshot lock", e))?;
            Ok(Some(file))
        }
    }
}

fn open_snapshot_lock(paths: &SessionPaths, id: &str) -> Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(paths.snapshot_lock())
    {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(session_gone(id, "is stopped or unknown"))
        }
        Err(e) => Err(io_error("opening the session snapshot lock", e)),
    }
}

/// Takes the session's launch lock, waiting for it: shared while a command is being
/// started, exclusive while the policy changes (see [`SessionPaths::launch_lock`]).
/// `SessionUnavailable` when the session is gone.
pub(crate) fn launch_lock(paths: &SessionPaths, id: &str, exclusive: bool) -> Result<File> {
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(paths.launch_lock())
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(session_gone(id, "is stopped or unknown"));
        }
        Err(e) => return Err(io_error("opening the session launch lock", e)),
    };
    let locked = if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    };
    locked.map_err(|e| io_error("locking the session launch lock", e))?;
    Ok(file)
}

/// Whether a live call (in any OS process) is snapshotting the session right now.
/// A session left in [`SessionState::Snapshotting`] by a crashed process is not.
pub(crate) fn snapshot_in_progress(paths: &SessionPaths) -> bool {
    let Ok(file) = File::open(paths.snapshot_lock()) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Reads the metadata; `None` when the session does not exist.
pub(crate) fn read(paths: &SessionPaths) -> Result<Option<SessionMeta>> {
    match fs::read(paths.meta()) {
        Ok(raw) => parse(&paths.meta(), &raw).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("reading session metadata", e)),
    }
}

fn parse(path: &Path, raw: &[u8]) -> Result<SessionMeta> {
    let meta: SessionMeta = serde_json::from_slice(raw)
        .map_err(|e| corrupt("local session", &path.display().to_string(), e))?;
    if meta.version != VERSION {
        return Err(corrupt(
            "local session",
            &path.display().to_string(),
            format!("unknown metadata version {}", meta.version),
        ));
    }
    Ok(meta)
}

/// Writes the metadata of a new session (no lock needed: nobody knows it yet).
pub(crate) fn create(paths: &SessionPaths, meta: &SessionMeta) -> Result<()> {
    write_atomically(paths, meta)
}

/// Read-modify-write under the session lock. A missing session is `SessionUnavailable`.
pub(crate) fn update<R>(
    paths: &SessionPaths,
    id: &str,
    change: impl FnOnce(&mut SessionMeta) -> Result<R>,
) -> Result<R> {
    let lock = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(paths.lock())
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(session_gone(id, "is stopped or unknown"));
        }
        Err(e) => return Err(io_error("opening the session lock", e)),
    };
    lock.lock()
        .map_err(|e| io_error("locking the session metadata", e))?;
    let mut meta = read(paths)?.ok_or_else(|| session_gone(id, "is stopped or unknown"))?;
    let out = change(&mut meta)?;
    write_atomically(paths, &meta)?;
    drop(lock);
    Ok(out)
}

fn write_atomically(paths: &SessionPaths, meta: &SessionMeta) -> Result<()> {
    let json = serde_json::to_vec_pretty(meta).map_err(|e| {
        Error::provider(
            None,
            Some("internal".to_owned()),
            format!("local provider: cannot encode session metadata: {e}"),
        )
    })?;
    let tmp = paths.dir.join(format!(
        ".session.json.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        fs::rename(&tmp, paths.meta())
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        if e.kind() == io::ErrorKind::NotFound {
            session_gone(&meta.id, "is stopped or unknown")
        } else {
            io_error("writing session metadata", e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SessionPaths::at(dir.path().to_path_buf());
        assert_eq!(read(&paths).unwrap(), None);
        let meta = SessionMeta::new(
            "sbx_1".into(),
            "ws".into(),
            sandkit_core::now(),
            vec![3000],
            PolicyKind::DenyAll,
            None,
        );
        create(&paths, &meta).unwrap();
        assert_eq!(read(&paths).unwrap(), Some(meta.clone()));
        update(&paths, "sbx_1", |m| {
            m.ports.push(3001);
            Ok(())
        })
        .unwrap();
        assert_eq!(read(&paths).unwrap().unwrap().ports, vec![3000, 3001]);
    }

    #[test]
    fn garbage_metadata_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SessionPaths::at(dir.path().to_path_buf());
        fs::write(paths.meta(), b"{not json").unwrap();
        let err = read(&paths).unwrap_err();
        assert_eq!(err.kind().name(), "corrupt");
    }
}
