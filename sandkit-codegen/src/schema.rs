//! The schema model: Sandkit's four tables, the single source of truth for every
//! rendered output (SQL DDL, SeaORM entities, sea-orm-migration files) and for the
//! upgrade planner.
//!
//! Version 1 is the TypeScript Sandkit's schema (its tables and column names, kept so
//! that its databases upgrade in place); version 2 adds our state columns and the
//! indexes. Every column, index and foreign key records the version that added it.

use serde::Serialize;

use crate::types::LogicalType;

/// The current schema version.
pub const SCHEMA_VERSION: u32 = 2;

/// The TypeScript Sandkit's schema version (its tables and columns).
pub const ORIGINAL_VERSION: u32 = 1;

/// Sandkit's schema: tables in creation order (referenced tables first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    /// Schema version.
    pub version: u32,
    /// Tables in creation order.
    pub tables: Vec<Table>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Physical name (`sandkit_workspaces`).
    pub name: &'static str,
    /// Rust module of its entity (`workspaces`).
    pub module: &'static str,
    /// What one row is, for docs (`workspace`).
    pub noun: &'static str,
    /// What the table holds.
    pub comment: &'static str,
    /// Columns in order; the first is the primary key.
    pub columns: Vec<Column>,
    /// Primary key column.
    pub primary_key: &'static str,
    /// Secondary indexes.
    pub indexes: Vec<Index>,
    /// Foreign keys to other Sandkit tables.
    pub foreign_keys: Vec<ForeignKey>,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// Physical name (the original's spelling, e.g. `sandboxId`).
    pub name: &'static str,
    /// Rust field name (`sandbox_id`).
    pub field: &'static str,
    /// Logical type (mapped per dialect by [`LogicalType`]).
    #[serde(rename = "type")]
    pub ty: LogicalType,
    /// Whether `NULL` is allowed.
    pub nullable: bool,
    /// Default for rows that existed before the column was added.
    pub default: Option<DefaultValue>,
    /// What it holds.
    pub comment: &'static str,
    /// Schema version that added it.
    pub since: u32,
}

/// A column default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum DefaultValue {
    /// A text literal.
    Text(&'static str),
    /// An integer literal.
    Integer(i64),
    /// A boolean literal.
    Bool(bool),
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Index {
    /// Index name (unique per database).
    pub name: &'static str,
    /// Indexed columns in order.
    pub columns: Vec<&'static str>,
    /// Whether it is a unique index.
    pub unique: bool,
    /// Rust constant naming it in the migration, for code that matches its violations.
    pub constant: Option<&'static str>,
    /// What it serves.
    pub comment: &'static str,
    /// Schema version that added it.
    pub since: u32,
}

/// A foreign key from `column` to `references_table.references_column`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: &'static str,
    /// Referencing column.
    pub column: &'static str,
    /// Referenced table.
    pub references_table: &'static str,
    /// Referenced column.
    pub references_column: &'static str,
    /// Relation variant on the referencing entity (`Workspace`).
    pub relation: &'static str,
    /// Doc of that relation.
    pub relation_doc: &'static str,
    /// Relation variant on the referenced entity (`Runs`).
    pub inverse: &'static str,
    /// Doc of that relation.
    pub inverse_doc: &'static str,
    /// Schema version that added it.
    pub since: u32,
}

impl Schema {
    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Foreign keys that reference `table`, with the referencing table.
    pub fn references_to<'a>(
        &'a self,
        table: &'a str,
    ) -> impl Iterator<Item = (&'a Table, &'a ForeignKey)> + 'a {
        self.tables.iter().flat_map(move |t| {
            t.foreign_keys
                .iter()
                .filter(move |fk| fk.references_table == table)
                .map(move |fk| (t, fk))
        })
    }
}

impl Table {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether `column` is the first column of one of its foreign keys.
    pub fn is_foreign_key_column(&self, column: &str) -> bool {
        self.foreign_keys.iter().any(|fk| fk.column == column)
    }
}

/// Builds a column (keeps the table definitions below readable).
const fn col(
    name: &'static str,
    field: &'static str,
    ty: LogicalType,
    nullable: bool,
    comment: &'static str,
    since: u32,
) -> Column {
    Column {
        name,
        field,
        ty,
        nullable,
        default: None,
        comment,
        since,
    }
}

