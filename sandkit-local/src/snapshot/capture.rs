//! Capturing a session directory into manifest entries and a pack.
//!
//! The tree is walked without following symlinks; a symlink is recorded with its
//! target, whatever it points at. Files are opened with `O_NOFOLLOW`, so a file swapped
//! for a symlink mid-walk is refused instead of followed.
//!
//! Files unchanged since the session was restored (per the stat cache) are not read.
//! Other files are hashed; a content already stored (in the parent snapshot or earlier
//! in this one) is referenced again, only new contents are copied into the new pack.

use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sandkit_core::{Error, Result};

use crate::errors::io_error;
use crate::snapshot::index::{Index, mtime_ns};
use crate::snapshot::manifest::{Entry, RawPath};
use crate::snapshot::packs::{Digest, Location, PackWriter, Packs, copy_range, hash_file};
use crate::snapshot::parallel;

/// Permission bits kept (including setuid/setgid/sticky).
pub(crate) const MODE_BITS: u32 = 0o7777;

/// A file whose content must be hashed (and stored when new).
struct Pending {
    slot: usize,
    abs: PathBuf,
}

/// A new content to copy into the pack.
struct Copy {
    abs: PathBuf,
    offset: u64,
    size: u64,
}

/// What a capture produced: the entries, and the pack of new contents (not yet
/// published) when there were any.
pub(crate) struct Captured {
    pub(crate) entries: Vec<Entry>,
    pub(crate) pack: Option<PackWriter>,
}

/// Walks `work` into entries; new contents go to pack `pack_name`. The stat cache is
/// loaded by `load_index` while the tree is walked.
pub(crate) fn capture(
    work: &Path,
    load_index: impl FnOnce() -> Index + Send,
    packs: &Packs,
    pack_name: &str,
) -> Result<Captured> {
    let mut entries = Vec::new();
    let mut pending = Vec::new();
    let (walked, index) = std::thread::scope(|scope| {
        let index = scope.spawn(load_index);
        let walked = walk(work);
        let index = index
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (walked, index)
    });
    // Lengths of the packs the stat cache points into (`None`: deleted since). An empty
    // content needs no pack.
    let mut pack_lens: HashMap<String, Option<u64>> = HashMap::new();
    let mut stored = |pack: &str, offset: u64, size: u64| {
        if size == 0 {
            return true;
        }
        let len = match pack_lens.get(pack) {
            Some(len) => *len,
            None => {
                let len = packs.len(pack);
                pack_lens.insert(pack.to_owned(), len);
                len
            }
        };
        len.is_some_and(|len| offset.saturating_add(size) <= len)
    };
    for item in walked? {
        let rel = item
            .abs
            .strip_prefix(work)
            .map_err(|_| Error::invalid_input("a snapshot entry is outside the session"))?;
        let path = RawPath::from_path(rel);
        let md = item.metadata;
        let kind = md.file_type();
        if kind.is_dir() {
            entries.push(Entry::Dir {
                path,
                mode: md.mode() & MODE_BITS,
                mtime_ns: mtime_ns(&md),
            });
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&item.abs)
                .map_err(|e| io_error(format!("reading link {}", item.abs.display()), e))?;
            entries.push(Entry::Symlink {
                path,
                target: RawPath::from_path(&target),
            });
        } else if kind.is_file() {
            let cached = index
                .unchanged(&path.0, &md)
                .filter(|e| stored(&e.pack, e.offset, e.stamp.size));
            let (hash, pack, offset) = match cached {
                Some(e) => (e.hash.clone(), e.pack.clone(), e.offset),
                None => {
                    pending.push(Pending {
                        slot: entries.len(),
                        abs: item.abs,
                    });
                    (String::new(), String::new(), 0)
                }
            };
            entries.push(Entry::File {
                path,
                mode: md.mode() & MODE_BITS,
                size: md.size(),
                mtime_ns: mtime_ns(&md),
                hash,
                pack,
                offset,
            });
        } else {
            tracing::warn!(path = %rel.display(), "skipping a special file (socket, fifo or device) in the snapshot");
        }
    }
    if pending.is_empty() {
        return Ok(Captured {
            entries,
            pack: None,
        });
    }
    let digests = parallel(&pending, |p| digest(&p.abs))?;
    // Contents already stored (by the parent snapshot, or earlier in this one).
    let mut known: HashMap<String, Location> = index
        .entries()
        .map(|e| (e.hash.clone(), e.location()))
        .filter(|(_, l)| stored(&l.pack, l.offset, l.size))
        .collect();
    let mut cursor = 0;
    let mut copies = Vec::new();
    for (p, d) in pending.iter().zip(digests) {
        let location = match known.get(&d.hash) {
            Some(l) if l.size == d.size => l.clone(),
            _ => {
                let l = Location {
                    pack: pack_name.to_owned(),
                    offset: cursor,
                    size: d.size,
                };
                cursor += d.size;
                if d.size > 0 {
                    copies.push(Copy {
                        abs: p.abs.clone(),
                        offset: l.offset,
                        size: d.size,
                    });
                }
                known.insert(d.hash.clone(), l.clone());
                l
            }
        };
        if let Some(Entry::File {
            size,
            hash,
            pack,
            offset,
            ..
        }) = entries.get_mut(p.slot)
        {
            *size = d.size;
            *hash = d.hash;
            *pack = location.pack;
            *offset = location.offset;
        }
    }
    if copies.is_empty() {
        return Ok(Captured {
            entries,
            pack: None,
        });
    }
    let writer = packs.create(pack_name, cursor)?;
    parallel(&copies, |c| copy_in(c, &writer.file))?;
    Ok(Captured {
        entries,
        pack: Some(writer),
    })
}

