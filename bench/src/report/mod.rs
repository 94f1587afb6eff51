//! `report`: turns the stored results of every figure into `BENCHMARKS.md`.
//!
//! `cargo xtask bench` stores, per figure N, `figN.jsonl` (the JSON lines the
//! benchmark printed) and `figN.meta` (`key=value` lines: `command`, `runs`,
//! `started_unix`, `wall_s`, `load_before`, `load_after`, `mode`, `status`). A figure
//! without results is listed as not measured.

mod core_figures;
mod format;
mod overhead;
mod process_figures;

use std::path::Path;

use serde_json::Value;

use crate::args::Args;
use format::{table, verdict};

/// Every figure: number, title and renderer.
const FIGURES: [(u8, &str, Renderer); 8] = [
    (1, "Durable command overhead", overhead::overhead),
    (
        2,
        "Vercel API calls per durable command",
        core_figures::vercel_calls,
    ),
    (
        3,
        "Throughput: concurrent workspaces in one process",
        core_figures::throughput,
    ),
    (
        4,
        "Contention: processes racing for one workspace (PostgreSQL)",
        core_figures::contention,
    ),
    (
        5,
        "Local provider snapshots vs `tar` + zstd",
        process_figures::snapshots,
    ),
    (6, "CLI: `sandkit run <ws> -- true`", process_figures::cli),
    (
        7,
        "Memory: 10,000 workspaces listed, 1,000 handles held",
        process_figures::memory,
    ),
    (
        8,
        "SeaORM store: statements per durable command",
        process_figures::store_statements,
    ),
];

/// Renders a figure's body and its target verdicts.
type Renderer = fn(&Figure) -> (String, Vec<Verdict>);

/// One figure's stored results.
#[derive(Debug, Default)]
pub struct Figure {
    /// The JSON lines it printed.
    pub lines: Vec<Value>,
    /// How and when it ran.
    pub meta: Meta,
    /// A `perf` profile summary, when one was taken (`figN.profile.txt`).
    pub profile: Option<String>,
}

/// How and when a figure ran (written by `cargo xtask bench`).
#[derive(Debug, Default)]
pub struct Meta {
    /// The xtask invocation that reproduces it.
    pub command: Option<String>,
    /// The commands that produced its lines.
    pub runs: Vec<String>,
    /// Start time, Unix seconds.
    pub started_unix: Option<i64>,
    /// Wall time of the figure, seconds.
    pub wall_s: Option<f64>,
    /// Load averages before it ran.
    pub load_before: Option<String>,
    /// Load averages after it ran.
    pub load_after: Option<String>,
    /// `ok`, or why it failed.
    pub status: Option<String>,
    /// `full` or `quick`.
    pub mode: Option<String>,
}

impl Meta {
    fn parse(text: &str) -> Meta {
        let mut meta = Meta::default();
        for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
            let value = value.trim().to_owned();
            match key.trim() {
                "command" => meta.command = Some(value),
                "runs" => meta.runs.push(value),
                "started_unix" => meta.started_unix = value.parse().ok(),
                "wall_s" => meta.wall_s = value.parse().ok(),
                "load_before" => meta.load_before = Some(value),
                "load_after" => meta.load_after = Some(value),
                "status" => meta.status = Some(value),
                "mode" => meta.mode = Some(value),
                _ => {}
            }
        }
        meta
    }
}

/// A target and how the figure fared against it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The target, in words.
    pub target: String,
    /// The measured figure.
    pub measured: String,
    /// Met, missed, or no verdict (reported only).
    pub met: Option<bool>,
}

impl Verdict {
    /// A verdict row.
    pub fn new(target: impl Into<String>, measured: impl Into<String>, met: Option<bool>) -> Self {
        Verdict {
            target: target.into(),
            measured: measured.into(),
            met,
        }
    }
}

/// Reads `--results DIR` and writes `--out FILE`.
pub fn run(args: &Args) -> Result<(), String> {
    let dir = Path::new(args.required("results")?);
    let out = args.required("out")?;
    let figures: Vec<Figure> = FIGURES
        .iter()
        .map(|(n, _, _)| load(dir, *n))
        .collect::<Result<_, _>>()?;
    let text = render(&figures, args.quick, &crate::machine::note());
    std::fs::write(out, text).map_err(|e| format!("cannot write {out}: {e}"))?;
    eprintln!("sandkit-bench: wrote {out}");
    Ok(())
}

fn load(dir: &Path, n: u8) -> Result<Figure, String> {
    let read = |name: String| match std::fs::read_to_string(dir.join(&name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {name}: {e}")),
    };
    let lines = read(format!("fig{n}.jsonl"))?
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).map_err(|e| format!("fig{n}.jsonl: {e}: {l}")))
        .collect::<Result<_, _>>()?;
    let meta = read(format!("fig{n}.meta"))?
        .map(|t| Meta::parse(&t))
        .unwrap_or_default();
    let profile = read(format!("fig{n}.profile.txt"))?.filter(|t| !t.trim().is_empty());
    Ok(Figure {
        lines,
        meta,
        profile,
    })
}

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn machine_line(machine: &Value) -> String {
    let cpus = machine["cpus"].as_u64().unwrap_or(0);
    let model = machine["cpu_model"].as_str().unwrap_or("unknown CPU");
    let mem = machine["mem_total_gib"].as_f64().unwrap_or(0.0);
    let kernel = machine["kernel"].as_str().unwrap_or("?");
    format!(
        "{cpus} logical CPUs ({model}), {mem:.1} GiB RAM, Linux {kernel} (from `/proc`). \
         The machine is shared with other engineers' builds, so each figure records the \
         load average (1/5/15 min) before and after it ran."
    )
}

