//! [`SeaOrmStore`]: construction, migration and the [`Store`] implementation.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sandkit_core::{
    Error, Page, PolicySnapshot, Result, RunId, RunListing, RunRecord, SetupRecord, Store,
    WorkspaceId, WorkspaceListing, WorkspaceRecord, WriteBatch,
};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::sqlx::{Connection as _, MySqlConnection};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, TransactionTrait,
};
use sea_orm_migration::{IntoSchemaManagerConnection, MigratorTrait, SchemaManager};
use tracing::info;

use crate::dialect::Dialect;
use crate::errors::storage;
use crate::migration::{self, Migrator, SchemaStatus};
use crate::{read, setup, sqlite_url, write};

/// How long [`SeaOrmStore::connect`] waits for a server that does not answer.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The PostgreSQL advisory lock key migrations hold (`sandkit` in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x73_61_6e_64_6b_69_74;

/// The MySQL named lock migrations hold, and how long to wait for it.
const MYSQL_MIGRATION_LOCK: &str = "sandkit_migrate";
const MYSQL_LOCK_WAIT_SECS: u32 = 120;

/// Records what the schema already holds, then runs the missing migrations.
async fn migrate_on<'c, C>(conn: &'c C) -> Result<()>
where
    &'c C: IntoSchemaManagerConnection<'c>,
{
    let manager = SchemaManager::new(conn);
    if let SchemaStatus::Newer { unknown } = migration::status(&manager)
        .await
        .map_err(migration_failed)?
    {
        return Err(newer_schema(&unknown));
    }
    migration::adopt(&manager).await.map_err(migration_failed)?;
    Migrator::up(conn, None).await.map_err(migration_failed)
}

/// The refusal for a database a newer Sandkit migrated.
fn newer_schema(unknown: &[String]) -> Error {
    Error::invalid_input(format!(
        "this database was migrated by a newer Sandkit (it records {}); upgrade sandkit \
         (or sandkit-adapter-seaorm) to use it",
        unknown.join(", ")
    ))
}

/// A failed migration step. Only connection trouble is worth retrying: anything else
/// fails the same way until the schema is looked at.
fn migration_failed(err: DbErr) -> Error {
    let hint = match &err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => {
            "check that the database server is running and reachable, then run it again"
        }
        _ => {
            "the database holds something Sandkit's migrations did not expect; \
             `sandkit generate --database-url URL` shows what it needs, and \
             `sandkit migrate --check` where the schema stands (this fails the same way \
             until the schema is fixed)"
        }
    };
    Error::storage(format!(
        "migrating the Sandkit schema failed: {err}; {hint}"
    ))
    .with_source(err)
}

