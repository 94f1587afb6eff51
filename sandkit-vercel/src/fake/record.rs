//! [`RecordedRequest`]: what the fake received.

use std::collections::BTreeMap;

use serde_json::Value;
use wiremock::Request;

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// Path, e.g. `/v2/sandboxes/sessions/sbx_2/cmd`.
    pub path: String,
    /// Query pairs in order.
    pub query: Vec<(String, String)>,
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (a JSON string holding the raw text when it is not JSON), or
    /// `None` when empty.
    pub body: Option<Value>,
}

impl RecordedRequest {
    pub(crate) fn from_wiremock(request: &Request) -> Self {
        let headers = request
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = if request.body.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&request.body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&request.body).into_owned())
            }))
        };
        RecordedRequest {
            method: request.method.as_str().to_owned(),
            path: request.url.path().to_owned(),
            query: request
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers,
            body,
        }
    }

    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Whether the method is `method` and the path matches `pattern`, where a `*`
    /// segment matches any one segment (`/v2/sandboxes/sessions/*/cmd`).
    pub fn matches(&self, method: &str, pattern: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && path_matches(pattern, &self.path)
    }
}

/// Whether `path` matches `pattern`, where a `*` segment matches any one segment.
pub(crate) fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, s)| *p == "*" || p == s)
}
