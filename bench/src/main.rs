//! `sandkit-bench`: the measurements behind `BENCHMARKS.md`.
//!
//! `cargo xtask bench` builds this binary in release mode, runs one subcommand per
//! figure (each prints JSON lines on stdout), stores the lines under `target/bench/`
//! and finally runs `report` to write `BENCHMARKS.md`.
//!
//! ```text
//! sandkit-bench overhead      [--quick]   1. durable command vs the bare provider calls
//! sandkit-bench vercel-calls  [--quick]   2. Vercel API calls per durable command
//! sandkit-bench throughput    [--quick]   3. concurrent workspaces × durable commands
//! sandkit-bench contention    [--quick]   4. 8 processes on one workspace (PostgreSQL)
//! sandkit-bench cli --sandkit PATH [--quick]   6. `sandkit run ws -- true` wall time, RSS
//! sandkit-bench memory        [--quick]   7. peak RSS: 10,000 listed, 1,000 handles
//! sandkit-bench kill-recovery --sandkit PATH [--quick]   9. kill -9 of `sandkit run` → next success
//! sandkit-bench report --results DIR --out FILE [--quick]
//! sandkit-bench machine                   the machine note as JSON
//! ```
//!
//! Figure 5 (local snapshots) and the SeaORM statement counts come from the examples
//! of `sandkit-local` and `sandkit-adapter-seaorm`; `report` reads their JSON too.
//! PostgreSQL figures create a fresh database on `SANDKIT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and drop it afterwards.

mod args;
mod bare;
mod child;
mod cli_wall;
mod contention;
mod machine;
mod memory;
mod overhead;
mod recovery;
mod report;
mod stats;
mod stores;
mod throughput;
mod timed_store;
mod vercel_calls;

use std::process::ExitCode;

use args::Args;

const USAGE: &str = "usage: sandkit-bench <overhead|vercel-calls|throughput|contention|cli|memory|kill-recovery|report|machine> [--quick] [options]
(run everything with `cargo xtask bench`)";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = raw.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(rest) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("sandkit-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match task.as_str() {
        "report" => report::run(&args),
        "machine" => {
            println!("{}", machine::note());
            Ok(())
        }
        "cli" => cli_wall::run(&args),
        "memory" => memory::run(&args),
        "kill-recovery" => recovery::run(&args),
        "contention" => contention::run(&args),
        async_task => block_on(async_task, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandkit-bench {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Tasks that run inside one multi-threaded Tokio runtime (like an application).
fn block_on(task: &str, args: &Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the Tokio runtime: {e}"))?;
    runtime.block_on(async {
        match task {
            "overhead" => overhead::run(args).await,
            "vercel-calls" => vercel_calls::run(args).await,
            "throughput" => throughput::run(args).await,
            "contention-worker" => contention::worker(args).await,
            "memory-child" => memory::child(args).await,
            other => Err(format!("unknown task {other:?}\n{USAGE}")),
        }
    })
}
