//! The machine note: cores, memory, kernel and load, read from `/proc`.

use serde_json::{Value, json};

/// Load averages (1, 5, 15 minutes) from `/proc/loadavg`.
pub fn load_average() -> Option<[f64; 3]> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

/// `MemTotal` from `/proc/meminfo`, in KiB.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Logical CPUs and the first model name in `/proc/cpuinfo`.
fn cpus(cpuinfo: &str) -> (usize, Option<String>) {
    let count = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, name)| name.trim().to_owned());
    (count, model)
}

/// What the report says about the machine.
pub fn note() -> Value {
    let (count, model) = cpus(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let available = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(count.max(1));
    let mem = mem_total_kib(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .ok();
    json!({
        "cpus": count.max(available),
        "cpus_available": available,
        "cpu_model": model,
        "mem_total_gib": mem.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "kernel": kernel,
        "load_average": load_average(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        assert_eq!(
            parse_loadavg("2.41 2.37 2.30 3/191 11612\n"),
            Some([2.41, 2.37, 2.30])
        );
        assert_eq!(
            mem_total_kib("MemTotal:       24684096 kB\nMemFree: 1 kB\n"),
            Some(24_684_096)
        );
        let (n, model) = cpus("processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\n");
        assert_eq!((n, model.as_deref()), (2, Some("AMD EPYC")));
    }
}
