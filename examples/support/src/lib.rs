//! Shared plumbing of the Sandkit examples, so that each example's `main.rs` shows only
//! Sandkit itself.
//!
//! Every example runs on the **embedded default** — the local provider (directories and
//! processes on this machine) and a SQLite database — with no account, and switches to
//! Vercel Sandbox with one environment variable:
//!
//! | variable | effect |
//! |---|---|
//! | `SANDKIT_PROVIDER` | `local` (default) or `vercel` |
//! | `VERCEL_OIDC_TOKEN`, or `VERCEL_TOKEN` + `VERCEL_TEAM_ID` + `VERCEL_PROJECT_ID` | Vercel credentials (read only when the provider is `vercel`) |
//! | `SANDKIT_VERCEL_BASE_URL` | another Vercel API base URL (a proxy, or the fake API in tests) |
//!
//! The pieces:
//!
//! * [`Home`] — the directory an example keeps its state in: `--home DIR`, or a temporary
//!   directory deleted when the example exits.
//! * [`open_store`] — a migrated SQL store for a database URL (SQLite under the home by
//!   default; PostgreSQL or MySQL when given).
//! * [`open_provider`] — the provider [`ProviderKind::from_env`] chose.
//! * [`open_or_create_workspace`] — opens a workspace by id, creating it on first use.
//! * [`Report`] — what `main` returns on failure: the error's message, which says what to
//!   do next, instead of a `Debug` dump.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sandkit_adapter_seaorm::SeaOrmStore;
use sandkit_core::{Error, ErrorKind, Provider, Result, Sandkit, Store, Workspace, WorkspaceSpec};
use sandkit_local::LocalProvider;
use sandkit_vercel::VercelProvider;

/// Chooses the provider: `local` (default) or `vercel`.
pub const PROVIDER_VAR: &str = "SANDKIT_PROVIDER";

/// Overrides the Vercel API base URL (default `https://vercel.com/api`); read by
/// `VercelProvider::from_env`.
pub const VERCEL_BASE_URL_VAR: &str = sandkit_vercel::BASE_URL_VAR;

/// Every environment variable the examples read (provider choice, Vercel API and
/// credentials, logging): tests clear them so that the machine's settings never leak in.
pub const ENV_VARS: &[&str] = &[
    PROVIDER_VAR,
    VERCEL_BASE_URL_VAR,
    sandkit_vercel::OIDC_TOKEN_VAR,
    sandkit_vercel::TOKEN_VAR,
    sandkit_vercel::TEAM_ID_VAR,
    sandkit_vercel::PROJECT_ID_VAR,
    "RUST_LOG",
];

/// Where sandboxes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Directories and processes on this machine: no account, a development provider
    /// (not a security boundary).
    Local,
    /// Vercel Sandbox: microVMs in the cloud, credentials from the Vercel variables.
    Vercel,
}

impl ProviderKind {
    /// Reads [`PROVIDER_VAR`]; unset or empty means [`ProviderKind::Local`].
    ///
    /// # Errors
    /// `InvalidInput` for any other value.
    pub fn from_env() -> Result<ProviderKind> {
        match std::env::var(PROVIDER_VAR) {
            Ok(raw) => ProviderKind::parse(&raw),
            Err(std::env::VarError::NotPresent) => Ok(ProviderKind::Local),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::invalid_input(format!(
                "{PROVIDER_VAR} is not valid UTF-8; set it to local or vercel"
            ))),
        }
    }

    /// Parses `local` or `vercel` (case-insensitive; empty means local).
    ///
    /// # Errors
    /// `InvalidInput` naming the accepted values.
    pub fn parse(raw: &str) -> Result<ProviderKind> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "local" => Ok(ProviderKind::Local),
            "vercel" => Ok(ProviderKind::Vercel),
            other => Err(Error::invalid_input(format!(
                "{PROVIDER_VAR}={other:?} is not a provider; set it to local (default) or vercel"
            ))),
        }
    }

    /// `local` or `vercel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Vercel => "vercel",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The directory an example keeps its state in: the SQLite database and the local
/// provider's sandboxes and snapshots.
#[derive(Debug)]
pub struct Home {
    dir: PathBuf,
    // Kept so that a temporary home lives exactly as long as this value.
    _temporary: Option<tempfile::TempDir>,
}

impl Home {
    /// Uses `dir` (created if missing), or a fresh temporary directory that is deleted
    /// when the returned value is dropped.
    ///
    /// # Errors
    /// `Storage` when the directory cannot be created.
    pub fn open(dir: Option<&Path>) -> Result<Home> {
        match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::storage(format!(
                        "cannot create {}: {e}; pass another directory with --home",
                        dir.display()
                    ))
                })?;
                let dir = std::fs::canonicalize(dir).map_err(|e| {
                    Error::storage(format!("cannot resolve {}: {e}", dir.display()))
                })?;
                Ok(Home {
                    dir,
                    _temporary: None,
                })
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("sandkit-example-")
                    .tempdir()
                    .map_err(|e| {
                        Error::storage(format!(
                            "cannot create a temporary directory: {e}; pass one with --home"
                        ))
                    })?;
                Ok(Home {
                    dir: temporary.path().to_path_buf(),
                    _temporary: Some(temporary),
                })
            }
        }
    }

    /// The directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory is deleted when this value is dropped.
    pub fn is_temporary(&self) -> bool {
        self._temporary.is_some()
    }

    /// `sqlite:///abs/path/sandkit.db` inside the home.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.dir.join("sandkit.db").display())
    }

    /// Root of the local provider's sessions and snapshots inside the home.
    pub fn local_root(&self) -> PathBuf {
        self.dir.join("local")
    }
}

