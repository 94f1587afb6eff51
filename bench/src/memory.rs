//! Figure 7: peak RSS of a process that lists 10,000 workspaces and holds 1,000
//! workspace handles, on the embedded default's SQLite store.
//!
//! The parent fills a database, then runs this binary as `memory-child` and reads the
//! child's peak RSS from `wait4`. The baseline is the same child listing nothing and
//! holding nothing (runtime, connection and migration check only).

use std::process::Command;
use std::sync::Arc;

use sandkit_core::{ListOptions, MAX_PAGE_SIZE, Sandkit, WorkspaceSpec};
use sandkit_testkit::FakeProvider;
use serde_json::json;

use crate::args::Args;
use crate::stats::{median, round, summary_json};

const WORKSPACES: usize = 10_000;
const HANDLES: usize = 1_000;

/// Runs the figure and prints one JSON line.
pub fn run(args: &Args) -> Result<(), String> {
    let runs = args.pick(3, 1);
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let db = dir.path().join("sandkit.db");
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    // Filling is not measured: skip the per-commit flush to keep it quick.
    runtime.block_on(fill(&format!(
        "sqlite://{}?synchronous=normal",
        db.display()
    )))?;
    drop(runtime);
    let url = format!("sqlite://{}", db.display());
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let measure = |workspaces: usize, handles: usize| -> Result<f64, String> {
        let done = crate::child::run(
            Command::new(&exe)
                .arg("memory-child")
                .args(["--url", &url])
                .args(["--workspaces", &workspaces.to_string()])
                .args(["--handles", &handles.to_string()]),
        )?
        .ok("memory child")?;
        let reported: serde_json::Value = serde_json::from_str(done.stdout.trim())
            .map_err(|e| format!("memory child output {:?}: {e}", done.stdout))?;
        if reported["listed"] != workspaces || reported["handles"] != handles {
            return Err(format!("the memory child did not do the work: {reported}"));
        }
        Ok(done.max_rss_kib as f64 / 1024.0)
    };
    let (mut loaded, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        baseline.push(measure(0, 0)?);
        loaded.push(measure(WORKSPACES, HANDLES)?);
    }
    let delta_mib = median(&loaded) - median(&baseline);
    println!(
        "{}",
        json!({
            "figure": 7,
            "store": "sqlite",
            "workspaces": WORKSPACES,
            "handles": HANDLES,
            "runs": runs,
            "peak_rss_mib": summary_json(&loaded, "MiB"),
            "baseline_rss_mib": summary_json(&baseline, "MiB"),
            "ratio": round(median(&loaded) / median(&baseline)),
            "delta_mib": round(delta_mib),
            "kib_per_listed_workspace": round(delta_mib * 1024.0 / WORKSPACES as f64),
        })
    );
    Ok(())
}

async fn fill(url: &str) -> Result<(), String> {
    let sandkit = Sandkit::builder()
        .store(crate::stores::connect(url).await?)
        .provider(Arc::new(FakeProvider::new()))
        .build()
        .map_err(|e| e.to_string())?;
    for i in 0..WORKSPACES {
        sandkit
            .create_workspace(
                WorkspaceSpec::new()
                    .id(format!("ws-{i:05}"))
                    .name(format!("workspace {i}")),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The measured process: lists `--workspaces` records (keeping them all) and opens
/// `--handles` workspace handles, then reports what it holds.
pub async fn child(args: &Args) -> Result<(), String> {
    let url = args.required("url")?;
    let workspaces: usize = args.parsed_or("workspaces", WORKSPACES)?;
    let handles: usize = args.parsed_or("handles", HANDLES)?;
    let sandkit = Sandkit::builder()
        .store(crate::stores::connect(url).await?)
        .provider(Arc::new(FakeProvider::new()))
        .build()
        .map_err(|e| e.to_string())?;
    let mut listed = Vec::new();
    let mut cursor = None;
    while listed.len() < workspaces {
        let page = sandkit
            .list_workspaces(ListOptions {
                cursor: cursor.take(),
                limit: Some(MAX_PAGE_SIZE.min(workspaces - listed.len())),
                ..ListOptions::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        listed.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut held = Vec::with_capacity(handles);
    for record in listed.iter().take(handles) {
        held.push(
            sandkit
                .workspace(record.id.as_str())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    println!(
        "{}",
        json!({"listed": std::hint::black_box(&listed).len(), "handles": std::hint::black_box(&held).len()})
    );
    Ok(())
}
