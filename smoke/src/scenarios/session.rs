//! Scenario 3, Session lifecycle: open; the lease is observed without being refreshed by reads;
//! extend; `run_command` refused while open; attach from a fresh OS process;
//! background process output; the public URL answers; commit through another handle;
//! the next durable command sees the session's changes; a discarded session keeps
//! the old head.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use sandkit_core::{CommandSpec, ErrorKind, LeaseKind, Session, SessionOptions, WorkspaceSpec};

use crate::backend::ProviderKind;
use crate::child;
use crate::context::Ctx;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{expect_err, run_ok, sh};
use crate::tools::{HTTP_BODY, http_get, serving_line};

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut notes = Vec::new();
    let port = match ctx.backend.provider {
        ProviderKind::Local => free_port()?,
        _ => 3000,
    };
    let kit = ctx.sandkit()?;
    let ws = kit
        .create_workspace(WorkspaceSpec::new().exposed_ports([port]))
        .await?;
    run_ok(&ws, "echo base > base.txt").await?;
    ensure!(
        ws.lease().await?.is_none(),
        "a committed workspace shows a lease"
    );

    let session = ws
        .open_session(SessionOptions::new().timeout(Duration::from_secs(300)))
        .await?;
    let opened = ws.lease().await?.context("no lease after open_session")?;
    ensure!(
        opened.kind == LeaseKind::Session,
        "lease kind {:?}",
        opened.kind
    );
    ensure!(
        opened.session_id.as_deref() == Some(session.id().as_str()),
        "the lease names session {:?}, not {}",
        opened.session_id,
        session.id()
    );
    ensure!(
        opened.expires_at > opened.acquired_at && !opened.remaining.is_zero(),
        "the lease timestamps are inconsistent: {opened:?}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let observed = ws.lease().await?.context("lease vanished")?;
    ensure!(
        observed.expires_at == opened.expires_at && observed.acquired_at == opened.acquired_at,
        "reading the lease changed it: {opened:?} → {observed:?}"
    );

    let extended = session.extend(Duration::from_secs(30)).await?;
    ensure!(
        extended >= opened.expires_at + chrono::Duration::seconds(30),
        "extend(30s) moved the expiry from {} only to {extended}",
        opened.expires_at
    );
    let after_extend = ws.lease().await?.context("lease vanished")?;
    ensure!(
        after_extend.expires_at == extended,
        "the stored lease expires at {}, not at the extended {extended}",
        after_extend.expires_at
    );

    expect_err(
        ws.run_command(sh("true")).await,
        "run_command during a session",
        |k| k == &ErrorKind::Busy,
    )?;

    let wrote = session.exec(sh("echo session > hello.txt")).await?;
    ensure!(
        wrote.exit_code == 0,
        "session exec exited {}",
        wrote.exit_code
    );

    let attached = child::output(ctx.child(&["attach", ws.id().as_str(), "cat hello.txt"]))
        .await?
        .result()
        .context("attaching from a fresh process")?;
    ensure!(
        attached.stdout == "session\n",
        "the attached process read {:?}",
        attached.stdout
    );
    let after_attach = ws.lease().await?.context("lease vanished")?;
    ensure!(
        after_attach.expires_at == extended,
        "attaching refreshed the lease: {extended} → {}",
        after_attach.expires_at
    );

    background_output(&session).await?;
    notes.push(public_url(ctx, &session, port).await?);

    // Commit through a handle attached here; the first handle is then stale.
    ws.attach_session().await?.commit().await?;
    ensure!(ws.lease().await?.is_none(), "commit left the lease");
    expect_err(
        session.exec(sh("true")).await,
        "exec on a committed session",
        |k| k == &ErrorKind::SessionUnavailable,
    )?;
    let seen = run_ok(&ws, "cat hello.txt").await?;
    ensure!(
        seen.stdout == "session\n",
        "the next durable command read {:?}, not the session's change",
        seen.stdout
    );

    // Discard keeps the head.
    let head = ctx.record(ws.id()).await?.head;
    let doomed = ws.open_session(SessionOptions::new()).await?;
    doomed.exec(sh("echo discarded > hello.txt")).await?;
    doomed.discard().await?;
    ensure!(ws.lease().await?.is_none(), "discard left the lease");
    ensure!(
        ctx.record(ws.id()).await?.head == head,
        "discard moved the head"
    );
    let kept = run_ok(&ws, "cat hello.txt").await?;
    ensure!(
        kept.stdout == "session\n",
        "after discard the file reads {:?}",
        kept.stdout
    );

    // A session whose lease expired is no session: the workspace keeps its head.
    let head = ctx.record(ws.id()).await?.head;
    let lapsing = ws
        .open_session(SessionOptions::new().timeout(Duration::from_secs(2)))
        .await?;
    lapsing.exec(sh("echo lapsed > hello.txt")).await?;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    ensure!(
        ws.lease().await?.is_none(),
        "an expired session lease is still reported"
    );
    expect_err(
        ws.attach_session().await,
        "attaching to an expired session",
        |k| k == &ErrorKind::NoActiveSession,
    )?;
    ensure!(
        ctx.record(ws.id()).await?.head == head,
        "an expired session moved the head"
    );
    let after = run_ok(&ws, "cat hello.txt").await?;
    ensure!(
        after.stdout == "session\n",
        "after an expired session the file reads {:?}, not the last commit",
        after.stdout
    );
    Ok(Outcome::passed_with(notes))
}

async fn background_output(session: &Session) -> anyhow::Result<()> {
    let process = session
        .start_process(sh("echo bg-1; echo bg-err >&2; echo bg-2"))
        .await?;
    let listed = session.processes().await?;
    ensure!(
        listed.iter().any(|p| p.id == process.id()),
        "processes() does not list {}",
        process.id()
    );
    let done = process.wait().await?;
    ensure!(
        done.exit_code == 0,
        "background process exited {}",
        done.exit_code
    );
    ensure!(
        done.stdout == "bg-1\nbg-2\n" && done.stderr == "bg-err\n",
        "background output {:?} / {:?}",
        done.stdout,
        done.stderr
    );
    Ok(())
}

/// Checks the public URL of `port`; returns a note on what was checked.
async fn public_url(ctx: &Ctx, session: &Session, port: u16) -> anyhow::Result<String> {
    let url = session.url(port).await?;
    if ctx.backend.provider != ProviderKind::Local {
        ensure!(
            url.starts_with("https://") && url.ends_with(".vercel.run"),
            "unexpected public URL {url}"
        );
        return Ok(
            "public URL checked for Vercel's form only (*.vercel.run is not served here)".into(),
        );
    }
    let server = session
        .start_process(
            CommandSpec::new(ctx.tools.smoke_exe.display().to_string())
                .args(["serve-http".to_owned(), port.to_string()]),
        )
        .await?;
    let mut logs = server.logs();
    let ready = serving_line(port);
    let mut printed = String::new();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = logs.next().await {
            printed.push_str(&chunk?.text());
            if printed.contains(&ready) {
                return Ok(true);
            }
        }
        Ok::<_, sandkit_core::Error>(false)
    })
    .await;
    ensure!(
        matches!(waited, Ok(Ok(true))),
        "the server in the session never said it listens (output {printed:?})"
    );
    let body = http_get(&url).await?;
    ensure!(body == HTTP_BODY, "{url} answered {body:?}");
    server.kill().await?;
    Ok(String::new())
}
