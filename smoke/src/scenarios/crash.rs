//! Scenario 7, Crash recovery: a child process runs a durable command with a failpoint and is
//! killed with SIGKILL at each step — right after taking the lease (at sandbox
//! start), while the command runs, and after the snapshot but before the commit.
//! The next durable command recovers at once — the killed holder ran on this machine
//! and its process is gone, so its lease is not waited out: the dead run is
//! `interrupted` (its holder died), the head is the last committed one, no lease is
//! left, the dead holder's sandbox is stopped (it is named in the lease from before
//! its start), and the new result is right.

use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use sandkit_core::{ErrorKind, LeaseKind, RunStatus, Sandkit, Workspace, WorkspaceSpec};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout};

use crate::child::{LEASE_TTL_VAR, tail};
use crate::context::Ctx;
use crate::instrument::{CRASH_VAR, CrashStep};
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{run_ok, sh, wait_until};

/// Lease TTL on both sides: short, so that recovery comes quickly.
const TTL: Duration = Duration::from_secs(2);
/// How long a child may take to reach its failpoint.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The fake API's command endpoint.
const CMD: &str = "/v2/sandboxes/sessions/*/cmd";

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let kit = ctx.build(ctx.builder()?.command_lease_ttl(TTL))?;
    let ws = kit.create_workspace(WorkspaceSpec::new()).await?;
    run_ok(&ws, "echo committed-0 > state.txt").await?;
    for (n, step) in CrashStep::ALL.into_iter().enumerate() {
        crash_and_recover(ctx, &kit, &ws, step, n + 1)
            .await
            .with_context(|| format!("killed at {}", step.as_str()))?;
    }
    Ok(Outcome::passed())
}

/// Reads the child's stdout until `READY <step>`; returns the rest of that line.
async fn read_ready(stdout: ChildStdout, step: CrashStep) -> anyhow::Result<String> {
    let mut lines = BufReader::new(stdout).lines();
    let prefix = format!("READY {}", step.as_str());
    let found = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(&prefix) {
                return Ok::<_, std::io::Error>(Some(rest.trim().to_owned()));
            }
        }
        Ok(None)
    })
    .await;
    match found {
        Ok(Ok(Some(detail))) => Ok(detail),
        Ok(Ok(None)) => bail!("the child ended before reaching {prefix}"),
        Ok(Err(e)) => bail!("reading the child's output: {e}"),
        Err(_) => bail!(
            "the child did not reach {prefix} within {}s",
            READY_TIMEOUT.as_secs()
        ),
    }
}

