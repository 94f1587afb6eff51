//! `sandkit run`: one durable command, streamed live, exit code passed through.

use std::path::{Component, Path};

use futures::StreamExt;
use sandkit_core::{Command, CommandPhase, CommandSpec, Error, ErrorKind, Result};

use crate::cli::{ProviderKind, RunArgs};
use crate::context::{Context, parse_policy};
use crate::output::{Progress, SIGPIPE_EXIT, Written, write_chunk};
use crate::signals::{Signals, until_signal};

/// Refuses a `--cwd` the provider would refuse only after the run is journaled: on the
/// local provider, a relative path climbing out of the workspace with `..`.
fn check_cwd(cwd: &str, provider: ProviderKind) -> Result<()> {
    if provider != ProviderKind::Local || Path::new(cwd).is_absolute() {
        return Ok(());
    }
    let mut depth: i64 = 0;
    for component in Path::new(cwd).components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(Error::invalid_input(format!(
                "--cwd {cwd:?} leaves the workspace; pass a directory inside it (relative to \
                 the workspace root), without `..` climbing above it"
            )));
        }
    }
    Ok(())
}

/// Builds and validates the command spec before anything is opened or written.
pub fn prepare(args: &RunArgs, provider: ProviderKind) -> Result<CommandSpec> {
    let mut spec =
        CommandSpec::new(args.command[0].clone()).args(args.command[1..].iter().cloned());
    if let Some(policy) = &args.policy {
        spec = spec.policy(parse_policy(policy)?);
    }
    if let Some(timeout) = args.timeout {
        spec = spec.timeout(timeout);
    }
    if let Some(cwd) = &args.cwd {
        check_cwd(cwd, provider)?;
        spec = spec.cwd(cwd.clone());
    }
    for (k, v) in &args.env {
        spec = spec.env(k.clone(), v.clone());
    }
    if let Some(key) = &args.idempotency_key {
        spec = spec.idempotency_key(key.clone());
    }
    spec.validate()?;
    sandkit_core::WorkspaceId::new(args.workspace.as_str())?;
    Ok(spec)
}

/// Runs the prepared command in the workspace (created if missing).
pub async fn run(ctx: &Context, args: &RunArgs, spec: CommandSpec) -> Result<i32> {
    let mut signals = Signals::listen()?;
    // A policy the provider cannot enforce is refused before the workspace is created.
    if let Some(policy) = &args.policy {
        let provider = ctx.sandkit.provider();
        provider
            .capabilities()
            .check_policy(provider.id(), &parse_policy(policy)?)?;
    }
    let ws = ctx.workspace_or_create(&args.workspace, &[]).await?;
    let start = crate::commands::while_busy(&args.workspace, args.wait, || {
        ws.spawn_command(spec.clone())
    });
    let cmd = match signals.unless_signal(start).await {
        Ok(cmd) => cmd?,
        Err(code) => return Ok(code),
    };
    until_signal(signals, &cmd, follow(cmd.clone())).await
}

/// Streams output live (raw bytes, any size), shows progress between phases, returns
/// the exit code. When our stdout is closed (`| head`), the command is hung up: it is
/// interrupted (journaled as such, the workspace keeps its head) and we exit 141.
async fn follow(cmd: Command) -> Result<i32> {
    let mut progress = Progress::new(false);
    let mut phase = cmd.phase();
    let mut logs = cmd.logs();
    let mut logs_done = false;
    let mut phase_closed = false;
    let mut shown = None;
    loop {
        let current = *phase.borrow_and_update();
        if shown != Some(current) {
            match current {
                CommandPhase::Starting => progress.show("starting sandbox"),
                CommandPhase::Committing => progress.show("snapshotting and committing"),
                _ => progress.hide(),
            }
            shown = Some(current);
        }
        if logs_done && (phase_closed || current == CommandPhase::Done) {
            break;
        }
        tokio::select! {
            chunk = logs.next(), if !logs_done => match chunk {
                Some(Ok(chunk)) => {
                    progress.hide();
                    shown = None;
                    if write_chunk(&chunk) == Written::StdoutClosed {
                        drop(logs);
                        return hang_up(&cmd).await;
                    }
                }
                // Errors surface through wait() below.
                Some(Err(_)) | None => logs_done = true,
            },
            changed = phase.changed(), if !phase_closed => {
                phase_closed = changed.is_err();
            }
        }
    }
    progress.hide();
    let result = cmd.wait().await?;
    if result.replayed {
        eprintln!(
            "sandkit: idempotency key matched run {}; its recorded result was replayed",
            result.run_id.as_ref().map(|r| r.as_str()).unwrap_or("?")
        );
    }
    Ok(result.exit_code)
}

/// Our stdout was closed by its reader: stops the command before it commits, waits
/// until its run is journaled as interrupted, and returns [`SIGPIPE_EXIT`]. A command
/// that already exited commits as usual.
async fn hang_up(cmd: &Command) -> Result<i32> {
    cmd.interrupt("its output was no longer read (stdout closed)");
    match cmd.wait().await {
        Ok(_) => Ok(SIGPIPE_EXIT),
        Err(e) if e.kind() == &ErrorKind::Interrupted => Ok(SIGPIPE_EXIT),
        Err(e) => Err(e),
    }
}
