//! Figure 1: the durable command's overhead, where it goes, and the profile.

use serde_json::Value;

use super::core_figures::{TWO_TXN_OPS, median, op_us, store_us};
use super::format::{cell, num, ratio, spread, table};
use super::{Figure, Verdict};

/// Durations recorded in µs, shown in ms above 10 ms.
fn us_cell(summary: &Value) -> String {
    if median(summary).is_some_and(|m| m >= 10_000.0) {
        cell(summary, 1e-3, " ms")
    } else {
        cell(summary, 1.0, " µs")
    }
}

fn find<'a>(lines: &'a [Value], store: &str, delay: u64) -> Option<&'a Value> {
    lines
        .iter()
        .find(|l| l["store"] == store && l["delay_ms"].as_u64() == Some(delay))
}

/// Figure 1.
pub fn overhead(figure: &Figure) -> (String, Vec<Verdict>) {
    let lines = &figure.lines;
    let mut out = String::from(
        "The baseline is the sequence a durable command needs, called directly on the \
         testkit `FakeProvider`: `start` (from the previous snapshot) → `exec true` (output \
         read to the end) → `snapshot`. The durable path is `Workspace::run_command(true)` \
         on the same provider, which adds the lease, the run journal and the commit. The \
         two alternate, one pair per iteration; the overhead is the median of the paired \
         differences. `FakeProvider::set_delay` adds the stated delay to every provider \
         call (3 per command). SQLite is a file in WAL mode with every commit flushed \
         (`synchronous = FULL`, the default); the `synchronous=normal` row is a reference \
         that shows what the flushes cost.\n\n",
    );
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l["store"].as_str().unwrap_or("?").to_owned(),
                format!("{} ms", l["delay_ms"]),
                l["iterations"].to_string(),
                us_cell(&l["baseline_us"]),
                us_cell(&l["durable_us"]),
                spread(&l["durable_us"]),
                cell(&l["overhead_us"], 1.0, " µs"),
                ratio(l["ratio"].as_f64()),
                l["provider_calls_per_command"].to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "store",
            "delay / call",
            "pairs",
            "baseline: bare provider calls",
            "durable `run_command`",
            "spread",
            "overhead (paired)",
            "ratio",
            "provider calls / command",
        ],
        &rows,
    ));
    out.push_str(
        "\n**Where the overhead goes** (means per durable command, µs; store calls timed by \
         a decorator around the store; \"other store\" is retention's first calls when they \
         overlap the end of the command; \"not store\" is the mean overhead minus the store \
         time: lease bookkeeping, the command task and its heartbeat, log capture):\n\n",
    );
    let breakdown: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let reads = op_us(l, "get_workspace");
            let acquire = op_us(l, TWO_TXN_OPS[0]);
            let commit = op_us(l, TWO_TXN_OPS[1]);
            let total = store_us(l);
            let overhead = l["overhead_mean_us"].as_f64().unwrap_or(0.0);
            let other = total - reads - acquire - commit;
            vec![
                l["store"].as_str().unwrap_or("?").to_owned(),
                format!("{} ms", l["delay_ms"]),
                format!(
                    "{} ({}×)",
                    num(reads),
                    num(l["store_breakdown"]["get_workspace"]["calls"]
                        .as_f64()
                        .unwrap_or(0.0))
                ),
                num(acquire),
                num(commit),
                num(if other.abs() < 0.5 { 0.0 } else { other }),
                num(total),
                num(overhead),
                num(overhead - total),
                format!(
                    "{} ({} → {})",
                    num(median(&l["retention_us"]).unwrap_or(0.0)),
                    num(l["retention_first_tenth_us"].as_f64().unwrap_or(0.0)),
                    num(l["retention_last_tenth_us"].as_f64().unwrap_or(0.0)),
                ),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "store",
            "delay / call",
            "reads (`get_workspace`)",
            "txn 1: acquire + insert run",
            "txn 2: commit + finish run",
            "other store",
            "store total",
            "overhead (mean)",
            "not store",
            "background retention: median (first → last tenth)",
        ],
        &breakdown,
    ));
    out.push_str(
        "\nSnapshot retention (default: keep the last 3 runs' snapshots) runs in a \
         background task after each commit, so it is not part of `run_command`'s latency; \
         the bench waits for it after each command, untimed, and reports it in the last \
         column (with the mean of the first and last tenth of the iterations, to show \
         whether it grows with the journal). Once there is a snapshot to delete, it includes \
         one provider `delete_snapshot` call, so at 20 ms per call it takes about 20 ms.\n\n",
    );

    if let Some(m) = find(lines, "memory", 0) {
        let apply = op_us(m, TWO_TXN_OPS[0]);
        if apply > 100.0 {
            out.push_str(&format!(
                "The memory store's transactions cost {} µs each in the 0 ms row because \
                 `MemoryStore::apply` copies the whole state on every write and the workspace \
                 holds {} runs by the end (see figure 3).\n\n",
                num(apply),
                m["runs_in_workspace"]
            ));
        }
    }
    let mut verdicts = Vec::new();
    let mut notes = Vec::new();
    for store in ["memory", "sqlite", "postgres"] {
        if let Some(l) = find(lines, store, 20) {
            let r = l["ratio"].as_f64().unwrap_or(f64::NAN);
            let met = r <= 1.02;
            verdicts.push(Verdict::new(
                format!("{store}, 20 ms/call: ≤ 1.02×"),
                format!("{r:.3}×"),
                Some(met),
            ));
            if !met {
                notes.push(ratio_miss_note(
                    l,
                    find(lines, store, 0),
                    find(lines, "sqlite (synchronous=normal)", 20),
                ));
            }
        }
    }
    if let Some(l) = find(lines, "sqlite", 0) {
        let o = median(&l["overhead_us"]).unwrap_or(f64::NAN);
        let met = o < 1000.0;
        verdicts.push(Verdict::new(
            "sqlite, 0 ms/call: overhead < 1 ms",
            format!("{} µs", num(o)),
            Some(met),
        ));
        if !met {
            notes.push(sqlite_miss_note(
                l,
                find(lines, "sqlite (synchronous=normal)", 0),
            ));
        }
    }
    for note in notes {
        out.push_str(&note);
        out.push_str("\n\n");
    }
    if let Some(profile) = &figure.profile {
        out.push_str(&profile_section(profile));
    }
    (out, verdicts)
}

