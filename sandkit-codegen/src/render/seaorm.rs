//! `seaorm` output: entity modules, the adapter's migrations, and migrations for an
//! application's own `Migrator`.

use sandkit_core::Result;
use serde::Serialize;

use super::sql::{mysql_reference_type, split_statements};
use super::{render, sql_upgrade, value};
use crate::dialect::Dialect;
use crate::output::GeneratedFile;
use crate::plan::Upgrade;
use crate::schema::{Column, DefaultValue, ORIGINAL_VERSION, Schema, Table, sandkit_schema};
use crate::types::LogicalType;

/// Where the adapter keeps its entity modules (relative to its crate).
pub const ADAPTER_ENTITY_DIR: &str = "src/entity";
/// Where the adapter keeps its migrations (relative to its crate).
pub const ADAPTER_MIGRATION_DIR: &str = "src/migration";
/// Module name of the full-schema migration for an application's `Migrator`.
pub const SCHEMA_MIGRATION: &str = "m20260801_000001_sandkit_schema_v2";
/// Module name of the upgrade migration for an application's `Migrator`.
pub const UPGRADE_MIGRATION: &str = "m20260801_000002_sandkit_upgrade_v2";

const ADAPTER_CREATE: &str = "m20260801_000001_create_sandkit_tables";
const ADAPTER_ADD: &str = "m20260801_000002_add_sandkit_state_columns";

/// `sandkit_workspaces` → `SandkitWorkspaces`; `sandbox_id` → `SandboxId`.
fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A Rust string literal.
fn literal(text: &str) -> String {
    format!("{text:?}")
}

#[derive(Debug, Serialize)]
struct EntityView {
    name: &'static str,
    module: &'static str,
    noun: &'static str,
    comment: &'static str,
    fields: Vec<FieldView>,
    relations: Vec<RelationView>,
}

#[derive(Debug, Serialize)]
struct FieldView {
    field: &'static str,
    rust_type: String,
    attrs: Option<String>,
    comment: &'static str,
}

#[derive(Debug, Serialize)]
struct RelationView {
    variant: &'static str,
    doc: &'static str,
    belongs_to: bool,
    module: &'static str,
    from: String,
    to: String,
}

fn field_view(table: &Table, column: &Column) -> FieldView {
    let mut attrs = Vec::new();
    if column.name == table.primary_key {
        attrs.push("primary_key, auto_increment = false".to_owned());
    }
    if column.name != column.field {
        attrs.push(format!("column_name = {}", literal(column.name)));
    }
    if let Some(ty) = column.ty.seaorm_column_type() {
        attrs.push(format!("column_type = {}", literal(ty)));
    }
    if column.nullable {
        attrs.push("nullable".to_owned());
    }
    let rust_type = if column.nullable {
        format!("Option<{}>", column.ty.rust_type())
    } else {
        column.ty.rust_type().to_owned()
    };
    FieldView {
        field: column.field,
        rust_type,
        attrs: (!attrs.is_empty()).then(|| attrs.join(", ")),
        comment: column.comment,
    }
}

fn entity_view(schema: &Schema, table: &Table) -> EntityView {
    let module_of = |name: &str| schema.table(name).map(|t| t.module).unwrap_or_default();
    let field_of = |table: &Table, column: &str| {
        upper_camel(table.column(column).map(|c| c.field).unwrap_or(column))
    };
    let mut relations: Vec<RelationView> = table
        .foreign_keys
        .iter()
        .map(|fk| RelationView {
            variant: fk.relation,
            doc: fk.relation_doc,
            belongs_to: true,
            module: module_of(fk.references_table),
            from: field_of(table, fk.column),
            to: schema
                .table(fk.references_table)
                .map(|t| field_of(t, fk.references_column))
                .unwrap_or_default(),
        })
        .collect();
    relations.extend(
        schema
            .references_to(table.name)
            .map(|(child, fk)| RelationView {
                variant: fk.inverse,
                doc: fk.inverse_doc,
                belongs_to: false,
                module: child.module,
                from: String::new(),
                to: String::new(),
            }),
    );
    EntityView {
        name: table.name,
        module: table.module,
        noun: table.noun,
        comment: table.comment,
        fields: table.columns.iter().map(|c| field_view(table, c)).collect(),
        relations,
    }
}

