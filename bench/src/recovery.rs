//! Figure 9: from a `kill -9` of a running `sandkit run` to the next successful run on
//! the same workspace (same host), against the lease TTL.
//!
//! Per iteration, in one temporary home: `sandkit run ws -- sh -c 'echo started; sleep
//! 600'` runs with its stdout piped until the `started` line arrives and its `sleep 600`
//! runs; then the clock starts, the process gets SIGKILL and is reaped, and `sandkit run
//! ws -- true` (no `--wait`) runs at once — again after a short pause while it answers
//! busy (exit code 3), for at most the lease TTL + 5 s — until it exits 0. A durable
//! command's lease whose holder process is gone on this machine is recovered at once;
//! before that, the next run was refused as busy until the lease's TTL ran out.
//!
//! The baseline is a plain `sandkit run ws -- true` on the same workspace, alternating
//! with the kills. After each recovery the killed run must be journaled `interrupted`
//! (`sandkit runs ws --json`) and no `sleep 600` of the home's sandboxes may be left
//! (`/proc/*/cmdline`); both are counted as violations.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Lines, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::args::Args;
use crate::cli_wall::{Cli, sandkit_bin};
use crate::stats::{median, ms, round, summary_json};

/// The workspace everything runs in.
const WORKSPACE: &str = "ws";
/// The shell script of the run that gets killed.
const LONG_SCRIPT: &str = "echo started; sleep 600";
/// The arguments of the killed run's sandbox process that must not outlive the kill.
const SLEEPER_ARGS: [&str; 1] = ["600"];
/// `sandkit run`'s exit code for a busy workspace.
const BUSY: i32 = 3;
/// Pause between attempts while the workspace answers busy.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How much longer than the lease TTL a recovery may take before the figure fails.
const MARGIN: Duration = Duration::from_secs(5);
/// How long the killed run's `sleep 600` may take to appear after `started`.
const SLEEPER_WAIT: Duration = Duration::from_secs(10);

/// Runs the figure and prints one JSON line.
pub fn run(args: &Args) -> Result<(), String> {
    let iterations = args.pick(40, 5);
    let home = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    // Canonical, as the sandbox processes' working directories read in `/proc`.
    let home_dir = std::fs::canonicalize(home.path()).map_err(|e| format!("temp dir: {e}"))?;
    let cli = Cli {
        bin: sandkit_bin(args)?,
        home: home_dir,
    };
    // Whatever happens, no `sleep 600` of this home outlives the figure.
    let _cleanup = Cleanup(cli.home.clone());
    // The CLI uses the library's default configuration.
    let ttl = sandkit_core::Config::default().command_lease_ttl;
    // Creates the workspace and its database, then warms up: two plain runs and one
    // untimed kill and recovery.
    for _ in 0..2 {
        plain_run(&cli)?;
    }
    let mut killed_runs = BTreeSet::new();
    kill_and_recover(&cli, ttl, &mut killed_runs)?;
    let (mut recover_ms, mut baseline_ms, mut extra_ms, mut kill_ms) =
        (vec![], vec![], vec![], vec![]);
    let (mut busy, mut not_interrupted, mut sleepers_left) = (0, 0, 0);
    for i in 0..iterations {
        let (r, b) = if i % 2 == 0 {
            let r = kill_and_recover(&cli, ttl, &mut killed_runs)?;
            (r, plain_run(&cli)?)
        } else {
            let b = plain_run(&cli)?;
            (kill_and_recover(&cli, ttl, &mut killed_runs)?, b)
        };
        recover_ms.push(ms(r.to_success));
        kill_ms.push(ms(r.kill_and_reap));
        baseline_ms.push(ms(b));
        extra_ms.push(ms(r.to_success) - ms(b));
        busy += r.busy_answers;
        not_interrupted += usize::from(!r.interrupted);
        sleepers_left += r.sleepers_left;
    }
    let ttl_ms = ms(ttl);
    println!(
        "{}",
        json!({
            "figure": 9,
            "iterations": iterations,
            "lease_ttl_s": ttl.as_secs_f64(),
            "kill_to_success_ms": summary_json(&recover_ms, "ms"),
            "baseline_ms": summary_json(&baseline_ms, "ms"),
            "extra_ms": summary_json(&extra_ms, "ms"),
            "kill_and_reap_ms": summary_json(&kill_ms, "ms"),
            "ratio_baseline": round(median(&recover_ms) / median(&baseline_ms)),
            // Small: kept to six decimals.
            "ratio_ttl": (median(&recover_ms) / ttl_ms * 1e6).round() / 1e6,
            "busy_answers": busy,
            "killed_run_not_interrupted": not_interrupted,
            "sleepers_left": sleepers_left,
        })
    );
    Ok(())
}