/// The percentage on the first line of `section` whose text contains `needle`.
fn percent_of(profile: &str, section: &str, needle: &str) -> f64 {
    section_lines(profile, section)
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .trim_end_matches('%')
                .parse::<f64>()
                .ok()
        })
        .sum()
}

fn section_lines<'a>(profile: &'a str, section: &str) -> impl Iterator<Item = &'a str> {
    let header = format!("[{section}]");
    profile
        .lines()
        .skip_while(move |l| *l != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
}

/// The `perf` profile of the SQLite case without flushes, with what it says.
fn profile_section(profile: &str) -> String {
    let kernel = percent_of(profile, "by binary", "[kernel");
    let worker = percent_of(profile, "by thread", "sqlx-sqlite");
    let sqlite: f64 = section_lines(profile, "by symbol")
        .filter(|l| l.contains("] sqlite3"))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .trim_end_matches('%')
                .parse::<f64>()
                .ok()
        })
        .sum();
    let scheduler = [
        "finish_task_switch",
        "_raw_spin_unlock_irq",
        "try_to_wake_up",
        "__schedule",
    ]
    .iter()
    .map(|sym| percent_of(profile, "by symbol", sym))
    .sum::<f64>();
    format!(
        "**Profile** of the SQLite case with `synchronous=normal` at 0 ms (`perf record -g`, \
         CPU samples of the whole bench process; symbols under 0.7 % omitted). With the \
         disk flushes out of the way, {kernel:.0} % of the CPU time is in the kernel — the \
         scheduler symbols alone (context switches and wake-ups) take {scheduler:.0} % — and \
         {worker:.0} % on sqlx's SQLite worker thread, which runs every statement and hands \
         each result back to a Tokio worker; SQLite's own code (`sqlite3*` symbols listed) \
         is {sqlite:.0} %.{}\n\n```text\n{}```\n",
        if kernel > 30.0 && sqlite < kernel / 3.0 {
            " So the remaining store cost is thread hand-offs per statement, not SQL."
        } else {
            ""
        },
        profile
    )
}

