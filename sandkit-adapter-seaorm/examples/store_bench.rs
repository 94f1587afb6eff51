//! Benchmarks one durable command's store work on each dialect.
//!
//! ```text
//! cargo run --release -p sandkit-adapter-seaorm --example store_bench -- \
//!     [--dialect sqlite|postgres|mysql] [--iterations N] [--sqlite-synchronous full|normal]
//! ```
//!
//! A durable command writes two transactions: T1 acquires the command lease
//! (compare-and-set workspace update) and inserts the policy snapshot and the run; T2
//! commits the head and releases the lease (fenced update) and finishes the run. This
//! times T1 + T2 and counts their SQL statements with SeaORM's metric callback
//! (`BEGIN`/`COMMIT` are not statements). It prints one JSON line per dialect:
//!
//! ```json
//! {"bench":"seaorm_durable_command","dialect":"sqlite","iterations":500,"transactions":2,"statements":5,"median_us":…,"min_us":…,"max_us":…}
//! ```
//!
//! PostgreSQL and MySQL run in a fresh database created on the server named by
//! `SANDKIT_TEST_POSTGRES_URL` / `SANDKIT_TEST_MYSQL_URL` (defaults: the local servers
//! `postgres://postgres@127.0.0.1:5432/postgres`, `mysql://root@127.0.0.1:3306/test`),
//! dropped afterwards. Without `--dialect`, a dialect whose server is unreachable is
//! skipped with a note on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, Database};
use sandkit_adapter_seaorm::{Dialect, SeaOrmStore};
use sandkit_core::policies::Policy;
use sandkit_core::{
    FencedChange, Lease, LeaseKind, LeaseToken, PolicySnapshot, RunFinish, RunId, RunKind,
    RunRecord, RunStatus, RunWrite, SnapshotRef, Store, WorkspaceId, WorkspaceRecord,
    WorkspaceWrite, WriteBatch, now,
};

const WARMUP: usize = 20;

struct Options {
    dialects: Vec<Dialect>,
    explicit: bool,
    iterations: usize,
    sqlite_synchronous: String,
}

fn options() -> Result<Options, String> {
    let mut dialects = vec![Dialect::Sqlite, Dialect::Postgres, Dialect::MySql];
    let mut explicit = false;
    let mut iterations = 500;
    let mut sqlite_synchronous = "full".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dialect" => {
                let value = args
                    .next()
                    .ok_or("--dialect needs sqlite, postgres or mysql")?;
                dialects = vec![match value.as_str() {
                    "sqlite" => Dialect::Sqlite,
                    "postgres" => Dialect::Postgres,
                    "mysql" => Dialect::MySql,
                    other => {
                        return Err(format!(
                            "unknown dialect {other:?}; use sqlite, postgres or mysql"
                        ));
                    }
                }];
                explicit = true;
            }
            "--iterations" => {
                iterations = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--iterations needs a positive number")?;
            }
            "--sqlite-synchronous" => {
                sqlite_synchronous = args
                    .next()
                    .filter(|v| v == "full" || v == "normal")
                    .ok_or("--sqlite-synchronous needs full or normal")?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options {
        dialects,
        explicit,
        iterations,
        sqlite_synchronous,
    })
}

