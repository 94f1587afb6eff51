//! Rendering the schema model with the embedded minijinja templates.

mod seaorm;
mod sql;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use sandkit_core::{Error, Result};

pub use seaorm::{
    ADAPTER_ENTITY_DIR, ADAPTER_MIGRATION_DIR, SCHEMA_MIGRATION, UPGRADE_MIGRATION,
    adapter_sources, seaorm_schema, seaorm_upgrade,
};
pub(crate) use sql::mysql_reference_type;
pub use sql::{split_statements, sql_schema, sql_upgrade};

/// The templates, embedded at build time (name, source).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "sql/macros.j2",
        include_str!("../../templates/sql/macros.j2"),
    ),
    (
        "sql/schema.sql.j2",
        include_str!("../../templates/sql/schema.sql.j2"),
    ),
    (
        "sql/upgrade.sql.j2",
        include_str!("../../templates/sql/upgrade.sql.j2"),
    ),
    (
        "sql/move_sqlite.sql.j2",
        include_str!("../../templates/sql/move_sqlite.sql.j2"),
    ),
    (
        "sql/move_postgres.sql.j2",
        include_str!("../../templates/sql/move_postgres.sql.j2"),
    ),
    (
        "sql/move_mysql.sql.j2",
        include_str!("../../templates/sql/move_mysql.sql.j2"),
    ),
    (
        "seaorm/macros.rs.j2",
        include_str!("../../templates/seaorm/macros.rs.j2"),
    ),
    (
        "seaorm/entity_mod.rs.j2",
        include_str!("../../templates/seaorm/entity_mod.rs.j2"),
    ),
    (
        "seaorm/entity.rs.j2",
        include_str!("../../templates/seaorm/entity.rs.j2"),
    ),
    (
        "seaorm/columns.rs.j2",
        include_str!("../../templates/seaorm/columns.rs.j2"),
    ),
    (
        "seaorm/create_tables.rs.j2",
        include_str!("../../templates/seaorm/create_tables.rs.j2"),
    ),
    (
        "seaorm/add_columns.rs.j2",
        include_str!("../../templates/seaorm/add_columns.rs.j2"),
    ),
    (
        "seaorm/schema_migration.rs.j2",
        include_str!("../../templates/seaorm/schema_migration.rs.j2"),
    ),
    (
        "seaorm/upgrade_migration.rs.j2",
        include_str!("../../templates/seaorm/upgrade_migration.rs.j2"),
    ),
];

/// A template failure is a bug in sandkit-codegen, never the caller's input.
fn template_error(what: &str, e: minijinja::Error) -> Error {
    let mut message = format!("rendering {what} failed: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    Error::storage(format!(
        "{message}; this is a bug in sandkit-codegen, please report it"
    ))
}

/// The template environment: block tags trimmed, strict about undefined values, no
/// escaping (the outputs are SQL and Rust, not HTML).
fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| template_error("the template syntax", e))?;
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| template_error(name, e))?;
    }
    Ok(env)
}

/// Renders template `name` with `context`.
fn render(name: &str, context: Value) -> Result<String> {
    let env = environment()?;
    let template = env
        .get_template(name)
        .map_err(|e| template_error(name, e))?;
    template
        .render(context)
        .map_err(|e| template_error(name, e))
}

/// Converts a serialisable view into a template value.
fn value<T: serde::Serialize>(view: &T) -> Value {
    Value::from(minijinja::value::Serde(view))
}
