//! Mounts that root commands make inside their session: stopping or snapshotting the
//! session never deletes or captures what is mounted there.

mod common;

use std::path::{Path, PathBuf};

use common::{MountsUnder, host_provider, sh, skip_unless_root, start, start_with, trash_emptied};
use sandkit_core::ErrorKind;

const HOST_DATA: &[u8] = b"host data: never deleted, never captured";

/// A host directory with a file and a nested file.
fn host_dir(parent: &Path) -> PathBuf {
    let host = parent.join("host");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("keep.txt"), HOST_DATA).unwrap();
    std::fs::write(host.join("sub/deep.txt"), HOST_DATA).unwrap();
    host
}

/// A temporary directory holding a host directory and a provider root, whose mounts
/// are detached on drop (fields drop in order: the mounts before the directory).
struct Fixture {
    _cleanup: MountsUnder,
    _dir: tempfile::TempDir,
    host: PathBuf,
    root: PathBuf,
}

/// The fixture, or `None` (the test is skipped) when not running as root.
fn fixture() -> Option<Fixture> {
    if skip_unless_root("bind-mounting") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = host_dir(dir.path());
    Some(Fixture {
        _cleanup: MountsUnder(dir.path().to_path_buf()),
        root: dir.path().join("root"),
        host,
        _dir: dir,
    })
}

fn assert_host_intact(host: &Path) {
    assert_eq!(std::fs::read(host.join("keep.txt")).unwrap(), HOST_DATA);
    assert_eq!(std::fs::read(host.join("sub/deep.txt")).unwrap(), HOST_DATA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_mount_inside_a_session_is_neither_deleted_nor_captured() {
    let Some(fx) = fixture() else {
        return;
    };
    let (host, root) = (&fx.host, &fx.root);
    let p = host_provider(root);
    let mount = format!(
        "mkdir -p mnt && mount --bind {} mnt && echo own > own.txt && ls mnt",
        host.display()
    );

    let s = start(&p).await;
    let mounted = sh(&*s, &mount).await;
    assert_eq!(
        (mounted.code, mounted.stdout.as_str()),
        (0, "keep.txt\nsub\n"),
        "{mounted:?}"
    );
    s.stop().await.unwrap();
    trash_emptied(root).await;
    assert_host_intact(host);

    let s = start(&p).await;
    assert_eq!(sh(&*s, &mount).await.code, 0);
    let snap = s.snapshot().await.unwrap();
    trash_emptied(root).await;
    assert_host_intact(host);
    assert!(
        !common::tree_contains(root, HOST_DATA),
        "host files were captured"
    );

    let mut spec = common::fresh("local-tests");
    spec.from = Some(snap);
    let restored = start_with(&p, spec).await;
    let listed = sh(&*restored, "ls -A mnt; cat own.txt").await;
    assert_eq!(
        listed.stdout, "own\n",
        "the mount point comes back empty: {listed:?}"
    );
    restored.stop().await.unwrap();
    trash_emptied(root).await;
    assert_host_intact(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_over_the_working_directory_is_refused_and_survives_stop() {
    let Some(fx) = fixture() else {
        return;
    };
    let (host, root) = (&fx.host, &fx.root);
    let p = host_provider(root);
    let s = start(&p).await;
    let mounted = sh(&*s, &format!("mount --bind {} \"$HOME\"", host.display())).await;
    assert_eq!(mounted.code, 0, "{mounted:?}");

    let err = s.snapshot().await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("mounted"), "{err}");
    assert!(!common::tree_contains(&root.join("objects"), HOST_DATA));

    s.stop().await.unwrap();
    trash_emptied(root).await;
    assert_host_intact(host);
}
