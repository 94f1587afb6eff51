//! Runs a [`Plan`]: decides per scenario × backend whether it runs, skips or fails
//! outright (a database not configured under CI), runs the rest with a time limit,
//! and prints one line each as they finish.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt as _};

use crate::backend::{Backend, DatabaseKind, ProviderKind};
use crate::context::{Ctx, Tools};
use crate::database::{Availability, check_server};
use crate::registry::{Outcome, Plan, Scenario};
use crate::report::{Line, Status};

/// How long opening a run's database and provider may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Time limit per scenario run.
    pub timeout: Duration,
    /// Scenario runs in flight at once.
    pub jobs: usize,
    /// Binaries the scenarios start.
    pub tools: Tools,
}

/// What happens to one combination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it, with the database server URL when it has one.
    Run(Option<String>),
    /// Skip it, with the reason.
    Skip(String),
    /// Fail it without running, with the reason.
    Fail(String),
}

/// Whether the environment holds Vercel credentials (never their values).
pub fn live_credentials() -> bool {
    sandkit_vercel::Credentials::from_env().is_ok()
}

/// Decides every combination of `plan`, in plan order (scenario-major).
pub fn decide(
    plan: &Plan,
    databases: &BTreeMap<DatabaseKind, Availability>,
    live_credentials: bool,
) -> Vec<(&'static Scenario, Backend, Decision)> {
    let mut out = Vec::with_capacity(plan.len());
    for scenario in &plan.scenarios {
        for backend in &plan.backends {
            let decision = if let Some(why) = scenario.skip_reason(*backend) {
                Decision::Skip(why.to_owned())
            } else if backend.provider == ProviderKind::VercelLive && !live_credentials {
                Decision::Skip(
                    "no Vercel credentials in the environment (set VERCEL_OIDC_TOKEN, or \
                     VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID); the real service was not called"
                        .to_owned(),
                )
            } else {
                match databases.get(&backend.database) {
                    Some(Availability::Ready(url)) => Decision::Run(url.clone()),
                    Some(Availability::Skip(why)) => Decision::Skip(why.clone()),
                    Some(Availability::Fail(why)) => Decision::Fail(why.clone()),
                    None => Decision::Fail("database availability was not checked".to_owned()),
                }
            };
            out.push((*scenario, *backend, decision));
        }
    }
    out
}

/// Runs the plan, printing each line to stdout as it is known; returns every line.
pub async fn run(plan: &Plan, opts: &RunOptions) -> Vec<Line> {
    let mut databases = BTreeMap::new();
    for kind in plan.backends.iter().map(|b| b.database) {
        if let std::collections::btree_map::Entry::Vacant(entry) = databases.entry(kind) {
            entry.insert(check_server(kind, Availability::of(kind)).await);
        }
    }
    let live = plan
        .backends
        .iter()
        .any(|b| b.provider == ProviderKind::VercelLive);
    let jobs = decide(plan, &databases, live && live_credentials());
    let lines = futures::stream::iter(jobs)
        .map(|(scenario, backend, decision)| execute(scenario, backend, decision, opts))
        .buffered(opts.jobs.max(1))
        .inspect(|line| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", line.render());
            let _ = out.flush();
        });
    lines.collect().await
}

async fn execute(
    scenario: &'static Scenario,
    backend: Backend,
    decision: Decision,
    opts: &RunOptions,
) -> Line {
    let mut line = Line {
        scenario: scenario.name,
        backend: backend.to_string(),
        status: Status::Skip,
        elapsed: Duration::ZERO,
        detail: String::new(),
    };
    let server = match decision {
        Decision::Run(server) => server,
        Decision::Skip(why) => {
            line.detail = why;
            return line;
        }
        Decision::Fail(why) => {
            line.status = Status::Fail;
            line.detail = why;
            return line;
        }
    };
    let began = Instant::now();
    let (status, detail) = run_one(scenario, backend, server.as_deref(), opts).await;
    line.status = status;
    line.detail = detail;
    line.elapsed = began.elapsed();
    line
}

async fn run_one(
    scenario: &'static Scenario,
    backend: Backend,
    server: Option<&str>,
    opts: &RunOptions,
) -> (Status, String) {
    let ctx =
        match tokio::time::timeout(OPEN_TIMEOUT, Ctx::open(backend, server, opts.tools.clone()))
            .await
        {
            Ok(Ok(ctx)) => ctx,
            Ok(Err(e)) => return (Status::Fail, format!("setting up {backend}: {e:#}")),
            Err(_) => {
                return (
                    Status::Fail,
                    format!("setting up {backend} took over {}s", OPEN_TIMEOUT.as_secs()),
                );
            }
        };
    let body = AssertUnwindSafe((scenario.run)(&ctx)).catch_unwind();
    let result = tokio::time::timeout(opts.timeout, body).await;
    let verdict = match result {
        Ok(Ok(Ok(Outcome::Passed(notes)))) => (Status::Pass, notes.join("; ")),
        Ok(Ok(Ok(Outcome::Skipped(why)))) => (Status::Skip, why),
        Ok(Ok(Err(e))) => (Status::Fail, format!("{e:#}")),
        Ok(Err(panic)) => (Status::Fail, format!("panicked: {}", panic_message(&panic))),
        Err(_) => (
            Status::Fail,
            format!("timed out after {}s", opts.timeout.as_secs()),
        ),
    };
    if let Err(e) = ctx.close().await {
        eprintln!(
            "smoke: cleaning up after {} on {backend}: {e:#}",
            scenario.name
        );
    }
    verdict
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn availability(pg: Availability) -> BTreeMap<DatabaseKind, Availability> {
        BTreeMap::from([
            (DatabaseKind::Sqlite, Availability::Ready(None)),
            (DatabaseKind::Postgres, pg),
            (
                DatabaseKind::MySql,
                Availability::Ready(Some("mysql://x/y".into())),
            ),
        ])
    }

    #[test]
    fn decisions_follow_scenarios_databases_and_credentials() {
        let plan =
            Plan::new(&["provider-faults".into(), "durability".into()], &[], true).expect("plan");
        let decisions = decide(
            &plan,
            &availability(Availability::Fail("unset".into())),
            false,
        );
        assert_eq!(decisions.len(), 18);
        let get = |scenario: &str, backend: &str| {
            decisions
                .iter()
                .find(|(s, b, _)| s.name == scenario && b.to_string() == backend)
                .map(|(_, _, d)| d.clone())
                .expect("combination")
        };
        assert_eq!(get("durability", "local/sqlite"), Decision::Run(None));
        assert_eq!(
            get("durability", "vercel-fake/mysql"),
            Decision::Run(Some("mysql://x/y".into()))
        );
        assert_eq!(
            get("durability", "local/postgres"),
            Decision::Fail("unset".into())
        );
        assert!(matches!(
            get("provider-faults", "local/sqlite"),
            Decision::Skip(_)
        ));
        assert_eq!(
            get("provider-faults", "vercel-fake/sqlite"),
            Decision::Run(None)
        );
        match get("durability", "vercel-live/sqlite") {
            Decision::Skip(why) => assert!(why.contains("VERCEL_OIDC_TOKEN"), "{why}"),
            other => panic!("expected a skip, got {other:?}"),
        }
        let with_creds = decide(
            &plan,
            &availability(Availability::Skip("unset".into())),
            true,
        );
        assert!(with_creds.iter().any(|(s, b, d)| s.name == "durability"
            && b.provider == ProviderKind::VercelLive
            && b.database == DatabaseKind::Sqlite
            && *d == Decision::Run(None)));
    }
}