fn provenance(n: u8, meta: &Meta) -> String {
    let mut out = String::new();
    let command = meta
        .command
        .clone()
        .unwrap_or_else(|| format!("cargo xtask bench --only {n}"));
    out.push_str(&format!("**Command:** `{command}`"));
    if !meta.runs.is_empty() {
        let runs: Vec<String> = meta.runs.iter().map(|r| format!("`{r}`")).collect();
        out.push_str(&format!(", which runs {}", runs.join(" and ")));
    }
    out.push_str(".  \n**Run:** ");
    let mut parts = Vec::new();
    if let Some(t) = meta.started_unix {
        parts.push(date(t));
    }
    if let Some(mode) = &meta.mode {
        parts.push(format!("{mode} pass"));
    }
    if let Some(w) = meta.wall_s {
        parts.push(format!("{w:.0} s"));
    }
    if let (Some(before), Some(after)) = (&meta.load_before, &meta.load_after) {
        parts.push(format!("load average {before} before, {after} after"));
    }
    out.push_str(&parts.join(", "));
    out.push_str(".\n\n");
    out
}

/// The whole document.
fn render(figures: &[Figure], quick: bool, machine: &Value) -> String {
    let mut body = String::new();
    let mut summary = Vec::new();
    for ((n, title, renderer), figure) in FIGURES.iter().zip(figures) {
        body.push_str(&format!("## {n}. {title}\n\n"));
        let failed = figure.meta.status.as_deref().filter(|s| *s != "ok");
        if figure.lines.is_empty() {
            let why = failed.map_or_else(
                || "not measured yet".to_owned(),
                |s| format!("the last run failed ({s})"),
            );
            body.push_str(&format!(
                "No results: {why}. Run `cargo xtask bench --only {n}`.\n\n"
            ));
            summary.push(vec![
                n.to_string(),
                (*title).to_owned(),
                "—".into(),
                why,
                "—".into(),
            ]);
            continue;
        }
        body.push_str(&provenance(*n, &figure.meta));
        if let Some(s) = failed {
            body.push_str(&format!(
                "> The last run of this figure failed ({s}); the results below may be partial.\n\n"
            ));
        }
        let (text, verdicts) = renderer(figure);
        body.push_str(&text);
        body.push('\n');
        for v in verdicts {
            summary.push(vec![
                n.to_string(),
                (*title).to_owned(),
                v.target,
                v.measured,
                verdict(v.met).to_owned(),
            ]);
        }
    }
    let mut out = String::from("# Sandkit benchmarks\n\n");
    out.push_str(&format!(
        "Generated by `cargo xtask bench{}`: do not edit by hand, rerun it (`--only N` \
         re-measures one figure and keeps the others; `--quick` is a fast pass written to \
         `target/bench/BENCHMARKS.quick.md`).\n\n",
        if quick { " --quick" } else { "" }
    ));
    out.push_str(&format!("**Machine:** {}\n\n", machine_line(machine)));
    out.push_str(
        "**Method:** every figure is measured against a baseline measured in the same run \
         (interleaved with it where both run in one process), after warm-up iterations. \
         Cells read `median (min–max)`; \"spread\" is half the interquartile range as a \
         share of the median; ratios are median over baseline median. Benchmarks are never \
         timed assertions in tests.\n\n",
    );
    out.push_str("## Summary\n\n");
    out.push_str(&table(
        &["#", "figure", "target", "measured", "verdict"],
        &summary,
    ));
    out.push('\n');
    out.push_str(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_lines_are_read() {
        let meta = Meta::parse(
            "command=cargo xtask bench --only 8\nruns=a b\nruns=c d\nstarted_unix=0\nwall_s=4.5\nload_before=1 2 3\nload_after=4 5 6\nstatus=ok\nmode=full\n",
        );
        assert_eq!(meta.runs, ["a b", "c d"]);
        assert_eq!((meta.started_unix, meta.wall_s), (Some(0), Some(4.5)));
        assert_eq!(meta.status.as_deref(), Some("ok"));
        assert!(provenance(8, &meta).contains("load average 1 2 3 before, 4 5 6 after"));
    }

    #[test]
    fn a_missing_figure_is_reported_as_not_measured() {
        let figures: Vec<Figure> = (0..8).map(|_| Figure::default()).collect();
        let text = render(&figures, false, &json!({"cpus": 2}));
        assert!(text.contains("No results: not measured yet. Run `cargo xtask bench --only 3`."));
        assert!(text.contains("## Summary"));
    }
}