/// A MySQL connection of its own holding [`MYSQL_MIGRATION_LOCK`].
async fn mysql_lock(db: &DatabaseConnection) -> Result<MySqlConnection> {
    let mut conn = db
        .get_mysql_connection_pool()
        .acquire()
        .await
        .map_err(|e| {
            Error::storage(format!(
                "could not get a connection to lock the migrations: {e}; check that the \
                 database server is running and reachable, then run it again"
            ))
        })?
        .detach();
    let got: Option<i64> = sea_orm::sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(MYSQL_MIGRATION_LOCK)
        .bind(MYSQL_LOCK_WAIT_SECS)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| migration_failed(DbErr::Custom(e.to_string())))?;
    if got != Some(1) {
        return Err(Error::busy(format!(
            "another process has been migrating the Sandkit schema for over \
             {MYSQL_LOCK_WAIT_SECS} s (MySQL lock {MYSQL_MIGRATION_LOCK}); wait for it to \
             finish, then run it again"
        )));
    }
    Ok(conn)
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
        Self::connect_with_timeout(url, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// Like [`connect`](SeaOrmStore::connect), giving up after `timeout` when the
    /// server does not answer. A closed port fails at once with a `Storage` error
    /// naming `host:port` ("connection refused"), not after the timeout. The password
    /// of the URL appears in no error and no log line, at any level.
    ///
    /// # Errors
    /// `InvalidInput` for an unsupported URL, `Storage` when the database cannot be
    /// reached.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        let dialect = Dialect::from_url(url)?;
        let db = match dialect {
            Dialect::Sqlite => {
                let mut options = Self::connect_options(url)?;
                options.connect_timeout(timeout).acquire_timeout(timeout);
                Database::connect(options).await.map_err(|e| {
                    Error::storage(format!(
                        "could not open the SQLite database {url}: {e}; check the path and \
                         that its directory is readable (and writable, to change anything)"
                    ))
                    .with_source(e)
                })?
            }
            Dialect::MySql | Dialect::Postgres => {
                crate::connect::connect_server(url, dialect, timeout, None).await?
            }
        };
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

    /// Creates or upgrades Sandkit's tables: a fresh database gets the current schema;
    /// a database created by the TypeScript Sandkit is upgraded in place; a schema that
    /// is already current — however it got there (see [`migration`](crate::migration))
    /// — is only recorded as such. Safe to call from many processes at once: they
    /// take turns (a PostgreSQL advisory lock, a MySQL named lock, SQLite's write
    /// lock).
    ///
    /// # Errors
    /// `Storage` when a migration fails (the message names it and what to do);
    /// `InvalidInput` when a newer Sandkit migrated this database.
    pub async fn migrate(&self) -> Result<()> {
        match self.dialect {
            Dialect::Sqlite => {
                // BEGIN IMMEDIATE: other processes wait on the write lock.
                let txn = write::begin(&self.db, self.dialect).await?;
                migrate_on(&txn).await?;
                txn.commit().await.map_err(migration_failed)?;
            }
            Dialect::Postgres => {
                let txn = self.db.begin().await.map_err(migration_failed)?;
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .await
                .map_err(migration_failed)?;
                migrate_on(&txn).await?;
                txn.commit().await.map_err(migration_failed)?;
            }
            Dialect::MySql => {
                // DDL commits implicitly on MySQL, so the lock is a named lock held by
                // a connection of its own (closed, and so released, on every path).
                let lock = mysql_lock(&self.db).await?;
                let outcome = migrate_on(&self.db).await;
                // Closing the connection releases the lock even if the close fails.
                let _ = lock.close().await;
                outcome?;
            }
        }
        info!(dialect = %self.dialect, "sandkit schema is up to date");
        Ok(())
    }

    /// MySQL/MariaDB: moves the ids of a database the TypeScript Sandkit made to the
    /// binary collation (byte-by-byte comparison, as Sandkit's own tables have),
    /// together with the application's columns whose foreign keys reference them —
    /// which [`migrate`](SeaOrmStore::migrate) leaves alone (its upgrade keeps the
    /// case-insensitive collation rather than break an application's key). Foreign
    /// keys are dropped meanwhile and re-created with their rules. A no-op on other
    /// dialects and on ids already binary. Two ids that differ only in case would
    /// collide after it; MySQL then refuses the conversion and nothing is lost.
    ///
    /// # Errors
    /// `Storage` naming the statement that failed (an application column that is not
    /// a character column is refused before anything changes).
    pub async fn convert_ids_to_binary_collation(&self) -> Result<()> {
        if self.dialect != Dialect::MySql {
            return Ok(());
        }
        let lock = mysql_lock(&self.db).await?;
        let outcome = migration::convert_ids_to_binary(&SchemaManager::new(&self.db)).await;
        let _ = lock.close().await;
        outcome.map_err(migration_failed)
    }

    /// Where the schema stands, without changing anything (works on a read-only
    /// connection).
    ///
    /// # Errors
    /// `Storage` when the database cannot be read.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        migration::status(&SchemaManager::new(&self.db))
            .await
            .map_err(|e| storage("reading the Sandkit schema's version", e))
    }

    /// Fails unless the schema is current: for applications whose own migrations own
    /// the schema, and so never call [`migrate`](SeaOrmStore::migrate).
    ///
    /// # Errors
    /// `Storage` naming the missing migrations and the commands that add them;
    /// `InvalidInput` when a newer Sandkit migrated this database.
    pub async fn require_current_schema(&self) -> Result<()> {
        match self.schema_status().await? {
            SchemaStatus::Current => Ok(()),
            SchemaStatus::Behind { pending } => Err(Error::storage(format!(
                "the Sandkit schema in this {} database is behind (missing: {}); run \
                 `sandkit migrate --database URL` (or SeaOrmStore::migrate()), or apply the \
                 migration or SQL that `sandkit generate` writes with your own migrations",
                self.dialect,
                pending.join(", ")
            ))),
            SchemaStatus::Newer { unknown } => Err(newer_schema(&unknown)),
        }
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

    async fn list_setups(&self) -> Result<Vec<SetupRecord>> {
        read::setups(&self.db, self.dialect).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deterministic_migration_failure_never_says_retry() {
        let err = migration_failed(DbErr::Custom("Duplicate column name 'policy'".to_owned()));
        let text = err.to_string();
        assert!(text.contains("Duplicate column name 'policy'"), "{text}");
        assert!(text.contains("sandkit migrate --check"), "{text}");
        assert!(text.contains("sandkit generate --database-url"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("retry"), "{text}");
    }

    #[test]
    fn a_lost_connection_says_to_check_the_server() {
        let err = migration_failed(DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "connection refused".to_owned(),
        )));
        assert!(err.to_string().contains("server is running"), "{err}");
    }
}