/// A database for one dialect's run, dropped afterwards.
struct BenchDb {
    url: String,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

async fn database(dialect: Dialect, synchronous: &str) -> Result<BenchDb, String> {
    let (var, default) = match dialect {
        Dialect::Sqlite => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            return Ok(BenchDb {
                url: format!(
                    "sqlite://{}?synchronous={synchronous}",
                    dir.path().join("bench.db").display()
                ),
                cleanup: None,
                _dir: Some(dir),
            });
        }
        Dialect::Postgres => (
            "SANDKIT_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        Dialect::MySql => ("SANDKIT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    };
    let server = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let name = format!("sandkit_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(server.as_str())
        .await
        .map_err(|e| format!("{dialect} server unreachable ({e})"))?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut url = url::Url::parse(&server).map_err(|e| e.to_string())?;
    url.set_path(&format!("/{name}"));
    Ok(BenchDb {
        url: url.to_string(),
        cleanup: Some((server, name)),
        _dir: None,
    })
}

async fn drop_database(db: &BenchDb, dialect: Dialect) {
    if let Some((server, name)) = &db.cleanup {
        let force = if dialect == Dialect::Postgres {
            " WITH (FORCE)"
        } else {
            ""
        };
        if let Ok(admin) = Database::connect(server.as_str()).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                .await;
        }
    }
}

/// T1: the compare-and-set acquisition with the policy snapshot and the run.
fn acquire(ws: &WorkspaceRecord) -> (WriteBatch, RunId, LeaseToken) {
    let at = now();
    let run = RunRecord {
        args: vec!["-c".into(), "make test".into()],
        env_keys: vec!["CI".into()],
        policy_description: "deny-all".into(),
        policy_snapshot_id: Some(format!("pol_{}", RunId::generate())),
        base_snapshot: ws.head.clone(),
        started_at: at,
        ..RunRecord::started(ws.id.clone(), RunKind::Command, "sh", "bench", "bench:1")
    };
    let lease = Lease {
        kind: LeaseKind::Command,
        token: LeaseToken::generate(),
        holder: "bench:1".into(),
        session: None,
        run_id: Some(run.id.clone()),
        acquired_at: at,
        expires_at: at + chrono::Duration::seconds(60),
        policy: None,
    };
    let mut next = ws.clone();
    next.lease = Some(lease.clone());
    next.updated_at = at;
    let batch = WriteBatch::workspace(WorkspaceWrite::Update {
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
    (batch, run.id, lease.token)
}

/// T2: the fenced commit that finishes the run and releases the lease.
fn commit(ws: &WorkspaceRecord, run: RunId, token: LeaseToken, n: usize) -> WriteBatch {
    let snapshot = SnapshotRef {
        provider: "bench".into(),
        id: format!("snap_{n}"),
    };
    WriteBatch::workspace(WorkspaceWrite::Fenced {
        id: ws.id.clone(),
        token,
        change: FencedChange {
            lease: None,
            head: Some(snapshot.clone()),
            updated_at: now(),
        },
    })
    .run(RunWrite::Finish {
        id: run,
        finish: RunFinish {
            status: RunStatus::Succeeded,
            exit_code: Some(0),
            stdout: Some("ok\n".into()),
            stderr: Some(String::new()),
            stdout_truncated: false,
            stderr_truncated: false,
            session_id: Some("sbx_bench".into()),
            snapshot: Some(snapshot),
            error: None,
            release_idempotency_key: false,
            finished_at: now(),
        },
    })
}

async fn bench(
    dialect: Dialect,
    url: &str,
    iterations: usize,
) -> Result<serde_json::Value, String> {
    let statements = Arc::new(AtomicU64::new(0));
    let options = SeaOrmStore::connect_options(url).map_err(|e| e.to_string())?;
    let mut conn = Database::connect(options)
        .await
        .map_err(|e| e.to_string())?;
    let counter = statements.clone();
    conn.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let store = SeaOrmStore::new(conn);
    store.migrate().await.map_err(|e| e.to_string())?;
    let id = WorkspaceId::new("bench").map_err(|e| e.to_string())?;
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(
            WorkspaceRecord::new(id.clone()),
        )))
        .await
        .map_err(|e| e.to_string())?;

    let mut times = Vec::with_capacity(iterations);
    let mut counts = Vec::with_capacity(iterations);
    for n in 0..WARMUP + iterations {
        let ws = store
            .get_workspace(&id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the bench workspace vanished")?;
        let (t1, run, token) = acquire(&ws);
        let t2 = commit(&ws, run, token, n);
        let before = statements.load(Ordering::Relaxed);
        let started = Instant::now();
        store.apply(t1).await.map_err(|e| e.to_string())?;
        store.apply(t2).await.map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        let count = statements.load(Ordering::Relaxed) - before;
        if n >= WARMUP {
            times.push(elapsed);
            counts.push(count);
        }
    }
    times.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let median = micros(times[times.len() / 2]);
    Ok(serde_json::json!({
        "bench": "seaorm_durable_command",
        "dialect": dialect.as_str(),
        "iterations": iterations,
        "transactions": 2,
        "statements": counts.iter().max().copied().unwrap_or_default(),
        "median_us": median.round(),
        "min_us": micros(times[0]).round(),
        "max_us": micros(times[times.len() - 1]).round(),
    }))
}

#[tokio::main]
async fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("store_bench: {e}");
            std::process::exit(2);
        }
    };
    let mut failed = false;
    for dialect in options.dialects {
        let db = match database(dialect, &options.sqlite_synchronous).await {
            Ok(db) => db,
            Err(e) if !options.explicit => {
                eprintln!("store_bench: skipped {dialect}: {e}");
                continue;
            }
            Err(e) => {
                eprintln!("store_bench: {e}");
                std::process::exit(1);
            }
        };
        let result = bench(dialect, &db.url, options.iterations)
            .await
            .map(|mut line| {
                if dialect == Dialect::Sqlite {
                    line["sqlite_synchronous"] = options.sqlite_synchronous.clone().into();
                }
                line
            });
        drop_database(&db, dialect).await;
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("store_bench: {dialect}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
