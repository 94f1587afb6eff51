//! Identifiers: workspace ids, run ids and lease tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest id Sandkit accepts, in bytes.
pub const MAX_ID_LEN: usize = 128;

fn validate_id(what: &str, raw: &str) -> Result<()> {
    if raw.is_empty() {
        return Err(Error::invalid_input(format!(
            "{what} must not be empty; omit it to have one generated"
        )));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(Error::invalid_input(format!(
            "{what} is {} bytes long; use at most {MAX_ID_LEN}",
            raw.len()
        )));
    }
    if let Some(c) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(Error::invalid_input(format!(
            "{what} {raw:?} contains {c:?}; use letters, digits, '-', '_', '.' or ':'"
        )));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an existing id.
            pub fn new(raw: impl Into<String>) -> Result<Self> {
                let raw = raw.into();
                validate_id($what, &raw)?;
                Ok(Self(raw))
            }

            /// A new time-ordered id (UUIDv7), so ids sort by creation time.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from a store without validating it.
            #[doc(hidden)]
            pub fn from_stored(raw: String) -> Self {
                Self(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// Identity of a workspace: caller-chosen or generated (`ws_…`, time-ordered).
    WorkspaceId,
    "ws_",
    "workspace id"
);
id_type!(
    /// Identity of a durable run (`run_…`, time-ordered).
    RunId,
    "run_",
    "run id"
);

/// A lease's fencing token: whoever presents it may write under the lease; a holder
/// whose lease was taken over holds a stale token and cannot commit.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A new random token.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Wraps a value read back from a store.
    #[doc(hidden)]
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: enough to correlate logs, not enough to forge a write.
        let prefix: String = self.0.chars().take(8).collect();
        write!(f, "LeaseToken({prefix}…)")
    }
}

/// Generated id for a policy snapshot row (`pol_…`).
pub(crate) fn policy_snapshot_id() -> String {
    format!("pol_{}", uuid::Uuid::now_v7().simple())
}

/// A name for a session Sandkit is about to start (`sandkit-<32 hex>`): letters,
/// digits and dashes, valid as a Vercel sandbox name and a local session id.
pub(crate) fn session_name() -> String {
    format!("sandkit-{}", uuid::Uuid::new_v4().simple())
}

/// The name of the sandbox a setup build under claim `token` starts: derived from the
/// claim, so whoever takes over an abandoned claim knows what the dead builder left.
pub(crate) fn setup_session_name(token: &LeaseToken) -> String {
    format!("sandkit-{}", token.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_ordered() {
        let a = WorkspaceId::generate();
        let b = WorkspaceId::generate();
        assert!(a.as_str().starts_with("ws_"));
        assert!(WorkspaceId::new(a.as_str()).is_ok());
        assert!(a < b);
    }

    #[test]
    fn rejects_bad_ids_with_guidance() {
        let err = WorkspaceId::new("has space").unwrap_err();
        assert!(err.to_string().contains("' '"), "{err}");
        assert!(WorkspaceId::new("").is_err());
        assert!(WorkspaceId::new("x".repeat(200)).is_err());
        assert!(WorkspaceId::new("workflow-hello-git-owner_repo_pr_1").is_ok());
    }
}
