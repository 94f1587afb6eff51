//! The `sandkit` command: durable workspaces, runs, sessions and policies from a shell.
//!
//! Exit codes: `run` and `session exec` pass the command's exit code through; otherwise
//! 0 success, 1 failure, 2 invalid input (usage), 3 busy or lost a race, 4 not found,
//! 5 already exists.

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

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use sandkit_core::{Error, ErrorKind};
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, SessionCommand, WorkspaceCommand};

/// Exit code for Sandkit's own failures (the table in `sandkit --help`).
fn exit_code(error: &Error) -> u8 {
    match error.kind() {
        ErrorKind::InvalidInput => 2,
        ErrorKind::Busy | ErrorKind::Conflict => 3,
        ErrorKind::NotFound | ErrorKind::NoActiveSession => 4,
        ErrorKind::AlreadyExists => 5,
        _ => 1,
    }
}

/// The error as the CLI prints it: the library's message without the next steps that
/// name Rust APIs (`open_session()`, `reset()`…), plus the CLI command to run instead.
pub(crate) fn cli_message(error: &Error, workspace: Option<&str>) -> String {
    let message = error.message().replace('\n', " ");
    let mut dropped = false;
    // The first clause says what happened: always kept. Later ones say what to do.
    let kept: Vec<String> = message
        .split("; ")
        .map(without_rust_asides)
        .enumerate()
        .filter(|(i, clause)| {
            let rust = *i > 0 && names_rust_api(clause);
            dropped |= rust;
            !rust
        })
        .map(|(_, clause)| clause)
        .collect();
    let mut text = kept.join("; ");
    if (dropped || error.kind() == &ErrorKind::Busy)
        && let Some(hint) = hint(error, workspace)
    {
        text.push_str("; ");
        text.push_str(&hint);
    }
    text
}

