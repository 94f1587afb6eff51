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

/// The collation Sandkit's MySQL ids use.
const BINARY: &str = "utf8mb4_bin";

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
    let convert = tables_to_convert(manager).await?;
    if !convert.is_empty() {
        convert_collation(manager, &convert, false).await?;
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

/// Moves tables to `utf8mb4_bin`. The foreign keys that reference them are dropped
/// meanwhile and re-created (MariaDB refuses to convert a column a foreign key joins).
/// When an application's own table references a Sandkit table, the tables keep their
/// collation (ids then compare case-insensitively) rather than break that key — unless
/// `with_app_columns`, when the application's referencing columns move to
/// `utf8mb4_bin` too ([`convert_ids_to_binary`]).
async fn convert_collation(
    manager: &SchemaManager<'_>,
    tables: &[String],
    with_app_columns: bool,
) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let keys = referencing_keys(manager).await?;
    let app_keys: Vec<&ReferencingKey> = keys.iter().filter(|k| !k.is_sandkits()).collect();
    if let Some(key) = app_keys.first().filter(|_| !with_app_columns) {
        warn!(
            foreign_key = %key.name,
            table = %key.table,
            "an application table references Sandkit's tables; they keep their collation \
             (ids compare case-insensitively); `sandkit migrate --binary-ids` converts \
             both"
        );
        return Ok(());
    }
    if let Some(key) = app_keys.iter().find(|k| !k.is_text()) {
        return Err(DbErr::Migration(format!(
            "{}.{} references Sandkit's ids but is {}, not a character column; change it \
             to varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin first",
            key.table, key.column, key.column_type
        )));
    }
    for key in &keys {
        conn.execute_unprepared(&format!(
            "ALTER TABLE `{}` DROP FOREIGN KEY `{}`",
            key.table, key.name
        ))
        .await?;
    }
    let converted = convert_tables_and_columns(manager, tables, &app_keys).await;
    // The keys come back even when the conversion failed half-way.
    let mut restored = Ok(());
    for key in &keys {
        if let Err(e) = conn.execute_unprepared(&key.add_statement()).await {
            restored = Err(DbErr::Migration(format!(
                "could not re-create foreign key {} ({e}); re-create it with: {}",
                key.name,
                key.add_statement()
            )));
        }
    }
    converted.and(restored)
}

async fn convert_tables_and_columns(
    manager: &SchemaManager<'_>,
    tables: &[String],
    app_keys: &[&ReferencingKey],
) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    for table in tables {
        conn.execute_unprepared(&format!(
            "ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await?;
    }
    for key in app_keys {
        conn.execute_unprepared(&format!(
            "ALTER TABLE `{}` MODIFY `{}` {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin {}",
            key.table,
            key.column,
            key.column_type,
            if key.nullable { "NULL" } else { "NOT NULL" }
        ))
        .await?;
    }
    Ok(())
}

/// Converts the ids of a database the TypeScript Sandkit made on MySQL/MariaDB to the
/// binary collation (so they compare byte by byte), together with the application
/// columns whose foreign keys reference them. A no-op on other dialects and on tables
/// already in `utf8mb4_bin`.
pub(crate) async fn convert_ids_to_binary(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::MySql {
        return Ok(());
    }
    let tables = tables_to_convert(manager).await?;
    let app_columns_behind = referencing_keys(manager)
        .await?
        .iter()
        .any(|k| !k.is_sandkits() && k.collation.as_deref() != Some(BINARY));
    if tables.is_empty() && !app_columns_behind {
        return Ok(());
    }
    convert_collation(manager, &tables, true).await
}

/// Sandkit's MySQL tables not in `utf8mb4_bin`.
async fn tables_to_convert(manager: &SchemaManager<'_>) -> Result<Vec<String>, DbErr> {
    let mut convert = Vec::new();
    for row in manager
        .get_connection()
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(TABLE_COLLATION AS CHAR) AS coll \
                 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({TABLES})"
            ),
        ))
        .await?
    {
        let table: String = row.try_get("", "t")?;
        let collation: Option<String> = row.try_get("", "coll")?;
        if collation.as_deref() != Some(BINARY) {
            convert.push(table);
        }
    }
    Ok(convert)
}

/// A foreign key referencing one of Sandkit's tables (MySQL).
#[derive(Debug)]
struct ReferencingKey {
    name: String,
    table: String,
    column: String,
    referenced_table: String,
    referenced_column: String,
    on_delete: String,
    on_update: String,
    /// The referencing column's full type (`varchar(255)`).
    column_type: String,
    data_type: String,
    nullable: bool,
    collation: Option<String>,
}

impl ReferencingKey {
    /// Whether the key is one of Sandkit's own (between its tables).
    fn is_sandkits(&self) -> bool {
        matches!(self.table.as_str(), "sandkit_runs" | "sandkit_policies")
    }

    fn is_text(&self) -> bool {
        matches!(self.data_type.as_str(), "varchar" | "char")
    }

    fn add_statement(&self) -> String {
        format!(
            "ALTER TABLE `{}` ADD CONSTRAINT `{}` FOREIGN KEY (`{}`) REFERENCES `{}` (`{}`) \
             ON DELETE {} ON UPDATE {}",
            self.table,
            self.name,
            self.column,
            self.referenced_table,
            self.referenced_column,
            self.on_delete,
            self.on_update
        )
    }
}

async fn referencing_keys(manager: &SchemaManager<'_>) -> Result<Vec<ReferencingKey>, DbErr> {
    let rows = manager
        .get_connection()
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT CAST(k.CONSTRAINT_NAME AS CHAR) AS name, CAST(k.TABLE_NAME AS CHAR) AS t, \
                 CAST(k.COLUMN_NAME AS CHAR) AS c, CAST(k.REFERENCED_TABLE_NAME AS CHAR) AS rt, \
                 CAST(k.REFERENCED_COLUMN_NAME AS CHAR) AS rc, \
                 CAST(r.DELETE_RULE AS CHAR) AS del, CAST(r.UPDATE_RULE AS CHAR) AS upd, \
                 CAST(c.COLUMN_TYPE AS CHAR) AS ty, CAST(c.DATA_TYPE AS CHAR) AS dt, \
                 CAST(c.IS_NULLABLE AS CHAR) AS nullable, CAST(c.COLLATION_NAME AS CHAR) AS coll \
                 FROM information_schema.KEY_COLUMN_USAGE k \
                 JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                   ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA \
                  AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME \
                 JOIN information_schema.COLUMNS c \
                   ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME \
                  AND c.COLUMN_NAME = k.COLUMN_NAME \
                 WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IN ({TABLES})"
            ),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ReferencingKey {
                name: row.try_get("", "name")?,
                table: row.try_get("", "t")?,
                column: row.try_get("", "c")?,
                referenced_table: row.try_get("", "rt")?,
                referenced_column: row.try_get("", "rc")?,
                on_delete: row.try_get("", "del")?,
                on_update: row.try_get("", "upd")?,
                column_type: row.try_get("", "ty")?,
                data_type: row.try_get::<String>("", "dt")?.to_ascii_lowercase(),
                nullable: row.try_get::<String>("", "nullable")? == "YES",
                collation: row.try_get("", "coll")?,
            })
        })
        .collect()
}
