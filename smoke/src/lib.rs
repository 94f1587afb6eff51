//! End-to-end smoke scenarios for Sandkit, run by `cargo xtask smoke`.
//!
//! Every scenario runs against every backend: the Vercel provider against the fake
//! Vercel API (wiremock on loopback) and the local provider, each on a fresh SQLite
//! file and — when `SANDKIT_TEST_POSTGRES_URL` / `SANDKIT_TEST_MYSQL_URL` name a
//! server — a fresh PostgreSQL / MariaDB database (created per run and dropped after;
//! under `CI=true` a missing URL is a failure). With `--live` the Vercel scenarios
//! also run against the real service when credentials are in the environment.
//!
//! Scenarios that need other OS processes (durability across restarts, attaching a
//! session, crash recovery, the cross-process race) re-execute this binary as
//! `sandkit-smoke child …`, configured through the environment; the crash failpoints
//! live in [`instrument::Instrumented`], a provider wrapper, so no other crate carries
//! test hooks.
//!
//! The report has one line per scenario × backend (`PASS`/`FAIL`/`SKIP`, time, notes)
//! and a summary ending with a plain `N passed, M failed` line.

pub mod backend;
pub mod child;
pub mod cli;
pub mod context;
pub mod database;
pub mod instrument;
pub mod registry;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod sql;
pub mod tools;

use std::path::{Path, PathBuf};

/// Finds the `sandkit` CLI binary: `explicit`, else next to `smoke_exe` (cargo puts
/// every binary of a profile in one directory).
pub fn find_sandkit_exe(explicit: Option<PathBuf>, smoke_exe: &Path) -> Option<PathBuf> {
    explicit.or_else(|| {
        let sibling = smoke_exe
            .parent()?
            .join(format!("sandkit{}", std::env::consts::EXE_SUFFIX));
        sibling.is_file().then_some(sibling)
    })
}
