//! `git-agent`: bootstrap open, execute restricted.
//!
//! A coding agent needs tools (installed once, with the whole internet), then works on a
//! repository with access to GitHub only, and runs the code it wrote with no network at
//! all. Sandkit expresses that with three policies:
//!
//! | where | policy | why |
//! |---|---|---|
//! | the shared setup (built once) | allow-all | install tools |
//! | the workspace default (every durable command) | allow-services: github | fetch and push; `GITHUB_TOKEN` is injected by the firewall, never seen by the sandbox |
//! | a per-run override (one step) | deny-all | run the tests with no network |
//!
//! A provider that cannot enforce a policy refuses the command with
//! `ErrorKind::Unsupported`: Sandkit never runs a command with weaker egress than asked.
//! The local provider enforces allow-all and deny-all only, so there the GitHub step is
//! refused — this example says so, and goes on with the deny-all step, which the local
//! provider does enforce (in a network namespace).

use std::path::PathBuf;

use clap::Parser;
use sandkit_core::policies::Policy;
use sandkit_core::policies::presets::github;
use sandkit_core::{
    CommandResult, CommandSpec, ErrorKind, NetworkCapabilities, Order, RunQuery, Sandkit,
    SetupSpec, WorkspaceSpec,
};
use sandkit_example_support::{
    Home, ProviderKind, Report, init_logging, open_or_create_workspace, open_provider, open_store,
};

/// The setup bootstrap: "installs" the agent's tools. A real one would run
/// `npm install -g …` or `apt-get install …`; this one writes a wrapper script, so that it
/// runs anywhere. It runs once; its snapshot seeds every new workspace.
const INSTALL_TOOLS: &str = "mkdir -p tools \
    && echo 'agent-git 1.0' > tools/VERSION \
    && echo '#!/bin/sh' > tools/agent-git \
    && echo 'exec git \"$@\"' >> tools/agent-git";

/// Step 1 without `--repo`: stands in for a fetch, using the tools from the setup.
const FETCH_PLACEHOLDER: &str = "test -f tools/VERSION \
    && mkdir -p repo \
    && echo 'fix: handle empty input' >> repo/CHANGES.md \
    && cat tools/VERSION repo/CHANGES.md";

/// Step 1 with `--repo OWNER/NAME`: a real clone (or pull) over HTTPS. The URL holds no
/// token: the firewall adds the `authorization` header for github.com.
const FETCH_REPO: &str = "if [ -d repo/.git ]; then git -C repo pull --ff-only; \
    else git clone --depth 1 \"https://github.com/$REPO.git\" repo; fi \
    && git -C repo log -1 --oneline";

/// Step 2: runs the (untrusted) tests. It needs no network, so it gets none.
const RUN_TESTS: &str = "test -f tools/VERSION \
    && echo 'tests passed, with no network' > test-report.txt \
    && cat test-report.txt";

/// Bootstrap open, execute restricted: setup under allow-all, work under GitHub only,
/// tests under deny-all.
#[derive(Debug, Parser)]
#[command(after_help = "Switch to Vercel Sandbox with SANDKIT_PROVIDER=vercel \
    (credentials: VERCEL_OIDC_TOKEN, or VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID). \
    The GitHub step needs GITHUB_TOKEN.")]
struct Args {
    /// Directory for the SQLite database and the local sandboxes [default: a temporary
    /// directory, deleted on exit]
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,

    /// Workspace id (created on first use)
    #[arg(long, default_value = "git-agent")]
    workspace: String,

