//! The three SQL dialects the store speaks.

use std::fmt;

use sandkit_core::{Error, Result};
use sea_orm::DbBackend;

/// A SQL dialect, chosen from the connection URL or the connection's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite (`sqlite://path`, `sqlite::memory:`): the embedded default.
    Sqlite,
    /// PostgreSQL (`postgres://…`, `postgresql://…`).
    Postgres,
    /// MySQL or MariaDB (`mysql://…`, `mariadb://…`).
    MySql,
}

impl Dialect {
    /// The dialect a connection URL names.
    ///
    /// # Errors
    /// `InvalidInput` when the scheme is none of `sqlite`, `postgres`, `postgresql`,
    /// `mysql`, `mariadb`.
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            _ => Err(Error::invalid_input(format!(
                "unsupported database URL scheme {scheme:?}; use sqlite://path, \
                 postgres://user@host/db or mysql://user@host/db"
            ))),
        }
    }

    /// The dialect of a SeaORM backend.
    pub fn from_backend(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Dialect::Postgres,
            DbBackend::MySql => Dialect::MySql,
            _ => Dialect::Sqlite,
        }
    }

    /// The SeaORM backend of this dialect.
    pub fn backend(self) -> DbBackend {
        match self {
            Dialect::Sqlite => DbBackend::Sqlite,
            Dialect::Postgres => DbBackend::Postgres,
            Dialect::MySql => DbBackend::MySql,
        }
    }

    /// The store id for this dialect (`seaorm-sqlite`, `seaorm-postgres`, `seaorm-mysql`);
    /// it is part of setup ids.
    pub fn store_id(self) -> &'static str {
        match self {
            Dialect::Sqlite => "seaorm-sqlite",
            Dialect::Postgres => "seaorm-postgres",
            Dialect::MySql => "seaorm-mysql",
        }
    }

    /// Short name (`sqlite`, `postgres`, `mysql`).
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_from_url_scheme() {
        assert_eq!(
            Dialect::from_url("sqlite://x.db?mode=rwc").ok(),
            Some(Dialect::Sqlite)
        );
        assert_eq!(
            Dialect::from_url("sqlite::memory:").ok(),
            Some(Dialect::Sqlite)
        );
        assert_eq!(
            Dialect::from_url("postgresql://h/db").ok(),
            Some(Dialect::Postgres)
        );
        assert_eq!(
            Dialect::from_url("MariaDB://h/db").ok(),
            Some(Dialect::MySql)
        );
        let err = Dialect::from_url("redis://h").expect_err("unsupported");
        assert!(err.to_string().contains("sqlite://"), "{err}");
    }

    #[test]
    fn store_ids_name_the_dialect() {
        assert_eq!(Dialect::Postgres.store_id(), "seaorm-postgres");
        assert_eq!(
            Dialect::from_backend(DbBackend::MySql).store_id(),
            "seaorm-mysql"
        );
    }
}
