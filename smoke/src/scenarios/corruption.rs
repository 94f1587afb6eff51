//! Scenario 5, Corruption: each JSON column of Sandkit's tables, overwritten with raw SQL, makes
//! the Sandkit API fail with `ErrorKind::Corrupt` naming `table.column` — and the row is
//! left as it was (no silent reset). A corrupt setup snapshot reference is rebuilt.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use sandkit_core::policies::Policy;
use sandkit_core::{Error, ErrorKind, RunQuery, SessionOptions, SetupSpec, WorkspaceSpec};

use crate::context::Ctx;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{run_ok, unique};
use crate::sql;

/// What the scenario writes into a column (not JSON; on servers, a JSON string).
const GARBAGE: &str = "{";

/// Workspace JSON columns whose rows need no lease.
const WORKSPACE_COLUMNS: [&str; 4] = ["metadata", "policy", "sandbox_config", "head"];
/// Workspace JSON columns of the lease (corrupted under a live session lease).
const LEASE_COLUMNS: [&str; 2] = ["lease_session", "lease_policy"];
/// Run JSON columns.
const RUN_COLUMNS: [&str; 4] = ["args", "env_keys", "base_snapshot", "provider_commit"];

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

/// Checks `err` is `Corrupt` naming `table.column`.
fn is_corrupt(err: &Error, table: &str, column: &str) -> anyhow::Result<()> {
    match err.kind() {
        ErrorKind::Corrupt {
            table: t,
            column: c,
            ..
        } if t == table && c == column => {}
        other => bail!("corrupting {table}.{column} gave {other:?}: {err}"),
    }
    ensure!(
        err.to_string().contains(&format!("{table}.{column}")),
        "the message does not name {table}.{column}: {err}"
    );
    Ok(())
}

fn must_fail<T>(result: sandkit_core::Result<T>, what: &str) -> anyhow::Result<Error> {
    match result {
        Ok(_) => bail!("{what} succeeded on a corrupt row"),
        Err(e) => Ok(e),
    }
}

/// Corrupts `table.column` of row `id`, returns what it now reads as.
async fn corrupt(ctx: &Ctx, table: &str, column: &str, id: &str) -> anyhow::Result<String> {
    sql::corrupt_json(ctx.connection(), ctx.dialect(), table, column, id, GARBAGE).await
}

