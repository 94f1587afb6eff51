//! `sandkit_workspaces` rows ↔ [`WorkspaceRecord`].

use sandkit_core::policies::Policy;
use sandkit_core::{
    Error, Lease, LeaseKind, LeaseToken, Result, RunId, SandboxConfig, SessionRef, WorkspaceId,
    WorkspaceRecord, WorkspaceState, WorkspaceStatus,
};
use sea_orm::QueryResult;
use sea_orm::sea_query::Expr;
use serde_json::Value as Json;

use super::{Row, json, opt_json, opt_text, opt_timestamp, snapshot, text, timestamp};
use crate::dialect::Dialect;
use crate::entity::workspaces::Column as C;

/// Table name.
pub(crate) const TABLE: &str = "sandkit_workspaces";

/// Parses the stored spelling of a [`WorkspaceState`].
pub(crate) fn parse_state(raw: &str) -> Option<WorkspaceState> {
    [
        WorkspaceState::Cold,
        WorkspaceState::Committed,
        WorkspaceState::Running,
        WorkspaceState::Session,
    ]
    .into_iter()
    .find(|s| s.as_str() == raw)
}

/// The state a row with this head and lease is in (what `WorkspaceRecord::state` derives).
pub(crate) fn derived_state(has_head: bool, lease: Option<&Lease>) -> WorkspaceState {
    match lease.map(|l| l.kind) {
        Some(LeaseKind::Command) => WorkspaceState::Running,
        Some(LeaseKind::Session) => WorkspaceState::Session,
        None if has_head => WorkspaceState::Committed,
        None => WorkspaceState::Cold,
    }
}

/// The JSON form of a session reference.
fn session_json(session: &SessionRef) -> Json {
    serde_json::json!({"provider": session.provider, "id": session.id})
}

fn policy_json(policy: Option<&Policy>) -> Expr {
    opt_json(policy.map(Policy::to_json_value))
}

/// The lease columns (and the original's `sandboxId` / `lastResumedAt`, which mirror
/// the lease's session and acquisition time).
pub(crate) fn lease_values(dialect: Dialect, lease: Option<&Lease>) -> Vec<(C, Expr)> {
    let session = lease.and_then(|l| l.session.as_ref());
    vec![
        (C::LeaseKind, opt_text(lease.map(|l| l.kind.as_str()))),
        (C::LeaseToken, opt_text(lease.map(|l| l.token.as_str()))),
        (C::LeaseHolder, opt_text(lease.map(|l| l.holder.as_str()))),
        (C::LeaseSession, opt_json(session.map(session_json))),
        (
            C::LeaseRunId,
            opt_text(lease.and_then(|l| l.run_id.as_ref()).map(RunId::as_str)),
        ),
        (
            C::LeaseAcquiredAt,
            opt_timestamp(dialect, lease.map(|l| l.acquired_at)),
        ),
        (
            C::LeaseExpiresAt,
            opt_timestamp(dialect, lease.map(|l| l.expires_at)),
        ),
        (
            C::LeasePolicy,
            policy_json(lease.and_then(|l| l.policy.as_ref())),
        ),
        (C::SandboxId, opt_text(session.map(|s| s.id.as_str()))),
        (
            C::LastResumedAt,
            opt_timestamp(dialect, lease.map(|l| l.acquired_at)),
        ),
    ]
}

/// Every mutable column of a record (all but `id` and `createdAt`; `revision` is set
/// by the caller).
pub(crate) fn mutable_values(dialect: Dialect, record: &WorkspaceRecord) -> Result<Vec<(C, Expr)>> {
    let sandbox_config = serde_json::to_value(&record.sandbox_config).map_err(|e| {
        Error::invalid_input(format!(
            "the sandbox config of workspace {} cannot be stored as JSON: {e}",
            record.id
        ))
    })?;
    let mut values = vec![
        (C::Name, text(record.name.as_str())),
        (C::Status, text(record.status.as_str())),
        (C::Metadata, json(Json::Object(record.metadata.clone()))),
        (C::Policy, policy_json(record.policy.as_ref())),
        (C::SandboxConfig, json(sandbox_config)),
        (C::Head, snapshot(record.head.as_ref())),
        (
            C::HeadSnapshotId,
            opt_text(record.head.as_ref().map(|h| h.id.as_str())),
        ),
        (C::State, text(record.state().as_str())),
        (
            C::ParentId,
            opt_text(record.parent.as_ref().map(WorkspaceId::as_str)),
        ),
        (C::UpdatedAt, timestamp(dialect, record.updated_at)),
    ];
    values.extend(lease_values(dialect, record.lease.as_ref()));
    Ok(values)
}

