//! Comparing what a database holds with the schema model, and planning what is
//! missing: nothing, everything, or an upgrade (type conversions, tables, columns,
//! indexes and the data move from the TypeScript Sandkit's shapes).

use std::collections::{BTreeMap, BTreeSet};

use crate::dialect::Dialect;
use crate::schema::{Column, ORIGINAL_VERSION, Table, sandkit_schema};
use crate::types::LogicalType;

/// What an existing database holds of Sandkit's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseState {
    /// Sandkit's tables that exist, by name.
    pub tables: BTreeMap<String, TableState>,
    /// Foreign keys that reference Sandkit's tables (from any table).
    pub foreign_keys: Vec<ForeignKeyState>,
}

/// One existing table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    /// Columns by name.
    pub columns: BTreeMap<String, ColumnState>,
    /// Index names.
    pub indexes: BTreeSet<String>,
    /// Table collation (MySQL).
    pub collation: Option<String>,
}

/// One existing column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnState {
    /// Data type, lower case (`information_schema` on PostgreSQL/MySQL, the declared
    /// type on SQLite).
    pub data_type: String,
    /// Collation, where the database reports one.
    pub collation: Option<String>,
    /// Whether `NULL` is allowed.
    pub nullable: bool,
    /// Fractional-second digits of a datetime (MySQL).
    pub datetime_precision: Option<i64>,
    /// Whether some rows hold integers (SQLite timestamps written as epoch ms).
    pub integer_values: bool,
}

/// A foreign key referencing a Sandkit table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignKeyState {
    /// Constraint name.
    pub name: String,
    /// Referencing table.
    pub table: String,
    /// Referencing column.
    pub column: String,
    /// Referenced table.
    pub references_table: String,
    /// Referenced column.
    pub references_column: String,
    /// The referencing column's declared type (MySQL's `COLUMN_TYPE`, for example
    /// `varchar(255)`), where introspection read it.
    pub column_type: Option<String>,
    /// The referencing column's collation, where the database reports one (MySQL).
    pub collation: Option<String>,
    /// Whether the referencing column allows `NULL`.
    pub nullable: bool,
    /// The key's `ON DELETE` rule (`RESTRICT`, `CASCADE`, …), where read (MySQL).
    pub on_delete: Option<String>,
    /// The key's `ON UPDATE` rule, where read (MySQL).
    pub on_update: Option<String>,
}

/// An application's foreign key to a Sandkit table whose column has another collation
/// than the column it references (MySQL/MariaDB). MariaDB refuses to create such a
/// key (errno 150), and one that exists anyway (created with `foreign_key_checks = 0`
/// before the referenced table) rejects every row: the collations must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollationMismatch {
    /// The application's foreign key.
    pub foreign_key: ForeignKeyState,
    /// The referenced (Sandkit) column's collation.
    pub expected: String,
    /// The statements that fix it: drop the key, give the column the referenced
    /// column's character set and collation (`ALTER TABLE … MODIFY …`; MariaDB refuses
    /// to change a column a key uses), and re-create the key.
    pub statements: Vec<String>,
}

impl CollationMismatch {
    /// What is wrong and the statements to run, for people.
    pub fn message(&self) -> String {
        let fk = &self.foreign_key;
        let q = |name: &str| Dialect::MySql.quote(name);
        let mut text = format!(
            "{}.{} ({}) references {}.{} ({}) through foreign key {}: the collations differ, \
             so MySQL/MariaDB rejects rows through that key; run:",
            q(&fk.table),
            q(&fk.column),
            fk.collation.as_deref().unwrap_or("no collation"),
            q(&fk.references_table),
            q(&fk.references_column),
            self.expected,
            q(&fk.name),
        );
        for statement in &self.statements {
            text.push_str("\n  ");
            text.push_str(statement);
            text.push(';');
        }
        text
    }
}

