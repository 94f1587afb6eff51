//! Figures 2–4 (durable commands through the Vercel API, concurrently, across
//! processes) and helpers shared with figure 1.

use serde_json::Value;

use super::format::{cell, field, num, ratio, table};
use super::{Figure, Verdict};

/// The two transactions of a durable command, as the timed store names them.
pub(super) const TWO_TXN_OPS: [&str; 2] = [
    "apply: acquire lease + insert run",
    "apply: commit head + finish run",
];

/// Microseconds of store time per command for one operation.
pub(super) fn op_us(line: &Value, op: &str) -> f64 {
    line["store_breakdown"][op]["us"].as_f64().unwrap_or(0.0)
}

/// Microseconds of store time per command.
pub(super) fn store_us(line: &Value) -> f64 {
    line["store_us_per_command"].as_f64().unwrap_or(0.0)
}

/// The median of a summary object.
pub(super) fn median(summary: &Value) -> Option<f64> {
    summary["median"].as_f64()
}

/// Figure 2.
pub fn vercel_calls(figure: &Figure) -> (String, Vec<Verdict>) {
    let mut out = String::from(
        "Requests the fake Vercel API (`sandkit_vercel::fake::FakeVercel`) received per \
         durable command, for commands after the first (which starts fresh instead of from \
         the head). The baseline is the same start → exec → snapshot sequence called \
         directly on the `VercelProvider`. The TypeScript original needs 4 requests: create, \
         network-policy update, run, snapshot. Requests made after `run_command` returned, \
         by the background snapshot retention its commit triggered (deleting the snapshot \
         that fell out of the last 3 runs), are counted apart.\n\n",
    );
    let rows: Vec<Vec<String>> = figure
        .lines
        .iter()
        .map(|l| {
            let endpoints = l["by_endpoint"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("`{k}` ×{}", num(v.as_f64().unwrap_or(0.0))))
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default();
            vec![
                l["policy"].as_str().unwrap_or("?").to_owned(),
                l["commands"].to_string(),
                cell(&l["requests_per_command"], 1.0, ""),
                endpoints,
                l["network_policy_updates"].to_string(),
                l["retention_by_endpoint"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("`{k}` ×{}", num(v.as_f64().unwrap_or(0.0))))
                            .collect::<Vec<_>>()
                            .join("<br>")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "none".to_owned()),
                cell(&l["baseline_requests"], 1.0, ""),
                ratio(l["ratio"].as_f64()),
                l["first_command_requests"].to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "workspace policy",
            "commands",
            "requests / command",
            "by endpoint (per command)",
            "network-policy updates (all commands)",
            "after the command: background retention (per command)",
            "baseline: bare provider sequence",
            "ratio",
            "first command",
        ],
        &rows,
    ));
    let mut verdicts = Vec::new();
    let worst = figure
        .lines
        .iter()
        .filter_map(|l| field(&l["requests_per_command"], "max", 1.0))
        .fold(0.0_f64, f64::max);
    verdicts.push(Verdict::new(
        "requests per durable command: 3 (TypeScript: 4)",
        format!("{} (most in any command)", num(worst)),
        Some(worst <= 3.0),
    ));
    let updates: u64 = figure
        .lines
        .iter()
        .filter_map(|l| l["network_policy_updates"].as_u64())
        .sum();
    verdicts.push(Verdict::new(
        "redundant network-policy updates: 0",
        updates.to_string(),
        Some(updates == 0),
    ));
    (out, verdicts)
}

/// Figure 3.
pub fn throughput(figure: &Figure) -> (String, Vec<Verdict>) {
    let mut out = String::from(
        "N workspaces, each driven by its own task running 20 durable commands (`true`) \
         one after another, all tasks concurrently in one process (multi-threaded Tokio \
         runtime), on the `FakeProvider` with no delay — so the figure is Sandkit and the \
         store. The baseline runs the same number of bare provider sequences with the same \
         concurrency on the same provider. Latency is per durable command. A round ends \
         when the background snapshot retention its commits triggered has finished too.\n\n",
    );
    let rows: Vec<Vec<String>> = figure
        .lines
        .iter()
        .map(|l| {
            vec![
                l["store"].as_str().unwrap_or("?").to_owned(),
                l["workspaces"].to_string(),
                l["runs"].to_string(),
                cell(&l["durable_cps"], 1.0, "/s"),
                cell(&l["baseline_cps"], 1.0, "/s"),
                ratio(l["ratio"].as_f64()),
                format!(
                    "{} / {} ms",
                    num(field(&l["latency_ms"], "median", 1.0).unwrap_or(0.0)),
                    num(field(&l["latency_ms"], "p99", 1.0).unwrap_or(0.0))
                ),
                {
                    let (command, retention) = store_calls(l);
                    format!("{} + {}", num(command), num(retention))
                },
                l["errors"].to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "store",
            "workspaces",
            "runs",
            "durable commands/s",
            "baseline sequences/s",
            "ratio",
            "latency median / p99",
            "store calls / command: command + retention",
            "errors",
        ],
        &rows,
    ));
    let mut verdicts = Vec::new();
    for store in ["sqlite", "postgres"] {
        if let Some(l) = figure
            .lines
            .iter()
            .find(|l| l["store"] == store && l["workspaces"] == 64)
        {
            let errors = l["errors"].as_u64().unwrap_or(u64::MAX);
            verdicts.push(Verdict::new(
                format!("{store}: 64 × 20 concurrently, zero errors"),
                format!(
                    "{} commands/s, {errors} errors",
                    num(median(&l["durable_cps"]).unwrap_or(0.0))
                ),
                Some(errors == 0),
            ));
        }
    }
    out.push_str(
        "\nStore calls per command: the durable command itself makes 4 (two reads, two \
         transactions); the rest are made by the background snapshot retention its commit \
         triggers. SQLite has one connection per process, so every call queues for it.\n",
    );
    if let Some(note) = memory_scaling_note(&figure.lines) {
        out.push_str(&note);
    }
    (out, verdicts)
}

