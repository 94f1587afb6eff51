//! Eight OS processes race for one workspace's command lease for 100 rounds, on each
//! dialect: exactly one winner per round, every loser sees a conflict or a held lease,
//! and the revision history has no gaps or duplicates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use common::TestDb;
use sandkit_adapter_seaorm::Dialect;
use sandkit_core::{
    Order, RunListing, RunStatus, SnapshotRef, Store, WorkspaceId, WorkspaceRecord, WorkspaceWrite,
    WriteBatch,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const WORKERS: usize = 8;
const ROUNDS: i64 = 100;

struct Report {
    worker: String,
    wins: Vec<i64>,
    conflicts: u64,
    busy: u64,
}

async fn run_workers(url: &str, workspace: &str) -> Vec<Report> {
    let exe = env!("CARGO_BIN_EXE_sandkit-seaorm-race-worker");
    let mut children = Vec::new();
    for worker in 0..WORKERS {
        let mut child = Command::new(exe)
            .args([url, workspace, &ROUNDS.to_string(), &worker.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a race worker");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ready = String::new();
        stdout.read_line(&mut ready).await.expect("read ready");
        if ready.trim() != "ready" {
            let mut err = String::new();
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)
                .await;
            panic!("worker {worker} did not start: {ready:?} {err}");
        }
        children.push((child, stdout));
    }
    // Every worker is connected: start them together.
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").await.expect("start a worker");
    }
    let mut reports = Vec::new();
    for (mut child, mut stdout) in children {
        let mut out = String::new();
        stdout
            .read_to_string(&mut out)
            .await
            .expect("worker output");
        let mut err = String::new();
        let _ = child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .await;
        let status = child.wait().await.expect("worker exit");
        assert!(status.success(), "worker failed ({status}): {err}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report line");
        reports.push(Report {
            worker: report["worker"].as_str().expect("worker").to_owned(),
            wins: report["wins"]
                .as_array()
                .expect("wins")
                .iter()
                .map(|w| w.as_i64().expect("revision"))
                .collect(),
            conflicts: report["conflicts"].as_u64().expect("conflicts"),
            busy: report["busy"].as_u64().expect("busy"),
        });
    }
    reports
}

async fn race(dialect: Dialect) {
    let Some(db) = TestDb::new(dialect).await else {
        return;
    };
    let store = db.migrated().await;
    let id = WorkspaceId::new("race").expect("id");
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(
            WorkspaceRecord::new(id.clone()),
        )))
        .await
        .expect("create the race workspace");

    let reports = tokio::time::timeout(Duration::from_secs(300), run_workers(&db.url, id.as_str()))
        .await
        .expect("the race finishes");

    // One acquisition per round, producing revisions 1, 3, 5, …: no gaps, no duplicates.
    let wins: Vec<i64> = {
        let mut all: Vec<i64> = reports.iter().flat_map(|r| r.wins.clone()).collect();
        all.sort_unstable();
        all
    };
    let expected: Vec<i64> = (0..ROUNDS).map(|round| 2 * round + 1).collect();
    assert_eq!(wins, expected);
    let contended: u64 = reports.iter().map(|r| r.conflicts + r.busy).sum();
    assert!(contended > 0, "the workers never contended");

    let ws = store
        .get_workspace(&id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(ws.revision, 2 * ROUNDS);
    assert_eq!(ws.lease, None);
    assert_eq!(
        ws.head,
        Some(SnapshotRef {
            provider: "race".into(),
            id: format!("snap_{}", 2 * ROUNDS),
        })
    );

    // Every round left exactly one finished run, recorded by the worker that won it.
    let winner_of: BTreeMap<i64, &str> = reports
        .iter()
        .flat_map(|r| r.wins.iter().map(move |w| (w - 1, r.worker.as_str())))
        .collect();
    let mut rounds = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_runs(&RunListing {
                workspace_id: id.clone(),
                status: None,
                live_snapshots: false,
                cursor,
                order: Order::Asc,
                limit: 50,
            })
            .await
            .expect("list runs");
        for run in &page.items {
            assert_eq!(run.status, RunStatus::Succeeded);
            let start: i64 = run.args[0].parse().expect("revision");
            assert!(rounds.insert(start), "round at revision {start} ran twice");
            assert_eq!(run.holder, format!("worker-{}", winner_of[&start]));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(sandkit_core::RunId::new(c).expect("cursor")),
            None => break,
        }
    }
    assert_eq!(rounds.len() as i64, ROUNDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_race_on_sqlite() {
    race(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_race_on_postgres() {
    race(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_race_on_mysql() {
    race(Dialect::MySql).await;
}
