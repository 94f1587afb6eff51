//! Child processes: the smoke binary re-executes itself (`sandkit-smoke child …`) to act
//! as another OS process with its own fresh `Sandkit` on the same database and
//! provider. The parent configures it through the environment (`SMOKE_*`, plus the
//! Vercel variables for the fake API) and reads one `RESULT <json>` line back; a crash
//! child prints `READY <step>` and waits for its SIGKILL.

use std::process::{ExitCode, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use sandkit_adapter_seaorm::SeaOrmStore;
use sandkit_core::{CommandResult, CommandSpec, ErrorKind, Provider, Sandkit, WorkspaceSpec};
use sandkit_vercel::VercelProvider;
use serde::{Deserialize, Serialize};

use crate::instrument::{CRASH_VAR, CrashStep, Instrumented};

/// Database URL of the child's store.
pub const DATABASE_VAR: &str = "SMOKE_DATABASE_URL";
/// `local` or `vercel`.
pub const PROVIDER_VAR: &str = "SMOKE_PROVIDER";
/// Root of the local provider (shared with the parent).
pub const LOCAL_ROOT_VAR: &str = "SMOKE_LOCAL_ROOT";
/// Durable command lease TTL in milliseconds (default: Sandkit's).
pub const LEASE_TTL_VAR: &str = "SMOKE_LEASE_TTL_MS";

/// How long a child keeps retrying a busy workspace with `--retry-busy`.
const RETRY_DEADLINE: Duration = Duration::from_secs(120);

/// What a child does.
#[derive(Debug, Clone, Subcommand)]
pub enum ChildStep {
    /// Runs `sh -c SCRIPT` as a durable command in WORKSPACE.
    Run {
        /// Workspace id.
        workspace: String,
        /// Shell script.
        script: String,
        /// Create the workspace first.
        #[arg(long)]
        create: bool,
        /// Retry while the workspace is busy (or a race was lost).
        #[arg(long)]
        retry_busy: bool,
    },
    /// Attaches to WORKSPACE's live session and runs `sh -c SCRIPT` in it, leaving
    /// the session open.
    Attach {
        /// Workspace id.
        workspace: String,
        /// Shell script.
        script: String,
    },
}

/// What a child reports on its `RESULT` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildResult {
    /// The child's process id.
    pub pid: u32,
    /// Exit code of the command.
    pub exit_code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// The durable run, for `run`.
    pub run_id: Option<String>,
    /// Attempts made (more than 1 after busy retries).
    pub attempts: u32,
}

impl ChildResult {
    fn new(result: &CommandResult, attempts: u32) -> Self {
        ChildResult {
            pid: std::process::id(),
            exit_code: result.exit_code,
            stdout: result.stdout.clone(),
            stderr: result.stderr.clone(),
            run_id: result.run_id.as_ref().map(ToString::to_string),
            attempts,
        }
    }
}

/// Prefix of the result line.
const RESULT_PREFIX: &str = "RESULT ";

