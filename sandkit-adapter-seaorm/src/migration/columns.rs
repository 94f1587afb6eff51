//! Column types per dialect, shared by the migrations.
//!
//! | logical | SQLite | PostgreSQL | MySQL/MariaDB |
//! |---|---|---|---|
//! | key (ids, tokens) | `text` | `text COLLATE "C"` | `varchar(255)` |
//! | short (enums) | `text` | `text` | `varchar(32)` |
//! | text | `text` | `text` | `text` |
//! | long text (output) | `text` | `text` | `longtext` |
//! | json | `text` | `jsonb` | `json` |
//! | timestamp (UTC, ms) | `text` (ISO-8601) | `timestamptz` | `datetime(3)` |
//!
//! MySQL tables use `utf8mb4` with the binary collation, so ids compare and sort by
//! code point on every dialect.

use sea_orm::DbBackend;
use sea_orm::sea_query::{Alias, ColumnDef, IntoIden, TableCreateStatement};

/// Builds column definitions for one backend.
pub(crate) struct Columns {
    backend: DbBackend,
}

impl Columns {
    pub(crate) fn new(backend: DbBackend) -> Self {
        Columns { backend }
    }

    fn def(name: impl IntoIden) -> ColumnDef {
        ColumnDef::new(name)
    }

    /// Ids, tokens and keys: indexed text compared byte by byte.
    pub(crate) fn key(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        match self.backend {
            DbBackend::MySql => col.string_len(255),
            DbBackend::Postgres => col.text().extra("COLLATE \"C\""),
            _ => col.text(),
        };
        col
    }

    /// Short enum-like text (indexed on MySQL, so bounded there).
    pub(crate) fn short(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        match self.backend {
            DbBackend::MySql => col.string_len(32),
            _ => col.text(),
        };
        col
    }

    /// Free text.
    pub(crate) fn text(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        col.text();
        col
    }

    /// Command output and error text (MySQL's `text` holds only 64 KiB).
    pub(crate) fn long_text(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        match self.backend {
            DbBackend::MySql => col.custom(Alias::new("longtext")),
            _ => col.text(),
        };
        col
    }

    /// JSON documents.
    pub(crate) fn json(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        match self.backend {
            DbBackend::Postgres => col.json_binary(),
            DbBackend::MySql => col.json(),
            _ => col.text(),
        };
        col
    }

    /// UTC timestamps with millisecond precision.
    pub(crate) fn timestamp(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        match self.backend {
            DbBackend::Postgres => col.timestamp_with_time_zone(),
            DbBackend::MySql => col.custom(Alias::new("datetime(3)")),
            _ => col.text(),
        };
        col
    }

    /// 64-bit integers.
    pub(crate) fn big_integer(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        col.big_integer();
        col
    }

    /// 32-bit integers.
    pub(crate) fn integer(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        col.integer();
        col
    }

    /// Booleans.
    pub(crate) fn boolean(&self, name: impl IntoIden) -> ColumnDef {
        let mut col = Self::def(name);
        col.boolean();
        col
    }

    /// Table options: InnoDB, `utf8mb4`, binary collation on MySQL; nothing elsewhere.
    pub(crate) fn table_options(&self, table: &mut TableCreateStatement) {
        if self.backend == DbBackend::MySql {
            table
                .engine("InnoDB")
                .character_set("utf8mb4")
                .collate("utf8mb4_bin");
        }
    }
}