/// The application foreign keys to Sandkit's tables whose column's collation differs
/// from the referenced column's (MySQL/MariaDB only; none elsewhere).
pub fn collation_mismatches(dialect: Dialect, state: &DatabaseState) -> Vec<CollationMismatch> {
    if dialect != Dialect::MySql {
        return Vec::new();
    }
    let schema = sandkit_schema();
    let q = |name: &str| Dialect::MySql.quote(name);
    state
        .foreign_keys
        .iter()
        .filter(|fk| schema.table(&fk.table).is_none())
        .filter_map(|fk| {
            let expected = state
                .tables
                .get(&fk.references_table)?
                .columns
                .get(&fk.references_column)?
                .collation
                .clone()?;
            if fk.collation.as_deref() == Some(expected.as_str()) {
                return None;
            }
            // A MySQL collation's name starts with its character set (utf8mb4_bin).
            let charset = expected.split('_').next().unwrap_or(&expected);
            let column_type = fk
                .column_type
                .clone()
                .unwrap_or_else(|| LogicalType::Key.sql_type(Dialect::MySql).to_owned());
            let mut add = format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                q(&fk.table),
                q(&fk.name),
                q(&fk.column),
                q(&fk.references_table),
                q(&fk.references_column)
            );
            if let Some(rule) = &fk.on_delete {
                add.push_str(&format!(" ON DELETE {rule}"));
            }
            if let Some(rule) = &fk.on_update {
                add.push_str(&format!(" ON UPDATE {rule}"));
            }
            Some(CollationMismatch {
                statements: vec![
                    format!(
                        "ALTER TABLE {} DROP FOREIGN KEY {}",
                        q(&fk.table),
                        q(&fk.name)
                    ),
                    format!(
                        "ALTER TABLE {} MODIFY {} {column_type} CHARACTER SET {charset} \
                         COLLATE {expected} {}",
                        q(&fk.table),
                        q(&fk.column),
                        if fk.nullable { "NULL" } else { "NOT NULL" }
                    ),
                    add,
                ],
                foreign_key: fk.clone(),
                expected,
            })
        })
        .collect()
}

/// What a database needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No Sandkit table exists: the full schema.
    Absent,
    /// Everything is in place.
    UpToDate,
    /// Some of the schema exists: what is missing.
    Upgrade(Upgrade),
}

/// The steps that bring a database to the current schema, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The database's dialect.
    pub dialect: Dialect,
    /// Session settings the statements rely on.
    pub preamble: Vec<String>,
    /// Conversions of the original's column types and collations to ours.
    pub normalize: Vec<String>,
    /// Tables to create.
    pub create_tables: Vec<&'static str>,
    /// Columns to add (table, column).
    pub add_columns: Vec<(&'static str, &'static str)>,
    /// Indexes to create (table, index).
    pub create_indexes: Vec<(&'static str, &'static str)>,
    /// Whether to move the original's state into the added columns.
    pub move_data: bool,
}

