//! Helpers shared by the integration tests.

#![allow(dead_code, unused_imports)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Duration;

use sandkit_core::{Provider, ProviderSession, StartSpec};
use sandkit_local::LocalProvider;
pub use sandkit_testkit::provider_suite::{Ran, fresh, run, sh, shell};

/// A provider over `root` with a short kill grace.
pub fn provider(root: &Path) -> LocalProvider {
    LocalProvider::builder(root)
        .kill_grace(Duration::from_millis(500))
        .build()
        .expect("local provider")
}

/// A provider over `root` whose commands run on the host (`isolation(false)`): for
/// tests that watch a command's processes by their host pid, or that need host
/// privileges inside commands (mounts). `tests/sandbox.rs` checks the same guarantees
/// inside sandboxes.
pub fn host_provider(root: &Path) -> LocalProvider {
    LocalProvider::builder(root)
        .kill_grace(Duration::from_millis(500))
        .isolation(false)
        .build()
        .expect("local provider")
}

/// Starts a fresh allow-all session.
pub async fn start(p: &LocalProvider) -> Box<dyn ProviderSession> {
    p.start(fresh("local-tests")).await.expect("start")
}

/// Starts a session from `spec`.
pub async fn start_with(p: &LocalProvider, spec: StartSpec) -> Box<dyn ProviderSession> {
    p.start(spec).await.expect("start")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Whether a process exists and is not a zombie.
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("X");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Whether this process runs as root (mount tests need it; CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (returns `true`) when not root, failing instead on CI.
pub fn skip_unless_root(what: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: {what} needs root");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI runs as root and must run this test"
    );
    true
}

/// Detaches every mount at or under a directory when dropped, so tests that mount
/// clean up even when they fail.
pub struct MountsUnder(pub std::path::PathBuf);

impl MountsUnder {
    /// Mount points at or under the directory, deepest first.
    pub fn list(&self) -> Vec<std::path::PathBuf> {
        let Ok(real) = std::fs::canonicalize(&self.0) else {
            return Vec::new();
        };
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut found: Vec<std::path::PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(std::path::PathBuf::from)
            .filter(|m| m.starts_with(&real))
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        found
    }
}

impl Drop for MountsUnder {
    fn drop(&mut self) {
        for _ in 0..8 {
            let left = self.list();
            if left.is_empty() {
                return;
            }
            for m in left {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&m)
                    .status();
            }
        }
    }
}

/// Waits until the provider's trash is empty (ended sessions are deleted in the
/// background).
pub async fn trash_emptied(root: &Path) {
    let trash = root.join("trash");
    for _ in 0..500 {
        if std::fs::read_dir(&trash).map_or(true, |mut d| d.next().is_none()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the trash was not emptied in time");
}

/// Whether any regular file under `root` holds exactly `needle`.
pub fn tree_has_content(root: &Path, needle: &[u8]) -> bool {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .any(|e| std::fs::read(e.path()).is_ok_and(|c| c == needle))
}

/// Whether any regular file under `root` contains `needle`.
pub fn tree_contains(root: &Path, needle: &[u8]) -> bool {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .any(|e| {
            std::fs::read(e.path()).is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
}

/// Reads the first stdout line of a background process (its pid, by convention in
/// these tests).
pub async fn first_output_line(s: &dyn ProviderSession, id: &str) -> i32 {
    use futures::StreamExt;
    let mut logs = s.process_logs(id).await.expect("logs");
    let mut text = String::new();
    while !text.contains('\n') {
        let chunk = tokio::time::timeout(Duration::from_secs(10), logs.next())
            .await
            .expect("output in time")
            .expect("output")
            .expect("chunk");
        text.push_str(&chunk.text());
    }
    text.trim().parse().expect("a pid")
}

/// Kills a process when dropped (so a failing test leaves nothing running).
pub struct KillOnDrop(pub i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0 > 1 && process_running(self.0) {
            // SAFETY: kill(2) has no memory effects on this process.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// Environment variable marking a test binary re-run as an unprivileged user.
pub const AS_NORMAL_USER: &str = "SANDKIT_TEST_AS_NORMAL_USER";

/// As root, runs this test binary again as uid/gid 65534 (all its tests but `skip`)
/// and asserts that they pass. Does nothing when already unprivileged or inside that
/// re-run.
pub fn rerun_as_normal_user(skip: &str) {
    if std::env::var_os(AS_NORMAL_USER).is_some() {
        return;
    }
    if !is_root() {
        eprintln!("already a normal user: the tests above ran as one");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--test-threads=2", "--skip", skip])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/tmp")
        .env("TMPDIR", "/tmp")
        .env(AS_NORMAL_USER, "1")
        .output()
        .expect("run setpriv (util-linux)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "as uid 65534:\n{report}");
    assert!(report.contains(" passed;"), "{report}");
}
