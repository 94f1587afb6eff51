//! Conversion between records and column values, per dialect.
//!
//! Writes bind JSON as JSON (`jsonb` on PostgreSQL, `json` on MySQL, text on SQLite) and
//! timestamps as `timestamptz` / `datetime(3)` / ISO-8601 text with milliseconds
//! (`2026-08-01T12:00:00.123Z`). Reads validate every structured column and report a
//! bad one as `Corrupt { table, column, reason }`, never panicking and never resetting
//! it.

pub(crate) mod policy;
pub(crate) mod run;
pub(crate) mod setup;
pub(crate) mod workspace;

use chrono::{DateTime, SubsecRound, Utc};
use sandkit_core::{Error, Result, SnapshotRef};
use sea_orm::sea_query::{Expr, Value};
use sea_orm::{IdenStatic, QueryResult};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::dialect::Dialect;

/// Binds a JSON value.
pub(crate) fn json(value: Json) -> Expr {
    Expr::val(Value::Json(Some(Box::new(value))))
}

/// Binds an optional JSON value (`NULL` when absent).
pub(crate) fn opt_json(value: Option<Json>) -> Expr {
    Expr::val(Value::Json(value.map(Box::new)))
}

/// Binds an optional snapshot reference as JSON.
pub(crate) fn snapshot(value: Option<&SnapshotRef>) -> Expr {
    opt_json(value.map(snapshot_json))
}

/// The JSON form of a snapshot or session reference.
pub(crate) fn snapshot_json(value: &SnapshotRef) -> Json {
    serde_json::json!({"provider": value.provider, "id": value.id})
}

/// Binds text.
pub(crate) fn text(value: impl Into<String>) -> Expr {
    Expr::val(Value::String(Some(value.into())))
}

/// Binds optional text.
pub(crate) fn opt_text(value: Option<impl Into<String>>) -> Expr {
    Expr::val(Value::String(value.map(Into::into)))
}

/// Binds a timestamp in the dialect's representation, truncated to milliseconds.
pub(crate) fn timestamp(dialect: Dialect, at: DateTime<Utc>) -> Expr {
    opt_timestamp(dialect, Some(at))
}

/// Binds an optional timestamp.
pub(crate) fn opt_timestamp(dialect: Dialect, at: Option<DateTime<Utc>>) -> Expr {
    let at = at.map(|t| t.trunc_subsecs(3));
    match dialect {
        Dialect::Sqlite => Expr::val(Value::String(at.map(iso_millis))),
        Dialect::Postgres => Expr::val(Value::ChronoDateTimeUtc(at)),
        // A `datetime` holds UTC wall-clock time. (sqlx sends a `DateTime<Utc>` to MySQL
        // as a `timestamp`, whose range ends in 2038.)
        Dialect::MySql => Expr::val(Value::ChronoDateTime(at.map(|t| t.naive_utc()))),
    }
}

/// `2026-08-01T12:00:00.123Z`: the SQLite representation (fixed width, sorts as text,
/// the same text JavaScript's `toISOString()` writes).
pub(crate) fn iso_millis(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Reads one row of one table, naming `table.column` in every error.
pub(crate) struct Row<'a> {
    row: &'a QueryResult,
    table: &'static str,
    dialect: Dialect,
}

impl<'a> Row<'a> {
    pub(crate) fn new(row: &'a QueryResult, table: &'static str, dialect: Dialect) -> Self {
        Row {
            row,
            table,
            dialect,
        }
    }

    /// A `Corrupt` error for `column` of this row's table.
    pub(crate) fn corrupt(&self, column: impl IdenStatic, reason: impl Into<String>) -> Error {
        Error::corrupt(self.table, column.as_str(), reason)
    }

    fn get<T: sea_orm::TryGetable>(&self, column: impl IdenStatic) -> Result<Option<T>> {
        self.row
            .try_get::<Option<T>>("", column.as_str())
            .map_err(|e| self.corrupt(column, format!("unreadable value ({e})")))
    }

    fn required<T>(&self, column: impl IdenStatic, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }

    pub(crate) fn opt_text(&self, column: impl IdenStatic) -> Result<Option<String>> {
        self.get::<String>(column)
    }

