//! `sandkit_workspaces`: one row per workspace, with its head snapshot and lease.

use sea_orm::entity::prelude::*;

/// A workspace row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sandkit_workspaces")]
pub struct Model {
    /// Workspace id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Caller JSON object (reserved `sandkit:` keys stripped).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub metadata: Option<Json>,
    /// Provider session of the current lease (kept for the original's readers).
    #[sea_orm(column_name = "sandboxId", nullable)]
    pub sandbox_id: Option<String>,
    /// `active`, `inactive` or `archived`.
    pub status: String,
    /// Human name (`NULL` reads as `default`).
    #[sea_orm(nullable)]
    pub name: Option<String>,
    /// When the current lease was acquired (kept for the original's readers).
    #[sea_orm(column_name = "lastResumedAt", nullable)]
    pub last_resumed_at: Option<DateTimeUtc>,
    /// Creation time.
    #[sea_orm(column_name = "createdAt")]
    pub created_at: DateTimeUtc,
    /// Time of the last write.
    #[sea_orm(column_name = "updatedAt")]
    pub updated_at: DateTimeUtc,
    /// Durable default policy (JSON form of `sandkit_policies::Policy`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub policy: Option<Json>,
    /// Sandbox settings (`{"exposedPorts":[…],"timeoutMs":…,"vcpus":…}`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub sandbox_config: Option<Json>,
    /// Last committed snapshot (`{"provider":…,"id":…}`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub head: Option<Json>,
    /// Derived lifecycle state: `cold`, `committed`, `running` or `session`.
    pub state: String,
    /// Lease kind: `command` or `session`; `NULL` when there is no lease.
    #[sea_orm(nullable)]
    pub lease_kind: Option<String>,
    /// Lease fencing token.
    #[sea_orm(nullable)]
    pub lease_token: Option<String>,
    /// Who holds the lease.
    #[sea_orm(nullable)]
    pub lease_holder: Option<String>,
    /// Provider session of the lease (`{"provider":…,"id":…}`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub lease_session: Option<Json>,
    /// Durable run holding the lease.
    #[sea_orm(nullable)]
    pub lease_run_id: Option<String>,
    /// When the lease was acquired.
    #[sea_orm(nullable)]
    pub lease_acquired_at: Option<DateTimeUtc>,
    /// When the lease lapses unless renewed.
    #[sea_orm(nullable)]
    pub lease_expires_at: Option<DateTimeUtc>,
    /// Session policy override of the lease.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub lease_policy: Option<Json>,
    /// Incremented by every write; writes compare-and-set on it.
    pub revision: i64,
    /// The workspace this one was forked from.
    #[sea_orm(nullable)]
    pub parent_id: Option<String>,
}

/// Relations of a workspace.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its durable runs.
    #[sea_orm(has_many = "super::runs::Entity")]
    Runs,
    /// Its policy snapshots.
    #[sea_orm(has_many = "super::policies::Entity")]
    Policies,
}

impl Related<super::runs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Runs.def()
    }
}

impl Related<super::policies::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Policies.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
