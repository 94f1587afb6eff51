//! Scenario 8, Cross-process race: 8 OS processes run durable commands on one workspace at
//! once, each incrementing a counter file (read, increment, write) and retrying while
//! the workspace is busy. The runs are serialised (their lease intervals do not
//! overlap) and nothing is lost: the counter ends at the number of successful runs.

use anyhow::{Context as _, ensure};
use sandkit_core::{RunStatus, WorkspaceSpec};

use crate::backend::ProviderKind;
use crate::child;
use crate::context::Ctx;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{all_runs, run_ok};

/// Processes started at once.
pub const PROCESSES: usize = 8;

/// Read, increment, write.
const INCREMENT: &str = "n=$(cat counter 2>/dev/null || echo 0); echo $((n + 1)) > counter";
/// The fake API's shell has no arithmetic: append a line (a lost update loses a line).
const APPEND: &str = "echo tick >> counter";

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let fake = ctx.backend.provider == ProviderKind::VercelFake;
    let script = if fake { APPEND } else { INCREMENT };
    let kit = ctx.sandkit()?;
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let id = ws.id().as_str();

    let children = (0..PROCESSES).map(|_| {
        let cmd = ctx.child(&["run", "--retry-busy", id, script]);
        child::output(cmd)
    });
    let outputs = futures::future::join_all(children).await;
    let mut successes = 0;
    let mut retries = 0;
    for (i, output) in outputs.into_iter().enumerate() {
        let result = output?.result().with_context(|| format!("process {i}"))?;
        ensure!(
            result.exit_code == 0,
            "process {i}: the increment exited {}: {}",
            result.exit_code,
            result.stderr
        );
        successes += 1;
        retries += result.attempts - 1;
    }

    let counted = if fake {
        run_ok(&ws, "cat counter").await?.stdout.lines().count()
    } else {
        let raw = run_ok(&ws, "cat counter").await?.stdout;
        raw.trim()
            .parse()
            .with_context(|| format!("the counter reads {raw:?}"))?
    };
    ensure!(
        counted == successes,
        "{successes} runs succeeded but the counter reads {counted}: updates were lost"
    );

    let runs: Vec<_> = all_runs(&ws)
        .await?
        .into_iter()
        .filter(|r| r.args.last().map(String::as_str) == Some(script))
        .collect();
    ensure!(
        runs.len() == successes && runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "the journal has {} increment runs with statuses {:?}",
        runs.len(),
        runs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let mut intervals: Vec<_> = runs
        .iter()
        .map(|r| (r.started_at, r.finished_at.unwrap_or(r.started_at)))
        .collect();
    intervals.sort();
    for pair in intervals.windows(2) {
        ensure!(
            pair[0].1 <= pair[1].0,
            "two runs overlapped: one ran {}–{}, the next started at {}",
            pair[0].0,
            pair[0].1,
            pair[1].0
        );
    }
    let holders: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r.holder.as_str()).collect();
    ensure!(
        holders.len() == PROCESSES,
        "expected {PROCESSES} distinct holders, found {}",
        holders.len()
    );
    let mut notes = vec![format!("{successes} increments, {retries} busy retries")];
    if fake {
        notes.push("fake API shell has no arithmetic: each run appends a line".into());
    }
    Ok(Outcome::passed_with(notes))
}
