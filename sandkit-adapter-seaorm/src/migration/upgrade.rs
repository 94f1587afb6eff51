//! Hand-written steps of the state-columns migration: moving state between the
//! TypeScript Sandkit's shapes and our columns, in both directions.

use sandkit_core::WorkspaceRecord;
use sea_orm::sea_query::{Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IdenStatic, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait,
};
use sea_orm_migration::{SchemaManager, SchemaManagerConnection};
use serde_json::Value as Json;
use tracing::{info, warn};

use super::legacy;
use crate::codec::workspace::derived_state;
use crate::codec::{self, Row};
use crate::dialect::Dialect;
use crate::entity::{runs, setup_states, workspaces};

/// Rows read per batch while converting data.
const BATCH: u64 = 200;

/// Pages through rows of `select` in id order, `BATCH` at a time.
struct Batches<E: EntityTrait> {
    select: sea_orm::Select<E>,
    id: E::Column,
    after: Option<String>,
    done: bool,
}

impl<E: EntityTrait> Batches<E> {
    fn new(select: sea_orm::Select<E>, id: E::Column) -> Self {
        Batches {
            select,
            id,
            after: None,
            done: false,
        }
    }

    /// The next batch; empty when all rows were read.
    async fn next(&mut self, manager: &SchemaManager<'_>) -> Result<Vec<QueryResult>, DbErr> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut page = self
            .select
            .clone()
            .order_by(self.id, Order::Asc)
            .limit(BATCH);
        if let Some(last) = &self.after {
            page = page.filter(self.id.gt(last.as_str()));
        }
        let rows = manager
            .get_connection()
            .query_all_raw(page.build(manager.get_database_backend()))
            .await?;
        match rows.last() {
            Some(last) if rows.len() as u64 == BATCH => {
                self.after = Some(last.try_get::<String>("", self.id.as_str())?);
            }
            _ => self.done = true,
        }
        Ok(rows)
    }
}

fn storage_err(e: sandkit_core::Error) -> DbErr {
    DbErr::Custom(e.to_string())
}

/// Runs `step` on every row of `select`, in id order.
macro_rules! each_row {
    ($manager:expr, $select:expr, $id:expr, $step:ident($($arg:expr),*)) => {{
        let mut batches = Batches::new($select, $id);
        loop {
            let rows = batches.next($manager).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                $step(row, $($arg),*).await?;
            }
        }
    }};
}

/// Moves the original's `metadata["sandkit:…"]` state, run commits and setup states
/// into our columns.
pub(crate) async fn upgrade_data(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let dialect = Dialect::from_backend(manager.get_database_backend());
    let conn = manager.get_connection();

    let select = workspaces::Entity::find()
        .select_only()
        .column(workspaces::Column::Id)
        .column(workspaces::Column::Metadata);
    each_row!(
        manager,
        select,
        workspaces::Column::Id,
        upgrade_workspace(conn, dialect)
    );

    let select = runs::Entity::find()
        .select_only()
        .column(runs::Column::Id)
        .column(runs::Column::ProviderCommit)
        .filter(runs::Column::ProviderCommit.is_not_null());
    each_row!(
        manager,
        select,
        runs::Column::Id,
        upgrade_run(conn, dialect)
    );
    conn.execute_unprepared(
        "UPDATE sandkit_runs SET policy_description = \
         (SELECT policy_id FROM sandkit_policies WHERE sandkit_policies.id = sandkit_runs.policy_snapshot_id) \
         WHERE policy_description IS NULL AND policy_snapshot_id IS NOT NULL",
    )
    .await?;

    let select = setup_states::Entity::find()
        .select_only()
        .column(setup_states::Column::Id)
        .column(setup_states::Column::State);
    each_row!(
        manager,
        select,
        setup_states::Column::Id,
        upgrade_setup(conn, dialect)
    );
    Ok(())
}

