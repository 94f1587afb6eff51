//! Deleting ended session directories without ever leaving them.
//!
//! Mounts under the directory are detached first; the deletion itself walks directory
//! descriptors, never follows a symlink, never descends into another mount (a mount
//! that could not be detached is left in place) and works at any depth.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::fsat::{self, Node};
use crate::mounts;

/// One directory being emptied: its descriptor, what is left to delete in it, and its
/// name in its parent.
struct Frame {
    fd: OwnedFd,
    names: std::vec::IntoIter<OsString>,
    name: Option<OsString>,
}

/// Deletes `path` (a directory tree or a file). Failures are logged, never returned:
/// this runs in the background on directories nobody uses any more.
pub(crate) fn remove_tree(path: &Path) {
    match try_remove_tree(path) {
        Ok(()) => {}
        // Removed concurrently (another cleanup, a sweep): it is gone, which is the goal.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not delete an ended session directory")
        }
    }
}

/// Deletes `path`; a missing path is fine.
pub(crate) fn try_remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let stuck = mounts::detach_under(path);
    if stuck > 0 {
        tracing::warn!(path = %path.display(), mounts = stuck, "mounts inside a session directory could not be detached; they are skipped");
    }
    let root = match fsat::open_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            reopen_granted(rustix::fs::open(path, O_PATH_DIR, Mode::empty())?)?
        }
        other => other?,
    };
    let root_node = fsat::stat_fd(root.as_fd())?;
    if let Some(parent) = path.parent().and_then(|p| fsat::open_dir(p).ok())
        && !root_node.same_mount_as(&fsat::stat_fd(parent.as_fd())?)
    {
        return Err(io::Error::other(
            "it is a mount point that could not be detached; unmount it by hand",
        ));
    }
    empty(root, &root_node)?;
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Deletes everything under the directory `root` that lies on its mount.
fn empty(root: OwnedFd, root_node: &Node) -> io::Result<()> {
    let mut first_error: Option<io::Error> = None;
    let mut note = |e: io::Error| {
        first_error.get_or_insert(e);
    };
    let mut stack = vec![open_frame(root, None)?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            let done = stack.pop().and_then(|f| f.name);
            if let (Some(parent), Some(name)) = (stack.last(), done)
                && let Err(e) = rustix::fs::unlinkat(parent.fd.as_fd(), &name, AtFlags::REMOVEDIR)
                && e != rustix::io::Errno::NOENT
            {
                note(e.into());
            }
            continue;
        };
        let node = match fsat::stat_at(top.fd.as_fd(), &name) {
            Ok(node) => node,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                note(e);
                continue;
            }
        };
        if !node.is_dir() {
            match rustix::fs::unlinkat(top.fd.as_fd(), &name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => note(e.into()),
            }
            continue;
        }
        if !node.same_mount_as(root_node) {
            tracing::warn!(entry = ?name, "not deleting a mount inside an ended session directory");
            continue;
        }
        let child =
            open_dir_to_empty(top.fd.as_fd(), &name).and_then(|fd| open_frame(fd, Some(name)));
        match child {
            Ok(frame) => stack.push(frame),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => note(e),
        }
    }
    first_error.map_or(Ok(()), Err)
}

const O_PATH_DIR: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory `name` of `dir` (never through a symlink) to empty it, first
/// giving its owner access if a command left it unreadable (`chmod 000`).
fn open_dir_to_empty(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    match fsat::open_dir_at(dir, name) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            reopen_granted(rustix::fs::openat(dir, name, O_PATH_DIR, Mode::empty())?)
        }
        other => other,
    }
}

/// Adds read, write and search permission for its owner to the directory opened as
/// `opened` (`O_PATH`, which needs no permission on the directory itself), then opens
/// it for reading. The mode is changed through the descriptor's `/proc/self/fd` link
/// (`fchmod` does not take an `O_PATH` descriptor): it names the very directory opened,
/// never a symlink swapped in since.
fn reopen_granted(opened: OwnedFd) -> io::Result<OwnedFd> {
    let node = fsat::stat_fd(opened.as_fd())?;
    let link = format!("/proc/self/fd/{}", opened.as_raw_fd());
    rustix::fs::chmod(link, Mode::from_raw_mode((node.mode & 0o7777) | 0o700))?;
    fsat::open_dir_at(opened.as_fd(), OsStr::new("."))
}

/// Lists a directory to delete, first making it writable and searchable by its owner
/// (a command may have left it read-only).
fn open_frame(fd: OwnedFd, name: Option<OsString>) -> io::Result<Frame> {
    let node = fsat::stat_fd(fd.as_fd())?;
    if node.mode & 0o700 != 0o700 {
        let _ = rustix::fs::fchmod(
            fd.as_fd(),
            Mode::from_raw_mode((node.mode & 0o7777) | 0o700),
        );
    }
    let names = fsat::list(fd.as_fd())?.into_iter();
    Ok(Frame { fd, names, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn read_only_trees_are_deleted_but_symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "kept").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("ro/sub")).unwrap();
        std::fs::write(tree.join("ro/sub/f"), "x").unwrap();
        symlink(&outside, tree.join("ro/link")).unwrap();
        std::fs::set_permissions(tree.join("ro/sub"), std::fs::Permissions::from_mode(0o500))
            .unwrap();
        std::fs::set_permissions(tree.join("ro"), std::fs::Permissions::from_mode(0o000)).unwrap();
        try_remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "kept"
        );
        try_remove_tree(&tree).unwrap();
    }

    #[test]
    fn a_tree_removed_concurrently_is_success_not_an_error() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let tree = dir.path().join("tree");
            for i in 0..60 {
                let sub = tree.join(format!("d{i}/e/f"));
                std::fs::create_dir_all(&sub).unwrap();
                for j in 0..4 {
                    std::fs::write(sub.join(format!("f{j}")), "x").unwrap();
                }
            }
            let results: Vec<io::Result<()>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| try_remove_tree(&tree)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for result in results {
                result.unwrap();
            }
            assert!(!tree.exists());
        }
    }

    /// Runs `f` on this thread without the capabilities that bypass file permissions,
    /// as a provider not running as root would (a no-op when not root).
    fn without_permission_override<R>(f: impl FnOnce() -> R) -> R {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let before = capabilities(None).unwrap();
        let mut limited = before;
        limited
            .effective
            .remove(CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH);
        set_capabilities(None, limited).unwrap();
        let out = f();
        set_capabilities(None, before).unwrap();
        out
    }

    #[test]
    fn directories_left_unreadable_are_deleted_without_root_privileges() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("locked/sub")).unwrap();
        std::fs::write(tree.join("locked/sub/f"), "x").unwrap();
        std::fs::set_permissions(
            tree.join("locked/sub"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        std::fs::set_permissions(tree.join("locked"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o000)).unwrap();
        without_permission_override(|| try_remove_tree(&tree)).unwrap();
        assert!(!tree.exists());
    }
}
