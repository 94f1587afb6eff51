//! `sandkit session …`: sessions that outlive the invocation that opened them.

use std::io::Write;

use futures::StreamExt;
use sandkit_core::{CommandSpec, Result, SessionOptions};
use serde_json::json as value;

use crate::cli::SessionCommand;
use crate::context::{Context, parse_policy};
use crate::output::{Progress, SIGPIPE_EXIT, Written, json, pipe_logs, table, time, write_chunk};
use crate::signals::{Signals, until_signal_then};

pub async fn run(ctx: &Context, command: SessionCommand) -> Result<i32> {
    let kit = &ctx.sandkit;
    match command {
        SessionCommand::Open {
            workspace,
            timeout,
            policy,
            ports,
            wait,
        } => {
            // A policy the provider cannot enforce is refused before the workspace is created.
            if let Some(policy) = &policy {
                let provider = kit.provider();
                provider
                    .capabilities()
                    .check_policy(provider.id(), &parse_policy(policy)?)?;
            }
            let ws = ctx.workspace_or_create(&workspace, &ports).await?;
            let missing: Vec<u16> = ports
                .iter()
                .copied()
                .filter(|p| !ws.record().sandbox_config.exposed_ports.contains(p))
                .collect();
            if !missing.is_empty() {
                let mut all = ws.record().sandbox_config.exposed_ports.clone();
                all.extend(missing);
                ws.set_exposed_ports(all).await?;
            }
            let mut opts = SessionOptions::new();
            if let Some(timeout) = timeout {
                opts = opts.timeout(timeout);
            }
            if let Some(policy) = &policy {
                opts = opts.policy(parse_policy(policy)?);
            }
            let mut progress = Progress::new(ctx.json);
            progress.show("starting sandbox");
            let session =
                crate::commands::while_busy(&workspace, wait, || ws.open_session(opts.clone()))
                    .await;
            progress.hide();
            let lease = session?.lease().await?;
            if ctx.json {
                json(&lease)?;
            } else {
                outln!(
                    "session {} open on workspace {workspace} until {}",
                    lease.session_id.as_deref().unwrap_or("?"),
                    time(lease.expires_at)
                );
            }
        }
        SessionCommand::Status { workspace } => {
            let ws = kit.workspace(&workspace).await?;
            // An expired lease is recovered first, so "no live session" is only said
            // once nothing of the session runs.
            // Best effort: a read-only home still gets the stored status.
            if let Err(e) = ws.recover().await {
                tracing::debug!(error = %e, "could not recover an expired lease before the status");
            }
            let lease = ws.lease().await?;
            if ctx.json {
                json(&value!({ "workspace": workspace, "lease": lease }))?;
            } else {
                match lease {
                    Some(l) => outln!(
                        "{} lease held by {} until {} ({}s left){}",
                        l.kind.as_str(),
                        l.holder,
                        time(l.expires_at),
                        l.remaining.as_secs(),
                        l.session_id
                            .map(|s| format!(", session {s}"))
                            .unwrap_or_default()
                    ),
                    None => outln!("no live session or command on workspace {workspace}"),
                }
            }
        }
        SessionCommand::Exec {
            workspace,
            policy,
            command,
        } => {
            let session = kit.workspace(&workspace).await?.attach_session().await?;
            let mut spec = CommandSpec::new(command[0].clone()).args(command[1..].iter().cloned());
            if let Some(policy) = &policy {
                spec = spec.policy(parse_policy(policy)?);
            }
            let signals = Signals::listen()?;
            let mut handle = session.exec_streaming(spec).await?;
            let process = handle.id.clone();
            let follow = async move {
                while let Some(chunk) = handle.output.next().await {
                    if write_chunk(&chunk?) == Written::StdoutClosed {
                        // The command runs on in the session; we stop following it.
                        return Ok(SIGPIPE_EXIT);
                    }
                }
                handle.exit.await
            };
            // Ctrl-C / SIGTERM stop the command, not the session (it stays open).
            return until_signal_then(signals, follow, |name| {
                let (session, process) = (&session, &process);
                async move {
                    eprintln!(
                        "sandkit: {name}: stopping the command in the session of workspace \
                         {workspace} (the session stays open); press Ctrl-C again to exit \
                         at once"
                    );
                    if let Err(e) = session.kill(process).await {
                        let _ = writeln!(
                            std::io::stderr(),
                            "sandkit: could not stop the command: {e}"
                        );
                    }
                }
            })
            .await;
        }
        SessionCommand::Start { workspace, command } => {
            let session = kit.workspace(&workspace).await?.attach_session().await?;
            let spec = CommandSpec::new(command[0].clone()).args(command[1..].iter().cloned());
            let process = session.start_process(spec).await?;
            if ctx.json {
                json(&value!({ "workspace": workspace, "process": process.id() }))?;
            } else {
                outln!("{}", process.id());
            }
        }
        SessionCommand::Logs {
            workspace,
            process,
            follow,
        } => {
            let session = kit.workspace(&workspace).await?.attach_session().await?;
            match process {
                Some(id) => return pipe_logs(session.process_logs(&id).await?, follow).await,
                None => {
                    let processes = session.processes().await?;
                    if ctx.json {
                        json(&processes)?;
                    } else {
                        let rows: Vec<Vec<String>> = processes
                            .iter()
                            .map(|p| {
                                vec![
                                    p.id.clone(),
                                    p.exit_code.map_or_else(
                                        || "running".to_owned(),
                                        |c| format!("exited {c}"),
                                    ),
                                    p.command.join(" "),
                                ]
                            })
                            .collect();
                        table(&["PROCESS", "STATE", "COMMAND"], &rows);
                    }
                }
            }
        }
        SessionCommand::Url { workspace, port } => {
            let session = kit.workspace(&workspace).await?.attach_session().await?;
            outln!("{}", session.url(port).await?);
        }
        SessionCommand::Extend { workspace, by } => {
            let session = kit.workspace(&workspace).await?.attach_session().await?;
            let until = session.extend(by).await?;
            if ctx.json {
                json(&value!({ "workspace": workspace, "expiresAt": until }))?;
            } else {
                outln!(
                    "session on workspace {workspace} extended until {}",
                    time(until)
                );
            }
        }
        SessionCommand::Commit { workspace } => {
            let ws = kit.workspace(&workspace).await?;
            let mut progress = Progress::new(ctx.json);
            progress.show("snapshotting and committing");
            // Also finishes a commit whose process died after taking the snapshot.
            let committed = ws.commit_session().await;
            progress.hide();
            committed?;
            eprintln!("sandkit: session committed; workspace {workspace} has a new head");
        }
        SessionCommand::Discard { workspace } => {
            let session = kit.workspace(&workspace).await?.attach_session().await?;
            session.discard().await?;
            eprintln!("sandkit: session discarded; workspace {workspace} keeps its last commit");
        }
    }
    Ok(0)
}