async fn upgrade_workspace(
    row: &QueryResult,
    conn: &SchemaManagerConnection<'_>,
    dialect: Dialect,
) -> Result<(), DbErr> {
    let r = Row::new(row, codec::workspace::TABLE, dialect);
    let id = r.text(workspaces::Column::Id).map_err(storage_err)?;
    let metadata = match r.opt_json(workspaces::Column::Metadata) {
        Ok(Some(Json::Object(map))) if legacy::has_reserved_keys(&map) => map,
        Ok(_) => return Ok(()),
        Err(e) => {
            warn!(workspace = %id, error = %e, "left an unreadable workspace as it is");
            return Ok(());
        }
    };
    let up = legacy::upgrade_workspace(metadata);
    for note in &up.dropped {
        warn!(workspace = %id, "{note}");
    }
    let mut stmt = Query::update();
    stmt.table(workspaces::Entity)
        .value(
            workspaces::Column::Metadata,
            codec::json(Json::Object(up.metadata)),
        )
        .value(workspaces::Column::Policy, codec::opt_json(up.policy))
        .value(
            workspaces::Column::SandboxConfig,
            codec::opt_json(up.sandbox_config),
        )
        .value(workspaces::Column::Head, codec::snapshot(up.head.as_ref()))
        .value(
            workspaces::Column::HeadSnapshotId,
            codec::opt_text(up.head.as_ref().map(|h| h.id.as_str())),
        )
        .value(
            workspaces::Column::State,
            codec::text(derived_state(up.head.is_some(), up.lease.as_ref()).as_str()),
        );
    for (column, value) in codec::workspace::lease_values(dialect, up.lease.as_ref()) {
        stmt.value(column, value);
    }
    stmt.and_where(workspaces::Column::Id.eq(id.as_str()));
    conn.execute(&stmt).await?;
    info!(workspace = %id, "moved the TypeScript Sandkit's workspace state into columns");
    Ok(())
}

async fn upgrade_run(
    row: &QueryResult,
    conn: &SchemaManagerConnection<'_>,
    dialect: Dialect,
) -> Result<(), DbErr> {
    let r = Row::new(row, codec::run::TABLE, dialect);
    let id = r.text(runs::Column::Id).map_err(storage_err)?;
    let Ok(Some(commit)) = r.opt_json(runs::Column::ProviderCommit) else {
        return Ok(());
    };
    if !legacy::is_payload(&commit) {
        return Ok(());
    }
    let snapshot = legacy::snapshot_from_payload(&commit);
    if snapshot.is_none() {
        warn!(run = %id, "run commit of a driver other than Vercel cannot be restored; cleared");
    }
    let mut stmt = Query::update();
    stmt.table(runs::Entity)
        .value(
            runs::Column::ProviderCommit,
            codec::snapshot(snapshot.as_ref()),
        )
        .value(
            runs::Column::SnapshotId,
            codec::opt_text(snapshot.as_ref().map(|s| s.id.as_str())),
        )
        .and_where(runs::Column::Id.eq(id.as_str()));
    conn.execute(&stmt).await?;
    Ok(())
}

async fn upgrade_setup(
    row: &QueryResult,
    conn: &SchemaManagerConnection<'_>,
    dialect: Dialect,
) -> Result<(), DbErr> {
    let r = Row::new(row, codec::setup::TABLE, dialect);
    let id = r.text(setup_states::Column::Id).map_err(storage_err)?;
    let Ok(Some(state)) = r.opt_json(setup_states::Column::State) else {
        return Ok(());
    };
    if !legacy::is_payload(&state) {
        return Ok(());
    }
    let mut stmt = Query::update();
    stmt.table(setup_states::Entity)
        .value(
            setup_states::Column::Snapshot,
            codec::snapshot(legacy::snapshot_from_payload(&state).as_ref()),
        )
        .and_where(setup_states::Column::Id.eq(id.as_str()));
    conn.execute(&stmt).await?;
    Ok(())
}

