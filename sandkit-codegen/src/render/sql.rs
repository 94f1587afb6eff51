//! `sql` output: DDL per dialect, and upgrades of an existing database.

use sandkit_core::Result;
use serde::Serialize;

use super::{render, value};
use crate::dialect::Dialect;
use crate::plan::Upgrade;
use crate::schema::{Column, DefaultValue, Index, Table, sandkit_schema};
use crate::types::LogicalType;

/// A table as the SQL templates see it.
#[derive(Debug, Serialize)]
struct TableView {
    raw_name: &'static str,
    name: String,
    comment: &'static str,
    columns: Vec<ColumnView>,
    primary_key: String,
    /// Indexes declared inside `CREATE TABLE` (MySQL).
    inline_indexes: Vec<IndexView>,
    /// Indexes created after the table (SQLite, PostgreSQL).
    separate_indexes: Vec<IndexView>,
    foreign_keys: Vec<ForeignKeyView>,
    options: &'static str,
}

#[derive(Debug, Serialize)]
struct ColumnView {
    definition: String,
    comment: &'static str,
}

#[derive(Debug, Serialize)]
struct IndexView {
    inline: String,
    create: String,
    comment: &'static str,
}

#[derive(Debug, Serialize)]
struct ForeignKeyView {
    name: String,
    column: String,
    references_table: String,
    references_column: String,
}

/// A default as a SQL literal.
fn default_literal(dialect: Dialect, default: DefaultValue) -> String {
    match default {
        DefaultValue::Text(text) => format!("'{}'", text.replace('\'', "''")),
        DefaultValue::Integer(n) => n.to_string(),
        DefaultValue::Bool(b) => match (dialect, b) {
            (Dialect::Sqlite, true) => "1".to_owned(),
            (Dialect::Sqlite, false) => "0".to_owned(),
            (_, true) => "TRUE".to_owned(),
            (_, false) => "FALSE".to_owned(),
        },
    }
}

/// `"name" type [NOT NULL] [DEFAULT x]`.
pub(crate) fn column_definition(dialect: Dialect, column: &Column) -> String {
    let mut definition = format!(
        "{} {}",
        dialect.quote(column.name),
        column.ty.sql_type(dialect)
    );
    if !column.nullable {
        definition.push_str(" NOT NULL");
    }
    if let Some(default) = column.default {
        definition.push_str(" DEFAULT ");
        definition.push_str(&default_literal(dialect, default));
    }
    definition
}

