//! The application's `projects` table: each project runs its agent in a Sandkit
//! workspace, referenced by a foreign key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Creates `projects`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20270101_000001_create_projects"
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    WorkspaceId,
}

#[derive(DeriveIden)]
enum SandkitWorkspaces {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut workspace_id = ColumnDef::new(Projects::WorkspaceId);
        if manager.get_database_backend() == DbBackend::MySql {
            // A column referencing Sandkit's ids must match their charset and collation
            // (utf8mb4, utf8mb4_bin) or MySQL refuses the foreign key (errno 150).
            workspace_id.custom(Alias::new(
                "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            ));
        } else {
            workspace_id.string_len(255);
        }
        workspace_id.not_null();
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(
                        ColumnDef::new(Projects::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(workspace_id)
                    .foreign_key(
                        ForeignKey::create()
                            .name("projects_workspace_id_fk")
                            .from(Projects::Table, Projects::WorkspaceId)
                            .to(SandkitWorkspaces::Table, SandkitWorkspaces::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Projects::Table).to_owned())
            .await
    }
}