/// Puts our columns' state back into the original's shapes (before they are dropped).
/// Only what the original can represent survives: Vercel heads and session leases,
/// policies and exposed ports.
pub(crate) async fn downgrade_data(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let dialect = Dialect::from_backend(manager.get_database_backend());
    let conn = manager.get_connection();
    each_row!(
        manager,
        workspaces::Entity::find(),
        workspaces::Column::Id,
        downgrade_workspace(conn, dialect)
    );
    let select = runs::Entity::find()
        .select_only()
        .column(runs::Column::Id)
        .column(runs::Column::ExecutionTargetId)
        .column(runs::Column::ProviderCommit)
        .filter(runs::Column::ProviderCommit.is_not_null());
    each_row!(
        manager,
        select,
        runs::Column::Id,
        downgrade_run(conn, dialect)
    );
    let select = setup_states::Entity::find()
        .select_only()
        .column(setup_states::Column::Id)
        .column(setup_states::Column::Snapshot)
        .filter(setup_states::Column::Snapshot.is_not_null());
    each_row!(
        manager,
        select,
        setup_states::Column::Id,
        downgrade_setup(conn, dialect)
    );
    Ok(())
}

async fn downgrade_workspace(
    row: &QueryResult,
    conn: &SchemaManagerConnection<'_>,
    dialect: Dialect,
) -> Result<(), DbErr> {
    let record: WorkspaceRecord = match codec::workspace::decode(row, dialect) {
        Ok(record) => record,
        Err(e) => {
            warn!(error = %e, "left an unreadable workspace as it is");
            return Ok(());
        }
    };
    let sandbox_config = serde_json::to_value(&record.sandbox_config).ok();
    let metadata = legacy::downgrade_workspace(
        record.metadata,
        record.policy.as_ref().map(|p| p.to_json_value()),
        sandbox_config,
        record.head.as_ref(),
        record.lease.as_ref(),
    );
    let mut stmt = Query::update();
    stmt.table(workspaces::Entity)
        .value(
            workspaces::Column::Metadata,
            codec::json(Json::Object(metadata)),
        )
        .and_where(workspaces::Column::Id.eq(record.id.as_str()));
    conn.execute(&stmt).await?;
    Ok(())
}

async fn downgrade_run(
    row: &QueryResult,
    conn: &SchemaManagerConnection<'_>,
    dialect: Dialect,
) -> Result<(), DbErr> {
    let r = Row::new(row, codec::run::TABLE, dialect);
    let id = r.text(runs::Column::Id).map_err(storage_err)?;
    let session = r.text(runs::Column::ExecutionTargetId).unwrap_or_default();
    let Ok(Some(snapshot)) = r.opt_snapshot(runs::Column::ProviderCommit) else {
        return Ok(());
    };
    if let Some(payload) = legacy::snapshot_to_payload(&snapshot, &session) {
        let mut stmt = Query::update();
        stmt.table(runs::Entity)
            .value(runs::Column::ProviderCommit, codec::json(payload))
            .and_where(runs::Column::Id.eq(id.as_str()));
        conn.execute(&stmt).await?;
    }
    Ok(())
}

async fn downgrade_setup(
    row: &QueryResult,
    conn: &SchemaManagerConnection<'_>,
    dialect: Dialect,
) -> Result<(), DbErr> {
    let r = Row::new(row, codec::setup::TABLE, dialect);
    let id = r.text(setup_states::Column::Id).map_err(storage_err)?;
    let Ok(Some(snapshot)) = r.opt_snapshot(setup_states::Column::Snapshot) else {
        return Ok(());
    };
    if let Some(payload) = legacy::snapshot_to_payload(&snapshot, "") {
        let mut stmt = Query::update();
        stmt.table(setup_states::Entity)
            .value(setup_states::Column::State, codec::json(payload))
            .and_where(setup_states::Column::Id.eq(id.as_str()));
        conn.execute(&stmt).await?;
    }
    Ok(())
}
