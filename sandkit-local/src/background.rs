//! Background processes (`spawn`): started under a tiny `sh` supervisor in their own
//! session, output to log files in the session directory, exit code to a file, so
//! they outlive the OS process that started them and any process can follow them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sandkit_core::{LogChunk, LogStream, ProcessHandle, Result, StdStream};
use tokio::io::AsyncReadExt;

use crate::errors::io_error;
use crate::procs::Group;

/// `sh -c` script supervising a background command (its arguments). It traps
/// SIGTERM/SIGINT/SIGHUP (its child does not inherit the trap), waits for the command
/// and records its exit status (143 after SIGTERM) on descriptor 3, the exit-code file
/// opened by the provider (so it needs no path, inside a sandbox or not), which the
/// command itself does not inherit.
pub(crate) const SUPERVISOR: &str = r#"trap : HUP INT TERM; "$@" 3>&-; echo $? >&3"#;

/// `$0` of the supervisor, shown in its error messages.
pub(crate) const SUPERVISOR_NAME: &str = "sandkit-process";

/// How often log files and exit files are polled.
const POLL: Duration = Duration::from_millis(25);

/// Read size for log files.
const READ_SIZE: usize = 64 * 1024;

/// Exit code recorded when the supervisor itself was killed (SIGKILL).
pub(crate) const KILLED_EXIT_CODE: i32 = 137;

/// Where a background process reports its end.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    pub(crate) exit_file: PathBuf,
    pub(crate) group: Group,
}

/// Reads an exit-code file; `None` while missing or not yet written.
pub(crate) fn read_exit_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Watch {
    /// The exit code once the process ended.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        if let Some(code) = read_exit_file(&self.exit_file) {
            return Some(code);
        }
        if self.group.leader_running() {
            return None;
        }
        // The supervisor is gone: it either wrote the file just now, or was killed.
        Some(read_exit_file(&self.exit_file).unwrap_or(KILLED_EXIT_CODE))
    }

    /// Records `code` unless an exit code is already there.
    pub(crate) fn record_if_missing(&self, code: i32) {
        if read_exit_file(&self.exit_file).is_none()
            && let Err(e) = std::fs::write(&self.exit_file, format!("{code}\n"))
        {
            tracing::debug!(error = %e, "could not record an exit code (session ended?)");
        }
    }

    async fn wait(&self) -> i32 {
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A handle following the logs of a background process from their start.
pub(crate) fn handle(id: String, logs: [PathBuf; 2], watch: Watch) -> ProcessHandle {
    let output = follow(logs, watch.clone());
    ProcessHandle {
        id,
        output,
        exit: Box::pin(async move { Ok(watch.wait().await) }),
    }
}

struct Source {
    path: PathBuf,
    stream: StdStream,
    file: Option<tokio::fs::File>,
}

impl Source {
    /// New bytes since the last call; `None` when there is nothing new.
    async fn read_new(&mut self, buf: &mut [u8]) -> std::io::Result<Option<Vec<u8>>> {
        if self.file.is_none() {
            match tokio::fs::File::open(&self.path).await {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(None);
        };
        let n = file.read(buf).await?;
        Ok((n > 0).then(|| buf[..n].to_vec()))
    }
}

struct Follower {
    sources: [Source; 2],
    watch: Watch,
    pending: VecDeque<LogChunk>,
    buf: Vec<u8>,
    finishing: bool,
    ended: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<LogChunk>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(Ok(chunk));
            }
            if self.ended {
                return None;
            }
            let mut progressed = false;
            for source in &mut self.sources {
                match source.read_new(&mut self.buf).await {
                    Ok(Some(bytes)) => {
                        progressed = true;
                        self.pending.push_back(LogChunk::new(source.stream, bytes));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(io_error("reading a process log", e)));
                    }
                }
            }
            if progressed {
                continue;
            }
            if self.finishing {
                self.ended = true;
            } else if self.watch.exit_code().is_some() {
                // One more pass picks up what was written just before the exit.
                self.finishing = true;
            } else {
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Replays the log files from the start and follows them until the process ends.
pub(crate) fn follow([stdout, stderr]: [PathBuf; 2], watch: Watch) -> LogStream {
    let source = |path, stream| Source {
        path,
        stream,
        file: None,
    };
    let follower = Follower {
        sources: [
            source(stdout, StdStream::Stdout),
            source(stderr, StdStream::Stderr),
        ],
        watch,
        pending: VecDeque::new(),
        buf: vec![0; READ_SIZE],
        finishing: false,
        ended: false,
    };
    Box::pin(futures::stream::unfold(follower, |mut f| async move {
        f.next().await.map(|item| (item, f))
    }))
}
