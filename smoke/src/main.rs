//! `sandkit-smoke`: runs the end-to-end scenarios (see the `smoke` crate docs).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser as _;
use smoke::backend::DatabaseKind;
use smoke::cli::{Cli, RunArgs, Tool};
use smoke::context::Tools;
use smoke::database::Availability;
use smoke::registry::{Plan, scenarios};
use smoke::runner::{RunOptions, live_credentials};
use smoke::{child, report, runner, tools};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.tool {
        Some(Tool::Child(step)) => child::main(step).await,
        Some(Tool::ServeHttp { port }) => tools::serve_http(port),
        Some(Tool::ProbeTcp { addr }) => tools::probe_tcp(&addr),
        None => run(cli.run).await,
    }
}

/// Logs to stderr; `RUST_LOG` sets the filter (default: off, since the
/// scenarios provoke warnings on purpose).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(args: RunArgs) -> ExitCode {
    let plan = match Plan::new(&args.scenarios, &args.backends, args.live) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("sandkit-smoke: {message}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        list(&plan);
        return ExitCode::SUCCESS;
    }
    let smoke_exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("sandkit-smoke: cannot find this binary's path: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sandkit_exe = smoke::find_sandkit_exe(args.sandkit_bin.clone(), &smoke_exe);
    let opts = RunOptions {
        timeout: Duration::from_secs(args.timeout),
        jobs: args.jobs,
        tools: Tools {
            smoke_exe,
            sandkit_exe,
        },
    };
    println!(
        "sandkit smoke: {} × {}",
        plural(plan.scenarios.len(), "scenario"),
        plural(plan.backends.len(), "backend")
    );
    if !args.live {
        println!(
            "(the real Vercel service is not called; pass --live to run the Vercel scenarios against it)"
        );
    } else if !live_credentials() {
        println!(
            "--live: no Vercel credentials in the environment, so the vercel-live runs are skipped"
        );
    }
    let began = Instant::now();
    let lines = runner::run(&plan, &opts).await;
    println!("{}", report::summary(&lines, began.elapsed()));
    if report::counts(&lines).failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn list(plan: &Plan) {
    println!("scenarios:");
    for s in scenarios() {
        let mark = if plan.scenarios.iter().any(|p| p.number == s.number) {
            "*"
        } else {
            " "
        };
        println!("{mark} {:>2} {:<15}  {}", s.number, s.name, s.summary);
    }
    println!("backends (* selected):");
    for b in &plan.backends {
        println!("* {b}");
    }
    println!("databases:");
    for kind in DatabaseKind::ALL {
        let state = match Availability::of(kind) {
            Availability::Ready(_) => "ready".to_owned(),
            Availability::Skip(why) | Availability::Fail(why) => why,
        };
        println!("  {:<8} {state}", kind.name());
    }
}