/// A nullable column.
const fn null(name: &'static str, ty: LogicalType, comment: &'static str, since: u32) -> Column {
    col(name, name, ty, true, comment, since)
}

/// A `NOT NULL` column.
const fn required(
    name: &'static str,
    ty: LogicalType,
    comment: &'static str,
    since: u32,
) -> Column {
    col(name, name, ty, false, comment, since)
}

/// A `NOT NULL` column with a default for existing rows.
const fn defaulted(
    name: &'static str,
    ty: LogicalType,
    default: DefaultValue,
    comment: &'static str,
    since: u32,
) -> Column {
    let mut column = col(name, name, ty, false, comment, since);
    column.default = Some(default);
    column
}

fn workspaces() -> Table {
    use LogicalType::*;
    Table {
        name: "sandkit_workspaces",
        module: "workspaces",
        noun: "workspace",
        comment: "one row per workspace, with its head snapshot and lease",
        primary_key: "id",
        columns: vec![
            required("id", Key, "Workspace id.", 1),
            null(
                "metadata",
                Json,
                "Caller JSON object (reserved `sandkit:` keys stripped).",
                1,
            ),
            col(
                "sandboxId",
                "sandbox_id",
                Text,
                true,
                "Provider session of the current lease (kept for the original's readers).",
                1,
            ),
            required("status", Short, "`active`, `inactive` or `archived`.", 1),
            null("name", Text, "Human name (`NULL` reads as `default`).", 1),
            col(
                "lastResumedAt",
                "last_resumed_at",
                Timestamp,
                true,
                "When the current lease was acquired (kept for the original's readers).",
                1,
            ),
            col(
                "createdAt",
                "created_at",
                Timestamp,
                false,
                "Creation time.",
                1,
            ),
            col(
                "updatedAt",
                "updated_at",
                Timestamp,
                false,
                "Time of the last write.",
                1,
            ),
            null(
                "policy",
                Json,
                "Durable default policy (JSON form of `sandkit_policies::Policy`).",
                2,
            ),
            null(
                "sandbox_config",
                Json,
                "Sandbox settings (`{\"exposedPorts\":[…],\"timeoutMs\":…,\"vcpus\":…}`).",
                2,
            ),
            null(
                "head",
                Json,
                "Last committed snapshot (`{\"provider\":…,\"id\":…}`).",
                2,
            ),
            defaulted(
                "state",
                Short,
                DefaultValue::Text("cold"),
                "Derived lifecycle state: `cold`, `committed`, `running` or `session`.",
                2,
            ),
            null(
                "lease_kind",
                Short,
                "Lease kind: `command` or `session`; `NULL` when there is no lease.",
                2,
            ),
            null("lease_token", Key, "Lease fencing token.", 2),
            null("lease_holder", Text, "Who holds the lease.", 2),
            null(
                "lease_session",
                Json,
                "Provider session of the lease (`{\"provider\":…,\"id\":…}`).",
                2,
            ),
            null("lease_run_id", Key, "Durable run holding the lease.", 2),
            null(
                "lease_acquired_at",
                Timestamp,
                "When the lease was acquired.",
                2,
            ),
            null(
                "lease_expires_at",
                Timestamp,
                "When the lease lapses unless renewed.",
                2,
            ),
            null(
                "lease_policy",
                Json,
                "Session policy override of the lease.",
                2,
            ),
            defaulted(
                "revision",
                BigInteger,
                DefaultValue::Integer(0),
                "Incremented by every write; writes compare-and-set on it.",
                2,
            ),
            null(
                "parent_id",
                Key,
                "The workspace this one was forked from.",
                2,
            ),
            null(
                "head_snapshot_id",
                Key,
                "Provider id of the head snapshot (indexed: retention asks who holds it).",
                2,
            ),
        ],
        indexes: vec![
            Index {
                name: "sandkit_workspaces_status_idx",
                columns: vec!["status"],
                unique: false,
                constant: None,
                comment: "Listing by status.",
                since: 2,
            },
            Index {
                name: "sandkit_workspaces_lease_expires_at_idx",
                columns: vec!["lease_expires_at"],
                unique: false,
                constant: None,
                comment: "Finding expired leases.",
                since: 2,
            },
            Index {
                name: "sandkit_workspaces_parent_id_idx",
                columns: vec!["parent_id"],
                unique: false,
                constant: None,
                comment: "Finding forks.",
                since: 2,
            },
            Index {
                name: "sandkit_workspaces_head_snapshot_id_idx",
                columns: vec!["head_snapshot_id"],
                unique: false,
                constant: None,
                comment: "Finding the workspaces whose head is a snapshot (retention).",
                since: 2,
            },
        ],
        foreign_keys: vec![],
    }
}