/// `sandkit run ws -- true`, which must exit 0; its wall time.
fn plain_run(cli: &Cli) -> Result<Duration, String> {
    let done = crate::child::run(&mut cli.command(&["run", WORKSPACE, "--", "true"]))?
        .ok("sandkit run ws -- true")?;
    Ok(done.wall)
}

/// One kill and the recovery after it.
struct Recovery {
    /// From just before SIGKILL to the next run's exit 0.
    to_success: Duration,
    /// SIGKILL and reaping alone.
    kill_and_reap: Duration,
    /// How often the next run answered busy first.
    busy_answers: usize,
    /// Whether the journal shows the killed run `interrupted` afterwards.
    interrupted: bool,
    /// `sleep 600` processes of the home's sandboxes still running afterwards.
    sleepers_left: usize,
}

fn kill_and_recover(
    cli: &Cli,
    ttl: Duration,
    killed_runs: &mut BTreeSet<String>,
) -> Result<Recovery, String> {
    let mut long = cli.command(&["run", WORKSPACE, "--", "sh", "-c", LONG_SCRIPT]);
    long.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = long
        .spawn()
        .map_err(|e| format!("could not start sandkit run: {e}"))?;
    let stderr = drain(child.stderr.take());
    // Held open until the process is reaped, as for any healthy run.
    let _stdout = match wait_until_sleeping(&mut child, &cli.home) {
        Ok(stdout) => stdout,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{e}; stderr of sandkit run:\n{}",
                stderr.join().unwrap_or_default().trim_end()
            ));
        }
    };
    let t0 = Instant::now();
    child
        .kill()
        .map_err(|e| format!("could not kill sandkit run: {e}"))?;
    child
        .wait()
        .map_err(|e| format!("could not reap sandkit run: {e}"))?;
    let kill_and_reap = t0.elapsed();
    let mut busy_answers = 0;
    loop {
        let next = crate::child::run(&mut cli.command(&["run", WORKSPACE, "--", "true"]))?;
        match next.code {
            Some(0) => break,
            Some(BUSY) if t0.elapsed() < ttl + MARGIN => {
                busy_answers += 1;
                std::thread::sleep(RETRY_PAUSE);
            }
            code => {
                return Err(format!(
                    "after the kill, sandkit run ws -- true ended with {code:?} after {:.1} s \
                     ({busy_answers} busy answers before); stderr:\n{}",
                    t0.elapsed().as_secs_f64(),
                    next.stderr.trim_end()
                ));
            }
        }
    }
    let to_success = t0.elapsed();
    let _ = stderr.join();
    Ok(Recovery {
        to_success,
        kill_and_reap,
        busy_answers,
        interrupted: killed_run_interrupted(cli, killed_runs)?,
        sleepers_left: sleepers(&cli.home).len(),
    })
}

/// Reads the child's stdout until `started`, then waits for its `sleep 600` to run;
/// returns the rest of the stdout pipe.
fn wait_until_sleeping(
    child: &mut Child,
    home: &Path,
) -> Result<Lines<BufReader<ChildStdout>>, String> {
    let stdout = child.stdout.take().ok_or("stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.trim() == "started" => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("reading sandkit run's output: {e}")),
            None => return Err("sandkit run ended without printing `started`".to_owned()),
        }
    }
    let deadline = Instant::now() + SLEEPER_WAIT;
    while sleepers(home).is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "no `sleep 600` of the sandbox appeared within {} s of `started`",
                SLEEPER_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(lines)
}

