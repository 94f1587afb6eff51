//! Process groups: liveness through `/proc`, signals, termination with a grace period.
//!
//! Every command runs as the leader of its own session and process group (`setsid`),
//! so its pid is its group id and one signal reaches everything it started. The
//! leader's start time (from `/proc/<pid>/stat`) guards against pid reuse.

use std::collections::HashSet;
use std::ops::Not;
use std::time::Duration;

use tokio::time::Instant;

/// How often liveness is polled while waiting for groups to end.
const POLL: Duration = Duration::from_millis(20);

/// After SIGKILL, how long to wait for the kernel to tear a group down.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A process group started by this provider: its leader pid (= group id) and the
/// leader's start time in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) pgid: i32,
    pub(crate) start_ticks: u64,
}

/// The fields of `/proc/<pid>/stat` we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) state: u8,
    pub(crate) pgrp: i32,
    pub(crate) start_ticks: u64,
}

impl ProcStat {
    fn is_running(&self) -> bool {
        self.state != b'Z' && self.state != b'X'
    }
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist.
pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    let raw = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&raw)
}

fn parse_stat(raw: &[u8]) -> Option<ProcStat> {
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let close = raw.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(raw.get(close + 2..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `rest` starts at field 3 (state); field N is at index N - 3.
    Some(ProcStat {
        state: *fields.first()?.as_bytes().first()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

impl Group {
    /// The group of a just-started leader.
    pub(crate) fn of_leader(pid: i32) -> Group {
        Group {
            pgid: pid,
            start_ticks: stat(pid).map(|s| s.start_ticks).unwrap_or(0),
        }
    }

    /// Whether the leader itself still runs (not exited, not a zombie).
    pub(crate) fn leader_running(&self) -> bool {
        stat(self.pgid).is_some_and(|s| s.start_ticks == self.start_ticks && s.is_running())
    }

    /// Whether the pid now belongs to an unrelated process (the leader exited and was reaped).
    fn reused(&self) -> bool {
        stat(self.pgid).is_some_and(|s| s.start_ticks != self.start_ticks)
    }

    /// Whether the kernel knows any process (zombies included) in group `pgid`.
    fn has_members(&self) -> bool {
        // SAFETY: signal 0 only checks that the group exists; nothing is delivered.
        let rc = unsafe { libc::kill(-self.pgid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    /// Whether any process of the group still runs.
    pub(crate) fn alive(&self) -> bool {
        alive_groups(std::slice::from_ref(self)).is_empty().not()
    }

    /// Sends `signal` to every process of the group (no-op when it is gone).
    pub(crate) fn signal(&self, signal: i32) {
        if self.pgid <= 1 || self.reused() {
            return;
        }
        // SAFETY: kill(2) with a negative pid signals a process group; it has no memory
        // effects on this process.
        let rc = unsafe { libc::kill(-self.pgid, signal) };
        if rc != 0 {
            tracing::debug!(
                pgid = self.pgid,
                signal,
                "signal not delivered: group already gone"
            );
        }
    }
}

/// Process groups with at least one running (non-zombie) member, from one `/proc` scan.
fn running_groups() -> HashSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .filter(ProcStat::is_running)
        .map(|s| s.pgrp)
        .collect()
}

/// The groups among `groups` that still have a running member. The leader's start
/// time guards against pid reuse: a pid is not reallocated while a group of that id
/// has members, so a different process under the leader's pid means the group is gone.
pub(crate) fn alive_groups(groups: &[Group]) -> Vec<Group> {
    let mut scan: Option<HashSet<i32>> = None;
    groups
        .iter()
        .copied()
        .filter(|g| {
            if g.pgid <= 1 {
                return false;
            }
            if g.leader_running() {
                return true;
            }
            if !g.has_members() || g.reused() {
                return false;
            }
            scan.get_or_insert_with(running_groups).contains(&g.pgid)
        })
        .collect()
}

/// Ends the groups: SIGTERM, then SIGKILL for those still alive after `grace`.
/// Returns the groups that had to be killed.
pub(crate) async fn terminate(groups: &[Group], grace: Duration) -> Vec<Group> {
    let alive = alive_groups(groups);
    if alive.is_empty() {
        return Vec::new();
    }
    for g in &alive {
        g.signal(libc::SIGTERM);
    }
    let stubborn = wait_until_gone(&alive, grace).await;
    for g in &stubborn {
        tracing::debug!(
            pgid = g.pgid,
            "process group ignored SIGTERM; sending SIGKILL"
        );
        g.signal(libc::SIGKILL);
    }
    let left = wait_until_gone(&stubborn, KILL_WAIT).await;
    if !left.is_empty() {
        tracing::warn!(
            groups = left.len(),
            "process groups still alive after SIGKILL"
        );
    }
    stubborn
}

/// Kills the groups with SIGKILL right away and waits until they are gone.
pub(crate) async fn kill_now(groups: &[Group]) {
    for g in groups {
        g.signal(libc::SIGKILL);
    }
    wait_until_gone(groups, KILL_WAIT).await;
}

async fn wait_until_gone(groups: &[Group], limit: Duration) -> Vec<Group> {
    let deadline = Instant::now() + limit;
    loop {
        let alive = alive_groups(groups);
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The conventional exit code of a process ended by `signal`.
pub(crate) fn signal_exit_code(signal: i32) -> i32 {
    128 + signal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let raw = b"4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        let st = parse_stat(raw).expect("parse");
        assert_eq!(st.state, b'S');
        assert_eq!(st.pgrp, 4242);
        assert_eq!(st.start_ticks, 987654);
    }

    #[test]
    fn this_process_is_alive_and_its_stat_is_readable() {
        let me = std::process::id() as i32;
        let st = stat(me).expect("own stat");
        assert!(st.is_running());
        assert!(st.start_ticks > 0);
    }
}
