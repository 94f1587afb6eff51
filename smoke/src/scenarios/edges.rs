//! Scenario 11, Edges: what happens around the state machine when a process dies or
//! walks away at an awkward moment.
//!
//! - A session commit whose process died after the provider took the snapshot (and
//!   before the store recorded it) is finished by the retry: that snapshot becomes the
//!   head, no second one is taken, the work is kept.
//! - A setup build whose builder died leaves a sandbox named after its claim; the next
//!   use takes the claim over, discards that sandbox and builds the setup.
//! - A session nobody touches expires on time: once its lease reads as gone, its
//!   sandbox is gone at the provider too (on the local provider, its background
//!   process no longer runs).
//! - Output is bytes: binary output arrives exactly (on Vercel, as the text the
//!   service sent: invalid UTF-8 replaced); output over the journal's cap is whole in
//!   the result while the stored copy says it was cut and how much was written.
//! - A secret passed in a command's environment that the command prints is in the
//!   result (the caller's own output) but never in the stored run.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use sandkit_core::policies::{FirewallRules, Policy};
use sandkit_core::{
    ErrorKind, LeaseToken, SessionOptions, SessionRef, SetupBuild, SetupRecord, SetupSpec,
    StartSpec, WorkspaceId, WorkspaceSpec,
};

use crate::context::Ctx;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{run_ok, sh, unique, wait_until};

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    commit_died_after_snapshot(ctx)
        .await
        .context("a session commit that died after its snapshot")?;
    abandoned_setup_build(ctx)
        .await
        .context("a setup build whose builder died")?;
    session_expires_untouched(ctx)
        .await
        .context("a session nobody touches")?;
    output_is_bytes(ctx).await.context("command output")?;
    secrets_never_stored(ctx)
        .await
        .context("a secret in a command's environment")?;
    Ok(Outcome::passed())
}

fn session_ref(ctx: &Ctx, id: String) -> anyhow::Result<SessionRef> {
    Ok(SessionRef {
        provider: ctx.provider()?.id().to_owned(),
        id,
    })
}

/// Whether the provider no longer has `session` (attach says it is unavailable).
async fn gone_at_provider(ctx: &Ctx, session: &SessionRef) -> anyhow::Result<bool> {
    match ctx.provider()?.attach(session).await {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == &ErrorKind::SessionUnavailable => Ok(true),
        Err(e) => Err(e).context("attaching to check the session"),
    }
}

async fn commit_died_after_snapshot(ctx: &Ctx) -> anyhow::Result<()> {
    let kit = ctx.sandkit()?;
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let session = ws.open_session(SessionOptions::new()).await?;
    session.exec(sh("echo kept > work.txt")).await?;
    let reference = session_ref(ctx, session.id())?;
    drop(session);
    // What the dying process did: the provider's snapshot, and nothing more.
    let taken = ctx.provider()?.attach(&reference).await?.snapshot().await?;
    ws.commit_session()
        .await
        .context("the retried commit must succeed")?;
    let record = ctx.record(ws.id()).await?;
    ensure!(
        record.head.as_ref() == Some(&taken),
        "the head is {:?}, not the snapshot the dead commit took ({})",
        record.head,
        taken.id
    );
    ensure!(record.lease.is_none(), "the lease was left behind");
    let out = run_ok(&ws, "cat work.txt").await?;
    ensure!(
        out.stdout == "kept\n",
        "the work was lost: {:?}",
        out.stdout
    );
    Ok(())
}

