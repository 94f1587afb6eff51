//! Restoring a manifest into an empty directory.
//!
//! The manifest is validated first (plain relative paths, parents listed as directories
//! before their children), files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and
//! symlinks are created as links, never followed: nothing is written outside `dest`.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sandkit_core::{Error, Result};

use crate::errors::{corrupt, io_error};
use crate::snapshot::index::{IndexEntry, Stamp, system_time};
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

/// Restores `manifest` into `dest`, which must not exist yet. Returns the stat cache
/// of the restored files.
pub(crate) fn restore(manifest: &Manifest, packs: &Packs, dest: &Path) -> Result<Vec<IndexEntry>> {
    manifest
        .validate()
        .map_err(|reason| corrupt("local snapshot", &manifest.id, reason))?;
    let open = open_packs(manifest, packs)?;
    fs::create_dir(dest).map_err(|e| io_error("creating the session directory", e))?;
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    let mut files = Vec::new();
    for entry in &manifest.entries {
        let at = dest.join(entry.path().as_path());
        match entry {
            Entry::Dir { .. } => builder
                .create(&at)
                .map_err(|e| io_error(format!("restoring directory {}", at.display()), e))?,
            Entry::Symlink { target, .. } => std::os::unix::fs::symlink(target.as_path(), &at)
                .map_err(|e| io_error(format!("restoring symlink {}", at.display()), e))?,
            Entry::File { .. } => files.push(entry),
        }
    }
    let index = parallel(&files, |entry| restore_file(entry, &open, dest))?;
    // Deepest directories first, after their contents, so their times and (possibly
    // read-only) modes are final.
    for entry in manifest.entries.iter().rev() {
        if let Entry::Dir {
            path,
            mode,
            mtime_ns,
        } = entry
        {
            let at = dest.join(path.as_path());
            finish_dir(&at, *mode, *mtime_ns)
                .map_err(|e| io_error(format!("restoring directory {}", at.display()), e))?;
        }
    }
    Ok(index.into_iter().flatten().collect())
}

fn restore_file(
    entry: &Entry,
    packs: &HashMap<&str, File>,
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
    let at = dest.join(path.as_path());
    let written = (|| -> io::Result<IndexEntry> {
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&at)?;
        if *size > 0 {
            let source = packs
                .get(pack.as_str())
                .ok_or_else(|| io::Error::other(format!("pack {pack} is not open")))?;
            copy_range(source, *offset, &out, 0, *size)?;
        }
        out.set_times(FileTimes::new().set_modified(system_time(*mtime_ns)))?;
        out.set_permissions(Permissions::from_mode(*mode))?;
        Ok(IndexEntry {
            path: path.clone(),
            hash: hash.clone(),
            pack: pack.clone(),
            offset: *offset,
            stamp: Stamp::of(&out.metadata()?),
        })
    })();
    written
        .map(Some)
        .map_err(|e| io_error(format!("restoring {}", at.display()), e))
}

fn finish_dir(at: &Path, mode: u32, mtime_ns: i64) -> io::Result<()> {
    let dir = File::open(at)?;
    dir.set_times(FileTimes::new().set_modified(system_time(mtime_ns)))?;
    dir.set_permissions(Permissions::from_mode(mode))
}
