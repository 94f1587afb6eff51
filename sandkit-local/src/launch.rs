//! Building the OS command for an [`ExecSpec`]: program, arguments, working directory,
//! clean environment, own OS session, no inherited descriptors beyond stdio, and
//! network isolation.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use sandkit_core::{Error, ExecSpec, Result};
use tokio::process::Command;

use crate::netns;

/// How a command is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Host network.
    None,
    /// A fresh network namespace with only loopback.
    DenyAll,
}

/// Resolves `ExecSpec.cwd` against the session working directory. Relative paths are
/// joined to it; absolute ones must lie inside it; `..` is rejected either way.
pub(crate) fn resolve_cwd(work: &Path, cwd: Option<&str>) -> Result<PathBuf> {
    let Some(raw) = cwd.filter(|c| !c.is_empty()) else {
        return Ok(work.to_path_buf());
    };
    let requested = Path::new(raw);
    let relative = if requested.is_absolute() {
        requested.strip_prefix(work).map_err(|_| {
            Error::invalid_input(format!(
                "cwd {raw:?} is outside the session directory {}; pass a path relative to it",
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
    let dir = work.join(relative);
    if !dir.is_dir() {
        return Err(Error::invalid_input(format!(
            "cwd {raw:?} is not a directory of the session; create it first (e.g. `mkdir -p {raw}`)"
        )));
    }
    Ok(dir)
}

/// The environment of a command: the provider's clean base, `HOME` set to the
/// session directory, then the spec's own variables (which win).
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

/// A command in its own session and process group, with a clean environment.
pub(crate) fn command(
    program: &str,
    args: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    isolation: Isolation,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null());
    let isolate = isolation == Isolation::DenyAll;
    // SAFETY: the hook runs in the forked child before exec and only makes
    // async-signal-safe system calls (setsid, unshare, socket, ioctl, close, prctl,
    // capget/capset, close_range, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if isolate && netns::isolate_current_process().is_err() {
                return Err(io::Error::from_raw_os_error(ISOLATION_FAILED));
            }
            close_inherited_descriptors();
            Ok(())
        });
    }
    cmd
}

/// Error number a child reports when it could not be isolated (chosen because
/// `execve` and `chdir` never return it).
const ISOLATION_FAILED: i32 = libc::ENOTRECOVERABLE;

/// Whether starting a command failed because its network isolation could not be set up
/// (as opposed to the program being missing or not executable).
pub(crate) fn isolation_failed(err: &io::Error) -> bool {
    err.raw_os_error() == Some(ISOLATION_FAILED)
}

/// The error for a command whose deny-all isolation failed at run time.
pub(crate) fn isolation_error(program: &str) -> Error {
    Error::unsupported(format!(
        "{program} was not started: this session's deny-all policy could not be enforced \
         for it (creating its network namespace or dropping its capabilities failed); run \
         it under allow-all, or where network namespaces work (root or CAP_SYS_ADMIN)"
    ))
}

/// Highest descriptor scanned when `close_range` is unavailable.
const MAX_SCANNED_FD: u64 = 1 << 20;

/// Marks every descriptor above stderr close-on-exec, so a command inherits only its
/// standard streams (not, say, a socket the embedding process opened without
/// `CLOEXEC`). Marking rather than closing keeps the pipe through which the standard
/// library reports a failed `exec`.
fn close_inherited_descriptors() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only changes descriptor flags of
    // the calling (child) process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3_u32,
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
    for fd in 3..i32::try_from(max).unwrap_or(i32::MAX) {
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
        assert_eq!(resolve_cwd(work, None).unwrap(), work);
        assert_eq!(resolve_cwd(work, Some("sub")).unwrap(), work.join("sub"));
        assert_eq!(
            resolve_cwd(work, Some("./sub")).unwrap(),
            work.join("./sub")
        );
        let abs = work.join("sub");
        assert_eq!(resolve_cwd(work, Some(abs.to_str().unwrap())).unwrap(), abs);
        for bad in ["..", "sub/../..", "/etc", "missing"] {
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