/// The entity modules (`mod.rs` plus one per table), under `dir`. `application`: for
/// an application's project, where unused entities must not warn.
fn entities(
    schema: &Schema,
    dir: &str,
    regenerate: &str,
    application: bool,
) -> Result<Vec<GeneratedFile>> {
    let mut files = vec![GeneratedFile::rust(
        format!("{dir}/mod.rs"),
        render(
            "seaorm/entity_mod.rs.j2",
            minijinja::context! {
                version => schema.version,
                regenerate => regenerate,
                application => application,
                tables => value(&schema.tables),
            },
        )?,
    )];
    for table in &schema.tables {
        files.push(GeneratedFile::rust(
            format!("{dir}/{}.rs", table.module),
            render(
                "seaorm/entity.rs.j2",
                minijinja::context! { t => value(&entity_view(schema, table)) },
            )?,
        ));
    }
    Ok(files)
}

/// A logical type's row of the type table.
#[derive(Debug, Serialize)]
struct TypeView {
    builder: &'static str,
    doc: &'static str,
    label: &'static str,
    sqlite: String,
    postgres: String,
    mysql: String,
    sqlite_raw: &'static str,
    postgres_raw: &'static str,
    mysql_raw: &'static str,
}

fn type_label(ty: LogicalType) -> &'static str {
    match ty {
        LogicalType::Key => "key (ids, tokens)",
        LogicalType::Short => "short (enums)",
        LogicalType::Text => "text",
        LogicalType::LongText => "long text (output)",
        LogicalType::Json => "json",
        LogicalType::Timestamp => "timestamp (UTC, ms)",
        LogicalType::BigInteger => "big integer",
        LogicalType::Integer => "integer",
        LogicalType::Boolean => "boolean",
    }
}

/// The logical types the schema uses, in type-table order.
fn types(schema: &Schema) -> Vec<TypeView> {
    LogicalType::ALL
        .into_iter()
        .filter(|ty| {
            schema
                .tables
                .iter()
                .any(|t| t.columns.iter().any(|c| c.ty == *ty))
        })
        .map(|ty| TypeView {
            builder: ty.builder(),
            doc: ty.doc(),
            label: type_label(ty),
            sqlite: literal(ty.sql_type(Dialect::Sqlite)),
            postgres: literal(ty.sql_type(Dialect::Postgres)),
            mysql: literal(ty.sql_type(Dialect::MySql)),
            sqlite_raw: ty.sql_type(Dialect::Sqlite),
            postgres_raw: ty.sql_type(Dialect::Postgres),
            mysql_raw: ty.sql_type(Dialect::MySql),
        })
        .collect()
}

/// A table as the migration templates see it (a subset of its columns).
#[derive(Debug, Serialize)]
struct MigrationTableView {
    enum_name: String,
    var: &'static str,
    columns: Vec<MigrationColumnView>,
    foreign_keys: Vec<MigrationForeignKeyView>,
}

#[derive(Debug, Serialize)]
struct MigrationColumnView {
    variant: String,
    iden: Option<&'static str>,
    def: String,
    added: bool,
}

#[derive(Debug, Serialize)]
struct MigrationForeignKeyView {
    name: &'static str,
    from: String,
    to_enum: String,
    to: String,
}

#[derive(Debug, Serialize)]
struct IndexView {
    table: &'static str,
    enum_name: String,
    name: &'static str,
    name_expr: String,
    columns: Vec<String>,
    unique: bool,
    constant: Option<&'static str>,
    comment: &'static str,
}

/// `c.json(SandkitWorkspaces::Policy).null()` and friends.
fn column_def(enum_name: &str, table: &Table, column: &Column) -> String {
    let mut def = format!(
        "c.{}({enum_name}::{})",
        column.ty.builder(),
        upper_camel(column.field)
    );
    def.push_str(if column.nullable {
        ".null()"
    } else {
        ".not_null()"
    });
    match column.default {
        Some(DefaultValue::Text(text)) => def.push_str(&format!(".default({})", literal(text))),
        Some(DefaultValue::Integer(n)) => def.push_str(&format!(".default({n})")),
        Some(DefaultValue::Bool(b)) => def.push_str(&format!(".default({b})")),
        None => {}
    }
    if column.name == table.primary_key {
        def.push_str(".primary_key()");
    }
    def
}

