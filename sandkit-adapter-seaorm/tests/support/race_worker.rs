//! One racer of the cross-process concurrency test (`tests/cross_process.rs`); not
//! part of the library.
//!
//! `sandkit-seaorm-race-worker <url> <workspace> <rounds> <worker>` waits for a line
//! on stdin, then races the other workers for the workspace's command lease the way a
//! durable command does: read, compare-and-set the lease with a policy snapshot and a
//! run (transaction 1), then a fenced commit that finishes the run and releases the
//! lease (transaction 2). Round `r` starts at revision `2r`. It prints one JSON line:
//! the revisions its acquisitions produced and how often it lost (conflict) or found
//! the lease held (busy). Any other error exits non-zero.

use std::io::BufRead;
use std::time::Duration;

use sandkit_adapter_seaorm::SeaOrmStore;
use sandkit_core::policies::Policy;
use sandkit_core::{
    ErrorKind, FencedChange, Lease, LeaseKind, LeaseToken, PolicySnapshot, RunFinish, RunId,
    RunKind, RunRecord, RunStatus, RunWrite, SnapshotRef, Store, WorkspaceId, WorkspaceWrite,
    WriteBatch, now,
};

struct Args {
    url: String,
    workspace: WorkspaceId,
    rounds: i64,
    worker: String,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut next = |what: &str| it.next().ok_or_else(|| format!("missing <{what}>"));
    let url = next("url")?;
    let workspace = WorkspaceId::new(next("workspace")?).map_err(|e| e.to_string())?;
    let rounds = next("rounds")?
        .parse()
        .map_err(|e| format!("rounds: {e}"))?;
    let worker = next("worker")?;
    Ok(Args {
        url,
        workspace,
        rounds,
        worker,
    })
}

#[derive(Default)]
struct Tally {
    wins: Vec<i64>,
    conflicts: u64,
    busy: u64,
}

async fn race(args: &Args, store: &SeaOrmStore) -> sandkit_core::Result<Tally> {
    let mut tally = Tally::default();
    let holder = format!("worker-{}", args.worker);
    loop {
        let ws = store
            .get_workspace(&args.workspace)
            .await?
            .ok_or_else(|| sandkit_core::Error::not_found("the race workspace vanished"))?;
        if ws.revision >= 2 * args.rounds {
            return Ok(tally);
        }
        if let Some(lease) = &ws.lease {
            if !lease.is_live(now()) {
                return Err(sandkit_core::Error::conflict(format!(
                    "a lease expired mid-race (holder {})",
                    lease.holder
                )));
            }
            tally.busy += 1;
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        }
        let at = now();
        let run = RunRecord {
            args: vec![ws.revision.to_string()],
            policy_description: "deny-all".into(),
            policy_snapshot_id: Some(format!("pol_{}", RunId::generate())),
            base_snapshot: ws.head.clone(),
            started_at: at,
            ..RunRecord::started(
                ws.id.clone(),
                RunKind::Command,
                "round",
                "race",
                holder.clone(),
            )
        };
        let lease = Lease {
            kind: LeaseKind::Command,
            token: LeaseToken::generate(),
            holder: holder.clone(),
            session: None,
            run_id: Some(run.id.clone()),
            acquired_at: at,
            expires_at: at + chrono::Duration::seconds(60),
            policy: None,
        };
        let mut next = ws.clone();
        next.lease = Some(lease.clone());
        next.updated_at = at;
        let acquire = WriteBatch::workspace(WorkspaceWrite::Update {
            record: next,
            expected_revision: ws.revision,
        })
        .policy_snapshot(PolicySnapshot {
            id: run.policy_snapshot_id.clone().unwrap_or_default(),
            workspace_id: ws.id.clone(),
            policy_id: "deny-all".into(),
            config: Policy::deny_all(),
            created_at: at,
        })
        .run(RunWrite::Insert(run.clone()));
        match store.apply(acquire).await {
            Ok(()) => tally.wins.push(ws.revision + 1),
            Err(e) if e.kind() == &ErrorKind::Conflict => {
                tally.conflicts += 1;
                continue;
            }
            Err(e) => return Err(e),
        }
        let snapshot = SnapshotRef {
            provider: "race".into(),
            id: format!("snap_{}", ws.revision + 2),
        };
        let commit = WriteBatch::workspace(WorkspaceWrite::Fenced {
            id: ws.id.clone(),
            token: lease.token.clone(),
            change: FencedChange {
                lease: None,
                head: Some(snapshot.clone()),
                updated_at: now(),
            },
        })
        .run(RunWrite::Finish {
            id: run.id.clone(),
            finish: RunFinish {
                status: RunStatus::Succeeded,
                exit_code: Some(0),
                stdout: Some(String::new()),
                stderr: Some(String::new()),
                stdout_truncated: false,
                stderr_truncated: false,
                session_id: Some(format!("session-{}", args.worker)),
                snapshot: Some(snapshot),
                error: None,
                release_idempotency_key: false,
                finished_at: now(),
            },
        });
        store.apply(commit).await?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("usage: sandkit-seaorm-race-worker <url> <workspace> <rounds> <worker>: {e}");
            std::process::exit(2);
        }
    };
    let store = match SeaOrmStore::connect(&args.url).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("worker {}: {e}", args.worker);
            std::process::exit(1);
        }
    };
    println!("ready");
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        std::process::exit(1);
    }
    match race(&args, &store).await {
        Ok(tally) => println!(
            "{}",
            serde_json::json!({
                "worker": args.worker,
                "wins": tally.wins,
                "conflicts": tally.conflicts,
                "busy": tally.busy,
            })
        ),
        Err(e) => {
            eprintln!("worker {}: {e}", args.worker);
            std::process::exit(1);
        }
    }
}
