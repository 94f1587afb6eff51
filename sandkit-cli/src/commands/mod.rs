//! One module per top-level command.

pub mod generate;
pub mod run;
pub mod runs;
pub mod session;
pub mod workspace;

use std::time::Duration;

use sandkit_adapter_seaorm::SchemaStatus;
use sandkit_core::{Error, ErrorKind, Result};
use serde_json::json as value;

use crate::cli::{BootstrapArgs, Cli, PolicyCommand};
use crate::context::{self, Context, SavedSetup, parse_policy};
use crate::output::{Progress, json};

/// How often `--wait` retries a busy workspace.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Runs `op`; with `--wait` (`wait` is `Some`), retries it while the workspace is busy,
/// forever (`Some(None)`) or until the limit runs out (then the last `Busy` error, which
/// exits with the busy code).
pub async fn while_busy<T, F, Fut>(
    workspace: &str,
    wait: Option<Option<Duration>>,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut announced = false;
    loop {
        match op().await {
            Err(e) if e.kind() == &ErrorKind::Busy && wait.is_some() => {
                let limit = wait.flatten();
                let left = limit.map(|l| l.saturating_sub(started.elapsed()));
                if left.is_some_and(|l| l.is_zero()) {
                    return Err(Error::busy(format!(
                        "gave up waiting for workspace {workspace} after {}: {}",
                        humantime::format_duration(limit.unwrap_or_default()),
                        e.message()
                    )));
                }
                if !announced {
                    let until = limit
                        .map(|l| format!(" (at most {})", humantime::format_duration(l)))
                        .unwrap_or_default();
                    // What holds it, without the advice to wait (we are waiting).
                    let why = e.message().split("; ").next().unwrap_or_default();
                    eprintln!("sandkit: waiting for workspace {workspace}{until}: {why}");
                    announced = true;
                }
                tokio::time::sleep(left.map_or(WAIT_POLL, |l| l.min(WAIT_POLL))).await;
            }
            other => return other,
        }
    }
}

/// `sandkit bootstrap`: save the setup definition and build its snapshot.
pub async fn bootstrap(cli: &Cli, args: &BootstrapArgs) -> Result<i32> {
    if args.clear {
        context::save_setup(cli, None)?;
        eprintln!("sandkit: setup forgotten; new workspaces start fresh");
        return Ok(0);
    }
    let setup = SavedSetup {
        command: args.setup.clone().unwrap_or_default(),
        policy: args
            .setup_policy
            .clone()
            .unwrap_or_else(|| "allow-all".to_owned()),
    };
    // Validate before saving anything.
    setup.spec()?;
    let previous = context::saved_setup(cli)?;
    context::save_setup(cli, Some(&setup))?;
    let built = async {
        let ctx: Context = context::open(cli).await?;
        let mut progress = Progress::new(cli.json);
        progress.show("building the setup snapshot");
        let result = ctx.sandkit.bootstrap().await;
        progress.hide();
        result.map(|()| ctx)
    }
    .await;
    match built {
        Ok(ctx) => {
            let id = ctx.sandkit.setup_id().unwrap_or_default().to_owned();
            if cli.json {
                json(&value!({ "setup": id, "command": setup.command, "policy": setup.policy }))?;
            } else {
                eprintln!("sandkit: setup snapshot ready ({id}); cold workspaces start from it");
            }
            Ok(0)
        }
        Err(e) => {
            // Keep what was configured before: a failing setup changes nothing.
            context::save_setup(cli, previous.as_ref())?;
            Err(e)
        }
    }
}

/// `sandkit policy …` (no store or provider needed).
pub fn policy(command: &PolicyCommand, as_json: bool) -> Result<i32> {
    match command {
        PolicyCommand::Show { spec } => {
            let policy = parse_policy(spec)?.redacted();
            if as_json {
                json(&value!({ "description": policy.describe(), "policy": policy }))?;
            } else {
                outln!("{}", policy.describe());
                json(&policy)?;
            }
            Ok(0)
        }
        PolicyCommand::Check { spec, url } => {
            let policy = parse_policy(spec)?;
            let verdict = policy.evaluate(url);
            if as_json {
                json(&value!({
                    "allowed": verdict.allowed,
                    "service": verdict.service_id,
                    "domain": verdict.domain,
                    "reason": verdict.reason,
                }))?;
            } else if verdict.allowed {
                outln!("allowed: {}", verdict.reason);
            } else {
                outln!("denied: {}", verdict.reason);
            }
            Ok(if verdict.allowed { 0 } else { 1 })
        }
    }
}

/// `sandkit gc`: snapshot retention over every workspace.
pub async fn gc(ctx: &Context, dry_run: bool) -> Result<i32> {
    let report = ctx.sandkit.gc(dry_run).await?;
    if ctx.json {
        json(&report)?;
        return Ok(if report.failed.is_empty() { 0 } else { 1 });
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for snapshot in &report.deleted {
        outln!("{verb} {} ({})", snapshot.id, snapshot.provider);
    }
    for (snapshot, reason) in &report.failed {
        eprintln!(
            "sandkit: could not delete {}: {reason}; the next gc retries it",
            snapshot.id
        );
    }
    eprintln!(
        "sandkit: {} snapshot(s) {verb} ({} referenced by nothing: left by a holder that \
         died before its commit, or a deletion never confirmed), {} kept because still \
         referenced",
        report.deleted.len(),
        report.unreferenced,
        report.kept
    );
    if report.abandoned_setups > 0 {
        let verb = if dry_run { "would end" } else { "ended" };
        eprintln!(
            "sandkit: {verb} {} setup build(s) abandoned by a builder that died (its sandbox              and claim; the next use builds afresh)",
            report.abandoned_setups
        );
    }
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

/// `sandkit migrate [--check | --binary-ids]`.
pub async fn migrate(cli: &Cli, check: bool, binary_ids: bool) -> Result<i32> {
    if !check {
        let store = context::connect_store(cli).await?;
        store.migrate().await?;
        if binary_ids {
            store.convert_ids_to_binary_collation().await?;
        }
        eprintln!("sandkit: database schema is up to date");
        return Ok(0);
    }
    let status = context::connect_store(cli).await?.schema_status().await?;
    if cli.json {
        json(&status_json(&status))?;
    }
    match &status {
        SchemaStatus::Current => eprintln!("sandkit: the Sandkit schema is current"),
        SchemaStatus::Behind { pending } => eprintln!(
            "sandkit: the Sandkit schema is behind (missing: {}); run `sandkit migrate`, or \
             apply what `sandkit generate` writes with your own migrations",
            pending.join(", ")
        ),
        SchemaStatus::Newer { unknown } => eprintln!(
            "sandkit: a newer sandkit migrated this database (it records {}); upgrade sandkit",
            unknown.join(", ")
        ),
    }
    Ok(if status.is_current() { 0 } else { 1 })
}

fn status_json(status: &SchemaStatus) -> serde_json::Value {
    match status {
        SchemaStatus::Current => value!({ "status": "current" }),
        SchemaStatus::Behind { pending } => {
            value!({ "status": "behind", "pending": pending })
        }
        SchemaStatus::Newer { unknown } => {
            value!({ "status": "newer", "unknown": unknown })
        }
    }
}
