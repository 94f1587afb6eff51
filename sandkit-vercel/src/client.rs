//! The HTTP layer: one [`Call`] per endpoint invocation, retries (§3), error bodies (§4)
//! and decoding of answers.
//!
//! # Retry policy
//!
//! Every call is attempted up to [`RetryConfig::attempts`] times on connection errors,
//! 5xx answers and 429 answers (honouring `Retry-After` up to
//! [`RetryConfig::max_retry_after`], beyond which the 429 is returned at once as
//! `RateLimited`), with a backoff of `base_delay × 2ⁿ × jitter[1, 2)`. Other statuses are
//! never retried.
//!
//! Calls with an effect that must not happen twice ([`Effect::Once`]: create, run
//! command, snapshot, extend) are retried only when the server provably did not act on
//! them: a 429 or 503 (it refused), or a connection that could not be established. A
//! 500/502/504 may come after the backend acted (a gateway timing out on a command
//! that runs), so for these calls it is reported, not retried. A connection lost after the request was
//! sent is reported instead of retried, because the command may already be running.
//! Once the response head of a streamed command has arrived nothing is retried: a
//! stream that breaks is an error. The official SDK retries every call on any network
//! error; this client is stricter so that a durable command never runs twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Response};
use sandkit_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, warn};
use url::Url;

use crate::auth::Auth;
use crate::config::RetryConfig;
use crate::credentials::{Credentials, CredentialsSource};
use crate::ndjson::NdjsonLines;

/// Whether a call may be repeated after an ambiguous transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Reads, deletes and full replacements: safe to send twice.
    Idempotent,
    /// Creates something or runs something: never sent twice unless the server refused it.
    Once,
}

/// One API request. Its body may hold credentials: `Debug` leaves it out.
#[derive(Clone)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) segments: Vec<String>,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
    pub(crate) op: &'static str,
    pub(crate) effect: Effect,
    /// Streams and long polls: no request timeout.
    pub(crate) long: bool,
    /// Values to scrub from anything the server echoes back (credentials in the body).
    pub(crate) secrets: Vec<String>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("path", &self.path())
            .field("op", &self.op)
            .field("effect", &self.effect)
            .finish_non_exhaustive()
    }
}

impl Call {
    pub(crate) fn new(method: Method, op: &'static str, segments: &[&str]) -> Self {
        let effect = if method == Method::GET || method == Method::DELETE {
            Effect::Idempotent
        } else {
            Effect::Once
        };
        Call {
            method,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            op,
            effect,
            long: false,
            secrets: Vec::new(),
        }
    }

    pub(crate) fn get(op: &'static str, segments: &[&str]) -> Self {
        Self::new(Method::GET, op, segments)
    }

    pub(crate) fn post(op: &'static str, segments: &[&str]) -> Self {
        Self::new(Method::POST, op, segments)
    }

    pub(crate) fn delete(op: &'static str, segments: &[&str]) -> Self {
        Self::new(Method::DELETE, op, segments)
    }

    pub(crate) fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub(crate) fn idempotent(mut self) -> Self {
        self.effect = Effect::Idempotent;
        self
    }

    pub(crate) fn long(mut self) -> Self {
        self.long = true;
        self
    }

    pub(crate) fn secrets(mut self, secrets: Vec<String>) -> Self {
        self.secrets = secrets;
        self
    }

    /// `/v2/sandboxes/…` as sent (ids included), for logs and messages.
    pub(crate) fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// Why a call failed, before it becomes a [`sandkit_core::Error`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// A non-2xx answer.
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The server could not be reached or the connection broke.
    Transport {
        source: reqwest::Error,
        /// The request may have reached the server.
        maybe_sent: bool,
    },
    /// The answer does not follow the contract (content type, JSON shape).
    Protocol(String),
}

impl Failure {
    /// Whether the server may have acted on the request although it failed: a
    /// 500/502/504 (a gateway may time out on work that goes on), a connection lost
    /// after the request was sent, or a success answer that could not be read.
    pub(crate) fn maybe_acted(&self) -> bool {
        match self {
            Failure::Status { status, .. } => matches!(status, 500 | 502 | 504),
            Failure::Transport { maybe_sent, .. } => *maybe_sent,
            Failure::Protocol(_) => true,
        }
    }

    /// `(status, code)` of a status failure.
    pub(crate) fn status(&self) -> Option<(u16, Option<&str>)> {
        match self {
            Failure::Status { status, code, .. } => Some((*status, code.as_deref())),
            _ => None,
        }
    }
}

