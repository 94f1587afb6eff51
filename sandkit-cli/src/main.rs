//! The `sandkit` command: durable workspaces, runs, sessions and policies from a shell.
//!
//! Exit codes: `run` and `session exec` pass the command's exit code through; otherwise
//! 0 success, 1 failure, 2 invalid input (usage), 3 busy or lost a race, 4 not found.

/// `println!` to stdout that ends quietly (exit 141) when stdout is a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::stdout_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` to stdout, likewise.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout_fmt(format_args!($($arg)*))
    };
}

mod cli;
mod commands;
mod context;
mod output;
mod signals;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use sandkit_core::{Error, ErrorKind};
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

/// Exit code for Sandkit's own failures.
fn exit_code(error: &Error) -> u8 {
    match error.kind() {
        ErrorKind::InvalidInput => 2,
        ErrorKind::Busy | ErrorKind::Conflict => 3,
        ErrorKind::NotFound | ErrorKind::NoActiveSession => 4,
        _ => 1,
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sqlx=warn,sea_orm=warn",
        _ => "debug,sqlx=info,hyper=info,reqwest=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn dispatch(cli: Cli) -> Result<i32, Error> {
    let prepared = match &cli.command {
        Command::Policy(command) => return commands::policy(command, cli.json),
        Command::Generate(args) => return commands::generate::run(args).await,
        Command::Migrate { check, binary_ids } => {
            return commands::migrate(&cli, *check, *binary_ids).await;
        }
        Command::Bootstrap(args) => return commands::bootstrap(&cli, args).await,
        // Bad input must fail before anything is opened or written.
        Command::Run(args) => Some(commands::run::prepare(args)?),
        _ => None,
    };
    let ctx = context::open(&cli).await?;
    let outcome = run_command(&ctx, cli, prepared).await;
    // Let background retention finish before the process exits.
    ctx.sandkit.settle().await;
    outcome
}

async fn run_command(
    ctx: &context::Context,
    cli: Cli,
    prepared: Option<sandkit_core::CommandSpec>,
) -> Result<i32, Error> {
    match cli.command {
        Command::Run(args) => {
            let spec = prepared.ok_or_else(|| Error::invalid_input("run arguments missing"))?;
            commands::run::run(ctx, &args, spec).await
        }
        Command::Workspace(command) => commands::workspace::run(ctx, command).await,
        Command::Session(command) => commands::session::run(ctx, command).await,
        Command::Runs(args) => commands::runs::run(ctx, args).await,
        Command::Gc { dry_run } => commands::gc(ctx, dry_run).await,
        Command::Policy(_)
        | Command::Migrate { .. }
        | Command::Bootstrap(_)
        | Command::Generate(_) => Ok(0),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sandkit: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(dispatch(cli));
    // Background work of a finished command (e.g. its log pump) must not hold us up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        Err(e) => {
            let message = e.to_string().replace('\n', " ");
            // Not eprintln!: a closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "sandkit: error: {message}");
            ExitCode::from(exit_code(&e))
        }
    }
}
