//! Pack files: the contents a snapshot stored, concatenated in one file per snapshot
//! (`objects/<snapshot id>.pack`), addressed by offset. One sequential file is much
//! cheaper to write than one file per content, and packs are never modified.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sandkit_core::Result;

use crate::errors::io_error;
use crate::layout::is_valid_id;

/// Largest single `copy_file_range` request.
const MAX_COPY: u64 = 1 << 30;

/// Buffer of the read/write fallback copy.
const FALLBACK_BUF: usize = 256 * 1024;

/// Where a content lives: a pack and a byte range in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) pack: String,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// A file's BLAKE3 hash and the number of bytes hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digest {
    pub(crate) hash: String,
    pub(crate) size: u64,
}

struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes a file from its current position to its end.
pub(crate) fn hash_file(file: &File) -> io::Result<Digest> {
    let mut reader = Counting {
        inner: file,
        count: 0,
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut reader)?;
    Ok(Digest {
        hash: hasher.finalize().to_hex().to_string(),
        size: reader.count,
    })
}

/// Copies `len` bytes from `src` at `src_offset` to `dst` at `dst_offset`, in the
/// kernel when it can (`copy_file_range`), else through a buffer.
pub(crate) fn copy_range(
    src: &File,
    src_offset: u64,
    dst: &File,
    dst_offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        let mut off_in = libc::loff_t::try_from(src_offset + done).map_err(io::Error::other)?;
        let mut off_out = libc::loff_t::try_from(dst_offset + done).map_err(io::Error::other)?;
        let want = (len - done).min(MAX_COPY) as usize;
        // SAFETY: both descriptors are open for the lifetime of the borrowed files; the
        // offsets point to locals that outlive the call.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                want,
                0,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => done += n as u64,
            _ => {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP) => {
                        return copy_buffered(
                            src,
                            src_offset + done,
                            dst,
                            dst_offset + done,
                            len - done,
                        );
                    }
                    _ => return Err(err),
                }
            }
        }
    }
    Ok(())
}

fn copy_buffered(
    src: &File,
    mut src_at: u64,
    dst: &File,
    mut dst_at: u64,
    len: u64,
) -> io::Result<()> {
    let mut buf = vec![0; FALLBACK_BUF.min(usize::try_from(len).unwrap_or(FALLBACK_BUF))];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
        let n = src.read_at(&mut buf[..want], src_at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        dst.write_all_at(&buf[..n], dst_at)?;
        src_at += n as u64;
        dst_at += n as u64;
        left -= n as u64;
    }
    Ok(())
}

/// The pack directory.
#[derive(Debug, Clone)]
pub(crate) struct Packs {
    dir: PathBuf,
}

/// A pack being written under a temporary name.
#[derive(Debug)]
pub(crate) struct PackWriter {
    pub(crate) file: File,
    tmp: PathBuf,
    dest: PathBuf,
    published: bool,
}

impl PackWriter {
    /// Makes the pack visible under its final name.
    pub(crate) fn publish(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.dest).map_err(|e| io_error("storing a snapshot pack", e))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Packs {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Packs { dir }
    }

    pub(crate) fn init(&self) -> io::Result<()> {
        fs::create_dir_all(self.tmp_dir())
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub(crate) fn path(&self, pack: &str) -> PathBuf {
        self.dir.join(format!("{pack}.pack"))
    }

    /// The length of a pack, `None` when it does not exist.
    pub(crate) fn len(&self, pack: &str) -> Option<u64> {
        if !is_valid_id(pack) {
            return None;
        }
        fs::metadata(self.path(pack))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    pub(crate) fn open(&self, pack: &str) -> io::Result<File> {
        File::open(self.path(pack))
    }

    /// Starts pack `name` of `len` bytes under a temporary name (removed on drop
    /// unless published).
    pub(crate) fn create(&self, name: &str, len: u64) -> Result<PackWriter> {
        let tmp = self
            .tmp_dir()
            .join(format!("{name}.{}", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&tmp)
            .map_err(|e| io_error("creating a snapshot pack", e))?;
        let writer = PackWriter {
            file,
            tmp,
            dest: self.path(name),
            published: false,
        };
        writer
            .file
            .set_len(len)
            .map_err(|e| io_error("sizing a snapshot pack", e))?;
        Ok(writer)
    }

    /// Deletes every pack not in `keep`, and leftover temporary files. Callers hold
    /// the store lock exclusively. Returns how many packs were removed.
    pub(crate) fn sweep(&self, keep: &HashSet<String>) -> Result<usize> {
        let mut removed = 0;
        let listing = fs::read_dir(&self.dir).map_err(|e| io_error("listing snapshot packs", e))?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(pack) = name.to_str().and_then(|n| n.strip_suffix(".pack")) else {
                continue;
            };
            if !keep.contains(pack) {
                remove(&entry.path())?;
                removed += 1;
            }
        }
        for entry in fs::read_dir(self.tmp_dir()).into_iter().flatten().flatten() {
            remove(&entry.path())?;
        }
        Ok(removed)
    }
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("deleting an unused snapshot pack", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_copy_between_files_at_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("src");
        fs::write(&src_path, b"0123456789").unwrap();
        let src = File::open(&src_path).unwrap();
        let dst = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("dst"))
            .unwrap();
        dst.set_len(6).unwrap();
        copy_range(&src, 2, &dst, 1, 4).unwrap();
        copy_buffered(&src, 9, &dst, 5, 1).unwrap();
        assert_eq!(fs::read(dir.path().join("dst")).unwrap(), b"\x002345\x39");
        let err = copy_range(&src, 8, &dst, 0, 5).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn an_unpublished_pack_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::new(dir.path().to_path_buf());
        packs.init().unwrap();
        drop(packs.create("snap_a", 10).unwrap());
        assert_eq!(fs::read_dir(packs.tmp_dir()).unwrap().count(), 0);
        packs.create("snap_b", 3).unwrap().publish().unwrap();
        assert_eq!(packs.len("snap_b"), Some(3));
        assert_eq!(packs.len("snap_a"), None);
        assert_eq!(packs.sweep(&HashSet::new()).unwrap(), 1);
        assert_eq!(packs.len("snap_b"), None);
    }

    #[test]
    fn hashing_counts_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"abc").unwrap();
        let d = hash_file(&File::open(&p).unwrap()).unwrap();
        assert_eq!(d.size, 3);
        assert_eq!(d.hash, blake3::hash(b"abc").to_hex().to_string());
    }
}