/// A migration's view of `table`: the columns `keep` selects, `added` marking those the
/// migration adds.
fn migration_table(
    schema: &Schema,
    table: &Table,
    keep: impl Fn(&Column) -> bool,
    added: impl Fn(&Column) -> bool,
    with_foreign_keys: bool,
) -> MigrationTableView {
    let enum_name = upper_camel(table.name);
    let columns = table
        .columns
        .iter()
        .filter(|c| keep(c))
        .map(|c| MigrationColumnView {
            variant: upper_camel(c.field),
            iden: (c.name != c.field).then_some(c.name),
            def: column_def(&enum_name, table, c),
            added: added(c),
        })
        .collect();
    let foreign_keys = if with_foreign_keys {
        table
            .foreign_keys
            .iter()
            .map(|fk| MigrationForeignKeyView {
                name: fk.name,
                from: upper_camel(fk.column),
                to_enum: upper_camel(fk.references_table),
                to: upper_camel(
                    schema
                        .table(fk.references_table)
                        .and_then(|t| t.column(fk.references_column))
                        .map(|c| c.field)
                        .unwrap_or(fk.references_column),
                ),
            })
            .collect()
    } else {
        Vec::new()
    };
    MigrationTableView {
        enum_name,
        var: table.module,
        columns,
        foreign_keys,
    }
}

fn index_views(schema: &Schema, since: impl Fn(u32) -> bool) -> Vec<IndexView> {
    schema
        .tables
        .iter()
        .flat_map(|t| t.indexes.iter().map(move |i| (t, i)))
        .filter(|(_, i)| since(i.since))
        .map(|(t, i)| IndexView {
            table: t.name,
            enum_name: upper_camel(t.name),
            name: i.name,
            name_expr: i.constant.map_or_else(|| literal(i.name), str::to_owned),
            columns: i
                .columns
                .iter()
                .map(|c| upper_camel(t.column(c).map(|c| c.field).unwrap_or(c)))
                .collect(),
            unique: i.unique,
            constant: i.constant,
            comment: i.comment,
        })
        .collect()
}

