//! Figure 6: `sandkit run <ws> -- true` on the embedded default (SQLite + local
//! provider) against the same local-provider work done directly in this process.
//!
//! Both run on the same home directory: the baseline starts a local session from the
//! workspace's current head, runs `true` in it and snapshots (then deletes that
//! snapshot, untimed, so the CLI keeps building on its own head). The difference is
//! what the CLI adds: process start, opening and migrating the database, and the
//! durable command's bookkeeping. The breakdown times `sandkit --version` (process
//! start only) and `sandkit workspace show` (process start + database open + a read).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandkit_core::{Provider, Store, WorkspaceId};
use sandkit_local::LocalProvider;
use serde_json::json;

use crate::args::Args;
use crate::child::Finished;
use crate::stats::{median, ms, round, summary_json};

/// The workspace the CLI runs in.
const WORKSPACE: &str = "bench";

/// Runs the figure and prints one JSON line.
pub fn run(args: &Args) -> Result<(), String> {
    let sandkit_bin = sandkit_bin(args)?;
    let iterations = args.pick(20, 5);
    let home = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let cli = Cli {
        bin: sandkit_bin,
        home: home.path().to_path_buf(),
    };
    // Creates the workspace and its database, and gives it a head.
    cli.run_true()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", home.path().join("sandkit.db").display());
    let store = runtime.block_on(crate::stores::connect(&url))?;
    let provider = LocalProvider::new(home.path().join("local")).map_err(|e| e.to_string())?;
    let direct = Direct {
        store,
        provider: Arc::new(provider),
        id: WorkspaceId::new(WORKSPACE).map_err(|e| e.to_string())?,
    };
    for _ in 0..2 {
        cli.run_true()?;
        runtime.block_on(direct.run_true())?;
    }
    let (mut cli_ms, mut direct_ms, mut diffs, mut rss) = (vec![], vec![], vec![], vec![]);
    for i in 0..iterations {
        let (c, d) = if i % 2 == 0 {
            let c = cli.run_true()?;
            (c, runtime.block_on(direct.run_true())?)
        } else {
            let d = runtime.block_on(direct.run_true())?;
            (cli.run_true()?, d)
        };
        cli_ms.push(ms(c.wall));
        direct_ms.push(ms(d));
        diffs.push(ms(c.wall) - ms(d));
        rss.push(c.max_rss_kib as f64 / 1024.0);
    }
    let version = cli.repeat(iterations, &["--version"])?;
    let show = cli.repeat(iterations, &["workspace", "show", WORKSPACE])?;
    let true_ms: Vec<f64> = (0..iterations)
        .map(|_| crate::child::run(&mut Command::new("true")).map(|f| ms(f.wall)))
        .collect::<Result<_, _>>()?;
    println!(
        "{}",
        json!({
            "figure": 6,
            "iterations": iterations,
            "cli_ms": summary_json(&cli_ms, "ms"),
            "baseline_ms": summary_json(&direct_ms, "ms"),
            "overhead_ms": summary_json(&diffs, "ms"),
            "ratio": round(median(&cli_ms) / median(&direct_ms)),
            "cli_rss_mib": summary_json(&rss, "MiB"),
            "version_ms": summary_json(&version.0, "ms"),
            "version_rss_mib": summary_json(&version.1, "MiB"),
            "show_ms": summary_json(&show.0, "ms"),
            "show_rss_mib": summary_json(&show.1, "MiB"),
            "true_process_ms": summary_json(&true_ms, "ms"),
        })
    );
    Ok(())
}

/// The `--sandkit` binary, as an absolute path.
pub(crate) fn sandkit_bin(args: &Args) -> Result<PathBuf, String> {
    let given = args.required("sandkit")?;
    // The CLI runs in the home directory, so a relative path must be resolved first.
    std::fs::canonicalize(given).map_err(|e| {
        format!("--sandkit {given}: {e}; build it with `cargo build --release -p sandkit-cli`")
    })
}

/// The `sandkit` binary on one home directory.
pub(crate) struct Cli {
    pub(crate) bin: PathBuf,
    pub(crate) home: PathBuf,
}

impl Cli {
    /// `sandkit --home <home> <args>`, run in the home directory, with no
    /// `SANDKIT_*` or `RUST_LOG` variable of the caller's environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--home")
            .arg(&self.home)
            .args(args)
            .current_dir(&self.home)
            .env_remove("SANDKIT_DATABASE_URL")
            .env_remove("SANDKIT_PROVIDER")
            .env_remove("SANDKIT_HOME")
            .env_remove("RUST_LOG");
        cmd
    }

    fn run_true(&self) -> Result<Finished, String> {
        crate::child::run(&mut self.command(&["run", WORKSPACE, "--", "true"]))?.ok("sandkit run")
    }

    /// Wall times (ms) and peak RSS (MiB) of `n` runs of `sandkit <args>`.
    fn repeat(&self, n: usize, args: &[&str]) -> Result<(Vec<f64>, Vec<f64>), String> {
        let mut walls = Vec::with_capacity(n);
        let mut rss = Vec::with_capacity(n);
        for _ in 0..n {
            let done = crate::child::run(&mut self.command(args))?.ok("sandkit")?;
            walls.push(ms(done.wall));
            rss.push(done.max_rss_kib as f64 / 1024.0);
        }
        Ok((walls, rss))
    }
}

/// The same local-provider work, in this process.
struct Direct {
    store: Arc<dyn Store>,
    provider: Arc<LocalProvider>,
    id: WorkspaceId,
}

impl Direct {
    async fn run_true(&self) -> Result<Duration, String> {
        let head = self
            .store
            .get_workspace(&self.id)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|ws| ws.head);
        let started = Instant::now();
        let snapshot = crate::bare::command(self.provider.as_ref(), &self.id, head, "true").await?;
        let took = started.elapsed();
        self.provider
            .delete_snapshot(&snapshot)
            .await
            .map_err(|e| format!("delete snapshot: {e}"))?;
        Ok(took)
    }
}