impl Upgrade {
    /// One line per kind of step, for people.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.normalize.is_empty() {
            lines.push(format!(
                "convert the original schema's column types ({} statement{})",
                self.normalize.len(),
                plural(self.normalize.len())
            ));
        }
        if !self.create_tables.is_empty() {
            lines.push(format!("create {}", self.create_tables.join(", ")));
        }
        let mut by_table: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (table, column) in &self.add_columns {
            by_table.entry(table).or_default().push(column);
        }
        for (table, columns) in by_table {
            lines.push(format!(
                "add {} column{} to {table} ({})",
                columns.len(),
                plural(columns.len()),
                columns.join(", ")
            ));
        }
        if !self.create_indexes.is_empty() {
            let names: Vec<&str> = self.create_indexes.iter().map(|(_, i)| *i).collect();
            lines.push(format!("create indexes {}", names.join(", ")));
        }
        if self.move_data {
            lines.push(
                "move the TypeScript Sandkit's state (metadata[\"sandkit:…\"], run commits, \
                 setup states) into the new columns"
                    .to_owned(),
            );
        }
        lines
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What `state` needs to reach the current schema.
pub fn plan(dialect: Dialect, state: &DatabaseState) -> Plan {
    let schema = sandkit_schema();
    if schema
        .tables
        .iter()
        .all(|t| !state.tables.contains_key(t.name))
    {
        return Plan::Absent;
    }
    let mut upgrade = Upgrade {
        dialect,
        preamble: Vec::new(),
        normalize: Vec::new(),
        create_tables: Vec::new(),
        add_columns: Vec::new(),
        create_indexes: Vec::new(),
        move_data: false,
    };
    if dialect == Dialect::MySql {
        convert_collations(&schema.tables, state, &mut upgrade.normalize);
    }
    for table in &schema.tables {
        let Some(existing) = state.tables.get(table.name) else {
            upgrade.create_tables.push(table.name);
            continue;
        };
        for column in &table.columns {
            match existing.columns.get(column.name) {
                Some(found) => {
                    if let Some(sql) = normalize(dialect, table, column, found) {
                        upgrade.normalize.push(sql);
                    }
                }
                None => {
                    upgrade.add_columns.push((table.name, column.name));
                    upgrade.move_data |= column.since > ORIGINAL_VERSION;
                }
            }
        }
        for index in &table.indexes {
            if !existing.indexes.contains(index.name) {
                upgrade.create_indexes.push((table.name, index.name));
            }
        }
    }
    if dialect == Dialect::MySql && upgrade.normalize.iter().any(|s| s.contains("datetime(3)")) {
        // `timestamp` values convert through the session time zone; keep them UTC.
        upgrade.preamble.push("SET time_zone = '+00:00'".to_owned());
    }
    let nothing = upgrade.normalize.is_empty()
        && upgrade.create_tables.is_empty()
        && upgrade.add_columns.is_empty()
        && upgrade.create_indexes.is_empty();
    if nothing {
        Plan::UpToDate
    } else {
        Plan::Upgrade(upgrade)
    }
}

/// The statement converting one existing column to the model's type, if it differs
/// in a way that matters.
fn normalize(
    dialect: Dialect,
    table: &Table,
    column: &Column,
    found: &ColumnState,
) -> Option<String> {
    let ty = found.data_type.as_str();
    let t = dialect.quote(table.name);
    let c = dialect.quote(column.name);
    match dialect {
        Dialect::Sqlite => (column.ty == LogicalType::Timestamp && found.integer_values).then(|| {
            format!(
                "UPDATE {t} SET {c} = strftime('%Y-%m-%dT%H:%M:%fZ', {c} / 1000.0, 'unixepoch') \
                 WHERE typeof({c}) = 'integer'"
            )
        }),
        Dialect::Postgres => match column.ty {
            LogicalType::Timestamp if ty == "timestamp without time zone" => Some(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} TYPE timestamp with time zone USING {c} AT TIME ZONE 'UTC'"
            )),
            LogicalType::Key if ty == "text" && found.collation.as_deref() != Some("C") => Some(
                format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE text COLLATE \"C\""),
            ),
            LogicalType::Json if ty == "json" => Some(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} TYPE jsonb USING {c}::jsonb"
            )),
            _ => None,
        },
        Dialect::MySql => {
            let convert = match column.ty {
                LogicalType::Timestamp
                    if ty == "timestamp"
                        || (ty == "datetime" && found.datetime_precision.unwrap_or(0) < 3) =>
                {
                    true
                }
                LogicalType::Short => ty.ends_with("text"),
                LogicalType::LongText => matches!(ty, "tinytext" | "text" | "mediumtext"),
                _ => false,
            };
            convert.then(|| {
                format!(
                    "ALTER TABLE {t} MODIFY {c} {} {}",
                    column.ty.sql_type(dialect),
                    if column.nullable { "NULL" } else { "NOT NULL" }
                )
            })
        }
    }
}

