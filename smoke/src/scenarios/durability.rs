//! Scenario 1, Durability across process restarts: one OS process writes a file with a durable
//! command and exits; a fresh OS process with a fresh `Sandkit` on the same database
//! reads it back.

use anyhow::{Context as _, ensure};
use sandkit_core::RunStatus;

use crate::child;
use crate::context::Ctx;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{all_runs, unique};

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let id = format!("durable-{}", unique());
    let write = child::output(ctx.child(&[
        "run",
        "--create",
        &id,
        "echo 'hello from sandkit' > hello.txt",
    ]))
    .await?
    .result()
    .context("the writing process")?;
    ensure!(
        write.exit_code == 0,
        "writing exited {}: {}",
        write.exit_code,
        write.stderr
    );

    let read = child::output(ctx.child(&["run", &id, "cat hello.txt"]))
        .await?
        .result()
        .context("the reading process")?;
    ensure!(
        read.stdout == "hello from sandkit\n",
        "a fresh process read {:?} instead of what the first one wrote",
        read.stdout
    );
    let me = std::process::id();
    ensure!(
        write.pid != read.pid && write.pid != me && read.pid != me,
        "writer, reader and smoke runner must be three OS processes"
    );

    // A third Sandkit, in this process, sees the journal both processes left.
    let kit = ctx.sandkit()?;
    let ws = kit.workspace(&id).await?;
    let runs = all_runs(&ws).await?;
    ensure!(runs.len() == 2, "expected 2 runs, found {}", runs.len());
    ensure!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "runs are not all succeeded: {:?}",
        runs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let ids: Vec<Option<String>> = runs.iter().map(|r| Some(r.id.to_string())).collect();
    ensure!(
        ids == [write.run_id, read.run_id],
        "the journal does not list the two processes' runs in order"
    );
    ensure!(
        runs[0].holder != runs[1].holder,
        "both runs claim the same holder {:?}",
        runs[0].holder
    );
    let record = ctx.record(ws.id()).await?;
    ensure!(record.lease.is_none(), "a lease was left behind");
    ensure!(
        record.head.is_some() && record.head == runs[1].snapshot,
        "the head is not the last run's snapshot"
    );
    Ok(Outcome::passed())
}
