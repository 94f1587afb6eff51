//! `hello`: two durable commands in one workspace, with a restart between them.
//!
//! The first command appends a line to `hello.txt`. Then everything is dropped — the
//! database connection, the provider, the `Sandkit` — as if the process had exited. A
//! fresh `Sandkit` reopens the workspace by id, and the second command reads the file
//! back: the workspace outlived its sandbox, its process and its `Sandkit`.
//!
//! Run it twice with the same `--home` and the file holds two lines: the second OS
//! process continued where the first stopped.

use std::path::PathBuf;

use clap::Parser;
use sandkit_core::{CommandResult, CommandSpec, Order, RunQuery, Sandkit, WorkspaceSpec};
use sandkit_example_support::{
    Home, ProviderKind, Report, init_logging, open_or_create_workspace, open_provider, open_store,
};

/// Two durable commands in one workspace, with a restart between them.
#[derive(Debug, Parser)]
#[command(after_help = "Switch to Vercel Sandbox with SANDKIT_PROVIDER=vercel \
    (credentials: VERCEL_OIDC_TOKEN, or VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID).")]
struct Args {
    /// Directory for the SQLite database and the local sandboxes [default: a temporary
    /// directory, deleted on exit]
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,

    /// Workspace id (created on first use)
    #[arg(long, default_value = "hello")]
    workspace: String,
}

#[tokio::main]
async fn main() -> Result<(), Report> {
    init_logging();
    let args = Args::parse();
    let provider = ProviderKind::from_env()?;
    let home = Home::open(args.home.as_deref())?;
    println!("provider: {provider}; state in {}", home.dir().display());
    if home.is_temporary() {
        println!("(a temporary directory: pass --home DIR to keep the workspace between runs)");
    }

    // --- First life: create (or open) the workspace and run a durable command. -------
    {
        let sandkit = open_sandkit(provider, &home).await?;
        let workspace = open_or_create_workspace(
            &sandkit,
            &args.workspace,
            WorkspaceSpec::new().name("hello"),
        )
        .await?;
        // One durable command = one unit of work: a sandbox starts from the workspace's
        // last snapshot, runs the command, is snapshotted, and the new snapshot becomes
        // the workspace's head — all before `run_command` returns.
        let wrote = workspace
            .run_command(
                CommandSpec::new("sh").args(["-c", "echo 'hello from sandkit' >> hello.txt"]),
            )
            .await?;
        check("writing hello.txt", &wrote)?;
        println!(
            "1. appended a line to hello.txt in workspace {}",
            workspace.id()
        );
    } // Everything is dropped here: nothing but the database and the snapshots remain.

    // --- Second life: a new Sandkit finds the workspace by id. -------------------------
    let sandkit = open_sandkit(provider, &home).await?;
    let workspace = sandkit.workspace(&args.workspace).await?;
    println!(
        "2. restarted and reopened workspace {} ({})",
        workspace.id(),
        workspace.state().as_str()
    );
    let read = workspace
        .run_command(CommandSpec::new("cat").arg("hello.txt"))
        .await?;
    check("reading hello.txt", &read)?;
    println!("3. hello.txt holds:");
    for line in read.stdout.lines() {
        println!("   {line}");
    }

    // Every durable command is a row in the run journal.
    let journal = workspace
        .runs(RunQuery {
            order: Order::Asc,
            ..RunQuery::default()
        })
        .await?;
    println!("journal of workspace {}:", workspace.id());
    for run in &journal.items {
        println!(
            "   {} {} {:?} -> {} (exit {})",
            run.started_at.format("%H:%M:%S%.3f"),
            run.command,
            run.args,
            run.status.as_str(),
            run.exit_code.map_or("-".to_owned(), |c| c.to_string()),
        );
    }
    Ok(())
}

/// A `Sandkit` on the home's SQLite database and the provider `SANDKIT_PROVIDER` chose.
async fn open_sandkit(provider: ProviderKind, home: &Home) -> Result<Sandkit, Report> {
    let sandkit = Sandkit::builder()
        .store(open_store(&home.sqlite_url()).await?)
        .provider(open_provider(provider, home)?)
        .build()?;
    Ok(sandkit)
}

/// A non-zero exit is a result, not an error, for Sandkit; for this example it is fatal.
fn check(what: &str, result: &CommandResult) -> Result<(), Report> {
    if result.success() {
        return Ok(());
    }
    Err(Report::new(format!(
        "{what} exited with {}: {}",
        result.exit_code,
        result.stderr.trim()
    )))
}
