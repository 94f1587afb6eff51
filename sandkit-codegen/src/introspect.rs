//! Reading which parts of Sandkit's schema an existing database holds
//! (`information_schema` on PostgreSQL and MySQL, pragmas on SQLite).
//!
//! Introspection never changes the database it looks at: a SQLite file is opened
//! read-only, never created, and keeps its journal mode (the store's own connect
//! options switch a file to WAL, which writes it); on PostgreSQL and MySQL every query
//! runs in a read-only transaction that is rolled back.

use sandkit_adapter_seaorm::sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    QueryResult, Statement, TransactionTrait,
};
use sandkit_core::{Error, Result};

use crate::dialect::Dialect;
use crate::plan::{ColumnState, DatabaseState, ForeignKeyState, TableState};
use crate::schema::sandkit_schema;
use crate::types::LogicalType;

fn query_error(e: impl std::fmt::Display) -> Error {
    Error::storage(format!(
        "reading the database schema failed: {e}; check that the user may read \
         information_schema (or the SQLite file)"
    ))
}

/// Connection options that only read: for SQLite the file is opened read-only
/// (`mode=ro`, never created) with no journal-mode change; Sandkit's own
/// `synchronous=` URL parameter is dropped (it is about writing). `mariadb://` URLs
/// become `mysql://` for the driver.
///
/// # Errors
/// `InvalidInput` for a URL whose scheme is not SQLite, PostgreSQL or MySQL.
pub fn read_only_connect_options(url: &str) -> Result<(Dialect, ConnectOptions)> {
    let dialect = Dialect::from_url(url).ok_or_else(|| {
        Error::invalid_input(
            "unsupported --database-url scheme; use sqlite://PATH, postgres://USER@HOST/DB or \
             mysql://USER@HOST/DB",
        )
    })?;
    let url = match dialect {
        Dialect::Sqlite => {
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut kept: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                    !matches!(key, "mode" | "synchronous")
                })
                .collect();
            kept.push("mode=ro");
            format!("{base}?{}", kept.join("&"))
        }
        Dialect::MySql => match url.split_once("://") {
            Some((_, rest)) => format!("mysql://{rest}"),
            None => url.to_owned(),
        },
        Dialect::Postgres => url.to_owned(),
    };
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    if dialect == Dialect::Sqlite {
        // No journal_mode, synchronous or other pragma that writes: sqlx sets none
        // unless asked to.
        options.map_sqlx_sqlite_opts(|o| o.read_only(true).create_if_missing(false));
    }
    Ok((dialect, options))
}

/// Connects to `url` (read-only; a SQLite file is never created nor changed) and reads
/// its Sandkit tables. The URL never appears in errors.
///
/// # Errors
/// `InvalidInput` for an unsupported URL, `Storage` when the database cannot be
/// reached or read.
pub async fn introspect(url: &str) -> Result<(Dialect, DatabaseState)> {
    let (dialect, options) = read_only_connect_options(url)?;
    let conn = Database::connect(options).await.map_err(|e| {
        Error::storage(format!(
            "could not connect to the {} database: {e}; check the URL, that the server is \
             running (or the SQLite file exists) and the credentials",
            dialect.display_name()
        ))
    })?;
    let state = introspect_connection(&conn).await;
    // Closing is best effort; the state is what matters.
    let _ = conn.close().await;
    Ok((dialect, state?))
}

/// Reads the Sandkit tables of an open connection.
///
/// # Errors
/// `Storage` when the schema cannot be read.
pub async fn introspect_connection(conn: &DatabaseConnection) -> Result<DatabaseState> {
    let backend = conn.get_database_backend();
    if backend == DbBackend::Sqlite {
        // SQLite has no read-only transactions; `introspect` opens the file read-only.
        return sqlite(conn).await;
    }
    let txn = conn
        .begin_with_config(None, Some(AccessMode::ReadOnly))
        .await
        .map_err(query_error)?;
    let state = match backend {
        DbBackend::Postgres => postgres(&txn).await,
        _ => mysql(&txn).await,
    };
    // Nothing was written; rolling back only ends the transaction.
    txn.rollback().await.map_err(query_error)?;
    state
}

