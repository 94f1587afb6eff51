//! Figure 4: processes racing for one workspace on PostgreSQL.
//!
//! The parent creates a fresh database and a workspace (local provider, shared root),
//! then starts P copies of this binary (`contention-worker`). In every round all
//! workers call `spawn_command` at the same wall-clock instant and time how long it
//! takes to learn the outcome: the lease (the call returns a running command) or
//! `Busy`. The winner then lets its command finish before the next round. The
//! baseline is one process alone (no contention), measured in the same run.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sandkit_core::{
    CommandSpec, ErrorKind, MAX_PAGE_SIZE, Order, RunQuery, Sandkit, WorkspaceSpec,
};
use sandkit_local::LocalProvider;
use serde_json::{Value, json};

use crate::args::Args;
use crate::stats::{round, summary_json};
use crate::stores::{BenchStore, StoreKind};

/// The contended workspace.
const WORKSPACE: &str = "contended";

/// Slack for every worker to start and connect before round 0.
const STARTUP: Duration = Duration::from_millis(2500);

/// Time between rounds: long enough for the winner's command to finish.
const INTERVAL: Duration = Duration::from_millis(400);

/// Runs the 1-process baseline and the P-process race; prints one JSON line each.
pub fn run(args: &Args) -> Result<(), String> {
    let processes: usize = args.parsed_or("processes", 8)?;
    let rounds: usize = args.parsed_or("rounds", args.pick(40, 8))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let root = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let store = runtime.block_on(BenchStore::open(StoreKind::Postgres))?;
    let result = (|| {
        let url = store.url.clone().ok_or("the PostgreSQL store has no URL")?;
        runtime.block_on(prepare(&store, root.path()))?;
        for p in [1, processes] {
            let mut line = race(&url, root.path(), p, rounds)?;
            let (runs, overlaps) = runtime.block_on(journal_overlaps(&store))?;
            line["journal_runs"] = runs.into();
            line["overlapping_runs"] = overlaps.into();
            println!("{line}");
        }
        Ok(())
    })();
    runtime.block_on(store.close());
    result
}

