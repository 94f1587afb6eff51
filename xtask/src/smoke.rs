//! `cargo xtask smoke [--release] [ARGS…]`: the end-to-end scenarios of the `smoke`
//! crate against the fake Vercel API and the local provider, on SQLite and (when the
//! URLs are set, or a server answers on the default loopback port) PostgreSQL and
//! MariaDB.
//!
//! Builds the `sandkit` CLI (the README scenario runs it) and the `sandkit-smoke`
//! runner, then runs `sandkit-smoke ARGS…`; every argument but `--release` is passed
//! through (`--scenario NAME`, `--backend local/sqlite`, `--live`, `--list`, `--jobs N`;
//! see `cargo xtask smoke --help`). The debug profile is the default: the scenarios
//! wait on processes and databases, not on the CPU, and CI has already built it.

use std::process::Command;

/// Runs the smoke task.
pub fn run(args: &[String]) -> Result<(), String> {
    let release = args.iter().any(|a| a == "--release");
    let passthrough: Vec<&String> = args.iter().filter(|a| *a != "--release").collect();
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    let help = passthrough
        .iter()
        .any(|a| matches!(a.as_str(), "-h" | "--help" | "--list"));
    if !help {
        super::default_database_urls();
    }
    super::run(
        super::cargo()
            .args([
                "build",
                "--quiet",
                "--bins",
                "-p",
                "sandkit-cli",
                "-p",
                "smoke",
            ])
            .args(profile),
    )?;
    let mut smoke: Command = super::cargo();
    smoke
        .args(["run", "--quiet", "-p", "smoke", "--bin", "sandkit-smoke"])
        .args(profile)
        .arg("--")
        .args(passthrough);
    super::run(&mut smoke).map_err(|_| "smoke scenarios failed; see the report above".to_owned())
}
