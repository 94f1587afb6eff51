//! `sandkit workspace …`.

use sandkit_core::{ListOptions, Result, RunId, WorkspaceRecord, WorkspaceSpec, now};
use serde::Serialize;

use crate::cli::WorkspaceCommand;
use crate::context::{Context, parse_policy};
use crate::output::{json, table, time};

/// What `workspace show --json` prints: the record plus derived fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView<'a> {
    id: &'a str,
    name: &'a str,
    status: &'a str,
    state: &'a str,
    policy: String,
    exposed_ports: &'a [u16],
    head: Option<&'a str>,
    lease: Option<sandkit_core::LeaseInfo>,
    revision: i64,
    parent: Option<&'a str>,
    metadata: &'a serde_json::Map<String, serde_json::Value>,
    created_at: String,
    updated_at: String,
}

impl<'a> WorkspaceView<'a> {
    pub fn new(w: &'a WorkspaceRecord) -> Self {
        WorkspaceView {
            id: w.id.as_str(),
            name: &w.name,
            status: w.status.as_str(),
            state: w.state().as_str(),
            policy: w
                .policy
                .as_ref()
                .map_or_else(|| "allow-all".to_owned(), |p| p.describe()),
            exposed_ports: &w.sandbox_config.exposed_ports,
            head: w.head.as_ref().map(|h| h.id.as_str()),
            lease: w.live_lease(now()).map(sandkit_core::LeaseInfo::from_lease),
            revision: w.revision,
            parent: w.parent.as_ref().map(|p| p.as_str()),
            metadata: &w.metadata,
            created_at: time(w.created_at),
            updated_at: time(w.updated_at),
        }
    }
}

pub async fn run(ctx: &Context, command: WorkspaceCommand) -> Result<i32> {
    let kit = &ctx.sandkit;
    match command {
        WorkspaceCommand::Create(args) => {
            let mut spec = WorkspaceSpec::new().exposed_ports(args.ports);
            if let Some(id) = args.id {
                spec = spec.id(id);
            }
            if let Some(name) = args.name {
                spec = spec.name(name);
            }
            if let Some(policy) = &args.policy {
                let policy = parse_policy(policy)?;
                // Refused before the workspace exists: it could never run anything.
                let provider = kit.provider();
                provider
                    .capabilities()
                    .check_policy(provider.id(), &policy)?;
                spec = spec.policy(policy);
            }
            let ws = kit.create_workspace(spec).await?;
            if ctx.json {
                json(&WorkspaceView::new(ws.record()))?;
            } else {
                outln!("{}", ws.id());
            }
        }
        WorkspaceCommand::List(args) => {
            let page = kit
                .list_workspaces(ListOptions {
                    cursor: args.cursor,
                    limit: Some(args.limit),
                    ..ListOptions::default()
                })
                .await?;
            if ctx.json {
                #[derive(Serialize)]
                #[serde(rename_all = "camelCase")]
                struct ListView<'a> {
                    workspaces: Vec<WorkspaceView<'a>>,
                    next_cursor: Option<&'a str>,
                }
                json(&ListView {
                    workspaces: page.items.iter().map(WorkspaceView::new).collect(),
                    next_cursor: page.next_cursor.as_deref(),
                })?;
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|w| {
                        vec![
                            w.id.to_string(),
                            w.name.clone(),
                            w.state().as_str().to_owned(),
                            w.status.as_str().to_owned(),
                            time(w.updated_at),
                        ]
                    })
                    .collect();
                table(&["ID", "NAME", "STATE", "STATUS", "UPDATED"], &rows);
                if let Some(cursor) = page.next_cursor {
                    eprintln!("sandkit: more workspaces: --cursor {cursor}");
                }
            }
        }
        WorkspaceCommand::Show { workspace } => {
            let ws = kit.workspace(&workspace).await?;
            let view = WorkspaceView::new(ws.record());
            if ctx.json {
                json(&view)?;
            } else {
                outln!("id:       {}", view.id);
                outln!("name:     {}", view.name);
                outln!("state:    {}", view.state);
                outln!("status:   {}", view.status);
                outln!("policy:   {}", view.policy);
                if !view.exposed_ports.is_empty() {
                    let ports: Vec<String> =
                        view.exposed_ports.iter().map(u16::to_string).collect();
                    outln!("ports:    {}", ports.join(", "));
                }
                outln!("head:     {}", view.head.unwrap_or("-"));
                if let Some(lease) = &view.lease {
                    outln!(
                        "lease:    {} held by {} until {}",
                        lease.kind.as_str(),
                        lease.holder,
                        time(lease.expires_at)
                    );
                }
                if let Some(parent) = view.parent {
                    outln!("parent:   {parent}");
                }
                outln!("created:  {}", view.created_at);
                outln!("updated:  {}", view.updated_at);
            }
        }
        WorkspaceCommand::Delete { workspace } => {
            kit.delete_workspace(&workspace).await?;
            eprintln!("sandkit: deleted workspace {workspace}");
        }
        WorkspaceCommand::SetPolicy { workspace, spec } => {
            let policy = parse_policy(&spec)?;
            let description = policy.describe();
            kit.workspace(&workspace).await?.set_policy(policy).await?;
            eprintln!("sandkit: workspace {workspace} policy is now {description}");
        }
        WorkspaceCommand::Reset { workspace } => {
            kit.workspace(&workspace).await?.reset().await?;
            eprintln!("sandkit: workspace {workspace} is cold again");
        }
        WorkspaceCommand::Fork {
            source,
            at,
            id,
            name,
        } => {
            let mut spec = WorkspaceSpec::new();
            if let Some(id) = id {
                spec = spec.id(id);
            }
            if let Some(name) = name {
                spec = spec.name(name);
            }
            let fork = match at {
                Some(run) => {
                    let run = RunId::new(run)?;
                    kit.fork_workspace_at(&source, &run, spec).await?
                }
                None => kit.fork_workspace(&source, spec).await?,
            };
            if ctx.json {
                json(&WorkspaceView::new(fork.record()))?;
            } else {
                outln!("{}", fork.id());
            }
        }
        WorkspaceCommand::Restore { workspace, run } => {
            let run = RunId::new(run)?;
            let restored = kit.workspace(&workspace).await?.restore(&run).await?;
            if ctx.json {
                json(&restored)?;
            } else {
                eprintln!("sandkit: workspace {workspace} head is now the snapshot of run {run}");
            }
        }
        WorkspaceCommand::Check => return check(ctx).await,
    }
    Ok(0)
}

/// `sandkit workspace check`: exit 1 when a head or setup snapshot is gone.
async fn check(ctx: &Context) -> Result<i32> {
    let report = ctx.sandkit.check().await?;
    let code = i32::from(!report.missing.is_empty());
    if ctx.json {
        json(&report)?;
        return Ok(code);
    }
    for missing in &report.missing {
        match (&missing.workspace, &missing.setup) {
            (Some(ws), _) => outln!(
                "workspace {ws}: head snapshot {} is gone at the provider; run `sandkit \
                 workspace reset {ws}` (next start is cold) or `sandkit workspace restore {ws} \
                 <run>`",
                missing.snapshot.id
            ),
            (None, Some(setup)) => outln!(
                "setup {setup}: snapshot {} is gone at the provider; the next cold start \
                 rebuilds it",
                missing.snapshot.id
            ),
            (None, None) => outln!("snapshot {} is gone at the provider", missing.snapshot.id),
        }
    }
    eprintln!(
        "sandkit: {} snapshot(s) checked, {} gone",
        report.checked,
        report.missing.len()
    );
    Ok(code)
}
