//! Scenario 9, Provider faults on the fake Vercel API: a 429 with `Retry-After` and a 503
//! (the service refused) on a command are retried transparently; a 500 on a command (it may
//! have run), a persistent 503, a dropped NDJSON stream and an expired head snapshot are
//! typed errors; a sandbox created or a snapshot taken behind a 502 is found and used. A
//! command never runs twice (the fake's request log and the workspace's file both show
//! it), the workspace is never left corrupted or leased (the next command works from the
//! right head), and `reset()` recovers from an expired head.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use sandkit_core::{ErrorKind, RunStatus, Workspace, WorkspaceSpec};
use sandkit_vercel::fake::{FakeVercel, Fault};

use crate::context::Ctx;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{all_runs, expect_err, run_ok, sh};

const CREATE: &str = "/v3/sandboxes";
const CMD: &str = "/v2/sandboxes/sessions/*/cmd";
const SNAPSHOT: &str = "/v2/sandboxes/sessions/*/snapshot";

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

/// Request counts of the two endpoints a durable command starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    creates: usize,
    commands: usize,
}

impl Sent {
    fn now(fake: &FakeVercel) -> Sent {
        Sent {
            creates: fake.count("POST", CREATE),
            commands: fake.count("POST", CMD),
        }
    }

    fn since(fake: &FakeVercel, before: Sent) -> Sent {
        let now = Sent::now(fake);
        Sent {
            creates: now.creates - before.creates,
            commands: now.commands - before.commands,
        }
    }
}

