//! Snapshots restore a session exactly, across provider instances, without ever
//! following a symlink out of the session.

mod common;

use std::path::Path;

use common::{
    host_provider, provider, sh, start, start_with, trash_emptied, tree_contains, tree_has_content,
};
use sandkit_core::{ErrorKind, Provider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_into_a_new_provider_instance() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = b"outside the root: never captured";
    std::fs::write(outside.join("secret.txt"), secret).unwrap();

    let first = provider(&root);
    let s = start(&first).await;
    let setup = format!(
        "mkdir -p src empty deep/er && printf hello > src/a.txt && chmod 640 src/a.txt \
         && printf '#!/bin/sh\\necho ran\\n' > run.sh && chmod 755 run.sh && chmod 700 empty \
         && ln -s src/a.txt link && ln -s {out} out-dir && ln -s {out}/secret.txt out-file \
         && ln -s ../../../.. up",
        out = outside.display()
    );
    let made = sh(&*s, &setup).await;
    assert_eq!(made.code, 0, "{made:?}");
    let snap = s.snapshot().await.expect("snapshot");
    drop(s);
    drop(first);

    let second = provider(&root);
    let mut spec = common::fresh("local-tests");
    spec.from = Some(snap);
    let r = start_with(&second, spec).await;
    assert_eq!(sh(&*r, "cat src/a.txt").await.stdout, "hello");
    assert_eq!(sh(&*r, "./run.sh").await.stdout, "ran\n");
    assert_eq!(
        sh(&*r, "stat -c '%n %a' src/a.txt run.sh empty")
            .await
            .stdout,
        "src/a.txt 640\nrun.sh 755\nempty 700\n"
    );
    assert_eq!(sh(&*r, "test -d deep/er && echo dir").await.stdout, "dir\n");
    assert_eq!(sh(&*r, "readlink link").await.stdout, "src/a.txt\n");
    assert_eq!(
        sh(&*r, "test -L out-dir && readlink out-dir").await.stdout,
        format!("{}\n", outside.display())
    );
    assert_eq!(
        sh(&*r, "test -L out-file && readlink out-file")
            .await
            .stdout,
        format!("{}/secret.txt\n", outside.display())
    );
    assert_eq!(sh(&*r, "readlink up").await.stdout, "../../../..\n");

    // Nothing behind the outside symlinks was read into the store or the session...
    assert!(!tree_has_content(&root, secret));
    // ...and restoring wrote nothing outside the session.
    let outside_now: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(outside_now, ["secret.txt"]);
    assert_eq!(std::fs::read(outside.join("secret.txt")).unwrap(), secret);
    r.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_immutable_and_seeds_independent_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    sh(&*s, "echo v1 > f && chmod 600 f").await;
    let snap = s.snapshot().await.unwrap();
    let mut spec = common::fresh("local-tests");
    spec.from = Some(snap.clone());
    let a = start_with(&p, spec.clone()).await;
    // Writes in one restored session reach neither the snapshot nor its siblings.
    sh(&*a, "chmod 644 f && echo v2 > f").await;
    let b = start_with(&p, spec).await;
    assert_eq!(sh(&*b, "cat f; stat -c %a f").await.stdout, "v1\n600\n");
    let a_snap = a.snapshot().await.unwrap();
    let mut from_a = common::fresh("local-tests");
    from_a.from = Some(a_snap);
    let c = start_with(&p, from_a).await;
    assert_eq!(sh(&*c, "cat f; stat -c %a f").await.stdout, "v2\n644\n");
    b.stop().await.unwrap();
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_directory_replaced_by_a_symlink_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = b"outside the session: never captured, never deleted";
    std::fs::write(outside.join("secret.txt"), secret).unwrap();
    let root = dir.path().join("root");
    // Commands on the host: in a sandbox the workspace is a mount point that cannot be
    // replaced at all.
    let p = host_provider(&root);
    let s = start(&p).await;
    let swapped = sh(
        &*s,
        &format!(
            "cd / && rm -rf \"$HOME\" && ln -s {} \"$HOME\"",
            outside.display()
        ),
    )
    .await;
    assert_eq!(swapped.code, 0, "{swapped:?}");

    let err = s.snapshot().await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(
        !tree_contains(&root, secret),
        "a file outside the session was captured"
    );

    s.stop().await.unwrap();
    trash_emptied(&root).await;
    assert_eq!(std::fs::read(outside.join("secret.txt")).unwrap(), secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_times_after_2262_survive_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let made = sh(
        &*s,
        "mkdir d && touch -d 2300-01-01T00:00:00Z d/f d && stat -c %Y d/f d",
    )
    .await;
    assert_eq!(
        (made.code, made.stdout.as_str()),
        (0, "10413792000\n10413792000\n"),
        "{made:?}"
    );
    let mut snap = s.snapshot().await.unwrap();
    // Twice: the second snapshot reads the stat cache written by the first restore.
    for _ in 0..2 {
        let mut spec = common::fresh("local-tests");
        spec.from = Some(snap);
        let restored = start_with(&p, spec).await;
        let times = sh(&*restored, "stat -c %Y d/f d").await;
        assert_eq!(times.stdout, "10413792000\n10413792000\n", "{times:?}");
        snap = restored.snapshot().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_succeeded_is_reported_even_if_cleanup_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let p = provider(&root);
    let s = start(&p).await;
    sh(&*s, "echo kept > f").await;
    // The ended session cannot be moved to the trash any more.
    std::fs::remove_dir_all(root.join("trash")).unwrap();
    std::fs::write(root.join("trash"), "not a directory").unwrap();
    let snap = s.snapshot().await.expect("the snapshot itself succeeded");
    let err = s.exec(common::shell("true")).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
    assert!(
        !root.join("sessions").join(&s.session_ref().id).exists(),
        "the ended session was deleted in place"
    );
    let mut spec = common::fresh("local-tests");
    spec.from = Some(snap);
    let restored = start_with(&p, spec).await;
    assert_eq!(sh(&*restored, "cat f").await.stdout, "kept\n");
}

/// Sets a path's modification time to an hour ago.
fn age(path: &Path) {
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_provider_removes_what_crashed_calls_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    drop(provider(&root));
    let sessions = root.join("sessions");
    let crashed = sessions.join(".starting-sbx_crashed");
    std::fs::create_dir_all(crashed.join("work/sub")).unwrap();
    std::fs::write(crashed.join("work/sub/f"), "half restored").unwrap();
    age(&crashed);
    let recent = sessions.join(".starting-sbx_recent");
    std::fs::create_dir_all(&recent).unwrap();
    let manifest = root.join("snapshots/.snap_crashed.tmp");
    std::fs::write(&manifest, "{").unwrap();
    age(&manifest);
    let pack = root.join("objects/tmp/snap_crashed.0123");
    std::fs::write(&pack, "partial").unwrap();
    age(&pack);
    let fresh_pack = root.join("objects/tmp/snap_running.4567");
    std::fs::write(&fresh_pack, "in progress").unwrap();

    let p = provider(&root);
    trash_emptied(&root).await;
    assert!(!crashed.exists() && !manifest.exists() && !pack.exists());
    assert!(recent.exists(), "a recent one may still be in progress");
    assert!(fresh_pack.exists(), "a recent one may still be in progress");
    // The provider works as usual.
    let s = p.start(common::fresh("local-tests")).await.unwrap();
    assert_eq!(sh(&*s, "echo ok").await.stdout, "ok\n");
    s.stop().await.unwrap();
}
