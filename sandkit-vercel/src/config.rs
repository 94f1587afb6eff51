//! [`VercelProviderBuilder`]: base URL, credentials, defaults and retry settings.

use std::sync::Arc;
use std::time::Duration;

use sandkit_core::{Error, Result};
use url::Url;

use crate::client::ApiClient;
use crate::credentials::{Credentials, CredentialsSource};
use crate::provider::{VercelProvider, capabilities};

/// The public Vercel API (paths such as `/v3/sandboxes` are appended).
pub const DEFAULT_BASE_URL: &str = "https://vercel.com/api";

/// Environment variable [`VercelProvider::from_env`](crate::VercelProvider::from_env)
/// reads for another API base URL (a proxy, or the fake API in tests).
pub const BASE_URL_VAR: &str = "SANDKIT_VERCEL_BASE_URL";

/// Longest session lifetime on Pro and Enterprise plans. Hobby allows 45 minutes:
/// set [`VercelProviderBuilder::max_timeout`] accordingly.
pub const PRO_MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest session lifetime on the Hobby plan.
pub const HOBBY_MAX_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// How transient failures are retried (§3 of the API contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per call, including the first (default 3).
    pub attempts: u32,
    /// Wait before the second attempt; doubles per attempt, times a jitter in [1, 2)
    /// (default 400 ms).
    pub base_delay: Duration,
    /// Longest `Retry-After` honoured on a 429; a longer one is returned at once as
    /// `RateLimited` (default 20 s).
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            base_delay: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(20),
        }
    }
}

impl RetryConfig {
    /// The wait after failed attempt `attempt` (1-based), before any `Retry-After`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let jitter: f64 = rand::random_range(1.0..2.0);
        self.base_delay.saturating_mul(factor).mul_f64(jitter)
    }
}

/// Everything a provider needs besides its HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) default_timeout: Duration,
    pub(crate) vcpus: Option<u32>,
    pub(crate) snapshot_expiration: Duration,
    pub(crate) region: Option<String>,
    pub(crate) max_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) settle_limit: Duration,
    pub(crate) deadline_grace: Duration,
}

/// Builds a [`VercelProvider`].
///
/// ```no_run
/// use std::time::Duration;
/// use sandkit_vercel::{Credentials, VercelProvider};
///
/// let provider = VercelProvider::builder()
///     .credentials(Credentials::access_token("example-token", "team_abc", "prj_123")?)
///     .vcpus(4)
///     .region("iad1")
///     .snapshot_expiration(Duration::from_secs(7 * 24 * 3600))
///     .build()?;
/// # Ok::<(), sandkit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct VercelProviderBuilder {
    base_url: String,
    credentials: Option<Credentials>,
    credentials_source: Option<Arc<dyn CredentialsSource>>,
    settings: Settings,
    retry: RetryConfig,
    request_timeout: Duration,
    user_agent: String,
}

impl Default for VercelProviderBuilder {
    fn default() -> Self {
        VercelProviderBuilder {
            base_url: DEFAULT_BASE_URL.to_owned(),
            credentials: None,
            credentials_source: None,
            settings: Settings {
                default_timeout: Duration::from_secs(5 * 60),
                vcpus: None,
                snapshot_expiration: Duration::ZERO,
                region: None,
                max_timeout: PRO_MAX_TIMEOUT,
                poll_interval: Duration::from_millis(500),
                settle_limit: Duration::from_secs(120),
                deadline_grace: Duration::from_secs(60),
            },
            retry: RetryConfig::default(),
            request_timeout: Duration::from_secs(60),
            user_agent: default_user_agent(),
        }
    }
}

