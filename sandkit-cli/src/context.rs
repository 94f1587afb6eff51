//! Opening the store, the provider and `Sandkit` from the global flags.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sandkit_adapter_seaorm::SeaOrmStore;
use sandkit_core::policies::Policy;
use sandkit_core::{Error, Provider, Result, Sandkit, SetupSpec, Workspace, WorkspaceSpec};
use sandkit_local::LocalProvider;
use sandkit_vercel::VercelProvider;
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, ProviderKind};

/// Name of the saved setup definition under the home directory.
const SETUP_FILE: &str = "setup.json";

/// The setup definition `sandkit bootstrap` saves for later invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSetup {
    /// Shell command (run with `sh -c`).
    pub command: String,
    /// Policy spec while it runs.
    pub policy: String,
}

impl SavedSetup {
    /// The core setup spec.
    pub fn spec(&self) -> Result<SetupSpec> {
        Ok(SetupSpec::new("sh")
            .args(["-c", self.command.as_str()])
            .policy(parse_policy(&self.policy)?))
    }
}

/// Everything a command needs.
pub struct Context {
    /// The Sandkit instance.
    pub sandkit: Sandkit,
    /// Print JSON.
    pub json: bool,
}

/// The home directory: `--home`, `SANDKIT_HOME`, or `./.sandkit`.
pub fn home(cli: &Cli) -> PathBuf {
    cli.home
        .clone()
        .unwrap_or_else(|| PathBuf::from(".sandkit"))
}

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::storage(format!(
            "cannot create {}: {e}; choose another directory with --home",
            dir.display()
        ))
    })
}

/// The database URL: `--database` or SQLite under the home directory.
pub fn database_url(cli: &Cli) -> Result<String> {
    Ok(database(cli)?.url)
}

/// Where the database is, and whether it can only be read.
pub struct DatabaseLocation {
    /// The URL to connect to.
    pub url: String,
    /// The embedded SQLite database under a home directory this process cannot write:
    /// opened read-only (read commands work, write commands are refused).
    pub read_only_home: Option<PathBuf>,
}

/// The database: `--database`, or SQLite under the home directory (opened read-only
/// when the home directory exists but cannot be written).
pub fn database(cli: &Cli) -> Result<DatabaseLocation> {
    if let Some(url) = &cli.database {
        return Ok(DatabaseLocation {
            url: url.clone(),
            read_only_home: None,
        });
    }
    let home = home(cli);
    let db = home.join("sandkit.db");
    if home.is_dir() && db.is_file() && !writable(&home) {
        let home = std::fs::canonicalize(&home)
            .map_err(|e| Error::storage(format!("cannot resolve {}: {e}", home.display())))?;
        // With the WAL and its index left behind, SQLite reads through them; without,
        // `immutable` (nothing can write here) spares it the lock files it cannot create.
        let wal_left =
            home.join("sandkit.db-wal").is_file() && home.join("sandkit.db-shm").is_file();
        let params = if wal_left {
            "mode=ro"
        } else {
            "mode=ro&immutable=true"
        };
        return Ok(DatabaseLocation {
            url: format!("sqlite://{}?{params}", home.join("sandkit.db").display()),
            read_only_home: Some(home),
        });
    }
    ensure_dir(&home)?;
    let home = std::fs::canonicalize(&home)
        .map_err(|e| Error::storage(format!("cannot resolve {}: {e}", home.display())))?;
    Ok(DatabaseLocation {
        url: format!("sqlite://{}", home.join("sandkit.db").display()),
        read_only_home: None,
    })
}

/// Whether this process can create files in `dir` (tried for real: permission bits
/// say nothing about a read-only mount, and nothing about root).
fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".sandkit-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
    }
}

/// The error for a write command under a read-only home directory.
pub fn read_only_error(home: &Path) -> Error {
    Error::storage(format!(
        "the Sandkit home {} is read-only: this command needs to write to it; read commands \
         (runs, workspace list/show, session status) still work — make the directory \
         writable, or point --home (SANDKIT_HOME) at a writable one",
        home.display()
    ))
}