/// MySQL: tables not in `utf8mb4_bin` are converted (ids then compare byte by byte).
/// The foreign keys between Sandkit's tables are dropped meanwhile and re-created
/// (MariaDB refuses to convert a column a foreign key joins). When an application's
/// table references a Sandkit table, the tables keep their collation rather than break
/// that key.
fn convert_collations(tables: &[Table], state: &DatabaseState, out: &mut Vec<String>) {
    let convert: Vec<&str> = tables
        .iter()
        .filter(|t| {
            state
                .tables
                .get(t.name)
                .is_some_and(|s| s.collation.as_deref() != Some("utf8mb4_bin"))
        })
        .map(|t| t.name)
        .collect();
    let ours = |table: &str| tables.iter().any(|t| t.name == table);
    if convert.is_empty() || state.foreign_keys.iter().any(|fk| !ours(&fk.table)) {
        return;
    }
    let q = |name: &str| Dialect::MySql.quote(name);
    for fk in &state.foreign_keys {
        out.push(format!(
            "ALTER TABLE {} DROP FOREIGN KEY {}",
            q(&fk.table),
            q(&fk.name)
        ));
    }
    for table in convert {
        out.push(format!(
            "ALTER TABLE {} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            q(table)
        ));
    }
    for fk in &state.foreign_keys {
        out.push(format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
            q(&fk.table),
            q(&fk.name),
            q(&fk.column),
            q(&fk.references_table),
            q(&fk.references_column)
        ));
    }
}

