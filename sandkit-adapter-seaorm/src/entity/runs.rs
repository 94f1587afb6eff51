//! `sandkit_runs`: the durable runs journal.

use sea_orm::entity::prelude::*;

/// A run row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sandkit_runs")]
pub struct Model {
    /// Run id (time-ordered).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Workspace it ran in.
    pub workspace_id: String,
    /// Executable.
    pub command: String,
    /// Arguments (JSON string array).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub args: Option<Json>,
    /// Provider id.
    pub provider: String,
    /// Provider session the command ran in (empty until known).
    pub execution_target_id: String,
    /// `started`, `succeeded`, `failed` or `interrupted`.
    pub status: String,
    /// Id of the redacted policy snapshot row.
    #[sea_orm(nullable)]
    pub policy_snapshot_id: Option<String>,
    /// Snapshot the run committed (`{"provider":…,"id":…}`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub provider_commit: Option<Json>,
    /// Exit code.
    #[sea_orm(nullable)]
    pub exit_code: Option<i32>,
    /// Captured standard output (capped).
    #[sea_orm(column_type = "Text", nullable)]
    pub stdout: Option<String>,
    /// Captured standard error (capped).
    #[sea_orm(column_type = "Text", nullable)]
    pub stderr: Option<String>,
    /// Start time.
    pub started_at: DateTimeUtc,
    /// End time.
    #[sea_orm(nullable)]
    pub finished_at: Option<DateTimeUtc>,
    /// `command` or `restore`.
    pub kind: String,
    /// Working directory.
    #[sea_orm(nullable)]
    pub cwd: Option<String>,
    /// Names of the environment variables passed (JSON string array, never values).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub env_keys: Option<Json>,
    /// Policy description (`allow-all`, `allow-services:github,npm`, …).
    #[sea_orm(nullable)]
    pub policy_description: Option<String>,
    /// Snapshot the sandbox started from.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub base_snapshot: Option<Json>,
    /// Why the run failed without a result, or was interrupted.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// Caller idempotency key (unique per workspace).
    #[sea_orm(nullable)]
    pub idempotency_key: Option<String>,
    /// Who ran it.
    #[sea_orm(nullable)]
    pub holder: Option<String>,
    /// Whether `stdout` was cut at the cap.
    pub stdout_truncated: bool,
    /// Whether `stderr` was cut at the cap.
    pub stderr_truncated: bool,
}

/// Relations of a run.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The workspace it ran in.
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