/// Every column of a new row.
pub(crate) fn insert_values(dialect: Dialect, record: &WorkspaceRecord) -> Result<Vec<(C, Expr)>> {
    let mut values = vec![
        (C::Id, text(record.id.as_str())),
        (C::CreatedAt, timestamp(dialect, record.created_at)),
        (C::Revision, Expr::val(record.revision)),
    ];
    values.extend(mutable_values(dialect, record)?);
    Ok(values)
}

/// Reads a row.
pub(crate) fn decode(row: &QueryResult, dialect: Dialect) -> Result<WorkspaceRecord> {
    let r = Row::new(row, TABLE, dialect);
    let metadata = match r.opt_json(C::Metadata)? {
        None => serde_json::Map::new(),
        Some(Json::Object(map)) => map,
        Some(other) => {
            return Err(r.corrupt(
                C::Metadata,
                format!("expected a JSON object, found {}", json_kind(&other)),
            ));
        }
    };
    let policy = r
        .opt_json(C::Policy)?
        .map(|v| Policy::from_json_value(&v).map_err(|e| r.corrupt(C::Policy, e.to_string())))
        .transpose()?;
    let sandbox_config = r
        .opt_typed::<SandboxConfig>(C::SandboxConfig, "a sandbox config object")?
        .unwrap_or_default();
    let head = r.opt_snapshot(C::Head)?;
    let lease = decode_lease(&r)?;
    let record = WorkspaceRecord {
        id: WorkspaceId::from_stored(r.text(C::Id)?),
        name: r.opt_text(C::Name)?.unwrap_or_else(|| "default".to_owned()),
        status: r.enumeration(C::Status, WorkspaceStatus::parse)?,
        metadata,
        policy,
        sandbox_config,
        head,
        lease,
        revision: r.i64(C::Revision)?,
        parent: r.opt_text(C::ParentId)?.map(WorkspaceId::from_stored),
        created_at: r.timestamp(C::CreatedAt)?,
        updated_at: r.timestamp(C::UpdatedAt)?,
    };
    let stored = r.enumeration(C::State, parse_state)?;
    if stored != record.state() {
        return Err(r.corrupt(
            C::State,
            format!(
                "{:?} does not match the head and lease, which say {:?}",
                stored.as_str(),
                record.state().as_str()
            ),
        ));
    }
    Ok(record)
}

/// The lease columns: all `NULL` (no lease) or a complete lease.
fn decode_lease(r: &Row<'_>) -> Result<Option<Lease>> {
    let Some(kind) = r.opt_text(C::LeaseKind)? else {
        for column in [
            C::LeaseToken,
            C::LeaseHolder,
            C::LeaseSession,
            C::LeaseRunId,
            C::LeaseAcquiredAt,
            C::LeaseExpiresAt,
            C::LeasePolicy,
        ] {
            if !is_null(r, column)? {
                return Err(r.corrupt(column, "set while lease_kind is NULL (no lease)"));
            }
        }
        return Ok(None);
    };
    let kind = LeaseKind::parse(&kind)
        .ok_or_else(|| r.corrupt(C::LeaseKind, format!("unexpected value {kind:?}")))?;
    let session = r.opt_typed::<SessionRef>(
        C::LeaseSession,
        r#"a session reference {"provider":…,"id":…}"#,
    )?;
    let policy = r
        .opt_json(C::LeasePolicy)?
        .map(|v| Policy::from_json_value(&v).map_err(|e| r.corrupt(C::LeasePolicy, e.to_string())))
        .transpose()?;
    Ok(Some(Lease {
        kind,
        token: LeaseToken::from_stored(r.text(C::LeaseToken)?),
        holder: r.text(C::LeaseHolder)?,
        session,
        run_id: r.opt_text(C::LeaseRunId)?.map(RunId::from_stored),
        acquired_at: r.timestamp(C::LeaseAcquiredAt)?,
        expires_at: r.timestamp(C::LeaseExpiresAt)?,
        policy,
    }))
}

/// Whether a column is `NULL`, whatever its type.
fn is_null(r: &Row<'_>, column: C) -> Result<bool> {
    use crate::entity::workspaces::Column::{
        LeaseAcquiredAt, LeaseExpiresAt, LeasePolicy, LeaseSession,
    };
    Ok(match column {
        LeaseSession | LeasePolicy => r.opt_json(column)?.is_none(),
        LeaseAcquiredAt | LeaseExpiresAt => r.opt_timestamp(column)?.is_none(),
        _ => r.opt_text(column)?.is_none(),
    })
}

/// A short name for a JSON value's type, for corruption reasons.
pub(crate) fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
