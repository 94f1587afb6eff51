//! What a person still has to do after the generated files are written: every line
//! to add, in which file, and the commands that apply and check the schema.

use std::fmt;
use std::path::Path;

use crate::dialect::Dialect;
use crate::output::GeneratedFile;
use crate::plan::Plan;
use crate::render::mysql_reference_type;
use crate::{Adapter, Layout, SCHEMA_MIGRATION, UPGRADE_MIGRATION, default_sql_file};

/// The sea-orm / sea-orm-migration major version the generated Rust is written for.
pub const SEA_ORM_VERSION: &str = "2";

/// One thing to do by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStep {
    /// The file to edit, relative to the project directory; `None` for commands to run.
    pub file: Option<String>,
    /// What to do, for people.
    pub what: String,
    /// The lines to add to `file` (or the commands to run), verbatim.
    pub lines: Vec<String>,
}

impl NextStep {
    fn edit(file: impl Into<String>, what: impl Into<String>, lines: Vec<String>) -> Self {
        NextStep {
            file: Some(file.into()),
            what: what.into(),
            lines,
        }
    }

    fn run(what: impl Into<String>, lines: Vec<String>) -> Self {
        NextStep {
            file: None,
            what: what.into(),
            lines,
        }
    }
}

impl fmt::Display for NextStep {
    /// `In FILE: what` (or `Run: what`), then the lines indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "in {file}: {}", self.what)?,
            None => write!(f, "{}", self.what)?,
        }
        for line in &self.lines {
            write!(f, "\n      {line}")?;
        }
        Ok(())
    }
}

/// What generating for `plan` leaves to do.
#[derive(Debug, Clone, Copy)]
pub struct StepsInput<'a> {
    /// The adapter generated for.
    pub adapter: Adapter,
    /// The database's dialect, when known (SeaORM's full schema is for every dialect).
    pub dialect: Option<Dialect>,
    /// What was generated.
    pub plan: &'a Plan,
    /// Where the files went.
    pub layout: &'a Layout,
    /// The generated files.
    pub files: &'a [GeneratedFile],
    /// The database introspected (only a SQLite file's path is ever shown: other URLs
    /// may hold a password).
    pub database_url: Option<&'a str>,
    /// The project directory, to tell whether the entities' parent module exists.
    pub project: Option<&'a Path>,
}

/// Every step left after writing `input.files`, in order (none for an up-to-date
/// database).
pub fn next_steps(input: &StepsInput<'_>) -> Vec<NextStep> {
    if matches!(input.plan, Plan::UpToDate) || input.files.is_empty() {
        return Vec::new();
    }
    match input.adapter {
        Adapter::SeaOrm => seaorm_steps(input),
        Adapter::Sql => sql_steps(input),
    }
}

