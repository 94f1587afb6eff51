//! Typed errors for filesystem and session failures.

use std::fmt;
use std::io;

use sandkit_core::Error;

/// Maps an I/O failure under the provider root to a typed provider error whose code
/// says what kind of failure it was (`disk_full`, `permission_denied`, `read_only`, `io`).
pub(crate) fn io_error(context: impl fmt::Display, err: io::Error) -> Error {
    let (code, hint) = match err.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => (
            "disk_full",
            "free disk space under the provider root, then retry",
        ),
        io::ErrorKind::PermissionDenied => (
            "permission_denied",
            "make the provider root readable and writable by this user, then retry",
        ),
        io::ErrorKind::ReadOnlyFilesystem => (
            "read_only",
            "put the provider root on a writable filesystem",
        ),
        _ => ("io", "check the provider root, then retry"),
    };
    Error::provider(
        None,
        Some(code.to_owned()),
        format!("local provider: {context}: {err}; {hint}"),
    )
    .with_source(err)
}

/// The session is stopped, snapshotted, expired or unknown.
pub(crate) fn session_gone(id: &str, why: &str) -> Error {
    Error::session_unavailable(format!(
        "local session {id} {why}; start a new session (its workspace keeps its last committed head)"
    ))
}

/// The snapshot does not exist (or was deleted).
pub(crate) fn snapshot_gone(id: &str) -> Error {
    Error::snapshot_unavailable(format!(
        "local snapshot {id} does not exist (deleted, or made under another provider root); \
         reset the workspace or start from another snapshot"
    ))
}

/// A stored file of the provider cannot be read back.
pub(crate) fn corrupt(what: &str, name: &str, reason: impl fmt::Display) -> Error {
    Error::corrupt(what, name, reason.to_string())
}

/// Runs blocking filesystem work off the async runtime.
pub(crate) async fn blocking<T, F>(work: F) -> sandkit_core::Result<T>
where
    F: FnOnce() -> sandkit_core::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::provider(
            None,
            Some("internal".to_owned()),
            format!("local provider: a filesystem task failed ({e}); retry the call"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandkit_core::ErrorKind;

    #[test]
    fn disk_full_is_typed() {
        let e = io_error("writing", io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(
            e.kind(),
            &ErrorKind::Provider {
                status: None,
                code: Some("disk_full".into())
            }
        );
        assert!(e.to_string().contains("free disk space"));
    }
}
