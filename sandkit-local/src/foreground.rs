//! Foreground commands (`exec`): output streamed through pipes, the timeout enforced
//! on every process the command started (see [`crate::procs`]).

use std::time::Duration;

use sandkit_core::{LogChunk, ProcessHandle, ProcessSink, StdStream};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::time::{Instant, sleep_until};

use crate::procs::{self, Group};
use crate::utf8::Utf8Decoder;

/// Exit code reported when the timeout killed the command.
pub(crate) const TIMEOUT_EXIT_CODE: i32 = 137;

/// After a timeout kill, how long to wait for the pipes to close before giving up on
/// output held open by processes that left the command's session.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// Read size for output pipes.
const READ_SIZE: usize = 16 * 1024;

/// One output pipe and its decoder.
struct Pipe<R> {
    reader: Option<R>,
    stream: StdStream,
    decoder: Utf8Decoder,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> Pipe<R> {
    fn new(reader: Option<R>, stream: StdStream) -> Self {
        Pipe {
            reader,
            stream,
            decoder: Utf8Decoder::default(),
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

    /// Forwards `n` read bytes (0 = end of stream) to the sink.
    fn forward(&mut self, read: std::io::Result<usize>, sink: &ProcessSink) {
        let text = match read {
            Ok(n) if n > 0 => self.decoder.decode(&self.buf[..n]),
            _ => {
                self.reader = None;
                self.decoder.finish()
            }
        };
        if !text.is_empty() {
            sink.send(LogChunk {
                stream: self.stream,
                chunk: text,
            });
        }
    }
}

/// Streams the output of `child` into `sink` and reports its exit code. With a
/// `timeout`, all its processes are killed with SIGKILL when it elapses (exit code 137).
pub(crate) async fn supervise(
    mut child: Child,
    group: Group,
    timeout: Option<Duration>,
    sink: &ProcessSink,
) -> i32 {
    let mut out: Pipe<ChildStdout> = Pipe::new(child.stdout.take(), StdStream::Stdout);
    let mut err: Pipe<ChildStderr> = Pipe::new(child.stderr.take(), StdStream::Stderr);
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let deadline = timeout.map_or(far, |t| Instant::now() + t);
    let mut give_up = far;
    let mut exit: Option<i32> = None;
    let mut killed = false;
    while exit.is_none() || out.is_open() || err.is_open() {
        tokio::select! {
            read = out.read(), if out.is_open() => out.forward(read, sink),
            read = err.read(), if err.is_open() => err.forward(read, sink),
            status = child.wait(), if exit.is_none() => {
                exit = Some(match status {
                    Ok(s) => exit_code(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not wait for a command");
                        -1
                    }
                });
            }
            () = sleep_until(deadline), if !killed => {
                tracing::debug!(leader = group.leader, "command timed out; killing its processes");
                let _ = tokio::task::spawn_blocking(move || group.signal(libc::SIGKILL)).await;
                killed = true;
                give_up = Instant::now() + DRAIN_AFTER_KILL;
            }
            () = sleep_until(give_up), if killed => {
                if exit.is_none() {
                    exit = child.wait().await.ok().map(exit_code);
                }
                break;
            }
        }
    }
    if killed {
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
    sink.send(LogChunk::stderr(format!(
        "sandkit-local: {program}: {why} ({err})\n"
    )));
    sink.finish(code);
    handle
}