fn table_names() -> String {
    sandkit_schema()
        .tables
        .iter()
        .map(|t| format!("'{}'", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn rows(conn: &impl ConnectionTrait, sql: String) -> Result<Vec<QueryResult>> {
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .map_err(query_error)
}

fn get<T: sandkit_adapter_seaorm::sea_orm::TryGetable>(
    row: &QueryResult,
    column: &str,
) -> Result<T> {
    row.try_get::<T>("", column).map_err(query_error)
}

/// Reads `information_schema` column rows (`t`, `c`, `ty`, `coll`, `nullable`, and
/// with `precision` also `prec`) into `state`.
async fn read_columns(
    conn: &impl ConnectionTrait,
    state: &mut DatabaseState,
    precision: bool,
    sql: String,
) -> Result<()> {
    for row in rows(conn, sql).await? {
        let table: String = get(&row, "t")?;
        let column = ColumnState {
            data_type: get::<String>(&row, "ty")?.to_ascii_lowercase(),
            collation: get(&row, "coll")?,
            nullable: get::<String>(&row, "nullable")? == "YES",
            datetime_precision: if precision {
                Some(get(&row, "prec")?)
            } else {
                None
            },
            integer_values: false,
        };
        state
            .tables
            .entry(table)
            .or_default()
            .columns
            .insert(get(&row, "c")?, column);
    }
    Ok(())
}

/// Reads index rows (`t`, `i`) into the tables of `state` already read.
async fn read_indexes(
    conn: &impl ConnectionTrait,
    state: &mut DatabaseState,
    sql: String,
) -> Result<()> {
    for row in rows(conn, sql).await? {
        let table: String = get(&row, "t")?;
        if let Some(t) = state.tables.get_mut(&table) {
            t.indexes.insert(get(&row, "i")?);
        }
    }
    Ok(())
}

async fn postgres(conn: &impl ConnectionTrait) -> Result<DatabaseState> {
    let mut state = DatabaseState::default();
    let names = table_names();
    read_columns(
        conn,
        &mut state,
        false,
        format!(
            "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, \
             collation_name::text AS coll, is_nullable::text AS nullable \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name IN ({names})"
        ),
    )
    .await?;
    read_indexes(
        conn,
        &mut state,
        format!(
            "SELECT tablename::text AS t, indexname::text AS i FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename IN ({names})"
        ),
    )
    .await?;
    Ok(state)
}

async fn mysql(conn: &impl ConnectionTrait) -> Result<DatabaseState> {
    let mut state = DatabaseState::default();
    let names = table_names();
    for row in rows(
        conn,
        format!(
            "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(TABLE_COLLATION AS CHAR) AS coll \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({names})"
        ),
    )
    .await?
    {
        state.tables.insert(
            get(&row, "t")?,
            TableState {
                collation: get(&row, "coll")?,
                ..TableState::default()
            },
        );
    }
    read_columns(
        conn,
        &mut state,
        true,
        format!(
            "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(COLUMN_NAME AS CHAR) AS c, \
             CAST(DATA_TYPE AS CHAR) AS ty, CAST(COLLATION_NAME AS CHAR) AS coll, \
             CAST(IS_NULLABLE AS CHAR) AS nullable, \
             CAST(COALESCE(DATETIME_PRECISION, 0) AS SIGNED) AS prec \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({names})"
        ),
    )
    .await?;
    read_indexes(
        conn,
        &mut state,
        format!(
            "SELECT DISTINCT CAST(TABLE_NAME AS CHAR) AS t, CAST(INDEX_NAME AS CHAR) AS i \
             FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({names})"
        ),
    )
    .await?;
    for row in rows(
        conn,
        format!(
            "SELECT CAST(k.CONSTRAINT_NAME AS CHAR) AS name, CAST(k.TABLE_NAME AS CHAR) AS t, \
             CAST(k.COLUMN_NAME AS CHAR) AS c, CAST(k.REFERENCED_TABLE_NAME AS CHAR) AS rt, \
             CAST(k.REFERENCED_COLUMN_NAME AS CHAR) AS rc, \
             CAST(col.COLUMN_TYPE AS CHAR) AS ty, CAST(col.COLLATION_NAME AS CHAR) AS coll, \
             CAST(col.IS_NULLABLE AS CHAR) AS nullable, \
             CAST(r.DELETE_RULE AS CHAR) AS on_delete, CAST(r.UPDATE_RULE AS CHAR) AS on_update \
             FROM information_schema.KEY_COLUMN_USAGE AS k \
             JOIN information_schema.COLUMNS AS col ON col.TABLE_SCHEMA = k.TABLE_SCHEMA \
               AND col.TABLE_NAME = k.TABLE_NAME AND col.COLUMN_NAME = k.COLUMN_NAME \
             LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS AS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.TABLE_NAME = k.TABLE_NAME \
               AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
             WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IN ({names}) \
             ORDER BY t, name"
        ),
    )
    .await?
    {
        state.foreign_keys.push(ForeignKeyState {
            name: get(&row, "name")?,
            table: get(&row, "t")?,
            column: get(&row, "c")?,
            references_table: get(&row, "rt")?,
            references_column: get(&row, "rc")?,
            column_type: get(&row, "ty")?,
            collation: get(&row, "coll")?,
            nullable: get::<String>(&row, "nullable")? == "YES",
            on_delete: get(&row, "on_delete")?,
            on_update: get(&row, "on_update")?,
        });
    }
    Ok(state)
}

async fn sqlite(conn: &DatabaseConnection) -> Result<DatabaseState> {
    let schema = sandkit_schema();
    let mut state = DatabaseState::default();
    let existing: Vec<String> = rows(
        conn,
        format!(
            "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name IN ({})",
            table_names()
        ),
    )
    .await?
    .iter()
    .map(|row| get(row, "t"))
    .collect::<Result<_>>()?;
    for name in existing {
        let mut table = TableState::default();
        for row in rows(
            conn,
            format!(
                "SELECT name AS c, type AS ty, \"notnull\" AS nn FROM pragma_table_info('{name}')"
            ),
        )
        .await?
        {
            let not_null: i64 = get(&row, "nn")?;
            table.columns.insert(
                get(&row, "c")?,
                ColumnState {
                    data_type: get::<String>(&row, "ty")?.to_ascii_lowercase(),
                    nullable: not_null == 0,
                    ..ColumnState::default()
                },
            );
        }
        for row in rows(
            conn,
            format!("SELECT name AS i FROM pragma_index_list('{name}')"),
        )
        .await?
        {
            table.indexes.insert(get(&row, "i")?);
        }
        let timestamps = schema
            .table(&name)
            .map(|t| {
                t.columns
                    .iter()
                    .filter(|c| c.ty == LogicalType::Timestamp)
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for column in timestamps {
            let Some(found) = table.columns.get_mut(column) else {
                continue;
            };
            let probe = rows(
                conn,
                format!(
                    "SELECT COUNT(*) AS n FROM (SELECT 1 FROM \"{name}\" \
                     WHERE typeof(\"{column}\") = 'integer' LIMIT 1)"
                ),
            )
            .await?;
            let count: i64 = probe
                .first()
                .map(|row| get(row, "n"))
                .transpose()?
                .unwrap_or(0);
            found.integer_values = count > 0;
        }
        state.tables.insert(name, table);
    }
    Ok(state)
}