/// How long to wait for the database before giving up (fail fast on a bad URL).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects to the database and brings its schema up to date (with `--no-migrate`:
/// only checks that it is).
pub async fn open_store(cli: &Cli) -> Result<SeaOrmStore> {
    let location = database(cli)?;
    let store = connect_url(&location.url).await?;
    if cli.no_migrate || location.read_only_home.is_some() {
        store.require_current_schema().await?;
    } else {
        store.migrate().await?;
    }
    Ok(store)
}

/// Connects to the database, changing nothing.
pub async fn connect_store(cli: &Cli) -> Result<SeaOrmStore> {
    connect_url(&database_url(cli)?).await
}

async fn connect_url(url: &str) -> Result<SeaOrmStore> {
    SeaOrmStore::connect_with_timeout(url, CONNECT_TIMEOUT)
        .await
        .map_err(|e| {
            e.context("cannot open the database (check --database / SANDKIT_DATABASE_URL)")
        })
}

fn open_provider(cli: &Cli) -> Result<Arc<dyn Provider>> {
    Ok(match cli.provider {
        ProviderKind::Local => {
            let root = home(cli).join("local");
            Arc::new(LocalProvider::new(root)?)
        }
        ProviderKind::Vercel => Arc::new(VercelProvider::from_env()?),
    })
}

/// Reads the setup saved by `sandkit bootstrap`, if any.
pub fn saved_setup(cli: &Cli) -> Result<Option<SavedSetup>> {
    let path = home(cli).join(SETUP_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::invalid_input(format!(
                "{} is not a saved setup ({e}); rerun `sandkit bootstrap --setup …` or delete it",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Saves (or with `None` forgets) the setup definition.
pub fn save_setup(cli: &Cli, setup: Option<&SavedSetup>) -> Result<()> {
    let home = home(cli);
    let path = home.join(SETUP_FILE);
    match setup {
        Some(setup) => {
            ensure_dir(&home)?;
            let text = serde_json::to_string_pretty(setup)
                .map_err(|e| Error::storage(format!("cannot encode the setup: {e}")))?;
            std::fs::write(&path, text)
                .map_err(|e| Error::storage(format!("cannot write {}: {e}", path.display())))
        }
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::storage(format!(
                "cannot remove {}: {e}",
                path.display()
            ))),
        },
    }
}

/// Opens everything: store (migrated), provider, saved setup.
pub async fn open(cli: &Cli) -> Result<Context> {
    let store = open_store(cli).await?;
    let provider = open_provider(cli)?;
    let mut builder = Sandkit::builder().store(Arc::new(store)).provider(provider);
    if let Some(setup) = saved_setup(cli)? {
        builder = builder.setup(setup.spec()?);
    }
    Ok(Context {
        sandkit: builder.build()?,
        json: cli.json,
    })
}

/// Parses a policy spec: `allow-all`, `deny-all`, a preset list, or `@file.json`.
pub fn parse_policy(spec: &str) -> Result<Policy> {
    let parsed = match spec.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid_input(format!("cannot read policy file {path}: {e}"))
            })?;
            Policy::from_json(&text)
        }
        None => spec.parse::<Policy>(),
    };
    parsed.map_err(|e| {
        Error::invalid_input(format!(
            "invalid policy {spec:?}: {e}; use allow-all, deny-all, a preset list such as npm,github, or @file.json"
        ))
    })
}

impl Context {
    /// Opens a workspace, or creates it (saying so on stderr) when it does not exist.
    pub async fn workspace_or_create(&self, id: &str, ports: &[u16]) -> Result<Workspace> {
        match self.sandkit.workspace(id).await {
            Ok(ws) => Ok(ws),
            Err(e) if e.kind() == &sandkit_core::ErrorKind::NotFound => {
                let spec = WorkspaceSpec::new()
                    .id(id)
                    .name(id)
                    .exposed_ports(ports.iter().copied());
                match self.sandkit.create_workspace(spec).await {
                    Ok(ws) => {
                        eprintln!("sandkit: created workspace {id}");
                        Ok(ws)
                    }
                    // Created concurrently by another invocation: use it.
                    Err(e) if e.kind() == &sandkit_core::ErrorKind::AlreadyExists => {
                        self.sandkit.workspace(id).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}
