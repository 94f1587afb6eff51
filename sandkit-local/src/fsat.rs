//! Filesystem access relative to directory descriptors: never through a symlink,
//! never across a mount, and at any depth (no path ever grows past `PATH_MAX`).
//!
//! Session trees are written by commands that may run as root, so a path inside them
//! can be swapped for a symlink or have something mounted on it at any time. Walks
//! hold the descriptor of each directory and name children relative to it; deeper
//! opens use `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`
//! (falling back to one `openat(O_NOFOLLOW)` per component where it is unavailable).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path};

use rustix::fs::{
    AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Statx, StatxAttributes, StatxFlags,
    StatxTimestamp,
};

use crate::snapshot::index::Nanos;

/// What the walks need to know about one directory entry (from `statx`, symlinks
/// not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) kind: FileType,
    /// `st_mode`, file type bits included.
    pub(crate) mode: u32,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime: Nanos,
    pub(crate) ctime: Nanos,
    dev: (u32, u32),
    /// Mount id (`None` before Linux 5.8).
    mnt_id: Option<u64>,
    /// The root of a mount (`None` when the kernel cannot tell).
    mount_root: Option<bool>,
}

impl Node {
    fn from_statx(st: &Statx) -> Node {
        let mask = StatxFlags::from_bits_retain(st.stx_mask);
        let known = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT);
        Node {
            kind: FileType::from_raw_mode(u32::from(st.stx_mode)),
            mode: u32::from(st.stx_mode),
            ino: st.stx_ino,
            size: st.stx_size,
            mtime: nanos(&st.stx_mtime),
            ctime: nanos(&st.stx_ctime),
            dev: (st.stx_dev_major, st.stx_dev_minor),
            mnt_id: mask.contains(StatxFlags::MNT_ID).then_some(st.stx_mnt_id),
            mount_root: known.then(|| st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)),
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    pub(crate) fn is_file(&self) -> bool {
        self.kind == FileType::RegularFile
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.kind == FileType::Symlink
    }

    /// Whether `self` (a child) lies on the same mount as `parent`: same device, same
    /// mount id, and not the root of a mount (a bind mount of a directory of the same
    /// filesystem has the same device but another mount id).
    pub(crate) fn same_mount_as(&self, parent: &Node) -> bool {
        self.dev == parent.dev
            && self.mount_root != Some(true)
            && match (self.mnt_id, parent.mnt_id) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

fn nanos(t: &StatxTimestamp) -> Nanos {
    Nanos::from_parts(t.tv_sec, t.tv_nsec)
}

const STATX_MASK: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::MNT_ID);

/// `statx` of `name` in `dir`, not following a symlink.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Node> {
    let st = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, STATX_MASK)?;
    Ok(Node::from_statx(&st))
}

/// `statx` of a path, not following a symlink as its last component.
#[cfg(test)]
pub(crate) fn stat_path(path: &Path) -> io::Result<Node> {
    let st = rustix::fs::statx(rustix::fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW, STATX_MASK)?;
    Ok(Node::from_statx(&st))
}

/// `statx` of an open descriptor.
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Node> {
    let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, STATX_MASK)?;
    Ok(Node::from_statx(&st))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens a directory by path; a symlink as the last component is refused (`ELOOP` or
/// `ENOTDIR`).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, DIR_FLAGS, Mode::empty())?)
}

/// Opens the directory `name` of `dir`, never through a symlink.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// The names in a directory (without `.` and `..`), sorted.
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Opens `rel` (a relative path of plain components) under `root` with `flags`,
/// refusing symlinks in any component, mount crossings and `..`.
pub(crate) fn open_beneath(root: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    plain_components(rel)?;
    if rel.as_os_str().is_empty() {
        return Ok(rustix::fs::openat(root, c".", flags, Mode::empty())?);
    }
    if rel.as_os_str().len() < PATH_LIMIT {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
        match rustix::fs::openat2(root, rel, flags, Mode::empty(), resolve) {
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {}
            // EAGAIN: a rename raced the lookup; the slower walk below settles it.
            Err(e) if e == rustix::io::Errno::AGAIN => {}
            other => return Ok(other?),
        }
    }
    open_by_components(root, rel, flags)
}

/// Longest relative path handed to `openat2` (it is bounded by `PATH_MAX`).
const PATH_LIMIT: usize = 4000;

fn open_by_components(root: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let names = plain_components(rel)?;
    let Some((last, parents)) = names.split_last() else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let root_node = stat_fd(root)?;
    let mut current: Option<OwnedFd> = None;
    for name in parents {
        let dir = current.as_ref().map_or(root, AsFd::as_fd);
        let next = open_dir_at(dir, name)?;
        if !stat_fd(next.as_fd())?.same_mount_as(&root_node) {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        current = Some(next);
    }
    let dir = current.as_ref().map_or(root, AsFd::as_fd);
    let fd = rustix::fs::openat(dir, *last, flags, Mode::empty())?;
    if !stat_fd(fd.as_fd())?.same_mount_as(&root_node) {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(fd)
}

/// The components of a relative path of plain names.
pub(crate) fn plain_components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{:?} is not a plain relative path",
                    rel.as_os_str().as_bytes()
                ),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn opening_beneath_refuses_symlinks_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "x").unwrap();
        symlink(dir.path(), root.join("a/up")).unwrap();
        let fd = open_dir(&root).unwrap();
        assert!(open_beneath(fd.as_fd(), Path::new("a/b/f"), OFlags::RDONLY).is_ok());
        assert!(open_by_components(fd.as_fd(), Path::new("a/b/f"), OFlags::RDONLY).is_ok());
        for bad in ["a/up/root", "a/up", "../root", "a/../a/b/f"] {
            assert!(
                open_beneath(fd.as_fd(), Path::new(bad), OFlags::RDONLY).is_err(),
                "{bad}"
            );
            assert!(
                open_by_components(fd.as_fd(), Path::new(bad), OFlags::RDONLY).is_err(),
                "{bad}"
            );
        }
        // A symlink named as the directory itself is refused too.
        symlink(&root, dir.path().join("link")).unwrap();
        assert!(open_dir(&dir.path().join("link")).is_err());
    }

    #[test]
    fn listing_is_sorted_and_skips_dots() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a", "c"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let fd = open_dir(dir.path()).unwrap();
        assert_eq!(list(fd.as_fd()).unwrap(), ["a", "b", "c"]);
        let node = stat_at(fd.as_fd(), OsStr::new("a")).unwrap();
        assert!(node.is_file() && node.same_mount_as(&stat_fd(fd.as_fd()).unwrap()));
    }
}