fn table_list(schema: &Schema) -> String {
    let names: Vec<String> = schema
        .tables
        .iter()
        .map(|t| format!("`{}`", t.name))
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// The adapter's checked-in sources: its entity modules, `migration/columns.rs` and its
/// two migrations, with paths relative to the adapter crate.
///
/// # Errors
/// `Storage` only if a template fails to render (a bug).
pub fn adapter_sources() -> Result<Vec<GeneratedFile>> {
    let schema = sandkit_schema();
    let mut files = entities(&schema, ADAPTER_ENTITY_DIR, "`cargo xtask codegen`", false)?;
    let types = types(&schema);
    files.push(GeneratedFile::rust(
        format!("{ADAPTER_MIGRATION_DIR}/columns.rs"),
        render(
            "seaorm/columns.rs.j2",
            minijinja::context! { types => value(&types) },
        )?,
    ));

    let original: Vec<MigrationTableView> = schema
        .tables
        .iter()
        .map(|t| migration_table(&schema, t, |c| c.since <= ORIGINAL_VERSION, |_| false, true))
        .collect();
    files.push(GeneratedFile::rust(
        format!("{ADAPTER_MIGRATION_DIR}/{ADAPTER_CREATE}.rs"),
        render(
            "seaorm/create_tables.rs.j2",
            minijinja::context! {
                name => ADAPTER_CREATE,
                table_list => table_list(&schema),
                tables => value(&original),
            },
        )?,
    ));

    let indexes = index_views(&schema, |since| since > ORIGINAL_VERSION);
    let added: Vec<MigrationTableView> = schema
        .tables
        .iter()
        .map(|t| {
            let indexed: Vec<&str> = t
                .indexes
                .iter()
                .filter(|i| i.since > ORIGINAL_VERSION)
                .flat_map(|i| i.columns.iter().copied())
                .collect();
            migration_table(
                &schema,
                t,
                |c| c.since > ORIGINAL_VERSION || indexed.contains(&c.name),
                |c| c.since > ORIGINAL_VERSION,
                false,
            )
        })
        .filter(|t| !t.columns.is_empty())
        .collect();
    let foreign_key_indexes: Vec<String> = schema
        .tables
        .iter()
        .flat_map(|t| {
            t.indexes
                .iter()
                .filter(|i| i.since > ORIGINAL_VERSION)
                .filter(move |i| !i.unique && t.is_foreign_key_column(i.columns[0]))
        })
        .map(|i| literal(i.name))
        .collect();
    files.push(GeneratedFile::rust(
        format!("{ADAPTER_MIGRATION_DIR}/{ADAPTER_ADD}.rs"),
        render(
            "seaorm/add_columns.rs.j2",
            minijinja::context! {
                name => ADAPTER_ADD,
                tables => value(&added),
                indexes => value(&indexes),
                foreign_key_indexes => foreign_key_indexes.join(" | "),
            },
        )?,
    ));
    Ok(files)
}

/// For an application's own migration crate: the entity modules under `entity_dir` and
/// one migration creating the whole schema under `migration_dir`.
///
/// # Errors
/// `Storage` only if a template fails to render (a bug).
pub fn seaorm_schema(migration_dir: &str, entity_dir: &str) -> Result<Vec<GeneratedFile>> {
    let schema = sandkit_schema();
    let tables: Vec<MigrationTableView> = schema
        .tables
        .iter()
        .map(|t| migration_table(&schema, t, |_| true, |_| false, true))
        .collect();
    let mut files = vec![GeneratedFile::rust(
        join(migration_dir, &format!("{SCHEMA_MIGRATION}.rs")),
        render(
            "seaorm/schema_migration.rs.j2",
            minijinja::context! {
                version => schema.version,
                name => SCHEMA_MIGRATION,
                table_list => table_list(&schema),
                tables => value(&tables),
                indexes => value(&index_views(&schema, |_| true)),
                types => value(&types(&schema)),
                mysql_reference_type => mysql_reference_type(),
            },
        )?,
    )];
    files.extend(user_entities(&schema, entity_dir)?);
    Ok(files)
}

/// For an application's own migration crate: the entity modules under `entity_dir` and
/// a migration running `upgrade` under `migration_dir`.
///
/// # Errors
/// `Storage` only if a template fails to render (a bug).
pub fn seaorm_upgrade(
    upgrade: &Upgrade,
    migration_dir: &str,
    entity_dir: &str,
) -> Result<Vec<GeneratedFile>> {
    let schema = sandkit_schema();
    let statements: Vec<String> = split_statements(&sql_upgrade(upgrade)?)
        .iter()
        .map(|s| format!("r##\"{s}\"##"))
        .collect();
    let backend = match upgrade.dialect {
        Dialect::Sqlite => "Sqlite",
        Dialect::Postgres => "Postgres",
        Dialect::MySql => "MySql",
    };
    let mut files = vec![GeneratedFile::rust(
        join(migration_dir, &format!("{UPGRADE_MIGRATION}.rs")),
        render(
            "seaorm/upgrade_migration.rs.j2",
            minijinja::context! {
                version => schema.version,
                name => UPGRADE_MIGRATION,
                dialect_name => upgrade.dialect.display_name(),
                backend => backend,
                summary => upgrade.summary(),
                statements => statements,
                mysql => upgrade.dialect == Dialect::MySql,
                mysql_reference_type => mysql_reference_type(),
            },
        )?,
    )];
    files.extend(user_entities(&schema, entity_dir)?);
    Ok(files)
}

/// The entity modules written into an application's project.
fn user_entities(schema: &Schema, entity_dir: &str) -> Result<Vec<GeneratedFile>> {
    entities(
        schema,
        entity_dir,
        "`sandkit generate --adapter seaorm`",
        true,
    )
}

fn join(dir: &str, file: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_to_rust_spelling() {
        assert_eq!(upper_camel("sandkit_setup_states"), "SandkitSetupStates");
        assert_eq!(upper_camel("last_resumed_at"), "LastResumedAt");
        assert_eq!(table_list(&sandkit_schema()).matches('`').count(), 8);
    }
}