async fn abandoned_setup_build(ctx: &Ctx) -> anyhow::Result<()> {
    let marker = unique();
    let kit = ctx.build(
        ctx.builder()?.setup(
            SetupSpec::new("sh")
                .args(["-c", &format!("echo {marker} > setup.txt")])
                .policy(Policy::allow_all()),
        ),
    )?;
    let token = LeaseToken::generate();
    let name = format!("sandkit-{}", token.as_str());
    let provider = ctx.provider()?;
    let left = provider
        .start(StartSpec {
            workspace_id: WorkspaceId::new("sandkit-setup")?,
            from: None,
            rules: FirewallRules::AllowAll,
            ports: Vec::new(),
            timeout: Duration::from_secs(300),
            vcpus: None,
            name: Some(name.clone()),
        })
        .await
        .context("starting the dead builder's sandbox")?;
    let left = left.session_ref();
    let at = sandkit_core::now();
    let claim = SetupRecord {
        id: kit.setup_id().context("setup configured")?.to_owned(),
        snapshot: None,
        build: Some(SetupBuild {
            token,
            holder: "gone-host:1:dead".to_owned(),
            expires_at: at - chrono::Duration::seconds(1),
        }),
        revision: 0,
        created_at: at,
        updated_at: at,
    };
    ensure!(
        ctx.store().put_setup_if_absent(&claim).await?,
        "the setup claim already existed"
    );
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let out = run_ok(&ws, "cat setup.txt").await?;
    ensure!(
        out.stdout.trim() == marker,
        "the setup was not built: {:?}",
        out.stdout
    );
    ensure!(
        gone_at_provider(ctx, &left).await?,
        "the dead builder's sandbox {} still exists",
        left.id
    );
    Ok(())
}

async fn session_expires_untouched(ctx: &Ctx) -> anyhow::Result<()> {
    let kit = ctx.sandkit()?;
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let session = ws
        .open_session(SessionOptions::new().timeout(Duration::from_secs(1)))
        .await?;
    // Unique across the backends this smoke run drives at once.
    let marker = format!(
        "{}",
        100_000 + u64::from_str_radix(&unique()[..8], 16).unwrap_or(0) % 800_000
    );
    session
        .start_process(sh(&format!("exec sleep {marker}")))
        .await?;
    let reference = session_ref(ctx, session.id())?;
    drop(session);
    wait_until(
        "the session lease to expire",
        Duration::from_secs(10),
        || async { Ok(ws.lease().await?.is_none()) },
    )
    .await?;
    ws.recover().await?;
    ensure!(
        gone_at_provider(ctx, &reference).await?,
        "the expired session {} still exists at the provider",
        reference.id
    );
    if ctx.local().is_some() {
        ensure!(
            !process_running_with(&marker),
            "the expired session's process `sleep {marker}` still runs"
        );
    }
    Ok(())
}

async fn output_is_bytes(ctx: &Ctx) -> anyhow::Result<()> {
    const CAP: usize = 64;
    let kit = ctx.build(ctx.builder()?.output_cap(CAP))?;
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let sent: &[u8] = b"\x89PNG\r\n\x1a\n\xff\xfe";
    let out = run_ok(&ws, r"printf '\211PNG\r\n\032\n\377\376'").await?;
    let expected = if ctx.fake().is_some() {
        // The service sends output as JSON text.
        String::from_utf8_lossy(sent).into_owned().into_bytes()
    } else {
        sent.to_vec()
    };
    ensure!(
        out.stdout_bytes() == expected.as_slice(),
        "binary output arrived as {:?}, not {expected:?}",
        out.stdout_bytes()
    );
    let long = "x".repeat(CAP * 4);
    let out = run_ok(&ws, &format!("printf {long}")).await?;
    ensure!(out.stdout == long, "the result lost output over the cap");
    let run = out.run_id.clone().context("a journaled run id")?;
    let stored = ws.run(&run).await?;
    ensure!(
        stored.stdout_bytes_written() == Some(long.len() as u64),
        "the stored run does not say {} bytes were written: {:?}",
        long.len(),
        stored.stdout
    );
    Ok(())
}

async fn secrets_never_stored(ctx: &Ctx) -> anyhow::Result<()> {
    let kit = ctx.sandkit()?;
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    let secret = format!("tok-{}", unique());
    let out = ws
        .run_command(sh("printenv API_TOKEN").env("API_TOKEN", &secret))
        .await?;
    ensure!(
        out.stdout.trim() == secret,
        "the command's own output is the caller's: {:?}",
        out.stdout
    );
    let run = out.run_id.clone().context("a journaled run id")?;
    let stored = ws.run(&run).await?;
    let row = format!("{stored:?}");
    ensure!(
        !row.contains(&secret),
        "the stored run holds the secret: {row}"
    );
    Ok(())
}

/// Whether a running process has `arg` as one of its arguments.
fn process_running_with(arg: &str) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .any(|e| {
            let running = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|state| state != "Z" && state != "X")
            });
            running
                && std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|raw| raw.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
        })
}
