//! `sandkit_setup_states` rows ↔ [`SetupRecord`].

use sandkit_core::{LeaseToken, Result, SetupBuild, SetupRecord};
use sea_orm::QueryResult;
use sea_orm::sea_query::Expr;
use serde_json::Value as Json;

use super::{Row, json, opt_text, opt_timestamp, snapshot, snapshot_json, text, timestamp};
use crate::dialect::Dialect;
use crate::entity::setup_states::Column as C;

/// Table name.
pub(crate) const TABLE: &str = "sandkit_setup_states";

/// The columns an update replaces (all but `id` and `createdAt`; `revision` is set by
/// the caller). The original's `state` column mirrors the snapshot.
pub(crate) fn mutable_values(dialect: Dialect, record: &SetupRecord) -> Vec<(C, Expr)> {
    let build = record.build.as_ref();
    vec![
        (
            C::State,
            json(
                record
                    .snapshot
                    .as_ref()
                    .map(snapshot_json)
                    .unwrap_or(Json::Null),
            ),
        ),
        (C::Snapshot, snapshot(record.snapshot.as_ref())),
        (C::BuildToken, opt_text(build.map(|b| b.token.as_str()))),
        (C::BuildHolder, opt_text(build.map(|b| b.holder.as_str()))),
        (
            C::BuildExpiresAt,
            opt_timestamp(dialect, build.map(|b| b.expires_at)),
        ),
        (C::UpdatedAt, timestamp(dialect, record.updated_at)),
    ]
}

/// Every column of a new row.
pub(crate) fn insert_values(dialect: Dialect, record: &SetupRecord) -> Vec<(C, Expr)> {
    let mut values = vec![
        (C::Id, text(record.id.as_str())),
        (C::CreatedAt, timestamp(dialect, record.created_at)),
        (C::Revision, Expr::val(record.revision)),
    ];
    values.extend(mutable_values(dialect, record));
    values
}

/// Reads a row.
pub(crate) fn decode(row: &QueryResult, dialect: Dialect) -> Result<SetupRecord> {
    let r = Row::new(row, TABLE, dialect);
    let build = match r.opt_text(C::BuildToken)? {
        Some(token) => Some(SetupBuild {
            token: LeaseToken::from_stored(token),
            holder: r.text(C::BuildHolder)?,
            expires_at: r.timestamp(C::BuildExpiresAt)?,
        }),
        None => None,
    };
    Ok(SetupRecord {
        id: r.text(C::Id)?,
        snapshot: r.opt_snapshot(C::Snapshot)?,
        build,
        revision: r.i64(C::Revision)?,
        created_at: r.timestamp(C::CreatedAt)?,
        updated_at: r.timestamp(C::UpdatedAt)?,
    })
}
