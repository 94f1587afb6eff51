//! `sandkit generate`: Sandkit's schema for a project that keeps its own migrations
//! (SeaORM entities and migration, or SQL), or the upgrade an existing database needs.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use sandkit_codegen::{
    Adapter, Dialect, Discovery, GeneratedFile, Layout, Plan, SCHEMA_VERSION, StepsInput,
    WriteOutcome,
};
use sandkit_core::{Error, ErrorKind, Result};

/// Examples shown by `sandkit generate --help`.
pub const EXAMPLES: &str = "Examples:
  sandkit generate                                  # discover the project, write files
  sandkit generate --adapter sql --dialect postgres --stdout
  sandkit generate --adapter seaorm --database-url postgres://app@db/app

Without --adapter: seaorm when Cargo.toml depends on sea-orm, else sql. Without --dialect,
the dialect comes from --database-url or the project (Cargo.toml sea-orm/sqlx features,
DATABASE_URL in .env or the environment); when that is unclear, sandkit asks on a
terminal and fails otherwise. (--dialect, not --provider: --provider picks where
sandboxes run.)

Output: sql → sandkit.<dialect>.sql (sandkit.<dialect>.upgrade.sql for an upgrade);
seaorm → the migration in migration/src/ and the entities in src/entities/sandkit/ (in a
workspace: the member crates that depend on sea-orm-migration and sea-orm; with --out
DIR: DIR and DIR/entities). Files that differ are kept unless --force. Afterwards it
prints every line to add by hand, in which file, and how to apply and check the schema
(`sandkit migrate --check --database URL`).";

/// `sandkit generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to generate: seaorm or sql [default: seaorm when the project uses sea-orm]
    #[arg(long, value_parser = ["seaorm", "sql"])]
    pub adapter: Option<String>,
    /// SQL dialect: sqlite, postgres or mysql [default: discovered]
    #[arg(long, value_name = "DIALECT", value_parser = ["sqlite", "postgres", "mysql"])]
    pub dialect: Option<String>,
    /// Where to write: the SQL file, or the migration directory for seaorm
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Print the output instead of writing files
    #[arg(long, conflicts_with_all = ["out", "force"])]
    pub stdout: bool,
    /// Generate only what this existing database lacks (nothing, everything or an upgrade)
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Replace files whose contents differ
    #[arg(long)]
    pub force: bool,
}

/// Runs `sandkit generate` in the current directory.
pub async fn run(args: &GenerateArgs) -> Result<i32> {
    let dir = std::env::current_dir().map_err(|e| {
        Error::storage(format!(
            "cannot read the current directory: {e}; run from the project directory"
        ))
    })?;
    let explicit_adapter: Option<Adapter> = args.adapter.as_deref().map(str::parse).transpose()?;
    let explicit_dialect: Option<Dialect> = args.dialect.as_deref().map(str::parse).transpose()?;

    let (database_dialect, plan) = match &args.database_url {
        Some(url) => {
            let (dialect, state) = sandkit_codegen::introspect(url).await?;
            if let Some(wanted) = explicit_dialect.filter(|d| *d != dialect) {
                return Err(Error::invalid_input(format!(
                    "--dialect {wanted} does not match the {dialect} database of --database-url; \
                     drop --dialect or fix the URL"
                )));
            }
            let plan = sandkit_codegen::plan(dialect, &state);
            eprintln!(
                "sandkit: the {} database {}",
                dialect.display_name(),
                describe(&plan)
            );
            for mismatch in sandkit_codegen::collation_mismatches(dialect, &state) {
                eprintln!("sandkit: warning: {}", mismatch.message());
            }
            (Some(dialect), plan)
        }
        None => (None, Plan::Absent),
    };
    if plan == Plan::UpToDate {
        outln!(
            "sandkit: the database is up to date (schema version {SCHEMA_VERSION}); nothing to generate"
        );
        return Ok(0);
    }

    let mut discovery: Option<Discovery> = None;
    let mut discovered = |dir: &Path| -> Result<Discovery> {
        if let Some(found) = &discovery {
            return Ok(found.clone());
        }
        let found = sandkit_codegen::discover(dir)?;
        eprint!("sandkit: looked at {}:\n{}", dir.display(), found.report());
        discovery = Some(found.clone());
        Ok(found)
    };

    let adapter = match explicit_adapter {
        Some(adapter) => adapter,
        None => {
            let found = discovered(&dir)?;
            let adapter = if found.uses_seaorm {
                Adapter::SeaOrm
            } else {
                Adapter::Sql
            };
            match &found.seaorm_source {
                Some(source) => {
                    eprintln!("sandkit: adapter {adapter} ({source} depends on sea-orm)")
                }
                None => eprintln!(
                    "sandkit: adapter {adapter} (no Cargo.toml depends on sea-orm; \
                     --adapter seaorm for SeaORM output)"
                ),
            }
            adapter
        }
    };
    // A SeaORM migration for the full schema runs on every backend; SQL and upgrades
    // are for one dialect.
    let dialect = match (database_dialect.or(explicit_dialect), adapter) {
        (Some(dialect), _) => dialect,
        (None, Adapter::SeaOrm) => Dialect::Sqlite,
        (None, Adapter::Sql) => {
            let found = discovered(&dir)?;
            match found.confident_dialect() {
                Some(dialect) => dialect,
                None => ask_dialect(&found)?,
            }
        }
    };

    let layout = match (adapter, args.out.as_deref()) {
        (Adapter::SeaOrm, None) => seaorm_layout(&dir, &discovered(&dir)?),
        (_, out) => layout(adapter, out),
    };
    let steps_dialect = database_dialect.or(explicit_dialect).or(match adapter {
        Adapter::Sql => Some(dialect),
        Adapter::SeaOrm => discovery.as_ref().and_then(Discovery::confident_dialect),
    });
    let mut files = sandkit_codegen::render(adapter, dialect, &plan, &layout)?;
    if let Err(e) = sandkit_codegen::format_files(&mut files) {
        if e.kind() != &ErrorKind::Unsupported {
            return Err(e);
        }
        eprintln!("sandkit: warning: {e}; the Rust files are written unformatted");
    }
    if args.stdout {
        print_files(&files);
        return Ok(0);
    }
    let outcomes = sandkit_codegen::write_files(&dir, &files, args.force)?;
    report(&outcomes, &dir);
    next_steps(&StepsInput {
        adapter,
        dialect: steps_dialect,
        plan: &plan,
        layout: &layout,
        files: &files,
        database_url: args.database_url.as_deref(),
        project: Some(&dir),
    });
    Ok(0)
}

