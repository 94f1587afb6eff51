//! Figure 1: a durable command against the same provider calls made directly.
//!
//! For each store and provider delay, baseline (start → exec → snapshot on the
//! `FakeProvider`) and `run_command` alternate, so drift in machine load hits both.
//! The overhead is the median of the paired differences; the store's share comes from
//! [`TimedStore`]. Sandkit's default snapshot retention runs in the background after
//! each commit; the bench waits for it (untimed) and reports it separately.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandkit_core::{CommandSpec, Sandkit, SnapshotRef, WorkspaceId, WorkspaceSpec};
use sandkit_testkit::FakeProvider;
use serde_json::json;

use crate::args::Args;
use crate::stats::{median, round, summary_json, us};
use crate::stores::{BenchStore, StoreKind};
use crate::timed_store::{Tally, TimedStore, add, tally_json, total};

/// Provider delays per call, in milliseconds.
const DELAYS_MS: [u64; 2] = [0, 20];

/// Runs every case and prints one JSON line per case.
/// `--store memory|sqlite|sqlite-normal|postgres` and `--delay-ms N` pick one case
/// (e.g. to profile it).
pub async fn run(args: &Args) -> Result<(), String> {
    let only_store = args.optional("store");
    let delays = match args.optional("delay-ms") {
        Some(d) => vec![
            d.parse::<u64>()
                .map_err(|_| format!("--delay-ms {d:?} is not a number of milliseconds"))?,
        ],
        None => DELAYS_MS.to_vec(),
    };
    for kind in [
        StoreKind::Memory,
        StoreKind::Sqlite,
        StoreKind::SqliteNormal,
        StoreKind::Postgres,
    ] {
        if only_store.is_some_and(|s| s != kind.flag()) {
            continue;
        }
        for &delay_ms in &delays {
            let (warmup, iterations) = if delay_ms == 0 {
                (args.pick(30, 5), args.pick(300, 40))
            } else {
                (args.pick(3, 1), args.pick(40, 8))
            };
            let store = BenchStore::open(kind).await?;
            let line = case(
                &store,
                kind,
                Duration::from_millis(delay_ms),
                warmup,
                iterations,
            )
            .await;
            store.close().await;
            println!("{}", line?);
        }
    }
    Ok(())
}

/// One workspace per path, each starting from its own previous snapshot.
struct Chains {
    sandkit: Sandkit,
    workspace: sandkit_core::Workspace,
    bare_id: WorkspaceId,
    bare_head: Option<SnapshotRef>,
    fake: FakeProvider,
    timed: Arc<TimedStore>,
}

/// One durable command: its latency, and the background retention it triggered.
struct Durable {
    took: Duration,
    provider_calls: u64,
    retention_deletes: u64,
    store: Tally,
    retention: Duration,
    retention_store: Tally,
}

impl Chains {
    /// `run_command(true)`, timed; then (untimed) waits for its background snapshot
    /// retention, so that it never overlaps the next measurement.
    async fn durable(&self) -> Result<Durable, String> {
        self.timed.take();
        let calls = self.fake.calls();
        let started = Instant::now();
        let out = self
            .workspace
            .run_command(CommandSpec::new("true"))
            .await
            .map_err(|e| format!("run_command: {e}"))?;
        let took = started.elapsed();
        if out.exit_code != 0 {
            return Err(format!("`true` exited with {}", out.exit_code));
        }
        let store = self.timed.take();
        let settling = Instant::now();
        self.sandkit.settle().await;
        let retention = settling.elapsed();
        // Retention's deletions may start before `run_command` returns: count them apart.
        let after = self.fake.calls();
        Ok(Durable {
            took,
            provider_calls: after.total() - after.deletes - (calls.total() - calls.deletes),
            retention_deletes: after.deletes - calls.deletes,
            store,
            retention,
            retention_store: self.timed.take(),
        })
    }

    async fn bare(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let snapshot = crate::bare::command(
            self.sandkit.provider().as_ref(),
            &self.bare_id,
            self.bare_head.take(),
            "true",
        )
        .await?;
        let took = started.elapsed();
        self.bare_head = Some(snapshot);
        Ok(took)
    }
}

async fn case(
    store: &BenchStore,
    kind: StoreKind,
    delay: Duration,
    warmup: usize,
    iterations: usize,
) -> Result<serde_json::Value, String> {
    let fake = FakeProvider::new();
    fake.set_delay(delay);
    let sandkit = Sandkit::builder()
        .store(store.store())
        .provider(Arc::new(fake.clone()))
        .build()
        .map_err(|e| e.to_string())?;
    let workspace = sandkit
        .create_workspace(WorkspaceSpec::new().name("overhead"))
        .await
        .map_err(|e| e.to_string())?;
    let mut chains = Chains {
        sandkit,
        workspace,
        bare_id: WorkspaceId::new("overhead-bare").map_err(|e| e.to_string())?,
        bare_head: None,
        fake,
        timed: store.timed.clone(),
    };
    for _ in 0..warmup {
        chains.bare().await?;
        chains.durable().await?;
    }
    let (mut baseline, mut durable, mut diffs, mut retention) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut fg, mut bg) = (Tally::new(), Tally::new());
    let (mut provider_calls, mut deletes) = (0, 0);
    for i in 0..iterations {
        // Alternate the order so neither path always runs on a warmer cache.
        let (b, d) = if i % 2 == 0 {
            let b = chains.bare().await?;
            (b, chains.durable().await?)
        } else {
            let d = chains.durable().await?;
            (chains.bare().await?, d)
        };
        baseline.push(us(b));
        durable.push(us(d.took));
        diffs.push(us(d.took) - us(b));
        retention.push(us(d.retention));
        provider_calls += d.provider_calls;
        deletes += d.retention_deletes;
        add(&mut fg, d.store);
        add(&mut bg, d.retention_store);
    }
    let per = iterations.max(1) as f64;
    // Retention walks the workspace's runs, so its cost grows with them: compare the
    // first and last tenth of the iterations.
    let tenth = (iterations / 10).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(json!({
        "figure": 1,
        "store": kind.label(),
        "delay_ms": delay.as_millis() as u64,
        "warmup": warmup,
        "iterations": iterations,
        "baseline_us": summary_json(&baseline, "us"),
        "durable_us": summary_json(&durable, "us"),
        "overhead_us": summary_json(&diffs, "us"),
        "overhead_mean_us": round(mean(&diffs)),
        "ratio": round(median(&durable) / median(&baseline)),
        "provider_calls_per_command": round(provider_calls as f64 / per),
        "store_us_per_command": round(us(total(&fg)) / per),
        "store_breakdown": tally_json(&fg, iterations as u64),
        "retention_us": summary_json(&retention, "us"),
        "retention_deletes_per_command": round(deletes as f64 / per),
        "retention_first_tenth_us": round(mean(&retention[..tenth.min(retention.len())])),
        "retention_last_tenth_us": round(mean(&retention[retention.len().saturating_sub(tenth)..])),
        "runs_in_workspace": warmup + iterations,
        "retention_store_breakdown": tally_json(&bg, iterations as u64),
    }))
}
