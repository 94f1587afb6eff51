//! Where things live under the provider root.

use std::path::{Path, PathBuf};

/// Longest session or snapshot id accepted.
const MAX_ID_LEN: usize = 100;

/// Paths under the provider root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Self {
        Layout { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Live sessions, one directory each.
    pub(crate) fn sessions(&self) -> PathBuf {
        self.root.join("sessions")
    }

    /// Snapshot manifests, one file each.
    pub(crate) fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Content-addressed file contents shared by all snapshots.
    pub(crate) fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }

    /// Ended sessions waiting to be deleted.
    pub(crate) fn trash(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// Lock taken shared by snapshot writers/readers and exclusively by garbage collection.
    pub(crate) fn store_lock(&self) -> PathBuf {
        self.root.join("store.lock")
    }

    /// Empty directory on which each sandboxed command builds its filesystem view (in
    /// its own mount namespace; nothing ever appears here on the host).
    pub(crate) fn sandbox_root(&self) -> PathBuf {
        self.root.join("sandbox").join("root")
    }

    /// Workspace of the sandbox probe run when the provider is built.
    pub(crate) fn sandbox_probe(&self) -> PathBuf {
        self.root.join("sandbox").join("probe")
    }

    pub(crate) fn session(&self, id: &str) -> SessionPaths {
        SessionPaths {
            dir: self.sessions().join(id),
        }
    }
}

/// Paths of one session directory.
#[derive(Debug, Clone)]
pub(crate) struct SessionPaths {
    pub(crate) dir: PathBuf,
}

impl SessionPaths {
    pub(crate) fn at(dir: PathBuf) -> Self {
        SessionPaths { dir }
    }

    /// The working directory commands run in (and `HOME`).
    pub(crate) fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Session metadata (JSON).
    pub(crate) fn meta(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    /// Lock file serialising metadata updates across OS processes.
    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join("session.lock")
    }

    /// Lock held by the OS process taking a snapshot, for the whole snapshot (also held
    /// while the session is being created).
    pub(crate) fn snapshot_lock(&self) -> PathBuf {
        self.dir.join("snapshot.lock")
    }

    /// Lock held shared by calls starting a command (from reading the session's policy
    /// until the command is registered), exclusively by `set_policy`.
    pub(crate) fn launch_lock(&self) -> PathBuf {
        self.dir.join("launch.lock")
    }

    /// File-stat cache of the restored tree, for incremental snapshots.
    pub(crate) fn index(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// The session's private `/tmp` (sandboxed commands only; not in snapshots).
    pub(crate) fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Log and exit files of processes.
    pub(crate) fn procs(&self) -> PathBuf {
        self.dir.join("procs")
    }
}

/// Whether `id` is safe to use as a file name (letters, digits, `_`, `-`).
pub(crate) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A new id with `prefix` (time-ordered).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_name_other_paths() {
        assert!(is_valid_id("sbx_0190abc"));
        assert!(is_valid_id(&new_id("snap")));
        for bad in ["", "..", "a/b", "../x", "a b", "x\0", &"a".repeat(101)] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