/// Creates the workspace and gives it a head, so every round starts from a snapshot.
async fn prepare(store: &BenchStore, root: &std::path::Path) -> Result<(), String> {
    let sandkit = Sandkit::builder()
        .store(store.store())
        .provider(Arc::new(
            LocalProvider::new(root).map_err(|e| e.to_string())?,
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let ws = sandkit
        .create_workspace(WorkspaceSpec::new().id(WORKSPACE))
        .await
        .map_err(|e| e.to_string())?;
    ws.run_command(CommandSpec::new("true"))
        .await
        .map_err(|e| format!("first command: {e}"))?;
    Ok(())
}

/// Checks mutual exclusion in the run journal: a run starts (its lease is taken) only
/// after the workspace was seen free, so no run may start before the previous one
/// finished. Returns (runs, runs that started before their predecessor finished).
async fn journal_overlaps(store: &BenchStore) -> Result<(usize, usize), String> {
    let sandkit = Sandkit::builder()
        .store(store.store())
        .provider(Arc::new(sandkit_testkit::FakeProvider::new()))
        .build()
        .map_err(|e| e.to_string())?;
    let ws = sandkit
        .workspace(WORKSPACE)
        .await
        .map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    let mut cursor = None;
    loop {
        let page = ws
            .runs(RunQuery {
                cursor: cursor.take(),
                order: Order::Asc,
                limit: Some(MAX_PAGE_SIZE),
                ..RunQuery::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        runs.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    runs.sort_by_key(|r| r.started_at);
    let overlaps = runs
        .windows(2)
        .filter(|w| w[0].finished_at.is_none_or(|end| w[1].started_at <= end))
        .count();
    Ok((runs.len(), overlaps))
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Starts `p` workers for `rounds` rounds (after one warm-up round) and summarises.
fn race(url: &str, root: &std::path::Path, p: usize, rounds: usize) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let start_at = epoch_ms() + STARTUP.as_millis();
    let workers: Vec<_> = (0..p)
        .map(|_| {
            let mut cmd = Command::new(&exe);
            cmd.arg("contention-worker")
                .args(["--url", url])
                .arg("--root")
                .arg(root)
                .args(["--start-at-ms", &start_at.to_string()])
                .args(["--interval-ms", &INTERVAL.as_millis().to_string()])
                .args(["--rounds", &(rounds + 1).to_string()]);
            std::thread::spawn(move || crate::child::run(&mut cmd))
        })
        .collect();
    let mut lines = Vec::new();
    for worker in workers {
        let done = worker
            .join()
            .map_err(|_| "a worker thread panicked".to_owned())??
            .ok("contention worker")?;
        for line in done.stdout.lines() {
            lines.push(
                serde_json::from_str::<Value>(line)
                    .map_err(|e| format!("worker output {line:?}: {e}"))?,
            );
        }
    }
    Ok(summarise(&lines, p, rounds))
}

fn summarise(lines: &[Value], p: usize, rounds: usize) -> Value {
    let counted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["round"].as_u64() > Some(0))
        .collect();
    let ms_of = |decision: Option<&str>| -> Vec<f64> {
        counted
            .iter()
            .filter(|l| decision.is_none_or(|d| l["decision"] == d))
            .filter(|l| l["decision"] != "error")
            .filter_map(|l| l["ms"].as_f64())
            .collect()
    };
    let rounds_won = (1..=rounds as u64)
        .filter(|r| {
            counted
                .iter()
                .any(|l| l["round"].as_u64() == Some(*r) && l["decision"] == "acquired")
        })
        .count();
    let errors: Vec<&Value> = counted
        .iter()
        .copied()
        .filter(|l| l["decision"] == "error")
        .collect();
    json!({
        "figure": 4,
        "processes": p,
        "rounds": rounds,
        "decisions": counted.len() - errors.len(),
        "decision_ms": summary_json(&ms_of(None), "ms"),
        "acquired_ms": summary_json(&ms_of(Some("acquired")), "ms"),
        "busy_ms": summary_json(&ms_of(Some("busy")), "ms"),
        "acquired": counted.iter().filter(|l| l["decision"] == "acquired").count(),
        "busy": counted.iter().filter(|l| l["decision"] == "busy").count(),
        "rounds_won": rounds_won,
        "late_starts": counted.iter().filter(|l| l["late"] == true).count(),
        "errors": errors.len(),
        "error_examples": errors.iter().take(3).map(|l| l["message"].clone()).collect::<Vec<_>>(),
    })
}

/// One racing process: prints one JSON line per round.
pub async fn worker(args: &Args) -> Result<(), String> {
    let url = args.required("url")?;
    let root = args.required("root")?;
    let start_at: u128 = args.parsed_or("start-at-ms", 0)?;
    let interval: u64 = args.parsed_or("interval-ms", 400)?;
    let rounds: u64 = args.parsed_or("rounds", 1)?;
    let store = crate::stores::connect(url).await?;
    let sandkit = Sandkit::builder()
        .store(store)
        .provider(Arc::new(
            LocalProvider::new(root).map_err(|e| e.to_string())?,
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let ws = sandkit
        .workspace(WORKSPACE)
        .await
        .map_err(|e| e.to_string())?;
    for round_no in 0..rounds {
        let due = start_at + u128::from(round_no * interval);
        let now = epoch_ms();
        let late = now > due + 5;
        if due > now {
            tokio::time::sleep(Duration::from_millis((due - now) as u64)).await;
        }
        let started = Instant::now();
        let outcome = ws.spawn_command(CommandSpec::new("true")).await;
        let took = round(crate::stats::ms(started.elapsed()));
        let line = match outcome {
            Ok(cmd) => {
                let line =
                    json!({"round": round_no, "decision": "acquired", "ms": took, "late": late});
                if let Err(e) = cmd.wait().await {
                    eprintln!("contention worker: the winning command failed: {e}");
                }
                line
            }
            Err(e) if e.kind() == &ErrorKind::Busy => {
                json!({"round": round_no, "decision": "busy", "ms": took, "late": late})
            }
            Err(e) => {
                json!({"round": round_no, "decision": "error", "ms": took, "late": late, "message": e.to_string()})
            }
        };
        println!("{line}");
    }
    sandkit.settle().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_winners_errors_and_skips_the_warm_up_round() {
        let lines = vec![
            json!({"round": 0, "decision": "acquired", "ms": 100.0, "late": false}),
            json!({"round": 1, "decision": "acquired", "ms": 4.0, "late": false}),
            json!({"round": 1, "decision": "busy", "ms": 2.0, "late": false}),
            json!({"round": 2, "decision": "busy", "ms": 3.0, "late": true}),
            json!({"round": 2, "decision": "error", "ms": 9.0, "late": false, "message": "boom"}),
        ];
        let s = summarise(&lines, 2, 2);
        assert_eq!(s["decisions"], 3);
        assert_eq!(
            (s["acquired"].as_u64(), s["busy"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(s["rounds_won"], 1);
        assert_eq!(s["errors"], 1);
        assert_eq!(s["late_starts"], 1);
        assert_eq!(s["decision_ms"]["median"], 3.0);
        assert_eq!(s["acquired_ms"]["n"], 1);
        assert_eq!(s["error_examples"][0], "boom");
    }
}