/// One entry of the tree.
struct Item {
    abs: PathBuf,
    metadata: Metadata,
}

/// Lists `root` depth-first in file-name order without following symlinks, `stat`ing
/// every entry relative to its directory (`fstatat`, much cheaper than resolving full
/// paths). Top-level entries (and the subtrees under them) are spread over threads.
fn walk(root: &Path) -> Result<Vec<Item>> {
    let top = list(root)?;
    let subtrees = parallel(&top, |entry| {
        let mut items = Vec::new();
        visit(entry, &mut items)?;
        Ok(items)
    })?;
    Ok(subtrees.into_iter().flatten().collect())
}

/// Appends `entry` and, for a directory, everything under it (depth-first, sorted).
fn visit(entry: &fs::DirEntry, items: &mut Vec<Item>) -> Result<()> {
    let mut stack: Vec<std::vec::IntoIter<fs::DirEntry>> = Vec::new();
    let mut next = Some(stat(entry)?);
    while let Some(item) = next.take() {
        let is_dir = item.metadata.is_dir();
        if is_dir {
            stack.push(list(&item.abs)?.into_iter());
        }
        items.push(item);
        while let Some(top) = stack.last_mut() {
            match top.next() {
                Some(child) => {
                    next = Some(stat(&child)?);
                    break;
                }
                None => {
                    stack.pop();
                }
            }
        }
    }
    Ok(())
}

fn stat(entry: &fs::DirEntry) -> Result<Item> {
    let abs = entry.path();
    let metadata = entry
        .metadata()
        .map_err(|e| io_error(format!("reading {}", abs.display()), e))?;
    Ok(Item { abs, metadata })
}

fn list(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut listing = fs::read_dir(dir)
        .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| io_error(format!("listing {} to snapshot it", dir.display()), e))?;
    listing.sort_by_cached_key(fs::DirEntry::file_name);
    Ok(listing)
}

fn open_no_follow(abs: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(abs)
        .map_err(|e| io_error(format!("opening {} to snapshot it", abs.display()), e))
}

fn digest(abs: &Path) -> Result<Digest> {
    let file = open_no_follow(abs)?;
    hash_file(&file).map_err(|e| io_error(format!("reading {}", abs.display()), e))
}

fn copy_in(c: &Copy, pack: &File) -> Result<()> {
    let file = open_no_follow(&c.abs)?;
    let now = file
        .metadata()
        .map_err(|e| io_error(format!("reading {}", c.abs.display()), e))?;
    if !now.is_file() || now.len() != c.size {
        return Err(Error::conflict(format!(
            "{} changed while it was being snapshotted; stop the commands writing to the \
             session and snapshot again",
            c.abs.display()
        )));
    }
    copy_range(&file, 0, pack, c.offset, c.size).map_err(|e| io_error("writing a snapshot pack", e))
}
