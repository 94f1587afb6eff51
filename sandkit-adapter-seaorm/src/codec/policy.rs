//! `sandkit_policies` rows ↔ [`PolicySnapshot`].

use sandkit_core::policies::Policy;
use sandkit_core::{PolicySnapshot, Result, WorkspaceId};
use sea_orm::QueryResult;
use sea_orm::sea_query::Expr;

use super::{Row, json, text, timestamp};
use crate::dialect::Dialect;
use crate::entity::policies::Column as C;

/// Table name.
pub(crate) const TABLE: &str = "sandkit_policies";

/// Every column of a new snapshot (the policy is stored in its JSON form, which never
/// holds an explicit secret).
pub(crate) fn insert_values(dialect: Dialect, snapshot: &PolicySnapshot) -> Vec<(C, Expr)> {
    vec![
        (C::Id, text(snapshot.id.as_str())),
        (C::WorkspaceId, text(snapshot.workspace_id.as_str())),
        (C::PolicyId, text(snapshot.policy_id.as_str())),
        (C::Config, json(snapshot.config.to_json_value())),
        (C::CreatedAt, timestamp(dialect, snapshot.created_at)),
    ]
}

/// Reads a row.
pub(crate) fn decode(row: &QueryResult, dialect: Dialect) -> Result<PolicySnapshot> {
    let r = Row::new(row, TABLE, dialect);
    let config = r
        .opt_json(C::Config)?
        .ok_or_else(|| r.corrupt(C::Config, "unexpected NULL"))?;
    let config =
        Policy::from_json_value(&config).map_err(|e| r.corrupt(C::Config, e.to_string()))?;
    Ok(PolicySnapshot {
        id: r.text(C::Id)?,
        workspace_id: WorkspaceId::from_stored(r.text(C::WorkspaceId)?),
        policy_id: r.text(C::PolicyId)?,
        config,
        created_at: r.timestamp(C::CreatedAt)?,
    })
}
