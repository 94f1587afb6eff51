//! Restoring a manifest into an empty directory.
//!
//! The manifest is validated first (plain relative paths, parents listed as directories
//! before their children), every entry is created relative to its parent directory
//! opened beneath `dest` (no symlink followed, any depth), files with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, and symlinks as links: nothing is written outside
//! `dest`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, Permissions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use sandkit_core::{Error, Result};

use crate::errors::{corrupt, io_error};
use crate::fsat;
use crate::snapshot::index::{IndexEntry, Nanos, Stamp};
use crate::snapshot::manifest::{Entry, Manifest};
use crate::snapshot::packs::{Packs, copy_range};
use crate::snapshot::parallel;

fn damaged(manifest: &Manifest, what: &str) -> Error {
    Error::snapshot_unavailable(format!(
        "local snapshot {} is damaged: {what}; reset the workspace or start from another \
         snapshot",
        manifest.id
    ))
}

/// Opens every pack the manifest reads from, checking each range lies inside its pack.
fn open_packs<'m>(manifest: &'m Manifest, packs: &Packs) -> Result<HashMap<&'m str, File>> {
    let mut open = HashMap::new();
    let mut lengths = HashMap::new();
    for name in manifest.packs() {
        let len = packs
            .len(name)
            .ok_or_else(|| damaged(manifest, &format!("its pack {name} is missing")))?;
        let file = packs
            .open(name)
            .map_err(|e| io_error(format!("opening snapshot pack {name}"), e))?;
        open.insert(name, file);
        lengths.insert(name, len);
    }
    for entry in &manifest.entries {
        if let Entry::File {
            pack, offset, size, ..
        } = entry
            && *size > 0
        {
            let fits = offset
                .checked_add(*size)
                .is_some_and(|end| lengths.get(pack.as_str()).is_some_and(|len| end <= *len));
            if !fits {
                return Err(damaged(manifest, &format!("pack {pack} is truncated")));
            }
        }
    }
    Ok(open)
}

/// Runs `op` on the parent directory of `rel` (opened beneath `root`) and the last
/// component of `rel`.
fn in_parent<R>(
    root: BorrowedFd<'_>,
    rel: &Path,
    op: impl FnOnce(BorrowedFd<'_>, &OsStr) -> io::Result<R>,
) -> io::Result<R> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        None => op(root, name),
        Some(parent) => {
            let dir = fsat::open_beneath(root, parent, OFlags::PATH | OFlags::DIRECTORY)?;
            op(dir.as_fd(), name)
        }
    }
}

/// Restores `manifest` into `dest`, which must not exist yet. Returns the stat cache
/// of the restored files. Every entry is created relative to its parent's descriptor,
/// so trees of any depth restore.
pub(crate) fn restore(manifest: &Manifest, packs: &Packs, dest: &Path) -> Result<Vec<IndexEntry>> {
    manifest
        .validate()
        .map_err(|reason| corrupt("local snapshot", &manifest.id, reason))?;
    let open = open_packs(manifest, packs)?;
    fs::create_dir(dest).map_err(|e| io_error("creating the session directory", e))?;
    let root = fsat::open_dir(dest).map_err(|e| io_error("opening the session directory", e))?;
    let mut files = Vec::new();
    for entry in &manifest.entries {
        let rel = entry.path().as_path();
        let at = || dest.join(rel).display().to_string();
        match entry {
            Entry::Dir { .. } => in_parent(root.as_fd(), rel, |dir, name| {
                Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?)
            })
            .map_err(|e| io_error(format!("restoring directory {}", at()), e))?,
            Entry::Symlink { target, .. } => in_parent(root.as_fd(), rel, |dir, name| {
                Ok(rustix::fs::symlinkat(target.as_path(), dir, name)?)
            })
            .map_err(|e| io_error(format!("restoring symlink {}", at()), e))?,
            Entry::File { .. } => files.push(entry),
        }
    }
    let index = parallel(&files, |entry| {
        restore_file(entry, &open, root.as_fd(), dest)
    })?;
    // Deepest directories first, after their contents, so their times and (possibly
    // read-only) modes are final.
    for entry in manifest.entries.iter().rev() {
        if let Entry::Dir {
            path,
            mode,
            mtime_ns,
        } = entry
        {
            finish_dir(root.as_fd(), path.as_path(), *mode, *mtime_ns).map_err(|e| {
                let at = dest.join(path.as_path());
                io_error(format!("restoring directory {}", at.display()), e)
            })?;
        }
    }
    Ok(index.into_iter().flatten().collect())
}

fn restore_file(
    entry: &Entry,
    packs: &HashMap<&str, File>,
    root: BorrowedFd<'_>,
    dest: &Path,
) -> Result<Option<IndexEntry>> {
    let Entry::File {
        path,
        mode,
        size,
        mtime_ns,
        hash,
        pack,
        offset,
    } = entry
    else {
        return Ok(None);
    };
    let written = (|| -> io::Result<IndexEntry> {
        let out = File::from(in_parent(root, path.as_path(), |dir, name| {
            Ok(rustix::fs::openat(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?)
        })?);
        if *size > 0 {
            let source = packs
                .get(pack.as_str())
                .ok_or_else(|| io::Error::other(format!("pack {pack} is not open")))?;
            copy_range(source, *offset, &out, 0, *size)?;
        }
        if let Some(time) = mtime_ns.system_time() {
            out.set_times(FileTimes::new().set_modified(time))?;
        }
        out.set_permissions(Permissions::from_mode(*mode))?;
        Ok(IndexEntry {
            path: path.clone(),
            hash: hash.clone(),
            pack: pack.clone(),
            offset: *offset,
            stamp: Stamp::of(&fsat::stat_fd(out.as_fd())?),
        })
    })();
    written.map(Some).map_err(|e| {
        let at = dest.join(path.as_path());
        io_error(format!("restoring {}", at.display()), e)
    })
}

fn finish_dir(root: BorrowedFd<'_>, rel: &Path, mode: u32, mtime: Nanos) -> io::Result<()> {
    let dir = File::from(fsat::open_beneath(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY,
    )?);
    if let Some(time) = mtime.system_time() {
        dir.set_times(FileTimes::new().set_modified(time))?;
    }
    dir.set_permissions(Permissions::from_mode(mode))
}