/// The Vercel API over HTTP.
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: Url,
    auth: Arc<Auth>,
    retry: RetryConfig,
    request_timeout: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub(crate) fn new(
        base: Url,
        credentials: Credentials,
        source: Option<Arc<dyn CredentialsSource>>,
        retry: RetryConfig,
        request_timeout: Duration,
        user_agent: &str,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                Error::provider(
                    None,
                    None,
                    format!("could not build the HTTP client for the Vercel API ({e})"),
                )
            })?;
        Ok(ApiClient {
            http,
            base,
            auth: Arc::new(Auth::new(credentials, source)),
            retry,
            request_timeout,
        })
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.base
    }

    /// The credentials in use now.
    pub(crate) fn credentials(&self) -> Credentials {
        self.auth.current()
    }

    fn url(&self, call: &Call, credentials: &Credentials) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(&call.segments);
        }
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in &call.query {
                query.append_pair(key, value);
            }
            query.append_pair("teamId", credentials.team_id());
        }
        url
    }

    fn request(&self, call: &Call) -> reqwest::RequestBuilder {
        let credentials = self.credentials();
        // Credentials only hold printable ASCII tokens, so this cannot fail in practice.
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", credentials.token().expose()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-token"));
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(call.method.clone(), self.url(call, &credentials))
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json");
        if let Some(body) = &call.body {
            req = req.body(body.to_string());
        }
        if !call.long {
            req = req.timeout(self.request_timeout);
        }
        req
    }

    /// Sends `call`, retrying per the module policy; returns a 2xx response.
    pub(crate) async fn send(&self, call: &Call) -> Result<Response, Failure> {
        Auth::refresh_if_expiring(&self.auth).await;
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let outcome = self.request(call).send().await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let wait = match outcome {
                Ok(resp) if resp.status().is_success() => {
                    debug!(op = call.op, method = %call.method, path = %call.path(), status = resp.status().as_u16(), attempt, elapsed_ms, "vercel api call");
                    return Ok(resp);
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = retry_after(resp.headers());
                    debug!(op = call.op, method = %call.method, path = %call.path(), status, attempt, elapsed_ms, "vercel api call failed");
                    let too_long = status == 429
                        && retry_after.is_some_and(|d| d > self.retry.max_retry_after);
                    // A call that must not happen twice is retried only when the server
                    // clearly refused it (429, 503); a 500/502/504 may come after the
                    // backend acted, so it is reported instead.
                    let refused = status == 429 || status == 503;
                    let transient = refused || (status >= 500 && call.effect == Effect::Idempotent);
                    if too_long || !transient || attempt >= attempts {
                        return Err(status_failure(resp, retry_after).await);
                    }
                    let extra = if status == 429 {
                        retry_after.unwrap_or_default()
                    } else {
                        Duration::ZERO
                    };
                    extra + self.retry.backoff(attempt)
                }
                Err(source) => {
                    let unsent = source.is_connect();
                    debug!(op = call.op, method = %call.method, path = %call.path(), attempt, elapsed_ms, connect = unsent, "vercel api call did not complete");
                    let retry = !source.is_builder()
                        && (unsent || call.effect == Effect::Idempotent)
                        && attempt < attempts;
                    if !retry {
                        return Err(Failure::Transport {
                            source,
                            maybe_sent: !unsent,
                        });
                    }
                    self.retry.backoff(attempt)
                }
            };
            warn!(
                op = call.op,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "transient Vercel API failure; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Sends `call` and decodes its JSON answer (an empty body reads as `{}`).
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, Failure> {
        let resp = self.send(call).await?;
        let text = resp.text().await.map_err(|source| Failure::Transport {
            source,
            maybe_sent: true,
        })?;
        let text = if text.trim().is_empty() { "{}" } else { &text };
        serde_json::from_str(text).map_err(|e| {
            Failure::Protocol(format!(
                "the answer to {} is not the JSON the contract describes ({e})",
                call.op
            ))
        })
    }

    /// Sends `call` and checks the answer is an NDJSON stream.
    pub(crate) async fn ndjson(&self, call: &Call) -> Result<NdjsonLines, Failure> {
        let resp = self.send(call).await?;
        NdjsonLines::from_response(resp, call.op)
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(86_400.0)))
}

async fn status_failure(resp: Response, retry_after: Option<Duration>) -> Failure {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let error = &json["error"];
    let code = error["code"].as_str().map(str::to_owned);
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .or_else(|| json["message"].as_str())
        .map(str::to_owned);
    Failure::Status {
        status,
        code,
        message,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(5)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
