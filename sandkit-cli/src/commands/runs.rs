//! `sandkit runs`: the run journal.

use sandkit_core::{Order, Result, RunQuery, RunRecord, RunStatus};

use crate::cli::RunsArgs;
use crate::context::Context;
use crate::output::{json, json_line, table, time};

pub async fn run(ctx: &Context, args: RunsArgs) -> Result<i32> {
    let ws = ctx.sandkit.workspace(&args.workspace).await?;
    let status = args.status.as_deref().and_then(RunStatus::parse);
    if args.jsonl {
        // The whole journal, oldest first, one redacted run per line.
        let mut cursor = None;
        loop {
            let page = ws
                .runs(RunQuery {
                    status,
                    cursor,
                    order: Order::Asc,
                    limit: Some(500),
                })
                .await?;
            for run in &page.items {
                json_line(run)?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(0),
            }
        }
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
