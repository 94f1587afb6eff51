//! Capturing a session directory into manifest entries and a pack.
//!
//! The working directory must be a real directory of the session, on the session's
//! own mount: a symlink (`rm -rf "$HOME"; ln -s /elsewhere "$HOME"`) or a mount in its
//! place is refused. The tree is walked through directory descriptors (any depth),
//! never following a symlink (a symlink is recorded with its target, wherever it
//! points) and never entering another mount (a directory with something mounted on it
//! is recorded empty; other mount points are skipped). Files are reopened beneath the
//! working directory with symlinks and mount crossings refused.
//!
//! Files unchanged since the session was restored (per the stat cache) are not read.
//! Other files are hashed; a content already stored (in the parent snapshot or earlier
//! in this one) is referenced again, only new contents are copied into the new pack.
//! The hash recorded for a copied content is the hash of the bytes actually copied, so
//! a file rewritten between hashing and copying can never be stored under a stale
//! hash: its entry takes the new hash, or, when other entries share the content, the
//! capture fails with `Conflict` (and is retried by the caller).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use sandkit_core::{Error, Result};

use crate::errors::io_error;
use crate::fsat::{self, Node};
use crate::snapshot::index::Index;
use crate::snapshot::manifest::{Entry, RawPath};
use crate::snapshot::packs::{Digest, Location, PackWriter, Packs, hash_file};
use crate::snapshot::parallel;

/// Permission bits kept (including setuid/setgid/sticky).
pub(crate) const MODE_BITS: u32 = 0o7777;

/// Buffer used to copy a content into the pack while hashing it.
const COPY_BUF: usize = 256 * 1024;

/// A file whose content must be hashed (and stored when new).
struct Pending {
    slot: usize,
    rel: PathBuf,
}

/// A new content to copy into the pack, and the entries that use it.
struct Copy {
    rel: PathBuf,
    offset: u64,
    size: u64,
    hash: String,
    slots: Vec<usize>,
}

/// What a capture produced: the entries, and the pack of new contents (not yet
/// published) when there were any.
pub(crate) struct Captured {
    pub(crate) entries: Vec<Entry>,
    pub(crate) pack: Option<PackWriter>,
}

/// The working directory, opened: its descriptor, its `statx` and its path (for
/// messages).
struct Root<'a> {
    fd: OwnedFd,
    node: Node,
    path: &'a Path,
}

impl Root<'_> {
    fn show(&self, rel: &Path) -> String {
        self.path.join(rel).display().to_string()
    }
}

fn not_a_directory(work: &Path, what: &str) -> Error {
    Error::conflict(format!(
        "the session's working directory {} {what}, so it was not snapshotted (nothing \
         outside the session is ever captured); make it a plain directory again (e.g. \
         `cd / && rm \"$HOME\" && mkdir \"$HOME\"`) or stop the session",
        work.display()
    ))
}

/// Opens `work` without following a symlink in its place, and checks it lies on the
/// mount of its parent (the session directory).
fn open_root(work: &Path) -> Result<Root<'_>> {
    let (Some(parent), Some(name)) = (work.parent(), work.file_name()) else {
        return Err(not_a_directory(work, "has no parent"));
    };
    let opened = (|| -> std::io::Result<std::result::Result<(OwnedFd, Node), &str>> {
        let parent_fd = fsat::open_dir(parent)?;
        let parent_node = fsat::stat_fd(parent_fd.as_fd())?;
        let listed = fsat::stat_at(parent_fd.as_fd(), name)?;
        if !listed.is_dir() {
            return Ok(Err(if listed.is_symlink() {
                "is a symlink"
            } else {
                "is not a directory"
            }));
        }
        let fd = fsat::open_dir_at(parent_fd.as_fd(), name)?;
        let node = fsat::stat_fd(fd.as_fd())?;
        if !node.same_mount_as(&parent_node) {
            return Ok(Err("has something mounted on it"));
        }
        Ok(Ok((fd, node)))
    })();
    match opened {
        Ok(Ok((fd, node))) => Ok(Root {
            fd,
            node,
            path: work,
        }),
        Ok(Err(what)) => Err(not_a_directory(work, what)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(not_a_directory(work, "is a symlink"))
        }
        Err(e) => Err(io_error(
            format!("opening {} to snapshot it", work.display()),
            e,
        )),
    }
}