/// `sandkit/<version> (Rust; <os>/<arch>)`.
pub fn default_user_agent() -> String {
    format!(
        "sandkit/{} (Rust; {}/{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

impl VercelProviderBuilder {
    /// API base URL (default [`DEFAULT_BASE_URL`]; `https://api.vercel.com` is equivalent).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Credentials; read from the environment at [`build`](Self::build) when unset.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Session lifetime used when a start request asks for zero (default 5 minutes, the
    /// Vercel default).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.settings.default_timeout = timeout;
        self
    }

    /// vCPUs when a start request does not say (1 or an even number; Vercel's default
    /// is 2).
    pub fn vcpus(mut self, vcpus: u32) -> Self {
        self.settings.vcpus = Some(vcpus);
        self
    }

    /// Expiry of the snapshots this provider takes. The default, `Duration::ZERO`,
    /// is never: Sandkit's own retention deletes a snapshot once no head, recent run,
    /// fork or setup needs it, so a platform expiry can only take a head from a
    /// workspace that sat idle (Vercel's default is 30 days after last use). Set one
    /// to cap what a project keeps even if retention never runs, accepting that an
    /// idle workspace then loses its head (a typed `SnapshotUnavailable`; reset or
    /// restore it).
    pub fn snapshot_expiration(mut self, expiration: Duration) -> Self {
        self.settings.snapshot_expiration = expiration;
        self
    }

    /// Region to create sandboxes in (`iad1` when unset).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.settings.region = Some(region.into());
        self
    }

    /// Longest session lifetime of the plan (default [`PRO_MAX_TIMEOUT`]; use
    /// [`HOBBY_MAX_TIMEOUT`] on Hobby).
    pub fn max_timeout(mut self, max: Duration) -> Self {
        self.settings.max_timeout = max;
        self
    }

    /// Retry settings (tests use small delays).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Timeout of one ordinary API request (default 60 s). Streams and long polls
    /// (command output, waiting for an exit) have none.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often a session that is stopping or snapshotting is polled (default 500 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval;
        self
    }

    /// How long a command stream or wait for an exit code may stay open past its
    /// session's deadline before the session is checked (default 60 s), and how often
    /// it is checked after that. A session found stopped ends the wait with
    /// `SessionUnavailable` instead of hanging on a connection that went silent.
    pub fn deadline_grace(mut self, grace: Duration) -> Self {
        self.settings.deadline_grace = grace;
        self
    }

    /// Where to get a fresh OIDC token: when the one in use expires within 5 minutes,
    /// the source is asked in the background while requests go on with the current
    /// token; once it has expired, requests wait for the source (at most 20 s). While it
    /// fails it is asked at most every 30 s; failures are logged and the current token
    /// kept. A fresh token must be for the same team and project. Access tokens do not
    /// expire and are never refreshed.
    pub fn credentials_source(mut self, source: Arc<dyn CredentialsSource>) -> Self {
        self.credentials_source = Some(source);
        self
    }

    /// `User-Agent` header (default [`default_user_agent`]).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Builds the provider.
    ///
    /// # Errors
    /// `InvalidInput` for a bad base URL or setting; `Credentials` when none were given
    /// and the environment has none.
    pub fn build(self) -> Result<VercelProvider> {
        let base = parse_base_url(&self.base_url)?;
        let s = &self.settings;
        crate::validate::vcpus(s.vcpus)?;
        if s.max_timeout < Duration::from_secs(1) {
            return Err(Error::invalid_input(
                "max_timeout must be at least 1s; use the plan maximum (45 min Hobby, 24 h Pro)",
            ));
        }
        if s.deadline_grace < Duration::from_millis(10) {
            return Err(Error::invalid_input(
                "deadline_grace must be at least 10 ms (it is also how often a session past its \
                 deadline is checked); the default is 60 s",
            ));
        }
        if self.retry.attempts == 0 {
            return Err(Error::invalid_input(
                "retry attempts must be at least 1 (the first attempt counts)",
            ));
        }
        if s.region.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(Error::invalid_input(
                "region must not be empty; leave it unset for the default (iad1)",
            ));
        }
        let credentials = match self.credentials {
            Some(c) => c,
            None => Credentials::from_env()?,
        };
        let client = ApiClient::new(
            base,
            credentials,
            self.credentials_source,
            self.retry,
            self.request_timeout,
            &self.user_agent,
        )?;
        let caps = capabilities(&self.settings);
        Ok(VercelProvider::new(Arc::new(client), self.settings, caps))
    }
}

fn parse_base_url(raw: &str) -> Result<Url> {
    let bad = |why: String| {
        Error::invalid_input(format!(
            "Vercel base URL {raw:?} {why}; use an http(s) URL such as {DEFAULT_BASE_URL}"
        ))
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(bad("is not an http(s) URL".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment".to_owned()));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        let retry = RetryConfig::default();
        for _ in 0..50 {
            let first = retry.backoff(1);
            let second = retry.backoff(2);
            assert!(first >= Duration::from_millis(400) && first < Duration::from_millis(800));
            assert!(second >= Duration::from_millis(800) && second < Duration::from_millis(1600));
        }
    }

    #[test]
    fn user_agent_names_crate_and_platform() {
        let ua = default_user_agent();
        assert!(ua.starts_with(&format!("sandkit/{} (Rust; ", env!("CARGO_PKG_VERSION"))));
        assert!(ua.contains(std::env::consts::OS) && ua.ends_with(')'));
    }

    #[test]
    fn a_zero_deadline_grace_is_refused() {
        let creds = Credentials::access_token("tok", "team_abc", "prj_123").expect("creds");
        let err = VercelProviderBuilder::default()
            .credentials(creds.clone())
            .deadline_grace(Duration::ZERO)
            .build()
            .expect_err("a busy loop");
        assert!(err.to_string().contains("deadline_grace"), "{err}");
        VercelProviderBuilder::default()
            .credentials(creds)
            .deadline_grace(Duration::MAX)
            .build()
            .expect("no upper bound: a huge grace never checks");
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("https://vercel.com/api/")
                .expect("ok")
                .as_str(),
            "https://vercel.com/api"
        );
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("https://x/api?x=1").is_err());
    }
}
