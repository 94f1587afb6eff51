//! Snapshots restore a session exactly, across provider instances, without ever
//! following a symlink out of the session.

mod common;

use std::path::Path;

use common::{provider, sh, start, start_with};

fn tree_has_content(root: &Path, needle: &[u8]) -> bool {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .any(|e| std::fs::read(e.path()).is_ok_and(|c| c == needle))
}

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
