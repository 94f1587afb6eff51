//! Mapping database errors to Sandkit errors.

use sandkit_core::Error;
use sea_orm::{DbErr, SqlErr};

/// What a failed statement violated.
#[derive(Debug)]
pub(crate) enum Violation {
    /// A primary key or unique index; the text is the database's message.
    Unique(String),
    /// A foreign key.
    ForeignKey,
}

/// The constraint a statement violated, if that is why it failed.
pub(crate) fn violation(err: &DbErr) -> Option<Violation> {
    match err.sql_err()? {
        SqlErr::UniqueConstraintViolation(message) => Some(Violation::Unique(message)),
        SqlErr::ForeignKeyConstraintViolation(_) => Some(Violation::ForeignKey),
        _ => None,
    }
}

/// A `Storage` error for a failed database call, saying what to do next.
pub(crate) fn storage(doing: &str, err: DbErr) -> Error {
    let text = err.to_string();
    let hint = if is_missing_table(&text) {
        "the Sandkit tables are missing or out of date: run `sandkit migrate` (or \
         SeaOrmStore::migrate()), or apply the migration `sandkit generate` writes with \
         your own migrations"
    } else if is_lock_timeout(&text) {
        "the database stayed locked by another writer; retry the operation"
    } else {
        "retry; if it keeps failing, check the database server and its logs"
    };
    Error::storage(format!("{doing} failed: {text}; {hint}")).with_source(err)
}

fn is_missing_table(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("no such table")
        || lower.contains("no such column")
        || (lower.contains("relation") && lower.contains("does not exist"))
        || (lower.contains("column") && lower.contains("does not exist"))
        || lower.contains("doesn't exist")
        || lower.contains("unknown column")
}

fn is_lock_timeout(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("database is locked")
        || lower.contains("lock wait timeout")
        || lower.contains("deadlock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tables_point_at_migrate() {
        let err = storage(
            "reading workspace w",
            DbErr::Custom("no such table: sandkit_workspaces".into()),
        );
        assert_eq!(err.kind(), &sandkit_core::ErrorKind::Storage);
        assert!(err.to_string().contains("migrate()"), "{err}");
    }

    #[test]
    fn locks_say_retry() {
        let err = storage(
            "applying a batch",
            DbErr::Custom("database is locked".into()),
        );
        assert!(err.to_string().contains("retry the operation"), "{err}");
    }
}
