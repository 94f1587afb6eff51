//! Backends: where sandboxes run (a provider) and where state lives (a database), and
//! the `--backend` filters that select them.

use std::fmt;
use std::str::FromStr;

/// Where sandboxes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// `sandkit-vercel` against the fake Vercel API (wiremock on loopback).
    VercelFake,
    /// `sandkit-local`: directories and processes on this machine.
    Local,
    /// `sandkit-vercel` against the real service (only with `--live` and credentials).
    VercelLive,
}

impl ProviderKind {
    /// Every provider, in report order.
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::VercelFake,
        ProviderKind::Local,
        ProviderKind::VercelLive,
    ];

    /// Name used in reports and filters.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::VercelFake => "vercel-fake",
            ProviderKind::Local => "local",
            ProviderKind::VercelLive => "vercel-live",
        }
    }

    /// Whether this is the Vercel provider (fake or live).
    pub fn is_vercel(self) -> bool {
        matches!(self, ProviderKind::VercelFake | ProviderKind::VercelLive)
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "vercel-fake" | "fake" => Some(ProviderKind::VercelFake),
            "local" => Some(ProviderKind::Local),
            "vercel-live" | "live" => Some(ProviderKind::VercelLive),
            _ => None,
        }
    }
}

/// Where Sandkit's tables live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatabaseKind {
    /// A SQLite file per scenario run.
    Sqlite,
    /// A fresh PostgreSQL database per scenario run.
    Postgres,
    /// A fresh MariaDB/MySQL database per scenario run.
    MySql,
}

impl DatabaseKind {
    /// Every database, in report order.
    pub const ALL: [DatabaseKind; 3] = [
        DatabaseKind::Sqlite,
        DatabaseKind::Postgres,
        DatabaseKind::MySql,
    ];

    /// Name used in reports and filters.
    pub fn name(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::MySql => "mysql",
        }
    }

    /// The environment variable holding the server URL (`None`: needs no server).
    pub fn url_var(self) -> Option<&'static str> {
        match self {
            DatabaseKind::Sqlite => None,
            DatabaseKind::Postgres => Some("SANDKIT_TEST_POSTGRES_URL"),
            DatabaseKind::MySql => Some("SANDKIT_TEST_MYSQL_URL"),
        }
    }

    /// An example server URL, for messages.
    pub fn example_url(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => "sqlite://smoke.db",
            DatabaseKind::Postgres => "postgres://postgres@127.0.0.1:5432/postgres",
            DatabaseKind::MySql => "mysql://root@127.0.0.1:3306/test",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "sqlite" => Some(DatabaseKind::Sqlite),
            "postgres" | "postgresql" | "pg" => Some(DatabaseKind::Postgres),
            "mysql" | "mariadb" => Some(DatabaseKind::MySql),
            _ => None,
        }
    }
}

/// One provider on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// Where sandboxes run.
    pub provider: ProviderKind,
    /// Where state lives.
    pub database: DatabaseKind,
}

impl Backend {
    /// A backend.
    pub fn new(provider: ProviderKind, database: DatabaseKind) -> Self {
        Backend { provider, database }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider.name(), self.database.name())
    }
}

/// A `--backend` value: a provider, a database, or `provider/database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFilter {
    provider: Option<ProviderKind>,
    database: Option<DatabaseKind>,
}

impl BackendFilter {
    /// Whether `backend` is selected by this filter.
    pub fn matches(&self, backend: Backend) -> bool {
        self.provider.is_none_or(|p| p == backend.provider)
            && self.database.is_none_or(|d| d == backend.database)
    }

    /// Whether the filter names the live Vercel provider.
    pub fn names_live(&self) -> bool {
        self.provider == Some(ProviderKind::VercelLive)
    }
}

const BACKEND_HELP: &str = "use a provider (vercel-fake, local, vercel-live), a database \
     (sqlite, postgres, mysql) or both as provider/database, e.g. local/sqlite";

impl FromStr for BackendFilter {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim().to_ascii_lowercase();
        let unknown = || format!("unknown backend {raw:?}; {BACKEND_HELP}");
        if let Some((provider, database)) = raw.split_once('/') {
            return Ok(BackendFilter {
                provider: Some(ProviderKind::parse(provider).ok_or_else(unknown)?),
                database: Some(DatabaseKind::parse(database).ok_or_else(unknown)?),
            });
        }
        if let Some(provider) = ProviderKind::parse(&raw) {
            return Ok(BackendFilter {
                provider: Some(provider),
                database: None,
            });
        }
        match DatabaseKind::parse(&raw) {
            Some(database) => Ok(BackendFilter {
                provider: None,
                database: Some(database),
            }),
            None => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(raw: &str) -> BackendFilter {
        raw.parse().expect("valid filter")
    }

    #[test]
    fn filters_select_providers_databases_or_both() {
        let local_pg = Backend::new(ProviderKind::Local, DatabaseKind::Postgres);
        let fake_sqlite = Backend::new(ProviderKind::VercelFake, DatabaseKind::Sqlite);
        assert!(filter("local").matches(local_pg));
        assert!(!filter("local").matches(fake_sqlite));
        assert!(filter("sqlite").matches(fake_sqlite));
        assert!(!filter("sqlite").matches(local_pg));
        assert!(filter("local/postgres").matches(local_pg));
        assert!(!filter("local/sqlite").matches(local_pg));
        assert!(filter("fake/SQLite").matches(fake_sqlite));
        assert!(filter("mariadb").matches(Backend::new(ProviderKind::Local, DatabaseKind::MySql)));
    }

    #[test]
    fn unknown_filters_say_what_is_accepted() {
        for bad in ["oracle", "local/oracle", "docker/sqlite", ""] {
            let err = bad.parse::<BackendFilter>().expect_err(bad);
            assert!(err.contains("local/sqlite"), "{err}");
        }
    }

    #[test]
    fn backends_display_as_provider_slash_database() {
        let b = Backend::new(ProviderKind::VercelFake, DatabaseKind::MySql);
        assert_eq!(b.to_string(), "vercel-fake/mysql");
        assert!(filter("live").names_live());
    }
}
