//! Many tasks racing one workspace: at most one holds the lease, nothing is lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Rig, new_ws, run, sh};
use sandkit_core::{ErrorKind, SessionOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commands_and_sessions_never_overlap_or_lose_updates() {
    const TASKS: usize = 32;
    const ROUNDS: usize = 200;
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    let mut wins = 0usize;

    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let ws = ws.clone();
            let holders = holders.clone();
            let max_holders = max_holders.clone();
            tasks.push(tokio::spawn(async move {
                let enter = || {
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                };
                let leave = || holders.fetch_sub(1, Ordering::SeqCst);
                if (round + task) % 2 == 0 {
                    // A durable command: its sandbox lives strictly inside its lease, so
                    // the provider's high-water mark of live sandboxes checks it.
                    match ws.spawn_command(sh("incr counter")).await {
                        Ok(cmd) => cmd.wait().await.map(|_| true),
                        Err(e) => Err(e),
                    }
                } else {
                    // A session: between open (lease taken) and commit (lease released).
                    match ws.open_session(SessionOptions::new()).await {
                        Ok(s) => {
                            enter();
                            s.exec(sh("incr counter")).await.expect("exec");
                            leave();
                            s.commit().await.map(|_| true)
                        }
                        Err(e) => Err(e),
                    }
                }
            }));
        }
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => wins += 1,
                Err(e) => assert!(
                    matches!(e.kind(), ErrorKind::Busy | ErrorKind::Conflict),
                    "losers are busy or conflicted, not {e:?}"
                ),
            }
        }
    }
    assert_eq!(
        max_holders.load(Ordering::SeqCst),
        1,
        "never two holders at once"
    );
    assert!(
        rig.provider.max_alive_per_workspace() <= 1,
        "never two sandboxes at once"
    );
    assert!(wins >= ROUNDS, "at least one winner per round ({wins})");
    let counter = run(&ws, "cat counter").await.stdout;
    assert_eq!(
        counter.trim().parse::<usize>().expect("number"),
        wins,
        "no lost update"
    );
}
