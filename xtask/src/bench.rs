//! `cargo xtask bench [--quick] [--only N[,N…]] [--out FILE]`: runs the benchmarks and
//! writes `BENCHMARKS.md`.
//!
//! Builds `sandkit-bench` and `sandkit` in release mode, then runs each figure — the
//! bench binary's subcommands, and the examples of `sandkit-local` (figure 5) and
//! `sandkit-adapter-seaorm` (figure 8) — storing what each prints (JSON lines) in
//! `target/bench/<full|quick>/figN.jsonl`, with how and when it ran in `figN.meta`.
//! Finally `sandkit-bench report` renders every stored figure: a full pass writes
//! `BENCHMARKS.md` at the repository root, `--quick` writes
//! `target/bench/BENCHMARKS.quick.md`. `--only` re-measures some figures and keeps
//! the stored results of the others.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: cargo xtask bench [--quick] [--only N[,N…]] [--out FILE]

figures: 1 durable command overhead   2 Vercel API calls      3 throughput
         4 contention (PostgreSQL)    5 local snapshots       6 CLI wall time and RSS
         7 memory                     8 SeaORM statements per durable command
         9 kill -9 of `sandkit run` → next successful run, against the lease TTL";

/// Figure numbers.
const FIGURES: [u8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

struct Options {
    quick: bool,
    only: Vec<u8>,
    out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        quick: false,
        only: FIGURES.to_vec(),
        out: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--only" => {
                let list = it
                    .next()
                    .ok_or_else(|| format!("--only needs figure numbers\n\n{USAGE}"))?;
                opts.only = list
                    .split(',')
                    .map(|n| n.trim().parse::<u8>().ok().filter(|n| FIGURES.contains(n)))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| {
                        format!(
                            "--only {list:?}: use figure numbers 1–9, comma-separated\n\n{USAGE}"
                        )
                    })?;
            }
            "--out" => {
                let path = it
                    .next()
                    .ok_or_else(|| format!("--out needs a file\n\n{USAGE}"))?;
                opts.out = Some(PathBuf::from(path));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unexpected argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(opts)
}

/// Runs the selected figures and writes the report.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let root = repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mode = if opts.quick { "quick" } else { "full" };
    let results = target.join("bench").join(mode);
    std::fs::create_dir_all(&results)
        .map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let out = opts.out.clone().unwrap_or_else(|| {
        if opts.quick {
            target.join("bench").join("BENCHMARKS.quick.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    super::default_database_urls();
    build(&opts)?;
    let bin = target.join("release");
    let mut failed = Vec::new();
    for &n in &opts.only {
        eprintln!("xtask bench: figure {n} ({mode} pass)");
        if let Err(e) = figure(n, &opts, &root, &bin, &results) {
            eprintln!("xtask bench: figure {n} failed: {e}");
            failed.push(format!("figure {n}: {e}"));
        }
    }
    let mut report = Command::new(bin.join("sandkit-bench"));
    report
        .arg("report")
        .arg("--results")
        .arg(&results)
        .arg("--out")
        .arg(&out);
    if opts.quick {
        report.arg("--quick");
    }
    super::run(&mut report)?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} written, but these figures failed:\n  {}",
            out.display(),
            failed.join("\n  ")
        ))
    }
}

fn repo_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Builds everything the selected figures run, before any of them is timed.
fn build(opts: &Options) -> Result<(), String> {
    super::run(super::cargo().args([
        "build",
        "--release",
        "-p",
        "sandkit-bench",
        "-p",
        "sandkit-cli",
    ]))?;
    // Figures that run a crate's example: build it with the rest.
    for (figure, package, example) in [
        (5, "sandkit-local", "snapshot_bench"),
        (8, "sandkit-adapter-seaorm", "store_bench"),
    ] {
        if opts.only.contains(&figure) {
            super::run(super::cargo().args([
                "build",
                "--release",
                "-p",
                package,
                "--example",
                example,
            ]))?;
        }
    }
    Ok(())
}

/// One command of a figure: what the report shows, and what runs.
struct Step {
    shown: String,
    cmd: Command,
}

fn bench_step(bin: &Path, task: &str, extra: &[&str], quick: bool) -> Step {
    let mut cmd = Command::new(bin.join("sandkit-bench"));
    cmd.arg(task).args(extra);
    let mut shown = format!("target/release/sandkit-bench {task}");
    if quick {
        cmd.arg("--quick");
        shown.push_str(" --quick");
    }
    Step { shown, cmd }
}

fn cargo_step(args: &[&str]) -> Step {
    let mut cmd = super::cargo();
    cmd.args(args);
    Step {
        shown: format!("cargo {}", args.join(" ")),
        cmd,
    }
}

fn steps(n: u8, quick: bool, bin: &Path) -> Vec<Step> {
    let pick = |full: &'static str, fast: &'static str| if quick { fast } else { full };
    match n {
        1 => vec![bench_step(bin, "overhead", &[], quick)],
        2 => vec![bench_step(bin, "vercel-calls", &[], quick)],
        3 => vec![bench_step(bin, "throughput", &[], quick)],
        4 => vec![bench_step(bin, "contention", &[], quick)],
        5 => vec![cargo_step(&[
            "run",
            "--release",
            "--quiet",
            "-p",
            "sandkit-local",
            "--example",
            "snapshot_bench",
            "--",
            "--runs",
            pick("5", "2"),
        ])],
        6 => vec![cli_step(bin, "cli", quick)],
        7 => vec![bench_step(bin, "memory", &[], quick)],
        8 => {
            // The store bench: every dialect, then SQLite without flushes (the baseline).
            let store_bench = |extra: &[&str]| {
                let mut args = vec![
                    "run",
                    "--release",
                    "--quiet",
                    "-p",
                    "sandkit-adapter-seaorm",
                    "--example",
                    "store_bench",
                    "--",
                ];
                args.extend_from_slice(extra);
                args.extend(["--iterations", pick("500", "100")]);
                cargo_step(&args)
            };
            vec![
                store_bench(&[]),
                store_bench(&["--dialect", "sqlite", "--sqlite-synchronous", "normal"]),
            ]
        }
        9 => vec![cli_step(bin, "kill-recovery", quick)],
        _ => Vec::new(),
    }
}

