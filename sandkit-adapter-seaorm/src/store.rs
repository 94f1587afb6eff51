//! [`SeaOrmStore`]: construction, migration and the [`Store`] implementation.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sandkit_core::{
    Error, Page, PolicySnapshot, Result, RunId, RunListing, RunRecord, SetupRecord, Store,
    WorkspaceId, WorkspaceListing, WorkspaceRecord, WriteBatch,
};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use tracing::info;

use crate::dialect::Dialect;
use crate::errors::storage;
use crate::migration::Migrator;
use crate::{read, setup, sqlite_url, write};

/// How long a SQLite writer waits for another process's write lock.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQL [`Store`] on SeaORM: SQLite, PostgreSQL or MySQL/MariaDB.
///
/// Cheap to clone (the connection pool is shared). Every workspace write is a single
/// conditional `UPDATE` (compare-and-set on `revision`, or fenced on the lease token),
/// and every [`WriteBatch`] is one database transaction, so many processes can share
/// one database safely.
#[derive(Clone)]
pub struct SeaOrmStore {
    db: DatabaseConnection,
    dialect: Dialect,
}

impl fmt::Debug for SeaOrmStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("SeaOrmStore")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl SeaOrmStore {
    /// Connects to `url` (`sqlite://path`, `postgres://…`, `mysql://…` or
    /// `mariadb://…`) with [`SeaOrmStore::connect_options`]. Call
    /// [`migrate`](SeaOrmStore::migrate) before first use.
    ///
    /// # Errors
    /// `InvalidInput` for an unsupported URL, `Storage` when the database cannot be
    /// reached.
    pub async fn connect(url: &str) -> Result<Self> {
        let dialect = Dialect::from_url(url)?;
        let db = Database::connect(Self::connect_options(url)?)
            .await
            .map_err(|e| {
                Error::storage(format!(
                    "could not connect to the {dialect} database: {e}; check the URL, \
                     that the server is running and that the credentials are right"
                ))
                .with_source(e)
            })?;
        Ok(Self::new(db))
    }

    /// The connection options [`connect`](SeaOrmStore::connect) uses, for callers that
    /// want to adjust them (pool size, metrics) before connecting.
    ///
    /// SQLite: the file is created if missing (unless the URL sets `mode=`), WAL
    /// journal, foreign keys on, a busy timeout of [`SQLITE_BUSY_TIMEOUT`], and one
    /// connection per process (writers in other processes queue on SQLite's write
    /// lock). Every commit is flushed to disk (`synchronous = FULL`); add
    /// `?synchronous=normal` to the URL to trade that for speed (a power loss may then
    /// undo the last commits, but never corrupts the database).
    ///
    /// # Errors
    /// `InvalidInput` for an unsupported URL or `synchronous` value.
    pub fn connect_options(url: &str) -> Result<ConnectOptions> {
        let dialect = Dialect::from_url(url)?;
        let mut options = match dialect {
            Dialect::Sqlite => {
                let parsed = sqlite_url::parse(url)?;
                let mut options = ConnectOptions::new(parsed.url);
                let (create, synchronous) = (!parsed.sets_mode, parsed.synchronous);
                options.max_connections(1).map_sqlx_sqlite_opts(move |o| {
                    o.create_if_missing(create)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(synchronous)
                        .foreign_keys(true)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                });
                options
            }
            Dialect::MySql => match url.split_once("://") {
                Some((_, rest)) => ConnectOptions::new(format!("mysql://{rest}")),
                None => ConnectOptions::new(url),
            },
            Dialect::Postgres => ConnectOptions::new(url),
        };
        options.sqlx_logging(false);
        Ok(options)
    }

    /// Wraps an existing connection (so an application can share its pool). The
    /// dialect comes from the connection's backend. On SQLite the connection should
    /// enable foreign keys and a busy timeout (sqlx does by default).
    pub fn new(db: DatabaseConnection) -> Self {
        let dialect = Dialect::from_backend(db.get_database_backend());
        SeaOrmStore { db, dialect }
    }

    /// Creates or upgrades Sandkit's tables by running [`Migrator`]: a fresh database
    /// gets the current schema; a database created by the TypeScript Sandkit is
    /// upgraded in place. Run it from one process at a time (at deployment).
    ///
    /// # Errors
    /// `Storage` when a migration fails; the message names it.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.db, None)
            .await
            .map_err(|e| storage("migrating the Sandkit schema", e))?;
        info!(dialect = %self.dialect, "sandkit schema is up to date");
        Ok(())
    }

    /// The underlying connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

#[async_trait]
impl Store for SeaOrmStore {
    fn id(&self) -> &str {
        self.dialect.store_id()
    }

    async fn apply(&self, batch: WriteBatch) -> Result<()> {
        write::apply(&self.db, self.dialect, batch).await
    }

    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<WorkspaceRecord>> {
        read::workspace(&self.db, self.dialect, id).await
    }

    async fn list_workspaces(&self, query: &WorkspaceListing) -> Result<Page<WorkspaceRecord>> {
        read::workspaces(&self.db, self.dialect, query).await
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        read::run(&self.db, self.dialect, id).await
    }

    async fn list_runs(&self, query: &RunListing) -> Result<Page<RunRecord>> {
        read::runs(&self.db, self.dialect, query).await
    }

    async fn find_run_by_key(
        &self,
        workspace: &WorkspaceId,
        key: &str,
    ) -> Result<Option<RunRecord>> {
        read::run_by_key(&self.db, self.dialect, workspace, key).await
    }

    async fn find_runs_by_snapshot(&self, snapshot_id: &str) -> Result<Vec<RunRecord>> {
        read::runs_by_snapshot(&self.db, self.dialect, snapshot_id).await
    }

    async fn get_policy_snapshot(&self, id: &str) -> Result<Option<PolicySnapshot>> {
        read::policy_snapshot(&self.db, self.dialect, id).await
    }

    async fn get_setup(&self, id: &str) -> Result<Option<SetupRecord>> {
        read::setup(&self.db, self.dialect, id).await
    }

    async fn put_setup_if_absent(&self, record: &SetupRecord) -> Result<bool> {
        setup::put_if_absent(&self.db, self.dialect, record).await
    }

    async fn update_setup(&self, record: &SetupRecord, expected_revision: i64) -> Result<()> {
        setup::update(&self.db, self.dialect, record, expected_revision).await
    }

    async fn delete_setup(&self, id: &str, expected_revision: Option<i64>) -> Result<bool> {
        setup::delete(&self.db, id, expected_revision).await
    }
}
