//! The harness: repeated samples summarised as median, min–max, quartiles and p99.

use std::time::Duration;

use serde_json::{Value, json};

/// A summary of repeated measurements, in the unit they were recorded in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// First quartile.
    pub q1: f64,
    /// Third quartile.
    pub q3: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            median: quantile(&sorted, 0.5),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            q1: quantile(&sorted, 0.25),
            q3: quantile(&sorted, 0.75),
            p99: nearest_rank(&sorted, 0.99),
        })
    }

    /// The summary as JSON, with the unit named.
    pub fn json(&self, unit: &str) -> Value {
        json!({
            "unit": unit,
            "n": self.n,
            "median": round(self.median),
            "min": round(self.min),
            "max": round(self.max),
            "q1": round(self.q1),
            "q3": round(self.q3),
            "p99": round(self.p99),
        })
    }
}

/// Summarises `samples` as JSON, or `null` when there are none.
pub fn summary_json(samples: &[f64], unit: &str) -> Value {
    Summary::of(samples).map_or(Value::Null, |s| s.json(unit))
}

/// Linear interpolation between the closest ranks of a sorted slice.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The smallest sample at or above fraction `q` of the samples.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `samples` (0 when there are none).
pub fn median(samples: &[f64]) -> f64 {
    Summary::of(samples).map_or(0.0, |s| s.median)
}

/// Three significant decimals are plenty for the report.
pub fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A duration in microseconds.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_order_statistics() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("samples");
        assert_eq!((s.n, s.median, s.min, s.max), (5, 3.0, 1.0, 5.0));
        assert_eq!((s.q1, s.q3, s.p99), (2.0, 4.0, 5.0));
        let even = Summary::of(&[1.0, 2.0, 3.0, 4.0]).expect("samples");
        assert_eq!(even.median, 2.5);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn p99_of_two_hundred_samples_is_the_second_largest() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(Summary::of(&samples).expect("samples").p99, 198.0);
    }
}