/// Whether advice names a Rust API: a call (`open_session()`, `sandkit.workspace("w")`)
/// or a snake_case method name (`create_workspace`).
fn names_rust_api(clause: &str) -> bool {
    clause.contains("()")
        || clause.contains("(\"")
        || clause
            .split(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
            .any(|word| {
                word.contains('_')
                    && !word.starts_with('_')
                    && !word.ends_with('_')
                    && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
}

/// `clause` without parenthesised asides that name a Rust API (`(or SeaOrmStore::migrate())`).
fn without_rust_asides(clause: &str) -> String {
    let chars: Vec<char> = clause.chars().collect();
    let mut out = String::with_capacity(clause.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '(' && chars.get(i + 1) != Some(&')') {
            let mut depth = 0;
            let mut end = None;
            for (j, c) in chars.iter().enumerate().skip(i) {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(end) = end {
                let inner: String = chars[i + 1..end].iter().collect();
                if inner.contains("()") {
                    while out.ends_with(' ') {
                        out.pop();
                    }
                    i = end + 1;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The CLI command that helps with an error of this kind, when there is one.
fn hint(error: &Error, workspace: Option<&str>) -> Option<String> {
    let ws = workspace.unwrap_or("WORKSPACE");
    Some(match error.kind() {
        ErrorKind::Busy if error.message().contains("session") => format!(
            "end the session with `sandkit session commit {ws}` or `sandkit session discard {ws}`, \
             or wait for it with `--wait` (`--wait 2m` gives up after two minutes)"
        ),
        ErrorKind::Busy => {
            "wait for it with `--wait` (`--wait 2m` gives up after two minutes)".to_owned()
        }
        ErrorKind::NoActiveSession | ErrorKind::SessionUnavailable => {
            format!("open one with `sandkit session open {ws}`")
        }
        ErrorKind::SnapshotUnavailable => format!(
            "`sandkit workspace reset {ws}` starts it from cold, `sandkit workspace restore {ws} RUN_ID` \
             moves it to an earlier run (see `sandkit runs {ws}`) — nothing was changed"
        ),
        ErrorKind::NotFound if error.message().contains("run ") => {
            format!("list its runs with `sandkit runs {ws}`")
        }
        ErrorKind::NotFound => format!(
            "create it with `sandkit workspace create --id {ws}` (`sandkit run` creates it on \
             first use), or list workspaces with `sandkit workspace list`"
        ),
        ErrorKind::AlreadyExists => {
            "choose another --id, or use the existing one (`sandkit workspace show ID`)".to_owned()
        }
        ErrorKind::Unsupported => {
            "run it with `sandkit session exec` instead, or use another --provider".to_owned()
        }
        _ => return None,
    })
}

/// The workspace a command is about, for hints.
fn workspace_of(command: &Command) -> Option<String> {
    let ws = match command {
        Command::Run(args) => &args.workspace,
        Command::Runs(args) => &args.workspace,
        Command::Workspace(command) => match command {
            WorkspaceCommand::Show { workspace }
            | WorkspaceCommand::Delete { workspace }
            | WorkspaceCommand::SetPolicy { workspace, .. }
            | WorkspaceCommand::Reset { workspace }
            | WorkspaceCommand::Restore { workspace, .. } => workspace,
            WorkspaceCommand::Fork { source, .. } => source,
            WorkspaceCommand::Create(args) => return args.id.clone(),
            WorkspaceCommand::List(_) | WorkspaceCommand::Check => return None,
        },
        Command::Session(command) => match command {
            SessionCommand::Open { workspace, .. }
            | SessionCommand::Status { workspace }
            | SessionCommand::Exec { workspace, .. }
            | SessionCommand::Start { workspace, .. }
            | SessionCommand::Logs { workspace, .. }
            | SessionCommand::Url { workspace, .. }
            | SessionCommand::Extend { workspace, .. }
            | SessionCommand::Commit { workspace }
            | SessionCommand::Discard { workspace } => workspace,
        },
        _ => return None,
    };
    Some(ws.clone())
}

/// Commands that only read: they work under a read-only home directory.
fn only_reads(command: &Command) -> bool {
    matches!(
        command,
        Command::Runs(_)
            | Command::Workspace(
                WorkspaceCommand::List(_) | WorkspaceCommand::Show { .. } | WorkspaceCommand::Check
            )
            | Command::Session(SessionCommand::Status { .. })
    )
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sqlx=warn,sea_orm=warn",
        _ => "debug,sqlx=info,hyper=info,reqwest=info",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // SeaORM's connector spans record the connection URL, password included: never log
    // them, whatever RUST_LOG says.
    if let Ok(directive) = "sea_orm::driver=off".parse() {
        filter = filter.add_directive(directive);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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
        Command::Run(args) => Some(commands::run::prepare(args, cli.provider)?),
        _ => None,
    };
    if let Some(home) = context::database(&cli)?.read_only_home
        && !only_reads(&cli.command)
    {
        return Err(context::read_only_error(&home));
    }
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
    let workspace = workspace_of(&cli.command);
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
            let message = cli_message(&e, workspace.as_deref());
            // Not eprintln!: a closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "sandkit: error: {message}");
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_next_steps_become_cli_commands() {
        let e = Error::no_active_session(
            "There is no active sandbox session to attach for workspace w; open one with open_session()",
        );
        assert_eq!(
            cli_message(&e, Some("w")),
            "There is no active sandbox session to attach for workspace w; open one with `sandkit session open w`"
        );
        let e = Error::storage(
            "schema behind; run `sandkit migrate --database URL` (or SeaOrmStore::migrate()), or apply it",
        );
        assert_eq!(
            cli_message(&e, None),
            "schema behind; run `sandkit migrate --database URL`, or apply it"
        );
        let e = Error::snapshot_unavailable(
            "head gone; call reset() to start it from cold (or restore an earlier run) — nothing was changed",
        );
        let text = cli_message(&e, Some("w"));
        assert!(text.contains("sandkit workspace reset w"), "{text}");
        assert!(!text.contains("()"), "{text}");
        assert_eq!(exit_code(&Error::already_exists("x")), 5);
        let e = Error::already_exists(
            "workspace w already exists; open it with sandkit.workspace(\"w\") or choose another id",
        );
        let text = cli_message(&e, Some("w"));
        assert!(
            text.starts_with("workspace w already exists; choose another --id"),
            "{text}"
        );
        let e = Error::not_found(
            "Workspace not found: my_ws; create it with create_workspace or check the id",
        );
        let text = cli_message(&e, Some("my_ws"));
        assert!(
            text.starts_with(
                "Workspace not found: my_ws; create it with `sandkit workspace create --id my_ws`"
            ),
            "{text}"
        );
    }
}
