//! Report lines (one per scenario × backend) and the summary that ends with a plain
//! `N passed, M failed` line.

use std::fmt::Write as _;
use std::time::Duration;

/// How a scenario × backend combination ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every assertion held.
    Pass,
    /// An assertion failed, or the run could not be set up.
    Fail,
    /// Not run, with the reason in the line's detail.
    Skip,
}

impl Status {
    fn label(&self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Scenario name.
    pub scenario: &'static str,
    /// Backend (`provider/database`).
    pub backend: String,
    /// Outcome.
    pub status: Status,
    /// Time taken (zero when skipped).
    pub elapsed: Duration,
    /// Why it failed or was skipped, or notes on a pass.
    pub detail: String,
}

/// Formats a duration as `0.42s` or `1m05s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

impl Line {
    /// The line as printed: status, scenario, backend, time, then the first line of
    /// the detail.
    pub fn render(&self) -> String {
        let time = match self.status {
            Status::Skip => String::new(),
            _ => format_duration(self.elapsed),
        };
        let first = self.detail.lines().next().unwrap_or("");
        let line = format!(
            "{}  {:<15}  {:<20}  {:>7}  {first}",
            self.status.label(),
            self.scenario,
            self.backend,
            time
        );
        line.trim_end().to_owned()
    }
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Passed combinations.
    pub passed: usize,
    /// Failed combinations.
    pub failed: usize,
    /// Skipped combinations.
    pub skipped: usize,
}

/// Counts lines by status.
pub fn counts(lines: &[Line]) -> Counts {
    let mut c = Counts::default();
    for line in lines {
        match line.status {
            Status::Pass => c.passed += 1,
            Status::Fail => c.failed += 1,
            Status::Skip => c.skipped += 1,
        }
    }
    c
}

/// The summary: every failure in full, the skipped count, the total time, and the
/// final `N passed, M failed` line.
pub fn summary(lines: &[Line], total: Duration) -> String {
    let c = counts(lines);
    let mut out = String::new();
    let failures: Vec<&Line> = lines.iter().filter(|l| l.status == Status::Fail).collect();
    if !failures.is_empty() {
        out.push_str("\nfailures:\n");
        for line in failures {
            let _ = writeln!(out, "  {} on {}:", line.scenario, line.backend);
            for detail in line.detail.lines() {
                let _ = writeln!(out, "    {detail}");
            }
        }
    }
    out.push('\n');
    if c.skipped > 0 {
        let _ = writeln!(out, "{} skipped (reasons above)", c.skipped);
    }
    let _ = writeln!(out, "smoke run took {}", format_duration(total));
    let _ = write!(out, "{} passed, {} failed", c.passed, c.failed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(status: Status, detail: &str) -> Line {
        Line {
            scenario: "crash-recovery",
            backend: "local/postgres".into(),
            status,
            elapsed: Duration::from_millis(1234),
            detail: detail.into(),
        }
    }

    #[test]
    fn lines_show_status_scenario_backend_time_and_first_detail_line() {
        let pass = line(Status::Pass, "").render();
        assert_eq!(pass, "PASS  crash-recovery   local/postgres          1.23s");
        let fail = line(Status::Fail, "head differs\nmore").render();
        assert!(fail.starts_with("FAIL  crash-recovery"), "{fail}");
        assert!(fail.ends_with("1.23s  head differs"), "{fail}");
        let skip = line(Status::Skip, "needs the fake").render();
        assert!(
            !skip.contains("1.23s") && skip.ends_with("needs the fake"),
            "{skip}"
        );
    }

    #[test]
    fn the_summary_ends_with_the_plain_counts_line() {
        let lines = vec![
            line(Status::Pass, ""),
            line(Status::Fail, "boom\nat step 2"),
            line(Status::Skip, "no server"),
            line(Status::Pass, ""),
        ];
        let text = summary(&lines, Duration::from_secs(75));
        assert_eq!(text.lines().last(), Some("2 passed, 1 failed"));
        assert!(
            text.contains("crash-recovery on local/postgres:\n    boom\n    at step 2"),
            "{text}"
        );
        assert!(text.contains("1 skipped"), "{text}");
        assert!(text.contains("1m15s"), "{text}");
        assert_eq!(
            counts(&lines),
            Counts {
                passed: 2,
                failed: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m05s");
    }
}
