//! Mounts that commands made inside a session directory.
//!
//! Commands share the host's mount namespace, so a root command can bind-mount a host
//! directory into its session. Such mounts are detached (`umount2(MNT_DETACH)`, deepest
//! first) before the session directory is moved or deleted, so deleting a session
//! never empties a host directory. Deletion also refuses to cross mounts on its own
//! (see [`crate::removal`]), in case detaching is not permitted.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::mount::{UnmountFlags, unmount};

/// Rounds of detaching: a mount point may hold several stacked mounts.
const MAX_ROUNDS: usize = 16;

/// The mount points of this process's mount namespace (from `/proc/self/mountinfo`).
fn mount_points() -> Vec<PathBuf> {
    let Ok(raw) = std::fs::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    raw.split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .map(|field| PathBuf::from(OsString::from_vec(unescape(field))))
        .collect()
}

/// Decodes the octal escapes (`\040` for a space, …) of a `mountinfo` field.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// Mount points at or under `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&real))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().as_bytes().len()));
    found.dedup();
    found
}

/// Detaches every mount at or under `dir`. Returns how many mounts could not be
/// detached (deletion then skips them).
pub(crate) fn detach_under(dir: &Path) -> usize {
    let mut left = Vec::new();
    for _ in 0..MAX_ROUNDS {
        left = mounts_under(dir);
        if left.is_empty() {
            return 0;
        }
        let mut progressed = false;
        for mount in &left {
            match unmount(mount, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
                Ok(()) => {
                    tracing::info!(mount = %mount.display(), "detached a mount a command left in its session");
                    progressed = true;
                }
                Err(e) => {
                    tracing::warn!(mount = %mount.display(), error = %e, "could not detach a mount inside a session; it is left in place and not deleted");
                }
            }
        }
        if !progressed {
            break;
        }
    }
    left.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_decode() {
        assert_eq!(unescape(br"/a\040b\011c\134d"), b"/a b\tc\\d");
        assert_eq!(unescape(br"/plain\x"), b"/plain\\x");
        assert_eq!(unescape(br"\04"), b"\\04");
    }

    #[test]
    fn the_root_mount_is_listed_and_nothing_is_under_a_fresh_dir() {
        assert!(mount_points().iter().any(|m| m == Path::new("/")));
        let dir = tempfile::tempdir().unwrap();
        assert!(mounts_under(dir.path()).is_empty());
        assert_eq!(detach_under(dir.path()), 0);
    }
}
