//! Command-line arguments (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Durable workspaces over ephemeral sandboxes.

With no flags, sandkit uses the embedded default: the local provider (directories and \
processes on this machine) and a SQLite database, both under ./.sandkit (override with \
--home or SANDKIT_HOME).";

const EXAMPLES: &str = "Examples:
  sandkit run hello -- sh -c 'echo hello >> greetings.txt && cat greetings.txt'
  sandkit session open demo --port 8000
  sandkit session start demo -- python3 -m http.server 8000
  curl \"$(sandkit session url demo 8000)\"
  sandkit session commit demo
  sandkit runs hello --jsonl

Exit codes:
  run, session exec   the command's own exit code (when Sandkit itself did not fail)
  0                   success
  1                   failure (provider, database, unsupported policy, …)
  2                   invalid input (nothing was written or started)
  3                   busy, or lost a race (`--wait` waits; `--wait 2m` gives up after 2m)
  4                   not found (workspace, run, session)
  5                   already exists
  130, 143            stopped by Ctrl-C, SIGTERM (the run is journaled interrupted)
  141                 stdout was closed (e.g. `| head`)";

/// The `sandkit` command.
#[derive(Debug, Parser)]
#[command(name = "sandkit", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// Directory of the embedded default (database, sandboxes, setup) [default: ./.sandkit]
    #[arg(long, global = true, env = "SANDKIT_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Database URL: sqlite://PATH, postgres://…, mysql://… [default: SQLite under --home]
    #[arg(long, global = true, env = "SANDKIT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,

    /// Where sandboxes run
    #[arg(long, global = true, env = "SANDKIT_PROVIDER", value_enum, default_value_t = ProviderKind::Local)]
    pub provider: ProviderKind,

    /// Never create or upgrade Sandkit's tables: fail if they are not current (for apps whose own migrations own the schema)
    #[arg(long, global = true, env = "SANDKIT_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Print one JSON document instead of text (read commands)
    #[arg(long, global = true)]
    pub json: bool,

    /// More logging on stderr: -v info, -vv debug (RUST_LOG overrides)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sandbox providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// Directories and processes on this machine (development, not a security boundary).
    Local,
    /// Vercel Sandbox (VERCEL_OIDC_TOKEN, or VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID).
    Vercel,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one durable command in a workspace (created on first use) and commit its result.
    #[command(
        after_help = "Example:\n  sandkit run hello --env NAME=world -- sh -c 'echo hello $NAME'"
    )]
    Run(RunArgs),
    /// Create, list, show, delete and configure workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Live sessions that any shell can attach to, then commit or discard.
    #[command(subcommand)]
    Session(SessionCommand),
    /// The durable run journal of a workspace.
    #[command(
        after_help = "Example:\n  sandkit runs hello --limit 5 --status failed\n  sandkit runs hello --jsonl > journal.jsonl"
    )]
    Runs(RunsArgs),
    /// Configure the shared setup step and build its snapshot now.
    #[command(after_help = "Example:\n  sandkit bootstrap --setup 'npm ci' --setup-policy npm")]
    Bootstrap(BootstrapArgs),
    /// Inspect policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Delete provider snapshots no workspace can need any more (snapshot retention).
    #[command(after_help = "Example:\n  sandkit gc --dry-run")]
    Gc {
        /// Only report what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
    /// Create or upgrade the database schema, or check where it stands.
    #[command(
        after_help = "Examples:\n  sandkit migrate --database postgres://app@db/app\n  sandkit migrate --check --database postgres://app@db/app\n\n--check exits 0 when the schema is current and 1 when it is behind (or was migrated by a newer sandkit); it never writes."
    )]
    Migrate {
        /// Only report where the schema stands; change nothing
        #[arg(long, conflicts_with = "binary_ids")]
        check: bool,
        /// MySQL/MariaDB: also move the ids of a database the TypeScript Sandkit made to the binary collation, with your columns whose foreign keys reference them
        #[arg(long)]
        binary_ids: bool,
    },
    /// Generate Sandkit's schema for your project: SeaORM entities and migration, or SQL.
    #[command(after_help = crate::commands::generate::EXAMPLES)]
    Generate(crate::commands::generate::GenerateArgs),
}

