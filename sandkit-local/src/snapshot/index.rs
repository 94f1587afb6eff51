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
use std::fmt;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fsat::Node;
use crate::snapshot::manifest::RawPath;
use crate::snapshot::packs::Location;

/// Longest kernel timestamp granularity (one tick at HZ=100).
const TICK: Duration = Duration::from_millis(10);

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A file time in nanoseconds since the epoch. Wide enough for any time a filesystem
/// stores (`i64` nanoseconds only span the years 1677–2262). Stored as a JSON integer
/// when it fits in an `i64` (the original format), as a decimal string otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Nanos(pub(crate) i128);

impl Nanos {
    /// Seconds and nanoseconds since the epoch (as `statx` reports them).
    pub(crate) fn from_parts(secs: i64, nanos: u32) -> Nanos {
        Nanos(i128::from(secs) * NANOS_PER_SEC + i128::from(nanos))
    }

    /// As a `SystemTime`; `None` when it does not fit one.
    pub(crate) fn system_time(self) -> Option<SystemTime> {
        let secs = u64::try_from(self.0.div_euclid(NANOS_PER_SEC).unsigned_abs()).ok()?;
        let nanos = u32::try_from(self.0.rem_euclid(NANOS_PER_SEC)).ok()?;
        if self.0 >= 0 {
            UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
        } else {
            // -secs s + nanos ns
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs))?
                .checked_add(Duration::from_nanos(u64::from(nanos)))
        }
    }
}

impl Serialize for Nanos {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(self.0) {
            Ok(small) => s.serialize_i64(small),
            Err(_) => s.serialize_str(&self.0.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Nanos;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nanoseconds since the epoch (an integer or a decimal string)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Nanos, E> {
                Ok(Nanos(i128::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Nanos, E> {
                Ok(Nanos(i128::from(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Nanos, E> {
                v.parse().map(Nanos).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The `stat` fields that identify a file's content version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stamp {
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime_ns: Nanos,
    pub(crate) ctime_ns: Nanos,
}

impl Stamp {
    pub(crate) fn of(node: &Node) -> Stamp {
        Stamp {
            ino: node.ino,
            size: node.size,
            mode: node.mode,
            mtime_ns: node.mtime,
            ctime_ns: node.ctime,
        }
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
    pub(crate) fn unchanged(&self, path: &[u8], node: &Node) -> Option<&IndexEntry> {
        self.by_path
            .get(path)
            .filter(|entry| entry.stamp == Stamp::of(node))
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
    let Some(safe) = newest.system_time().and_then(|t| t.checked_add(TICK)) else {
        return;
    };
    if let Ok(wait) = safe.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsat::stat_path;
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
            stamp: Stamp::of(&stat_path(&path).unwrap()),
        };
        settle(std::slice::from_ref(&entry));
        let index = Index::from_entries(vec![entry]);
        assert_eq!(
            index
                .unchanged(b"f", &stat_path(&path).unwrap())
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
        assert_eq!(index.unchanged(b"f", &stat_path(&path).unwrap()), None);
        assert_eq!(index.unchanged(b"other", &stat_path(&path).unwrap()), None);
    }

    #[test]
    fn times_convert_both_ways_of_the_epoch() {
        assert_eq!(
            Nanos(1_500_000_000).system_time(),
            Some(UNIX_EPOCH + Duration::from_millis(1500))
        );
        assert_eq!(
            Nanos(-1_000_000_000).system_time(),
            Some(UNIX_EPOCH - Duration::from_secs(1))
        );
        assert_eq!(
            Nanos(-1_500_000_000).system_time(),
            Some(UNIX_EPOCH - Duration::from_millis(1500))
        );
        assert_eq!(Nanos(i128::MAX).system_time(), None);
    }

    #[test]
    fn times_beyond_2262_survive_json() {
        // 2300-01-01 and 1600-01-01: outside what i64 nanoseconds can hold.
        for secs in [10_413_792_000_i64, -11_676_096_000] {
            let t = Nanos::from_parts(secs, 123);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Nanos>(&json).unwrap(), t, "{json}");
        }
        // The original format (an integer) still reads.
        assert_eq!(serde_json::from_str::<Nanos>("42").unwrap(), Nanos(42));
        assert_eq!(serde_json::to_string(&Nanos(42)).unwrap(), "42");
    }
}
