//! Scenario 6, Shared setup: one setup definition is built once for several workspaces, also
//! when two Sandkit instances use two cold workspaces at the same moment; when the
//! provider loses the setup snapshot, the next cold workspace rebuilds it once.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait as _, Statement};
use sandkit_core::policies::Policy;
use sandkit_core::{Provider as _, SetupSpec, WorkspaceSpec};

use crate::context::Ctx;
use crate::instrument::Instrumented;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{run_ok, unique};

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

async fn setup_rows(ctx: &Ctx) -> anyhow::Result<i64> {
    let stmt = Statement::from_string(
        ctx.dialect().backend(),
        "SELECT COUNT(*) FROM sandkit_setup_states",
    );
    let row = ctx
        .connection()
        .query_one_raw(stmt)
        .await?
        .context("COUNT(*) returned no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let marker = format!("seed-{}", unique());
    let setup = SetupSpec::new("sh")
        .args(["-c", &format!("echo {marker} > seed.txt")])
        .policy(Policy::allow_all());
    let provider = Instrumented::new(ctx.provider()?);
    let builds = || provider.commands_containing(&marker);
    let kit = |holder: &str| {
        ctx.build(
            ctx.builder_with(Arc::new(provider.clone()))
                .setup(setup.clone())
                .holder(holder),
        )
    };
    let (kit_a, kit_b) = (kit("smoke-a")?, kit("smoke-b")?);
    let setup_id = kit_a.setup_id().context("no setup id")?.to_owned();
    ensure!(
        kit_b.setup_id() == Some(setup_id.as_str()),
        "one definition gave two setup ids"
    );

    // Two instances, two cold workspaces, first use at the same moment.
    let ws1 = kit_a.create_workspace(WorkspaceSpec::new()).await?;
    let ws2 = kit_b.create_workspace(WorkspaceSpec::new()).await?;
    let (one, two) = tokio::join!(run_ok(&ws1, "cat seed.txt"), run_ok(&ws2, "cat seed.txt"));
    let expected = format!("{marker}\n");
    for out in [one?, two?] {
        ensure!(
            out.stdout == expected,
            "a workspace was seeded with {:?}",
            out.stdout
        );
    }
    ensure!(
        builds() == 1,
        "concurrent first uses built the setup {} times",
        builds()
    );

    let ws3 = kit_a.create_workspace(WorkspaceSpec::new()).await?;
    ensure!(
        run_ok(&ws3, "cat seed.txt").await?.stdout == expected,
        "third workspace not seeded"
    );
    kit_b.bootstrap().await?;
    ensure!(
        builds() == 1,
        "a later workspace or bootstrap() rebuilt the setup"
    );
    ensure!(
        setup_rows(ctx).await? == 1,
        "expected exactly one setup state row"
    );

    // The provider loses the setup snapshot: the next cold workspace rebuilds it once.
    let stale = ctx
        .store()
        .get_setup(&setup_id)
        .await?
        .and_then(|r| r.snapshot)
        .context("the setup state has no snapshot")?;
    match ctx.fake() {
        Some(fake) => ensure!(
            fake.expire_snapshot(&stale.id),
            "the fake lost the snapshot"
        ),
        None => provider
            .delete_snapshot(&stale)
            .await
            .context("deleting the setup snapshot at the provider")?,
    }
    let ws4 = kit_b.create_workspace(WorkspaceSpec::new()).await?;
    let out = run_ok(&ws4, "cat seed.txt").await?;
    ensure!(
        out.stdout == expected,
        "after a rebuild the seed reads {:?}",
        out.stdout
    );
    ensure!(
        builds() == 2,
        "a stale setup was built {} times in total, not 2",
        builds()
    );
    let fresh = ctx
        .store()
        .get_setup(&setup_id)
        .await?
        .and_then(|r| r.snapshot)
        .context("the rebuilt setup state has no snapshot")?;
    ensure!(
        fresh != stale,
        "the setup state still points at the lost snapshot"
    );
    ensure!(
        setup_rows(ctx).await? == 1,
        "the rebuild added a setup state row"
    );

    // Workspaces with their own head do not need the setup any more.
    ensure!(
        run_ok(&ws1, "cat seed.txt").await?.stdout == expected,
        "ws1 lost its seed"
    );
    ensure!(builds() == 2, "a committed workspace rebuilt the setup");
    Ok(Outcome::passed())
}
