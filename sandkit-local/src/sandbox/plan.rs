//! The filesystem view of a sandboxed command, prepared by the parent as a list of
//! operations with every path already converted to a C string, so the child only has
//! to replay them (see [`super::child`]).

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::WORKSPACE;

/// One step of building the view, with paths under the plan's root (host side, before
/// the pivot).
#[derive(Debug)]
pub(crate) enum Op {
    /// `mkdir`; an existing directory is fine.
    Dir(CString),
    /// An empty file to mount a file on.
    File(CString),
    /// `symlink(target, at)`.
    Symlink { target: CString, at: CString },
    /// A recursive bind mount, optionally read-only (recursively).
    Bind {
        source: CString,
        target: CString,
        read_only: bool,
    },
    /// `/dev/null` mounted over a file that must not be readable (skipped when absent).
    Mask(CString),
    /// A path bound onto itself read-only (skipped when absent).
    ReadOnly(CString),
    /// A fresh filesystem.
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// Remounts the view's root read-only once everything is in place.
    SealRoot(CString),
}

/// Everything the child needs to enter a sandbox.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The (empty) host directory the view is built on.
    pub(super) root: CString,
    pub(super) ops: Vec<Op>,
    pub(super) uid_map: CString,
    pub(super) gid_map: CString,
    /// Working directory inside the view.
    pub(super) cwd: CString,
    pub(super) hostname: &'static CStr,
    /// Whether the command gets its own network namespace (loopback only).
    pub(super) new_network: bool,
}

/// A host path shown inside every sandbox.
#[derive(Debug, Clone)]
pub(super) enum Shown {
    /// A directory, bound read-only at the same path.
    Dir(PathBuf),
    /// A symlink, recreated as is (e.g. `/bin -> usr/bin`).
    Link(PathBuf, PathBuf),
}

/// Host files hidden even though their directory is shown.
pub(super) const ETC_MASKS: [&str; 6] = [
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/security/opasswd",
];

/// Kernel interfaces of `/proc` a command has no business reading.
const PROC_MASKS: [&str; 6] = [
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "sysrq-trigger",
    "latency_stats",
];

/// Kernel settings under `/proc` shown read-only.
const PROC_READ_ONLY: [&str; 4] = ["sys", "bus", "fs", "irq"];

/// Device nodes of the host bound into the sandbox's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

pub(super) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} contains a NUL byte", path.display()),
        )
    })
}

fn c_str(s: &str) -> CString {
    CString::new(s).expect("static strings have no NUL byte")
}

/// What every sandbox of one provider shows of the host, and where views are built.
#[derive(Debug)]
pub(super) struct View {
    /// The (empty) host directory each view is built on.
    pub(super) root: PathBuf,
    pub(super) shown: Vec<Shown>,
    pub(super) masks: Vec<PathBuf>,
}

impl View {
    /// The plan of one command: `work` at [`WORKSPACE`], `tmp` at `/tmp`, working
    /// directory `cwd` (inside the view), and its own network when `!host_network`.
    pub(super) fn plan(
        &self,
        work: &Path,
        tmp: &Path,
        cwd: &Path,
        host_network: bool,
    ) -> io::Result<Plan> {
        let mut ops = Ops {
            root: &self.root,
            list: Vec::new(),
        };
        let tmpfs = |mode: &str| Some(c_str(&format!("mode={mode}")));
        ops.mount(
            "tmpfs",
            "/",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            tmpfs("0755"),
        )?;
        ops.bind(work, Path::new(WORKSPACE), false)?;
        ops.bind(tmp, Path::new("/tmp"), false)?;
        ops.dir(Path::new("/var"))?;
        ops.symlink(Path::new("../tmp"), Path::new("/var/tmp"))?;
        // After `/tmp`, so a shown path under it (a build directory) is not hidden.
        for shown in &self.shown {
            match shown {
                Shown::Dir(dir) => ops.bind(dir, dir, true)?,
                Shown::Link(at, target) => ops.symlink(target, at)?,
            }
        }
        for mask in &self.masks {
            ops.list.push(Op::Mask(ops.inside(mask)?));
        }
        self.proc(&mut ops)?;
        Self::dev(&mut ops, tmpfs("0755"), tmpfs("1777"))?;
        let root = c_path(&self.root)?;
        ops.list.push(Op::SealRoot(root.clone()));
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Ok(Plan {
            root,
            ops: ops.list,
            uid_map: c_str(&format!("{uid} {uid} 1\n")),
            gid_map: c_str(&format!("{gid} {gid} 1\n")),
            cwd: c_path(cwd)?,
            hostname: c"sandkit",
            new_network: !host_network,
        })
    }

