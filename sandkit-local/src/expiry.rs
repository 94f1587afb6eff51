//! Session expiry that does not wait for the next Sandkit call.
//!
//! Background processes outlive the OS process that started them, so a session whose
//! owner exited (a CLI call, a crashed app) would keep them running past its expiry
//! until some later call touched the session. The first background process of a
//! session therefore starts a watchdog: a detached `sh` loop (its own OS session,
//! reparented away from the caller) that sleeps until the deadline in the session's
//! `expires` file, then stops every process recorded in its `groups` file (SIGTERM,
//! the kill grace, SIGKILL) and exits. It exits early when the session directory goes
//! away (the session ended). The directory itself is removed by the next call that
//! touches the session, as before; with its processes gone there is nothing left
//! running in the meantime.
//!
//! The files are plain text so the watchdog needs nothing but `sh`, `cat`, `date`,
//! `sleep` and `kill`: `expires` holds the deadline in Unix seconds (rounded up, so no
//! process is stopped early), `groups` one `<leader pid> <leader start ticks>` line per
//! process, the same identity [`procs`](crate::procs) uses to survive pid reuse.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::layout::SessionPaths;
use crate::procs::Group;

/// `$0` of the watchdog, shown by `ps`.
const WATCHDOG_NAME: &str = "sandkit-session-expiry";

/// Longest single sleep of the watchdog: how late it notices an extension or an ended
/// session (an extension only ever moves the deadline later, so it is never late to
/// stop processes).
const MAX_NAP_SECS: u32 = 10;

/// The watchdog: `$1` the session directory, `$2` the kill grace in seconds.
///
/// A process belongs to a recorded command when its session id (field 6 of
/// `/proc/<pid>/stat`) is the command's leader pid; a leader pid that now names a
/// process with another start time was reused, and is skipped.
const WATCHDOG: &str = r#"
d=$1; grace=$2; nap=$3
trap '' HUP INT
while :; do
  e=$(cat "$d/expires" 2>/dev/null) || exit 0
  [ -d "$d" ] || exit 0
  n=$(date +%s)
  [ "$n" -ge "$e" ] && break
  w=$((e - n)); [ "$w" -gt "$nap" ] && w=$nap
  sleep "$w"
done
stop() {
  sig=$1
  while read -r leader ticks; do
    if { read -r s < "/proc/$leader/stat"; } 2>/dev/null; then
      set -- ${s##*) }
      [ "${20}" = "$ticks" ] || continue
    fi
    for p in /proc/[0-9]*; do
      { read -r s < "$p/stat"; } 2>/dev/null || continue
      set -- ${s##*) }
      [ "$4" = "$leader" ] && kill "-$sig" "${p#/proc/}" 2>/dev/null
    done
  done < "$d/groups"
}
stop TERM
sleep "$grace"
stop KILL
"#;

fn deadline_secs(expires_at: DateTime<Utc>) -> i64 {
    let secs = expires_at.timestamp();
    if expires_at.timestamp_subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

/// Writes the session's deadline for its watchdog (atomically: write, then rename).
pub(crate) fn set_deadline(paths: &SessionPaths, expires_at: DateTime<Utc>) -> std::io::Result<()> {
    let tmp = paths.dir.join("expires.tmp");
    std::fs::write(&tmp, format!("{}\n", deadline_secs(expires_at)))?;
    std::fs::rename(&tmp, paths.dir.join("expires"))
}

/// Moves the deadline of a watched session (no-op when no watchdog was started).
pub(crate) fn extend(paths: &SessionPaths, expires_at: DateTime<Utc>) -> std::io::Result<()> {
    if paths.dir.join("expires").exists() {
        set_deadline(paths, expires_at)?;
    }
    Ok(())
}

/// Records `group` for the watchdog and starts the watchdog if it is not running yet.
pub(crate) fn watch(
    paths: &SessionPaths,
    group: Group,
    expires_at: DateTime<Utc>,
    grace: Duration,
) -> std::io::Result<()> {
    let mut groups = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.dir.join("groups"))?;
    groups.write_all(format!("{} {}\n", group.leader, group.start_ticks).as_bytes())?;
    // The first caller to create the marker starts the one watchdog of the session.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(paths.dir.join("watchdog"))
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    set_deadline(paths, expires_at)?;
    start(paths, grace)
}

/// Starts the watchdog detached: `sh` in a new OS session starts it in the background
/// and exits at once (and is reaped here), so the watchdog is nobody's child.
fn start(paths: &SessionPaths, grace: Duration) -> std::io::Result<()> {
    let grace = grace.as_secs().max(1).to_string();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", r#"sh -c "$0" "$@" &"#, WATCHDOG, WATCHDOG_NAME])
        .arg(&paths.dir)
        .args([grace, MAX_NAP_SECS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "the session expiry watchdog did not start ({status})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up() {
        let at = DateTime::from_timestamp(100, 1).unwrap();
        assert_eq!(deadline_secs(at), 101);
        let at = DateTime::from_timestamp(100, 0).unwrap();
        assert_eq!(deadline_secs(at), 100);
    }
}
