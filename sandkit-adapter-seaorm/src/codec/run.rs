//! `sandkit_runs` rows ↔ [`RunRecord`].

use sandkit_core::{Result, RunFinish, RunId, RunKind, RunRecord, RunStatus, WorkspaceId};
use sea_orm::QueryResult;
use sea_orm::sea_query::{Expr, Value};
use serde_json::Value as Json;

use super::{Row, json, opt_text, opt_timestamp, snapshot, text, timestamp};
use crate::dialect::Dialect;
use crate::entity::runs::Column as C;

/// Table name.
pub(crate) const TABLE: &str = "sandkit_runs";

fn strings(values: &[String]) -> Expr {
    json(Json::Array(
        values.iter().cloned().map(Json::String).collect(),
    ))
}

/// The indexed id of a committed snapshot.
fn snapshot_id(snapshot: Option<&sandkit_core::SnapshotRef>) -> Expr {
    opt_text(snapshot.map(|s| s.id.as_str()))
}

/// Every column of a new run.
pub(crate) fn insert_values(dialect: Dialect, run: &RunRecord) -> Vec<(C, Expr)> {
    vec![
        (C::Id, text(run.id.as_str())),
        (C::WorkspaceId, text(run.workspace_id.as_str())),
        (C::Command, text(run.command.as_str())),
        (C::Args, strings(&run.args)),
        (C::Provider, text(run.provider.as_str())),
        (
            C::ExecutionTargetId,
            text(run.session_id.clone().unwrap_or_default()),
        ),
        (C::Status, text(run.status.as_str())),
        (
            C::PolicySnapshotId,
            opt_text(run.policy_snapshot_id.clone()),
        ),
        (C::ProviderCommit, snapshot(run.snapshot.as_ref())),
        (C::SnapshotId, snapshot_id(run.snapshot.as_ref())),
        (
            C::SnapshotDeletedAt,
            opt_timestamp(dialect, run.snapshot_deleted_at),
        ),
        (C::ExitCode, Expr::val(Value::Int(run.exit_code))),
        (C::Stdout, opt_text(run.stdout.clone())),
        (C::Stderr, opt_text(run.stderr.clone())),
        (C::StartedAt, timestamp(dialect, run.started_at)),
        (C::FinishedAt, opt_timestamp(dialect, run.finished_at)),
        (C::Kind, text(run.kind.as_str())),
        (C::Cwd, opt_text(run.cwd.clone())),
        (C::EnvKeys, strings(&run.env_keys)),
        (C::PolicyDescription, text(run.policy_description.as_str())),
        (C::BaseSnapshot, snapshot(run.base_snapshot.as_ref())),
        (C::Error, opt_text(run.error.clone())),
        (C::IdempotencyKey, opt_text(run.idempotency_key.clone())),
        (C::Holder, text(run.holder.as_str())),
        (C::StdoutTruncated, Expr::val(run.stdout_truncated)),
        (C::StderrTruncated, Expr::val(run.stderr_truncated)),
    ]
}

/// The columns a finish sets. Exit code, output and session id keep their stored
/// values when the finish has none.
pub(crate) fn finish_values(dialect: Dialect, finish: &RunFinish) -> Vec<(C, Expr)> {
    let mut values = vec![
        (C::Status, text(finish.status.as_str())),
        (C::StdoutTruncated, Expr::val(finish.stdout_truncated)),
        (C::StderrTruncated, Expr::val(finish.stderr_truncated)),
        (C::ProviderCommit, snapshot(finish.snapshot.as_ref())),
        (C::SnapshotId, snapshot_id(finish.snapshot.as_ref())),
        (C::Error, opt_text(finish.error.clone())),
        (C::FinishedAt, timestamp(dialect, finish.finished_at)),
    ];
    if let Some(code) = finish.exit_code {
        values.push((C::ExitCode, Expr::val(code)));
    }
    if let Some(stdout) = &finish.stdout {
        values.push((C::Stdout, text(stdout.as_str())));
    }
    if let Some(stderr) = &finish.stderr {
        values.push((C::Stderr, text(stderr.as_str())));
    }
    if let Some(session) = &finish.session_id {
        values.push((C::ExecutionTargetId, text(session.as_str())));
    }
    if finish.release_idempotency_key {
        values.push((C::IdempotencyKey, opt_text(None::<String>)));
    }
    values
}

/// Reads a row.
pub(crate) fn decode(row: &QueryResult, dialect: Dialect) -> Result<RunRecord> {
    let r = Row::new(row, TABLE, dialect);
    let session_id = r.text(C::ExecutionTargetId)?;
    Ok(RunRecord {
        id: RunId::from_stored(r.text(C::Id)?),
        workspace_id: WorkspaceId::from_stored(r.text(C::WorkspaceId)?),
        kind: r.enumeration(C::Kind, RunKind::parse)?,
        command: r.text(C::Command)?,
        args: r.string_list(C::Args)?,
        cwd: r.opt_text(C::Cwd)?,
        env_keys: r.string_list(C::EnvKeys)?,
        policy_description: r.opt_text(C::PolicyDescription)?.unwrap_or_default(),
        policy_snapshot_id: r.opt_text(C::PolicySnapshotId)?,
        provider: r.text(C::Provider)?,
        session_id: (!session_id.is_empty()).then_some(session_id),
        status: r.enumeration(C::Status, RunStatus::parse)?,
        exit_code: r.opt_i32(C::ExitCode)?,
        stdout: r.opt_text(C::Stdout)?,
        stderr: r.opt_text(C::Stderr)?,
        stdout_truncated: r.bool(C::StdoutTruncated)?,
        stderr_truncated: r.bool(C::StderrTruncated)?,
        base_snapshot: r.opt_snapshot(C::BaseSnapshot)?,
        snapshot: r.opt_snapshot(C::ProviderCommit)?,
        snapshot_deleted_at: r.opt_timestamp(C::SnapshotDeletedAt)?,
        error: r.opt_text(C::Error)?,
        idempotency_key: r.opt_text(C::IdempotencyKey)?,
        holder: r.opt_text(C::Holder)?.unwrap_or_default(),
        started_at: r.timestamp(C::StartedAt)?,
        finished_at: r.opt_timestamp(C::FinishedAt)?,
    })
}