/// Kills the child and returns its stderr, for a failure message.
async fn stderr_of(child: &mut Child, stderr: tokio::task::JoinHandle<String>) -> String {
    let _ = child.start_kill();
    let _ = child.wait().await;
    tokio::time::timeout(Duration::from_secs(5), stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

async fn crash_and_recover(
    ctx: &Ctx,
    kit: &Sandkit,
    ws: &Workspace,
    step: CrashStep,
    n: usize,
) -> anyhow::Result<()> {
    let head_before = ctx.record(ws.id()).await?.head;
    let script = match step {
        CrashStep::Exec => "echo crashed > state.txt; sleep 20",
        _ => "echo crashed > state.txt",
    };
    let sent_before = ctx.fake().map(|f| f.count("POST", CMD));
    let mut cmd = ctx.child(&["run", ws.id().as_str(), script]);
    cmd.env(CRASH_VAR, step.as_str())
        .env(LEASE_TTL_VAR, TTL.as_millis().to_string());
    let mut child = cmd.spawn().context("starting the crash child")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut stderr_pipe = child.stderr.take().context("child stderr")?;
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text).await;
        text
    });

    let prepared = async {
        let detail = read_ready(stdout, step).await?;
        if step == CrashStep::Exec {
            if let (Some(fake), Some(before)) = (ctx.fake(), sent_before) {
                wait_until(
                    "the command to reach the fake API",
                    Duration::from_secs(10),
                    || std::future::ready(Ok(fake.count("POST", CMD) > before)),
                )
                .await?;
            }
            // The lease names the sandbox (from before its start), so recovery can stop it.
            wait_until(
                "the lease to name the sandbox",
                Duration::from_secs(10),
                || async {
                    Ok(ctx
                        .record(ws.id())
                        .await?
                        .lease
                        .is_some_and(|l| l.session.is_some()))
                },
            )
            .await?;
        }
        Ok::<_, anyhow::Error>(detail)
    }
    .await;
    let detail = match prepared {
        Ok(detail) => detail,
        Err(e) => {
            let stderr = stderr_of(&mut child, stderr).await;
            bail!("{e:#}; child stderr:\n    {}", tail(&stderr, 12));
        }
    };

    let lease = ctx
        .record(ws.id())
        .await?
        .lease
        .context("no lease while the child holds the workspace")?;
    ensure!(
        lease.kind == LeaseKind::Command,
        "lease kind {:?}",
        lease.kind
    );
    let dead_run = lease.run_id.clone().context("the lease names no run")?;
    let dead_session = lease.session.clone();

    child.start_kill().context("kill -9")?;
    let status = child.wait().await?;
    ensure!(
        status.signal() == Some(9),
        "the child ended with {status}, not SIGKILL"
    );
    drop(stderr);

    let committed_before = format!("committed-{}\n", n - 1);
    // No waiting: a busy refusal here means the dead holder's lease was waited out.
    let out = ws
        .run_command(sh(&format!(
            "cat state.txt; echo committed-{n} > state.txt"
        )))
        .await
        .context("the next durable command (without waiting for the lease's TTL)")?;
    ensure!(
        out.exit_code == 0,
        "the recovering command exited {}",
        out.exit_code
    );
    ensure!(
        out.stdout == committed_before,
        "the recovering command saw {:?}, not the last commit {committed_before:?}",
        out.stdout
    );

    let record = ctx.record(ws.id()).await?;
    ensure!(
        record.lease.is_none(),
        "a lease was left behind: {:?}",
        record.lease
    );
    let recovered = ws.run(out.run_id.as_ref().context("run id")?).await?;
    ensure!(
        recovered.status == RunStatus::Succeeded,
        "recovering run {:?}",
        recovered.status
    );
    ensure!(
        recovered.base_snapshot == head_before,
        "the recovering run did not start from the last committed head"
    );
    ensure!(
        record.head.is_some() && record.head == recovered.snapshot,
        "the head is not the recovering run's snapshot"
    );
    if step == CrashStep::Snapshot {
        ensure!(!detail.is_empty(), "the child did not name its snapshot");
        ensure!(
            record.head.as_ref().is_some_and(|h| h.id != detail),
            "the uncommitted snapshot {detail} became the head"
        );
    }

    let dead = ws.run(&dead_run).await?;
    ensure!(
        dead.status == RunStatus::Interrupted,
        "the killed run is {:?}, not interrupted",
        dead.status
    );
    ensure!(
        dead.error.as_deref().is_some_and(|e| e.contains("died")),
        "the killed run's error does not explain it: {:?}",
        dead.error
    );
    ensure!(
        dead.snapshot.is_none(),
        "the killed run recorded a snapshot"
    );

    if let Some(fake) = ctx.fake() {
        let running = fake.running_sessions();
        ensure!(
            running.is_empty(),
            "sandboxes still run at the fake Vercel API after recovery: {running:?}"
        );
    }
    if let Some(session) = dead_session {
        match kit.provider().attach(&session).await {
            Err(e) if e.kind() == &ErrorKind::SessionUnavailable => {}
            Err(e) => bail!("attaching to the dead holder's sandbox failed oddly: {e}"),
            Ok(_) => bail!("the dead holder's sandbox {} is still running", session.id),
        }
    }
    Ok(())
}
