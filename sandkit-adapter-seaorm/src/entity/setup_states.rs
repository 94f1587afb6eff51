//! `sandkit_setup_states`: shared setup snapshots and their build claims.

use sea_orm::entity::prelude::*;

/// A setup state row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sandkit_setup_states")]
pub struct Model {
    /// `<store id>:setup:<sha256 of the setup definition>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The original's state column; mirrors `snapshot` (JSON `null` until built).
    #[sea_orm(column_type = "JsonBinary")]
    pub state: Json,
    /// Creation time.
    #[sea_orm(column_name = "createdAt")]
    pub created_at: DateTimeUtc,
    /// Last write time.
    #[sea_orm(column_name = "updatedAt")]
    pub updated_at: DateTimeUtc,
    /// The setup snapshot once built (`{"provider":…,"id":…}`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub snapshot: Option<Json>,
    /// Fencing token of the current builder.
    #[sea_orm(nullable)]
    pub build_token: Option<String>,
    /// Who builds it.
    #[sea_orm(nullable)]
    pub build_holder: Option<String>,
    /// When the build claim lapses.
    #[sea_orm(nullable)]
    pub build_expires_at: Option<DateTimeUtc>,
    /// Incremented by every write.
    pub revision: i64,
}

/// Setup states relate to nothing.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
