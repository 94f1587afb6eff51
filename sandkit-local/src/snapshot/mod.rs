//! Snapshots: content-addressed, incremental, immutable.
//!
//! A snapshot is a manifest (`snapshots/<id>`, JSON) listing every directory, file and
//! symlink of a session's working directory with modes and times. File contents are
//! named by BLAKE3 hash and stored in packs (`objects/<snapshot id>.pack`): each
//! snapshot writes one pack holding only the contents not stored yet, and files
//! unchanged since the session was restored are not even read (see [`index`]), so an
//! incremental snapshot costs about what changed. Restoring copies byte ranges of the
//! packs into place in the kernel (`copy_file_range`).
//!
//! Packs and manifests are written to temporary names and renamed into place, so a
//! failure (disk full, permissions) leaves every earlier snapshot intact. A shared
//! lock on `store.lock` is held while snapshots are written or restored; deleting a
//! snapshot takes it exclusively to delete the packs no manifest references.

mod capture;
pub(crate) mod index;
pub(crate) mod manifest;
mod packs;
mod restore;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use sandkit_core::{Error, ErrorKind, Result};

use crate::errors::{corrupt, io_error, snapshot_gone};
use crate::layout::{Layout, is_valid_id, new_id};
use index::{Index, IndexEntry};
use manifest::{Manifest, VERSION};
use packs::Packs;

/// The snapshot store under a provider root.
#[derive(Debug, Clone)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    packs: Packs,
    lock: PathBuf,
}

/// Files to split across worker threads below this count are handled inline.
const INLINE_BELOW: usize = 8;

/// Captures tried when files change while they are captured.
const CAPTURE_ATTEMPTS: usize = 3;

impl Snapshots {
    pub(crate) fn new(layout: &Layout) -> Self {
        Snapshots {
            dir: layout.snapshots(),
            packs: Packs::new(layout.objects()),
            lock: layout.store_lock(),
        }
    }

    pub(crate) fn init(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        self.packs.init()
    }

