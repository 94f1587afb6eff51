//! Two `shared-db` worker processes on one fresh PostgreSQL database: both finish, every
//! increment of the shared counter lands exactly once, and no two holders of the shared
//! workspace's lease overlapped in time.

use std::path::Path;
use std::process::Output;

use chrono::{DateTime, Utc};
use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, Database};
use tokio::process::Command;

const ROUNDS: u32 = 5;

/// A fresh database on the server of `SANDKIT_TEST_POSTGRES_URL`, dropped afterwards.
struct FreshDatabase {
    url: String,
    server: String,
    name: String,
}

impl FreshDatabase {
    async fn create() -> Option<FreshDatabase> {
        let server = sandkit_testkit::database_url("SANDKIT_TEST_POSTGRES_URL")?;
        let name = format!("sandkit_example_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(server.as_str()).await.expect("connect");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the database");
        admin.close().await.expect("close");
        let mut url = url::Url::parse(&server).expect("server URL");
        url.set_path(&format!("/{name}"));
        Some(FreshDatabase {
            url: url.to_string(),
            server,
            name,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    let admin = Database::connect(server.as_str()).await?;
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await?;
                    admin.close().await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

fn shared_db(database: &str, home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandkit-example-shared-db"));
    for var in sandkit_example_support::ENV_VARS
        .iter()
        .chain(&["SANDKIT_DATABASE_URL"])
    {
        cmd.env_remove(var);
    }
    cmd.arg("--database")
        .arg(database)
        .arg("--home")
        .arg(home)
        .kill_on_drop(true);
    cmd
}

fn stdout_of(step: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{step} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One printed lease interval of the shared workspace.
#[derive(Debug)]
struct Held {
    holder: String,
    acquired: DateTime<Utc>,
    released: DateTime<Utc>,
    counter: u32,
}

/// `key=value` of a printed line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn leases(stdout: &str) -> Vec<Held> {
    let time = |raw: &str| {
        DateTime::parse_from_rfc3339(raw)
            .unwrap_or_else(|e| panic!("bad time {raw:?}: {e}"))
            .with_timezone(&Utc)
    };
    stdout
        .lines()
        .filter(|l| l.starts_with("lease workspace=shared "))
        .map(|line| Held {
            holder: field(line, "holder").to_owned(),
            acquired: time(field(line, "acquired")),
            released: time(field(line, "released")),
            counter: field(line, "counter").parse().expect("counter"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_database_and_take_turns_on_the_shared_workspace() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let rounds = ROUNDS.to_string();

    let init = shared_db(&db.url, home.path())
        .arg("init")
        .output()
        .await
        .unwrap();
    assert!(stdout_of("init", init).contains("workspace shared exists"));

    // Two OS processes at once, each with its own workspace and the shared one.
    let alice = shared_db(&db.url, home.path())
        .args(["work", "--name", "alice", "--rounds", &rounds])
        .output();
    let bob = shared_db(&db.url, home.path())
        .args(["work", "--name", "bob", "--rounds", &rounds])
        .output();
    let (alice, bob) = tokio::join!(alice, bob);
    let alice = stdout_of("alice", alice.unwrap());
    let bob = stdout_of("bob", bob.unwrap());

    // Both finished all their rounds, on their own workspaces too.
    for (name, out) in [("alice", &alice), ("bob", &bob)] {
        assert!(
            out.contains(&format!("summary name={name} increments={ROUNDS} ")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "own workspace=own-{name} round={ROUNDS} lines={ROUNDS}"
            )),
            "{out}"
        );
    }

    let mut held: Vec<Held> = leases(&alice).into_iter().chain(leases(&bob)).collect();
    assert_eq!(
        held.len(),
        2 * ROUNDS as usize,
        "alice:\n{alice}\nbob:\n{bob}"
    );
    assert_eq!(
        held.iter()
            .filter(|h| h.holder.starts_with("alice:"))
            .count(),
        ROUNDS as usize
    );
    assert_eq!(
        held.iter().filter(|h| h.holder.starts_with("bob:")).count(),
        ROUNDS as usize
    );

    // Every increment saw a different value: none was lost or applied twice…
    let mut counters: Vec<u32> = held.iter().map(|h| h.counter).collect();
    counters.sort_unstable();
    assert_eq!(counters, (1..=2 * ROUNDS).collect::<Vec<_>>());

    // …because the lease intervals never overlapped, and the counter went up in the
    // order the lease was taken.
    held.sort_by_key(|h| h.acquired);
    for pair in held.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(before.acquired <= before.released, "{before:?}");
        assert!(
            before.released <= after.acquired,
            "lease intervals overlap:\n{before:?}\n{after:?}"
        );
        assert!(before.counter < after.counter, "{before:?}\n{after:?}");
    }

    // The shared workspace's counter equals the number of successful increments.
    let report = shared_db(&db.url, home.path())
        .arg("report")
        .output()
        .await
        .unwrap();
    let report = stdout_of("report", report);
    assert!(
        report.contains(&format!("counter={}\n", 2 * ROUNDS)),
        "{report}"
    );
}
