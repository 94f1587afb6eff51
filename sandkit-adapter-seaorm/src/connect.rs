//! Connecting without waiting out a pool timeout on a closed port, and without a
//! password in any log line or error.
//!
//! SeaORM's MySQL and PostgreSQL connectors record their options — URL and password
//! included — in a `trace` span; Sandkit therefore builds the sqlx pool itself and hands
//! it to SeaORM. Before that, one plain TCP connect tells a closed port ("connection
//! refused", answered at once) from a slow server, so that a wrong port fails in
//! milliseconds instead of after the pool's acquire timeout.

use std::str::FromStr;
use std::time::Duration;

use sandkit_core::{Error, Result};
use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm::sqlx::{self, ConnectOptions as _};
use sea_orm::{DatabaseConnection, SqlxMySqlConnector, SqlxPostgresConnector};

use crate::dialect::Dialect;

/// `url` with its password replaced by `***`, fit for messages and logs.
///
/// ```
/// use sandkit_adapter_seaorm::redact_url;
/// assert_eq!(redact_url("mysql://root:s3cret@db:3306/app"), "mysql://root:***@db:3306/app");
/// assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}@{host}{tail}")
}

/// The `host:port` a server URL names (default port per dialect), when it names one.
pub(crate) fn host_port(url: &str, dialect: Dialect) -> Option<(String, u16)> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default = match dialect {
        Dialect::Postgres => 5432,
        Dialect::MySql => 3306,
        Dialect::Sqlite => return None,
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    Some((host.to_owned(), port))
}

/// Fails at once, naming `host:port`, when nothing listens there.
async fn probe(host: &str, port: u16, dialect: Dialect, timeout: Duration) -> Result<()> {
    let target = format!("{host}:{port}");
    let attempt = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await;
    let error = match attempt {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(Error::storage(format!(
                "cannot reach the {dialect} server at {target}: no answer within {}s; check \
                 the host and port in the database URL and that the network lets you through",
                timeout.as_secs_f64()
            )));
        }
    };
    let what = if error.kind() == std::io::ErrorKind::ConnectionRefused {
        "connection refused (nothing listens on that port)".to_owned()
    } else {
        error.to_string()
    };
    Err(Error::storage(format!(
        "cannot reach the {dialect} server at {target}: {what}; start the server, or fix the \
         host and port in the database URL"
    )))
}

/// Connects a MySQL/MariaDB or PostgreSQL pool (no SQL statement logging, no password
/// in any span), first checking that the server's port is open.
pub(crate) async fn connect_server(
    url: &str,
    dialect: Dialect,
    timeout: Duration,
    max_connections: Option<u32>,
) -> Result<DatabaseConnection> {
    if let Some((host, port)) = host_port(url, dialect) {
        probe(&host, port, dialect, timeout).await?;
    }
    let shown = redact_url(url);
    let bad_url = |e: sqlx::Error| {
        // sqlx's parse errors may quote the URL: say what is wrong without it.
        let _ = e;
        Error::invalid_input(format!(
            "cannot parse the {dialect} URL {shown}; use {}",
            match dialect {
                Dialect::MySql => "mysql://user:password@host:3306/database",
                _ => "postgres://user:password@host:5432/database",
            }
        ))
    };
    let failed = |e: sqlx::Error| {
        let redacted = redact_text(&e.to_string(), url);
        Error::storage(format!(
            "could not connect to the {dialect} database at {shown}: {redacted}; check the \
             URL, that the server is running and that the credentials are right"
        ))
    };
    match dialect {
        Dialect::MySql => {
            let mysql_url = match url.split_once("://") {
                Some((_, rest)) => format!("mysql://{rest}"),
                None => url.to_owned(),
            };
            let options = MySqlConnectOptions::from_str(&mysql_url)
                .map_err(bad_url)?
                .disable_statement_logging();
            let mut pool = MySqlPoolOptions::new().acquire_timeout(timeout);
            if let Some(max) = max_connections {
                pool = pool.max_connections(max);
            }
            let pool = pool.connect_with(options).await.map_err(failed)?;
            Ok(SqlxMySqlConnector::from_sqlx_mysql_pool(pool))
        }
        Dialect::Postgres => {
            let options = PgConnectOptions::from_str(url)
                .map_err(bad_url)?
                .disable_statement_logging();
            let mut pool = PgPoolOptions::new().acquire_timeout(timeout);
            if let Some(max) = max_connections {
                pool = pool.max_connections(max);
            }
            let pool = pool.connect_with(options).await.map_err(failed)?;
            Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
        }
        Dialect::Sqlite => Err(Error::invalid_input(
            "connect_server is for MySQL/MariaDB and PostgreSQL URLs",
        )),
    }
}

/// `text` with the password of `url` (if any, and not trivially short) replaced.
fn redact_text(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| {
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
        })
        .and_then(|userinfo| userinfo.split_once(':').map(|(_, p)| p));
    match password {
        Some(p) if !p.is_empty() => text.replace(url, &redact_url(url)).replace(p, "***"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h/db?sslmode=disable"),
            "postgres://u:***@h/db?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("mysql://h"), "mysql://h");
    }

    #[test]
    fn host_and_port_come_from_the_authority() {
        assert_eq!(
            host_port("postgres://u:p@127.0.0.1:1/x", Dialect::Postgres),
            Some(("127.0.0.1".into(), 1))
        );
        assert_eq!(
            host_port("mysql://root@db/test", Dialect::MySql),
            Some(("db".into(), 3306))
        );
        assert_eq!(
            host_port("postgres://u@[::1]:5433/x", Dialect::Postgres),
            Some(("::1".into(), 5433))
        );
        assert_eq!(
            host_port("postgres:///x?host=/run/pg", Dialect::Postgres),
            None
        );
    }
}
