//! [`Store::apply`](sandkit_core::Store::apply): one batch, one transaction.
//!
//! Workspace writes are single conditional statements: compare-and-set
//! (`… WHERE id = ? AND revision = ?`) or fenced (`… WHERE id = ? AND lease_token = ?`);
//! the number of rows they affect decides. Only when it is zero does one `SELECT` tell
//! a missing row from a lost race. Duplicate keys are detected by the database's unique
//! constraints, never by reading first. On SQLite the transaction starts with
//! `BEGIN IMMEDIATE`, so writers in other processes queue on the write lock instead of
//! failing mid-transaction.

use sandkit_core::{
    Error, FencedChange, LeaseToken, PolicySnapshot, Result, RunWrite, WorkspaceId, WorkspaceState,
    WorkspaceWrite, WriteBatch,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tracing::{debug, warn};

use crate::codec;
use crate::codec::workspace::derived_state;
use crate::dialect::Dialect;
use crate::entity::{policies, runs, workspaces};
use crate::errors::{Violation, storage, violation};
use crate::sql::{execute, insert, update};

/// Applies a batch in one transaction.
pub(crate) async fn apply(
    db: &DatabaseConnection,
    dialect: Dialect,
    batch: WriteBatch,
) -> Result<()> {
    if batch.workspace.is_none() && batch.policy_snapshots.is_empty() && batch.runs.is_empty() {
        return Ok(());
    }
    let txn = begin(db, dialect).await?;
    match apply_in(&txn, dialect, batch).await {
        Ok(()) => txn
            .commit()
            .await
            .map_err(|e| storage("committing a write batch", e)),
        Err(err) => {
            if let Err(rollback) = txn.rollback().await {
                warn!(error = %rollback, "rolling back a failed write batch failed");
            }
            Err(err)
        }
    }
}

/// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
pub(crate) async fn begin(
    db: &DatabaseConnection,
    dialect: Dialect,
) -> Result<DatabaseTransaction> {
    let options = TransactionOptions {
        sqlite_transaction_mode: (dialect == Dialect::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    db.begin_with_options(options)
        .await
        .map_err(|e| storage("starting a write transaction", e))
}

async fn apply_in(txn: &DatabaseTransaction, dialect: Dialect, batch: WriteBatch) -> Result<()> {
    if let Some(write) = batch.workspace {
        write_workspace(txn, dialect, write).await?;
    }
    for snapshot in &batch.policy_snapshots {
        insert_policy_snapshot(txn, dialect, snapshot).await?;
    }
    for write in batch.runs {
        write_run(txn, dialect, write).await?;
    }
    Ok(())
}

async fn write_workspace(
    txn: &DatabaseTransaction,
    dialect: Dialect,
    write: WorkspaceWrite,
) -> Result<()> {
    use workspaces::Column as C;
    match write {
        WorkspaceWrite::Create(record) => {
            let stmt = insert(
                workspaces::Entity,
                codec::workspace::insert_values(dialect, &record)?,
            )?;
            execute(txn, &stmt).await.map_err(|e| match violation(&e) {
                Some(Violation::Unique(_)) => Error::already_exists(format!(
                    "workspace {} already exists; choose another id or open the existing workspace",
                    record.id
                )),
                _ => storage(&format!("creating workspace {}", record.id), e),
            })?;
        }
        WorkspaceWrite::Update {
            record,
            expected_revision,
        } => {
            let mut stmt = update(
                workspaces::Entity,
                codec::workspace::mutable_values(dialect, &record)?,
            );
            stmt.value(C::Revision, expected_revision + 1)
                .and_where(C::Id.eq(record.id.as_str()))
                .and_where(C::Revision.eq(expected_revision));
            let done = execute(txn, &stmt)
                .await
                .map_err(|e| storage(&format!("updating workspace {}", record.id), e))?;
            if done == 0 {
                return Err(
                    workspace_miss(txn, &record.id, Guard::Revision(expected_revision)).await,
                );
            }
        }
        WorkspaceWrite::Fenced { id, token, change } => {
            let stmt = fenced_update(dialect, &id, &token, &change);
            let done = execute(txn, &stmt)
                .await
                .map_err(|e| storage(&format!("writing under the lease of workspace {id}"), e))?;
            if done == 0 {
                return Err(workspace_miss(txn, &id, Guard::Token).await);
            }
        }
        WorkspaceWrite::Delete {
            id,
            expected_revision,
        } => delete_workspace(txn, &id, expected_revision).await?,
    }
    Ok(())
}

/// `UPDATE … SET lease…, head?, state, updatedAt, revision = revision + 1
/// WHERE id = ? AND lease_token = ?`.
fn fenced_update(
    dialect: Dialect,
    id: &WorkspaceId,
    token: &LeaseToken,
    change: &FencedChange,
) -> sea_orm::sea_query::UpdateStatement {
    use workspaces::Column as C;
    let mut values = codec::workspace::lease_values(dialect, change.lease.as_ref());
    let state: Expr = match (&change.head, &change.lease) {
        (Some(head), lease) => {
            values.push((C::Head, codec::snapshot(Some(head))));
            values.push((C::HeadSnapshotId, codec::text(head.id.as_str())));
            codec::text(derived_state(true, lease.as_ref()).as_str())
        }
        (None, Some(lease)) => codec::text(derived_state(false, Some(lease)).as_str()),
        // Released without a new head: the state follows the stored head.
        (None, None) => Expr::case(C::Head.is_null(), WorkspaceState::Cold.as_str())
            .finally(WorkspaceState::Committed.as_str())
            .into(),
    };
    values.push((C::State, state));
    values.push((C::UpdatedAt, codec::timestamp(dialect, change.updated_at)));
    values.push((C::Revision, Expr::col(C::Revision).add(1)));
    let mut stmt = update(workspaces::Entity, values);
    stmt.and_where(C::Id.eq(id.as_str()))
        .and_where(C::LeaseToken.eq(token.as_str()));
    stmt
}

/// Deletes a workspace with its runs and policy snapshots, guarded by its revision.
async fn delete_workspace(
    txn: &DatabaseTransaction,
    id: &WorkspaceId,
    expected_revision: i64,
) -> Result<()> {
    use workspaces::Column as C;
    let doing = || format!("deleting workspace {id}");
    // The guard: takes the row's write lock and checks the revision in one statement.
    let mut guard = Query::update();
    guard
        .table(workspaces::Entity)
        .value(C::Revision, expected_revision + 1)
        .and_where(C::Id.eq(id.as_str()))
        .and_where(C::Revision.eq(expected_revision));
    let done = execute(txn, &guard)
        .await
        .map_err(|e| storage(&doing(), e))?;
    if done == 0 {
        return Err(workspace_miss(txn, id, Guard::Revision(expected_revision)).await);
    }
    let mut runs = Query::delete();
    runs.from_table(runs::Entity)
        .and_where(runs::Column::WorkspaceId.eq(id.as_str()));
    execute(txn, &runs)
        .await
        .map_err(|e| storage(&doing(), e))?;
    let mut policies = Query::delete();
    policies
        .from_table(policies::Entity)
        .and_where(policies::Column::WorkspaceId.eq(id.as_str()));
    execute(txn, &policies)
        .await
        .map_err(|e| storage(&doing(), e))?;
    let mut row = Query::delete();
    row.from_table(workspaces::Entity)
        .and_where(C::Id.eq(id.as_str()));
    execute(txn, &row).await.map_err(|e| storage(&doing(), e))?;
    Ok(())
}

/// What a workspace write was guarded by.
enum Guard {
    Revision(i64),
    Token,
}

/// Why a guarded workspace write matched no row: gone (`NotFound`) or changed
/// (`Conflict`). One `SELECT`, only on this path.
async fn workspace_miss(txn: &DatabaseTransaction, id: &WorkspaceId, guard: Guard) -> Error {
    use workspaces::Column as C;
    let mut stmt = Query::select();
    stmt.column(C::Revision)
        .from(workspaces::Entity)
        .and_where(C::Id.eq(id.as_str()));
    let found = match txn.query_one(&stmt).await {
        Ok(row) => row,
        Err(e) => return storage(&format!("reading workspace {id}"), e),
    };
    let Some(row) = found else {
        return Error::not_found(format!("workspace {id} does not exist"));
    };
    let actual = row.try_get::<i64>("", "revision").ok();
    debug!(workspace = %id, ?actual, "guarded workspace write lost");
    match guard {
        Guard::Revision(expected) => Error::conflict(format!(
            "workspace {id} changed concurrently (expected revision {expected}, found {}); \
             re-read and retry",
            actual.map_or_else(|| "another".to_owned(), |r| r.to_string())
        )),
        Guard::Token => Error::conflict(format!(
            "the lease on workspace {id} is no longer held by this token"
        )),
    }
}

async fn insert_policy_snapshot(
    txn: &DatabaseTransaction,
    dialect: Dialect,
    snapshot: &PolicySnapshot,
) -> Result<()> {
    let stmt = insert(
        policies::Entity,
        codec::policy::insert_values(dialect, snapshot),
    )?;
    execute(txn, &stmt).await.map_err(|e| match violation(&e) {
        Some(Violation::Unique(_)) => {
            Error::already_exists(format!("policy snapshot {} already exists", snapshot.id))
        }
        Some(Violation::ForeignKey) => Error::not_found(format!(
            "workspace {} does not exist",
            snapshot.workspace_id
        )),
        None => storage(&format!("inserting policy snapshot {}", snapshot.id), e),
    })?;
    Ok(())
}

async fn write_run(txn: &DatabaseTransaction, dialect: Dialect, write: RunWrite) -> Result<()> {
    match write {
        RunWrite::Insert(run) => {
            let stmt = insert(runs::Entity, codec::run::insert_values(dialect, &run))?;
            execute(txn, &stmt)
                .await
                .map_err(|e| run_insert_error(&run, e))?;
        }
        RunWrite::Finish { id, finish } => {
            let mut stmt = update(runs::Entity, codec::run::finish_values(dialect, &finish));
            stmt.and_where(runs::Column::Id.eq(id.as_str()));
            let done = execute(txn, &stmt)
                .await
                .map_err(|e| storage(&format!("finishing run {id}"), e))?;
            if done == 0 {
                return Err(Error::not_found(format!("run {id} does not exist")));
            }
        }
        RunWrite::SnapshotDeleted { id, at } => {
            let value = codec::opt_timestamp(dialect, at);
            let mut stmt = update(runs::Entity, vec![(runs::Column::SnapshotDeletedAt, value)]);
            stmt.and_where(runs::Column::Id.eq(id.as_str()));
            let done = execute(txn, &stmt)
                .await
                .map_err(|e| storage(&format!("recording the snapshot deletion of run {id}"), e))?;
            if done == 0 {
                return Err(Error::not_found(format!("run {id} does not exist")));
            }
        }
    }
    Ok(())
}

fn run_insert_error(run: &sandkit_core::RunRecord, err: DbErr) -> Error {
    match violation(&err) {
        Some(Violation::Unique(message)) if names_idempotency_key(&message) => {
            Error::already_exists(format!(
                "a run with idempotency key {:?} already exists in workspace {}; \
                 look it up with find_run_by_key",
                run.idempotency_key.as_deref().unwrap_or_default(),
                run.workspace_id
            ))
        }
        Some(Violation::Unique(_)) => {
            Error::already_exists(format!("run {} already exists", run.id))
        }
        Some(Violation::ForeignKey) => {
            Error::not_found(format!("workspace {} does not exist", run.workspace_id))
        }
        None => storage(&format!("inserting run {}", run.id), err),
    }
}

/// Whether a unique-violation message is about the idempotency key index (PostgreSQL
/// and MySQL name the index, SQLite the columns).
fn names_idempotency_key(message: &str) -> bool {
    message.contains(crate::migration::RUNS_IDEMPOTENCY_INDEX)
        || message.contains("idempotency_key")
}
