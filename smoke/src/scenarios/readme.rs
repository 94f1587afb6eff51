//! Scenario 10, The README quick start, run verbatim: the commands between the
//! `<!-- quickstart:begin -->` and `<!-- quickstart:end -->` markers run in `sh` in a
//! fresh directory, with a `cargo` shell function that runs the built `sandkit`
//! binary for `cargo run -p sandkit-cli -- …`. On `local/sqlite` that is exactly the
//! embedded default; on the other backends the environment (`SANDKIT_DATABASE_URL`,
//! `SANDKIT_PROVIDER`, the fake API's URL and credentials) selects the backend while
//! the commands stay verbatim.

use anyhow::{Context as _, bail, ensure};
use sandkit_core::RunStatus;

use crate::backend::{DatabaseKind, ProviderKind};
use crate::child::tail;
use crate::context::{Ctx, apply_env};
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::all_runs;

/// The README this binary was built from.
const README: &str = include_str!("../../../README.md");

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

/// The quick start's command lines.
///
/// # Errors
/// When the markers are missing.
pub fn quick_start(readme: &str) -> anyhow::Result<Vec<String>> {
    let begin = readme
        .find("<!-- quickstart:begin -->")
        .context("README.md has no <!-- quickstart:begin --> marker")?;
    let end = readme
        .find("<!-- quickstart:end -->")
        .context("README.md has no <!-- quickstart:end --> marker")?;
    ensure!(begin < end, "the quickstart markers are out of order");
    Ok(readme[begin..end]
        .lines()
        .filter(|l| !l.starts_with("```") && !l.starts_with("<!--") && !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

/// `cargo run -p sandkit-cli -- ARGS` runs `$SANDKIT_BIN ARGS`; anything else is cargo.
const SHIM: &str = r#"cargo() {
  if [ "$1" = run ] && [ "$2" = -p ] && [ "$3" = sandkit-cli ] && [ "$4" = -- ]; then
    shift 4; "$SANDKIT_BIN" "$@"
  else
    command cargo "$@"
  fi
}
"#;

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let bin = ctx.tools.sandkit_exe.as_ref().context(
        "the sandkit binary was not found next to sandkit-smoke; build it with \
         `cargo build -p sandkit-cli` or pass --sandkit-bin",
    )?;
    let commands = quick_start(README)?;
    ensure!(
        commands.len() == 2,
        "the quick start has {} commands, this scenario expects 2: {commands:?}",
        commands.len()
    );
    // The shim only replaces `cargo run -p sandkit-cli --`; refuse to run anything else.
    if let Some(other) = commands
        .iter()
        .find(|c| !c.starts_with("cargo run -p sandkit-cli -- "))
    {
        bail!("the quick start line {other:?} is not `cargo run -p sandkit-cli -- …`");
    }
    let embedded =
        ctx.backend.provider == ProviderKind::Local && ctx.backend.database == DatabaseKind::Sqlite;
    let home = ctx.scratch().join("readme");
    std::fs::create_dir_all(&home).context("creating the quick start directory")?;

    let mut outputs = Vec::new();
    for line in &commands {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{SHIM}{line}"))
            .current_dir(&home)
            .env("SANDKIT_BIN", bin)
            .env_remove("SANDKIT_HOME")
            .env_remove("SANDKIT_DATABASE_URL")
            .env_remove("SANDKIT_PROVIDER")
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        if !embedded {
            apply_env(&mut cmd, &ctx.backend_env());
            cmd.env("SANDKIT_DATABASE_URL", ctx.database_url());
            if ctx.backend.provider.is_vercel() {
                cmd.env("SANDKIT_PROVIDER", "vercel");
            }
        }
        let out = cmd.output().await.context("running sh")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "`{line}` failed ({}): {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 8)
            );
        }
        outputs.push(stdout);
    }
    ensure!(
        outputs[0] == "hello\n",
        "the first run printed {:?}",
        outputs[0]
    );
    ensure!(
        outputs[1] == "hello\nhello\n",
        "the second run printed {:?}, not two hello lines",
        outputs[1]
    );

    if embedded {
        ensure!(
            home.join(".sandkit").join("sandkit.db").exists(),
            "the embedded default did not create .sandkit/sandkit.db"
        );
        return Ok(Outcome::passed_with(vec![
            "embedded default (local provider, SQLite under ./.sandkit)".into(),
        ]));
    }
    let ws = ctx.sandkit()?.workspace("hello").await?;
    let runs = all_runs(&ws).await?;
    ensure!(
        runs.len() == 2 && runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "the database holds {} runs of workspace hello",
        runs.len()
    );
    Ok(Outcome::passed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_start_is_two_cargo_run_commands() {
        let commands = quick_start(README).expect("markers");
        assert_eq!(commands.len(), 2, "{commands:?}");
        assert!(
            commands
                .iter()
                .all(|c| c.starts_with("cargo run -p sandkit-cli -- "))
        );
    }

    #[test]
    fn missing_markers_are_reported() {
        let err = quick_start("no markers").expect_err("missing");
        assert!(err.to_string().contains("quickstart:begin"), "{err}");
    }
}