/// Checks the workspace is unleased and still at `head`.
async fn unchanged(
    ctx: &Ctx,
    ws: &Workspace,
    head: &Option<sandkit_core::SnapshotRef>,
) -> anyhow::Result<()> {
    let record = ctx.record(ws.id()).await?;
    ensure!(record.lease.is_none(), "a lease was left behind");
    ensure!(
        &record.head == head,
        "the head moved after a failed command"
    );
    Ok(())
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let fake = ctx
        .fake()
        .context("provider-faults needs the fake Vercel API")?;
    let kit = ctx.sandkit()?;
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    run_ok(&ws, "echo v1 > f; echo base >> runs.txt").await?;

    // 429 with Retry-After on create: waited out, one sandbox, one command.
    let before = Sent::now(fake);
    fake.inject(Fault::rate_limited(1).on("POST", CREATE));
    let began = Instant::now();
    run_ok(&ws, "echo after-429 >> runs.txt")
        .await
        .context("after a 429")?;
    ensure!(
        began.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    let sent = Sent::since(fake, before);
    ensure!(
        sent == Sent {
            creates: 2,
            commands: 1
        },
        "a 429 on create led to {sent:?}"
    );

    // 503 on the command request (the service refused it): retried, runs once.
    let before = Sent::now(fake);
    fake.inject(Fault::status(503).on("POST", CMD));
    run_ok(&ws, "echo after-503 >> runs.txt")
        .await
        .context("after a 503")?;
    let sent = Sent::since(fake, before);
    ensure!(
        sent == Sent {
            creates: 1,
            commands: 2
        },
        "a 503 on the command led to {sent:?}"
    );

    // 500 on the command request: it may have run, so it is never sent again; a typed,
    // retryable error (the sandbox is discarded, so the workspace is untouched).
    let head = ctx.record(ws.id()).await?.head;
    let before = Sent::now(fake);
    fake.inject(Fault::status(500).on("POST", CMD));
    let err = expect_err(
        ws.run_command(sh("echo after-500 >> runs.txt")).await,
        "a command answered with 500",
        |k| {
            matches!(
                k,
                ErrorKind::Provider {
                    status: Some(500),
                    ..
                }
            )
        },
    )?;
    ensure!(err.is_retryable(), "a 500 is not reported retryable");
    let sent = Sent::since(fake, before);
    ensure!(
        sent.commands == 1,
        "a 500 on the command led to {} command requests",
        sent.commands
    );
    unchanged(ctx, &ws, &head).await?;

    // Persistent 503 on create: retried until attempts run out, then a typed, retryable
    // error; nothing changes.
    fake.inject(Fault::status(503).on("POST", CREATE).times(3));
    let err = expect_err(
        ws.run_command(sh("echo never >> runs.txt")).await,
        "a command while create answers 503",
        |k| {
            matches!(
                k,
                ErrorKind::Provider {
                    status: Some(503),
                    ..
                }
            )
        },
    )?;
    ensure!(err.is_retryable(), "a 503 is not reported retryable");
    unchanged(ctx, &ws, &head).await?;

    // Dropped NDJSON stream: a typed error, the command is not sent again.
    let before = Sent::now(fake);
    fake.inject(Fault::drop_stream().on("POST", CMD));
    expect_err(
        ws.run_command(sh("echo dropped >> runs.txt")).await,
        "a command whose output stream drops",
        |k| matches!(k, ErrorKind::Provider { code: Some(code), .. } if code == "stream_ended_early"),
    )?;
    let sent = Sent::since(fake, before);
    ensure!(
        sent.commands == 1,
        "a dropped stream led to {} command requests",
        sent.commands
    );
    unchanged(ctx, &ws, &head).await?;

    // A 502 after the snapshot was taken: found, committed, not taken again.
    let snapshots = fake.count("POST", SNAPSHOT);
    fake.inject(Fault::fail_after(502).on("POST", SNAPSHOT));
    run_ok(&ws, "echo after-502 >> runs.txt")
        .await
        .context("after a 502 on the snapshot")?;
    ensure!(
        fake.count("POST", SNAPSHOT) == snapshots + 1,
        "the snapshot request was sent again"
    );

    // A 502 after the sandbox was created: found by its name and used, not created
    // twice (nor left running).
    let before = Sent::now(fake);
    fake.inject(Fault::fail_after(502).on("POST", CREATE));
    run_ok(&ws, "echo after-create-502 >> runs.txt")
        .await
        .context("after a 502 on create")?;
    let sent = Sent::since(fake, before);
    ensure!(
        sent == Sent {
            creates: 1,
            commands: 1
        },
        "a 502 on create led to {sent:?}"
    );

    let history = run_ok(&ws, "cat runs.txt").await?;
    ensure!(
        history.stdout == "base\nafter-429\nafter-503\nafter-502\nafter-create-502\n",
        "commands ran twice or failed ones were committed: runs.txt reads {:?}",
        history.stdout
    );

    // Expired head snapshot: SnapshotUnavailable naming it; reset() recovers.
    let head = ctx.record(ws.id()).await?.head.context("no head")?;
    ensure!(
        fake.expire_snapshot(&head.id),
        "the fake does not know the head"
    );
    let err = expect_err(
        ws.run_command(sh("cat f")).await,
        "a command from an expired head",
        |k| k == &ErrorKind::SnapshotUnavailable,
    )?;
    ensure!(
        err.to_string().contains(&head.id) && err.to_string().contains("reset()"),
        "the error does not name the snapshot and the way out: {err}"
    );
    unchanged(ctx, &ws, &Some(head)).await?;
    ws.reset().await?;
    ensure!(
        ctx.record(ws.id()).await?.head.is_none(),
        "reset() kept the head"
    );
    let fresh = run_ok(&ws, "echo fresh > f; cat f").await?;
    ensure!(
        fresh.stdout == "fresh\n",
        "after reset the command printed {:?}",
        fresh.stdout
    );
    ensure!(
        run_ok(&ws, "cat f").await?.stdout == "fresh\n",
        "the reset workspace lost its commit"
    );

    let runs = all_runs(&ws).await?;
    ensure!(
        runs.iter().all(|r| r.status != RunStatus::Started),
        "a run was left started"
    );
    let failed = runs
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .count();
    ensure!(
        failed == 4,
        "expected 4 failed runs (500, 503 on create, dropped stream, expired head), found {failed}"
    );
    Ok(Outcome::passed())
}