/// The state of a database that has exactly the current schema (for tests and for
/// checking the planner against itself).
pub fn current_state(dialect: Dialect) -> DatabaseState {
    let schema = sandkit_schema();
    let mut state = DatabaseState::default();
    for table in &schema.tables {
        let columns = table
            .columns
            .iter()
            .map(|c| {
                let full = c.ty.sql_type(dialect);
                let data_type = full.split([' ', '(']).next().unwrap_or(full);
                let data_type = match (dialect, c.ty) {
                    (Dialect::Postgres, LogicalType::Timestamp) => "timestamp with time zone",
                    _ => data_type,
                };
                let state = ColumnState {
                    data_type: data_type.to_owned(),
                    collation: match (dialect, c.ty) {
                        (Dialect::Postgres, LogicalType::Key) => Some("C".to_owned()),
                        (
                            Dialect::MySql,
                            LogicalType::Key
                            | LogicalType::Short
                            | LogicalType::Text
                            | LogicalType::LongText,
                        ) => Some("utf8mb4_bin".to_owned()),
                        _ => None,
                    },
                    nullable: c.nullable,
                    datetime_precision: (dialect == Dialect::MySql
                        && c.ty == LogicalType::Timestamp)
                        .then_some(3),
                    integer_values: false,
                };
                (c.name.to_owned(), state)
            })
            .collect();
        state.tables.insert(
            table.name.to_owned(),
            TableState {
                columns,
                indexes: table.indexes.iter().map(|i| i.name.to_owned()).collect(),
                collation: (dialect == Dialect::MySql).then(|| "utf8mb4_bin".to_owned()),
            },
        );
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_current_is_up_to_date() {
        for dialect in Dialect::ALL {
            assert_eq!(plan(dialect, &DatabaseState::default()), Plan::Absent);
            assert_eq!(plan(dialect, &current_state(dialect)), Plan::UpToDate);
        }
    }

    #[test]
    fn original_columns_only_get_added_columns_indexes_and_the_data_move() {
        let mut state = current_state(Dialect::Postgres);
        for (name, table) in &mut state.tables {
            let model = sandkit_schema();
            let model = model.table(name).expect("model table").clone();
            table
                .columns
                .retain(|c, _| model.column(c).is_some_and(|c| c.since == 1));
            table.indexes.clear();
        }
        state.tables.remove("sandkit_setup_states");
        let Plan::Upgrade(upgrade) = plan(Dialect::Postgres, &state) else {
            panic!("an upgrade");
        };
        assert_eq!(upgrade.create_tables, ["sandkit_setup_states"]);
        assert!(
            upgrade
                .add_columns
                .contains(&("sandkit_workspaces", "revision"))
        );
        assert!(
            upgrade
                .add_columns
                .contains(&("sandkit_runs", "idempotency_key"))
        );
        assert_eq!(upgrade.create_indexes.len(), 8);
        assert!(upgrade.move_data);
        assert!(upgrade.normalize.is_empty());
        let summary = upgrade.summary().join("\n");
        assert!(summary.contains("create sandkit_setup_states"), "{summary}");
    }

    #[test]
    fn original_types_are_converted() {
        let mut state = current_state(Dialect::MySql);
        let ws = state.tables.get_mut("sandkit_workspaces").expect("table");
        ws.collation = Some("utf8mb4_general_ci".into());
        ws.columns.get_mut("createdAt").expect("column").data_type = "timestamp".into();
        state.foreign_keys.push(ForeignKeyState {
            name: "fk".into(),
            table: "sandkit_runs".into(),
            column: "workspace_id".into(),
            references_table: "sandkit_workspaces".into(),
            references_column: "id".into(),
            ..ForeignKeyState::default()
        });
        let Plan::Upgrade(upgrade) = plan(Dialect::MySql, &state) else {
            panic!("an upgrade");
        };
        assert_eq!(
            upgrade.normalize,
            [
                "ALTER TABLE `sandkit_runs` DROP FOREIGN KEY `fk`",
                "ALTER TABLE `sandkit_workspaces` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                "ALTER TABLE `sandkit_runs` ADD CONSTRAINT `fk` FOREIGN KEY (`workspace_id`) REFERENCES `sandkit_workspaces` (`id`)",
                "ALTER TABLE `sandkit_workspaces` MODIFY `createdAt` datetime(3) NOT NULL",
            ]
        );
        assert_eq!(upgrade.preamble, ["SET time_zone = '+00:00'"]);
        assert!(!upgrade.move_data);

        // An application table referencing ours keeps the collation as it is.
        state.foreign_keys[0].table = "app_jobs".into();
        let Plan::Upgrade(upgrade) = plan(Dialect::MySql, &state) else {
            panic!("an upgrade");
        };
        assert_eq!(upgrade.normalize.len(), 1);
    }

    #[test]
    fn an_application_key_with_another_collation_gets_the_statements_that_fix_it() {
        let mut state = current_state(Dialect::MySql);
        let app_key = ForeignKeyState {
            name: "app_jobs_ws_fk".into(),
            table: "app_jobs".into(),
            column: "workspace_id".into(),
            references_table: "sandkit_workspaces".into(),
            references_column: "id".into(),
            column_type: Some("varchar(255)".into()),
            collation: Some("utf8mb4_general_ci".into()),
            nullable: false,
            on_delete: Some("CASCADE".into()),
            on_update: Some("RESTRICT".into()),
        };
        state.foreign_keys.push(app_key.clone());
        // Sandkit's own keys are the plan's business, never warned about.
        state.foreign_keys.push(ForeignKeyState {
            table: "sandkit_runs".into(),
            collation: Some("latin1_swedish_ci".into()),
            ..app_key.clone()
        });
        let found = collation_mismatches(Dialect::MySql, &state);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].expected, "utf8mb4_bin");
        assert_eq!(
            found[0].statements,
            [
                "ALTER TABLE `app_jobs` DROP FOREIGN KEY `app_jobs_ws_fk`",
                "ALTER TABLE `app_jobs` MODIFY `workspace_id` varchar(255) CHARACTER SET utf8mb4 \
                 COLLATE utf8mb4_bin NOT NULL",
                "ALTER TABLE `app_jobs` ADD CONSTRAINT `app_jobs_ws_fk` FOREIGN KEY (`workspace_id`) \
                 REFERENCES `sandkit_workspaces` (`id`) ON DELETE CASCADE ON UPDATE RESTRICT",
            ]
        );
        let message = found[0].message();
        assert!(
            message.contains("utf8mb4_general_ci")
                && message.contains("\n  ALTER TABLE `app_jobs` MODIFY"),
            "{message}"
        );

        // A matching collation, or another dialect, is fine.
        state.foreign_keys[0].collation = Some("utf8mb4_bin".into());
        assert!(collation_mismatches(Dialect::MySql, &state).is_empty());
        assert!(collation_mismatches(Dialect::Postgres, &state).is_empty());
    }
}
