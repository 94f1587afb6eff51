//! Snapshots of every output: SQL and SeaORM, full schema and upgrade, per dialect; and
//! the adapter's checked-in sources must equal what the model renders.

use sandkit_codegen::plan::{ColumnState, DatabaseState, ForeignKeyState, current_state};
use sandkit_codegen::schema::ORIGINAL_VERSION;
use sandkit_codegen::{
    Adapter, Dialect, GeneratedFile, Layout, LogicalType, Plan, format_files, plan, render,
    sandkit_schema,
};

/// The files as one text, each under a header naming it.
fn joined(files: &[GeneratedFile]) -> String {
    files
        .iter()
        .map(|f| format!("==> {} <==\n{}", f.path, f.contents))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rendered(adapter: Adapter, dialect: Dialect, plan: &Plan) -> String {
    let mut files = render(adapter, dialect, plan, &Layout::default()).expect("render");
    format_files(&mut files).expect("rustfmt");
    joined(&files)
}

/// What the TypeScript Sandkit's Drizzle schema looks like to the introspection: the
/// original's columns with its types, no indexes.
fn typescript_state(dialect: Dialect) -> DatabaseState {
    let schema = sandkit_schema();
    let mut state = current_state(dialect);
    for (name, table) in &mut state.tables {
        let model = schema.table(name).expect("model table");
        table.indexes.clear();
        table.collation = (dialect == Dialect::MySql).then(|| "utf8mb4_general_ci".to_owned());
        table.columns.retain(|column, found| {
            let Some(column) = model.column(column).filter(|c| c.since <= ORIGINAL_VERSION) else {
                return false;
            };
            *found = original_column(dialect, column.ty, found.clone());
            true
        });
    }
    if dialect == Dialect::MySql {
        for table in ["sandkit_runs", "sandkit_policies"] {
            state.foreign_keys.push(ForeignKeyState {
                name: format!("{table}_workspace_id_sandkit_workspaces_id_fk"),
                table: table.to_owned(),
                column: "workspace_id".to_owned(),
                references_table: "sandkit_workspaces".to_owned(),
                references_column: "id".to_owned(),
                ..ForeignKeyState::default()
            });
        }
    }
    state
}

fn original_column(dialect: Dialect, ty: LogicalType, mut found: ColumnState) -> ColumnState {
    match (dialect, ty) {
        (Dialect::Sqlite, LogicalType::Timestamp) => {
            found.data_type = "integer".into();
            found.integer_values = true;
        }
        (Dialect::Postgres, LogicalType::Timestamp) => {
            found.data_type = "timestamp without time zone".into();
        }
        (Dialect::Postgres, LogicalType::Key) => found.collation = None,
        (Dialect::MySql, LogicalType::Timestamp) => {
            found.data_type = "timestamp".into();
            found.datetime_precision = Some(0);
        }
        (Dialect::MySql, LogicalType::Short | LogicalType::LongText) => {
            found.data_type = "text".into();
        }
        _ => {}
    }
    found
}

fn typescript_upgrade(dialect: Dialect) -> Plan {
    let planned = plan(dialect, &typescript_state(dialect));
    assert!(matches!(planned, Plan::Upgrade(_)), "{planned:?}");
    planned
}

#[test]
fn sql_schema_per_dialect() {
    for dialect in Dialect::ALL {
        insta::assert_snapshot!(
            format!("sql_schema_{dialect}"),
            rendered(Adapter::Sql, dialect, &Plan::Absent)
        );
    }
}

#[test]
fn sql_upgrade_of_a_typescript_database_per_dialect() {
    for dialect in Dialect::ALL {
        insta::assert_snapshot!(
            format!("sql_upgrade_{dialect}"),
            rendered(Adapter::Sql, dialect, &typescript_upgrade(dialect))
        );
    }
}

#[test]
fn seaorm_schema_is_the_same_for_every_dialect() {
    let outputs: Vec<String> = Dialect::ALL
        .into_iter()
        .map(|d| rendered(Adapter::SeaOrm, d, &Plan::Absent))
        .collect();
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
    insta::assert_snapshot!("seaorm_schema", outputs[0]);
}

#[test]
fn seaorm_upgrade_of_a_typescript_database_per_dialect() {
    for dialect in Dialect::ALL {
        insta::assert_snapshot!(
            format!("seaorm_upgrade_{dialect}"),
            rendered(Adapter::SeaOrm, dialect, &typescript_upgrade(dialect))
        );
    }
}

#[test]
fn an_up_to_date_database_gets_nothing() {
    for dialect in Dialect::ALL {
        for adapter in [Adapter::Sql, Adapter::SeaOrm] {
            let files =
                render(adapter, dialect, &Plan::UpToDate, &Layout::default()).expect("render");
            assert!(files.is_empty(), "{adapter} {dialect}");
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    for dialect in Dialect::ALL {
        let first = rendered(Adapter::Sql, dialect, &typescript_upgrade(dialect));
        let second = rendered(Adapter::Sql, dialect, &typescript_upgrade(dialect));
        assert_eq!(first, second);
    }
}

/// The same check as `cargo xtask codegen --check`: the SeaORM adapter's entity and
/// migration sources are exactly the model's output.
#[test]
fn adapter_sources_match_the_model() {
    let mut files = sandkit_codegen::adapter_sources().expect("render");
    format_files(&mut files).expect("rustfmt");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandkit-adapter-seaorm");
    let differing = sandkit_codegen::output::differing(&root, &files).expect("read");
    assert!(
        differing.is_empty(),
        "run `cargo xtask codegen`: {differing:?} differ from the schema model"
    );
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"src/entity/workspaces.rs"));
    assert!(paths.contains(&"src/migration/columns.rs"));
}
