//! `sandkit_policies`: redacted policy snapshots of durable runs.

use sea_orm::entity::prelude::*;

/// A policy snapshot row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sandkit_policies")]
pub struct Model {
    /// Snapshot id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Workspace it belongs to.
    pub workspace_id: String,
    /// Policy description.
    pub policy_id: String,
    /// Redacted policy (JSON form of `sandkit_policies::Policy`).
    #[sea_orm(column_type = "JsonBinary")]
    pub config: Json,
    /// Creation time.
    pub created_at: DateTimeUtc,
}

/// Relations of a policy snapshot.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The workspace it belongs to.
    #[sea_orm(
        belongs_to = "super::workspaces::Entity",
        from = "Column::WorkspaceId",
        to = "super::workspaces::Column::Id"
    )]
    Workspace,
}

impl Related<super::workspaces::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Workspace.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
