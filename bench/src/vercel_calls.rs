//! Figure 2: Vercel API requests per durable command, counted by the fake API.
//!
//! The baseline is the same start → exec → snapshot sequence called directly on the
//! `VercelProvider`: the fewest requests that work can take. Requests made after the
//! command returned, by the background snapshot retention it triggered, are counted
//! apart.

use std::collections::BTreeMap;
use std::sync::Arc;

use sandkit_adapter_memory::MemoryStore;
use sandkit_core::policies::{Policy, presets};
use sandkit_core::{CommandSpec, Sandkit, WorkspaceId, WorkspaceSpec};
use sandkit_vercel::fake::FakeVercel;
use serde_json::json;

use crate::args::Args;
use crate::stats::{median, summary_json};

/// The path of network-policy updates.
const NETWORK_POLICY: &str = "/v2/sandboxes/sessions/*/network-policy";

/// Snapshot deletions: Sandkit makes them only in its background snapshot retention.
const DELETE_SNAPSHOT: &str = "/v2/sandboxes/snapshots/*";

/// What one command cost at the API.
#[derive(Default)]
struct Counted {
    total: usize,
    network_policy: usize,
    by_endpoint: BTreeMap<String, usize>,
}

/// The recorded requests, split into the command's own and retention's deletions
/// (which may start before `run_command` has returned).
fn counted(fake: &FakeVercel) -> (Counted, Counted) {
    let (mut command, mut retention) = (Counted::default(), Counted::default());
    for r in fake.requests() {
        let path: Vec<String> = r
            .path
            .split('/')
            .map(|s| {
                if s.starts_with("sbx_") || s.starts_with("cmd_") || s.starts_with("snap_") {
                    "*".to_owned()
                } else {
                    s.to_owned()
                }
            })
            .collect();
        let into = if r.matches("DELETE", DELETE_SNAPSHOT) {
            &mut retention
        } else {
            &mut command
        };
        into.total += 1;
        if r.matches("POST", NETWORK_POLICY) {
            into.network_policy += 1;
        }
        *into
            .by_endpoint
            .entry(format!("{} {}", r.method, path.join("/")))
            .or_default() += 1;
    }
    (command, retention)
}

/// Runs each workspace policy and prints one JSON line per policy.
pub async fn run(args: &Args) -> Result<(), String> {
    let commands = args.pick(20, 5);
    let npm = Policy::allow_services([presets::npm()]).map_err(|e| e.to_string())?;
    for (name, policy) in [
        ("default (allow-all)", None),
        ("deny-all", Some(Policy::deny_all())),
        ("allow npm", Some(npm)),
    ] {
        println!("{}", case(name, policy, commands).await?);
    }
    Ok(())
}

async fn case(
    name: &str,
    policy: Option<Policy>,
    commands: usize,
) -> Result<serde_json::Value, String> {
    let fake = FakeVercel::start().await;
    let provider = Arc::new(fake.provider());
    let sandkit = Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let mut spec = WorkspaceSpec::new().name("calls");
    if let Some(policy) = policy {
        spec = spec.policy(policy);
    }
    let ws = sandkit
        .create_workspace(spec)
        .await
        .map_err(|e| e.to_string())?;
    let mut per_command = Vec::new();
    let mut policy_updates = 0;
    let mut endpoints = BTreeMap::new();
    let mut retention = BTreeMap::new();
    // The first command starts fresh; the rest start from the head like every later one.
    let mut first = None;
    for i in 0..=commands {
        fake.clear_requests();
        let out = ws
            .run_command(CommandSpec::new("sh").args(["-c", "echo hi >> notes.txt"]))
            .await
            .map_err(|e| format!("run_command: {e}"))?;
        if out.exit_code != 0 {
            return Err(format!("the command exited with {}", out.exit_code));
        }
        // Snapshot retention deletes old snapshots in the background after the commit.
        sandkit.settle().await;
        let (c, background) = counted(&fake);
        if i == 0 {
            first = Some(c.total);
            continue;
        }
        for (endpoint, n) in background.by_endpoint {
            *retention.entry(endpoint).or_insert(0) += n;
        }
        per_command.push(c.total as f64);
        policy_updates += c.network_policy;
        for (endpoint, n) in c.by_endpoint {
            *endpoints.entry(endpoint).or_insert(0) += n;
        }
    }
    let averaged = |m: BTreeMap<String, usize>| -> serde_json::Map<String, serde_json::Value> {
        m.into_iter()
            .map(|(k, v)| (k, json!(v as f64 / commands as f64)))
            .collect()
    };
    let endpoints = averaged(endpoints);
    let retention = averaged(retention);

    // Baseline: the same sequence on the provider, from a snapshot like a warm command.
    let bare_id = WorkspaceId::new("calls-bare").map_err(|e| e.to_string())?;
    let mut head = Some(crate::bare::command(provider.as_ref(), &bare_id, None, "true").await?);
    let mut bare = Vec::new();
    for _ in 0..commands {
        fake.clear_requests();
        head = Some(crate::bare::command(provider.as_ref(), &bare_id, head.take(), "true").await?);
        bare.push(counted(&fake).0.total as f64);
    }
    Ok(json!({
        "figure": 2,
        "policy": name,
        "commands": commands,
        "first_command_requests": first,
        "requests_per_command": summary_json(&per_command, "requests"),
        "network_policy_updates": policy_updates,
        "by_endpoint": endpoints,
        "retention_by_endpoint": retention,
        "baseline_requests": summary_json(&bare, "requests"),
        "ratio": crate::stats::round(median(&per_command) / median(&bare)),
        "typescript_original": 4,
    }))
}
