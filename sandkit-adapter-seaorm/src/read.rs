//! Reads: single rows by key and paged listings.

use sandkit_core::{
    MAX_PAGE_SIZE, Order, Page, PolicySnapshot, Result, RunId, RunListing, RunRecord, SetupRecord,
    WorkspaceId, WorkspaceListing, WorkspaceRecord,
};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait, Select,
};

use crate::codec;
use crate::dialect::Dialect;
use crate::entity::{policies, runs, setup_states, workspaces};
use crate::errors::storage;

async fn one<E: EntityTrait>(
    db: &DatabaseConnection,
    select: Select<E>,
    doing: impl Fn() -> String,
) -> Result<Option<QueryResult>> {
    let stmt = select.limit(1).build(db.get_database_backend());
    db.query_one_raw(stmt)
        .await
        .map_err(|e| storage(&doing(), e))
}

async fn all<E: EntityTrait>(
    db: &DatabaseConnection,
    select: Select<E>,
    doing: impl Fn() -> String,
) -> Result<Vec<QueryResult>> {
    let stmt = select.build(db.get_database_backend());
    db.query_all_raw(stmt)
        .await
        .map_err(|e| storage(&doing(), e))
}

/// Page size with the store's cap, plus one look-ahead row.
fn fetch_size(limit: usize) -> u64 {
    limit.min(MAX_PAGE_SIZE) as u64 + 1
}

/// Trims the look-ahead row and sets the cursor to the last item's id.
fn page<T>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit.min(MAX_PAGE_SIZE);
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more { items.last().map(cursor) } else { None };
    Page { items, next_cursor }
}

pub(crate) async fn workspace(
    db: &DatabaseConnection,
    dialect: Dialect,
    id: &WorkspaceId,
) -> Result<Option<WorkspaceRecord>> {
    let select = workspaces::Entity::find().filter(workspaces::Column::Id.eq(id.as_str()));
    one(db, select, || format!("reading workspace {id}"))
        .await?
        .map(|row| codec::workspace::decode(&row, dialect))
        .transpose()
}

pub(crate) async fn workspaces(
    db: &DatabaseConnection,
    dialect: Dialect,
    query: &WorkspaceListing,
) -> Result<Page<WorkspaceRecord>> {
    use workspaces::Column as C;
    let mut select = workspaces::Entity::find();
    if let Some(status) = query.status {
        select = select.filter(C::Status.eq(status.as_str()));
    }
    if let Some(prefix) = query.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        // `substr(…) = prefix` compares exactly (case-sensitive) on every dialect,
        // unlike LIKE; a NULL name (rows from the original) reads as `default`.
        let name = Func::coalesce([Expr::col(C::Name), Expr::val("default")]);
        let head = Func::cust("substr")
            .arg(name)
            .arg(1)
            .arg(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX));
        select = select.filter(Expr::expr(head).eq(prefix));
    }
    if let Some(parent) = &query.parent {
        select = select.filter(C::ParentId.eq(parent.as_str()));
    }
    if let Some(head) = &query.head {
        select = select.filter(C::HeadSnapshotId.eq(head.as_str()));
    }
    if let Some(after) = &query.after {
        select = select.filter(C::Id.gt(after.as_str()));
    }
    let select = select.order_by_asc(C::Id).limit(fetch_size(query.limit));
    let rows = all(db, select, || "listing workspaces".to_owned()).await?;
    let items = rows
        .iter()
        .map(|row| codec::workspace::decode(row, dialect))
        .collect::<Result<Vec<_>>>()?;
    Ok(page(items, query.limit, |w| w.id.to_string()))
}

pub(crate) async fn run(
    db: &DatabaseConnection,
    dialect: Dialect,
    id: &RunId,
) -> Result<Option<RunRecord>> {
    let select = runs::Entity::find().filter(runs::Column::Id.eq(id.as_str()));
    one(db, select, || format!("reading run {id}"))
        .await?
        .map(|row| codec::run::decode(&row, dialect))
        .transpose()
}

pub(crate) async fn runs_by_snapshot(
    db: &DatabaseConnection,
    dialect: Dialect,
    snapshot_id: &str,
) -> Result<Vec<RunRecord>> {
    let select = runs::Entity::find()
        .filter(runs::Column::SnapshotId.eq(snapshot_id))
        .order_by_asc(runs::Column::Id);
    let rows = all(db, select, || {
        format!("finding the runs of snapshot {snapshot_id}")
    })
    .await?;
    rows.iter()
        .map(|row| codec::run::decode(row, dialect))
        .collect()
}

pub(crate) async fn runs(
    db: &DatabaseConnection,
    dialect: Dialect,
    query: &RunListing,
) -> Result<Page<RunRecord>> {
    use runs::Column as C;
    let mut select = runs::Entity::find().filter(C::WorkspaceId.eq(query.workspace_id.as_str()));
    if query.live_snapshots {
        select = select
            .filter(C::SnapshotId.is_not_null())
            .filter(C::SnapshotDeletedAt.is_null());
    }
    if let Some(status) = query.status {
        select = select.filter(C::Status.eq(status.as_str()));
    }
    select = match (query.order, &query.cursor) {
        (Order::Asc, Some(cursor)) => select.filter(C::Id.gt(cursor.as_str())),
        (Order::Desc, Some(cursor)) => select.filter(C::Id.lt(cursor.as_str())),
        (_, None) => select,
    };
    select = match query.order {
        Order::Asc => select.order_by_asc(C::Id),
        Order::Desc => select.order_by_desc(C::Id),
    };
    let select = select.limit(fetch_size(query.limit));
    let rows = all(db, select, || {
        format!("listing runs of workspace {}", query.workspace_id)
    })
    .await?;
    let items = rows
        .iter()
        .map(|row| codec::run::decode(row, dialect))
        .collect::<Result<Vec<_>>>()?;
    Ok(page(items, query.limit, |r| r.id.to_string()))
}

pub(crate) async fn run_by_key(
    db: &DatabaseConnection,
    dialect: Dialect,
    workspace: &WorkspaceId,
    key: &str,
) -> Result<Option<RunRecord>> {
    use runs::Column as C;
    let select = runs::Entity::find()
        .filter(C::WorkspaceId.eq(workspace.as_str()))
        .filter(C::IdempotencyKey.eq(key));
    one(db, select, || {
        format!("looking up idempotency key in workspace {workspace}")
    })
    .await?
    .map(|row| codec::run::decode(&row, dialect))
    .transpose()
}

pub(crate) async fn policy_snapshot(
    db: &DatabaseConnection,
    dialect: Dialect,
    id: &str,
) -> Result<Option<PolicySnapshot>> {
    let select = policies::Entity::find().filter(policies::Column::Id.eq(id));
    one(db, select, || format!("reading policy snapshot {id}"))
        .await?
        .map(|row| codec::policy::decode(&row, dialect))
        .transpose()
}

pub(crate) async fn setups(db: &DatabaseConnection, dialect: Dialect) -> Result<Vec<SetupRecord>> {
    let select = setup_states::Entity::find().order_by_asc(setup_states::Column::Id);
    all(db, select, || "listing setup states".to_owned())
        .await?
        .iter()
        .map(|row| codec::setup::decode(row, dialect))
        .collect()
}

pub(crate) async fn setup(
    db: &DatabaseConnection,
    dialect: Dialect,
    id: &str,
) -> Result<Option<SetupRecord>> {
    let select = setup_states::Entity::find().filter(setup_states::Column::Id.eq(id));
    one(db, select, || format!("reading setup state {id}"))
        .await?
        .map(|row| codec::setup::decode(&row, dialect))
        .transpose()
}