fn describe(plan: &Plan) -> String {
    match plan {
        Plan::Absent => "has no Sandkit tables: generating the full schema".to_owned(),
        Plan::UpToDate => "is up to date".to_owned(),
        Plan::Upgrade(upgrade) => {
            let mut text = "needs an upgrade:".to_owned();
            for line in upgrade.summary() {
                text.push_str("\n  * ");
                text.push_str(&line);
            }
            text
        }
    }
}

/// Asks for the dialect on a terminal; fails with the evidence otherwise.
fn ask_dialect(found: &Discovery) -> Result<Dialect> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(found.unclear_error());
    }
    let suggestion = found.dialect.map(|d| format!(" [{d}]")).unwrap_or_default();
    out!("Which SQL dialect does this project use? sqlite, postgres or mysql{suggestion}: ");
    std::io::stdout()
        .flush()
        .map_err(|e| Error::storage(format!("cannot write to the terminal: {e}")))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::storage(format!("cannot read the answer: {e}")))?;
    match (answer.trim(), found.dialect) {
        ("", Some(suggested)) => Ok(suggested),
        ("", None) => Err(found.unclear_error()),
        (raw, _) => raw.parse(),
    }
}

fn layout(adapter: Adapter, out: Option<&Path>) -> Layout {
    let mut layout = Layout::default();
    if let Some(out) = out {
        let out = out.to_string_lossy().into_owned();
        match adapter {
            Adapter::Sql => layout.sql_file = Some(out),
            Adapter::SeaOrm => {
                layout.entity_dir = format!("{}/entities", out.trim_end_matches('/'));
                layout.migration_dir = out;
            }
        }
    }
    layout
}

/// SeaORM output where the project keeps it: the migration crate discovery found
/// (`migration/` or a workspace member depending on sea-orm-migration) and the crate
/// depending on sea-orm (the root, or a workspace member).
fn seaorm_layout(dir: &Path, found: &Discovery) -> Layout {
    let mut layout = Layout::default();
    let relative = |path: &Path| {
        path.strip_prefix(dir)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    };
    if let Some(krate) = &found.migration_crate {
        layout.migration_dir = format!("{}/src", relative(krate));
    }
    if let Some(krate) = found.entity_crate.as_deref().map(relative)
        && !krate.is_empty()
    {
        layout.entity_dir = format!("{krate}/{}", layout.entity_dir);
    }
    layout
}

fn print_files(files: &[GeneratedFile]) {
    if let [only] = files {
        out!("{}", only.contents);
        return;
    }
    for file in files {
        let marker = match file.language {
            sandkit_codegen::Language::Rust => "//",
            sandkit_codegen::Language::Sql => "--",
        };
        outln!("{marker} ==> {} <==", file.path);
        out!("{}", file.contents);
        outln!();
    }
}

fn report(outcomes: &[WriteOutcome], dir: &Path) {
    let shown = |path: &Path| path.strip_prefix(dir).unwrap_or(path).display().to_string();
    if outcomes
        .iter()
        .all(|o| matches!(o, WriteOutcome::UpToDate(_)))
    {
        outln!("sandkit: up to date ({} files unchanged)", outcomes.len());
        return;
    }
    for outcome in outcomes {
        let verdict = match outcome {
            WriteOutcome::Created(_) => "created",
            WriteOutcome::Replaced(_) => "replaced",
            WriteOutcome::UpToDate(_) => "up to date",
        };
        outln!("sandkit: {verdict} {}", shown(outcome.path()));
    }
}

/// Prints every step left to do by hand, numbered.
fn next_steps(input: &StepsInput<'_>) {
    let steps = sandkit_codegen::next_steps(input);
    if steps.is_empty() {
        return;
    }
    eprintln!("sandkit: next steps:");
    for (n, step) in steps.iter().enumerate() {
        eprintln!("  {}. {step}", n + 1);
    }
}
