//! Scenario 4, Policies: a workspace default, `set_policy`, a per-run override that reverts;
//! credential header transforms compiled from the (injected) environment; explicit
//! secrets refused in durable places; stored policy snapshots redacted; and a dump of
//! every `sandkit_*` table afterwards holds none of the secret bytes.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use sandkit_core::policies::{
    CredentialSource, MapEnv, Policy, Secret, ServiceDescriptor, presets,
};
use sandkit_core::{CommandSpec, ErrorKind, RunRecord, Sandkit, Workspace, WorkspaceSpec};
use serde_json::Value;

use crate::backend::ProviderKind;
use crate::context::Ctx;
use crate::registry::{Outcome, ScenarioFuture};
use crate::scenarios::{all_runs, expect_err, sh, unique};
use crate::sql;

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> ScenarioFuture<'_> {
    Box::pin(body(ctx))
}

/// The secrets of one run of the scenario (unique, so a dump can be searched).
struct Secrets {
    env: String,
    explicit: String,
    command_env: String,
}

impl Secrets {
    fn all(&self) -> [(&'static str, &str); 3] {
        [
            ("CODEX_API_KEY from the environment", self.env.as_str()),
            ("an explicit per-run api key", self.explicit.as_str()),
            ("a command environment value", self.command_env.as_str()),
        ]
    }
}

/// An egress probe: on the local provider a TCP listener on the host's loopback that
/// commands try to reach (deny-all must stop them); elsewhere a plain command.
struct Probe {
    script: String,
    _listener: Option<std::net::TcpListener>,
}

impl Probe {
    fn new(ctx: &Ctx) -> anyhow::Result<Probe> {
        if ctx.backend.provider != ProviderKind::Local {
            return Ok(Probe {
                script: "true".into(),
                _listener: None,
            });
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("probe listener")?;
        let script = format!(
            "'{}' probe-tcp {}",
            ctx.tools.smoke_exe.display(),
            listener.local_addr()?
        );
        Ok(Probe {
            script,
            _listener: Some(listener),
        })
    }
}

/// Runs the probe under `policy` (or the workspace default); returns the exit code and
/// the run record.
async fn probe_run(
    ws: &Workspace,
    probe: &Probe,
    policy: Option<Policy>,
) -> anyhow::Result<(i32, RunRecord)> {
    let mut spec = sh(&probe.script);
    if let Some(policy) = policy {
        spec = spec.policy(policy);
    }
    let out = ws.run_command(spec).await.context("probe command")?;
    let run_id = out
        .run_id
        .clone()
        .context("a durable run without a run id")?;
    Ok((out.exit_code, ws.run(&run_id).await?))
}

/// The network policy the fake API received for a run's session.
fn sent_policy(ctx: &Ctx, run: &RunRecord) -> Option<Value> {
    let fake = ctx.fake()?;
    fake.network_policy(run.session_id.as_deref()?)
}

async fn body(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut notes = Vec::new();
    let tag = unique();
    let secrets = Secrets {
        env: format!("smoke-env-secret-{tag}"),
        explicit: format!("smoke-explicit-secret-{tag}"),
        command_env: format!("smoke-command-secret-{tag}"),
    };
    let env = MapEnv::new().with("CODEX_API_KEY", secrets.env.as_str());
    let kit = ctx.build(ctx.builder()?.credentials(Arc::new(env)))?;
    let net = kit.provider().capabilities().network;
    let services = net.allow_services && net.header_injection;
    let codex = Policy::allow_service(presets::codex())?;
    let explicit =
        Policy::allow_service(presets::codex().api_key(Secret::new(secrets.explicit.as_str())))?;

    durable_places_refuse_secrets(&kit, &explicit, &secrets).await?;
    wildcards_match_subdomains_only()?;

    let default = if net.deny_all {
        Policy::deny_all()
    } else {
        notes.push(
            "deny-all is not enforceable here (no network namespaces): allow-all default".into(),
        );
        Policy::allow_all()
    };
    let ws = kit
        .create_workspace(WorkspaceSpec::new().policy(default.clone()))
        .await?;
    expect_err(
        ws.set_policy(explicit.clone()).await,
        "set_policy with an explicit secret",
        |k| k == &ErrorKind::InvalidInput,
    )?;
    let probe = Probe::new(ctx)?;

    let (code, run) = probe_run(&ws, &probe, None).await?;
    ensure!(
        run.policy_description == default.describe(),
        "the default policy ran as {:?}",
        run.policy_description
    );
    check_egress(ctx, &run, code, &default.describe())?;

    ws.set_policy(codex.clone()).await?;
    let current = if services {
        let (_, run) = probe_run(&ws, &probe, None).await?;
        ensure!(
            run.policy_description == "allow-services:codex",
            "after set_policy the run used {:?}",
            run.policy_description
        );
        if let Some(sent) = sent_policy(ctx, &run) {
            let header =
                &sent["allow"]["api.openai.com"][0]["transform"][0]["headers"]["authorization"];
            ensure!(
                header.as_str() == Some(format!("Bearer {}", secrets.env).as_str()),
                "the credential transform was not compiled from CODEX_API_KEY: {sent}"
            );
        }
        codex.clone()
    } else {
        let before = all_runs(&ws).await?.len();
        let refused = expect_err(
            ws.run_command(sh(&probe.script)).await,
            "a durable command under allow-services",
            |k| k == &ErrorKind::Unsupported,
        )?;
        ensure!(
            all_runs(&ws).await?.len() == before,
            "a refused command was journaled: {refused}"
        );
        notes.push(format!(
            "allow-services refused up front ({} cannot enforce it)",
            kit.provider().id()
        ));
        ws.set_policy(default.clone()).await?;
        default.clone()
    };

    let (code, run) = probe_run(&ws, &probe, Some(Policy::allow_all())).await?;
    ensure!(
        run.policy_description == "allow-all",
        "the per-run override ran as {:?}",
        run.policy_description
    );
    check_egress(ctx, &run, code, "allow-all")?;
    let (code, run) = probe_run(&ws, &probe, None).await?;
    ensure!(
        run.policy_description == current.describe(),
        "after an override the next run used {:?}, not the default {:?}",
        run.policy_description,
        current.describe()
    );
    check_egress(ctx, &run, code, &current.describe())?;

    if services {
        explicit_secret_is_applied_and_redacted(ctx, &kit, &ws, &explicit, &secrets).await?;
    } else {
        expect_err(
            ws.run_command(sh("true").policy(explicit.clone())).await,
            "a per-run allow-services override",
            |k| k == &ErrorKind::Unsupported,
        )?;
        notes.push("per-run secret redaction needs allow-services: checked on vercel".into());
    }

    let out = ws
        .run_command(
            CommandSpec::new("sh")
                .args(["-c", "test -n \"$SMOKE_TOKEN\""])
                .env("SMOKE_TOKEN", secrets.command_env.as_str()),
        )
        .await?;
    ensure!(
        out.exit_code == 0,
        "the command did not receive its environment"
    );
    let run = ws.run(out.run_id.as_ref().context("run id")?).await?;
    ensure!(
        run.env_keys == ["SMOKE_TOKEN"],
        "env keys journaled as {:?}",
        run.env_keys
    );

    // A positive control: text the journal does keep must show up in the dump.
    let visible = format!("smoke-visible-{tag}");
    ws.run_command(sh(&format!("echo {visible}"))).await?;

    no_secret_in_any_table(ctx, &ws, &secrets, &visible, services).await?;
    Ok(Outcome::passed_with(notes))
}

async fn durable_places_refuse_secrets(
    kit: &Sandkit,
    explicit: &Policy,
    secrets: &Secrets,
) -> anyhow::Result<()> {
    let id = format!("explicit-{}", unique());
    let refused = expect_err(
        kit.create_workspace(
            WorkspaceSpec::new()
                .id(id.as_str())
                .policy(explicit.clone()),
        )
        .await,
        "create_workspace with an explicit secret",
        |k| k == &ErrorKind::InvalidInput,
    )?;
    ensure!(
        refused.to_string().contains("cannot be stored durably"),
        "the refusal does not say why: {refused}"
    );
    ensure!(
        !format!("{refused} {refused:?}").contains(&secrets.explicit),
        "the refusal shows the secret"
    );
    expect_err(
        kit.workspace(&id).await,
        "opening the refused workspace",
        |k| k == &ErrorKind::NotFound,
    )?;
    Ok(())
}

fn wildcards_match_subdomains_only() -> anyhow::Result<()> {
    let example = Policy::allow_services([
        ServiceDescriptor::new("example", "Example").domain("*.example.com")
    ])?;
    ensure!(
        !example.evaluate("https://example.com").allowed,
        "*.example.com matched example.com itself"
    );
    ensure!(
        example.evaluate("https://api.example.com/v1").allowed,
        "*.example.com did not match api.example.com"
    );
    Ok(())
}

/// Checks that `run` ran under `mode`: what the fake API received, or on the local
/// provider whether the probe reached the host's loopback.
fn check_egress(ctx: &Ctx, run: &RunRecord, probe_exit: i32, mode: &str) -> anyhow::Result<()> {
    match ctx.backend.provider {
        ProviderKind::VercelFake => {
            let sent = sent_policy(ctx, run).context("the fake API has no policy for the run")?;
            match mode {
                "allow-all" | "deny-all" => {
                    ensure!(sent["mode"] == mode, "the sandbox got {sent}, not {mode}")
                }
                _ => ensure!(
                    sent.get("allow").is_some(),
                    "the sandbox got {sent}, not {mode}"
                ),
            }
        }
        ProviderKind::Local => match mode {
            "deny-all" => ensure!(
                probe_exit != 0,
                "under deny-all a command reached the host's loopback"
            ),
            _ => ensure!(
                probe_exit == 0,
                "under {mode} a command could not reach the host's loopback"
            ),
        },
        ProviderKind::VercelLive => {}
    }
    Ok(())
}

async fn explicit_secret_is_applied_and_redacted(
    ctx: &Ctx,
    kit: &Sandkit,
    ws: &Workspace,
    explicit: &Policy,
    secrets: &Secrets,
) -> anyhow::Result<()> {
    let out = ws.run_command(sh("true").policy(explicit.clone())).await?;
    let run = ws.run(out.run_id.as_ref().context("run id")?).await?;
    if let Some(sent) = sent_policy(ctx, &run) {
        ensure!(
            sent.to_string()
                .contains(&format!("Bearer {}", secrets.explicit)),
            "the explicit key was not applied at the provider: {sent}"
        );
    }
    let snapshot_id = run
        .policy_snapshot_id
        .as_deref()
        .context("the run has no policy snapshot")?;
    let stored = kit
        .store()
        .get_policy_snapshot(snapshot_id)
        .await?
        .context("the policy snapshot row is missing")?;
    let json = stored.config.to_json();
    ensure!(
        !json.contains(&secrets.explicit) && !json.contains(&secrets.env),
        "the stored policy snapshot holds a secret"
    );
    let credentials: Vec<&CredentialSource> = stored
        .config
        .services()
        .iter()
        .flat_map(|s| s.all_transforms())
        .map(|t| t.get_credential())
        .collect();
    ensure!(
        !credentials.is_empty()
            && credentials
                .iter()
                .all(|c| matches!(c, CredentialSource::Redacted)),
        "stored credentials are not all redacted: {json}"
    );
    ensure!(
        json.contains(r#""kind":"redacted""#) && !json.contains(r#""value""#),
        "the stored form is not {{\"kind\":\"redacted\"}}: {json}"
    );
    Ok(())
}

async fn no_secret_in_any_table(
    ctx: &Ctx,
    ws: &Workspace,
    secrets: &Secrets,
    visible: &str,
    services: bool,
) -> anyhow::Result<()> {
    let dump = sql::dump(ctx.connection(), ctx.dialect()).await?;
    ensure!(
        dump.matches(visible).count() >= 2,
        "the dump lacks the marker a run's arguments and output carry; it cannot prove anything"
    );
    for table in ["sandkit_workspaces", "sandkit_runs", "sandkit_policies"] {
        ensure!(
            dump.contains(&format!("{table}: ")),
            "the dump has no {table} rows; it cannot prove anything"
        );
    }
    ensure!(
        dump.contains(ws.id().as_str()),
        "the dump does not contain the workspace"
    );
    if services {
        ensure!(
            dump.contains("redacted"),
            "the dump has no redacted credential"
        );
    }
    for (what, secret) in secrets.all() {
        ensure!(
            !dump.contains(secret),
            "{what} is stored in the database: {}",
            dump.lines()
                .find(|l| l.contains(secret))
                .map(|l| l.split(':').next().unwrap_or(""))
                .unwrap_or("")
        );
    }
    Ok(())
}
