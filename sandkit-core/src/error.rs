//! The one error type of Sandkit.
//!
//! Every fallible operation returns [`Error`]. Its [`ErrorKind`] says what went wrong
//! in a form a program can match on; its message says, in a sentence, what to do next.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sandkit_policies::PolicyError;

/// Result alias used across Sandkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form a program can match on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A workspace, run, session, setup state or process does not exist.
    NotFound,
    /// Something with this identity already exists.
    AlreadyExists,
    /// The workspace is leased by a durable command or a live session.
    Busy,
    /// A concurrent writer changed the row first (compare-and-set lost), or this
    /// holder's lease was taken over (fencing).
    Conflict,
    /// The caller passed something invalid; nothing was written or started.
    InvalidInput,
    /// The provider or store cannot do this (e.g. enforce a policy mode).
    Unsupported,
    /// There is no live session to attach to.
    NoActiveSession,
    /// The provider session behind a lease is gone (stopped, expired, lost).
    SessionUnavailable,
    /// A snapshot the workspace or setup refers to no longer exists at the provider.
    SnapshotUnavailable,
    /// The setup bootstrap command exited non-zero; nothing was persisted.
    SetupFailed {
        /// Exit code of the setup command.
        exit_code: i32,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A credential needed to apply a policy is missing or unusable.
    Credentials {
        /// The policy service that needs it.
        service: String,
        /// The environment variable it is read from, when it has one.
        variable: Option<String>,
    },
    /// A stored value cannot be read back.
    Corrupt {
        /// Table (or logical collection) holding it.
        table: String,
        /// Column holding it.
        column: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The provider answered with an error.
    Provider {
        /// HTTP status (or similar) when there is one.
        status: Option<u16>,
        /// Provider error code when there is one.
        code: Option<String>,
    },
    /// The provider refused the call for now; try again later.
    RateLimited {
        /// How long the provider asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The store failed (connection, I/O, SQL error).
    Storage,
    /// The caller interrupted a durable command ([`Command::interrupt`](crate::Command::interrupt)):
    /// its sandbox was stopped, its run journaled as interrupted, and the workspace
    /// keeps its previous head.
    Interrupted,
}

impl ErrorKind {
    /// A short stable name for the kind (`busy`, `not_found`, …), used by the CLI and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Busy => "busy",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NoActiveSession => "no_active_session",
            ErrorKind::SessionUnavailable => "session_unavailable",
            ErrorKind::SnapshotUnavailable => "snapshot_unavailable",
            ErrorKind::SetupFailed { .. } => "setup_failed",
            ErrorKind::Credentials { .. } => "credentials",
            ErrorKind::Corrupt { .. } => "corrupt",
            ErrorKind::Provider { .. } => "provider",
            ErrorKind::RateLimited { .. } => "rate_limited",
            ErrorKind::Storage => "storage",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

/// A Sandkit error: a [`kind`](Error::kind) to match on and a message saying what to do next.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// Creates an error of `kind` with a message that says what happened and what to do next.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message (without the source chain).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same call later may succeed: busy workspaces, lost
    /// compare-and-set races, rate limits and provider 5xx answers.
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            ErrorKind::Busy | ErrorKind::Conflict | ErrorKind::RateLimited { .. } => true,
            ErrorKind::Provider { status, .. } => status.is_none_or(|s| s >= 500),
            _ => false,
        }
    }

    /// Prefixes the message with context, keeping kind and source.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The same error with every value `redactor` knows scrubbed from its message and
    /// kind fields. A source whose text would leak one is dropped (its text is folded
    /// into the message, scrubbed).
    pub fn redacted(mut self, redactor: &sandkit_policies::Redactor) -> Self {
        if redactor.is_empty() {
            return self;
        }
        self.message = redactor.scrub(&self.message);
        match &mut self.kind {
            ErrorKind::SetupFailed { stderr, .. } => *stderr = redactor.scrub(stderr),
            ErrorKind::Provider {
                code: Some(code), ..
            } => *code = redactor.scrub(code),
            ErrorKind::Corrupt { reason, .. } => *reason = redactor.scrub(reason),
            _ => {}
        }
        if let Some(source) = &self.source {
            let mut chain = source.to_string();
            let mut next = source.source();
            while let Some(cause) = next {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                next = cause.source();
            }
            if redactor.leaks(&chain) || redactor.leaks(&format!("{source:?}")) {
                self.source = None;
                self.message = format!("{} ({})", self.message, redactor.scrub(&chain));
            }
        }
        self
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// [`ErrorKind::AlreadyExists`].
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    /// An `Interrupted` error.
    pub fn interrupted(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Interrupted, message)
    }

    /// [`ErrorKind::Busy`].
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Busy, message)
    }
    /// [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    /// [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// [`ErrorKind::NoActiveSession`].
    pub fn no_active_session(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NoActiveSession, message)
    }
    /// [`ErrorKind::SessionUnavailable`].
    pub fn session_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::SessionUnavailable, message)
    }
    /// [`ErrorKind::SnapshotUnavailable`].
    pub fn snapshot_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::SnapshotUnavailable, message)
    }
    /// [`ErrorKind::Storage`].
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Storage, message)
    }
    /// [`ErrorKind::Corrupt`], with the standard message.
    pub fn corrupt(table: &str, column: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(
            ErrorKind::Corrupt {
                table: table.to_owned(),
                column: column.to_owned(),
                reason: reason.clone(),
            },
            format!(
                "Sandkit durable state corruption in {table}.{column}: {reason}; \
                 the row was left untouched — repair or delete it by hand"
            ),
        )
    }
    /// [`ErrorKind::Provider`].
    pub fn provider(status: Option<u16>, code: Option<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Provider { status, code }, message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<PolicyError> for Error {
    fn from(err: PolicyError) -> Self {
        let kind = match &err {
            PolicyError::MissingCredential { service, variable } => ErrorKind::Credentials {
                service: service.clone(),
                variable: Some(variable.clone()),
            },
            PolicyError::RedactedCredential { service } => ErrorKind::Credentials {
                service: service.clone(),
                variable: None,
            },
            _ => ErrorKind::InvalidInput,
        };
        Error::new(kind, err.to_string()).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds() {
        assert!(Error::busy("x").is_retryable());
        assert!(Error::conflict("x").is_retryable());
        assert!(Error::provider(Some(503), None, "x").is_retryable());
        assert!(!Error::provider(Some(404), None, "x").is_retryable());
        assert!(!Error::invalid_input("x").is_retryable());
    }

    #[test]
    fn corrupt_message_names_table_and_column() {
        let e = Error::corrupt("sandkit_runs", "args", "expected JSON string array");
        assert!(e.to_string().contains("sandkit_runs.args"));
        assert_eq!(e.kind().name(), "corrupt");
    }

    #[test]
    fn missing_credential_maps_to_credentials_kind() {
        let e: Error = PolicyError::MissingCredential {
            service: "codex".into(),
            variable: "CODEX_API_KEY".into(),
        }
        .into();
        assert_eq!(
            e.kind(),
            &ErrorKind::Credentials {
                service: "codex".into(),
                variable: Some("CODEX_API_KEY".into())
            }
        );
        assert!(e.to_string().contains("CODEX_API_KEY"));
    }
}
