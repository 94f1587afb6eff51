//! Command output: a replayable log buffer, results, and capping for storage.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::provider::{LogChunk, LogStream, ProcessHandle, StdStream};

/// What a finished command produced. A non-zero `exit_code` is a result, not an error.
///
/// `stdout`/`stderr` are text (invalid UTF-8 replaced by U+FFFD); the bytes exactly as
/// the command wrote them are [`stdout_bytes`](CommandResult::stdout_bytes) and
/// [`stderr_bytes`](CommandResult::stderr_bytes). Either way they hold at most the
/// in-memory cap ([`DEFAULT_LOG_MEMORY_CAP`]); follow the command's logs to see output
/// of any size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommandResult {
    /// Exit code (137 when killed by its timeout).
    pub exit_code: i32,
    /// Standard output as text (complete unless `stdout_truncated`).
    pub stdout: String,
    /// Standard error as text (complete unless `stderr_truncated`).
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
    /// Raw stdout, kept only when it is not valid UTF-8 (else `stdout` has the bytes).
    #[serde(skip)]
    stdout_raw: Option<Vec<u8>>,
    /// Raw stderr, likewise.
    #[serde(skip)]
    stderr_raw: Option<Vec<u8>>,
}

impl CommandResult {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Standard output exactly as the command wrote it (up to the in-memory cap). For a
    /// replayed result, the journal's stored text.
    pub fn stdout_bytes(&self) -> &[u8] {
        self.stdout_raw.as_deref().unwrap_or(self.stdout.as_bytes())
    }

    /// Standard error exactly as the command wrote it, likewise.
    pub fn stderr_bytes(&self) -> &[u8] {
        self.stderr_raw.as_deref().unwrap_or(self.stderr.as_bytes())
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
            stdout_raw: None,
            stderr_raw: None,
        }
    }

    /// A result from raw output: text for `stdout`/`stderr`, the bytes kept when they
    /// are not valid UTF-8.
    pub(crate) fn from_bytes(exit_code: i32, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        let (stdout, stdout_raw) = text_and_raw(stdout);
        let (stderr, stderr_raw) = text_and_raw(stderr);
        let mut result = Self::new(exit_code, stdout, stderr);
        result.stdout_raw = stdout_raw;
        result.stderr_raw = stderr_raw;
        result
    }

    /// A result of what `logs` collected, with its truncation flags.
    pub(crate) fn from_logs(exit_code: i32, logs: &LogBuffer) -> Self {
        let (stdout, stderr) = logs.collect_bytes();
        let mut result = Self::from_bytes(exit_code, stdout, stderr);
        (result.stdout_truncated, result.stderr_truncated) = logs.truncated();
        result
    }
}

/// The text of `bytes`, and the bytes themselves when the text is not exactly them.
fn text_and_raw(bytes: Vec<u8>) -> (String, Option<Vec<u8>>) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let bytes = e.into_bytes();
            (String::from_utf8_lossy(&bytes).into_owned(), Some(bytes))
        }
    }
}

/// Bytes of each stream a [`LogBuffer`] keeps by default (16 MiB): a command that
/// prints more is not stopped; live readers still get every byte, but the rest of that
/// stream is not kept in memory (nor replayed) and the result says it was truncated.
pub const DEFAULT_LOG_MEMORY_CAP: usize = 16 * 1024 * 1024;

/// Bytes past the memory cap a [`LogBuffer`] holds for attached readers that are
/// behind (4 MiB); beyond that, [`LogBuffer::pump`] waits for the slowest reader.
pub const LIVE_OUTPUT_BACKLOG: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
struct LogState {
    /// Chunks within the cap, with their sequence numbers: replayed to every reader.
    kept: Vec<(u64, LogChunk)>,
    /// Chunks past the cap, held only until every attached reader has read them.
    live: VecDeque<(u64, LogChunk)>,
    /// Bytes in `live`.
    live_bytes: usize,
    /// Sequence number of the next chunk.
    next_seq: u64,
    /// Bytes kept per stream (stdout, stderr).
    kept_bytes: [usize; 2],
    /// Bytes written per stream, kept or not.
    written: [u64; 2],
    /// Whether a stream went over the cap.
    truncated: [bool; 2],
    /// Attached readers: reader id → sequence number of the next chunk it wants.
    readers: BTreeMap<u64, u64>,
    next_reader: u64,
    done: bool,
    error: Option<Error>,
}

impl LogState {
    /// Drops live chunks every reader has read; `true` when some were dropped.
    fn trim(&mut self) -> bool {
        let oldest = self.readers.values().min().copied().unwrap_or(u64::MAX);
        let mut trimmed = false;
        while let Some((seq, chunk)) = self.live.front() {
            if *seq >= oldest {
                break;
            }
            self.live_bytes -= chunk.len();
            self.live.pop_front();
            trimmed = true;
        }
        trimmed
    }

