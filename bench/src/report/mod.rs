//! `report`: turns the stored results of every figure into `BENCHMARKS.md`.
//!
//! `cargo xtask bench` stores, per figure N, `figN.jsonl` (the JSON lines the
//! benchmark printed) and `figN.meta` (`key=value` lines: `command`, `runs`,
//! `started_unix`, `wall_s`, `load_before`, `load_after`, `mode`, `status`). A figure
//! that has never run here (no results, no meta) keeps its section and summary rows
//! from the file being replaced, verbatim, when that file has them — so `--only N`
//! keeps the other figures even where their stored results are gone (another checkout,
//! a cleaned `target/`); otherwise it is listed as not measured.

mod core_figures;
mod format;
mod overhead;
mod process_figures;

use std::path::Path;

use serde_json::Value;

use crate::args::Args;
use format::{table, verdict};

/// Every figure: number, title and renderer.
const FIGURES: [(u8, &str, Renderer); 9] = [
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
    (
        9,
        "Recovery: `kill -9` of `sandkit run` to the next successful run",
        process_figures::recovery,
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
    let previous = match std::fs::read_to_string(out) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {out}: {e}")),
    };
    let text = render(
        &figures,
        args.quick,
        &crate::machine::note(),
        previous.as_deref(),
    );
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

/// A figure's section in an earlier report: its text after the heading (up to the
/// next `## ` heading) and its rows of the summary table, split into cells.
fn previous_section(previous: &str, n: u8, title: &str) -> Option<(String, Vec<Vec<String>>)> {
    let heading = format!("## {n}. {title}\n\n");
    let start = if previous.starts_with(&heading) {
        heading.len()
    } else {
        previous.find(&format!("\n{heading}"))? + 1 + heading.len()
    };
    let rest = &previous[start..];
    let text = rest[..rest.find("\n## ").map_or(rest.len(), |i| i + 1)].to_owned();
    let summary = previous
        .split("\n## ")
        .find(|s| s.starts_with("Summary\n"))
        .unwrap_or_default();
    let rows = summary
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.strip_suffix(" |"))
        .map(|l| l.split(" | ").map(str::to_owned).collect::<Vec<_>>())
        .filter(|cells| cells.first().is_some_and(|c| *c == n.to_string()))
        .collect();
    Some((text, rows))
}

/// The whole document; `previous` is the report it replaces, if any.
fn render(figures: &[Figure], quick: bool, machine: &Value, previous: Option<&str>) -> String {
    let mut body = String::new();
    let mut summary = Vec::new();
    for ((n, title, renderer), figure) in FIGURES.iter().zip(figures) {
        body.push_str(&format!("## {n}. {title}\n\n"));
        let failed = figure.meta.status.as_deref().filter(|s| *s != "ok");
        let never_ran = figure.lines.is_empty() && figure.meta.status.is_none();
        if let Some((text, rows)) = previous
            .filter(|_| never_ran)
            .and_then(|p| previous_section(p, *n, title))
        {
            body.push_str(&text);
            summary.extend(rows);
            continue;
        }
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

    fn no_results() -> Vec<Figure> {
        FIGURES.iter().map(|_| Figure::default()).collect()
    }

    #[test]
    fn a_missing_figure_is_reported_as_not_measured() {
        let text = render(&no_results(), false, &json!({"cpus": 2}), None);
        assert!(text.contains("No results: not measured yet. Run `cargo xtask bench --only 3`."));
        assert!(text.contains("## Summary"));
    }

    /// Stored results of figures 7 and 9 (the last one) from a fake run.
    fn measured() -> Vec<Figure> {
        let mut figures = no_results();
        let meta = || Meta::parse("command=cargo xtask bench --only N\nstatus=ok\nmode=full\n");
        let summary = |m: f64| json!({"median": m, "min": m, "max": m, "q1": m, "q3": m});
        figures[6] = Figure {
            lines: vec![
                json!({"peak_rss_mib": summary(20.0), "baseline_rss_mib": summary(10.0),
                "workspaces": 10, "handles": 1, "ratio": 2.0, "delta_mib": 10.0,
                "kib_per_listed_workspace": 1.0}),
            ],
            meta: meta(),
            profile: None,
        };
        figures[8] = Figure {
            lines: vec![json!({"iterations": 3, "lease_ttl_s": 30.0,
                "kill_to_success_ms": summary(40.0), "baseline_ms": summary(20.0),
                "extra_ms": summary(20.0), "kill_and_reap_ms": summary(0.5),
                "ratio_baseline": 2.0, "ratio_ttl": 0.001, "busy_answers": 0,
                "killed_run_not_interrupted": 0, "sleepers_left": 0})],
            meta: meta(),
            profile: None,
        };
        figures
    }

    #[test]
    fn figures_that_never_ran_here_keep_their_earlier_text_and_summary_rows() {
        let machine = json!({"cpus": 2});
        let full = render(&measured(), false, &machine, None);
        assert!(full.contains("| 9 | Recovery"), "{full}");
        assert!(full.contains("| 7 | Memory"), "{full}");
        // Nothing stored: the earlier report comes back unchanged.
        assert_eq!(render(&no_results(), false, &machine, Some(&full)), full);
        // Figure 7 re-measured: the rest (9, the last section) is kept verbatim.
        let mut only_seven = no_results();
        only_seven[6] = measured().remove(6);
        assert_eq!(render(&only_seven, false, &machine, Some(&full)), full);
        // A figure whose run failed says so instead of showing the earlier text.
        let mut failed = no_results();
        failed[8].meta = Meta::parse("status=exit 1\n");
        let text = render(&failed, false, &machine, Some(&full));
        assert!(
            text.contains("No results: the last run failed (exit 1)"),
            "{text}"
        );
        assert!(text.contains("| 7 | Memory"), "{text}");
    }
}
