//! The snapshot manifest: every entry of the captured tree; file contents are named by
//! BLAKE3 hash and located by pack and offset.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::layout::is_valid_id;
use crate::snapshot::index::Nanos;

/// Current manifest format.
pub(crate) const VERSION: u32 = 1;

/// Raw bytes of a path or symlink target. Stored as a JSON string when it is UTF-8,
/// as `{"b64": "..."}` otherwise, so any Unix name round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RawPath(pub(crate) Vec<u8>);

impl RawPath {
    #[cfg(test)]
    pub(crate) fn from_path(path: &Path) -> Self {
        RawPath(path.as_os_str().as_bytes().to_vec())
    }

    pub(crate) fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }

    /// The parent directory, `None` for top-level entries.
    pub(crate) fn parent(&self) -> Option<&[u8]> {
        self.0
            .iter()
            .rposition(|b| *b == b'/')
            .map(|i| &self.0[..i])
    }

    /// A relative path of plain components: no `..`, `.`, empty component, leading
    /// `/` or NUL.
    pub(crate) fn is_safe_relative(&self) -> bool {
        !self.0.is_empty()
            && !self.0.contains(&0)
            && self
                .0
                .split(|b| *b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
    }
}

impl Serialize for RawPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Encoded {
                b64: STANDARD.encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Encoded(Encoded),
        }
        match Repr::deserialize(d)? {
            Repr::Text(text) => Ok(RawPath(text.into_bytes())),
            Repr::Encoded(e) => STANDARD
                .decode(e.b64)
                .map(RawPath)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    b64: String,
}

/// One entry of the captured tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Entry {
    /// A directory (parents always come before their children).
    Dir {
        path: RawPath,
        mode: u32,
        mtime_ns: Nanos,
    },
    /// A regular file: its content (BLAKE3 `hash`) is `size` bytes at `offset` in `pack`.
    File {
        path: RawPath,
        mode: u32,
        size: u64,
        mtime_ns: Nanos,
        hash: String,
        pack: String,
        offset: u64,
    },
    /// A symbolic link, kept as a link (never followed).
    Symlink { path: RawPath, target: RawPath },
}

impl Entry {
    pub(crate) fn path(&self) -> &RawPath {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

/// An immutable snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    pub(crate) id: String,
    pub(crate) created_at: DateTime<Utc>,
    /// Session it was taken from.
    pub(crate) session: String,
    pub(crate) entries: Vec<Entry>,
}

/// Whether `hash` is a BLAKE3 hex digest (64 lowercase hex digits).
pub(crate) fn is_valid_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Manifest {
    /// Checks that restoring cannot write outside the destination: every path is a
    /// plain relative path, appears once, and its parent is a directory entry listed
    /// before it (so no entry is created through a symlink).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!("unknown manifest version {}", self.version));
        }
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(self.entries.len());
        let mut dirs: HashSet<&[u8]> = HashSet::new();
        for entry in &self.entries {
            let path = entry.path();
            let shown = String::from_utf8_lossy(&path.0);
            if !path.is_safe_relative() {
                return Err(format!("entry {shown:?} is not a plain relative path"));
            }
            if let Some(parent) = path.parent()
                && !dirs.contains(parent)
            {
                return Err(format!(
                    "entry {shown:?} does not follow a directory entry for its parent"
                ));
            }
            if !seen.insert(&path.0) {
                return Err(format!("entry {shown:?} appears twice"));
            }
            match entry {
                Entry::Dir { .. } => {
                    dirs.insert(&path.0);
                }
                Entry::File { hash, pack, .. } if !is_valid_hash(hash) || !is_valid_id(pack) => {
                    return Err(format!("entry {shown:?} has a malformed content reference"));
                }
                Entry::Symlink { target, .. } if target.0.is_empty() || target.0.contains(&0) => {
                    return Err(format!("symlink {shown:?} has an invalid target"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Packs this snapshot reads from (empty files read nothing).
    pub(crate) fn packs(&self) -> HashSet<&str> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::File { pack, size, .. } if *size > 0 => Some(pack.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(entries: Vec<Entry>) -> Manifest {
        Manifest {
            version: VERSION,
            id: "snap_t".into(),
            created_at: sandkit_core::now(),
            session: "sbx_t".into(),
            entries,
        }
    }

    fn dir(p: &str) -> Entry {
        Entry::Dir {
            path: RawPath(p.into()),
            mode: 0o755,
            mtime_ns: Nanos(0),
        }
    }

    fn file(p: &str) -> Entry {
        Entry::File {
            path: RawPath(p.into()),
            mode: 0o644,
            size: 0,
            mtime_ns: Nanos(0),
            hash: "0".repeat(64),
            pack: "snap_p".into(),
            offset: 0,
        }
    }

    fn link(p: &str, t: &str) -> Entry {
        Entry::Symlink {
            path: RawPath(p.into()),
            target: RawPath(t.into()),
        }
    }

    #[test]
    fn non_utf8_paths_round_trip() {
        let raw = RawPath(b"caf\xe9/x".to_vec());
        let json = serde_json::to_string(&raw).unwrap();
        assert!(json.contains("b64"), "{json}");
        assert_eq!(serde_json::from_str::<RawPath>(&json).unwrap(), raw);
        let text = RawPath(b"plain/name".to_vec());
        assert_eq!(serde_json::to_string(&text).unwrap(), "\"plain/name\"");
    }

    #[test]
    fn a_sane_tree_validates() {
        let m = manifest(vec![
            dir("a"),
            file("a/f"),
            link("a/out", "/etc/passwd"),
            link("up", "../../x"),
        ]);
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn escaping_entries_are_rejected() {
        for entries in [
            vec![file("../evil")],
            vec![file("/etc/evil")],
            vec![dir("a"), file("a/../../evil")],
            vec![file("./x")],
            vec![file("a//b")],
            // Writing through a symlink: `link` is not a directory entry.
            vec![link("link", "/etc"), file("link/passwd")],
            // A child before its parent.
            vec![file("d/x"), dir("d")],
            vec![file("x"), file("x")],
        ] {
            let m = manifest(entries.clone());
            assert!(m.validate().is_err(), "{entries:?}");
        }
    }
}
