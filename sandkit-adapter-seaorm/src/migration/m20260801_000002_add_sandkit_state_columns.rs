//! Schema version 2: our columns (head, lease, revision, run journal fields, setup
//! build claims) and indexes. On a database created by the TypeScript Sandkit it first
//! converts the original's column types and afterwards moves the state the original
//! kept in `metadata["sandkit:…"]` into the new columns.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use super::columns::Columns;
use super::{normalize, upgrade};

/// Adds the state columns and indexes, upgrading the original's data in place.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20260801_000002_add_sandkit_state_columns"
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum SandkitWorkspaces {
    Table,
    Status,
    Policy,
    SandboxConfig,
    Head,
    State,
    LeaseKind,
    LeaseToken,
    LeaseHolder,
    LeaseSession,
    LeaseRunId,
    LeaseAcquiredAt,
    LeaseExpiresAt,
    LeasePolicy,
    Revision,
    ParentId,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum SandkitRuns {
    Table,
    Id,
    WorkspaceId,
    Kind,
    Cwd,
    EnvKeys,
    PolicyDescription,
    BaseSnapshot,
    Error,
    IdempotencyKey,
    Holder,
    StdoutTruncated,
    StderrTruncated,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum SandkitPolicies {
    Table,
    WorkspaceId,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum SandkitSetupStates {
    Table,
    Snapshot,
    BuildToken,
    BuildHolder,
    BuildExpiresAt,
    Revision,
}

/// Unique index: one run per idempotency key and workspace (NULL keys never collide).
pub const RUNS_IDEMPOTENCY_INDEX: &str = "sandkit_runs_idempotency_key_idx";

/// The added columns, table by table.
fn added_columns(c: &Columns) -> Vec<(DynIden, ColumnDef)> {
    use SandkitRuns as R;
    use SandkitSetupStates as S;
    use SandkitWorkspaces as W;
    let w = |col: ColumnDef| (W::Table.into_iden(), col);
    let r = |col: ColumnDef| (R::Table.into_iden(), col);
    let s = |col: ColumnDef| (S::Table.into_iden(), col);
    vec![
        w(c.json(W::Policy).null().to_owned()),
        w(c.json(W::SandboxConfig).null().to_owned()),
        w(c.json(W::Head).null().to_owned()),
        w(c.short(W::State).not_null().default("cold").to_owned()),
        w(c.short(W::LeaseKind).null().to_owned()),
        w(c.key(W::LeaseToken).null().to_owned()),
        w(c.text(W::LeaseHolder).null().to_owned()),
        w(c.json(W::LeaseSession).null().to_owned()),
        w(c.key(W::LeaseRunId).null().to_owned()),
        w(c.timestamp(W::LeaseAcquiredAt).null().to_owned()),
        w(c.timestamp(W::LeaseExpiresAt).null().to_owned()),
        w(c.json(W::LeasePolicy).null().to_owned()),
        w(c.big_integer(W::Revision).not_null().default(0).to_owned()),
        w(c.key(W::ParentId).null().to_owned()),
        r(c.short(R::Kind).not_null().default("command").to_owned()),
        r(c.text(R::Cwd).null().to_owned()),
        r(c.json(R::EnvKeys).null().to_owned()),
        r(c.text(R::PolicyDescription).null().to_owned()),
        r(c.json(R::BaseSnapshot).null().to_owned()),
        r(c.long_text(R::Error).null().to_owned()),
        r(c.key(R::IdempotencyKey).null().to_owned()),
        r(c.text(R::Holder).null().to_owned()),
        r(c.boolean(R::StdoutTruncated)
            .not_null()
            .default(false)
            .to_owned()),
        r(c.boolean(R::StderrTruncated)
            .not_null()
            .default(false)
            .to_owned()),
        s(c.json(S::Snapshot).null().to_owned()),
        s(c.key(S::BuildToken).null().to_owned()),
        s(c.text(S::BuildHolder).null().to_owned()),
        s(c.timestamp(S::BuildExpiresAt).null().to_owned()),
        s(c.big_integer(S::Revision).not_null().default(0).to_owned()),
    ]
}

/// The added indexes, with their tables.
fn indexes() -> Vec<(&'static str, IndexCreateStatement)> {
    use SandkitRuns as R;
    use SandkitWorkspaces as W;
    vec![
        (
            "sandkit_workspaces",
            Index::create()
                .name("sandkit_workspaces_status_idx")
                .table(W::Table)
                .col(W::Status)
                .to_owned(),
        ),
        (
            "sandkit_workspaces",
            Index::create()
                .name("sandkit_workspaces_lease_expires_at_idx")
                .table(W::Table)
                .col(W::LeaseExpiresAt)
                .to_owned(),
        ),
        (
            "sandkit_workspaces",
            Index::create()
                .name("sandkit_workspaces_parent_id_idx")
                .table(W::Table)
                .col(W::ParentId)
                .to_owned(),
        ),
        (
            "sandkit_runs",
            Index::create()
                .name("sandkit_runs_workspace_id_idx")
                .table(R::Table)
                .col(R::WorkspaceId)
                .col(R::Id)
                .to_owned(),
        ),
        (
            "sandkit_runs",
            Index::create()
                .name(RUNS_IDEMPOTENCY_INDEX)
                .table(R::Table)
                .col(R::WorkspaceId)
                .col(R::IdempotencyKey)
                .unique()
                .to_owned(),
        ),
        (
            "sandkit_policies",
            Index::create()
                .name("sandkit_policies_workspace_id_idx")
                .table(SandkitPolicies::Table)
                .col(SandkitPolicies::WorkspaceId)
                .to_owned(),
        ),
    ]
}

/// On MySQL an index whose first column is a foreign key column may be the one the
/// foreign key uses, and cannot be dropped; `down` keeps those.
fn backs_foreign_key(backend: DbBackend, index: &IndexCreateStatement) -> bool {
    backend == DbBackend::MySql
        && matches!(
            index.get_index_spec().get_name(),
            Some("sandkit_runs_workspace_id_idx" | "sandkit_policies_workspace_id_idx")
        )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let c = Columns::new(manager.get_database_backend());
        normalize::normalize_types(manager).await?;
        for (table, column) in added_columns(&c) {
            manager
                .alter_table(Table::alter().table(table).add_column(column).to_owned())
                .await?;
        }
        for (table, index) in indexes() {
            let name = index
                .get_index_spec()
                .get_name()
                .unwrap_or_default()
                .to_owned();
            if !manager.has_index(table, &name).await? {
                manager.create_index(index).await?;
            }
        }
        upgrade::upgrade_data(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let c = Columns::new(backend);
        upgrade::downgrade_data(manager).await?;
        for (table, index) in indexes() {
            if backs_foreign_key(backend, &index) {
                continue;
            }
            let name = index
                .get_index_spec()
                .get_name()
                .unwrap_or_default()
                .to_owned();
            if manager.has_index(table, &name).await? {
                manager
                    .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                    .await?;
            }
        }
        for (table, column) in added_columns(&c) {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(column.get_column_name())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
