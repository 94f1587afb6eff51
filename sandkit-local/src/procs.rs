//! The processes of a command: liveness through `/proc`, signals, termination with a
//! grace period.
//!
//! Every command runs as the leader of its own OS session (`setsid`), so its pid is its
//! session id. What it starts stays in that session even when it moves to another
//! process group (`setpgid`, `setpgrp`, shell job control); only `setsid` leaves it.
//! A command is therefore tracked by session: every process whose session (field 6 of
//! `/proc/<pid>/stat`) is the leader's pid belongs to it, and signals go to each of
//! their process groups. The leader's start time guards against pid reuse.
//!
//! Scans read `/proc`; async callers run them on the blocking pool.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

/// How often liveness is polled while waiting for processes to end.
const POLL: Duration = Duration::from_millis(20);

/// After SIGKILL, how long to wait for the kernel to tear the processes down.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The processes of one command: the OS session its leader created. `leader` is the
/// leader's pid (= session id = its process group id), `start_ticks` its start time
/// in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) leader: i32,
    pub(crate) start_ticks: u64,
}

/// The fields of `/proc/<pid>/stat` we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) state: u8,
    pub(crate) pgrp: i32,
    pub(crate) session: i32,
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
        session: fields.get(3)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Every running (non-zombie) process, from one `/proc` scan.
fn scan() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .filter(ProcStat::is_running)
        .collect()
}

impl Group {
    /// The processes of a just-started leader.
    pub(crate) fn of_leader(pid: i32) -> Group {
        Group {
            leader: pid,
            start_ticks: stat(pid).map(|s| s.start_ticks).unwrap_or(0),
        }
    }

    /// Whether the leader itself still runs (not exited, not a zombie).
    pub(crate) fn leader_running(&self) -> bool {
        stat(self.leader).is_some_and(|s| s.start_ticks == self.start_ticks && s.is_running())
    }

    /// Whether the pid now belongs to an unrelated process. A pid is not reallocated
    /// while any process still uses it as its session or group id, so then the
    /// command's processes are all gone.
    fn reused(&self) -> bool {
        stat(self.leader).is_some_and(|s| s.start_ticks != self.start_ticks)
    }

    fn valid(&self) -> bool {
        self.leader > 1 && !self.reused()
    }

    /// Whether any process of the command still runs.
    pub(crate) fn alive(&self) -> bool {
        !alive_groups(std::slice::from_ref(self)).is_empty()
    }

    /// Sends `signal` to every process of the command (no-op when they are gone).
    pub(crate) fn signal(&self, signal: i32) {
        signal_all(std::slice::from_ref(self), signal);
    }
}

/// The commands among `groups` with at least one running process.
pub(crate) fn alive_groups(groups: &[Group]) -> Vec<Group> {
    let mut procs: Option<Vec<ProcStat>> = None;
    groups
        .iter()
        .copied()
        .filter(|g| {
            if g.leader <= 1 {
                return false;
            }
            if g.leader_running() {
                return true;
            }
            if g.reused() {
                return false;
            }
            procs
                .get_or_insert_with(scan)
                .iter()
                .any(|p| p.session == g.leader)
        })
        .collect()
}

/// Sends `signal` to every process group holding a process of the given commands.
pub(crate) fn signal_all(groups: &[Group], signal: i32) {
    let valid: Vec<Group> = groups.iter().copied().filter(Group::valid).collect();
    if valid.is_empty() {
        return;
    }
    let procs = scan();
    for g in valid {
        let mut pgids: BTreeSet<i32> = procs
            .iter()
            .filter(|p| p.session == g.leader)
            .map(|p| p.pgrp)
            .collect();
        if g.leader_running() {
            pgids.insert(g.leader);
        }
        for pgid in pgids.into_iter().filter(|p| *p > 1) {
            // SAFETY: kill(2) with a negative pid signals a process group; it has no
            // memory effects on this process.
            if unsafe { libc::kill(-pgid, signal) } != 0 {
                tracing::debug!(pgid, signal, "signal not delivered: group already gone");
            }
        }
    }
}

/// Runs a `/proc` scan (or signals) on the blocking pool.
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = tokio::task::spawn_blocking(work);
    handle
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Ends the commands: SIGTERM, then SIGKILL for those still alive after `grace`.
/// Returns the commands that had to be killed.
pub(crate) async fn terminate(groups: &[Group], grace: Duration) -> Vec<Group> {
    let groups = groups.to_vec();
    let alive = off_runtime(move || {
        let alive = alive_groups(&groups);
        signal_all(&alive, libc::SIGTERM);
        alive
    })
    .await;
    if alive.is_empty() {
        return Vec::new();
    }
    let stubborn = wait_until_gone(&alive, grace, None).await;
    if stubborn.is_empty() {
        return stubborn;
    }
    tracing::debug!(
        commands = stubborn.len(),
        "processes ignored SIGTERM; sending SIGKILL"
    );
    kill_now(&stubborn).await;
    stubborn
}

/// Kills the commands with SIGKILL right away and waits until they are gone.
pub(crate) async fn kill_now(groups: &[Group]) {
    let left = wait_until_gone(groups, KILL_WAIT, Some(libc::SIGKILL)).await;
    if !left.is_empty() {
        tracing::warn!(commands = left.len(), "processes still alive after SIGKILL");
    }
}

/// Polls until the commands are gone or `limit` passed, sending `resend` (if any) on
/// every poll so processes forked into new groups meanwhile get it too. Returns those
/// still alive.
async fn wait_until_gone(groups: &[Group], limit: Duration, resend: Option<i32>) -> Vec<Group> {
    let deadline = Instant::now() + limit;
    let mut groups = groups.to_vec();
    loop {
        groups = off_runtime(move || {
            if let Some(signal) = resend {
                signal_all(&groups, signal);
            }
            alive_groups(&groups)
        })
        .await;
        if groups.is_empty() || Instant::now() >= deadline {
            return groups;
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
        assert_eq!(st.session, 4242);
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
