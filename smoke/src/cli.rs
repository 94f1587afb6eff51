//! Command-line arguments of `sandkit-smoke` (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::backend::BackendFilter;
use crate::child::ChildStep;

const ABOUT: &str = "Runs Sandkit's end-to-end scenarios against the fake Vercel API and the \
local provider, on SQLite and (when SANDKIT_TEST_POSTGRES_URL / SANDKIT_TEST_MYSQL_URL are set) \
PostgreSQL and MariaDB. Prints one line per scenario × backend and ends with `N passed, M failed`; \
exits 1 when anything failed. Usually run as `cargo xtask smoke`.";

const AFTER: &str = "Examples:
  cargo xtask smoke
  cargo xtask smoke --scenario crash-recovery --backend local/sqlite
  cargo xtask smoke --backend sqlite --scenario 1 --scenario 8
  cargo xtask smoke --live            # also the real Vercel service (needs credentials)
  cargo xtask smoke --release         # optimised build (much slower to build, a bit faster to run)";

/// `sandkit-smoke`.
#[derive(Debug, Parser)]
#[command(
    name = "sandkit-smoke",
    about = ABOUT,
    after_help = AFTER,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Internal tools (used by the scenarios themselves).
    #[command(subcommand)]
    pub tool: Option<Tool>,

    /// What to run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of a smoke run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Only this scenario, by name or number (repeatable) [default: all]
    #[arg(long = "scenario", short = 's', value_name = "NAME")]
    pub scenarios: Vec<String>,

    /// Only these backends: a provider (vercel-fake, local, vercel-live), a database
    /// (sqlite, postgres, mysql) or provider/database (repeatable) [default: all]
    #[arg(long = "backend", short = 'b', value_name = "BACKEND")]
    pub backends: Vec<BackendFilter>,

    /// Also run against the real Vercel service (needs VERCEL_OIDC_TOKEN, or
    /// VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID; skipped, and said so, otherwise)
    #[arg(long)]
    pub live: bool,

    /// List the scenarios and backends, run nothing
    #[arg(long)]
    pub list: bool,

    /// Time limit per scenario run, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub timeout: u64,

    /// Scenario runs in flight at once
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4)]
    pub jobs: usize,

    /// The sandkit CLI binary for the README scenario [default: next to this binary]
    #[arg(long, env = "SANDKIT_BIN", value_name = "PATH")]
    pub sandkit_bin: Option<PathBuf>,
}

/// Internal tools.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// A step run in a child process by a scenario.
    #[command(subcommand, hide = true)]
    Child(ChildStep),
    /// Serves a fixed body over HTTP on 127.0.0.1:PORT (the session URL check).
    #[command(hide = true)]
    ServeHttp {
        /// Port to listen on.
        port: u16,
    },
    /// Exits 0 when ADDR accepts a TCP connection (egress checks).
    #[command(hide = true)]
    ProbeTcp {
        /// `host:port`.
        addr: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn filters_and_flags_parse() {
        let cli = Cli::try_parse_from([
            "sandkit-smoke",
            "--scenario",
            "race",
            "-s",
            "1",
            "--backend",
            "local/sqlite",
            "--live",
            "-j",
            "2",
        ])
        .expect("parses");
        assert!(cli.tool.is_none());
        assert_eq!(cli.run.scenarios, ["race", "1"]);
        assert_eq!(cli.run.backends.len(), 1);
        assert!(cli.run.live);
        assert_eq!(cli.run.jobs, 2);
        assert!(Cli::try_parse_from(["sandkit-smoke", "--backend", "oracle"]).is_err());
    }

    #[test]
    fn child_steps_parse() {
        let cli = Cli::try_parse_from([
            "sandkit-smoke",
            "child",
            "run",
            "--create",
            "ws-1",
            "echo hi",
        ])
        .expect("parses");
        match cli.tool {
            Some(Tool::Child(ChildStep::Run {
                workspace,
                script,
                create,
                retry_busy,
            })) => {
                assert_eq!((workspace.as_str(), script.as_str()), ("ws-1", "echo hi"));
                assert!(create && !retry_busy);
            }
            other => panic!("parsed {other:?}"),
        }
    }
}
