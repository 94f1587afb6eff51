//! Logical column types and their physical type per dialect: the one type table every
//! output uses.
//!
//! | logical | SQLite | PostgreSQL | MySQL/MariaDB |
//! |---|---|---|---|
//! | key (ids, tokens) | `text` | `text COLLATE "C"` | `varchar(255)` |
//! | short (enums) | `text` | `text` | `varchar(32)` |
//! | text | `text` | `text` | `text` |
//! | long text (output) | `text` | `text` | `longtext` |
//! | json | `text` | `jsonb` | `json` |
//! | timestamp (UTC, ms) | `text` (ISO-8601) | `timestamp with time zone` | `datetime(3)` (UTC) |
//! | big integer | `integer` | `bigint` | `bigint` |
//! | integer | `integer` | `integer` | `int` |
//! | boolean | `boolean` | `boolean` | `bool` |

use serde::Serialize;

use crate::dialect::Dialect;

/// What a column holds, independent of the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogicalType {
    /// Ids, tokens and keys: indexed text compared byte by byte.
    Key,
    /// Short enum-like text (indexed on MySQL, so bounded there).
    Short,
    /// Free text.
    Text,
    /// Command output and error text (MySQL's `text` holds only 64 KiB).
    LongText,
    /// JSON documents.
    Json,
    /// UTC timestamps with millisecond precision.
    Timestamp,
    /// 64-bit integers.
    BigInteger,
    /// 32-bit integers.
    Integer,
    /// Booleans.
    Boolean,
}

impl LogicalType {
    /// Every logical type, in the order of the type table.
    pub const ALL: [LogicalType; 9] = [
        LogicalType::Key,
        LogicalType::Short,
        LogicalType::Text,
        LogicalType::LongText,
        LogicalType::Json,
        LogicalType::Timestamp,
        LogicalType::BigInteger,
        LogicalType::Integer,
        LogicalType::Boolean,
    ];

    /// The physical column type on `dialect`.
    pub fn sql_type(self, dialect: Dialect) -> &'static str {
        use LogicalType::*;
        match (self, dialect) {
            (Key, Dialect::Postgres) => "text COLLATE \"C\"",
            (Key, Dialect::MySql) => "varchar(255)",
            (Short, Dialect::MySql) => "varchar(32)",
            (LongText, Dialect::MySql) => "longtext",
            (Json, Dialect::Postgres) => "jsonb",
            (Json, Dialect::MySql) => "json",
            (Timestamp, Dialect::Postgres) => "timestamp with time zone",
            (Timestamp, Dialect::MySql) => "datetime(3)",
            (BigInteger, Dialect::Sqlite) => "integer",
            (BigInteger, _) => "bigint",
            (Integer, Dialect::MySql) => "int",
            (Integer, _) => "integer",
            (Boolean, Dialect::MySql) => "bool",
            (Boolean, _) => "boolean",
            (Key | Short | Text | LongText | Json | Timestamp, _) => "text",
        }
    }

    /// The method of the generated `Columns` helper that builds this type.
    pub fn builder(self) -> &'static str {
        use LogicalType::*;
        match self {
            Key => "key",
            Short => "short",
            Text => "text",
            LongText => "long_text",
            Json => "json",
            Timestamp => "timestamp",
            BigInteger => "big_integer",
            Integer => "integer",
            Boolean => "boolean",
        }
    }

    /// The Rust type of an entity field (before `Option` for nullable columns).
    pub fn rust_type(self) -> &'static str {
        use LogicalType::*;
        match self {
            Key | Short | Text | LongText => "String",
            Json => "Json",
            Timestamp => "DateTimeUtc",
            BigInteger => "i64",
            Integer => "i32",
            Boolean => "bool",
        }
    }

    /// The SeaORM `column_type` attribute, where the Rust type alone does not say it.
    pub fn seaorm_column_type(self) -> Option<&'static str> {
        match self {
            LogicalType::Json => Some("JsonBinary"),
            LogicalType::LongText => Some("Text"),
            _ => None,
        }
    }

    /// One line saying what the type is for.
    pub fn doc(self) -> &'static str {
        use LogicalType::*;
        match self {
            Key => "Ids, tokens and keys: indexed text compared byte by byte.",
            Short => "Short enum-like text (indexed on MySQL, so bounded there).",
            Text => "Free text.",
            LongText => "Command output and error text (MySQL's `text` holds only 64 KiB).",
            Json => "JSON documents.",
            Timestamp => "UTC timestamps with millisecond precision.",
            BigInteger => "64-bit integers.",
            Integer => "32-bit integers.",
            Boolean => "Booleans.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_timestamps_follow_the_architecture() {
        assert_eq!(LogicalType::Json.sql_type(Dialect::Postgres), "jsonb");
        assert_eq!(LogicalType::Json.sql_type(Dialect::MySql), "json");
        assert_eq!(LogicalType::Json.sql_type(Dialect::Sqlite), "text");
        assert_eq!(
            LogicalType::Timestamp.sql_type(Dialect::MySql),
            "datetime(3)"
        );
        assert_eq!(
            LogicalType::Timestamp.sql_type(Dialect::Postgres),
            "timestamp with time zone"
        );
        assert_eq!(LogicalType::Timestamp.sql_type(Dialect::Sqlite), "text");
    }
}