/// Store ops sorted by their time, as `name µs` phrases.
fn costliest_ops(line: &Value) -> String {
    let Some(ops) = line["store_breakdown"].as_object() else {
        return String::new();
    };
    let mut ops: Vec<(&String, f64)> = ops
        .iter()
        .map(|(k, v)| (k, v["us"].as_f64().unwrap_or(0.0)))
        .collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    ops.iter()
        .map(|(k, us)| format!("`{k}` {} µs", num(*us)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Database round trips of a durable command: two reads, then two transactions of
/// `BEGIN` + 3 and `BEGIN` + 2 statements + `COMMIT` (see figure 8).
const ROUND_TRIPS: f64 = 11.0;

fn ratio_miss_note(l: &Value, unloaded: Option<&Value>, normal: Option<&Value>) -> String {
    let store = l["store"].as_str().unwrap_or("?");
    let overhead = median(&l["overhead_us"]).unwrap_or(0.0);
    let mean = l["overhead_mean_us"].as_f64().unwrap_or(overhead);
    let baseline = median(&l["baseline_us"]).unwrap_or(0.0);
    let total = store_us(l);
    let mut note = format!(
        "**Missed — {store} at 20 ms per provider call: {:.3}× (target ≤ 1.02×).** The bare \
         sequence takes {} ms; the durable command adds {} µs (median; mean {} µs; the \
         target allows {} µs). The store takes {} µs of the mean ({:.0} %): {}. The rest, \
         {} µs, is not store time.",
        l["ratio"].as_f64().unwrap_or(0.0),
        num(baseline / 1e3),
        num(overhead),
        num(mean),
        num(baseline * 0.02),
        num(total),
        share(total, mean),
        costliest_ops(l),
        num(mean - total),
    );
    note.push_str(&format!(
        " That is {} µs per database round trip (a durable command makes {ROUND_TRIPS:.0}: two \
         reads and two transactions).",
        num(total / ROUND_TRIPS)
    ));
    if let Some(u) = unloaded {
        let at_zero = store_us(u);
        if at_zero > 0.0 && total > 1.3 * at_zero {
            note.push_str(&format!(
                " The same store calls take {} µs per command when the provider answers at \
                 once (0 ms row): they run {:.1}× slower after each 20 ms provider wait, \
                 likely the wake-up latency of the idle connection and the threads serving \
                 it.",
                num(at_zero),
                total / at_zero
            ));
        }
    }
    if store == "sqlite"
        && let Some(n) = normal
    {
        note.push_str(&format!(
            " With `synchronous=normal` (no flush per commit) the ratio is {:.3}×. {}",
            n["ratio"].as_f64().unwrap_or(0.0),
            flush_share(l, n),
        ));
    }
    note
}

/// How much of SQLite's overhead the per-commit flushes explain, from the `FULL` and
/// `NORMAL` rows measured in the same run.
fn flush_share(full: &Value, normal: &Value) -> String {
    let mean = |l: &Value| l["overhead_mean_us"].as_f64().unwrap_or(0.0);
    let flushes = mean(full) - mean(normal);
    let share = share(flushes, mean(full));
    if share >= 50.0 {
        format!(
            "The two commits' flushes to disk (`fsync` of the WAL) account for {} µs \
             ({share:.0} %) of the mean overhead: they dominate, not Sandkit's bookkeeping.",
            num(flushes)
        )
    } else {
        format!(
            "The two commits' flushes to disk account for {} µs ({share:.0} %) of the mean \
             overhead; without them the store calls still take {} µs per command — the \
             profile below shows where.",
            num(flushes.max(0.0)),
            num(store_us(normal))
        )
    }
}

fn sqlite_miss_note(l: &Value, normal: Option<&Value>) -> String {
    let overhead = median(&l["overhead_us"]).unwrap_or(0.0);
    let mean = l["overhead_mean_us"].as_f64().unwrap_or(overhead);
    let total = store_us(l);
    let mut note = format!(
        "**Missed — SQLite overhead at 0 ms per provider call: {} µs (median; target < \
         1,000 µs).** Of the mean overhead, {} µs, the store takes {} µs ({:.0} %): {}; {} µs \
         is not store time.",
        num(overhead),
        num(mean),
        num(total),
        share(total, mean),
        costliest_ops(l),
        num(mean - total),
    );
    if let Some(n) = normal {
        note.push_str(&format!(
            " With `synchronous=normal` the overhead is {} µs. {}",
            num(median(&n["overhead_us"]).unwrap_or(0.0)),
            flush_share(l, n),
        ));
    }
    note
}

fn share(part: f64, whole: f64) -> f64 {
    if whole.abs() > f64::EPSILON {
        part / whole * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_summary_adds_up_its_sections() {
        let profile = "[by thread]\n    44.58%  tokio-rt-worker\n    43.88%  sqlx-sqlite-wor\n\
                       [by binary]\n    50.31%  [kernel.kallsyms]\n    33.11%  sandkit-bench\n\
                       [by symbol]\n    18.03%  [k] finish_task_switch.isra.0\n\
                       \x20   14.22%  [k] _raw_spin_unlock_irqrestore\n\
                       \x20    2.19%  [.] sqlite3VdbeExec\n     0.73%  [.] sqlite3RunParser\n";
        assert_eq!(percent_of(profile, "by thread", "sqlx-sqlite"), 43.88);
        assert_eq!(percent_of(profile, "by binary", "[kernel"), 50.31);
        let text = profile_section(profile);
        assert!(
            text.contains("50 % of the CPU time is in the kernel"),
            "{text}"
        );
        assert!(text.contains("take 32 %"), "{text}");
        assert!(text.contains("is 3 %. So the remaining"), "{text}");
    }
}
