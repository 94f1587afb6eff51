//! Child processes measured from the outside: wall time and peak RSS (`wait4`'s rusage).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a measured child ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// Spawn to reaped.
    pub wall: Duration,
    /// Peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Finished {
    /// Fails with the command's stderr unless it exited 0.
    pub fn ok(self, what: &str) -> Result<Finished, String> {
        if self.code == Some(0) {
            Ok(self)
        } else {
            Err(format!(
                "{what} ended with {:?}; stderr:\n{}",
                self.code,
                self.stderr.trim_end()
            ))
        }
    }
}

/// Runs `cmd` to its end, draining its output, and reaps it with `wait4` to read its
/// peak RSS. Stdin is closed.
pub fn run(cmd: &mut Command) -> Result<Finished, String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (status, max_rss_kib) =
        wait4(child.id()).map_err(|e| format!("could not wait for {shown}: {e}"))?;
    let wall = started.elapsed();
    // `child` is reaped; dropping it does not wait again.
    drop(child);
    Ok(Finished {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        wall,
        max_rss_kib,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Waits for `pid`, returning its wait status and `ru_maxrss` (KiB on Linux).
fn wait4(pid: u32) -> std::io::Result<(i32, u64)> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    loop {
        let mut status = 0;
        // SAFETY: all-zero bytes are a valid `rusage` (plain integers and timevals).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own unreaped child; both pointers are valid for writes.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0)));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_reports_exit_code_output_and_a_plausible_peak_rss() {
        let done = run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
            .expect("sh runs");
        assert_eq!(done.code, Some(3));
        assert_eq!(
            (done.stdout.as_str(), done.stderr.as_str()),
            ("out\n", "err\n")
        );
        // A shell needs at least a few hundred KiB and far less than a GiB.
        assert!(
            (100..1_048_576).contains(&done.max_rss_kib),
            "{}",
            done.max_rss_kib
        );
        assert!(done.clone().ok("sh").is_err());
    }
}
