//! NDJSON framing of command streams: one JSON object per line, as bytes arrive.

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use reqwest::Response;
use reqwest::header::CONTENT_TYPE;

use crate::client::Failure;

/// The exact content type of command streams.
pub(crate) const NDJSON: &str = "application/x-ndjson";

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
    pub(crate) async fn next_line(&mut self) -> Option<Result<Bytes, reqwest::Error>> {
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
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(chunk.chunk()),
                Some(Err(e)) => {
                    self.done = true;
                    self.buffer.clear();
                    return Some(Err(e));
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

    #[test]
    fn trims_lines() {
        assert_eq!(
            trim_line(Bytes::from_static(b" {}\r\n")),
            Bytes::from_static(b"{}")
        );
        assert!(trim_line(Bytes::from_static(b"\n")).is_empty());
    }
}
