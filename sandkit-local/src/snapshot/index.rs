//! The stat cache of a session: for each file restored from a snapshot, its hash and
//! the `stat` fields that change whenever the file does. An incremental snapshot
//! reuses the hash of every file whose fields still match, without reading it.
//!
//! `ctime` cannot be set by users and changes on every write, chmod or rename; together
//! with inode, size and mtime it identifies an unchanged file (as git's index does).
//! Timestamps are coarse (one kernel tick), so a restore returns only after the clock
//! has moved past the newest recorded `ctime` (see [`settle`]): a later write then
//! always gets a different `ctime`.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::snapshot::manifest::RawPath;
use crate::snapshot::packs::Location;

/// Longest kernel timestamp granularity (one tick at HZ=100).
const TICK: Duration = Duration::from_millis(10);

/// The `stat` fields that identify a file's content version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stamp {
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
}

impl Stamp {
    pub(crate) fn of(md: &Metadata) -> Stamp {
        Stamp {
            ino: md.ino(),
            size: md.size(),
            mode: md.mode(),
            mtime_ns: mtime_ns(md),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        }
    }
}

/// A file's modification time in nanoseconds since the epoch.
pub(crate) fn mtime_ns(md: &Metadata) -> i64 {
    md.mtime() * 1_000_000_000 + md.mtime_nsec()
}

/// Nanoseconds since the epoch as a `SystemTime`.
pub(crate) fn system_time(ns: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// One cached file: where its content is stored, and its `stat` fields then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    pub(crate) path: RawPath,
    pub(crate) hash: String,
    pub(crate) pack: String,
    pub(crate) offset: u64,
    pub(crate) stamp: Stamp,
}

impl IndexEntry {
    pub(crate) fn location(&self) -> Location {
        Location {
            pack: self.pack.clone(),
            offset: self.offset,
            size: self.stamp.size,
        }
    }
}

/// The cache, by path.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_path: HashMap<Vec<u8>, IndexEntry>,
}

impl Index {
    fn from_entries(entries: Vec<IndexEntry>) -> Index {
        Index {
            by_path: entries.into_iter().map(|e| (e.path.0.clone(), e)).collect(),
        }
    }

    /// Loads the cache; a missing or unreadable one is empty (it is only a cache).
    pub(crate) fn load(path: &Path) -> Index {
        let Ok(raw) = fs::read(path) else {
            return Index::default();
        };
        match serde_json::from_slice::<Vec<IndexEntry>>(&raw) {
            Ok(entries) => Index::from_entries(entries),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable snapshot index; files will be re-hashed");
                Index::default()
            }
        }
    }

    /// The cached entry of `path` if its `stat` fields are unchanged.
    pub(crate) fn unchanged(&self, path: &[u8], md: &Metadata) -> Option<&IndexEntry> {
        self.by_path
            .get(path)
            .filter(|entry| entry.stamp == Stamp::of(md))
    }

    /// Every cached entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.by_path.values()
    }
}

/// Writes the cache.
pub(crate) fn save(path: &Path, entries: &[IndexEntry]) -> std::io::Result<()> {
    let json = serde_json::to_vec(entries).map_err(std::io::Error::other)?;
    fs::write(path, json)
}

/// Waits until the clock is past the newest `ctime` in `entries` by one tick, so any
/// later change to a file gets a `ctime` different from the recorded one.
pub(crate) fn settle(entries: &[IndexEntry]) {
    let Some(newest) = entries.iter().map(|e| e.stamp.ctime_ns).max() else {
        return;
    };
    let safe = system_time(newest) + TICK;
    if let Ok(wait) = safe.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_changed_file_misses_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "one").unwrap();
        let entry = IndexEntry {
            path: RawPath(b"f".to_vec()),
            hash: "h".into(),
            pack: "snap_p".into(),
            offset: 0,
            stamp: Stamp::of(&fs::metadata(&path).unwrap()),
        };
        settle(std::slice::from_ref(&entry));
        let index = Index::from_entries(vec![entry]);
        assert_eq!(
            index
                .unchanged(b"f", &fs::metadata(&path).unwrap())
                .map(|e| e.hash.as_str()),
            Some("h")
        );
        // Same size, rewritten in place right away.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all(b"two")
            .unwrap();
        assert_eq!(index.unchanged(b"f", &fs::metadata(&path).unwrap()), None);
        assert_eq!(
            index.unchanged(b"other", &fs::metadata(&path).unwrap()),
            None
        );
    }

    #[test]
    fn times_convert_both_ways_of_the_epoch() {
        assert_eq!(
            system_time(1_500_000_000),
            UNIX_EPOCH + Duration::from_millis(1500)
        );
        assert_eq!(
            system_time(-1_000_000_000),
            UNIX_EPOCH - Duration::from_secs(1)
        );
    }
}