fn quoted_list(dialect: Dialect, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| dialect.quote(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] "name" ON "table" ("a", "b")`.
/// `if_not_exists` only where the dialect has it (SQLite, PostgreSQL; MySQL 8 does
/// not, so MySQL indexes go inside `CREATE TABLE` or are created plainly).
pub(crate) fn create_index(
    dialect: Dialect,
    table: &Table,
    index: &Index,
    if_not_exists: bool,
) -> String {
    format!(
        "CREATE {}INDEX {}{} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        if if_not_exists && dialect != Dialect::MySql {
            "IF NOT EXISTS "
        } else {
            ""
        },
        dialect.quote(index.name),
        dialect.quote(table.name),
        quoted_list(dialect, &index.columns)
    )
}

/// `ALTER TABLE "table" ADD COLUMN …`.
pub(crate) fn add_column(dialect: Dialect, table: &Table, column: &Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {}",
        dialect.quote(table.name),
        column_definition(dialect, column)
    )
}

fn table_view(dialect: Dialect, table: &Table) -> TableView {
    let indexes: Vec<IndexView> = table
        .indexes
        .iter()
        .map(|index| IndexView {
            inline: format!(
                "{}KEY {} ({})",
                if index.unique { "UNIQUE " } else { "" },
                dialect.quote(index.name),
                quoted_list(dialect, &index.columns)
            ),
            create: create_index(dialect, table, index, true),
            comment: index.comment,
        })
        .collect();
    let (inline_indexes, separate_indexes) = if dialect == Dialect::MySql {
        (indexes, Vec::new())
    } else {
        (Vec::new(), indexes)
    };
    TableView {
        raw_name: table.name,
        name: dialect.quote(table.name),
        comment: table.comment,
        columns: table
            .columns
            .iter()
            .map(|c| ColumnView {
                definition: column_definition(dialect, c),
                comment: c.comment,
            })
            .collect(),
        primary_key: dialect.quote(table.primary_key),
        inline_indexes,
        separate_indexes,
        foreign_keys: table
            .foreign_keys
            .iter()
            .map(|fk| ForeignKeyView {
                name: dialect.quote(fk.name),
                column: dialect.quote(fk.column),
                references_table: dialect.quote(fk.references_table),
                references_column: dialect.quote(fk.references_column),
            })
            .collect(),
        options: table_options(dialect),
    }
}

/// Table options: InnoDB, `utf8mb4`, binary collation on MySQL; nothing elsewhere.
fn table_options(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySql => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        _ => "",
    }
}

/// What a reader of the SQL needs to know about the types on `dialect`.
fn type_notes(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Sqlite => &[
            "Timestamps are ISO-8601 UTC text with milliseconds (2026-08-01T12:00:00.123Z);",
            "JSON is text. Connections must enable foreign keys (PRAGMA foreign_keys = ON).",
        ],
        Dialect::Postgres => &[
            "Timestamps are timestamptz, JSON is jsonb, and ids use the C collation (byte order).",
        ],
        Dialect::MySql => &[
            "Tables use InnoDB and utf8mb4 with the binary collation (ids compare byte by byte);",
            "timestamps are UTC datetime(3) (not timestamp, whose range ends in 2038); JSON is json.",
        ],
    }
}

/// How an application column referencing a Sandkit id must be declared on `dialect`
/// (comment lines), if the dialect needs it said.
pub(crate) fn reference_notes(dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::MySql => vec![
            "Your own tables: a column with a foreign key to a Sandkit id (sandkit_workspaces.id,"
                .to_owned(),
            "sandkit_runs.id, …) must have the same character set and collation as the id, or"
                .to_owned(),
            "MariaDB/MySQL refuses the key (errno 150, \"Foreign key constraint is incorrectly"
                .to_owned(),
            "formed\"). Declare it as:".to_owned(),
            format!("  workspace_id {} NOT NULL,", mysql_reference_type()),
            "  FOREIGN KEY (workspace_id) REFERENCES sandkit_workspaces (id)".to_owned(),
        ],
        _ => Vec::new(),
    }
}

/// The column type of a MySQL column referencing a Sandkit id:
/// `VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`.
pub(crate) fn mysql_reference_type() -> String {
    format!(
        "{} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        LogicalType::Key
            .sql_type(Dialect::MySql)
            .to_ascii_uppercase()
    )
}

/// Sandkit's full schema as DDL for `dialect`: tables, indexes and foreign keys.
///
/// # Errors
/// `Storage` only if a template fails to render (a bug).
pub fn sql_schema(dialect: Dialect) -> Result<String> {
    let schema = sandkit_schema();
    let tables: Vec<TableView> = schema
        .tables
        .iter()
        .map(|t| table_view(dialect, t))
        .collect();
    render(
        "sql/schema.sql.j2",
        minijinja::context! {
            version => schema.version,
            dialect => dialect.as_str(),
            dialect_name => dialect.display_name(),
            type_notes => type_notes(dialect).to_vec(),
            reference_notes => reference_notes(dialect),
            apply_hint => crate::steps::apply_command(dialect, "THIS_FILE", None),
            tables => value(&tables),
        },
    )
}

/// The SQL upgrading a database from what it holds to the current schema.
///
/// # Errors
/// `Storage` only if a template fails to render (a bug).
pub fn sql_upgrade(upgrade: &Upgrade) -> Result<String> {
    let schema = sandkit_schema();
    let dialect = upgrade.dialect;
    let create_tables: Vec<TableView> = upgrade
        .create_tables
        .iter()
        .filter_map(|name| schema.table(name))
        .map(|t| table_view(dialect, t))
        .collect();
    let add_columns: Vec<String> = upgrade
        .add_columns
        .iter()
        .filter_map(|(table, column)| {
            let table = schema.table(table)?;
            Some(add_column(dialect, table, table.column(column)?))
        })
        .collect();
    let create_indexes: Vec<String> = upgrade
        .create_indexes
        .iter()
        .filter_map(|(table, index)| {
            let table = schema.table(table)?;
            let index = table.indexes.iter().find(|i| i.name == *index)?;
            Some(create_index(dialect, table, index, false))
        })
        .collect();
    render(
        "sql/upgrade.sql.j2",
        minijinja::context! {
            version => schema.version,
            dialect => dialect.as_str(),
            dialect_name => dialect.display_name(),
            type_notes => type_notes(dialect).to_vec(),
            summary => upgrade.summary(),
            preamble => upgrade.preamble.clone(),
            normalize => upgrade.normalize.clone(),
            create_tables => value(&create_tables),
            add_columns => add_columns,
            create_indexes => create_indexes,
            move_data => upgrade.move_data,
        },
    )
}

/// Splits SQL rendered by this crate into statements (each ends with `;` at the end of
/// a line; lines starting with `--` are comments).
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
        if trimmed.ends_with(';') {
            let statement = current.trim_end().trim_end_matches(';').to_owned();
            statements.push(statement);
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_line_ends_and_skip_comments() {
        let sql = "-- head\nCREATE TABLE a (\n  x text, -- note; here\n  y text\n);\n\nUPDATE a SET x = 'a;b';\n";
        assert_eq!(
            split_statements(sql),
            [
                "CREATE TABLE a (\n  x text, -- note; here\n  y text\n)",
                "UPDATE a SET x = 'a;b'"
            ]
        );
    }

    #[test]
    fn defaults_are_literals_per_dialect() {
        assert_eq!(
            default_literal(Dialect::Sqlite, DefaultValue::Bool(false)),
            "0"
        );
        assert_eq!(
            default_literal(Dialect::Postgres, DefaultValue::Bool(true)),
            "TRUE"
        );
        assert_eq!(
            default_literal(Dialect::MySql, DefaultValue::Text("it's")),
            "'it''s'"
        );
    }
}
