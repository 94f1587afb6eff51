//! What a fake handler answers, before it becomes a wiremock response.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

/// The exact content type of command streams.
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// A handler's answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Body,
    pub(crate) delay: Option<Duration>,
    pub(crate) retry_after: Option<u64>,
}

/// A reply body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Json(Value),
    Ndjson(Vec<Value>),
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Reply::json(200, body)
    }

    pub(crate) fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Body::Json(body),
            delay: None,
            retry_after: None,
        }
    }

    pub(crate) fn ndjson(lines: Vec<Value>) -> Self {
        Reply {
            status: 200,
            body: Body::Ndjson(lines),
            delay: None,
            retry_after: None,
        }
    }

    /// `{"error": {"code", "message"}}` with `status`.
    pub(crate) fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Reply::json(
            status,
            json!({"error": {"code": code, "message": message.into()}}),
        )
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Reply::error(400, "bad_request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Reply::error(404, "not_found", message)
    }

    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        if !delay.is_zero() {
            self.delay = Some(self.delay.unwrap_or_default() + delay);
        }
        self
    }

    pub(crate) fn into_template(self) -> ResponseTemplate {
        let mut template = ResponseTemplate::new(self.status);
        template = match self.body {
            Body::Json(value) => template.set_body_raw(value.to_string(), "application/json"),
            Body::Ndjson(lines) => {
                let mut text = String::new();
                for line in lines {
                    text.push_str(&line.to_string());
                    text.push('\n');
                }
                template.set_body_raw(text, NDJSON)
            }
        };
        if let Some(secs) = self.retry_after {
            template = template.insert_header("retry-after", secs.to_string().as_str());
        }
        if let Some(delay) = self.delay {
            template = template.set_delay(delay);
        }
        template
    }
}