/// Whether the newest run of the long script, one not seen before, is `interrupted`.
fn killed_run_interrupted(cli: &Cli, seen: &mut BTreeSet<String>) -> Result<bool, String> {
    let listed =
        crate::child::run(&mut cli.command(&["runs", WORKSPACE, "--json", "--limit", "10"]))?
            .ok("sandkit runs ws --json")?;
    let runs: Value = serde_json::from_str(&listed.stdout)
        .map_err(|e| format!("sandkit runs ws --json printed no JSON array: {e}"))?;
    let killed = runs.as_array().and_then(|runs| {
        runs.iter().find(|r| {
            r["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|arg| arg.as_str() == Some(LONG_SCRIPT)))
        })
    });
    let Some(killed) = killed else {
        return Ok(false);
    };
    let id = killed["id"].as_str().unwrap_or_default().to_owned();
    // The newest run of the script must be the one just killed, not an earlier one.
    let new = !id.is_empty() && seen.insert(id);
    Ok(new && killed["status"] == "interrupted")
}

/// Live `sleep 600` processes (by `/proc/PID/cmdline`) whose working directory lies
/// under `home` (a session of the local provider there). The `sandkit run` whose
/// command line merely mentions `sleep 600` does not count.
fn sleepers(home: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let dir = PathBuf::from(format!("/proc/{pid}"));
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            is_sleeper(&cmdline)
                && std::fs::read_link(dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(home))
                && !is_zombie(&dir)
        })
        .collect()
}

/// Whether a NUL-separated command line is `sleep 600` (any path to `sleep`).
fn is_sleeper(cmdline: &[u8]) -> bool {
    let text = String::from_utf8_lossy(cmdline);
    let mut argv = text.strip_suffix('\0').unwrap_or(&text).split('\0');
    argv.next()
        .is_some_and(|program| Path::new(program).file_name().is_some_and(|f| f == "sleep"))
        && argv.eq(SLEEPER_ARGS)
}

/// Whether the process has exited but is not reaped yet.
fn is_zombie(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X')
    })
}

/// Reads a pipe to its end on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// Kills any `sleep 600` left under the home when the figure ends (it would otherwise
/// outlive the temporary directory by ten minutes).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in sleepers(&self.0) {
            // SAFETY: kill(2) only sends a signal; the pid is a process of the figure's
            // own sandboxes (its working directory is under the temporary home).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sleep_600_itself_is_a_sleeper() {
        assert!(is_sleeper(b"sleep\x00600\x00"));
        assert!(is_sleeper(b"/usr/bin/sleep\x00600\x00"));
        assert!(!is_sleeper(b"sleep\x00601\x00"));
        assert!(!is_sleeper(b"sh\x00-c\x00echo started; sleep 600\x00"));
        assert!(!is_sleeper(
            b"sandkit\x00run\x00ws\x00--\x00sh\x00-c\x00echo started; sleep 600\x00"
        ));
        assert!(!is_sleeper(b""));
    }

    #[test]
    fn sleepers_are_found_by_command_line_and_working_directory() {
        let home = tempfile::tempdir().expect("temp dir");
        let home = std::fs::canonicalize(home.path()).expect("canonical");
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .current_dir(&home)
            .spawn()
            .expect("sleep runs");
        let pid = i32::try_from(child.id()).expect("pid");
        // The child shows `sleep 600` only once it has exec'd: wait for that (bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = sleepers(&home);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
            found = sleepers(&home);
        }
        let elsewhere = tempfile::tempdir().expect("temp dir");
        let other = sleepers(elsewhere.path());
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert_eq!(found, vec![pid]);
        assert!(other.is_empty());
        assert!(sleepers(&home).is_empty());
    }
}
