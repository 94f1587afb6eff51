//! The credentials requests carry, and their refresh from a [`CredentialsSource`]
//! before an OIDC token expires.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::credentials::{Credentials, CredentialsSource};

/// How long before its expiry an OIDC token is refreshed (as the official SDK does).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// After a failed refresh, how long to keep the current token before asking again.
const REFRESH_BACKOFF: Duration = Duration::from_secs(30);

/// How long a credentials source may take to answer.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(20);

/// The credentials in use and where fresh ones come from.
pub(crate) struct Auth {
    current: RwLock<Credentials>,
    source: Option<Arc<dyn CredentialsSource>>,
    /// Held while a refresh runs; when the last one failed.
    refreshing: tokio::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source is the user's type: its `Debug` could show a secret.
        f.debug_struct("Auth")
            .field("credentials", &self.current())
            .field("refreshed_from_a_source", &self.source.is_some())
            .finish()
    }
}

impl Auth {
    pub(crate) fn new(
        credentials: Credentials,
        source: Option<Arc<dyn CredentialsSource>>,
    ) -> Self {
        Auth {
            current: RwLock::new(credentials),
            source,
            refreshing: tokio::sync::Mutex::new(None),
        }
    }

    /// The credentials in use now.
    pub(crate) fn current(&self) -> Credentials {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Before a request: an OIDC token that expires within [`REFRESH_MARGIN`] is
    /// refreshed from the source, if there is one. While it is still valid the refresh
    /// runs in the background and the request goes on with it; once it has expired the
    /// request waits for the refresh (at most [`REFRESH_TIMEOUT`]).
    pub(crate) async fn refresh_if_expiring(auth: &Arc<Auth>) {
        if auth.source.is_none() || !auth.current().expires_within(REFRESH_MARGIN) {
            return;
        }
        if auth.current().expires_within(Duration::ZERO) {
            auth.refresh(true).await;
        } else {
            let auth = auth.clone();
            tokio::spawn(async move { auth.refresh(false).await });
        }
    }

    /// One refresh at a time (`wait`: queue behind one in progress; otherwise leave it
    /// to that one). A failure is logged and the current token kept, and the source is
    /// not asked again for [`REFRESH_BACKOFF`].
    async fn refresh(&self, wait: bool) {
        let Some(source) = &self.source else {
            return;
        };
        let mut failed_at = if wait {
            self.refreshing.lock().await
        } else {
            match self.refreshing.try_lock() {
                Ok(guard) => guard,
                Err(_) => return,
            }
        };
        let current = self.current();
        if !current.expires_within(REFRESH_MARGIN)
            || failed_at.is_some_and(|at| at.elapsed() < REFRESH_BACKOFF)
        {
            return;
        }
        let failure = match tokio::time::timeout(REFRESH_TIMEOUT, source.fetch()).await {
            Ok(Ok(fresh)) if current.may_be_replaced_by(&fresh) => {
                info!(expires_at = ?fresh.expires_at(), "vercel oidc token refreshed");
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                *failed_at = None;
                return;
            }
            Ok(Ok(_)) => {
                "it gave a token for another team or project, or one that expires no later"
                    .to_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("it did not answer within {} s", REFRESH_TIMEOUT.as_secs()),
        };
        warn!(reason = %failure, "could not refresh the vercel oidc token; keeping the current one");
        *failed_at = Some(Instant::now());
    }
}
