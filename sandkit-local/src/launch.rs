//! Building the OS command for an [`ExecSpec`]: program, arguments, working directory,
//! clean environment, own OS session, no inherited descriptors beyond stdio, and the
//! sandbox (see [`crate::sandbox`]) unless the provider runs commands on the host.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use sandkit_core::{Error, ExecSpec, Result};
use tokio::process::Command;

use crate::sandbox::{self, Plan, WORKSPACE};

/// How a command is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// A plain process on the host (sandboxes unavailable or turned off).
    Host,
    /// A sandbox; with `host_network` it shares the host's network, otherwise it has
    /// its own with only loopback.
    Sandbox { host_network: bool },
}

impl Isolation {
    /// Whether the command can reach the host's network.
    pub(crate) fn host_network(self) -> bool {
        !matches!(
            self,
            Isolation::Sandbox {
                host_network: false
            }
        )
    }
}

/// Where a command runs.
pub(crate) enum Target {
    /// On the host, in this directory.
    Host(PathBuf),
    /// In a sandbox.
    Sandbox(Plan),
}

/// Resolves `ExecSpec.cwd` against the session working directory: the path of the
/// working directory relative to it. Relative paths are taken as they are; absolute
/// ones must lie inside the workspace, as seen by the command ([`WORKSPACE`] in a
/// sandbox) or on the host (`work`); `..` is rejected either way. The directory must
/// exist.
pub(crate) fn resolve_cwd(work: &Path, cwd: Option<&str>) -> Result<PathBuf> {
    let Some(raw) = cwd.filter(|c| !c.is_empty()) else {
        return Ok(PathBuf::new());
    };
    let requested = Path::new(raw);
    let relative = if requested.is_absolute() {
        requested
            .strip_prefix(WORKSPACE)
            .or_else(|_| requested.strip_prefix(work))
            .map_err(|_| {
                Error::invalid_input(format!(
                    "cwd {raw:?} is outside the workspace ({WORKSPACE} in the sandbox, {} on \
                     the host); pass a path relative to it",
                    work.display()
                ))
            })?
    } else {
        requested
    };
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::invalid_input(format!(
            "cwd {raw:?} leaves the session directory; pass a path inside it without `..`"
        )));
    }
    if !work.join(relative).is_dir() {
        return Err(Error::invalid_input(format!(
            "cwd {raw:?} is not a directory of the session; create it first (e.g. `mkdir -p {raw}`)"
        )));
    }
    Ok(relative.to_path_buf())
}

/// The environment of a command: the provider's clean base, `HOME` set to the
/// workspace as the command sees it, then the spec's own variables (which win).
pub(crate) fn environment(
    base: &BTreeMap<String, String>,
    home: &Path,
    spec: &ExecSpec,
) -> BTreeMap<String, String> {
    let mut env = base.clone();
    env.insert("HOME".to_owned(), home.to_string_lossy().into_owned());
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// A command in its own session and process group, with a clean environment. With
/// `exit_fd`, that descriptor is the command's descriptor 3 (the background
/// supervisor writes the exit code to it).
pub(crate) fn command(
    program: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    target: Target,
    exit_fd: Option<RawFd>,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().envs(env).stdin(Stdio::null());
    let plan = match target {
        Target::Host(cwd) => {
            cmd.current_dir(cwd);
            None
        }
        Target::Sandbox(plan) => Some(plan),
    };
    // SAFETY: the hook runs in the forked child before exec and only makes
    // async-signal-safe system calls (setsid, dup2, fcntl, close_range and those of
    // `sandbox::enter`); `plan` was fully built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = exit_fd {
                pass_as_fd3(fd)?;
            }
            if let Some(plan) = &plan
                && sandbox::enter(plan).is_err()
            {
                return Err(io::Error::from_raw_os_error(ISOLATION_FAILED));
            }
            close_inherited_descriptors(if exit_fd.is_some() { 4 } else { 3 });
            Ok(())
        });
    }
    cmd
}

/// Makes `fd` the child's descriptor 3, inherited across `exec`.
fn pass_as_fd3(fd: RawFd) -> io::Result<()> {
    // SAFETY: dup2/fcntl on this (child) process's descriptors.
    unsafe {
        if fd == 3 {
            let flags = libc::fcntl(3, libc::F_GETFD);
            if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(fd, 3) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Error number a child reports when it could not be isolated (chosen because
/// `execve` and `chdir` never return it).
const ISOLATION_FAILED: i32 = libc::ENOTRECOVERABLE;

/// Whether starting a command failed because its sandbox could not be set up (as
/// opposed to the program being missing or not executable).
pub(crate) fn isolation_failed(err: &io::Error) -> bool {
    err.raw_os_error() == Some(ISOLATION_FAILED)
}

/// The error for a command whose sandbox could not be set up at run time.
pub(crate) fn isolation_error(program: &str) -> Error {
    Error::unsupported(format!(
        "{program} was not started: its sandbox could not be set up (creating its \
         namespaces or its filesystem view failed); check that unprivileged user \
         namespaces are allowed here (`unshare -Ur true`), or build the provider with \
         `isolation(false)` to run commands on the host"
    ))
}

/// Highest descriptor scanned when `close_range` is unavailable.
const MAX_SCANNED_FD: u64 = 1 << 20;

/// Marks every descriptor from `first` on close-on-exec, so a command inherits only its
/// standard streams (and descriptor 3 when it is passed on) (not, say, a socket the embedding process opened without
/// `CLOEXEC`). Marking rather than closing keeps the pipe through which the standard
/// library reports a failed `exec`.
fn close_inherited_descriptors(first: u32) {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only changes descriptor flags of
    // the calling (child) process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Before Linux 5.11: every possible descriptor, one by one.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`, which outlives the call.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(MAX_SCANNED_FD)
    } else {
        MAX_SCANNED_FD
    };
    for fd in first as i32..i32::try_from(max).unwrap_or(i32::MAX) {
        // SAFETY: fcntl on a descriptor number that may not be open only fails (EBADF).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandkit_core::ErrorKind;

    #[test]
    fn cwd_stays_inside_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        std::fs::create_dir(work.join("sub")).unwrap();
        let sub = Path::new("sub");
        assert_eq!(resolve_cwd(work, None).unwrap(), Path::new(""));
        assert_eq!(resolve_cwd(work, Some("sub")).unwrap(), sub);
        assert_eq!(
            resolve_cwd(work, Some("./sub")).unwrap(),
            Path::new("./sub")
        );
        let abs = work.join("sub");
        assert_eq!(resolve_cwd(work, Some(abs.to_str().unwrap())).unwrap(), sub);
        assert_eq!(resolve_cwd(work, Some("/workspace/sub")).unwrap(), sub);
        for bad in ["..", "sub/../..", "/etc", "missing", "/workspace/missing"] {
            let err = resolve_cwd(work, Some(bad)).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn spec_env_wins_over_the_base() {
        let base = BTreeMap::from([
            ("PATH".to_owned(), "/bin".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ]);
        let spec = ExecSpec {
            env: sandkit_core::env_map([("LANG", "fr_FR.UTF-8"), ("EXTRA", "1")]),
            ..ExecSpec::default()
        };
        let env = environment(&base, Path::new("/s/work"), &spec);
        assert_eq!(env["HOME"], "/s/work");
        assert_eq!(env["LANG"], "fr_FR.UTF-8");
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["EXTRA"], "1");
    }
}