fn runs() -> Table {
    use LogicalType::*;
    Table {
        name: "sandkit_runs",
        module: "runs",
        noun: "run",
        comment: "the durable runs journal",
        primary_key: "id",
        columns: vec![
            required("id", Key, "Run id (time-ordered).", 1),
            required("workspace_id", Key, "Workspace it ran in.", 1),
            required("command", Text, "Executable.", 1),
            null("args", Json, "Arguments (JSON string array).", 1),
            required("provider", Text, "Provider id.", 1),
            required(
                "execution_target_id",
                Text,
                "Provider session the command ran in (empty until known).",
                1,
            ),
            required(
                "status",
                Short,
                "`started`, `succeeded`, `failed` or `interrupted`.",
                1,
            ),
            null(
                "policy_snapshot_id",
                Text,
                "Id of the redacted policy snapshot row.",
                1,
            ),
            null(
                "provider_commit",
                Json,
                "Snapshot the run committed (`{\"provider\":…,\"id\":…}`).",
                1,
            ),
            null("exit_code", Integer, "Exit code.", 1),
            null("stdout", LongText, "Captured standard output (capped).", 1),
            null("stderr", LongText, "Captured standard error (capped).", 1),
            required("started_at", Timestamp, "Start time.", 1),
            null("finished_at", Timestamp, "End time.", 1),
            defaulted(
                "kind",
                Short,
                DefaultValue::Text("command"),
                "`command` or `restore`.",
                2,
            ),
            null("cwd", Text, "Working directory.", 2),
            null(
                "env_keys",
                Json,
                "Names of the environment variables passed (JSON string array, never values).",
                2,
            ),
            null(
                "policy_description",
                Text,
                "Policy description (`allow-all`, `allow-services:github,npm`, …).",
                2,
            ),
            null(
                "base_snapshot",
                Json,
                "Snapshot the sandbox started from.",
                2,
            ),
            null(
                "error",
                LongText,
                "Why the run failed without a result, or was interrupted.",
                2,
            ),
            null(
                "idempotency_key",
                Key,
                "Caller idempotency key (unique per workspace).",
                2,
            ),
            null("holder", Text, "Who ran it.", 2),
            defaulted(
                "stdout_truncated",
                Boolean,
                DefaultValue::Bool(false),
                "Whether `stdout` was cut at the cap.",
                2,
            ),
            defaulted(
                "stderr_truncated",
                Boolean,
                DefaultValue::Bool(false),
                "Whether `stderr` was cut at the cap.",
                2,
            ),
            null(
                "snapshot_id",
                Key,
                "Provider id of `provider_commit` (indexed: retention asks who holds it).",
                2,
            ),
            null(
                "snapshot_deleted_at",
                Timestamp,
                "When snapshot retention deleted the committed snapshot at the provider.",
                2,
            ),
        ],
        indexes: vec![
            Index {
                name: "sandkit_runs_workspace_id_idx",
                columns: vec!["workspace_id", "id"],
                unique: false,
                constant: None,
                comment: "A workspace's runs in id (time) order.",
                since: 2,
            },
            Index {
                name: "sandkit_runs_snapshot_id_idx",
                columns: vec!["snapshot_id"],
                unique: false,
                constant: None,
                comment: "Finding the runs that hold a snapshot (retention, forks).",
                since: 2,
            },
            Index {
                name: "sandkit_runs_idempotency_key_idx",
                columns: vec!["workspace_id", "idempotency_key"],
                unique: true,
                constant: Some("RUNS_IDEMPOTENCY_INDEX"),
                comment: "One run per idempotency key and workspace (NULL keys never collide).",
                since: 2,
            },
        ],
        foreign_keys: vec![workspace_fk(
            "sandkit_runs_workspace_id_fk",
            "The workspace it ran in.",
            "Runs",
            "Its durable runs.",
        )],
    }
}