    fn lock_file(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock)
            .map_err(|e| io_error("opening the snapshot store lock", e))
    }

    fn shared(&self) -> Result<File> {
        let f = self.lock_file()?;
        f.lock_shared()
            .map_err(|e| io_error("locking the snapshot store", e))?;
        Ok(f)
    }

    fn exclusive(&self) -> Result<File> {
        let f = self.lock_file()?;
        f.lock()
            .map_err(|e| io_error("locking the snapshot store", e))?;
        Ok(f)
    }

    /// Where the snapshot each session ended with is recorded (a file named after the
    /// session holding the snapshot id), so a commit whose process died after the
    /// snapshot can still find it. Not a valid id, so listings skip it.
    fn by_session(&self) -> PathBuf {
        self.dir.join(".by-session")
    }

    /// Records that `session` ended with snapshot `id` (best effort: without it, a
    /// commit that dies right now loses the work, as it did before).
    fn record_session(&self, session: &str, id: &str) {
        let dir = self.by_session();
        let tmp = dir.join(format!(".{session}.tmp"));
        let written = fs::create_dir_all(&dir)
            .and_then(|()| fs::write(&tmp, id))
            .and_then(|()| fs::rename(&tmp, dir.join(session)));
        if let Err(e) = written {
            tracing::warn!(session, snapshot = id, error = %e, "could not record which snapshot a session ended with");
        }
    }

    /// Whether snapshot `id` exists (its manifest does).
    pub(crate) fn exists(&self, id: &str) -> bool {
        is_valid_id(id) && self.manifest_path(id).exists()
    }

    /// The snapshot `session` ended with, if it still exists.
    pub(crate) fn of_session(&self, session: &str) -> Result<Option<String>> {
        if !is_valid_id(session) {
            return Ok(None);
        }
        let id = match fs::read_to_string(self.by_session().join(session)) {
            Ok(id) => id,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading which snapshot a session ended with", e)),
        };
        Ok(self.exists(&id).then_some(id))
    }

    /// Drops the session records whose snapshot no longer exists.
    fn sweep_session_records(&self) {
        for entry in fs::read_dir(self.by_session())
            .into_iter()
            .flatten()
            .flatten()
        {
            let gone = fs::read_to_string(entry.path())
                .map(|id| !is_valid_id(&id) || !self.manifest_path(&id).exists())
                .unwrap_or(false);
            if gone {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Captures `work` as a new snapshot of `session`; returns its id. `index` is the
    /// stat cache of the restore the session started from (see [`index`]).
    pub(crate) fn create(&self, session: &str, work: &Path, index: &Path) -> Result<String> {
        let _lock = self.shared()?;
        let id = new_id("snap");
        let mut attempt = 1;
        let captured = loop {
            match capture::capture(work, || Index::load(index), &self.packs, &id) {
                Err(e) if e.kind() == &ErrorKind::Conflict && attempt < CAPTURE_ATTEMPTS => {
                    tracing::debug!(session, attempt, error = %e, "files changed during a snapshot; capturing again");
                    attempt += 1;
                }
                other => break other?,
            }
        };
        let manifest = Manifest {
            version: VERSION,
            id,
            created_at: sandkit_core::now(),
            session: session.to_owned(),
            entries: captured.entries,
        };
        let published = captured.pack.map(packs::PackWriter::publish).transpose()?;
        if let Err(e) = self.write_manifest(&manifest) {
            if published.is_some() {
                let _ = fs::remove_file(self.packs.path(&manifest.id));
            }
            return Err(e);
        }
        self.record_session(session, &manifest.id);
        Ok(manifest.id)
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let json = serde_json::to_vec(manifest).map_err(|e| {
            Error::provider(
                None,
                Some("internal".to_owned()),
                format!("local provider: cannot encode a snapshot manifest: {e}"),
            )
        })?;
        let tmp = self.dir.join(format!(".{}.tmp", manifest.id));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&json)?;
            fs::rename(&tmp, self.manifest_path(&manifest.id))
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_error("writing the snapshot manifest", e)
        })
    }

    fn read_manifest(&self, id: &str) -> Result<Manifest> {
        if !is_valid_id(id) {
            return Err(snapshot_gone(id));
        }
        let raw = match fs::read(self.manifest_path(id)) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(snapshot_gone(id)),
            Err(e) => return Err(io_error("reading the snapshot manifest", e)),
        };
        serde_json::from_slice(&raw).map_err(|e| corrupt("local snapshot", id, e))
    }

    /// Deletes temporary manifests and packs older than `age` that crashed snapshots
    /// left behind. Returns how many were deleted.
    pub(crate) fn clean_leftovers(&self, age: Duration) -> usize {
        let manifests = old_entries(&self.dir, age)
            .filter(|(name, _)| name.starts_with('.') && name.ends_with(".tmp"));
        let tmp_packs = self.packs.tmp_dir();
        let packs = old_entries(&tmp_packs, age);
        let mut removed = 0;
        for (_, path) in manifests.chain(packs) {
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "could not delete a leftover snapshot file")
                }
            }
        }
        removed
    }

    /// Restores snapshot `id` into `dest` (which must not exist); returns the stat
    /// cache of the restored files, already settled (see [`index::settle`]).
    pub(crate) fn restore(&self, id: &str, dest: &Path) -> Result<Vec<IndexEntry>> {
        let _lock = self.shared()?;
        let manifest = self.read_manifest(id)?;
        let entries = restore::restore(&manifest, &self.packs, dest)?;
        index::settle(&entries);
        Ok(entries)
    }

    /// Deletes snapshot `id` (a missing one is fine) and every pack no remaining
    /// snapshot reads from.
    pub(crate) fn delete(&self, id: &str) -> Result<()> {
        if !is_valid_id(id) {
            return Ok(());
        }
        let _lock = self.exclusive()?;
        match fs::remove_file(self.manifest_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("deleting the snapshot manifest", e)),
        }
        // The snapshot is gone; deleting its packs and records is best effort.
        self.sweep_session_records();
        match self.referenced().and_then(|keep| self.packs.sweep(&keep)) {
            Ok(removed) => tracing::debug!(snapshot = id, removed, "deleted local snapshot"),
            Err(e) => {
                tracing::warn!(snapshot = id, error = %e, "deleted local snapshot but kept its packs")
            }
        }
        Ok(())
    }

    /// Every snapshot (id, when its manifest was written).
    pub(crate) fn list(&self) -> Result<Vec<(String, SystemTime)>> {
        let listing = fs::read_dir(&self.dir).map_err(|e| io_error("listing snapshots", e))?;
        let mut out = Vec::new();
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|n| is_valid_id(n)) else {
                continue;
            };
            let written = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| io_error("reading a snapshot manifest's time", e))?;
            out.push((id.to_owned(), written));
        }
        Ok(out)
    }

    fn referenced(&self) -> Result<HashSet<String>> {
        let mut keep = HashSet::new();
        let listing = fs::read_dir(&self.dir).map_err(|e| io_error("listing snapshots", e))?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|n| is_valid_id(n)) else {
                continue;
            };
            // An unreadable manifest fails the sweep rather than losing its packs.
            let manifest = self.read_manifest(id)?;
            keep.extend(manifest.packs().into_iter().map(str::to_owned));
        }
        Ok(keep)
    }
}

/// Entries of `dir` (name, path) last modified more than `age` ago.
pub(crate) fn old_entries(
    dir: &Path,
    age: Duration,
) -> impl Iterator<Item = (String, PathBuf)> + use<> {
    let now = SystemTime::now();
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(move |e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d > age))
        })
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
}

/// Runs `work` on every item on up to `available_parallelism` threads, keeping order.
/// Stops at the first error and returns it.
pub(crate) fn parallel<T, R, F>(items: &[T], work: F) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R> + Sync,
{
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(items.len());
    if threads <= 1 || items.len() < INLINE_BELOW {
        return items.iter().map(&work).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        match work(item) {
                            Ok(r) => done.push((i, r)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                let mut slot = first_error
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                slot.get_or_insert(e);
                            }
                        }
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    results.sort_unstable_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests;