/// `dir/file`, or `file` for an empty `dir`.
fn join(dir: &str, file: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() || dir == "." {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

/// The parent directory of a `/`-separated path (`""` for a top-level one).
fn parent(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir)
}

/// The last component of a `/`-separated path.
fn last(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The crate directory holding a `…/src` source directory (`None` when `dir` is not
/// a crate's `src`).
fn crate_of(src: &str) -> Option<&str> {
    let src = src.trim_end_matches('/');
    if src == "src" {
        Some("")
    } else {
        src.strip_suffix("/src")
    }
}

fn seaorm_steps(input: &StepsInput<'_>) -> Vec<NextStep> {
    let layout = input.layout;
    let mut steps = Vec::new();
    let migration = [SCHEMA_MIGRATION, UPGRADE_MIGRATION]
        .into_iter()
        .find(|module| {
            let path = join(&layout.migration_dir, &format!("{module}.rs"));
            input.files.iter().any(|f| f.path == path)
        });
    let lib = join(&layout.migration_dir, "lib.rs");
    if let Some(module) = migration {
        steps.push(NextStep::edit(
            &lib,
            "declare the migration's module, next to the other `mod` lines",
            vec![format!("mod {module};")],
        ));
        let order = if matches!(input.plan, Plan::Upgrade(_)) {
            "after the migrations already there (it upgrades what they made)"
        } else {
            "before any migration of yours that references Sandkit's tables"
        };
        steps.push(NextStep::edit(
            &lib,
            format!("add its migration to the vec in `Migrator::migrations()`, {order}"),
            vec![format!("Box::new({module}::Migration),")],
        ));
    }

    // The entities' module is declared in its parent module.
    let entity_dir = layout.entity_dir.trim_end_matches('/');
    let module = last(entity_dir);
    let parent_dir = parent(entity_dir);
    let exists = |path: &str| input.project.is_some_and(|p| p.join(path).is_file());
    let parent_file = match crate_of(parent_dir) {
        Some(krate) => {
            let main = join(&join(krate, "src"), "main.rs");
            if exists(&main) && !exists(&join(&join(krate, "src"), "lib.rs")) {
                main
            } else {
                join(&join(krate, "src"), "lib.rs")
            }
        }
        None => {
            let flat = format!("{parent_dir}.rs");
            if exists(&flat) {
                flat
            } else {
                join(parent_dir, "mod.rs")
            }
        }
    };
    let parent_missing = input.project.is_some() && !exists(&parent_file);
    let what = if parent_missing && crate_of(parent_dir).is_none() {
        format!("create it, declaring the entities' module (the directory {module}/ beside it)")
    } else {
        format!("declare the entities' module (the directory {module}/ beside it)")
    };
    steps.push(NextStep::edit(
        &parent_file,
        what,
        vec![format!("pub mod {module};")],
    ));
    // A parent module that did not exist yet must itself be declared.
    if parent_missing && crate_of(parent_dir).is_none() {
        let grand = parent(parent_dir);
        let name = last(parent_dir);
        let grand_file = match crate_of(grand) {
            Some(krate) => {
                let src = join(krate, "src");
                let main = join(&src, "main.rs");
                if exists(&main) && !exists(&join(&src, "lib.rs")) {
                    main
                } else {
                    join(&src, "lib.rs")
                }
            }
            None => join(grand, "mod.rs"),
        };
        steps.push(NextStep::edit(
            grand_file,
            format!("declare the module {name} (`pub mod` to export it from a library)"),
            vec![format!("mod {name};")],
        ));
    }

    let driver = match input.dialect {
        Some(dialect) => format!("\"{}\"", driver_feature(dialect)),
        None => "\"sqlx-postgres\"".to_owned(),
    };
    let other_drivers = if input.dialect.is_none() {
        " (\"sqlx-sqlite\" or \"sqlx-mysql\" for those databases)"
    } else {
        ""
    };
    if let Some(krate) = crate_of(&layout.migration_dir) {
        steps.push(NextStep::edit(
            join(krate, "Cargo.toml"),
            format!(
                "sea-orm-migration needs your database's driver feature and a runtime \
                 (sea-orm-cli's template has them commented out){other_drivers}"
            ),
            vec![format!(
                "sea-orm-migration = {{ version = \"{SEA_ORM_VERSION}\", features = [{driver}, \
                 \"runtime-tokio-rustls\"] }}"
            )],
        ));
    }
    if let Some(krate) = crate_of(parent(parent_dir)).or_else(|| crate_of(parent_dir)) {
        steps.push(NextStep::edit(
            join(krate, "Cargo.toml"),
            format!(
                "the entities use sea-orm's \"macros\", \"with-json\" and \"with-chrono\" \
                 features (in its default features; list them if you turned those off){other_drivers}"
            ),
            vec![format!(
                "sea-orm = {{ version = \"{SEA_ORM_VERSION}\", features = [{driver}, \
                 \"runtime-tokio-rustls\", \"macros\", \"with-json\", \"with-chrono\"] }}"
            )],
        ));
    }
    let run = match crate_of(&layout.migration_dir) {
        Some(krate) => format!(
            "cargo run --manifest-path {} -- up",
            join(krate, "Cargo.toml")
        ),
        None => "cargo run -p migration -- up".to_owned(),
    };
    steps.push(NextStep::run(
        "run your migrator, then check that the database has the current schema (exits 0 \
         when current, non-zero when behind; Sandkit's own migrate counts this schema as \
         current)",
        vec![run, check_command(input)],
    ));
    if input.dialect.is_none_or(|d| d == Dialect::MySql) {
        steps.push(NextStep::run(
            format!(
                "on MySQL/MariaDB, declare a column of yours that references a Sandkit id as \
                 {} (sea-query: `.custom(Alias::new(\"{}\"))`), or the foreign key fails \
                 with errno 150",
                mysql_reference_type(),
                mysql_reference_type().to_ascii_lowercase()
            ),
            Vec::new(),
        ));
    }
    steps
}

/// sea-orm's driver feature for `dialect`.
fn driver_feature(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "sqlx-sqlite",
        Dialect::Postgres => "sqlx-postgres",
        Dialect::MySql => "sqlx-mysql",
    }
}

/// The SQLite file a `sqlite://` URL names (paths hold no secrets; other URLs might).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then_some(path)
}

/// `sandkit migrate --check --database …`, with the URL only for a SQLite file.
fn check_command(input: &StepsInput<'_>) -> String {
    let database = match input.database_url.and_then(sqlite_path) {
        Some(path) => format!("sqlite://{path}"),
        None => "\"$DATABASE_URL\"".to_owned(),
    };
    format!("sandkit migrate --check --database {database}")
}

/// The command applying `file` with `dialect`'s own client.
pub fn apply_command(dialect: Dialect, file: &str, sqlite_file: Option<&str>) -> String {
    match dialect {
        Dialect::Sqlite => format!(
            "sqlite3 {} < {file}",
            sqlite_file.unwrap_or("PATH/TO/DATABASE.db")
        ),
        Dialect::Postgres => format!("psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -f {file}"),
        Dialect::MySql => {
            format!("mariadb --host HOST --user USER --password DATABASE < {file}")
        }
    }
}

fn sql_steps(input: &StepsInput<'_>) -> Vec<NextStep> {
    let dialect = input.dialect.unwrap_or(Dialect::Sqlite);
    let upgrade = matches!(input.plan, Plan::Upgrade(_));
    let file = input
        .files
        .first()
        .map(|f| f.path.clone())
        .unwrap_or_else(|| default_sql_file(dialect, upgrade));
    let sqlite_file = input.database_url.and_then(sqlite_path);
    let once = if upgrade {
        "apply it once, in one go, to the database it was generated from"
    } else {
        "apply it once to your database"
    };
    let client = match dialect {
        Dialect::Sqlite => "sqlite3",
        Dialect::Postgres => "psql",
        Dialect::MySql => "the mariadb client (or mysql, with the same options)",
    };
    let mut steps = vec![
        NextStep::run(
            format!("{once}: with {client}, or copy it into a migration of your migration tool"),
            vec![apply_command(dialect, &file, sqlite_file)],
        ),
        NextStep::run(
            "check that the database has the current schema (exits 0 when current, \
             non-zero when behind)",
            vec![check_command(input)],
        ),
    ];
    if dialect == Dialect::MySql {
        steps.push(NextStep::run(
            format!(
                "declare a column of yours that references a Sandkit id as {}, or the \
                 foreign key fails with errno 150",
                mysql_reference_type()
            ),
            Vec::new(),
        ));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split() {
        assert_eq!(parent("src/entities/sandkit"), "src/entities");
        assert_eq!(last("src/entities/sandkit/"), "sandkit");
        assert_eq!(crate_of("migration/src"), Some("migration"));
        assert_eq!(crate_of("src"), Some(""));
        assert_eq!(crate_of("src/entities"), None);
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db?mode=rwc"),
            Some("/tmp/a.db")
        );
        assert_eq!(sqlite_path("postgres://u:p@h/db"), None);
    }
}
