//! The scenario registry and the selection (`--scenario`, `--backend`, `--live`) of
//! what to run.

use futures::future::BoxFuture;

use crate::backend::{Backend, BackendFilter, DatabaseKind, ProviderKind};
use crate::context::Ctx;
use crate::scenarios;

/// What a scenario reports when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held; the notes say what was checked differently on this backend.
    Passed(Vec<String>),
    /// Not meaningful on this backend, with the reason.
    Skipped(String),
}

impl Outcome {
    /// Passed with no notes.
    pub fn passed() -> Self {
        Outcome::Passed(Vec::new())
    }

    /// Passed with notes (empty notes are dropped).
    pub fn passed_with(notes: Vec<String>) -> Self {
        Outcome::Passed(notes.into_iter().filter(|n| !n.is_empty()).collect())
    }
}

/// A scenario's future.
pub type ScenarioFuture<'a> = BoxFuture<'a, anyhow::Result<Outcome>>;

/// A scenario body: runs against a fresh [`Ctx`] and fails with a message.
pub type ScenarioFn = for<'a> fn(&'a Ctx) -> ScenarioFuture<'a>;

/// What a scenario needs from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Runs on every backend.
    Any,
    /// Needs the fake Vercel API (fault injection).
    FakeVercel,
}

/// One end-to-end scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Position in the list (also accepted by `--scenario`).
    pub number: u8,
    /// Name used in reports and by `--scenario`.
    pub name: &'static str,
    /// One line on what it asserts.
    pub summary: &'static str,
    /// What it needs from the backend.
    pub requires: Requirement,
    /// Its body.
    pub run: ScenarioFn,
}

impl Scenario {
    /// Why it does not run on `backend`, if it does not.
    pub fn skip_reason(&self, backend: Backend) -> Option<&'static str> {
        match self.requires {
            Requirement::Any => None,
            Requirement::FakeVercel if backend.provider == ProviderKind::VercelFake => None,
            Requirement::FakeVercel => {
                Some("needs fault injection, which only the fake Vercel API offers")
            }
        }
    }
}

/// Every scenario, in order.
pub fn scenarios() -> &'static [Scenario] {
    &SCENARIOS
}

static SCENARIOS: [Scenario; 11] = [
    Scenario {
        number: 1,
        name: "durability",
        summary: "write in one process, read in a fresh process with a fresh Sandkit",
        requires: Requirement::Any,
        run: scenarios::durability::run,
    },
    Scenario {
        number: 2,
        name: "detached-logs",
        summary: "a detached command's logs arrive before wait() completes, on the right streams",
        requires: Requirement::Any,
        run: scenarios::detached_logs::run,
    },
    Scenario {
        number: 3,
        name: "session",
        summary: "session lease, extend, busy, cross-process attach, processes, URL, commit, discard",
        requires: Requirement::Any,
        run: scenarios::session::run,
    },
    Scenario {
        number: 4,
        name: "policies",
        summary: "default/set/override policies, credentials, durable secrets refused, no secret in any table",
        requires: Requirement::Any,
        run: scenarios::policies::run,
    },
    Scenario {
        number: 5,
        name: "corruption",
        summary: "every JSON column corrupted with raw SQL is a typed Corrupt error naming table.column",
        requires: Requirement::Any,
        run: scenarios::corruption::run,
    },
    Scenario {
        number: 6,
        name: "shared-setup",
        summary: "setup built once for several workspaces and concurrent first uses; stale setup rebuilt",
        requires: Requirement::Any,
        run: scenarios::shared_setup::run,
    },
    Scenario {
        number: 7,
        name: "crash-recovery",
        summary: "kill -9 after the lease, mid-command and after the snapshot; the next command recovers",
        requires: Requirement::Any,
        run: scenarios::crash::run,
    },
    Scenario {
        number: 8,
        name: "race",
        summary: "8 processes run durable commands on one workspace: serialised, nothing lost",
        requires: Requirement::Any,
        run: scenarios::race::run,
    },
    Scenario {
        number: 9,
        name: "provider-faults",
        summary: "429, 503, 500, dropped stream, expired head: typed errors or retries, no duplicates",
        requires: Requirement::FakeVercel,
        run: scenarios::faults::run,
    },
    Scenario {
        number: 10,
        name: "readme",
        summary: "the README quick start, run verbatim with the sandkit binary",
        requires: Requirement::Any,
        run: scenarios::readme::run,
    },
    Scenario {
        number: 11,
        name: "edges",
        summary: "a commit that died after its snapshot is finished, an abandoned setup build is discarded, an untouched session expires",
        requires: Requirement::Any,
        run: scenarios::edges::run,
    },
];

/// Finds a scenario by name or number.
pub fn find(name: &str) -> Option<&'static Scenario> {
    let name = name.trim();
    scenarios()
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name) || s.number.to_string() == name)
}

/// What to run: scenarios × backends.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Selected scenarios, in order.
    pub scenarios: Vec<&'static Scenario>,
    /// Selected backends, in order.
    pub backends: Vec<Backend>,
}

