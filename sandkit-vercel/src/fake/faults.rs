//! Injected faults: error answers, rate limits, dropped streams, delays, disconnects.

use std::time::Duration;

use super::record::{RecordedRequest, path_matches};

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Answer with this status (and a JSON error body) without handling the request.
    Status(u16),
    /// Answer with this status and this error message (e.g. one quoting what the
    /// request carried), without handling the request.
    StatusMessage {
        /// HTTP status.
        status: u16,
        /// The `error.message` of the JSON body.
        message: String,
    },
    /// Answer 429, with `Retry-After: <seconds>` when given, without handling the request.
    RateLimited {
        /// Seconds for the `Retry-After` header.
        retry_after: Option<u64>,
    },
    /// Handle the request, but end an NDJSON answer after its first line (the stream
    /// drops mid-way). Only NDJSON answers consume this fault.
    DropStream,
    /// Handle the request, then answer with this status instead of its result (the
    /// request had its effect; the client cannot tell).
    FailAfter(u16),
    /// Handle the request and answer this much later.
    Delay(Duration),
    /// Close the connection without an answer, after reading the request.
    Disconnect,
}

/// A fault for the next matching requests.
#[derive(Debug, Clone)]
pub struct Fault {
    pub(crate) kind: FaultKind,
    method: Option<String>,
    pattern: Option<String>,
    pub(crate) times: usize,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            method: None,
            pattern: None,
            times: 1,
        }
    }

    /// Answer `status` (e.g. 500, 503) instead of handling the request.
    pub fn status(status: u16) -> Self {
        Self::new(FaultKind::Status(status))
    }

    /// Answer `status` with `message` as the error message, instead of handling the
    /// request: a server that echoes what it was sent.
    pub fn status_with_message(status: u16, message: impl Into<String>) -> Self {
        Self::new(FaultKind::StatusMessage {
            status,
            message: message.into(),
        })
    }

    /// Answer 429 with `Retry-After: <seconds>`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(FaultKind::RateLimited {
            retry_after: Some(retry_after_secs),
        })
    }

    /// End the next NDJSON answer after its first line.
    pub fn drop_stream() -> Self {
        Self::new(FaultKind::DropStream)
    }

    /// Handle the request, then answer `status` instead of its result: a gateway error
    /// after the work was done.
    pub fn fail_after(status: u16) -> Self {
        Self::new(FaultKind::FailAfter(status))
    }

    /// Answer `delay` later than usual.
    pub fn delay(delay: Duration) -> Self {
        Self::new(FaultKind::Delay(delay))
    }

    /// Close the connection without answering.
    pub fn disconnect() -> Self {
        Self::new(FaultKind::Disconnect)
    }

    /// Only requests with this method and a path matching `pattern` (`*` = one segment).
    pub fn on(mut self, method: &str, pattern: &str) -> Self {
        self.method = Some(method.to_owned());
        self.pattern = Some(pattern.to_owned());
        self
    }

    /// Applies to the next `times` matching requests (default 1).
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    /// What it does.
    pub fn kind(&self) -> &FaultKind {
        &self.kind
    }

    pub(crate) fn applies_to(&self, request: &RecordedRequest) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&request.method))
            && self
                .pattern
                .as_deref()
                .is_none_or(|p| path_matches(p, &request.path))
    }
}
