//! Rootless sandboxes for commands: Linux namespaces, built per command without root,
//! no setuid helper and no daemon.
//!
//! Every sandboxed command runs in new user, mount, PID, IPC and UTS namespaces (and
//! under deny-all a network namespace with only loopback), as the calling user (uid 0
//! only when the provider runs as root), with no capabilities at all, in a filesystem
//! view built for it:
//!
//! * `/workspace`: the session's working directory (read-write; also `HOME`);
//! * `/usr`, `/etc` and the host's `/bin`, `/sbin`, `/lib*` (directories or the
//!   symlinks into `/usr` of merged-`/usr` systems): read-only, with `/etc/shadow`,
//!   `/etc/gshadow`, `/etc/sudoers` and the SSH host keys hidden; plus any path the
//!   provider was told to show ([`crate::LocalProviderBuilder::read_only_path`]);
//! * `/tmp` (and `/var/tmp`): private to the session, kept across its commands;
//! * a fresh `/proc` of the command's own PID namespace (kernel settings read-only);
//! * a minimal `/dev`: `null`, `zero`, `full`, `random`, `urandom`, `tty`, a private
//!   `pts` instance with `ptmx`, and `shm`.
//!
//! Nothing else of the host is there: no `/home`, `/root`, `/run`, `/var/run`, no host
//! socket, no other session. The kernel is shared: this is namespaces, not a VM.

mod child;
mod plan;

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub(crate) use plan::Plan;
use plan::{ETC_MASKS, Shown, View};

/// Where a sandboxed command finds its workspace (its `HOME` and default working
/// directory).
pub const WORKSPACE: &str = "/workspace";

/// Host directories every sandbox shows read-only, when they exist.
const SYSTEM_DIRS: [&str; 8] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// What this host's sandboxes look like: computed once per provider.
#[derive(Debug)]
pub(crate) struct Sandboxes {
    view: View,
}

impl Sandboxes {
    /// The sandboxes of a provider whose views are built on `root` (an empty directory
    /// it owns), showing the system directories and `extra` read-only. `None` when
    /// this machine cannot create them (the reason is logged).
    pub(crate) fn detect(root: &Path, probe: &Path, extra: &[PathBuf]) -> Option<Sandboxes> {
        let sandboxes = match Self::new(root, probe, extra) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(error = %e, "sandboxes unavailable: commands run on the host and deny-all policies are refused");
                return None;
            }
        };
        match sandboxes.probe(probe) {
            Ok(()) => Some(sandboxes),
            Err(e) => {
                tracing::info!(error = %e, "sandboxes unavailable (user namespaces refused?): commands run on the host and deny-all policies are refused");
                None
            }
        }
    }

    fn new(root: &Path, probe: &Path, extra: &[PathBuf]) -> io::Result<Sandboxes> {
        std::fs::create_dir_all(root)?;
        std::fs::create_dir_all(probe)?;
        let mut shown = Vec::new();
        for dir in SYSTEM_DIRS
            .iter()
            .map(PathBuf::from)
            .chain(extra.iter().cloned())
        {
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                shown.push(Shown::Link(dir.clone(), std::fs::read_link(&dir)?));
            } else if meta.is_dir() {
                shown.push(Shown::Dir(dir));
            }
        }
        let mut masks: Vec<PathBuf> = ETC_MASKS.iter().map(PathBuf::from).collect();
        if let Ok(ssh) = std::fs::read_dir("/etc/ssh") {
            masks.extend(ssh.flatten().map(|e| e.path()).filter(|p| {
                let name = p.file_name().map_or(&[][..], |n| n.as_bytes());
                name.starts_with(b"ssh_host_") && !name.ends_with(b".pub")
            }));
        }
        masks.retain(|m| m.exists());
        Ok(Sandboxes {
            view: View {
                root: root.to_path_buf(),
                shown,
                masks,
            },
        })
    }

    /// Runs `/bin/sh -c :` in a sandbox without network.
    fn probe(&self, probe: &Path) -> io::Result<()> {
        let plan = self.plan(probe, probe, Path::new(WORKSPACE), false)?;
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", ":"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the hook only makes async-signal-safe system calls (see `child`).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                enter(&plan)
            });
        }
        let status = cmd.status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "probe command ended with {status}"
            )))
        }
    }

    /// The plan of one command (see [`View::plan`]).
    pub(crate) fn plan(
        &self,
        work: &Path,
        tmp: &Path,
        cwd: &Path,
        host_network: bool,
    ) -> io::Result<Plan> {
        self.view.plan(work, tmp, cwd, host_network)
    }
}

/// Called in the forked child before `exec`: enters the sandbox of `plan`. Returns in
/// the command's process; see [`child`].
pub(crate) fn enter(plan: &Plan) -> io::Result<()> {
    child::enter(plan)
}