impl Plan {
    /// Builds the plan from the command line: scenario names or numbers (empty: all),
    /// backend filters (empty: all), and whether the live Vercel provider is included.
    ///
    /// # Errors
    /// A message naming the unknown scenario, a filter matching nothing, or a live
    /// backend requested without `--live`.
    pub fn new(names: &[String], filters: &[BackendFilter], live: bool) -> Result<Plan, String> {
        let scenarios = if names.is_empty() {
            scenarios().iter().collect()
        } else {
            let mut chosen: Vec<&'static Scenario> = Vec::new();
            for name in names {
                let scenario = find(name).ok_or_else(|| {
                    let known: Vec<String> = scenarios()
                        .iter()
                        .map(|s| format!("{} ({})", s.name, s.number))
                        .collect();
                    format!("unknown scenario {name:?}; known: {}", known.join(", "))
                })?;
                if !chosen.iter().any(|s| s.number == scenario.number) {
                    chosen.push(scenario);
                }
            }
            chosen.sort_by_key(|s| s.number);
            chosen
        };
        if !live && filters.iter().any(BackendFilter::names_live) {
            return Err(
                "the vercel-live backend runs only with --live (and Vercel credentials)".into(),
            );
        }
        let backends: Vec<Backend> = ProviderKind::ALL
            .into_iter()
            .filter(|p| live || *p != ProviderKind::VercelLive)
            .flat_map(|p| {
                DatabaseKind::ALL
                    .into_iter()
                    .map(move |d| Backend::new(p, d))
            })
            .filter(|b| filters.is_empty() || filters.iter().any(|f| f.matches(*b)))
            .collect();
        if backends.is_empty() {
            return Err("no backend matches the --backend filters".into());
        }
        Ok(Plan {
            scenarios,
            backends,
        })
    }

    /// How many scenario × backend combinations the plan has.
    pub fn len(&self) -> usize {
        self.scenarios.len() * self.backends.len()
    }

    /// Whether the plan is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(raw: &[&str]) -> Vec<BackendFilter> {
        raw.iter().map(|f| f.parse().expect("filter")).collect()
    }

    #[test]
    fn the_registry_has_the_eleven_scenarios_in_order_with_unique_names() {
        let all = scenarios();
        assert_eq!(all.len(), 11);
        for (i, s) in all.iter().enumerate() {
            assert_eq!(usize::from(s.number), i + 1);
            assert!(!s.summary.is_empty());
            assert_eq!(all.iter().filter(|o| o.name == s.name).count(), 1);
        }
    }

    #[test]
    fn scenarios_are_found_by_name_or_number() {
        assert_eq!(find("crash-recovery").map(|s| s.number), Some(7));
        assert_eq!(find("7").map(|s| s.name), Some("crash-recovery"));
        assert_eq!(find("Race").map(|s| s.number), Some(8));
        assert!(find("nope").is_none());
    }

    #[test]
    fn the_default_plan_is_every_scenario_on_fake_vercel_and_local_on_every_database() {
        let plan = Plan::new(&[], &[], false).expect("plan");
        assert_eq!(plan.scenarios.len(), 11);
        assert_eq!(plan.backends.len(), 6);
        assert!(
            plan.backends
                .iter()
                .all(|b| b.provider != ProviderKind::VercelLive)
        );
        assert_eq!(plan.len(), 66);
        let live = Plan::new(&[], &[], true).expect("plan");
        assert_eq!(live.backends.len(), 9);
    }

    #[test]
    fn filters_narrow_scenarios_and_backends() {
        let plan = Plan::new(
            &["race".into(), "1".into(), "durability".into()],
            &filters(&["sqlite"]),
            false,
        )
        .expect("plan");
        let names: Vec<&str> = plan.scenarios.iter().map(|s| s.name).collect();
        assert_eq!(names, ["durability", "race"]);
        let backends: Vec<String> = plan.backends.iter().map(ToString::to_string).collect();
        assert_eq!(backends, ["vercel-fake/sqlite", "local/sqlite"]);

        let plan =
            Plan::new(&[], &filters(&["local/postgres", "fake/mysql"]), false).expect("plan");
        let backends: Vec<String> = plan.backends.iter().map(ToString::to_string).collect();
        assert_eq!(backends, ["vercel-fake/mysql", "local/postgres"]);
    }

    #[test]
    fn bad_selections_are_explained() {
        let err = Plan::new(&["nope".into()], &[], false).expect_err("unknown");
        assert!(err.contains("crash-recovery (7)"), "{err}");
        let err = Plan::new(&[], &filters(&["live"]), false).expect_err("live");
        assert!(err.contains("--live"), "{err}");
        let err = Plan::new(&[], &filters(&["vercel-live/sqlite"]), false).expect_err("live");
        assert!(err.contains("--live"), "{err}");
    }

    #[test]
    fn fault_injection_runs_only_on_the_fake() {
        let faults = find("provider-faults").expect("registered");
        let fake = Backend::new(ProviderKind::VercelFake, DatabaseKind::Sqlite);
        let local = Backend::new(ProviderKind::Local, DatabaseKind::Sqlite);
        let live = Backend::new(ProviderKind::VercelLive, DatabaseKind::Sqlite);
        assert_eq!(faults.skip_reason(fake), None);
        assert!(faults.skip_reason(local).is_some());
        assert!(faults.skip_reason(live).is_some());
        assert_eq!(
            find("durability").expect("registered").skip_reason(local),
            None
        );
    }
}