    fn proc(&self, ops: &mut Ops<'_>) -> io::Result<()> {
        ops.mount(
            "proc",
            "/proc",
            "proc",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )?;
        for name in PROC_MASKS {
            let path = ops.inside(&Path::new("/proc").join(name))?;
            ops.list.push(Op::Mask(path));
        }
        for name in PROC_READ_ONLY {
            let path = ops.inside(&Path::new("/proc").join(name))?;
            ops.list.push(Op::ReadOnly(path));
        }
        Ok(())
    }

    fn dev(
        ops: &mut Ops<'_>,
        dev_mode: Option<CString>,
        shm_mode: Option<CString>,
    ) -> io::Result<()> {
        ops.mount("tmpfs", "/dev", "tmpfs", libc::MS_NOSUID, dev_mode)?;
        for name in DEVICES {
            let device = Path::new("/dev").join(name);
            let at = ops.inside(&device)?;
            ops.list.push(Op::File(at.clone()));
            ops.list.push(Op::Bind {
                source: c_path(&device)?,
                target: at,
                read_only: false,
            });
        }
        ops.mount(
            "devpts",
            "/dev/pts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(c_str("newinstance,ptmxmode=0666,mode=0620")),
        )?;
        ops.symlink(Path::new("pts/ptmx"), Path::new("/dev/ptmx"))?;
        ops.mount(
            "tmpfs",
            "/dev/shm",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            shm_mode,
        )?;
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            ops.symlink(Path::new(target), &Path::new("/dev").join(name))?;
        }
        Ok(())
    }
}

/// Operations being collected, with the view's root to place them under.
struct Ops<'a> {
    root: &'a Path,
    list: Vec<Op>,
}

impl Ops<'_> {
    /// The host path of `path` (absolute, as seen inside the view).
    fn inside(&self, path: &Path) -> io::Result<CString> {
        let relative = path.strip_prefix("/").unwrap_or(path);
        if relative.as_os_str().is_empty() {
            return c_path(self.root);
        }
        c_path(&self.root.join(relative))
    }

    /// Creates `path` and its missing parents inside the view.
    fn dir(&mut self, path: &Path) -> io::Result<()> {
        let mut at = PathBuf::from("/");
        for part in path.strip_prefix("/").unwrap_or(path).components() {
            at.push(part);
            let dir = self.inside(&at)?;
            self.list.push(Op::Dir(dir));
        }
        Ok(())
    }

    fn parent(&mut self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if parent != Path::new("/") => self.dir(parent),
            _ => Ok(()),
        }
    }

    fn bind(&mut self, source: &Path, at: &Path, read_only: bool) -> io::Result<()> {
        self.dir(at)?;
        let target = self.inside(at)?;
        self.list.push(Op::Bind {
            source: c_path(source)?,
            target,
            read_only,
        });
        Ok(())
    }

    fn symlink(&mut self, target: &Path, at: &Path) -> io::Result<()> {
        self.parent(at)?;
        let at = self.inside(at)?;
        self.list.push(Op::Symlink {
            target: c_path(target)?,
            at,
        });
        Ok(())
    }

    fn mount(
        &mut self,
        source: &str,
        at: &str,
        fstype: &str,
        flags: libc::c_ulong,
        data: Option<CString>,
    ) -> io::Result<()> {
        let at = Path::new(at);
        if at != Path::new("/") {
            self.dir(at)?;
        }
        let target = self.inside(at)?;
        self.list.push(Op::Mount {
            source: c_str(source),
            target,
            fstype: c_str(fstype),
            flags,
            data,
        });
        Ok(())
    }
}