    /// The first chunk at or after `pos`.
    fn next_from(&self, pos: u64) -> Option<(u64, LogChunk)> {
        let first = |chunks: &[(u64, LogChunk)]| -> Option<(u64, LogChunk)> {
            let i = chunks.partition_point(|(seq, _)| *seq < pos);
            chunks.get(i).cloned()
        };
        let kept = first(&self.kept);
        let live = {
            let i = self.live.partition_point(|(seq, _)| *seq < pos);
            self.live.get(i).cloned()
        };
        match (kept, live) {
            (Some(k), Some(l)) => Some(if k.0 < l.0 { k } else { l }),
            (k, l) => k.or(l),
        }
    }
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
    backlog: usize,
}

/// An append-only log of output chunks that every reader replays from the start, then
/// follows until it is closed. Providers can use it to serve `process_logs`.
///
/// It keeps at most its cap of each stream (for replay and [`collect`](LogBuffer::collect)).
/// Output past the cap still reaches every reader attached at the time (a
/// [`stream`](LogBuffer::stream) not yet dropped): it is held until they all read it,
/// and [`pump`](LogBuffer::pump) waits while more than [`LIVE_OUTPUT_BACKLOG`] bytes
/// are held. So a stream that is kept but never read holds a command with large output
/// up: drop streams you do not read.
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
        Self::with_limits(cap, LIVE_OUTPUT_BACKLOG)
    }

    fn with_limits(cap: usize, backlog: usize) -> Self {
        LogBuffer {
            inner: Arc::new(LogInner {
                state: Mutex::new(LogState::default()),
                version: watch::channel(0).0,
                cap,
                backlog,
            }),
        }
    }

    /// Whether stdout and stderr went over the memory cap (their tails were not kept).
    pub fn truncated(&self) -> (bool, bool) {
        let st = self.lock();
        (st.truncated[0], st.truncated[1])
    }

    /// Bytes written to stdout and stderr so far, kept or not.
    pub fn written(&self) -> (u64, u64) {
        let st = self.lock();
        (st.written[0], st.written[1])
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

    /// Appends a chunk and wakes readers. Never waits: past the cap, the chunk is held
    /// for attached readers however far behind they are ([`pump`](LogBuffer::pump)
    /// is the backpressured way in).
    pub fn push(&self, chunk: LogChunk) {
        if chunk.is_empty() {
            return;
        }
        {
            let mut st = self.lock();
            let i = slot(chunk.stream);
            st.written[i] += chunk.len() as u64;
            let room = self.inner.cap.saturating_sub(st.kept_bytes[i]);
            let LogChunk { stream, mut bytes } = chunk;
            let over = bytes.split_off(bytes.len().min(room));
            if !bytes.is_empty() {
                let seq = st.next_seq;
                st.next_seq += 1;
                st.kept_bytes[i] += bytes.len();
                st.kept.push((seq, LogChunk::new(stream, bytes)));
            }
            if !over.is_empty() {
                if !st.truncated[i] {
                    // Not a warning: attached readers still get every byte, and the
                    // result and journal say the kept copy was cut.
                    tracing::info!(
                        cap = self.inner.cap,
                        stream = ?stream,
                        "command output over the memory cap; the rest of this stream goes to attached readers only"
                    );
                }
                st.truncated[i] = true;
                if !st.readers.is_empty() {
                    let seq = st.next_seq;
                    st.next_seq += 1;
                    st.live_bytes += over.len();
                    st.live.push_back((seq, LogChunk::new(stream, over)));
                }
            }
        }
        self.bump();
    }

    /// Waits until attached readers are at most the backlog behind (or none is left).
    async fn wait_for_readers(&self) {
        let mut rx = self.inner.version.subscribe();
        loop {
            {
                let st = self.lock();
                if st.live_bytes <= self.inner.backlog || st.readers.is_empty() {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
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

    /// Concatenated stdout and stderr kept so far, as text (invalid UTF-8 becomes
    /// U+FFFD).
    pub fn collect(&self) -> (String, String) {
        let (out, err) = self.collect_bytes();
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    /// Concatenated stdout and stderr kept so far, as raw bytes.
    pub fn collect_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let st = self.lock();
        let mut out = Vec::with_capacity(st.kept_bytes[0]);
        let mut err = Vec::with_capacity(st.kept_bytes[1]);
        for (_, c) in &st.kept {
            match c.stream {
                StdStream::Stdout => out.extend_from_slice(&c.bytes),
                StdStream::Stderr => err.extend_from_slice(&c.bytes),
            }
        }
        (out, err)
    }

    /// A reader from the first chunk, following until the log is closed. It is
    /// attached until dropped: output past the cap waits for it (see [`LogBuffer`]).
    pub fn stream(&self) -> LogStream {
        let id = {
            let mut st = self.lock();
            let id = st.next_reader;
            st.next_reader += 1;
            st.readers.insert(id, 0);
            id
        };
        let reader = Reader {
            buf: self.clone(),
            rx: self.inner.version.subscribe(),
            id,
            ended: false,
        };
        Box::pin(futures::stream::unfold(reader, |mut reader| async move {
            reader.next().await.map(|item| (item, reader))
        }))
    }

    /// Drains a process handle into this buffer; returns its exit code. Past the cap it
    /// waits for attached readers that are more than [`LIVE_OUTPUT_BACKLOG`] behind, so
    /// output of any size streams through them in bounded memory.
    pub async fn pump(&self, handle: ProcessHandle) -> Result<i32> {
        let ProcessHandle {
            mut output, exit, ..
        } = handle;
        while let Some(item) = output.next().await {
            match item {
                Ok(chunk) => {
                    self.push(chunk);
                    self.wait_for_readers().await;
                }
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

/// One attached reader of a [`LogBuffer`].
struct Reader {
    buf: LogBuffer,
    rx: watch::Receiver<u64>,
    id: u64,
    ended: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<LogChunk>> {
        if self.ended {
            return None;
        }
        loop {
            {
                let mut st = self.buf.lock();
                let pos = st.readers.get(&self.id).copied().unwrap_or(0);
                if let Some((seq, chunk)) = st.next_from(pos) {
                    st.readers.insert(self.id, seq + 1);
                    let trimmed = st.trim();
                    drop(st);
                    if trimmed {
                        self.buf.bump();
                    }
                    return Some(Ok(chunk));
                }
                if st.done {
                    self.ended = true;
                    return st.error.clone().map(Err);
                }
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let wake = {
            let mut st = self.buf.lock();
            st.readers.remove(&self.id);
            // A pump waiting for this reader re-checks.
            st.trim() || st.readers.is_empty()
        };
        if wake {
            self.buf.bump();
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
        let early: Vec<_> = early.map(|c| c.unwrap().bytes).collect().await;
        handle.await.unwrap();
        let late: Vec<_> = buf.stream().map(|c| c.unwrap().bytes).collect().await;
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
        assert_eq!(buf.written(), (10, 2));
    }

    #[test]
    fn bytes_are_kept_exactly() {
        let buf = LogBuffer::with_cap(5);
        buf.push(LogChunk::stdout(&b"\x89PNG"[..]));
        buf.push(LogChunk::stdout(&b"\xff\xfe"[..]));
        let (out, _) = buf.collect_bytes();
        // Cut at the cap byte-wise: no character boundaries for raw bytes.
        assert_eq!(out, b"\x89PNG\xff");
        let result = CommandResult::from_logs(0, &buf);
        assert_eq!(result.stdout_bytes(), b"\x89PNG\xff");
        assert_eq!(result.stdout, "\u{FFFD}PNG\u{FFFD}");
        assert!(result.stdout_truncated);
    }

    #[tokio::test]
    async fn attached_readers_get_output_past_the_cap() {
        let buf = LogBuffer::with_limits(4, 8);
        let reader = buf.stream();
        let (sink, handle) = ProcessHandle::channel("p");
        let pump = tokio::spawn({
            let buf = buf.clone();
            async move { buf.pump(handle).await }
        });
        let total = 1000usize;
        let writer = tokio::spawn(async move {
            for i in 0..total {
                assert!(sink.send(LogChunk::stdout(vec![(i % 251) as u8])).await);
            }
            sink.finish(0);
        });
        // Read slowly: the pump must wait for us instead of dropping anything.
        let got: Vec<u8> = reader
            .then(|c| async move {
                tokio::task::yield_now().await;
                c.unwrap().bytes
            })
            .flat_map(|b| futures::stream::iter(b.to_vec()))
            .collect()
            .await;
        writer.await.unwrap();
        assert_eq!(pump.await.unwrap().unwrap(), 0);
        let want: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        assert_eq!(got, want);
        assert_eq!(buf.collect_bytes().0, want[..4].to_vec());
        assert_eq!(buf.written(), (total as u64, 0));
        // Nothing past the cap is held once every reader has read it.
        assert_eq!(buf.lock().live_bytes, 0);
        // A late reader replays only what was kept.
        let late: Vec<_> = buf.stream().map(|c| c.unwrap().bytes).collect().await;
        assert_eq!(late.concat(), want[..4].to_vec());
    }

    #[tokio::test]
    async fn a_dropped_reader_releases_the_pump() {
        let buf = LogBuffer::with_limits(1, 1);
        let reader = buf.stream();
        let (sink, handle) = ProcessHandle::channel("p");
        let pump = tokio::spawn({
            let buf = buf.clone();
            async move { buf.pump(handle).await }
        });
        let writer = tokio::spawn(async move {
            for _ in 0..200 {
                sink.send(LogChunk::stdout("xx")).await;
            }
            sink.finish(3);
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !pump.is_finished(),
            "the pump waits for the attached reader"
        );
        drop(reader);
        writer.await.unwrap();
        assert_eq!(pump.await.unwrap().unwrap(), 3);
        assert_eq!(buf.written(), (400, 0));
        assert_eq!(buf.collect_bytes().0, b"x");
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