    pub(crate) fn text(&self, column: impl IdenStatic) -> Result<String> {
        let value = self.opt_text(column)?;
        self.required(column, value)
    }

    pub(crate) fn i64(&self, column: impl IdenStatic) -> Result<i64> {
        let value = self.get::<i64>(column)?;
        self.required(column, value)
    }

    pub(crate) fn opt_i32(&self, column: impl IdenStatic) -> Result<Option<i32>> {
        self.get::<i32>(column)
    }

    pub(crate) fn bool(&self, column: impl IdenStatic) -> Result<bool> {
        let value = self.get::<bool>(column)?;
        self.required(column, value)
    }

    pub(crate) fn opt_timestamp(&self, column: impl IdenStatic) -> Result<Option<DateTime<Utc>>> {
        match self.dialect {
            Dialect::Postgres | Dialect::MySql => self.get::<DateTime<Utc>>(column),
            Dialect::Sqlite => match self.row.try_get::<Option<String>>("", column.as_str()) {
                Ok(None) => Ok(None),
                Ok(Some(raw)) => DateTime::parse_from_rfc3339(&raw)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(|e| {
                        self.corrupt(
                            column,
                            format!("{raw:?} is not an ISO-8601 timestamp ({e})"),
                        )
                    }),
                // Rows written by the TypeScript Sandkit's Drizzle schema hold epoch
                // milliseconds (the upgrade migration converts them; this reads any
                // written afterwards by an old process).
                Err(_) => self
                    .get::<i64>(column)?
                    .map(|ms| {
                        DateTime::from_timestamp_millis(ms)
                            .ok_or_else(|| self.corrupt(column, format!("{ms} ms is out of range")))
                    })
                    .transpose(),
            },
        }
    }

    pub(crate) fn timestamp(&self, column: impl IdenStatic) -> Result<DateTime<Utc>> {
        let value = self.opt_timestamp(column)?;
        self.required(column, value)
    }

    /// A JSON column (`NULL` → `None`).
    pub(crate) fn opt_json(&self, column: impl IdenStatic) -> Result<Option<Json>> {
        match self.dialect {
            Dialect::Postgres | Dialect::MySql => self.get::<Json>(column),
            Dialect::Sqlite => self
                .opt_text(column)?
                .map(|raw| {
                    serde_json::from_str(&raw)
                        .map_err(|e| self.corrupt(column, format!("not valid JSON ({e})")))
                })
                .transpose(),
        }
    }

    /// A JSON column deserialised into `T` (`NULL` → `None`).
    pub(crate) fn opt_typed<T: DeserializeOwned>(
        &self,
        column: impl IdenStatic,
        expected: &str,
    ) -> Result<Option<T>> {
        self.opt_json(column)?
            .map(|value| {
                serde_json::from_value(value)
                    .map_err(|e| self.corrupt(column, format!("expected {expected} ({e})")))
            })
            .transpose()
    }

    /// A snapshot or session reference column.
    pub(crate) fn opt_snapshot(&self, column: impl IdenStatic) -> Result<Option<SnapshotRef>> {
        self.opt_typed(column, r#"a snapshot reference {"provider":…,"id":…}"#)
    }

    /// A JSON array of strings (`NULL` → empty).
    pub(crate) fn string_list(&self, column: impl IdenStatic) -> Result<Vec<String>> {
        Ok(self
            .opt_typed::<Vec<String>>(column, "a JSON string array")?
            .unwrap_or_default())
    }

    /// An enum column parsed with `parse`.
    pub(crate) fn enumeration<T>(
        &self,
        column: impl IdenStatic,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T> {
        let raw = self.text(column)?;
        parse(&raw).ok_or_else(|| self.corrupt(column, format!("unexpected value {raw:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_are_fixed_width_iso_millis() {
        let at = DateTime::from_timestamp_millis(1_785_585_600_007).expect("valid");
        assert_eq!(iso_millis(at), "2026-08-01T12:00:00.007Z");
        let whole = DateTime::from_timestamp_millis(1_785_585_600_000).expect("valid");
        assert_eq!(iso_millis(whole), "2026-08-01T12:00:00.000Z");
        let parsed = DateTime::parse_from_rfc3339(&iso_millis(at)).expect("parses");
        assert_eq!(parsed.with_timezone(&Utc), at);
    }
}