/// Connects to `url` (`sqlite://…`, `postgres://…`, `mysql://…`) and brings Sandkit's
/// tables up to date.
///
/// Migrating is safe to repeat; run it from one process at a time on a fresh server
/// database (the `shared-db` example has an `init` step for that).
///
/// # Errors
/// `InvalidInput` for an unsupported URL, `Storage` when the database cannot be reached
/// or migrated.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    let store = SeaOrmStore::connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// The provider `kind`: the local provider rooted in [`Home::local_root`], or Vercel
/// with credentials from the environment (and [`VERCEL_BASE_URL_VAR`] when set).
///
/// # Errors
/// `Storage` when the local root cannot be created; `Credentials` naming the Vercel
/// variables to set.
pub fn open_provider(kind: ProviderKind, home: &Home) -> Result<Arc<dyn Provider>> {
    match kind {
        ProviderKind::Local => Ok(Arc::new(LocalProvider::new(home.local_root())?)),
        ProviderKind::Vercel => Ok(Arc::new(VercelProvider::from_env()?)),
    }
}

/// Opens workspace `id`, or creates it from `spec` (with that id) when it does not exist
/// yet. A concurrent creation by another process is fine: the workspace is opened.
///
/// # Errors
/// Whatever opening or creating fails with (`InvalidInput` for a bad id, `Storage`).
pub async fn open_or_create_workspace(
    sandkit: &Sandkit,
    id: &str,
    spec: WorkspaceSpec,
) -> Result<Workspace> {
    match sandkit.workspace(id).await {
        Err(e) if e.kind() == &ErrorKind::NotFound => {}
        opened => return opened,
    }
    match sandkit.create_workspace(spec.id(id)).await {
        Err(e) if e.kind() == &ErrorKind::AlreadyExists => sandkit.workspace(id).await,
        created => created,
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings only).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second call (or a subscriber set by the caller) is not an error here.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// What an example's `main` returns on failure. Rust prints it as `Error: <message>`,
/// and the message of a Sandkit error says what to do next.
pub struct Report {
    message: String,
}

impl Report {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Report {
        Report {
            message: message.into(),
        }
    }
}

impl From<Error> for Report {
    fn from(error: Error) -> Report {
        Report::new(format!("{error} [{}]", error.kind().name()))
    }
}

impl From<sandkit_core::policies::PolicyError> for Report {
    fn from(error: sandkit_core::policies::PolicyError) -> Report {
        Report::from(Error::from(error))
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse_and_others_are_refused() {
        assert_eq!(ProviderKind::parse("").unwrap(), ProviderKind::Local);
        assert_eq!(ProviderKind::parse(" Local ").unwrap(), ProviderKind::Local);
        assert_eq!(ProviderKind::parse("VERCEL").unwrap(), ProviderKind::Vercel);
        let err = ProviderKind::parse("aws").unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidInput);
        assert!(err.to_string().contains("local (default) or vercel"));
    }

    #[test]
    fn a_given_home_is_created_and_kept() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("nested/home");
        let home = Home::open(Some(&dir)).unwrap();
        assert!(!home.is_temporary());
        assert!(home.dir().is_absolute());
        assert!(home.sqlite_url().starts_with("sqlite:///"));
        assert!(home.sqlite_url().ends_with("/nested/home/sandkit.db"));
        drop(home);
        assert!(dir.is_dir());
    }

    #[test]
    fn a_temporary_home_is_deleted_on_drop() {
        let home = Home::open(None).unwrap();
        assert!(home.is_temporary());
        let dir = home.dir().to_path_buf();
        assert!(dir.is_dir());
        drop(home);
        assert!(!dir.exists());
    }

    #[test]
    fn a_report_shows_the_message_and_kind_not_a_debug_dump() {
        let report = Report::from(Error::not_found("Workspace not found: w; create it first"));
        assert_eq!(
            format!("{report:?}"),
            "Workspace not found: w; create it first [not_found]"
        );
    }

    #[tokio::test]
    async fn workspaces_are_created_once_then_opened() {
        let home = Home::open(None).unwrap();
        let sandkit = Sandkit::builder()
            .store(open_store(&home.sqlite_url()).await.unwrap())
            .provider(open_provider(ProviderKind::Local, &home).unwrap())
            .build()
            .unwrap();
        let spec = || WorkspaceSpec::new().name("first");
        let created = open_or_create_workspace(&sandkit, "w1", spec())
            .await
            .unwrap();
        let opened = open_or_create_workspace(&sandkit, "w1", WorkspaceSpec::new().name("other"))
            .await
            .unwrap();
        assert_eq!(created.id(), opened.id());
        assert_eq!(opened.record().name, "first");
        let bad = open_or_create_workspace(&sandkit, "not an id!", spec()).await;
        assert_eq!(bad.unwrap_err().kind(), &ErrorKind::InvalidInput);
    }
}