/// `sandkit run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workspace id (created if missing).
    pub workspace: String,
    /// Policy for this run only: allow-all, deny-all, a preset list (npm,github) or @file.json
    #[arg(long, value_name = "SPEC")]
    pub policy: Option<String>,
    /// Kill the command after this long (e.g. 90s, 10m)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Working directory inside the sandbox
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Environment variable for the command (repeatable; values are never stored)
    #[arg(long = "env", value_parser = parse_env, value_name = "K=V")]
    pub env: Vec<(String, String)>,
    /// Record the run under this key: a repeat returns the recorded result
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Wait for a busy workspace instead of failing; with a limit (e.g. 2m), give up
    /// after it with the busy exit code (3)
    #[arg(long, value_name = "LIMIT", num_args = 0..=1, value_parser = parse_duration)]
    pub wait: Option<Option<Duration>>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `sandkit workspace …`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    #[command(
        after_help = "Example:\n  sandkit workspace create --id agent-1 --policy npm,github --port 3000"
    )]
    Create(CreateArgs),
    /// List workspaces.
    List(ListArgs),
    /// List workspaces whose head (or setup) snapshot the provider no longer has
    /// (exit 1 when there is one).
    #[command(after_help = "Example:\n  sandkit workspace check --json")]
    Check,
    /// Show one workspace.
    Show {
        /// Workspace id.
        workspace: String,
    },
    /// Delete a workspace and its runs (refused while a lease is live).
    Delete {
        /// Workspace id.
        workspace: String,
    },
    /// Replace the workspace's default policy.
    #[command(after_help = "Example:\n  sandkit workspace set-policy agent-1 deny-all")]
    SetPolicy {
        /// Workspace id.
        workspace: String,
        /// allow-all, deny-all, a preset list (npm,github) or @file.json
        spec: String,
    },
    /// Move the workspace back to cold (its next start is fresh or from the setup snapshot).
    Reset {
        /// Workspace id.
        workspace: String,
    },
    /// Fork a workspace: a new workspace starting from its head (or an earlier run).
    #[command(
        after_help = "Example:\n  sandkit workspace fork agent-1 --id agent-1-try --at run_0190…"
    )]
    Fork {
        /// Source workspace id.
        source: String,
        /// Fork at the snapshot this run committed instead of the head
        #[arg(long, value_name = "RUN_ID")]
        at: Option<String>,
        /// Id of the fork [default: generated]
        #[arg(long)]
        id: Option<String>,
        /// Name of the fork [default: "<source name> (fork)"]
        #[arg(long)]
        name: Option<String>,
    },
    /// Move the head back to the snapshot an earlier run committed.
    #[command(
        after_help = "Example:\n  sandkit runs agent-1 --limit 5\n  sandkit workspace restore agent-1 run_0190…"
    )]
    Restore {
        /// Workspace id.
        workspace: String,
        /// The run whose snapshot becomes the head.
        run: String,
    },
}

/// `sandkit workspace create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Workspace id [default: generated]
    #[arg(long)]
    pub id: Option<String>,
    /// Human name
    #[arg(long)]
    pub name: Option<String>,
    /// Default policy: allow-all, deny-all, a preset list or @file.json
    #[arg(long, value_name = "SPEC")]
    pub policy: Option<String>,
    /// Port to expose in sessions (repeatable)
    #[arg(long = "port", value_parser = clap::value_parser!(u16).range(1..), value_name = "PORT")]
    pub ports: Vec<u16>,
}

/// `sandkit workspace list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Page size
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Continue after this cursor (printed by the previous page)
    #[arg(long)]
    pub cursor: Option<String>,
}

