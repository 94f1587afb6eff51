//! `shared-db`: several processes share one database (PostgreSQL here) and contend on
//! one workspace.
//!
//! Each `work` process runs durable commands on its own workspace, and increments a
//! counter file in the shared workspace. Only one durable command holds a workspace's
//! lease at a time, so the others get `ErrorKind::Busy` and retry; every increment lands
//! exactly once. Each increment prints who held the shared lease when:
//!
//! ```text
//! lease workspace=shared holder=alice:4242 acquired=…Z released=…Z counter=7 busy_retries=3
//! ```
//!
//! Steps: `init` once (creates the tables and the shared workspace), then any number of
//! `work` processes, then `report`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use sandkit_core::{
    CommandResult, CommandSpec, ErrorKind, Order, RunQuery, Sandkit, Workspace, WorkspaceSpec,
};
use sandkit_example_support::{
    Home, ProviderKind, Report, init_logging, open_or_create_workspace, open_provider, open_store,
};

/// The workspace every `work` process contends on.
const SHARED: &str = "shared";

/// Reads the counter, adds one, writes it back — then "works" a little while holding
/// the lease, so that the other processes find the workspace busy. Prints the new value.
const INCREMENT: &str = "n=$(cat counter 2>/dev/null || echo 0); n=$((n + 1)); \
    echo $n > counter; sleep 0.2; echo $n";

/// How long a `work` process keeps retrying a busy workspace before giving up.
const BUSY_PATIENCE: Duration = Duration::from_secs(120);

/// Processes sharing one database, contending on one workspace.
#[derive(Debug, Parser)]
#[command(after_help = "Example (two workers on one PostgreSQL database):
  shared-db --database postgres://postgres@127.0.0.1/sandkit init
  shared-db --database postgres://postgres@127.0.0.1/sandkit work --name alice &
  shared-db --database postgres://postgres@127.0.0.1/sandkit work --name bob &
  wait; shared-db --database postgres://postgres@127.0.0.1/sandkit report

Switch to Vercel Sandbox with SANDKIT_PROVIDER=vercel (credentials: VERCEL_OIDC_TOKEN, \
or VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID).")]
struct Args {
    /// Database URL shared by every process (postgres://…; mysql:// and sqlite:// work too)
    #[arg(long, env = "SANDKIT_DATABASE_URL", value_name = "URL")]
    database: String,

    /// Directory of the local provider's sandboxes and snapshots; every process must use
    /// the same one (unused on Vercel)
    #[arg(long, value_name = "DIR", default_value = ".sandkit-shared-db")]
    home: PathBuf,

    /// What to do.
    #[command(subcommand)]
    step: Step,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// Create the tables and the shared workspace (run once, before the workers).
    Init,
    /// Run durable commands on an own workspace and increment the shared counter.
    Work {
        /// This worker's name: its lease holder name and its workspace `own-NAME`.
        #[arg(long)]
        name: String,
        /// How many rounds (one own command and one shared increment each).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rounds: u32,
    },
    /// Print the shared counter and who held the shared workspace when.
    Report,
}

#[tokio::main]
async fn main() -> Result<(), Report> {
    init_logging();
    let args = Args::parse();
    let provider = ProviderKind::from_env()?;
    let home = Home::open(Some(&args.home))?;
    match args.step {
        Step::Init => {
            // Migrating creates or upgrades the tables: do it once, before the workers.
            let sandkit = open_sandkit(&args.database, provider, &home, None).await?;
            open_or_create_workspace(&sandkit, SHARED, WorkspaceSpec::new().name(SHARED)).await?;
            println!("ready: database migrated, workspace {SHARED} exists (provider {provider})");
        }
        Step::Work { name, rounds } => {
            let holder = format!("{name}:{}", std::process::id());
            let sandkit = open_sandkit(&args.database, provider, &home, Some(&holder)).await?;
            work(&sandkit, &name, rounds).await?;
        }
        Step::Report => {
            let sandkit = open_sandkit(&args.database, provider, &home, Some("report")).await?;
            report(&sandkit).await?;
        }
    }
    Ok(())
}

/// A `Sandkit` on the shared database. `holder` names this process in leases.
async fn open_sandkit(
    database: &str,
    provider: ProviderKind,
    home: &Home,
    holder: Option<&str>,
) -> Result<Sandkit, Report> {
    let mut builder = Sandkit::builder()
        .store(open_store(database).await?)
        .provider(open_provider(provider, home)?);
    if let Some(holder) = holder {
        builder = builder.holder(holder);
    }
    Ok(builder.build()?)
}

