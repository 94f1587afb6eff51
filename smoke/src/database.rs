//! A fresh database per scenario run: a SQLite file in the run's scratch directory, or
//! a new PostgreSQL / MariaDB database created on the configured server and dropped
//! afterwards.

use std::path::Path;

use std::time::Duration;

use anyhow::{Context as _, bail};
use sandkit_adapter_seaorm::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
};

use crate::backend::DatabaseKind;

/// Whether a database kind can be used in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Usable; the server URL for server databases.
    Ready(Option<String>),
    /// Not configured here: its scenarios are skipped, with the reason.
    Skip(String),
    /// Not configured under `CI=true`: its scenarios fail, with the reason.
    Fail(String),
}

/// Whether `CI` is set to `true` or `1`.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

impl Availability {
    /// Reads the server URL of `kind` from its environment variable.
    pub fn of(kind: DatabaseKind) -> Availability {
        Self::from_lookup(kind, is_ci(), |var| std::env::var(var).ok())
    }

    /// [`Availability::of`] with an injectable environment.
    pub fn from_lookup(
        kind: DatabaseKind,
        ci: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Availability {
        let Some(var) = kind.url_var() else {
            return Availability::Ready(None);
        };
        match lookup(var).filter(|u| !u.trim().is_empty()) {
            Some(url) => Availability::Ready(Some(url)),
            None if ci => Availability::Fail(format!(
                "{var} is not set but CI=true: set it to a server URL such as {}",
                kind.example_url()
            )),
            None => Availability::Skip(format!(
                "{var} is not set; set it to a server URL such as {} to run these",
                kind.example_url()
            )),
        }
    }
}

/// How long connecting to a database server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An administrative connection to a server (quiet, failing fast).
async fn admin(server: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(server);
    options
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        .max_connections(1)
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .context("connecting to the database server")
}

/// Checks once that the server of a ready database answers, so that an unreachable
/// server fails its runs at once instead of each timing out.
pub async fn check_server(kind: DatabaseKind, availability: Availability) -> Availability {
    let Availability::Ready(Some(server)) = &availability else {
        return availability;
    };
    let var = kind.url_var().unwrap_or("the server URL");
    match admin(server).await {
        Ok(conn) => match conn.execute_unprepared("SELECT 1").await {
            Ok(_) => {
                conn.close().await.ok();
                availability
            }
            Err(e) => Availability::Fail(format!("the server named by {var} fails a query: {e}")),
        },
        Err(e) => Availability::Fail(format!("cannot reach the server named by {var}: {e:#}")),
    }
}

/// A database that exists until [`TestDatabase::drop_database`].
#[derive(Debug)]
pub struct TestDatabase {
    /// Connection URL of this database.
    pub url: String,
    /// Its kind.
    pub kind: DatabaseKind,
    server: Option<(String, String)>,
}

impl TestDatabase {
    /// Creates a fresh database of `kind`: a SQLite file under `scratch`, or a new
    /// database named `smoke_<random>` on `server_url`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses `CREATE DATABASE`.
    pub async fn create(
        kind: DatabaseKind,
        server_url: Option<&str>,
        scratch: &Path,
    ) -> anyhow::Result<TestDatabase> {
        if kind == DatabaseKind::Sqlite {
            return Ok(TestDatabase {
                url: format!("sqlite://{}", scratch.join("smoke.db").display()),
                kind,
                server: None,
            });
        }
        let Some(server) = server_url else {
            bail!("no server URL for {}", kind.name());
        };
        let name = format!("smoke_{}", uuid::Uuid::new_v4().simple());
        let admin = admin(server)
            .await
            .with_context(|| format!("connecting to the {} server", kind.name()))?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await.ok();
        let mut url = url::Url::parse(server).context("parsing the server URL")?;
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: url.to_string(),
            kind,
            server: Some((server.to_owned(), name)),
        })
    }

    /// Drops a server database (a SQLite file goes with the scratch directory).
    ///
    /// # Errors
    /// When the server refuses `DROP DATABASE`.
    pub async fn drop_database(&mut self) -> anyhow::Result<()> {
        let Some((server, name)) = self.server.take() else {
            return Ok(());
        };
        let sql = match self.kind {
            DatabaseKind::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        };
        let admin = admin(&server)
            .await
            .with_context(|| format!("connecting to drop database {name}"))?;
        admin
            .execute_unprepared(&sql)
            .await
            .with_context(|| format!("dropping database {name}"))?;
        admin.close().await.ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_is_always_available() {
        assert_eq!(
            Availability::from_lookup(DatabaseKind::Sqlite, true, |_| None),
            Availability::Ready(None)
        );
    }

    #[test]
    fn a_missing_server_url_skips_locally_and_fails_under_ci() {
        let none = |_: &str| None;
        match Availability::from_lookup(DatabaseKind::Postgres, false, none) {
            Availability::Skip(why) => assert!(why.contains("SANDKIT_TEST_POSTGRES_URL"), "{why}"),
            other => panic!("expected a skip, got {other:?}"),
        }
        match Availability::from_lookup(DatabaseKind::MySql, true, none) {
            Availability::Fail(why) => {
                assert!(
                    why.contains("SANDKIT_TEST_MYSQL_URL") && why.contains("CI=true"),
                    "{why}"
                )
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let blank = |_: &str| Some("  ".to_owned());
        assert!(matches!(
            Availability::from_lookup(DatabaseKind::MySql, false, blank),
            Availability::Skip(_)
        ));
    }

    #[test]
    fn a_set_server_url_is_used() {
        let set = |var: &str| (var == "SANDKIT_TEST_MYSQL_URL").then(|| "mysql://h/db".to_owned());
        assert_eq!(
            Availability::from_lookup(DatabaseKind::MySql, true, set),
            Availability::Ready(Some("mysql://h/db".into()))
        );
    }
}
