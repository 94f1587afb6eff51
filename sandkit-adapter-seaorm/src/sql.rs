//! Small helpers to build and run statements.

use sandkit_core::{Error, Result};
use sea_orm::sea_query::{Expr, InsertStatement, Query, UpdateStatement};
use sea_orm::{ConnectionTrait, DbErr, IdenStatic, StatementBuilder};

/// Runs a statement and returns the number of rows it affected (on MySQL: matched).
pub(crate) async fn execute(
    conn: &impl ConnectionTrait,
    stmt: &impl StatementBuilder,
) -> std::result::Result<u64, DbErr> {
    Ok(conn.execute(stmt).await?.rows_affected())
}

/// `INSERT INTO table (columns…) VALUES (values…)`.
pub(crate) fn insert<T: IdenStatic, C: IdenStatic>(
    table: T,
    values: Vec<(C, Expr)>,
) -> Result<InsertStatement> {
    let (columns, values): (Vec<C>, Vec<Expr>) = values.into_iter().unzip();
    let mut stmt = Query::insert();
    stmt.into_table(table).columns(columns);
    stmt.values(values).map_err(|e| {
        Error::storage(format!(
            "building an insert into {} failed: {e}; this is a bug in sandkit-adapter-seaorm",
            table.as_str()
        ))
    })?;
    Ok(stmt)
}

/// `UPDATE table SET columns = values…` (conditions added by the caller).
pub(crate) fn update<T: IdenStatic, C: IdenStatic>(
    table: T,
    values: Vec<(C, Expr)>,
) -> UpdateStatement {
    let mut stmt = Query::update();
    stmt.table(table).values(values);
    stmt
}
