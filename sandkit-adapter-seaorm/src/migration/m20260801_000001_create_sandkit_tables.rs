//! Schema version 1: the TypeScript Sandkit's four tables and columns (its schema model
//! version 2), created only where they do not exist yet. A database created by the
//! original keeps its tables; the next migration upgrades them.

use sea_orm_migration::prelude::*;

use super::columns::Columns;

/// Creates `sandkit_workspaces`, `sandkit_runs`, `sandkit_policies` and
/// `sandkit_setup_states` with the original's columns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20260801_000001_create_sandkit_tables"
    }
}

#[derive(DeriveIden)]
pub(crate) enum SandkitWorkspaces {
    Table,
    Id,
    Metadata,
    #[sea_orm(iden = "sandboxId")]
    SandboxId,
    Status,
    Name,
    #[sea_orm(iden = "lastResumedAt")]
    LastResumedAt,
    #[sea_orm(iden = "createdAt")]
    CreatedAt,
    #[sea_orm(iden = "updatedAt")]
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum SandkitRuns {
    Table,
    Id,
    WorkspaceId,
    Command,
    Args,
    Provider,
    ExecutionTargetId,
    Status,
    PolicySnapshotId,
    ProviderCommit,
    ExitCode,
    Stdout,
    Stderr,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
pub(crate) enum SandkitPolicies {
    Table,
    Id,
    WorkspaceId,
    PolicyId,
    Config,
    CreatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum SandkitSetupStates {
    Table,
    Id,
    State,
    #[sea_orm(iden = "createdAt")]
    CreatedAt,
    #[sea_orm(iden = "updatedAt")]
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let c = Columns::new(manager.get_database_backend());

        let mut workspaces = Table::create();
        workspaces
            .table(SandkitWorkspaces::Table)
            .if_not_exists()
            .col(c.key(SandkitWorkspaces::Id).not_null().primary_key())
            .col(c.json(SandkitWorkspaces::Metadata).null())
            .col(c.text(SandkitWorkspaces::SandboxId).null())
            .col(c.short(SandkitWorkspaces::Status).not_null())
            .col(c.text(SandkitWorkspaces::Name).null())
            .col(c.timestamp(SandkitWorkspaces::LastResumedAt).null())
            .col(c.timestamp(SandkitWorkspaces::CreatedAt).not_null())
            .col(c.timestamp(SandkitWorkspaces::UpdatedAt).not_null());
        c.table_options(&mut workspaces);
        manager.create_table(workspaces).await?;

        let mut runs = Table::create();
        runs.table(SandkitRuns::Table)
            .if_not_exists()
            .col(c.key(SandkitRuns::Id).not_null().primary_key())
            .col(c.key(SandkitRuns::WorkspaceId).not_null())
            .col(c.text(SandkitRuns::Command).not_null())
            .col(c.json(SandkitRuns::Args).null())
            .col(c.text(SandkitRuns::Provider).not_null())
            .col(c.text(SandkitRuns::ExecutionTargetId).not_null())
            .col(c.short(SandkitRuns::Status).not_null())
            .col(c.text(SandkitRuns::PolicySnapshotId).null())
            .col(c.json(SandkitRuns::ProviderCommit).null())
            .col(c.integer(SandkitRuns::ExitCode).null())
            .col(c.long_text(SandkitRuns::Stdout).null())
            .col(c.long_text(SandkitRuns::Stderr).null())
            .col(c.timestamp(SandkitRuns::StartedAt).not_null())
            .col(c.timestamp(SandkitRuns::FinishedAt).null())
            .foreign_key(
                ForeignKey::create()
                    .name("sandkit_runs_workspace_id_fk")
                    .from(SandkitRuns::Table, SandkitRuns::WorkspaceId)
                    .to(SandkitWorkspaces::Table, SandkitWorkspaces::Id),
            );
        c.table_options(&mut runs);
        manager.create_table(runs).await?;

        let mut policies = Table::create();
        policies
            .table(SandkitPolicies::Table)
            .if_not_exists()
            .col(c.key(SandkitPolicies::Id).not_null().primary_key())
            .col(c.key(SandkitPolicies::WorkspaceId).not_null())
            .col(c.text(SandkitPolicies::PolicyId).not_null())
            .col(c.json(SandkitPolicies::Config).not_null())
            .col(c.timestamp(SandkitPolicies::CreatedAt).not_null())
            .foreign_key(
                ForeignKey::create()
                    .name("sandkit_policies_workspace_id_fk")
                    .from(SandkitPolicies::Table, SandkitPolicies::WorkspaceId)
                    .to(SandkitWorkspaces::Table, SandkitWorkspaces::Id),
            );
        c.table_options(&mut policies);
        manager.create_table(policies).await?;

        let mut setup = Table::create();
        setup
            .table(SandkitSetupStates::Table)
            .if_not_exists()
            .col(c.key(SandkitSetupStates::Id).not_null().primary_key())
            .col(c.json(SandkitSetupStates::State).not_null())
            .col(c.timestamp(SandkitSetupStates::CreatedAt).not_null())
            .col(c.timestamp(SandkitSetupStates::UpdatedAt).not_null());
        c.table_options(&mut setup);
        manager.create_table(setup).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SandkitRuns::Table.into_iden(),
            SandkitPolicies::Table.into_iden(),
            SandkitSetupStates::Table.into_iden(),
            SandkitWorkspaces::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