async fn work(sandkit: &Sandkit, name: &str, rounds: u32) -> Result<(), Report> {
    // Nobody else uses this workspace: its commands never wait.
    let own_id = format!("own-{name}");
    let own =
        open_or_create_workspace(sandkit, &own_id, WorkspaceSpec::new().name(&own_id)).await?;
    let shared = sandkit
        .workspace(SHARED)
        .await
        .map_err(|e| Report::new(format!("{e} — run the init step first")))?;

    let mut total_retries = 0;
    for round in 1..=rounds {
        let script = format!("echo round {round} >> rounds.txt; wc -l < rounds.txt");
        let mine = own
            .run_command(CommandSpec::new("sh").args(["-c", &script]))
            .await?;
        check(&own_id, &mine)?;
        println!(
            "own workspace={own_id} round={round} lines={}",
            mine.stdout.trim()
        );

        total_retries += increment(&shared, name).await?;
    }
    println!("summary name={name} increments={rounds} busy_retries={total_retries}");
    Ok(())
}

/// Increments the shared counter once, retrying while another process holds the
/// workspace. Prints the lease interval; returns how many times it was busy.
async fn increment(shared: &Workspace, name: &str) -> Result<u32, Report> {
    let started = Instant::now();
    let mut retries = 0;
    let mut last_holder = String::new();
    let command = loop {
        match shared
            .spawn_command(CommandSpec::new("sh").args(["-c", INCREMENT]))
            .await
        {
            // `spawn_command` returns as soon as this process holds the lease.
            Ok(command) => break command,
            Err(e) if e.kind() == &ErrorKind::Busy && started.elapsed() < BUSY_PATIENCE => {
                retries += 1;
                // Say who holds it, once per holder.
                if let Some(lease) = shared.lease().await?
                    && lease.holder != last_holder
                {
                    println!("busy name={name} waiting for holder={}", lease.holder);
                    last_holder = lease.holder;
                }
                let pause = rand::random_range(20..120);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            // A lost compare-and-set race with another process: just try again.
            Err(e) if e.kind() == &ErrorKind::Conflict => retries += 1,
            Err(e) => return Err(e.into()),
        }
    };
    // The lease as stored now is ours: its acquisition time is when we got it.
    let acquired = shared
        .lease()
        .await?
        .filter(|lease| lease.run_id.as_ref() == Some(command.run_id()))
        .map(|lease| lease.acquired_at);

    let result = command.wait().await?;
    check(SHARED, &result)?;
    // The run row says when the lease was released (the commit) and by whom it was held.
    let run = shared.run(command.run_id()).await?;
    let acquired = acquired.unwrap_or(run.started_at);
    let released = run
        .finished_at
        .ok_or_else(|| Report::new(format!("run {} finished without an end time", run.id)))?;
    println!(
        "lease workspace={SHARED} holder={} acquired={} released={} counter={} busy_retries={retries}",
        run.holder,
        timestamp(acquired),
        timestamp(released),
        result.stdout.trim(),
    );
    Ok(retries)
}

async fn report(sandkit: &Sandkit) -> Result<(), Report> {
    let shared = sandkit.workspace(SHARED).await?;
    let counter = shared
        .run_command(CommandSpec::new("sh").args(["-c", "cat counter 2>/dev/null || echo 0"]))
        .await?;
    check(SHARED, &counter)?;
    println!("counter={}", counter.stdout.trim());

    println!("who held workspace {SHARED} (from the run journal):");
    let mut query = RunQuery {
        order: Order::Asc,
        ..RunQuery::default()
    };
    loop {
        let page = shared.runs(query.clone()).await?;
        for run in &page.items {
            println!(
                "   {} -> {}  {:<24} {} {}",
                timestamp(run.started_at),
                run.finished_at.map_or("(running)".to_owned(), timestamp),
                run.holder,
                run.status.as_str(),
                run.stdout.as_deref().unwrap_or("").trim(),
            );
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    Ok(())
}

/// UTC with milliseconds, the precision every store keeps.
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A non-zero exit is a result, not an error, for Sandkit; for this example it is fatal.
fn check(workspace: &str, result: &CommandResult) -> Result<(), Report> {
    if result.success() {
        return Ok(());
    }
    Err(Report::new(format!(
        "a command in workspace {workspace} exited with {}: {}",
        result.exit_code,
        result.stderr.trim()
    )))
}
