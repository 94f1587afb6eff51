//! Deny-all egress through a fresh network namespace per command.
//!
//! A command of a deny-all session runs in a new network namespace that holds only
//! its own loopback interface (brought up so servers inside one command can talk to
//! themselves). No other interface exists in it, so no connection leaves it — not to
//! the internet and not to the host's loopback.
//!
//! A root command could otherwise walk back out: `setns` into the host's namespace
//! (`nsenter -t 1 -n`) needs `CAP_SYS_ADMIN`, and `ptrace` of a host process
//! (`CAP_SYS_PTRACE`) would borrow its network. Those capabilities, and
//! `CAP_NET_ADMIN`, are dropped from the command's bounding, inheritable, permitted,
//! effective and ambient sets before it runs, so neither it nor anything it executes
//! (setuid binaries included) has them.

use std::io;

use rustix::io::Errno;
use rustix::thread::{
    CapabilitySet, capabilities, clear_ambient_capability_set, remove_capability_from_bounding_set,
    set_capabilities,
};

/// Capabilities a deny-all command never has.
const DROPPED: [CapabilitySet; 3] = [
    CapabilitySet::SYS_ADMIN,
    CapabilitySet::SYS_PTRACE,
    CapabilitySet::NET_ADMIN,
];

/// Called in the forked child before `exec`: moves it into a new network namespace,
/// brings its loopback up, and drops the capabilities that could undo that.
///
/// Only async-signal-safe system calls are made (no allocation, no locks).
pub(crate) fn isolate_current_process() -> io::Result<()> {
    // SAFETY: unshare(2) only affects the calling (child) process.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    loopback_up()?;
    drop_capabilities()
}

fn drop_capabilities() -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for cap in DROPPED {
        match remove_capability_from_bounding_set(cap) {
            Ok(()) => {}
            // Without CAP_SETPCAP the bounding set cannot shrink; a non-root process
            // then only keeps capabilities through the sets cleared below.
            Err(Errno::PERM) if !root => {}
            Err(e) => return Err(e.into()),
        }
    }
    // EINVAL: no ambient set before Linux 4.3 (nothing to clear).
    match clear_ambient_capability_set() {
        Ok(()) | Err(Errno::INVAL) => {}
        Err(e) => return Err(e.into()),
    }
    let mut sets = capabilities(None)?;
    for cap in DROPPED {
        sets.effective.remove(cap);
        sets.permitted.remove(cap);
        sets.inheritable.remove(cap);
    }
    set_capabilities(None, sets)?;
    Ok(())
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket, used for interface ioctls and closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
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

/// Whether commands can be isolated here: runs `/bin/sh -c :` in a new namespace.
pub(crate) fn detect() -> bool {
    use std::os::unix::process::CommandExt;

    let mut probe = std::process::Command::new("/bin/sh");
    probe
        .args(["-c", ":"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the hook only makes async-signal-safe system calls.
    unsafe {
        probe.pre_exec(isolate_current_process);
    }
    match probe.status() {
        Ok(status) if status.success() => true,
        Ok(status) => {
            tracing::info!(%status, "network namespaces unavailable: deny-all policies will be refused");
            false
        }
        Err(e) => {
            tracing::info!(error = %e, "network namespaces unavailable: deny-all policies will be refused");
            false
        }
    }
}
