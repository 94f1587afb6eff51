//! Project tasks, run with `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! * `test` — the whole test suite: every crate's tests (nextest when installed, else
//!   `cargo test`) and the doctests. PostgreSQL and MariaDB tests use
//!   `SANDKIT_TEST_POSTGRES_URL` / `SANDKIT_TEST_MYSQL_URL`; when unset and a server
//!   answers on the default loopback port, the task points the tests at it.
//! * `codegen [--check]` — regenerates the checked-in generated sources from
//!   `sandkit-codegen`'s schema model (the SeaORM adapter's entities and migrations, and
//!   the `app-migrations` example's generated migration and entities); with `--check`,
//!   writes nothing and fails naming every file that differs (CI runs this).
//! * `bench [--quick] [--only N] [--out FILE]` — runs the benchmarks and writes
//!   `BENCHMARKS.md` (see `bench.rs`).
//! * `smoke [ARGS…]` — builds the `sandkit` CLI and runs the end-to-end scenarios of
//!   the `smoke` crate (see `smoke.rs`); exits non-zero when any fails.

mod bench;
mod smoke;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test               run the whole test suite (all crates, doctests)
  codegen [--check]  regenerate the SeaORM adapter's entity/migration sources from the
                     schema model (--check: fail when they differ, write nothing)
  bench [--quick] [--only N[,N…]] [--out FILE]
                     run the benchmarks and write BENCHMARKS.md
  smoke [--release] [--scenario NAME] [--backend B] [--live] [--list]
                     run the end-to-end scenarios (fake Vercel API, local provider;
                     SQLite, PostgreSQL, MariaDB); --help lists every option";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("codegen") => codegen(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("smoke") => smoke::run(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command, failing with its name when it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

/// Points the database tests at local servers when the URLs are unset.
fn default_database_urls() {
    for (var, port, url) in [
        (
            "SANDKIT_TEST_POSTGRES_URL",
            5432,
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        (
            "SANDKIT_TEST_MYSQL_URL",
            3306,
            "mysql://root@127.0.0.1:3306/test",
        ),
    ] {
        if std::env::var_os(var).is_some() {
            continue;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
            eprintln!("xtask: {var} unset; using the server on {addr}: {url}");
            // SAFETY: xtask is single-threaded here; child processes inherit the variable.
            unsafe { std::env::set_var(var, url) };
        } else {
            eprintln!("xtask: {var} unset and nothing listens on {addr}; those tests will skip");
        }
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn test(extra: &[String]) -> Result<(), String> {
    default_database_urls();
    if has_nextest() {
        run(cargo()
            .args(["nextest", "run", "--workspace", "--no-fail-fast"])
            .args(extra))?;
    } else {
        eprintln!("xtask: cargo-nextest not installed; using cargo test");
        run(cargo()
            .args([
                "test",
                "--workspace",
                "--no-fail-fast",
                "--lib",
                "--bins",
                "--tests",
            ])
            .args(extra))?;
    }
    run(cargo().args(["test", "--workspace", "--doc"]))
}

/// A crate of the workspace, by its directory.
fn crate_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    dir.canonicalize().unwrap_or(dir)
}

/// The generated sources checked into the workspace, by the crate that holds them: the
/// SeaORM adapter's entities and migrations, and what `sandkit generate --adapter
/// seaorm` writes for the example application that owns its migrations.
fn generated_sources()
-> Result<Vec<(std::path::PathBuf, Vec<sandkit_codegen::GeneratedFile>)>, String> {
    let mut adapter = sandkit_codegen::adapter_sources().map_err(|e| e.to_string())?;
    sandkit_codegen::format_files(&mut adapter).map_err(|e| e.to_string())?;
    let mut app = sandkit_codegen::seaorm_schema("src/migration", "src/entities/sandkit")
        .map_err(|e| e.to_string())?;
    sandkit_codegen::format_files(&mut app).map_err(|e| e.to_string())?;
    Ok(vec![
        (crate_dir("sandkit-adapter-seaorm"), adapter),
        (crate_dir("examples/app-migrations"), app),
    ])
}

fn codegen(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        other => {
            return Err(format!(
                "unexpected arguments {other:?}; usage: cargo xtask codegen [--check]"
            ));
        }
    };
    for (root, files) in generated_sources()? {
        if check {
            let differing =
                sandkit_codegen::output::differing(&root, &files).map_err(|e| e.to_string())?;
            if !differing.is_empty() {
                let names: Vec<String> = differing
                    .iter()
                    .map(|p| format!("  {}", p.display()))
                    .collect();
                return Err(format!(
                    "generated sources differ from the schema model:\n{}\nrun `cargo xtask codegen` and commit the result",
                    names.join("\n")
                ));
            }
            eprintln!(
                "xtask: {} generated files in {} are up to date",
                files.len(),
                root.display()
            );
            continue;
        }
        let outcomes =
            sandkit_codegen::write_files(&root, &files, true).map_err(|e| e.to_string())?;
        for outcome in outcomes {
            let verdict = match outcome {
                sandkit_codegen::WriteOutcome::Created(_) => "created",
                sandkit_codegen::WriteOutcome::Replaced(_) => "updated",
                sandkit_codegen::WriteOutcome::UpToDate(_) => "up to date",
            };
            eprintln!("xtask: {verdict}: {}", outcome.path().display());
        }
    }
    Ok(())
}
