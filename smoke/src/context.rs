//! [`Ctx`]: everything one scenario run gets — a fresh database with Sandkit's
//! schema, a provider (the fake Vercel API, a local provider root, or the real
//! service), a scratch directory, and child processes configured for the same backend.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sandkit_adapter_seaorm::sea_orm::DatabaseConnection;
use sandkit_adapter_seaorm::{Dialect, SeaOrmStore};
use sandkit_core::policies::MapEnv;
use sandkit_core::{Provider, Sandkit, SandkitBuilder, Store, WorkspaceId, WorkspaceRecord};
use sandkit_local::LocalProvider;
use sandkit_vercel::VercelProvider;
use sandkit_vercel::fake::{FAKE_PROJECT_ID, FAKE_TEAM_ID, FAKE_TOKEN, FakeVercel};

use crate::backend::{Backend, ProviderKind};
use crate::child;
use crate::database::TestDatabase;

/// Grace before a local session's processes are SIGKILLed after SIGTERM.
pub const LOCAL_KILL_GRACE: Duration = Duration::from_millis(500);

/// The local provider the smoke run uses over `root`. Its sandboxes also show the
/// directory of this binary read-only: scenarios run it inside them (probes, servers).
pub fn local_provider(root: impl Into<PathBuf>) -> anyhow::Result<LocalProvider> {
    let mut builder = LocalProvider::builder(root).kill_grace(LOCAL_KILL_GRACE);
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        builder = builder.read_only_path(dir);
    }
    builder.build().context("building the local provider")
}

/// How long closing a run waits for background work of its Sandkit instances.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Paths a run needs besides its backend.
#[derive(Debug, Clone)]
pub struct Tools {
    /// This smoke binary (children and helper processes re-execute it).
    pub smoke_exe: PathBuf,
    /// The `sandkit` CLI binary, when found (the README scenario needs it).
    pub sandkit_exe: Option<PathBuf>,
}

/// The provider side of a run.
enum Sandboxes {
    Fake(FakeVercel),
    Local(LocalProvider),
    Live,
}

/// One scenario run's resources. [`Ctx::close`] drops the database.
pub struct Ctx {
    /// The backend this run uses.
    pub backend: Backend,
    /// Paths of the binaries.
    pub tools: Tools,
    scratch: tempfile::TempDir,
    database: TestDatabase,
    store: Arc<SeaOrmStore>,
    sandboxes: Sandboxes,
    kits: Mutex<Vec<Sandkit>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("backend", &self.backend)
            .field("scratch", &self.scratch.path())
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Creates the database (migrated) and the provider side for `backend`.
    ///
    /// # Errors
    /// When the database cannot be created or migrated, or the provider cannot be
    /// built (e.g. live credentials are incomplete).
    pub async fn open(
        backend: Backend,
        server_url: Option<&str>,
        tools: Tools,
    ) -> anyhow::Result<Ctx> {
        let scratch = tempfile::Builder::new()
            .prefix("sandkit-smoke-")
            .tempdir()
            .context("creating a scratch directory")?;
        let sandboxes = match backend.provider {
            ProviderKind::VercelFake => Sandboxes::Fake(FakeVercel::start().await),
            ProviderKind::Local => Sandboxes::Local(local_provider(scratch.path().join("local"))?),
            ProviderKind::VercelLive => Sandboxes::Live,
        };
        let mut database =
            TestDatabase::create(backend.database, server_url, scratch.path()).await?;
        let store = match connect(&database).await {
            Ok(store) => store,
            Err(e) => {
                database.drop_database().await.ok();
                return Err(e);
            }
        };
        Ok(Ctx {
            backend,
            tools,
            scratch,
            database,
            store: Arc::new(store),
            sandboxes,
            kits: Mutex::new(Vec::new()),
        })
    }

