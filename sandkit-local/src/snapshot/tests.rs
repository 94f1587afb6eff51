use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};

use sandkit_core::ErrorKind;

use super::*;
use crate::layout::Layout;
use manifest::{Entry, RawPath};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Snapshots,
}

impl Fixture {
    /// A stat cache path with nothing behind it (a session started fresh).
    fn no_index(&self) -> PathBuf {
        self.root.join("no-index.json")
    }

    /// Saves a stat cache and returns its path.
    fn index_file(&self, entries: &[index::IndexEntry]) -> PathBuf {
        let path = self.root.join(format!("{}.json", new_id("index")));
        index::save(&path, entries).unwrap();
        path
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = Snapshots::new(&Layout::new(root.clone()));
    store.init().unwrap();
    Fixture {
        _dir: dir,
        root,
        store,
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Sizes of the packs in the store.
fn packs(root: &Path) -> Vec<u64> {
    let mut sizes: Vec<u64> = fs::read_dir(root.join("objects"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    sizes.sort_unstable();
    sizes
}

#[test]
fn a_tree_round_trips_exactly() {
    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(work.join("src/empty")).unwrap();
    fs::write(work.join("src/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(work.join("src/run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(work.join("secret"), "k").unwrap();
    fs::set_permissions(work.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(work.join("empty-file"), "").unwrap();
    fs::write(work.join("copy-a"), "same").unwrap();
    fs::write(work.join("copy-b"), "same").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fs::write(work.join(odd), "latin-1 name").unwrap();
    symlink("src/run.sh", work.join("link")).unwrap();
    symlink("does-not-exist", work.join("dangling")).unwrap();
    fs::set_permissions(work.join("src"), fs::Permissions::from_mode(0o710)).unwrap();

    let id = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    // Identical contents are stored once.
    let distinct = "#!/bin/sh\necho hi\n".len() + "k".len() + "same".len() + "latin-1 name".len();
    assert_eq!(packs(&f.root), [distinct as u64]);

    let dest = f.root.join("restored");
    let index = f.store.restore(&id, &dest).unwrap();
    assert_eq!(index.len(), 6);
    assert_eq!(
        fs::read_to_string(dest.join("src/run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    assert_eq!(mode(&dest.join("src/run.sh")), 0o750);
    assert_eq!(mode(&dest.join("secret")), 0o600);
    assert_eq!(fs::read(dest.join("empty-file")).unwrap(), b"");
    assert_eq!(mode(&dest.join("src")), 0o710);
    assert!(dest.join("src/empty").is_dir());
    assert_eq!(fs::read_to_string(dest.join(odd)).unwrap(), "latin-1 name");
    assert_eq!(
        fs::read_link(dest.join("link")).unwrap(),
        Path::new("src/run.sh")
    );
    assert_eq!(
        fs::read_link(dest.join("dangling")).unwrap(),
        Path::new("does-not-exist")
    );
    assert_eq!(
        fs::metadata(dest.join("copy-a"))
            .unwrap()
            .modified()
            .unwrap(),
        fs::metadata(work.join("copy-a"))
            .unwrap()
            .modified()
            .unwrap()
    );
}

#[test]
fn a_tree_of_empty_files_needs_no_pack() {
    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("a"), "").unwrap();
    fs::write(work.join("b"), "").unwrap();
    let id = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    assert_eq!(packs(&f.root), Vec::<u64>::new());
    let dest = f.root.join("restored");
    let entries = f.store.restore(&id, &dest).unwrap();
    assert_eq!(fs::read(dest.join("b")).unwrap(), b"");
    // Unchanged empty files are taken from the cache on the next snapshot.
    let again = f
        .store
        .create("sbx_r", &dest, &f.index_file(&entries))
        .unwrap();
    assert_eq!(f.store.read_manifest(&again).unwrap().entries.len(), 2);
}

#[test]
fn symlinks_out_of_the_tree_are_stored_not_followed() {
    let f = fixture();
    let outside = f.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("private.txt"), "must not be captured").unwrap();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    symlink(&outside, work.join("out-dir")).unwrap();
    symlink(outside.join("private.txt"), work.join("out-file")).unwrap();
    symlink("../../..", work.join("up")).unwrap();

    let id = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    assert_eq!(
        packs(&f.root),
        Vec::<u64>::new(),
        "nothing behind a symlink is read"
    );

    let dest = f.root.join("restored");
    f.store.restore(&id, &dest).unwrap();
    assert_eq!(fs::read_link(dest.join("out-dir")).unwrap(), outside);
    assert!(
        fs::symlink_metadata(dest.join("out-dir"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(dest.join("up")).unwrap(),
        Path::new("../../..")
    );
    let listing: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
    assert_eq!(
        listing.len(),
        1,
        "restore wrote nothing outside the session"
    );
}

fn forge(f: &Fixture, entries: Vec<Entry>) -> String {
    let id = new_id("snap");
    let manifest = Manifest {
        version: VERSION,
        id: id.clone(),
        created_at: sandkit_core::now(),
        session: "sbx_forged".into(),
        entries,
    };
    f.store.write_manifest(&manifest).unwrap();
    id
}

#[test]
fn a_forged_manifest_cannot_write_outside_the_session() {
    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("payload"), "pwned").unwrap();
    let real = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    let real = f.store.read_manifest(&real).unwrap();
    let Some(Entry::File {
        hash, pack, size, ..
    }) = real.entries.first().cloned()
    else {
        panic!("expected a file entry");
    };
    let file = |p: &str| Entry::File {
        path: RawPath(p.into()),
        mode: 0o644,
        size,
        mtime_ns: index::Nanos(0),
        hash: hash.clone(),
        pack: pack.clone(),
        offset: 0,
    };
    let target = f.root.join("escape-target");
    fs::create_dir_all(&target).unwrap();
    let attacks = vec![
        vec![file("../escaped")],
        vec![file(&format!("{}/abs", target.display()))],
        vec![
            Entry::Symlink {
                path: RawPath(b"hop".to_vec()),
                target: RawPath::from_path(&target),
            },
            file("hop/through-link"),
        ],
    ];
    for (i, entries) in attacks.into_iter().enumerate() {
        let id = forge(&f, entries);
        let dest = f.root.join(format!("dest-{i}"));
        let err = f.store.restore(&id, &dest).unwrap_err();
        assert_eq!(err.kind().name(), "corrupt", "attack {i}: {err}");
    }
    assert!(!f.root.join("escaped").exists());
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn an_incremental_snapshot_reads_only_changed_files() {
    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    for i in 0..20 {
        fs::write(work.join(format!("f{i}")), format!("content {i}")).unwrap();
    }
    let base = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    let restored = f.root.join("restored");
    let entries = f.store.restore(&base, &restored).unwrap();
    assert_eq!(entries.len(), 20);
    let index = f.index_file(&entries);
    fs::write(restored.join("f3"), "changed").unwrap();
    let next = f.store.create("sbx_r", &restored, &index).unwrap();
    let before = f.store.read_manifest(&base).unwrap();
    let after = f.store.read_manifest(&next).unwrap();
    let changed: Vec<_> = before
        .entries
        .iter()
        .zip(&after.entries)
        .filter(|(a, b)| a != b)
        .map(|(_, b)| String::from_utf8_lossy(&b.path().0).into_owned())
        .collect();
    assert_eq!(changed, ["f3"]);
    // The new pack holds only the changed content.
    assert_eq!(f.store.packs.len(&next), Some("changed".len() as u64));
    let again = f.root.join("again");
    f.store.restore(&next, &again).unwrap();
    assert_eq!(fs::read_to_string(again.join("f3")).unwrap(), "changed");
    assert_eq!(fs::read_to_string(again.join("f4")).unwrap(), "content 4");
}

#[test]
fn unchanged_files_are_not_read_again() {
    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("a"), "alpha").unwrap();
    fs::write(work.join("b"), "bravo").unwrap();
    let base = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    let restored = f.root.join("restored");
    let mut entries = f.store.restore(&base, &restored).unwrap();
    // Give `a` the cached content of `b`: a snapshot that trusts the cache records it,
    // proving `a` was not read.
    let hash_b = entries[1].hash.clone();
    entries[0].hash = hash_b.clone();
    entries[0].offset = entries[1].offset;
    let next = f
        .store
        .create("sbx_r", &restored, &f.index_file(&entries))
        .unwrap();
    let manifest = f.store.read_manifest(&next).unwrap();
    assert!(matches!(&manifest.entries[0], Entry::File { hash, .. } if *hash == hash_b));
}

#[test]
fn deleting_collects_only_unreferenced_objects() {
    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("shared"), "in both").unwrap();
    fs::write(work.join("only-a"), "a").unwrap();
    let a = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    let child = f.root.join("child");
    let index = f.index_file(&f.store.restore(&a, &child).unwrap());
    fs::remove_file(child.join("only-a")).unwrap();
    fs::write(child.join("only-b"), "b").unwrap();
    let b = f.store.create("sbx_t", &child, &index).unwrap();
    assert_eq!(packs(&f.root), [1, 8], "b stores only its new content");

    f.store.delete(&a).unwrap();
    f.store.delete(&a).unwrap();
    assert_eq!(packs(&f.root), [1, 8], "b still reads a's pack");
    let err = f.store.restore(&a, &f.root.join("x")).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::SnapshotUnavailable);
    let dest = f.root.join("b");
    f.store.restore(&b, &dest).unwrap();
    assert_eq!(fs::read_to_string(dest.join("shared")).unwrap(), "in both");
    assert_eq!(fs::read_to_string(dest.join("only-b")).unwrap(), "b");
    assert!(!dest.join("only-a").exists());

    f.store.delete(&b).unwrap();
    assert_eq!(packs(&f.root), Vec::<u64>::new());
}

#[test]
fn unknown_and_malformed_ids_are_unavailable() {
    let f = fixture();
    for id in ["snap_missing", "../store.lock", ""] {
        let err = f.store.restore(id, &f.root.join("d")).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::SnapshotUnavailable, "{id}");
    }
}

/// Checks that every stored content hashes to the hash its entry names.
fn assert_contents_match_hashes(f: &Fixture, id: &str) {
    let manifest = f.store.read_manifest(id).unwrap();
    for entry in &manifest.entries {
        if let Entry::File {
            path,
            size,
            hash,
            pack,
            offset,
            ..
        } = entry
            && *size > 0
        {
            let mut stored = vec![0; usize::try_from(*size).unwrap()];
            use std::os::unix::fs::FileExt;
            f.store
                .packs
                .open(pack)
                .unwrap()
                .read_exact_at(&mut stored, *offset)
                .unwrap();
            assert_eq!(
                blake3::hash(&stored).to_hex().as_str(),
                hash,
                "{:?} is stored under the wrong hash",
                path.as_path()
            );
        }
    }
}

#[test]
fn a_file_rewritten_during_a_snapshot_is_stored_under_the_hash_of_what_was_stored() {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    const SIZE: usize = 4 << 20;
    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("hot"), vec![b'a'; SIZE]).unwrap();
    fs::write(work.join("cold"), "steady").unwrap();
    let stop = AtomicBool::new(false);
    let mut stored = 0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(work.join("hot"))
                .unwrap();
            let versions = [vec![b'a'; SIZE], vec![b'b'; SIZE]];
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                file.write_all_at(&versions[i % 2], 0).unwrap();
            }
        });
        for _ in 0..10 {
            match f.store.create("sbx_t", &work, &f.no_index()) {
                Ok(id) => {
                    assert_contents_match_hashes(&f, &id);
                    stored += 1;
                }
                Err(e) => assert_eq!(e.kind(), &ErrorKind::Conflict, "{e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        stored > 0,
        "no snapshot succeeded while a file was being rewritten"
    );
}

#[test]
fn trees_deeper_than_path_max_round_trip_and_delete() {
    use crate::fsat;
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;

    let f = fixture();
    let work = f.root.join("work");
    fs::create_dir_all(&work).unwrap();
    let name = "d".repeat(200);
    let depth = 30; // 30 × 201 bytes: well past PATH_MAX (4096)
    let mut dir = fsat::open_dir(&work).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(dir.as_fd(), name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        dir = fsat::open_dir_at(dir.as_fd(), std::ffi::OsStr::new(&name)).unwrap();
    }
    let deep = rustix::fs::openat(
        dir.as_fd(),
        "deep.txt",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&deep, b"at the bottom").unwrap();
    drop(deep);

    let id = f.store.create("sbx_t", &work, &f.no_index()).unwrap();
    assert_eq!(f.store.read_manifest(&id).unwrap().entries.len(), depth + 1);
    let dest = f.root.join("restored");
    let index = f.store.restore(&id, &dest).unwrap();
    assert_eq!(index.len(), 1);
    let mut dir = fsat::open_dir(&dest).unwrap();
    for _ in 0..depth {
        dir = fsat::open_dir_at(dir.as_fd(), std::ffi::OsStr::new(&name)).unwrap();
    }
    let file = rustix::fs::openat(dir.as_fd(), "deep.txt", OFlags::RDONLY, Mode::empty()).unwrap();
    let mut content = [0; 13];
    rustix::io::read(&file, &mut content).unwrap();
    assert_eq!(&content, b"at the bottom");

    crate::removal::try_remove_tree(&dest).unwrap();
    crate::removal::try_remove_tree(&work).unwrap();
    assert!(!dest.exists() && !work.exists());
}
