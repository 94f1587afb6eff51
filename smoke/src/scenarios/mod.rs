//! The scenarios. Each takes a fresh [`Ctx`](crate::context::Ctx), asserts, and
//! returns an [`Outcome`](crate::registry::Outcome) or an error saying what failed.

pub mod corruption;
pub mod crash;
pub mod detached_logs;
pub mod durability;
pub mod edges;
pub mod faults;
pub mod policies;
pub mod race;
pub mod readme;
pub mod session;
pub mod shared_setup;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sandkit_core::{
    CommandResult, CommandSpec, Error, ErrorKind, Order, RunQuery, RunRecord, Workspace,
};

/// `sh -c script`.
pub fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").args(["-c", script])
}

/// A short random suffix for unique names and markers.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// Runs a durable command that must exit 0.
///
/// # Errors
/// When it fails or exits non-zero (the message quotes its stderr).
pub async fn run_ok(ws: &Workspace, script: &str) -> anyhow::Result<CommandResult> {
    let out = ws
        .run_command(sh(script))
        .await
        .with_context(|| format!("durable command {script:?}"))?;
    anyhow::ensure!(
        out.exit_code == 0,
        "durable command {script:?} exited {}: {}",
        out.exit_code,
        out.stderr.trim()
    );
    Ok(out)
}

/// The error of a call that must fail with a kind `matches` accepts.
///
/// # Errors
/// When the call succeeded or failed otherwise.
pub fn expect_err<T: std::fmt::Debug>(
    result: sandkit_core::Result<T>,
    what: &str,
    matches: impl Fn(&ErrorKind) -> bool,
) -> anyhow::Result<Error> {
    match result {
        Ok(value) => bail!("{what} succeeded ({value:?}) but must fail"),
        Err(e) if matches(e.kind()) => Ok(e),
        Err(e) => bail!("{what} failed with the wrong kind {:?}: {e}", e.kind()),
    }
}

/// Every run of a workspace, oldest first.
///
/// # Errors
/// When the journal cannot be read.
pub async fn all_runs(ws: &Workspace) -> anyhow::Result<Vec<RunRecord>> {
    let page = ws
        .runs(RunQuery {
            order: Order::Asc,
            limit: Some(1000),
            ..RunQuery::default()
        })
        .await
        .context("listing runs")?;
    Ok(page.items)
}

/// Retries `call` while it fails with `Busy`, for at most `limit`.
///
/// # Errors
/// The last error when it is not `Busy` or time runs out.
pub async fn retry_busy<T, F, Fut>(limit: Duration, mut call: F) -> sandkit_core::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sandkit_core::Result<T>>,
{
    let began = Instant::now();
    loop {
        match call().await {
            Err(e) if e.kind() == &ErrorKind::Busy && began.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Polls `check` every 20 ms until it holds, for at most `limit`.
///
/// # Errors
/// When it never held (naming `what`), or `check` failed.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let began = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        if began.elapsed() > limit {
            bail!(
                "timed out after {}s waiting for {what}",
                limit.as_secs_f32()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