/// Store calls per command: (the command's own, retention's).
fn store_calls(l: &Value) -> (f64, f64) {
    let calls = |op: &str| l["store_breakdown"][op]["calls"].as_f64().unwrap_or(0.0);
    let all: f64 = l["store_breakdown"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v["calls"].as_f64()).sum())
        .unwrap_or(0.0);
    let command = calls("get_workspace").min(2.0) + calls(TWO_TXN_OPS[0]) + calls(TWO_TXN_OPS[1]);
    (command, all - command - calls("apply: create"))
}

/// Explains a memory store whose throughput falls as the state grows.
fn memory_scaling_note(lines: &[Value]) -> Option<String> {
    let row = |n: u64| {
        lines
            .iter()
            .find(|l| l["store"] == "memory" && l["workspaces"].as_u64() == Some(n))
    };
    let (one, many) = (row(1)?, row(64)?);
    let cps = |l: &Value| median(&l["durable_cps"]).unwrap_or(0.0);
    if cps(many) >= cps(one) / 2.0 {
        return None;
    }
    let apply_us = |l: &Value| {
        let op = &l["store_breakdown"][TWO_TXN_OPS[0]];
        op["us"].as_f64().unwrap_or(0.0) / op["calls"].as_f64().unwrap_or(1.0).max(1e-9)
    };
    Some(format!(
        "\nThe memory store's throughput falls from {} to {} commands/s between 1 and 64 \
         workspaces while one lease acquisition's `apply` grows from {} to {} µs: \
         `MemoryStore::apply` copies its whole state on every write (so a failed batch \
         leaves nothing behind), making each write cost grow with every run recorded — \
         fine for tests, not for load.\n",
        num(cps(one)),
        num(cps(many)),
        num(apply_us(one)),
        num(apply_us(many)),
    ))
}

/// Figure 4.
pub fn contention(figure: &Figure) -> (String, Vec<Verdict>) {
    let mut out = String::from(
        "P copies of `sandkit-bench contention-worker` (separate processes, each with its \
         own PostgreSQL pool and the local provider on a shared root) call \
         `Workspace::spawn_command(true)` on the same workspace at the same wall-clock \
         instant, once per round (400 ms apart, after a warm-up round). Each times how long \
         the call takes to decide: the lease (a running command is returned) or `Busy`. The \
         winner lets its command finish before the next round, so a contender that decides \
         late may take the lease after it in the same round. The baseline is one process \
         alone. Afterwards the run journal is read back: a run whose lease started before \
         the previous run finished would be an overlapping lease.\n\n",
    );
    let baseline = figure
        .lines
        .iter()
        .find(|l| l["processes"] == 1)
        .and_then(|l| median(&l["decision_ms"]));
    let rows: Vec<Vec<String>> = figure
        .lines
        .iter()
        .map(|l| {
            vec![
                l["processes"].to_string(),
                l["rounds"].to_string(),
                l["decisions"].to_string(),
                cell(&l["decision_ms"], 1.0, " ms"),
                num(field(&l["decision_ms"], "p99", 1.0).unwrap_or(0.0)),
                cell(&l["acquired_ms"], 1.0, " ms"),
                cell(&l["busy_ms"], 1.0, " ms"),
                ratio(median(&l["decision_ms"]).zip(baseline).map(|(m, b)| m / b)),
                format!("{} / {}", l["acquired"], l["busy"]),
                format!("{} of {}", l["overlapping_runs"], l["journal_runs"]),
                format!("{} ({} late)", l["errors"], l["late_starts"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "processes",
            "rounds",
            "decisions",
            "time to decision",
            "p99 ms",
            "acquired",
            "busy",
            "ratio (median)",
            "acquired / busy",
            "overlapping runs in the journal",
            "errors (late starts)",
        ],
        &rows,
    ));
    let mut verdicts = Vec::new();
    if let Some(l) = figure
        .lines
        .iter()
        .find(|l| l["processes"].as_u64() > Some(1))
    {
        let errors = l["errors"].as_u64().unwrap_or(u64::MAX);
        let overlaps = l["overlapping_runs"].as_u64().unwrap_or(u64::MAX);
        verdicts.push(Verdict::new(
            format!(
                "{} processes: median and p99 time to a decision",
                l["processes"]
            ),
            format!(
                "{} ms / {} ms",
                num(median(&l["decision_ms"]).unwrap_or(0.0)),
                num(field(&l["decision_ms"], "p99", 1.0).unwrap_or(0.0))
            ),
            None,
        ));
        verdicts.push(Verdict::new(
            "every call decides (lease or Busy), no errors, no overlapping leases",
            format!("{errors} errors, {overlaps} overlapping runs"),
            Some(errors == 0 && overlaps == 0),
        ));
        if let Some(examples) = l["error_examples"].as_array().filter(|e| !e.is_empty()) {
            out.push_str(&format!(
                "\nErrors seen: {}\n",
                examples
                    .iter()
                    .map(|e| format!("`{}`", e.as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    (out, verdicts)
}
