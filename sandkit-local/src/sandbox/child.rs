//! What runs in the forked child before `exec` to put a command in its sandbox.
//!
//! Everything here is called between `fork` and `exec` of a possibly multi-threaded
//! parent, so it only makes async-signal-safe system calls: no allocation, no locks,
//! no logging. Every string it needs was prepared by the parent ([`Plan`]).
//!
//! The child `P` (the process the caller tracks) creates the namespaces, then forks
//! `A`, the first process of the new PID namespace, which builds the filesystem view,
//! pivots into it and forks `B`, the command. `B` is not PID 1, so signals reach it
//! with their usual meaning. `A` reaps orphans and reports `B`'s wait status to `P`
//! through a pipe; `P` then exits with the same code (128 + signal for a signal), so
//! the caller sees the command's own exit. `A` outlives `B` while processes the
//! command left behind still run (as they would on the host), and when `A` ends the
//! kernel ends every process of the namespace. `P` and `A` block every signal; the
//! caller signals the command's process group, which `B` belongs to.

use std::ffi::CStr;
use std::io;

use super::plan::{Op, Plan};

/// Capabilities a sandboxed command never has: all of them (`CAP_LAST_CAP` is below).
const MAX_CAP: libc::c_ulong = 63;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
/// SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED`: uid 0 gains no
/// capabilities by `exec`.
const SECURE_BITS: libc::c_ulong = 0x1 | 0x2 | 0x4 | 0x8 | 0x20;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_long(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs in `P`. Returns only in `B` (which then `exec`s) or with an error (in `P` or
/// `A`; the standard library reports it to the caller). `P` and `A` never return.
pub(crate) fn enter(plan: &Plan) -> io::Result<()> {
    // SAFETY (whole function): only async-signal-safe system calls on memory owned by
    // `plan`, which the parent built before forking and which outlives this call.
    let mut status_pipe = [0; 2];
    check(unsafe { libc::pipe2(status_pipe.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let [report_rd, report_wr] = status_pipe;
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if plan.new_network {
        flags |= libc::CLONE_NEWNET;
    }
    check(unsafe { libc::unshare(flags) })?;
    write_file(c"/proc/self/setgroups", c"deny")?;
    write_file(c"/proc/self/uid_map", &plan.uid_map)?;
    write_file(c"/proc/self/gid_map", &plan.gid_map)?;
    if plan.new_network {
        loopback_up()?;
    }
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            unsafe { libc::close(report_rd) };
            init(plan, report_wr)
        }
        _ => {
            unsafe { libc::close(report_wr) };
            relay_exit(report_rd)
        }
    }
}

/// `P`: waits for `A`'s report of the command's wait status and exits with it.
fn relay_exit(report: libc::c_int) -> ! {
    block_signals();
    close_all_but(report);
    let mut status: libc::c_int = 0;
    let mut got = 0usize;
    let buf = (&raw mut status).cast::<u8>();
    while got < size_of::<libc::c_int>() {
        // SAFETY: reads into the bytes of `status` not filled yet.
        let n = unsafe { libc::read(report, buf.add(got).cast(), size_of::<libc::c_int>() - got) };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let code = if got < size_of::<libc::c_int>() {
        // `A` died without reporting (killed): as if the command was killed.
        128 + libc::SIGKILL
    } else if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    };
    // SAFETY: ends this process without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

/// `A`: PID 1 of the sandbox. Builds the view, forks the command, then reaps.
fn init(plan: &Plan, report: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system calls on this (child) process.
    unsafe {
        // `P` is outside the namespace, so `getppid` says 0 and cannot tell whether it
        // already died; its death after this point ends the sandbox.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        let name = plan.hostname.to_bytes();
        check(libc::sethostname(name.as_ptr().cast(), name.len()))?;
    }
    build_view(plan)?;
    // SAFETY: chdir to a NUL-terminated path owned by `plan`.
    check(unsafe { libc::chdir(plan.cwd.as_ptr()) })?;
    block_signals();
    // SAFETY: fork of this single-threaded process.
    let command = unsafe { libc::fork() };
    match command {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: closes this process's copy of the report pipe.
            unsafe { libc::close(report) };
            unblock_signals();
            drop_privileges()
        }
        _ => reap(command, report),
    }
}

/// `A` after the fork: reaps every process of the namespace, reports the command's
/// status, and exits when none is left (which ends the namespace).
fn reap(command: libc::pid_t, report: libc::c_int) -> ! {
    close_all_but(report);
    let mut reported = false;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waits for any child, writing into `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == command && !reported {
            // SAFETY: writes the bytes of `status` to the report pipe, then closes it.
            unsafe {
                libc::write(report, (&raw const status).cast(), size_of::<libc::c_int>());
                libc::close(report);
            }
            reported = true;
        } else if pid < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: ends this process; the kernel ends the namespace with it.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Mounts the sandbox's filesystem under the plan's root and makes it `/`.
fn build_view(plan: &Plan) -> io::Result<()> {
    // SAFETY (whole function): mount-related system calls with NUL-terminated paths
    // owned by `plan`; they change only this process's (new) mount namespace.
    unsafe {
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for op in &plan.ops {
            apply(op)?;
        }
        check(libc::chdir(plan.root.as_ptr()))?;
        check_long(libc::syscall(
            libc::SYS_pivot_root,
            c".".as_ptr(),
            c".".as_ptr(),
        ))?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
        check(libc::chdir(c"/".as_ptr()))?;
    }
    Ok(())
}

fn apply(op: &Op) -> io::Result<()> {
    // SAFETY (whole function): file and mount system calls on NUL-terminated paths
    // owned by `op`.
    unsafe {
        match op {
            Op::Dir(path) => match check(libc::mkdir(path.as_ptr(), 0o755)) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                other => other,
            },
            Op::File(path) => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                check(fd)?;
                libc::close(fd);
                Ok(())
            }
            Op::Symlink { target, at } => check(libc::symlink(target.as_ptr(), at.as_ptr())),
            Op::Bind {
                source,
                target,
                read_only,
            } => {
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                if *read_only {
                    read_only_tree(target)?;
                }
                Ok(())
            }
            Op::Mask(target) => {
                match check(libc::mount(
                    c"/dev/null".as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )) {
                    // Masks are best effort on paths that may not exist on this host.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                    other => other,
                }
            }
            Op::ReadOnly(target) => {
                match check(libc::mount(
                    target.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                    Err(e) => Err(e),
                    Ok(()) => read_only_tree(target),
                }
            }
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => check(libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                *flags,
                data.as_ref()
                    .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
            )),
            Op::SealRoot(target) => check(libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT
                    | libc::MS_BIND
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV,
                std::ptr::null(),
            )),
        }
    }
}

/// Makes the mount at `target` and every mount below it read-only.
fn read_only_tree(target: &CStr) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr(2) reads `attr`, which outlives the call.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target.as_ptr(),
            AT_RECURSIVE,
            &raw const attr,
            size_of::<MountAttr>(),
        )
    })
}

/// `B`: no capabilities (none to gain back by `exec`, setuid or file capabilities).
fn drop_privileges() -> io::Result<()> {
    // SAFETY (whole function): prctl/capset on this process only.
    unsafe {
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        check(libc::prctl(libc::PR_SET_SECUREBITS, SECURE_BITS, 0, 0, 0))?;
        for cap in 0..=MAX_CAP {
            // EINVAL: beyond this kernel's last capability.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(io::Error::last_os_error());
            }
        }
        // EINVAL: no ambient set before Linux 4.3 (nothing to clear).
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
            && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
        {
            return Err(io::Error::last_os_error());
        }
    }
    let none = rustix::thread::CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: none,
            permitted: none,
            inheritable: none,
        },
    )?;
    Ok(())
}

fn block_signals() {
    // SAFETY: sigset manipulation on a local, then sigprocmask for this thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
}

fn unblock_signals() {
    // SAFETY: as in `block_signals`.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Closes every descriptor but `keep` (stdio included), so the command's pipes and
/// the standard library's exec-error pipe close when the command's processes do.
fn close_all_but(keep: libc::c_int) {
    // SAFETY: close_range(2) on this process's descriptors; `keep` stays open.
    unsafe {
        let keep = keep as libc::c_uint;
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0_u32, keep - 1, 0_u32);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0_u32);
    }
}

/// Writes `content` to the file at `path` in one `write`.
fn write_file(path: &CStr, content: &CStr) -> io::Result<()> {
    // SAFETY: open/write/close with NUL-terminated strings that outlive the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        check(fd)?;
        let bytes = content.to_bytes();
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if written < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Brings up the loopback interface of the (new) network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket, used for interface ioctls and closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req`, which outlives the calls;
    // the union field written is the one these requests use.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) != 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) != 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: `fd` is the socket opened above and not used afterwards.
    unsafe { libc::close(fd) };
    result
}
