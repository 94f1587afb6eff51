//! Foreground commands (`exec`): output streamed through pipes, the timeout enforced
//! on every process the command started (see [`crate::procs`]).

use std::time::Duration;

use sandkit_core::{LogChunk, ProcessHandle, ProcessSink, StdStream};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::time::{Instant, sleep_until};

use crate::procs::{self, Group};

/// Exit code reported when the timeout killed the command.
pub(crate) const TIMEOUT_EXIT_CODE: i32 = 137;

/// After a timeout kill, how long to wait for the pipes to close before giving up on
/// output held open by processes that left the command's session.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// Read size for output pipes.
const READ_SIZE: usize = 16 * 1024;

/// One output pipe.
struct Pipe<R> {
    reader: Option<R>,
    stream: StdStream,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> Pipe<R> {
    fn new(reader: Option<R>, stream: StdStream) -> Self {
        Pipe {
            reader,
            stream,
            buf: vec![0; READ_SIZE],
        }
    }

    fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    async fn read(&mut self) -> std::io::Result<usize> {
        match self.reader.as_mut() {
            Some(r) => r.read(&mut self.buf).await,
            None => std::future::pending().await,
        }
    }

    /// The chunk of `n` read bytes; `None` (and the pipe closed) at the end of stream.
    fn chunk(&mut self, read: std::io::Result<usize>) -> Option<LogChunk> {
        match read {
            Ok(n) if n > 0 => Some(LogChunk::new(self.stream, self.buf[..n].to_vec())),
            _ => {
                self.reader = None;
                None
            }
        }
    }
}

/// The timeout of a command: when it elapses, all its processes are killed.
struct Deadline {
    at: Instant,
    group: Group,
    killed: bool,
}

impl Deadline {
    async fn elapsed(&self) {
        if self.killed {
            std::future::pending::<()>().await;
        }
        sleep_until(self.at).await;
    }

    async fn kill(&mut self) {
        tracing::debug!(
            leader = self.group.leader,
            "command timed out; killing its processes"
        );
        let group = self.group;
        let _ = tokio::task::spawn_blocking(move || group.signal(libc::SIGKILL)).await;
        self.killed = true;
    }

    /// Sends `chunk`, waiting for the reader (backpressure) but not past the deadline.
    async fn send(&mut self, sink: &ProcessSink, chunk: Option<LogChunk>) {
        let Some(chunk) = chunk else {
            return;
        };
        let send = sink.send(chunk);
        tokio::pin!(send);
        tokio::select! {
            _ = &mut send => return,
            () = self.elapsed() => {}
        }
        self.kill().await;
        send.await;
    }
}

/// Streams the output of `child` into `sink` (raw bytes, waiting while the reader is
/// behind) and reports its exit code. With a `timeout`, all its processes are killed
/// with SIGKILL when it elapses (exit code 137).
pub(crate) async fn supervise(
    mut child: Child,
    group: Group,
    timeout: Option<Duration>,
    sink: &ProcessSink,
) -> i32 {
    let mut out: Pipe<ChildStdout> = Pipe::new(child.stdout.take(), StdStream::Stdout);
    let mut err: Pipe<ChildStderr> = Pipe::new(child.stderr.take(), StdStream::Stderr);
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut deadline = Deadline {
        at: timeout.map_or(far, |t| Instant::now() + t),
        group,
        killed: false,
    };
    let mut give_up = far;
    let mut exit: Option<i32> = None;
    while exit.is_none() || out.is_open() || err.is_open() {
        let was_killed = deadline.killed;
        tokio::select! {
            read = out.read(), if out.is_open() => {
                let chunk = out.chunk(read);
                deadline.send(sink, chunk).await;
            }
            read = err.read(), if err.is_open() => {
                let chunk = err.chunk(read);
                deadline.send(sink, chunk).await;
            }
            status = child.wait(), if exit.is_none() => {
                exit = Some(match status {
                    Ok(s) => exit_code(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not wait for a command");
                        -1
                    }
                });
            }
            () = deadline.elapsed(), if !deadline.killed => deadline.kill().await,
            () = sleep_until(give_up), if deadline.killed => {
                if exit.is_none() {
                    exit = child.wait().await.ok().map(exit_code);
                }
                break;
            }
        }
        if deadline.killed && !was_killed {
            give_up = Instant::now() + DRAIN_AFTER_KILL;
        }
    }
    if deadline.killed {
        procs::kill_now(&[group]).await;
        TIMEOUT_EXIT_CODE
    } else {
        exit.unwrap_or(-1)
    }
}

/// The exit code of a finished process (128 + signal when killed by one).
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(procs::signal_exit_code))
        .unwrap_or(-1)
}

/// A handle for a command that could not be started, reported as a shell would:
/// 127 when the program does not exist, 126 when it cannot be executed.
pub(crate) fn not_started(id: String, program: &str, err: &std::io::Error) -> ProcessHandle {
    let (code, why) = match err.kind() {
        std::io::ErrorKind::NotFound => (127, "command not found"),
        _ => (126, "cannot execute"),
    };
    let (sink, handle) = ProcessHandle::channel(id);
    let message = LogChunk::stderr(format!("sandkit-local: {program}: {why} ({err})\n"));
    tokio::spawn(async move {
        sink.send(message).await;
        sink.finish(code);
    });
    handle
}
