//! Command output: a replayable log buffer, results, and capping for storage.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::provider::{LogChunk, LogStream, ProcessHandle, StdStream};

/// What a finished command produced. A non-zero `exit_code` is a result, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommandResult {
    /// Exit code (137 when killed by its timeout).
    pub exit_code: i32,
    /// Standard output (complete, unless `replayed` and `stdout_truncated`).
    pub stdout: String,
    /// Standard error (complete, unless `replayed` and `stderr_truncated`).
    pub stderr: String,
    /// The durable run, for commands run with `run_command`/`spawn_command`.
    pub run_id: Option<RunId>,
    /// `true` when an idempotency key matched a finished run and this result was read
    /// back from the journal instead of running again.
    pub replayed: bool,
    /// `stdout` is incomplete: cut at the store's output cap (replayed results) or at
    /// the in-memory cap ([`DEFAULT_LOG_MEMORY_CAP`]).
    pub stdout_truncated: bool,
    /// `stderr` is incomplete, likewise.
    pub stderr_truncated: bool,
}

impl CommandResult {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    pub(crate) fn new(exit_code: i32, stdout: String, stderr: String) -> Self {
        CommandResult {
            exit_code,
            stdout,
            stderr,
            run_id: None,
            replayed: false,
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }
}

/// Bytes of each stream a [`LogBuffer`] keeps by default (16 MiB): a command that
/// prints more is not stopped, but the rest of that stream is dropped from memory and
/// the result says it was truncated.
pub const DEFAULT_LOG_MEMORY_CAP: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
struct LogState {
    chunks: Vec<LogChunk>,
    /// Bytes kept per stream (stdout, stderr).
    bytes: [usize; 2],
    /// Whether a stream went over the cap.
    truncated: [bool; 2],
    done: bool,
    error: Option<Error>,
}

fn slot(stream: StdStream) -> usize {
    match stream {
        StdStream::Stdout => 0,
        StdStream::Stderr => 1,
    }
}

#[derive(Debug)]
struct LogInner {
    state: Mutex<LogState>,
    version: watch::Sender<u64>,
    cap: usize,
}

/// An append-only log of output chunks that every reader replays from the start, then
/// follows until it is closed. Providers can use it to serve `process_logs`.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<LogInner>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::with_cap(DEFAULT_LOG_MEMORY_CAP)
    }
}

impl LogBuffer {
    /// A buffer keeping at most `cap` bytes of each stream.
    pub fn with_cap(cap: usize) -> Self {
        LogBuffer {
            inner: Arc::new(LogInner {
                state: Mutex::new(LogState::default()),
                version: watch::channel(0).0,
                cap,
            }),
        }
    }