/// Runs a child step and returns the process exit code.
pub async fn main(step: ChildStep) -> ExitCode {
    match run(step).await {
        Ok(result) => match serde_json::to_string(&result) {
            Ok(json) => {
                println!("{RESULT_PREFIX}{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ERROR encoding the result: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("ERROR {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").args(["-c", script])
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (the parent sets it)"))
}

async fn sandkit() -> anyhow::Result<Sandkit> {
    let store = SeaOrmStore::connect(&var(DATABASE_VAR)?).await?;
    let provider: Arc<dyn Provider> = match var(PROVIDER_VAR)?.as_str() {
        "local" => Arc::new(crate::context::local_provider(var(LOCAL_ROOT_VAR)?)?),
        "vercel" => Arc::new(VercelProvider::from_env()?),
        other => bail!("{PROVIDER_VAR}={other:?}: expected local or vercel"),
    };
    let crash_at =
        match std::env::var(CRASH_VAR) {
            Ok(raw) => Some(CrashStep::parse(&raw).with_context(|| {
                format!("{CRASH_VAR}={raw:?}: expected start, exec or snapshot")
            })?),
            Err(_) => None,
        };
    let provider = Instrumented::new(provider).crash_at(crash_at);
    let mut builder = Sandkit::builder()
        .store(Arc::new(store))
        .provider(Arc::new(provider));
    if let Ok(raw) = std::env::var(LEASE_TTL_VAR) {
        let ms: u64 = raw
            .parse()
            .with_context(|| format!("{LEASE_TTL_VAR}={raw:?} is not a number of milliseconds"))?;
        builder = builder.command_lease_ttl(Duration::from_millis(ms));
    }
    Ok(builder.build()?)
}

async fn run(step: ChildStep) -> anyhow::Result<ChildResult> {
    let kit = sandkit().await?;
    match step {
        ChildStep::Run {
            workspace,
            script,
            create,
            retry_busy,
        } => {
            if create {
                kit.create_workspace(WorkspaceSpec::new().id(workspace.as_str()))
                    .await?;
            }
            let ws = kit.workspace(&workspace).await?;
            let began = Instant::now();
            let mut attempts = 0;
            loop {
                attempts += 1;
                match ws.run_command(sh(&script)).await {
                    Ok(result) => {
                        // Let background retention finish before this process exits.
                        kit.settle().await;
                        return Ok(ChildResult::new(&result, attempts));
                    }
                    Err(e)
                        if retry_busy
                            && matches!(e.kind(), ErrorKind::Busy | ErrorKind::Conflict)
                            && began.elapsed() < RETRY_DEADLINE =>
                    {
                        tokio::time::sleep(Duration::from_millis(rand::random_range(10..60))).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        ChildStep::Attach { workspace, script } => {
            let ws = kit.workspace(&workspace).await?;
            let session = ws.attach_session().await?;
            let result = session.exec(sh(&script)).await?;
            Ok(ChildResult::new(&result, 1))
        }
    }
}

/// A finished child's output.
#[derive(Debug)]
pub struct ChildOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl ChildOutput {
    /// Collects a finished child's output.
    pub fn from_output(out: std::process::Output) -> Self {
        ChildOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The `RESULT` line of a child that succeeded.
    ///
    /// # Errors
    /// When the child failed or printed no result; the message quotes its stderr.
    pub fn result(&self) -> anyhow::Result<ChildResult> {
        let line = self
            .stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(RESULT_PREFIX));
        match (self.status.success(), line) {
            (true, Some(json)) => serde_json::from_str(json).context("parsing a child's RESULT"),
            _ => bail!(
                "child process failed ({}): {}",
                self.status,
                tail(&self.stderr, 12)
            ),
        }
    }
}

/// Runs a child to its end.
///
/// # Errors
/// When it cannot be started.
pub async fn output(mut cmd: tokio::process::Command) -> anyhow::Result<ChildOutput> {
    let out = cmd.output().await.context("starting a child process")?;
    Ok(ChildOutput::from_output(out))
}

/// The last `lines` lines of `text`, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    let shown = all[start..].join("\n    ");
    if shown.is_empty() {
        "(no output)".to_owned()
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn status(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(code << 8)
    }

    #[cfg(unix)]
    #[test]
    fn the_last_result_line_is_parsed() {
        let out = ChildOutput {
            status: status(0),
            stdout: "noise\nRESULT {\"pid\":7,\"exitCode\":0,\"stdout\":\"hi\\n\",\"stderr\":\"\",\"runId\":null,\"attempts\":2}\n".into(),
            stderr: String::new(),
        };
        let result = out.result().expect("result");
        assert_eq!(result.stdout, "hi\n");
        assert_eq!(result.attempts, 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_failed_child_reports_its_stderr() {
        let out = ChildOutput {
            status: status(1),
            stdout: String::new(),
            stderr: "log\nERROR workspace w is busy\n".into(),
        };
        let err = out.result().expect_err("failed").to_string();
        assert!(err.contains("workspace w is busy"), "{err}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\n\nc\n", 2), "b\n    c");
        assert_eq!(tail("", 3), "(no output)");
    }
}