/// Walks `work` into entries; new contents go to pack `pack_name`. The stat cache is
/// loaded by `load_index` while the tree is walked.
pub(crate) fn capture(
    work: &Path,
    load_index: impl FnOnce() -> Index + Send,
    packs: &Packs,
    pack_name: &str,
) -> Result<Captured> {
    let root = open_root(work)?;
    let mut entries = Vec::new();
    let mut pending = Vec::new();
    let (walked, index) = std::thread::scope(|scope| {
        let index = scope.spawn(load_index);
        let walked = walk(&root);
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
        let path = RawPath(item.rel);
        let node = item.node;
        if node.is_dir() {
            entries.push(Entry::Dir {
                path,
                mode: node.mode & MODE_BITS,
                mtime_ns: node.mtime,
            });
        } else if let Some(target) = item.target {
            entries.push(Entry::Symlink {
                path,
                target: RawPath(target),
            });
        } else {
            let cached = index
                .unchanged(&path.0, &node)
                .filter(|e| stored(&e.pack, e.offset, e.stamp.size));
            let (hash, pack, offset) = match cached {
                Some(e) => (e.hash.clone(), e.pack.clone(), e.offset),
                None => {
                    pending.push(Pending {
                        slot: entries.len(),
                        rel: path.as_path().to_path_buf(),
                    });
                    (String::new(), String::new(), 0)
                }
            };
            entries.push(Entry::File {
                path,
                mode: node.mode & MODE_BITS,
                size: node.size,
                mtime_ns: node.mtime,
                hash,
                pack,
                offset,
            });
        }
    }
    if pending.is_empty() {
        return Ok(Captured {
            entries,
            pack: None,
        });
    }
    let digests = parallel(&pending, |p| digest(&root, &p.rel))?;
    // Contents already stored (by the parent snapshot), and new ones by index in
    // `copies`.
    let known: HashMap<String, Location> = index
        .entries()
        .map(|e| (e.hash.clone(), e.location()))
        .filter(|(_, l)| stored(&l.pack, l.offset, l.size))
        .collect();
    let mut new: HashMap<String, usize> = HashMap::new();
    let mut cursor = 0;
    let mut copies: Vec<Copy> = Vec::new();
    for (p, d) in pending.iter().zip(digests) {
        let location = match (known.get(&d.hash), new.get(&d.hash)) {
            (Some(l), _) if l.size == d.size => l.clone(),
            (_, Some(&i)) if copies[i].size == d.size => {
                copies[i].slots.push(p.slot);
                Location {
                    pack: pack_name.to_owned(),
                    offset: copies[i].offset,
                    size: d.size,
                }
            }
            _ => {
                let l = Location {
                    pack: pack_name.to_owned(),
                    offset: cursor,
                    size: d.size,
                };
                cursor += d.size;
                new.insert(d.hash.clone(), copies.len());
                copies.push(Copy {
                    rel: p.rel.clone(),
                    offset: l.offset,
                    size: d.size,
                    hash: d.hash.clone(),
                    slots: vec![p.slot],
                });
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
    // Empty contents need no copy.
    copies.retain(|c| c.size > 0);
    if copies.is_empty() {
        return Ok(Captured {
            entries,
            pack: None,
        });
    }
    let writer = packs.create(pack_name, cursor)?;
    let copied = parallel(&copies, |c| copy_in(&root, c, &writer.file))?;
    for (c, hash) in copies.iter().zip(copied) {
        if hash == c.hash {
            continue;
        }
        // Rewritten since it was hashed: the pack holds the bytes copied, so the entry
        // must name their hash. Entries sharing the old content cannot be fixed here.
        let [slot] = c.slots[..] else {
            return Err(changed(&root, &c.rel));
        };
        if let Some(Entry::File { hash: recorded, .. }) = entries.get_mut(slot) {
            *recorded = hash;
        }
    }
    Ok(Captured {
        entries,
        pack: Some(writer),
    })
}

/// One entry of the tree: its path relative to the root, its `statx`, and for a
/// symlink its target.
struct Item {
    rel: Vec<u8>,
    node: Node,
    target: Option<Vec<u8>>,
}

/// A directory being listed: its descriptor, the names left, and its relative path.
struct Frame {
    fd: OwnedFd,
    names: std::vec::IntoIter<std::ffi::OsString>,
    rel: Vec<u8>,
}

/// Lists the root depth-first in file-name order. Top-level entries (and the
/// subtrees under them) are spread over threads.
fn walk(root: &Root<'_>) -> Result<Vec<Item>> {
    let top = fsat::list(root.fd.as_fd())
        .map_err(|e| io_error(format!("listing {} to snapshot it", root.path.display()), e))?;
    let subtrees = parallel(&top, |name: &std::ffi::OsString| {
        let mut items = Vec::new();
        visit(root, name, &mut items)?;
        Ok(items)
    })?;
    Ok(subtrees.into_iter().flatten().collect())
}

/// Appends the top-level entry `name` and, for a directory, everything under it.
fn visit(root: &Root<'_>, name: &OsStr, items: &mut Vec<Item>) -> Result<()> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut next = entry(root, root.fd.as_fd(), &[], name)?;
    loop {
        if let Some((item, dir)) = next.take() {
            if let Some(fd) = dir {
                let names = fsat::list(fd.as_fd()).map_err(|e| {
                    let rel = Path::new(OsStr::from_bytes(&item.rel));
                    io_error(format!("listing {} to snapshot it", root.show(rel)), e)
                })?;
                stack.push(Frame {
                    fd,
                    names: names.into_iter(),
                    rel: item.rel.clone(),
                });
            }
            items.push(item);
        }
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        match top.names.next() {
            Some(child) => next = entry(root, top.fd.as_fd(), &top.rel, &child)?,
            None => {
                stack.pop();
            }
        }
    }
}

/// Stats `name` in `dir` (path `prefix`). A directory on the root's mount comes with
/// its open descriptor; a mount point is recorded as an empty directory (directories)
/// or skipped (anything else), as are special files and entries that vanished.
fn entry(
    root: &Root<'_>,
    dir: BorrowedFd<'_>,
    prefix: &[u8],
    name: &OsStr,
) -> Result<Option<(Item, Option<OwnedFd>)>> {
    let mut rel = prefix.to_vec();
    if !rel.is_empty() {
        rel.push(b'/');
    }
    rel.extend_from_slice(name.as_bytes());
    let show = || root.show(Path::new(OsStr::from_bytes(&rel)));
    let node = match fsat::stat_at(dir, name) {
        Ok(node) => node,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(format!("reading {}", show()), e)),
    };
    if node.is_symlink() {
        let target = rustix::fs::readlinkat(dir, name, Vec::new())
            .map_err(|e| io_error(format!("reading link {}", show()), e.into()))?;
        let item = Item {
            target: Some(target.into_bytes()),
            rel,
            node,
        };
        return Ok(Some((item, None)));
    }
    let on_root_mount = node.same_mount_as(&root.node);
    if node.is_dir() {
        if !on_root_mount {
            tracing::warn!(path = %show(), "not entering a mount inside the session: recorded as an empty directory");
            return Ok(Some((
                Item {
                    rel,
                    node,
                    target: None,
                },
                None,
            )));
        }
        let fd = fsat::open_dir_at(dir, name)
            .map_err(|e| io_error(format!("opening {} to snapshot it", show()), e))?;
        let opened =
            fsat::stat_fd(fd.as_fd()).map_err(|e| io_error(format!("reading {}", show()), e))?;
        if opened.ino != node.ino || !opened.same_mount_as(&root.node) {
            return Err(changed(root, Path::new(OsStr::from_bytes(&rel))));
        }
        return Ok(Some((
            Item {
                rel,
                node: opened,
                target: None,
            },
            Some(fd),
        )));
    }
    if !node.is_file() {
        tracing::warn!(path = %show(), "skipping a special file (socket, fifo or device) in the snapshot");
        return Ok(None);
    }
    if !on_root_mount {
        tracing::warn!(path = %show(), "skipping a file mounted inside the session");
        return Ok(None);
    }
    Ok(Some((
        Item {
            rel,
            node,
            target: None,
        },
        None,
    )))
}

fn changed(root: &Root<'_>, rel: &Path) -> Error {
    Error::conflict(format!(
        "{} changed while it was being snapshotted; stop the commands writing to the \
         session and snapshot again",
        root.show(rel)
    ))
}

/// Opens a regular file beneath the root (no symlinks, no mount crossings, never
/// blocking on a fifo swapped in).
fn open_file(root: &Root<'_>, rel: &Path) -> Result<File> {
    let fd = fsat::open_beneath(root.fd.as_fd(), rel, OFlags::RDONLY | OFlags::NONBLOCK)
        .map_err(|e| io_error(format!("opening {} to snapshot it", root.show(rel)), e))?;
    let node = fsat::stat_fd(fd.as_fd())
        .map_err(|e| io_error(format!("reading {}", root.show(rel)), e))?;
    if !node.is_file() {
        return Err(changed(root, rel));
    }
    Ok(File::from(fd))
}

fn digest(root: &Root<'_>, rel: &Path) -> Result<Digest> {
    let file = open_file(root, rel)?;
    hash_file(&file).map_err(|e| io_error(format!("reading {}", root.show(rel)), e))
}

/// Copies `c.size` bytes of the file into the pack at `c.offset`; returns the hash of
/// the bytes copied.
fn copy_in(root: &Root<'_>, c: &Copy, pack: &File) -> Result<String> {
    let file = open_file(root, &c.rel)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; COPY_BUF.min(usize::try_from(c.size).unwrap_or(COPY_BUF))];
    let mut done = 0u64;
    while done < c.size {
        let want = buf
            .len()
            .min(usize::try_from(c.size - done).unwrap_or(buf.len()));
        let n = file
            .read_at(&mut buf[..want], done)
            .map_err(|e| io_error(format!("reading {}", root.show(&c.rel)), e))?;
        if n == 0 {
            return Err(changed(root, &c.rel));
        }
        hasher.update(&buf[..n]);
        pack.write_all_at(&buf[..n], c.offset + done)
            .map_err(|e| io_error("writing a snapshot pack", e))?;
        done += n as u64;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copying_hashes_the_bytes_it_copies() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::fs::write(work.join("f"), "aaaa").unwrap();
        let root = open_root(&work).unwrap();
        let before = digest(&root, Path::new("f")).unwrap();
        // Rewritten (same size) between hashing and copying.
        std::fs::write(work.join("f"), "bbbb").unwrap();
        let packs = Packs::new(dir.path().join("objects"));
        packs.init().unwrap();
        let writer = packs.create("snap_t", 4).unwrap();
        let copy = Copy {
            rel: "f".into(),
            offset: 0,
            size: 4,
            hash: before.hash.clone(),
            slots: vec![0],
        };
        let copied = copy_in(&root, &copy, &writer.file).unwrap();
        assert_ne!(copied, before.hash);
        assert_eq!(copied, blake3::hash(b"bbbb").to_hex().to_string());
        let mut stored = [0; 4];
        writer.file.read_exact_at(&mut stored, 0).unwrap();
        assert_eq!(&stored, b"bbbb");
        // Shrunk below the hashed size: refused.
        std::fs::write(work.join("f"), "b").unwrap();
        let err = copy_in(&root, &copy, &writer.file).unwrap_err();
        assert_eq!(err.kind(), &sandkit_core::ErrorKind::Conflict);
    }
}
