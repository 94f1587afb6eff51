//! Raw SQL on Sandkit's tables, beside the store: dumping every row as text and
//! corrupting columns, the way an operator (or a bug) could.

use anyhow::Context as _;
use sandkit_adapter_seaorm::Dialect;
use sandkit_adapter_seaorm::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value,
};

/// Quotes an identifier for `dialect`.
pub fn quote(dialect: Dialect, ident: &str) -> String {
    match dialect {
        Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
        _ => format!("\"{}\"", ident.replace('"', "\"\"")),
    }
}

/// A positional parameter marker for `dialect` (1-based).
fn param(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

fn backend(dialect: Dialect) -> DbBackend {
    dialect.backend()
}

/// The names of the `sandkit_*` tables, sorted.
///
/// # Errors
/// When the catalog cannot be read.
pub async fn sandkit_tables(
    db: &DatabaseConnection,
    dialect: Dialect,
) -> anyhow::Result<Vec<String>> {
    let sql = match dialect {
        Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'sandkit%' ORDER BY name"
        }
        Dialect::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name LIKE 'sandkit%' ORDER BY 1"
        }
        Dialect::MySql => {
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'sandkit%' ORDER BY 1"
        }
    };
    strings(db, Statement::from_string(backend(dialect), sql)).await
}

/// The column names of `table`, in order.
///
/// # Errors
/// When the catalog cannot be read.
pub async fn columns(
    db: &DatabaseConnection,
    dialect: Dialect,
    table: &str,
) -> anyhow::Result<Vec<String>> {
    let sql = match dialect {
        Dialect::Sqlite => "SELECT name FROM pragma_table_info(?) ORDER BY cid".to_owned(),
        Dialect::Postgres => "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            .to_owned(),
        Dialect::MySql => "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION"
            .to_owned(),
    };
    let stmt = Statement::from_sql_and_values(backend(dialect), sql, [Value::from(table)]);
    strings(db, stmt).await
}

async fn strings(db: &DatabaseConnection, stmt: Statement) -> anyhow::Result<Vec<String>> {
    let rows = db
        .query_all_raw(stmt)
        .await
        .context("reading the catalog")?;
    rows.iter()
        .map(|row| {
            row.try_get_by_index::<String>(0)
                .context("reading a catalog name")
        })
        .collect()
}

fn as_text(dialect: Dialect, column: &str) -> String {
    let target = match dialect {
        Dialect::MySql => "CHAR",
        _ => "TEXT",
    };
    format!("CAST({} AS {target})", quote(dialect, column))
}

/// Every row of every `sandkit_*` table, each column cast to text by the database,
/// one line per row (`table: col=value, …`).
///
/// # Errors
/// When a table cannot be read.
pub async fn dump(db: &DatabaseConnection, dialect: Dialect) -> anyhow::Result<String> {
    let mut out = String::new();
    for table in sandkit_tables(db, dialect).await? {
        let cols = columns(db, dialect, &table).await?;
        let select: Vec<String> = cols.iter().map(|c| as_text(dialect, c)).collect();
        let sql = format!(
            "SELECT {} FROM {}",
            select.join(", "),
            quote(dialect, &table)
        );
        let rows = db
            .query_all_raw(Statement::from_string(backend(dialect), sql))
            .await
            .with_context(|| format!("dumping {table}"))?;
        for row in rows {
            let mut fields = Vec::with_capacity(cols.len());
            for (i, col) in cols.iter().enumerate() {
                let value = row
                    .try_get_by_index::<Option<String>>(i)
                    .with_context(|| format!("reading {table}.{col} as text"))?;
                fields.push(format!("{col}={}", value.as_deref().unwrap_or("NULL")));
            }
            out.push_str(&format!("{table}: {}\n", fields.join(", ")));
        }
    }
    Ok(out)
}

/// One column of one row (by `id`) as text.
///
/// # Errors
/// When the row cannot be read.
pub async fn read_text(
    db: &DatabaseConnection,
    dialect: Dialect,
    table: &str,
    column: &str,
    id: &str,
) -> anyhow::Result<Option<String>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = {}",
        as_text(dialect, column),
        quote(dialect, table),
        quote(dialect, "id"),
        param(dialect, 1)
    );
    let stmt = Statement::from_sql_and_values(backend(dialect), sql, [Value::from(id)]);
    let row = db
        .query_one_raw(stmt)
        .await
        .with_context(|| format!("reading {table}.{column}"))?
        .with_context(|| format!("no row {id} in {table}"))?;
    row.try_get_by_index::<Option<String>>(0)
        .with_context(|| format!("reading {table}.{column} as text"))
}

/// Overwrites a JSON column of one row with `raw`. SQLite stores the text as is
/// (e.g. `{`, which is not JSON); PostgreSQL and MariaDB only accept valid JSON in
/// JSON columns, so there the text is stored as a JSON string (a value of the wrong
/// shape). Returns the text the column now reads as.
///
/// # Errors
/// When the update fails or touches no row.
pub async fn corrupt_json(
    db: &DatabaseConnection,
    dialect: Dialect,
    table: &str,
    column: &str,
    id: &str,
    raw: &str,
) -> anyhow::Result<String> {
    let value = match dialect {
        Dialect::Sqlite => Value::from(raw),
        _ => Value::Json(Some(Box::new(serde_json::Value::String(raw.to_owned())))),
    };
    let sql = format!(
        "UPDATE {} SET {} = {} WHERE {} = {}",
        quote(dialect, table),
        quote(dialect, column),
        param(dialect, 1),
        quote(dialect, "id"),
        param(dialect, 2)
    );
    let stmt = Statement::from_sql_and_values(backend(dialect), sql, [value, Value::from(id)]);
    let done = db
        .execute_raw(stmt)
        .await
        .with_context(|| format!("corrupting {table}.{column}"))?;
    anyhow::ensure!(
        done.rows_affected() == 1,
        "corrupting {table}.{column} of {id} touched {} rows",
        done.rows_affected()
    );
    read_text(db, dialect, table, column, id)
        .await?
        .with_context(|| format!("{table}.{column} of {id} reads as NULL after corrupting it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        assert_eq!(quote(Dialect::Postgres, "createdAt"), "\"createdAt\"");
        assert_eq!(quote(Dialect::Sqlite, "a\"b"), "\"a\"\"b\"");
        assert_eq!(quote(Dialect::MySql, "a`b"), "`a``b`");
        assert_eq!(as_text(Dialect::MySql, "head"), "CAST(`head` AS CHAR)");
        assert_eq!(as_text(Dialect::Postgres, "head"), "CAST(\"head\" AS TEXT)");
    }
}