    /// Whether stdout and stderr went over the memory cap (their tails were dropped).
    pub fn truncated(&self) -> (bool, bool) {
        let st = self.lock();
        (st.truncated[0], st.truncated[1])
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the log was closed.
    pub fn is_closed(&self) -> bool {
        self.lock().done
    }

    fn bump(&self) {
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// Appends a chunk and wakes readers.
    pub fn push(&self, mut chunk: LogChunk) {
        {
            let mut st = self.lock();
            let i = slot(chunk.stream);
            let room = self.inner.cap.saturating_sub(st.bytes[i]);
            if chunk.chunk.len() > room {
                let (kept, _) = cap_output(&chunk.chunk, room);
                if !st.truncated[i] {
                    tracing::warn!(
                        cap = self.inner.cap,
                        stream = ?chunk.stream,
                        "command output over the memory cap; the rest of this stream is dropped"
                    );
                }
                st.truncated[i] = true;
                chunk.chunk = kept;
            }
            if chunk.chunk.is_empty() {
                return;
            }
            st.bytes[i] += chunk.chunk.len();
            st.chunks.push(chunk);
        }
        self.bump();
    }

    /// Ends the log (with an error for readers, if any).
    pub fn close(&self, error: Option<Error>) {
        {
            let mut st = self.lock();
            st.done = true;
            st.error = error;
        }
        self.bump();
    }

    /// Concatenated stdout and stderr so far.
    pub fn collect(&self) -> (String, String) {
        let st = self.lock();
        let mut out = String::new();
        let mut err = String::new();
        for c in &st.chunks {
            match c.stream {
                StdStream::Stdout => out.push_str(&c.chunk),
                StdStream::Stderr => err.push_str(&c.chunk),
            }
        }
        (out, err)
    }

    /// A reader from the first chunk, following until the log is closed.
    pub fn stream(&self) -> LogStream {
        let buf = self.clone();
        let rx = self.inner.version.subscribe();
        Box::pin(futures::stream::unfold(
            (buf, rx, 0usize, false),
            |(buf, mut rx, idx, ended)| async move {
                if ended {
                    return None;
                }
                loop {
                    {
                        let st = buf.lock();
                        if let Some(chunk) = st.chunks.get(idx) {
                            let chunk = chunk.clone();
                            drop(st);
                            return Some((Ok(chunk), (buf, rx, idx + 1, false)));
                        }
                        if st.done {
                            let err = st.error.clone();
                            drop(st);
                            return err.map(|e| (Err(e), (buf, rx, idx, true)));
                        }
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        ))
    }

    /// Drains a process handle into this buffer; returns its exit code.
    pub async fn pump(&self, handle: ProcessHandle) -> Result<i32> {
        let ProcessHandle {
            mut output, exit, ..
        } = handle;
        while let Some(item) = output.next().await {
            match item {
                Ok(chunk) => self.push(chunk),
                Err(e) => {
                    self.close(Some(e.clone()));
                    return Err(e);
                }
            }
        }
        match exit.await {
            Ok(code) => {
                self.close(None);
                Ok(code)
            }
            Err(e) => {
                self.close(Some(e.clone()));
                Err(e)
            }
        }
    }
}

/// Cuts `text` to at most `cap` bytes on a character boundary; `true` when cut.
pub(crate) fn cap_output(text: &str, cap: usize) -> (String, bool) {
    if text.len() <= cap {
        return (text.to_owned(), false);
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_respects_char_boundaries() {
        assert_eq!(cap_output("hello", 10), ("hello".to_owned(), false));
        assert_eq!(cap_output("hello", 3), ("hel".to_owned(), true));
        // 'é' is two bytes: cutting at 2 must not split it.
        assert_eq!(cap_output("aé", 2), ("a".to_owned(), true));
    }

    #[tokio::test]
    async fn every_reader_replays_then_follows() {
        let buf = LogBuffer::default();
        buf.push(LogChunk::stdout("a"));
        let early = buf.stream();
        buf.push(LogChunk::stderr("b"));
        let handle = tokio::spawn({
            let buf = buf.clone();
            async move {
                tokio::task::yield_now().await;
                buf.push(LogChunk::stdout("c"));
                buf.close(None);
            }
        });
        let early: Vec<_> = early.map(|c| c.unwrap().chunk).collect().await;
        handle.await.unwrap();
        let late: Vec<_> = buf.stream().map(|c| c.unwrap().chunk).collect().await;
        assert_eq!(early, ["a", "b", "c"]);
        assert_eq!(late, ["a", "b", "c"]);
        assert_eq!(buf.collect(), ("ac".to_owned(), "b".to_owned()));
    }

    #[test]
    fn streams_are_capped_in_memory() {
        let buf = LogBuffer::with_cap(4);
        buf.push(LogChunk::stdout("abc"));
        buf.push(LogChunk::stdout("def"));
        buf.push(LogChunk::stderr("xy"));
        buf.push(LogChunk::stdout("more"));
        assert_eq!(buf.collect(), ("abcd".to_owned(), "xy".to_owned()));
        assert_eq!(buf.truncated(), (true, false));
    }

    #[tokio::test]
    async fn a_failed_log_ends_with_the_error() {
        let buf = LogBuffer::default();
        buf.push(LogChunk::stdout("a"));
        buf.close(Some(Error::provider(None, None, "stream dropped")));
        let items: Vec<_> = buf.stream().collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }
}