fn policies() -> Table {
    use LogicalType::*;
    Table {
        name: "sandkit_policies",
        module: "policies",
        noun: "policy snapshot",
        comment: "redacted policy snapshots of durable runs",
        primary_key: "id",
        columns: vec![
            required("id", Key, "Snapshot id.", 1),
            required("workspace_id", Key, "Workspace it belongs to.", 1),
            required("policy_id", Text, "Policy description.", 1),
            required(
                "config",
                Json,
                "Redacted policy (JSON form of `sandkit_policies::Policy`).",
                1,
            ),
            required("created_at", Timestamp, "Creation time.", 1),
        ],
        indexes: vec![Index {
            name: "sandkit_policies_workspace_id_idx",
            columns: vec!["workspace_id"],
            unique: false,
            constant: None,
            comment: "A workspace's policy snapshots.",
            since: 2,
        }],
        foreign_keys: vec![workspace_fk(
            "sandkit_policies_workspace_id_fk",
            "The workspace it belongs to.",
            "Policies",
            "Its policy snapshots.",
        )],
    }
}

fn setup_states() -> Table {
    use LogicalType::*;
    Table {
        name: "sandkit_setup_states",
        module: "setup_states",
        noun: "setup state",
        comment: "shared setup snapshots and their build claims",
        primary_key: "id",
        columns: vec![
            required(
                "id",
                Key,
                "`<store id>:setup:<sha256 of the setup definition>`.",
                1,
            ),
            required(
                "state",
                Json,
                "The original's state column; mirrors `snapshot` (JSON `null` until built).",
                1,
            ),
            col(
                "createdAt",
                "created_at",
                Timestamp,
                false,
                "Creation time.",
                1,
            ),
            col(
                "updatedAt",
                "updated_at",
                Timestamp,
                false,
                "Last write time.",
                1,
            ),
            null(
                "snapshot",
                Json,
                "The setup snapshot once built (`{\"provider\":…,\"id\":…}`).",
                2,
            ),
            null(
                "build_token",
                Key,
                "Fencing token of the current builder.",
                2,
            ),
            null("build_holder", Text, "Who builds it.", 2),
            null(
                "build_expires_at",
                Timestamp,
                "When the build claim lapses.",
                2,
            ),
            defaulted(
                "revision",
                BigInteger,
                DefaultValue::Integer(0),
                "Incremented by every write.",
                2,
            ),
        ],
        indexes: vec![],
        foreign_keys: vec![],
    }
}

/// A `workspace_id` → `sandkit_workspaces.id` foreign key.
fn workspace_fk(
    name: &'static str,
    relation_doc: &'static str,
    inverse: &'static str,
    inverse_doc: &'static str,
) -> ForeignKey {
    ForeignKey {
        name,
        column: "workspace_id",
        references_table: "sandkit_workspaces",
        references_column: "id",
        relation: "Workspace",
        relation_doc,
        inverse,
        inverse_doc,
        since: 1,
    }
}

/// Sandkit's schema at [`SCHEMA_VERSION`].
pub fn sandkit_schema() -> Schema {
    Schema {
        version: SCHEMA_VERSION,
        tables: vec![workspaces(), runs(), policies(), setup_states()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_names_an_existing_column() {
        let schema = sandkit_schema();
        for table in &schema.tables {
            assert_eq!(table.columns[0].name, table.primary_key, "{}", table.name);
            for index in &table.indexes {
                for column in &index.columns {
                    assert!(table.column(column).is_some(), "{}.{column}", index.name);
                }
            }
            for fk in &table.foreign_keys {
                assert!(table.column(fk.column).is_some(), "{}", fk.name);
                let target = schema.table(fk.references_table).expect("referenced table");
                assert!(target.column(fk.references_column).is_some(), "{}", fk.name);
            }
            for column in &table.columns {
                assert!(
                    column.nullable || column.since == 1 || column.default.is_some(),
                    "{}.{} is added later, so it needs a default or NULL",
                    table.name,
                    column.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique_across_the_database() {
        let schema = sandkit_schema();
        let mut names: Vec<&str> = schema
            .tables
            .iter()
            .flat_map(|t| {
                t.indexes
                    .iter()
                    .map(|i| i.name)
                    .chain(t.foreign_keys.iter().map(|f| f.name))
            })
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
