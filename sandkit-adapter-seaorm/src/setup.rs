//! Setup states: put-if-absent, compare-and-set, delete (single statements).

use sandkit_core::{Error, Result, SetupRecord};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection};

use crate::codec;
use crate::dialect::Dialect;
use crate::entity::setup_states::{Column as C, Entity};
use crate::errors::{Violation, storage, violation};
use crate::sql::{execute, insert, update as update_statement};

/// Inserts unless the id exists (the unique key decides).
pub(crate) async fn put_if_absent(
    db: &DatabaseConnection,
    dialect: Dialect,
    record: &SetupRecord,
) -> Result<bool> {
    let stmt = insert(Entity, codec::setup::insert_values(dialect, record))?;
    match execute(db, &stmt).await {
        Ok(_) => Ok(true),
        Err(e) => match violation(&e) {
            Some(Violation::Unique(_)) => Ok(false),
            _ => Err(storage(&format!("inserting setup state {}", record.id), e)),
        },
    }
}

/// Replaces the row if its revision matches.
pub(crate) async fn update(
    db: &DatabaseConnection,
    dialect: Dialect,
    record: &SetupRecord,
    expected_revision: i64,
) -> Result<()> {
    let mut stmt = update_statement(Entity, codec::setup::mutable_values(dialect, record));
    stmt.value(C::Revision, expected_revision + 1)
        .and_where(C::Id.eq(record.id.as_str()))
        .and_where(C::Revision.eq(expected_revision));
    let doing = || format!("updating setup state {}", record.id);
    if execute(db, &stmt).await.map_err(|e| storage(&doing(), e))? == 1 {
        return Ok(());
    }
    let mut probe = Query::select();
    probe
        .column(C::Revision)
        .from(Entity)
        .and_where(C::Id.eq(record.id.as_str()));
    match db
        .query_one(&probe)
        .await
        .map_err(|e| storage(&doing(), e))?
    {
        None => Err(Error::not_found(format!(
            "setup state {} does not exist",
            record.id
        ))),
        Some(_) => Err(Error::conflict(format!(
            "setup state {} changed concurrently; re-read and retry",
            record.id
        ))),
    }
}

/// Deletes the row (only at `expected_revision` when given).
pub(crate) async fn delete(
    db: &DatabaseConnection,
    id: &str,
    expected_revision: Option<i64>,
) -> Result<bool> {
    let mut stmt = Query::delete();
    stmt.from_table(Entity).and_where(C::Id.eq(id));
    if let Some(revision) = expected_revision {
        stmt.and_where(C::Revision.eq(revision));
    }
    let deleted = execute(db, &stmt)
        .await
        .map_err(|e| storage(&format!("deleting setup state {id}"), e))?;
    Ok(deleted > 0)
}
