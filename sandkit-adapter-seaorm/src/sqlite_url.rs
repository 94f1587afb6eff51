//! SQLite connection URLs: Sandkit's own `synchronous` parameter on top of sqlx's.

use sandkit_core::{Error, Result};
use sea_orm::sqlx::sqlite::SqliteSynchronous;

/// A SQLite URL with Sandkit's parameters taken out.
#[derive(Debug)]
pub(crate) struct SqliteUrl {
    /// The URL for sqlx.
    pub(crate) url: String,
    /// `synchronous` pragma: `full` (default) or `normal` (faster: a power loss may
    /// undo the last commits, never corrupt the database).
    pub(crate) synchronous: SqliteSynchronous,
    /// Whether the URL sets sqlx's `mode=` (then the file is not created implicitly).
    pub(crate) sets_mode: bool,
}

/// Splits `sqlite://path?mode=rwc&synchronous=normal`.
pub(crate) fn parse(url: &str) -> Result<SqliteUrl> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut synchronous = SqliteSynchronous::Full;
    let mut sets_mode = false;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("synchronous", value) => {
                synchronous = match value.to_ascii_lowercase().as_str() {
                    "full" => SqliteSynchronous::Full,
                    "normal" => SqliteSynchronous::Normal,
                    _ => {
                        return Err(Error::invalid_input(format!(
                            "unsupported synchronous={value:?} in the SQLite URL; use full \
                             (default) or normal"
                        )));
                    }
                }
            }
            ("mode", _) => {
                sets_mode = true;
                kept.push(pair);
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(SqliteUrl {
        url,
        synchronous,
        sets_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_is_ours_and_the_rest_is_kept() {
        let parsed =
            parse("sqlite:///tmp/a.db?mode=rwc&synchronous=NORMAL&cache=shared").expect("valid");
        assert_eq!(parsed.url, "sqlite:///tmp/a.db?mode=rwc&cache=shared");
        assert!(matches!(parsed.synchronous, SqliteSynchronous::Normal));
        assert!(parsed.sets_mode);

        let plain = parse("sqlite://sandkit.db").expect("valid");
        assert_eq!(plain.url, "sqlite://sandkit.db");
        assert!(matches!(plain.synchronous, SqliteSynchronous::Full));
        assert!(!plain.sets_mode);
    }

    #[test]
    fn unknown_synchronous_values_are_refused() {
        let err = parse("sqlite://a.db?synchronous=off").expect_err("refused");
        assert_eq!(err.kind(), &sandkit_core::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("full"), "{err}");
    }
}