/// A bench task that drives the release `sandkit` binary.
fn cli_step(bin: &Path, task: &str, quick: bool) -> Step {
    let mut step = bench_step(bin, task, &[], quick);
    step.cmd.arg("--sandkit").arg(bin.join("sandkit"));
    step.shown = step.shown.replacen(
        &format!(" {task}"),
        &format!(" {task} --sandkit target/release/sandkit"),
        1,
    );
    step
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// Runs figure `n`'s steps, storing their output and how they ran.
fn figure(n: u8, opts: &Options, root: &Path, bin: &Path, results: &Path) -> Result<(), String> {
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let load_before = load_average();
    let started = Instant::now();
    let steps = steps(n, opts.quick, bin);
    let mut lines = String::new();
    let mut outcome = Ok(());
    let mut shown = Vec::new();
    for mut step in steps {
        shown.push(step.shown.clone());
        eprintln!("xtask bench: running {}", step.shown);
        let output = step
            .cmd
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("could not start {}: {e}", step.shown));
        match output {
            Ok(output) => {
                lines.push_str(&String::from_utf8_lossy(&output.stdout));
                if !output.status.success() {
                    outcome = Err(format!("{} failed ({})", step.shown, output.status));
                    break;
                }
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let quick = if opts.quick { " --quick" } else { "" };
    let mut meta = format!(
        "command=cargo xtask bench --only {n}{quick}\nstarted_unix={started_unix}\nwall_s={:.1}\nload_before={load_before}\nload_after={}\nmode={}\nstatus={}\n",
        started.elapsed().as_secs_f64(),
        load_average(),
        if opts.quick { "quick" } else { "full" },
        match &outcome {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.replace('\n', " "),
        },
    );
    for s in &shown {
        meta.push_str(&format!("runs={s}\n"));
    }
    write(&results.join(format!("fig{n}.jsonl")), &lines)?;
    write(&results.join(format!("fig{n}.meta")), &meta)?;
    if n == 1 && outcome.is_ok() {
        profile(results, bin, opts.quick);
    }
    outcome
}

/// Profiles figure 1's SQLite case (no flush per commit, no provider delay) with
/// `perf`, when it is installed and allowed, into `fig1.profile.txt`: what dominates
/// the store's cost once the disk flushes are out of the way.
fn profile(results: &Path, bin: &Path, quick: bool) {
    let out = results.join("fig1.profile.txt");
    let _ = std::fs::remove_file(&out);
    let data = results.join("fig1.perf.data");
    let mut record = Command::new("perf");
    record
        .args(["record", "-F", "999", "-g", "-o"])
        .arg(&data)
        .arg("--")
        .arg(bin.join("sandkit-bench"))
        .args(["overhead", "--store", "sqlite-normal", "--delay-ms", "0"]);
    if quick {
        record.arg("--quick");
    }
    eprintln!("xtask bench: profiling figure 1 (sqlite, synchronous=normal, 0 ms) with perf");
    let recorded = record
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !recorded {
        eprintln!("xtask bench: perf is not available here; figure 1 has no profile");
        return;
    }
    let report = |sort: &str, limit: &str| {
        Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--sort",
                sort,
                "--percent-limit",
                limit,
                "-i",
            ])
            .arg(&data)
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                    .map(|l| format!("{}\n", l.trim_end()))
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    let text = format!(
        "[by thread]\n{}[by binary]\n{}[by symbol]\n{}",
        report("comm", "1"),
        report("dso", "1"),
        report("sym", "0.7")
    );
    let _ = write(&out, &text);
    let _ = std::fs::remove_file(&data);
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_select_figures_and_refuse_unknown_ones() {
        let all = parse(&[]).expect("no options");
        assert_eq!((all.quick, all.only.len()), (false, 9));
        let some = parse(&strings(&["--quick", "--only", "1,7"])).expect("valid");
        assert_eq!((some.quick, some.only), (true, vec![1, 7]));
        assert_eq!(parse(&strings(&["--only", "9"])).expect("valid").only, [9]);
        assert!(parse(&strings(&["--only", "10"])).is_err());
        assert!(parse(&strings(&["--only", "0"])).is_err());
        assert!(parse(&strings(&["--only"])).is_err());
        assert!(parse(&strings(&["--fast"])).is_err());
    }

    #[test]
    fn every_figure_has_a_step_and_quick_passes_say_so() {
        let bin = Path::new("/x/release");
        for n in FIGURES {
            assert!(!steps(n, false, bin).is_empty(), "figure {n}");
        }
        assert!(steps(1, true, bin)[0].shown.ends_with("overhead --quick"));
        assert_eq!(steps(8, false, bin).len(), 2);
        assert!(
            steps(6, false, bin)[0]
                .shown
                .contains("--sandkit target/release/sandkit")
        );
        assert!(
            steps(9, true, bin)[0]
                .shown
                .ends_with("kill-recovery --sandkit target/release/sandkit --quick")
        );
    }
}
