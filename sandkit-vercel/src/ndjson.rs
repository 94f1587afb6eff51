//! NDJSON framing of command streams: one JSON object per line, as bytes arrive.

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use reqwest::Response;
use reqwest::header::CONTENT_TYPE;

use crate::client::Failure;

/// The exact content type of command streams.
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// The longest line accepted. The service sends output in chunks far smaller; a longer
/// line means a broken stream, and buffering it would take unbounded memory.
pub(crate) const MAX_LINE: usize = 8 * 1024 * 1024;

/// Why a stream could not give its next line.
#[derive(Debug)]
pub(crate) enum LineError {
    /// The body failed (connection lost, timeout).
    Body(reqwest::Error),
    /// A line grew past [`MAX_LINE`] bytes without ending.
    TooLong,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Body(e) => write!(f, "{e}"),
            LineError::TooLong => write!(
                f,
                "a line grew past {} MiB without ending",
                MAX_LINE / (1024 * 1024)
            ),
        }
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Lines of an NDJSON body as they arrive (empty lines skipped; the last line may lack
/// its newline).
pub(crate) struct NdjsonLines {
    body: ByteStream,
    buffer: BytesMut,
    done: bool,
}

impl NdjsonLines {
    pub(crate) fn from_response(resp: Response, op: &str) -> Result<Self, Failure> {
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if content_type != NDJSON {
            return Err(Failure::Protocol(format!(
                "the answer to {op} has content type {content_type:?}, not {NDJSON:?}; the Vercel API \
                 changed or a proxy rewrote the response"
            )));
        }
        Ok(NdjsonLines {
            body: Box::pin(resp.bytes_stream()),
            buffer: BytesMut::new(),
            done: false,
        })
    }

    /// The next non-empty line; `None` at the end of the body.
    pub(crate) async fn next_line(&mut self) -> Option<Result<Bytes, LineError>> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(pos + 1).freeze();
                let trimmed = trim_line(line);
                if trimmed.is_empty() {
                    continue;
                }
                return Some(Ok(trimmed));
            }
            if self.done {
                if self.buffer.is_empty() {
                    return None;
                }
                let rest = trim_line(self.buffer.split().freeze());
                if rest.is_empty() {
                    return None;
                }
                return Some(Ok(rest));
            }
            if self.buffer.len() > MAX_LINE {
                self.done = true;
                self.buffer.clear();
                return Some(Err(LineError::TooLong));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(chunk.chunk()),
                Some(Err(e)) => {
                    self.done = true;
                    self.buffer.clear();
                    return Some(Err(LineError::Body(e)));
                }
                None => self.done = true,
            }
        }
    }
}

fn trim_line(mut line: Bytes) -> Bytes {
    while line.last().is_some_and(|b| b.is_ascii_whitespace()) {
        line.truncate(line.len() - 1);
    }
    while line.first().is_some_and(|b| b.is_ascii_whitespace()) {
        line.advance(1);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: Vec<Bytes>) -> NdjsonLines {
        NdjsonLines {
            body: Box::pin(futures::stream::iter(chunks.into_iter().map(Ok))),
            buffer: BytesMut::new(),
            done: false,
        }
    }

    #[tokio::test]
    async fn lines_split_across_chunks_are_joined() {
        let mut lines = lines_of(vec![
            Bytes::from_static(b"{\"a\""),
            Bytes::from_static(b":1}\n\n{}"),
        ]);
        assert_eq!(lines.next_line().await.unwrap().unwrap(), &b"{\"a\":1}"[..]);
        assert_eq!(lines.next_line().await.unwrap().unwrap(), &b"{}"[..]);
        assert!(lines.next_line().await.is_none());
    }

    #[tokio::test]
    async fn an_endless_line_is_an_error_not_unbounded_memory() {
        let chunk = Bytes::from(vec![b'x'; 1024 * 1024]);
        let mut lines = lines_of(vec![chunk; MAX_LINE / (1024 * 1024) + 2]);
        let err = lines.next_line().await.unwrap().unwrap_err();
        assert!(matches!(err, LineError::TooLong), "{err}");
        assert!(lines.next_line().await.is_none());
    }

    #[test]
    fn trims_lines() {
        assert_eq!(
            trim_line(Bytes::from_static(b" {}\r\n")),
            Bytes::from_static(b"{}")
        );
        assert!(trim_line(Bytes::from_static(b"\n")).is_empty());
    }
}
