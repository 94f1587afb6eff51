//! `sandkit runs`: the run journal.

use futures::StreamExt;
use sandkit_core::{Result, RunQuery, RunRecord, RunStatus};

/// How often `runs --jsonl --follow` looks for new runs.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_secs(1);

use crate::cli::RunsArgs;
use crate::context::Context;
use crate::output::{json, json_line, table, time};

pub async fn run(ctx: &Context, args: RunsArgs) -> Result<i32> {
    let ws = ctx.sandkit.workspace(&args.workspace).await?;
    let status = args.status.as_deref().and_then(RunStatus::parse);
    if args.jsonl {
        // The redacted journal, oldest first, one entry per line (with fork links).
        let mut journal = if args.follow {
            ws.follow_journal(FOLLOW_POLL).boxed()
        } else {
            ws.journal().boxed()
        };
        while let Some(entry) = journal.next().await {
            let entry = entry?;
            if status.is_none_or(|s| entry.run.status == s) {
                json_line(&entry)?;
            }
        }
        return Ok(0);
    }
    let page = ws
        .runs(RunQuery {
            status,
            limit: Some(args.limit),
            ..RunQuery::default()
        })
        .await?;
    if ctx.json {
        json(&page.items)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = page.items.iter().map(row).collect();
    table(
        &["RUN", "STATUS", "EXIT", "STARTED", "SECONDS", "COMMAND"],
        &rows,
    );
    Ok(0)
}

fn row(r: &RunRecord) -> Vec<String> {
    let seconds = r
        .finished_at
        .map(|f| {
            format!(
                "{:.1}",
                (f - r.started_at).num_milliseconds() as f64 / 1000.0
            )
        })
        .unwrap_or_else(|| "-".to_owned());
    let mut command = std::iter::once(r.command.as_str())
        .chain(r.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    if command.chars().count() > 60 {
        command = command.chars().take(57).collect::<String>() + "...";
    }
    vec![
        r.id.to_string(),
        r.status.as_str().to_owned(),
        r.exit_code
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        time(r.started_at),
        seconds,
        command,
    ]
}
