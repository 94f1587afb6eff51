//! A snapshot that runs out of disk is a typed error that leaves earlier snapshots and
//! the session intact. Runs the provider root on a small tmpfs (needs root).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    KillOnDrop, first_output_line, host_provider, process_running, sh, shell, start, start_with,
};
use sandkit_core::{ErrorKind, LogBuffer};

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn leftover_temp_objects(root: &Path) -> usize {
    std::fs::read_dir(root.join("objects/tmp")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_snapshot_and_keeps_everything_else() {
    let Some(fs) = Tmpfs::mount("4m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root and must run this test"
        );
        return;
    };
    let root = fs.path();
    let p = host_provider(&root);
    let s = start(&p).await;
    sh(&*s, "echo kept > small.txt").await;
    let first = s.snapshot().await.expect("first snapshot");

    let mut spec = common::fresh("local-tests");
    spec.from = Some(first.clone());
    let s2 = start_with(&p, spec.clone()).await;
    // Fits once, but not a second time in the object store.
    let big = sh(&*s2, "head -c 2500000 /dev/urandom > big.bin").await;
    assert_eq!(big.code, 0, "{big:?}");
    let err = s2.snapshot().await.expect_err("no room for the snapshot");
    assert_eq!(
        err.kind(),
        &ErrorKind::Provider {
            status: None,
            code: Some("disk_full".into())
        },
        "{err}"
    );
    assert!(err.to_string().contains("free disk space"), "{err}");
    assert_eq!(leftover_temp_objects(&root), 0);

    // The earlier snapshot still restores.
    let again = start_with(&p, spec).await;
    assert_eq!(sh(&*again, "cat small.txt").await.stdout, "kept\n");
    again.stop().await.unwrap();

    // The session survived: free space and snapshot again.
    sh(&*s2, "rm big.bin && echo retry > note.txt").await;
    let second = s2.snapshot().await.expect("snapshot after freeing space");
    let mut from_second = common::fresh("local-tests");
    from_second.from = Some(second);
    let last = start_with(&p, from_second).await;
    assert_eq!(
        sh(&*last, "cat small.txt note.txt").await.stdout,
        "kept\nretry\n"
    );
    last.stop().await.unwrap();

    // A full disk does not keep a session from being stopped.
    let s3 = start(&p).await;
    let bg = s3.spawn(shell("echo $$; exec sleep 60")).await.unwrap();
    let pid = first_output_line(&*s3, &bg.id).await;
    let _kill = KillOnDrop(pid);
    match s3.exec(shell("head -c 8000000 /dev/zero > fill")).await {
        Ok(handle) => {
            let code = LogBuffer::default().pump(handle).await.expect("output");
            assert_ne!(code, 0, "the disk should be full");
        }
        // The disk filled before the command was recorded: it was stopped (never left
        // running untracked) and the call says why.
        Err(e) => assert_eq!(
            e.kind(),
            &ErrorKind::Provider {
                status: None,
                code: Some("disk_full".into())
            },
            "{e}"
        ),
    }
    s3.stop().await.expect("stopping works on a full disk");
    assert!(!process_running(pid), "its processes were stopped");
    assert!(!root.join("sessions").join(&s3.session_ref().id).exists());
    let err = s3.exec(shell("true")).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::SessionUnavailable);
}
