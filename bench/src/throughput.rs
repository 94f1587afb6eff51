//! Figure 3: N workspaces × 20 durable commands concurrently in one process.
//!
//! Each workspace is driven by its own task running its commands one after another
//! (a workspace runs one durable command at a time). The baseline runs the same
//! number of bare provider sequences with the same concurrency on the same provider.
//! A round ends when the background snapshot retention its commits triggered is done.
//! Every round runs on a fresh, empty store (after a short warm-up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use sandkit_core::{CommandSpec, Sandkit, WorkspaceId, WorkspaceSpec};
use sandkit_testkit::FakeProvider;
use serde_json::json;

use crate::args::Args;
use crate::stats::{median, ms, round, summary_json};
use crate::stores::{BenchStore, StoreKind};
use crate::timed_store::{Tally, add, tally_json};

/// Workspace counts of the scaling table.
const WORKSPACES: [usize; 4] = [1, 4, 16, 64];

/// Durable commands per workspace.
const COMMANDS: usize = 20;

/// Runs every store and workspace count; prints one JSON line each.
pub async fn run(args: &Args) -> Result<(), String> {
    let runs = args.pick(3, 1);
    for kind in [StoreKind::Memory, StoreKind::Sqlite, StoreKind::Postgres] {
        for n in WORKSPACES {
            println!("{}", scale(kind, n, runs).await?);
        }
    }
    Ok(())
}

/// What one measured round produced, with the store's tally.
struct Measured {
    durable_cps: f64,
    baseline_cps: f64,
    round: Round,
    tally: Tally,
}

/// One round on a fresh, empty store, so every row starts from the same state.
async fn measure(kind: StoreKind, n: usize, run: usize) -> Result<Measured, String> {
    let store = BenchStore::open(kind).await?;
    let result = async {
        let sandkit = Sandkit::builder()
            .store(store.store())
            .provider(Arc::new(FakeProvider::new()))
            .build()
            .map_err(|e| e.to_string())?;
        // Warm the connection pool and the statement caches.
        round_of(&sandkit, "warm", 2, 3).await?;
        let bare = bare_round(&sandkit, &format!("b{run}"), n).await?;
        store.timed.take();
        let round = round_of(&sandkit, &format!("r{run}"), n, COMMANDS).await?;
        Ok(Measured {
            durable_cps: (n * COMMANDS) as f64 / round.wall.as_secs_f64(),
            baseline_cps: (n * COMMANDS) as f64 / bare.as_secs_f64(),
            tally: store.timed.take(),
            round,
        })
    }
    .await;
    store.close().await;
    result
}

async fn scale(kind: StoreKind, n: usize, runs: usize) -> Result<serde_json::Value, String> {
    let (mut durable, mut baseline, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
    let mut errors = 0;
    let mut tally = Tally::new();
    for run in 0..runs {
        let m = measure(kind, n, run).await?;
        durable.push(m.durable_cps);
        baseline.push(m.baseline_cps);
        latencies.extend(m.round.latencies_ms);
        errors += m.round.errors;
        add(&mut tally, m.tally);
    }
    Ok(json!({
        "figure": 3,
        "store": kind.label(),
        "workspaces": n,
        "commands_per_workspace": COMMANDS,
        "runs": runs,
        "durable_cps": summary_json(&durable, "commands/s"),
        "baseline_cps": summary_json(&baseline, "commands/s"),
        "ratio": round(median(&durable) / median(&baseline)),
        "errors": errors,
        "latency_ms": summary_json(&latencies, "ms"),
        "store_breakdown": tally_json(&tally, (runs * n * COMMANDS) as u64),
    }))
}

/// What one concurrent round did.
struct Round {
    wall: Duration,
    latencies_ms: Vec<f64>,
    errors: usize,
}

/// Creates `n` workspaces and runs `commands` durable commands in each, concurrently.
async fn round_of(
    sandkit: &Sandkit,
    tag: &str,
    n: usize,
    commands: usize,
) -> Result<Round, String> {
    let mut workspaces = Vec::with_capacity(n);
    for i in 0..n {
        let ws = sandkit
            .create_workspace(WorkspaceSpec::new().id(format!("tp-{tag}-{n}-{i}")))
            .await
            .map_err(|e| e.to_string())?;
        workspaces.push(ws);
    }
    let started = Instant::now();
    let tasks = workspaces.into_iter().map(|ws| {
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(commands);
            let mut errors = 0;
            for _ in 0..commands {
                let t = Instant::now();
                match ws.run_command(CommandSpec::new("true")).await {
                    Ok(out) if out.exit_code == 0 => latencies.push(ms(t.elapsed())),
                    Ok(_) => errors += 1,
                    Err(e) => {
                        eprintln!("sandkit-bench throughput: {e}");
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        })
    });
    let mut round = Round {
        wall: Duration::ZERO,
        latencies_ms: Vec::new(),
        errors: 0,
    };
    for joined in join_all(tasks).await {
        let (latencies, errors) = joined.map_err(|e| format!("a workspace task failed: {e}"))?;
        round.latencies_ms.extend(latencies);
        round.errors += errors;
    }
    // Snapshot retention runs in the background after each commit: it is part of the
    // sustained cost, so the round ends when it has finished too.
    sandkit.settle().await;
    round.wall = started.elapsed();
    Ok(round)
}

/// The same shape of work as bare provider sequences.
async fn bare_round(sandkit: &Sandkit, tag: &str, n: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let tasks = (0..n).map(|i| {
        let provider = sandkit.provider().clone();
        let id = WorkspaceId::new(format!("bare-{tag}-{n}-{i}"));
        tokio::spawn(async move {
            let id = id.map_err(|e| e.to_string())?;
            let mut head = None;
            for _ in 0..COMMANDS {
                head =
                    Some(crate::bare::command(provider.as_ref(), &id, head.take(), "true").await?);
            }
            Ok::<(), String>(())
        })
    });
    for joined in join_all(tasks).await {
        joined.map_err(|e| format!("a baseline task failed: {e}"))??;
    }
    Ok(started.elapsed())
}