    /// Clone this GitHub repository (OWNER/NAME) in step 1 instead of the placeholder
    /// (needs a sandbox with git, e.g. Vercel)
    #[arg(long, value_name = "OWNER/NAME")]
    repo: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Report> {
    init_logging();
    let args = Args::parse();
    if let Some(repo) = &args.repo {
        check_repo(repo)?;
    }
    let provider = ProviderKind::from_env()?;
    let home = Home::open(args.home.as_deref())?;
    println!("provider: {provider}; state in {}", home.dir().display());

    // Bootstrap open: the setup runs under its own policy, here the whole internet.
    let setup = SetupSpec::new("sh")
        .args(["-c", INSTALL_TOOLS])
        .policy(Policy::allow_all());
    let sandkit = Sandkit::builder()
        .store(open_store(&home.sqlite_url()).await?)
        .provider(open_provider(provider, &home)?)
        .setup(setup)
        .build()?;
    let network = sandkit.provider().capabilities().network;
    println!("provider {provider} enforces: {}", enforced(&network));

    // Setup is lazy (first use of a new workspace) unless built eagerly, as here. It is
    // built once per definition, however many workspaces and processes use it.
    sandkit.bootstrap().await?;
    println!("0. setup: tools installed under allow-all (built once, seeds every new workspace)");

    // Execute restricted: the workspace's durable default is GitHub only. A durable
    // policy never holds a secret — GITHUB_TOKEN is read when a command starts.
    let workspace = open_or_create_workspace(
        &sandkit,
        &args.workspace,
        WorkspaceSpec::new()
            .name("git-agent")
            .policy(Policy::allow_services([github()])?),
    )
    .await?;
    let default_policy = workspace
        .record()
        .policy
        .as_ref()
        .map_or("allow-all".to_owned(), Policy::describe);
    println!(
        "   workspace {} has the default policy {default_policy}",
        workspace.id()
    );

    let fetch = match &args.repo {
        Some(repo) => CommandSpec::new("sh")
            .args(["-c", FETCH_REPO])
            .env("REPO", repo),
        None => CommandSpec::new("sh").args(["-c", FETCH_PLACEHOLDER]),
    };
    let fetched = step(
        "1. fetch under the workspace default (GitHub only)",
        workspace.run_command(fetch).await,
    )?;
    if !fetched && !network.allow_services {
        // Never weaken the policy to make the step run: explain what this provider can do.
        let next = if network.deny_all {
            "the next step needs no network and runs under deny-all, which it does enforce"
        } else {
            "on this machine it cannot enforce deny-all either (no network namespaces)"
        };
        println!(
            "   note: provider {provider} enforces {} only, so it never runs this step; {next}.",
            enforced(&network)
        );
    }

    // A per-run override applies to this command only; the next one is back on the
    // workspace default.
    let tests = CommandSpec::new("sh")
        .args(["-c", RUN_TESTS])
        .policy(Policy::deny_all());
    let tested = step(
        "2. test under a per-run override (deny-all: no network at all)",
        workspace.run_command(tests).await,
    )?;

    // The journal records the policy each durable command ran under (redacted).
    let journal = workspace
        .runs(RunQuery {
            order: Order::Asc,
            ..RunQuery::default()
        })
        .await?;
    println!(
        "journal of workspace {} (refused steps never started, so they have no run):",
        workspace.id()
    );
    for run in &journal.items {
        println!(
            "   {} -> {} (exit {}) under {}",
            abbreviate(run.args.last().unwrap_or(&run.command)),
            run.status.as_str(),
            run.exit_code.map_or("-".to_owned(), |c| c.to_string()),
            run.policy_description,
        );
    }
    println!(
        "done: fetch {}, tests {}",
        if fetched { "ran" } else { "refused" },
        if tested { "ran" } else { "refused" }
    );
    Ok(())
}

/// Prints how a step went. A policy the provider cannot enforce, or a credential the
/// policy needs, means nothing ran and nothing changed: say so and go on. Returns
/// whether the command ran.
fn step(title: &str, outcome: sandkit_core::Result<CommandResult>) -> Result<bool, Report> {
    println!("{title}");
    match outcome {
        Ok(result) => {
            for line in result.stdout.lines() {
                println!("   | {line}");
            }
            if !result.success() {
                println!(
                    "   exited with {}: {}",
                    result.exit_code,
                    result.stderr.trim()
                );
            }
            Ok(true)
        }
        Err(e) if e.kind() == &ErrorKind::Unsupported => {
            println!("   REFUSED, nothing ran: {e}");
            println!(
                "   Sandkit never runs a command with weaker egress than its policy asks. \
                 Run this step where the policy is enforced: SANDKIT_PROVIDER=vercel."
            );
            Ok(false)
        }
        Err(e) if matches!(e.kind(), ErrorKind::Credentials { .. }) => {
            println!("   NOT RUN, a credential is missing: {e}");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// The policy modes a provider enforces, for the banner.
fn enforced(network: &NetworkCapabilities) -> String {
    let modes = [
        (network.allow_all, "allow-all"),
        (network.deny_all, "deny-all"),
        (
            network.allow_services && network.header_injection,
            "allow-services with credential headers",
        ),
    ];
    let names: Vec<&str> = modes
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "no network policy".to_owned()
    } else {
        names.join(", ")
    }
}

/// The start of a script, for the journal listing.
fn abbreviate(script: &str) -> String {
    const SHOWN: usize = 40;
    match script.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &script[..end]),
        None => script.to_owned(),
    }
}

/// `OWNER/NAME` with GitHub's characters only, so that the clone URL is what it looks
/// like.
fn check_repo(repo: &str) -> Result<(), Report> {
    let valid_part = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((owner, name)) if valid_part(owner) && valid_part(name) => Ok(()),
        _ => Err(Report::new(format!(
            "--repo {repo:?} is not OWNER/NAME (letters, digits, '-', '_', '.'); e.g. --repo rust-lang/log"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_are_checked() {
        assert!(check_repo("rust-lang/log").is_ok());
        assert!(check_repo("a_b/c.d").is_ok());
        for bad in ["", "log", "/log", "rust-lang/", "a/b/c", "a/b c", "a/$(x)"] {
            assert!(check_repo(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn banner_names_enforced_modes() {
        let local = NetworkCapabilities {
            allow_all: true,
            deny_all: true,
            ..NetworkCapabilities::default()
        };
        assert_eq!(enforced(&local), "allow-all, deny-all");
        assert_eq!(
            enforced(&NetworkCapabilities::default()),
            "no network policy"
        );
    }

    #[test]
    fn long_scripts_are_abbreviated_on_a_char_boundary() {
        assert_eq!(abbreviate("cat x"), "cat x");
        let long = "é".repeat(50);
        assert_eq!(abbreviate(&long), format!("{}…", "é".repeat(40)));
    }
}
