//! Lease holders: who holds a lease, and whether that process is known to be gone.
//!
//! A holder id is `host:pid:tag@space`, where `space` names the process space it runs
//! in (the machine's boot and its PID namespace, on Linux). When a command lease's
//! holder shares this process's space and its pid no longer runs, the holder died
//! (kill -9, a crash, a power cut of the process) and its lease can be recovered at
//! once instead of after it expires. Holders on other machines, in other containers,
//! or with ids of another shape are never judged: their leases wait for expiry.

use std::sync::OnceLock;

/// This process's holder id: `host:pid:tag@space` (`host:pid:tag` where the process
/// space cannot be told).
pub(crate) fn default_holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let base = format!("{host}:{}:{tag}", std::process::id());
    match process_space() {
        Some(space) => format!("{base}@{space}"),
        None => base,
    }
}

/// Whether `holder` is a process of this process space that no longer runs.
pub(crate) fn is_gone(holder: &str) -> bool {
    let Some(here) = process_space() else {
        return false;
    };
    let Some((id, space)) = holder.rsplit_once('@') else {
        return false;
    };
    if space != here {
        return false;
    }
    let mut parts = id.rsplitn(3, ':');
    let (Some(_tag), Some(pid), Some(_host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => !runs(pid),
        Err(_) => false,
    }
}

/// The process space: boot id and PID namespace (Linux); `None` elsewhere.
fn process_space() -> Option<&'static str> {
    static SPACE: OnceLock<Option<String>> = OnceLock::new();
    SPACE
        .get_or_init(|| {
            let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            let boot: String = boot.trim().chars().filter(|c| *c != '-').take(12).collect();
            let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
            // `pid:[4026531836]` → the namespace's inode.
            let inode: String = pid_ns
                .to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            (!boot.is_empty() && !inode.is_empty()).then(|| format!("{boot}.{inode}"))
        })
        .as_deref()
}

/// Whether process `pid` runs (a zombie, dead but not yet reaped, does not).
fn runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last `)` (comm may hold any byte).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| state != 'Z' && state != 'X'),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> &'static str {
        process_space().expect("Linux has a process space")
    }

    #[test]
    fn this_process_is_not_gone() {
        let me = default_holder();
        assert!(me.ends_with(&format!("@{}", space())), "{me}");
        assert!(!is_gone(&me));
    }

    #[test]
    fn a_reaped_process_of_this_space_is_gone() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reap");
        assert!(is_gone(&format!("host:{pid}:abcd1234@{}", space())));
    }

    #[test]
    fn a_zombie_is_gone() {
        let child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        // Not reaped yet: wait until it has exited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while runs(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(is_gone(&format!("host:{pid}:abcd1234@{}", space())));
        drop(child);
    }

    #[test]
    fn other_spaces_and_other_shapes_are_never_judged() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reap");
        assert!(!is_gone(&format!("host:{pid}:abcd1234@0123456789ab.1")));
        assert!(!is_gone(&format!("host:{pid}:abcd1234")));
        assert!(!is_gone("my-worker"));
        assert!(!is_gone(&format!("host:notapid:tag@{}", space())));
    }
}
