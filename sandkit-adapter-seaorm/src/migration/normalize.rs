//! Hand-written step of the state-columns migration: converting the column types of a
//! database created by the TypeScript Sandkit to ours (a no-op on a database we
//! created).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use sea_orm_migration::SchemaManager;
use tracing::warn;

/// The original's timestamp columns.
const TIMESTAMPS: &[(&str, &str)] = &[
    ("sandkit_workspaces", "lastResumedAt"),
    ("sandkit_workspaces", "createdAt"),
    ("sandkit_workspaces", "updatedAt"),
    ("sandkit_runs", "started_at"),
    ("sandkit_runs", "finished_at"),
    ("sandkit_policies", "created_at"),
    ("sandkit_setup_states", "createdAt"),
    ("sandkit_setup_states", "updatedAt"),
];

/// The original's id columns (compared byte by byte in our schema).
const KEYS: &[(&str, &str)] = &[
    ("sandkit_workspaces", "id"),
    ("sandkit_runs", "id"),
    ("sandkit_runs", "workspace_id"),
    ("sandkit_policies", "id"),
    ("sandkit_policies", "workspace_id"),
    ("sandkit_setup_states", "id"),
];

const TABLES: &str =
    "'sandkit_workspaces', 'sandkit_runs', 'sandkit_policies', 'sandkit_setup_states'";

/// Converts the original's column types to ours (no-op on a database we created):
/// SQLite epoch-millisecond timestamps become ISO-8601 text; PostgreSQL `timestamp`
/// becomes `timestamptz` (the original wrote UTC) and ids get the `C` collation; MySQL
/// tables move to `utf8mb4_bin`, `timestamp` to `datetime(3)`, status to `varchar(32)`
/// and output to `longtext`.
pub(crate) async fn normalize_types(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    match manager.get_database_backend() {
        DbBackend::Postgres => normalize_postgres(manager).await,
        DbBackend::MySql => normalize_mysql(manager).await,
        _ => normalize_sqlite(manager).await,
    }
}

async fn normalize_sqlite(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    for (table, column) in TIMESTAMPS {
        conn.execute_unprepared(&format!(
            "UPDATE \"{table}\" SET \"{column}\" = \
             strftime('%Y-%m-%dT%H:%M:%fZ', \"{column}\" / 1000.0, 'unixepoch') \
             WHERE typeof(\"{column}\") = 'integer'"
        ))
        .await?;
    }
    Ok(())
}

async fn normalize_postgres(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, \
                 collation_name::text AS coll FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name IN ({TABLES})"
            ),
        ))
        .await?;
    for row in rows {
        let (table, column, ty): (String, String, String) = (
            row.try_get("", "t")?,
            row.try_get("", "c")?,
            row.try_get("", "ty")?,
        );
        let collation: Option<String> = row.try_get("", "coll")?;
        let pair = (table.as_str(), column.as_str());
        if TIMESTAMPS.contains(&pair) && ty == "timestamp without time zone" {
            conn.execute_unprepared(&format!(
                "ALTER TABLE \"{table}\" ALTER COLUMN \"{column}\" TYPE timestamptz \
                 USING \"{column}\" AT TIME ZONE 'UTC'"
            ))
            .await?;
        }
        if KEYS.contains(&pair) && ty == "text" && collation.as_deref() != Some("C") {
            conn.execute_unprepared(&format!(
                "ALTER TABLE \"{table}\" ALTER COLUMN \"{column}\" TYPE text COLLATE \"C\""
            ))
            .await?;
        }
    }
    Ok(())
}

async fn normalize_mysql(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let query = |sql: String| conn.query_all_raw(Statement::from_string(DbBackend::MySql, sql));
    let mut convert = Vec::new();
    for row in query(format!(
        "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(TABLE_COLLATION AS CHAR) AS coll \
         FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({TABLES})"
    ))
    .await?
    {
        let table: String = row.try_get("", "t")?;
        let collation: Option<String> = row.try_get("", "coll")?;
        if collation.as_deref() != Some("utf8mb4_bin") {
            convert.push(table);
        }
    }
    if !convert.is_empty() {
        convert_collation(manager, &convert).await?;
    }
    let mut statements = Vec::new();
    for row in query(format!(
        "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(COLUMN_NAME AS CHAR) AS c, \
         CAST(DATA_TYPE AS CHAR) AS ty, CAST(IS_NULLABLE AS CHAR) AS nullable, \
         CAST(COALESCE(DATETIME_PRECISION, 0) AS SIGNED) AS prec \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({TABLES})"
    ))
    .await?
    {
        let (table, column, ty, nullable): (String, String, String, String) = (
            row.try_get("", "t")?,
            row.try_get("", "c")?,
            row.try_get("", "ty")?,
            row.try_get("", "nullable")?,
        );
        let precision: i64 = row.try_get("", "prec")?;
        let null = if nullable == "YES" {
            "NULL"
        } else {
            "NOT NULL"
        };
        let pair = (table.as_str(), column.as_str());
        let ty = ty.to_ascii_lowercase();
        let target = if TIMESTAMPS.contains(&pair)
            && (ty == "timestamp" || (ty == "datetime" && precision < 3))
        {
            Some("datetime(3)")
        } else if column == "status" && ty.ends_with("text") {
            Some("varchar(32)")
        } else if matches!(column.as_str(), "stdout" | "stderr")
            && matches!(ty.as_str(), "tinytext" | "text" | "mediumtext")
        {
            Some("longtext")
        } else {
            None
        };
        if let Some(target) = target {
            statements.push(format!(
                "ALTER TABLE `{table}` MODIFY `{column}` {target} {null}"
            ));
        }
    }
    for sql in statements {
        conn.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Moves tables to `utf8mb4_bin`. The foreign keys between them are dropped meanwhile
/// and re-created (MariaDB refuses to convert a column a foreign key joins). When an
/// application's own table references a Sandkit table, the tables keep their
/// collation (ids then compare case-insensitively) rather than break that key.
async fn convert_collation(manager: &SchemaManager<'_>, tables: &[String]) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let mut keys = Vec::new();
    for row in conn
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT CAST(CONSTRAINT_NAME AS CHAR) AS name, CAST(TABLE_NAME AS CHAR) AS t \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IN ({TABLES})"
            ),
        ))
        .await?
    {
        let (name, table): (String, String) = (row.try_get("", "name")?, row.try_get("", "t")?);
        keys.push((name, table));
    }
    if let Some((name, table)) = keys
        .iter()
        .find(|(_, t)| !matches!(t.as_str(), "sandkit_runs" | "sandkit_policies"))
    {
        warn!(
            foreign_key = %name,
            table = %table,
            "an application table references Sandkit's tables; they keep their collation \
             (ids compare case-insensitively)"
        );
        return Ok(());
    }
    for (name, table) in &keys {
        conn.execute_unprepared(&format!("ALTER TABLE `{table}` DROP FOREIGN KEY `{name}`"))
            .await?;
    }
    for table in tables {
        conn.execute_unprepared(&format!(
            "ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await?;
    }
    for (name, table) in &keys {
        conn.execute_unprepared(&format!(
            "ALTER TABLE `{table}` ADD CONSTRAINT `{name}` FOREIGN KEY (`workspace_id`) \
             REFERENCES `sandkit_workspaces` (`id`)"
        ))
        .await?;
    }
    Ok(())
}