    /// Waits for the background work of every Sandkit built here, then drops the
    /// database (the scratch directory goes with `self`).
    ///
    /// # Errors
    /// When the database cannot be dropped.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let kits = std::mem::take(
            &mut *self
                .kits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for kit in kits {
            let _ = tokio::time::timeout(SETTLE_TIMEOUT, kit.settle()).await;
        }
        self.database.drop_database().await
    }

    /// A directory for this run's files.
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// The store, migrated.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The raw connection (for SQL beside the store).
    pub fn connection(&self) -> &DatabaseConnection {
        self.store.connection()
    }

    /// The SQL dialect.
    pub fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    /// The database URL (children connect to it).
    pub fn database_url(&self) -> &str {
        &self.database.url
    }

    /// The fake Vercel API, on the `vercel-fake` backend.
    pub fn fake(&self) -> Option<&FakeVercel> {
        match &self.sandboxes {
            Sandboxes::Fake(fake) => Some(fake),
            _ => None,
        }
    }

    /// The local provider, on the `local` backend.
    pub fn local(&self) -> Option<&LocalProvider> {
        match &self.sandboxes {
            Sandboxes::Local(local) => Some(local),
            _ => None,
        }
    }

    /// A provider for this backend.
    ///
    /// # Errors
    /// When live credentials are missing or incomplete.
    pub fn provider(&self) -> anyhow::Result<Arc<dyn Provider>> {
        Ok(match &self.sandboxes {
            Sandboxes::Fake(fake) => Arc::new(fake.provider()),
            Sandboxes::Local(local) => Arc::new(local.clone()),
            Sandboxes::Live => Arc::new(VercelProvider::from_env()?),
        })
    }

    /// A Sandkit builder on this run's store and `provider`, with no default
    /// credentials (scenarios inject the ones they need) and fast setup polling.
    pub fn builder_with(&self, provider: Arc<dyn Provider>) -> SandkitBuilder {
        Sandkit::builder()
            .store(self.store())
            .provider(provider)
            .credentials(Arc::new(MapEnv::new()))
            .setup_poll_interval(Duration::from_millis(20))
    }

    /// [`Ctx::builder_with`] on this backend's provider.
    ///
    /// # Errors
    /// See [`Ctx::provider`].
    pub fn builder(&self) -> anyhow::Result<SandkitBuilder> {
        Ok(self.builder_with(self.provider()?))
    }

    /// Builds a Sandkit and remembers it, so that [`Ctx::close`] waits for its
    /// background work (snapshot retention) before the database and the provider go.
    ///
    /// # Errors
    /// When the builder's settings are invalid.
    pub fn build(&self, builder: SandkitBuilder) -> anyhow::Result<Sandkit> {
        let kit = builder.build()?;
        self.kits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(kit.clone());
        Ok(kit)
    }

    /// A Sandkit with the defaults of [`Ctx::builder`].
    ///
    /// # Errors
    /// See [`Ctx::provider`].
    pub fn sandkit(&self) -> anyhow::Result<Sandkit> {
        self.build(self.builder()?)
    }

    /// The stored record of a workspace, read beside Sandkit.
    ///
    /// # Errors
    /// When it cannot be read or does not exist.
    pub async fn record(&self, id: &WorkspaceId) -> anyhow::Result<WorkspaceRecord> {
        self.store
            .get_workspace(id)
            .await?
            .with_context(|| format!("workspace {id} is not in the store"))
    }

    /// Environment that points a process at this backend: for children of this smoke
    /// binary (`SMOKE_*`) and for the `sandkit` CLI (`SANDKIT_*`). Variables to
    /// remove come with an empty value.
    pub fn backend_env(&self) -> Vec<(String, Option<String>)> {
        let mut env: Vec<(String, Option<String>)> = vec![
            (child::DATABASE_VAR.into(), Some(self.database.url.clone())),
            (
                child::PROVIDER_VAR.into(),
                Some(self.child_provider().into()),
            ),
        ];
        match &self.sandboxes {
            Sandboxes::Fake(fake) => {
                env.extend([
                    (sandkit_vercel::BASE_URL_VAR.into(), Some(fake.uri())),
                    (sandkit_vercel::TOKEN_VAR.into(), Some(FAKE_TOKEN.into())),
                    (
                        sandkit_vercel::TEAM_ID_VAR.into(),
                        Some(FAKE_TEAM_ID.into()),
                    ),
                    (
                        sandkit_vercel::PROJECT_ID_VAR.into(),
                        Some(FAKE_PROJECT_ID.into()),
                    ),
                    (sandkit_vercel::OIDC_TOKEN_VAR.into(), None),
                ]);
            }
            Sandboxes::Local(local) => {
                env.push((
                    child::LOCAL_ROOT_VAR.into(),
                    Some(local.root().display().to_string()),
                ));
            }
            Sandboxes::Live => {}
        }
        env
    }

    fn child_provider(&self) -> &'static str {
        match self.backend.provider {
            ProviderKind::Local => "local",
            ProviderKind::VercelFake | ProviderKind::VercelLive => "vercel",
        }
    }

    /// This smoke binary as a child process running `child <args…>` on this backend,
    /// with stdout and stderr captured and killed when dropped.
    pub fn child(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.tools.smoke_exe);
        cmd.arg("child")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        apply_env(&mut cmd, &self.backend_env());
        cmd
    }
}

/// Applies [`Ctx::backend_env`] to a command.
pub fn apply_env(cmd: &mut tokio::process::Command, env: &[(String, Option<String>)]) {
    for (key, value) in env {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
}

async fn connect(database: &TestDatabase) -> anyhow::Result<SeaOrmStore> {
    let store = SeaOrmStore::connect(&database.url)
        .await
        .with_context(|| format!("connecting to the {} database", database.kind.name()))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating the {} database", database.kind.name()))?;
    Ok(store)
}