/// `sandkit session …`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Open a session (creates the workspace if missing).
    #[command(after_help = "Example:\n  sandkit session open demo --port 8000 --timeout 30m")]
    Open {
        /// Workspace id.
        workspace: String,
        /// Session lifetime (e.g. 30m)
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// Session policy: allow-all, deny-all, a preset list or @file.json
        #[arg(long, value_name = "SPEC")]
        policy: Option<String>,
        /// Port to expose (added to the workspace; repeatable)
        #[arg(long = "port", value_parser = clap::value_parser!(u16).range(1..), value_name = "PORT")]
        ports: Vec<u16>,
        /// Wait for a busy workspace instead of failing; with a limit (e.g. 2m), give up
        /// after it with the busy exit code (3)
        #[arg(long, value_name = "LIMIT", num_args = 0..=1, value_parser = parse_duration)]
        wait: Option<Option<Duration>>,
    },
    /// Show the live lease.
    Status {
        /// Workspace id.
        workspace: String,
    },
    /// Run a command in the session and print its output.
    #[command(after_help = "Example:\n  sandkit session exec demo -- ls -la")]
    Exec {
        /// Workspace id.
        workspace: String,
        /// Policy for this command only
        #[arg(long, value_name = "SPEC")]
        policy: Option<String>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Start a background process that keeps running after this command exits.
    #[command(after_help = "Example:\n  sandkit session start demo -- python3 -m http.server 8000")]
    Start {
        /// Workspace id.
        workspace: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// List background processes, or print one's output.
    Logs {
        /// Workspace id.
        workspace: String,
        /// Process id (from `session start`); omit to list processes
        process: Option<String>,
        /// Keep printing until the process exits
        #[arg(long, short)]
        follow: bool,
    },
    /// Print the URL of an exposed port.
    Url {
        /// Workspace id.
        workspace: String,
        /// Port.
        port: u16,
    },
    /// Extend the session (and its lease).
    Extend {
        /// Workspace id.
        workspace: String,
        /// How much longer (e.g. 10m)
        #[arg(value_parser = parse_duration)]
        by: Duration,
    },
    /// Snapshot the session into the workspace head and end it.
    Commit {
        /// Workspace id.
        workspace: String,
    },
    /// End the session without keeping its changes.
    Discard {
        /// Workspace id.
        workspace: String,
    },
}

/// `sandkit runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Workspace id.
    pub workspace: String,
    /// Most runs to show (newest first)
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only runs with this status
    #[arg(long, value_parser = ["started", "succeeded", "failed", "interrupted"])]
    pub status: Option<String>,
    /// One JSON object per line, oldest first (the redacted journal export)
    #[arg(long)]
    pub jsonl: bool,
    /// With --jsonl: keep printing new runs as they finish
    #[arg(long, requires = "jsonl")]
    pub follow: bool,
}

/// `sandkit bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Setup command, run with `sh -c` (saved under --home for later runs)
    #[arg(long, value_name = "COMMAND", required_unless_present = "clear")]
    pub setup: Option<String>,
    /// Policy while setup runs [default: allow-all]
    #[arg(long, value_name = "SPEC")]
    pub setup_policy: Option<String>,
    /// Forget the saved setup
    #[arg(long, conflicts_with_all = ["setup", "setup_policy"])]
    pub clear: bool,
}

/// `sandkit policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print a policy's normalised JSON (secrets redacted).
    #[command(after_help = "Example:\n  sandkit policy show npm,github")]
    Show {
        /// allow-all, deny-all, a preset list or @file.json
        spec: String,
    },
    /// Would this policy allow a request to URL? Exits 0 when allowed, 1 when denied.
    #[command(after_help = "Example:\n  sandkit policy check github https://api.github.com/repos")]
    Check {
        /// allow-all, deny-all, a preset list or @file.json
        spec: String,
        /// Target URL or host.
        url: String,
    },
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw)
        .map_err(|e| format!("{e}; use a duration such as 90s, 10m or 1h"))?;
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(d)
}

fn parse_env(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{raw:?} is not K=V")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_env_pairs_parse_with_guidance() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("abc").unwrap_err().contains("10m"));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
    }
}