/// Checks the corrupt value is still there after Sandkit read it.
async fn untouched(
    ctx: &Ctx,
    table: &str,
    column: &str,
    id: &str,
    raw: &str,
) -> anyhow::Result<()> {
    let now = sql::read_text(ctx.connection(), ctx.dialect(), table, column, id).await?;
    ensure!(
        now.as_deref() == Some(raw),
        "{table}.{column} was rewritten after being read: {now:?}"
    );
    Ok(())
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let kit = ctx.sandkit()?;
    let table = "sandkit_workspaces";
    for column in WORKSPACE_COLUMNS {
        let ws = kit
            .create_workspace(WorkspaceSpec::new().id(format!("corrupt-{column}-{}", unique())))
            .await?;
        let id = ws.id().as_str();
        let raw = corrupt(ctx, table, column, id).await?;
        let err = must_fail(kit.workspace(id).await, "opening the workspace")?;
        is_corrupt(&err, table, column)?;
        untouched(ctx, table, column, id, &raw).await?;
    }
    for column in LEASE_COLUMNS {
        let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
        let session = ws
            .open_session(
                SessionOptions::new()
                    .timeout(Duration::from_secs(120))
                    .policy(Policy::allow_all()),
            )
            .await?;
        let id = ws.id().as_str();
        let raw = corrupt(ctx, table, column, id).await?;
        let err = must_fail(ws.lease().await, "reading the lease")?;
        is_corrupt(&err, table, column)?;
        let err = must_fail(
            session.exec(crate::scenarios::sh("true")).await,
            "session exec",
        )?;
        is_corrupt(&err, table, column)?;
        untouched(ctx, table, column, id, &raw).await?;
        // The sandbox is not reachable through the corrupt row; stop it directly.
        ctx.provider()?
            .attach(&sandkit_core::SessionRef {
                provider: kit.provider().id().to_owned(),
                id: session.id(),
            })
            .await?
            .stop()
            .await?;
    }

    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let mut runs = Vec::new();
    for column in RUN_COLUMNS {
        let out = run_ok(&ws, &format!("echo {column} > last.txt")).await?;
        runs.push(out.run_id.context("a durable run without an id")?);
    }
    // Let retention finish with these runs before their rows are corrupted.
    kit.settle().await;
    let policy_snapshot = ws
        .run(&runs[0])
        .await?
        .policy_snapshot_id
        .context("the run has no policy snapshot")?;
    for (column, run_id) in RUN_COLUMNS.into_iter().zip(&runs) {
        let raw = corrupt(ctx, "sandkit_runs", column, run_id.as_str()).await?;
        let err = must_fail(ws.run(run_id).await, "reading the run")?;
        is_corrupt(&err, "sandkit_runs", column)?;
        untouched(ctx, "sandkit_runs", column, run_id.as_str(), &raw).await?;
    }
    let err = must_fail(ws.runs(RunQuery::default()).await, "listing runs")?;
    ensure!(
        matches!(err.kind(), ErrorKind::Corrupt { table, .. } if table == "sandkit_runs"),
        "listing corrupt runs gave {err}"
    );
    let raw = corrupt(ctx, "sandkit_policies", "config", &policy_snapshot).await?;
    let err = must_fail(
        kit.store().get_policy_snapshot(&policy_snapshot).await,
        "reading the policy snapshot",
    )?;
    is_corrupt(&err, "sandkit_policies", "config")?;
    untouched(ctx, "sandkit_policies", "config", &policy_snapshot, &raw).await?;

    let note = setup_states(ctx).await?;
    Ok(Outcome::passed_with(vec![note]))
}

/// `sandkit_setup_states`: a corrupt snapshot reference is `Corrupt` when read, and
/// Sandkit's bootstrap rebuilds the setup instead of failing; the `state` column is a
/// mirror kept for the TypeScript original and never read.
async fn setup_states(ctx: &Ctx) -> anyhow::Result<String> {
    let table = "sandkit_setup_states";
    let setup = SetupSpec::new("sh")
        .args(["-c", "echo seeded > seed.txt"])
        .policy(Policy::allow_all());
    let kit = ctx.build(ctx.builder()?.setup(setup))?;
    kit.bootstrap().await?;
    let id = kit.setup_id().context("no setup id")?.to_owned();

    corrupt(ctx, table, "state", &id).await?;
    let read = kit.store().get_setup(&id).await;
    ensure!(
        matches!(&read, Ok(Some(r)) if r.snapshot.is_some()),
        "a corrupt {table}.state broke reading the setup: {read:?}"
    );

    let raw = corrupt(ctx, table, "snapshot", &id).await?;
    let err = must_fail(kit.store().get_setup(&id).await, "reading the setup")?;
    is_corrupt(&err, table, "snapshot")?;
    untouched(ctx, table, "snapshot", &id, &raw).await?;
    kit.bootstrap()
        .await
        .context("bootstrap over a corrupt setup state")?;
    let rebuilt = kit.store().get_setup(&id).await?;
    ensure!(
        rebuilt.is_some_and(|r| r.snapshot.is_some()),
        "bootstrap did not rebuild the corrupt setup state"
    );
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let seeded = run_ok(&ws, "cat seed.txt").await?;
    ensure!(
        seeded.stdout == "seeded\n",
        "the rebuilt setup seeds {:?}",
        seeded.stdout
    );
    Ok(format!(
        "{table}.state is a write-only mirror (ignored); a corrupt {table}.snapshot is rebuilt"
    ))
}
