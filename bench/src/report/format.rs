//! Number and table formatting for the report.

use serde_json::Value;

/// A number with precision that suits its size.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a >= 1000.0 {
        group(v.round() as i64)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// An integer with thousands separators.
fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A field of a summary object, scaled.
pub fn field(summary: &Value, name: &str, scale: f64) -> Option<f64> {
    summary[name].as_f64().map(|v| v * scale)
}

/// `median unit (min–max)` of a summary object, scaled; `—` when absent.
pub fn cell(summary: &Value, scale: f64, unit: &str) -> String {
    match (
        field(summary, "median", scale),
        field(summary, "min", scale),
        field(summary, "max", scale),
    ) {
        (Some(m), Some(lo), Some(hi)) => format!("{}{unit} ({}–{})", num(m), num(lo), num(hi)),
        _ => "—".to_owned(),
    }
}

/// The interquartile range as a share of the median, e.g. `±3 %`.
pub fn spread(summary: &Value) -> String {
    match (
        summary["q1"].as_f64(),
        summary["q3"].as_f64(),
        summary["median"].as_f64(),
    ) {
        (Some(q1), Some(q3), Some(m)) if m.abs() > f64::EPSILON => {
            format!("±{:.0} %", (q3 - q1) / 2.0 / m.abs() * 100.0)
        }
        _ => "—".to_owned(),
    }
}

/// A ratio like `1.013×`.
pub fn ratio(v: Option<f64>) -> String {
    v.map_or("—".to_owned(), |r| format!("{r:.3}×"))
}

/// A markdown table.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", head.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        head.iter().map(|_| "---|").collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// `met` / `**missed**` / `—`.
pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "—",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_cells_and_tables_read_well() {
        assert_eq!(num(61234.4), "61,234");
        assert_eq!(num(-1234.0), "-1,234");
        assert_eq!(num(123.4), "123");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.1234), "0.123");
        assert_eq!(num(0.0), "0");
        let s = json!({"median": 2000.0, "min": 1500.0, "max": 3000.0, "q1": 1900.0, "q3": 2100.0});
        assert_eq!(cell(&s, 1e-3, " ms"), "2.00 ms (1.50–3.00)");
        assert_eq!(spread(&s), "±5 %");
        assert_eq!(cell(&Value::Null, 1.0, ""), "—");
        assert_eq!(ratio(Some(1.0134)), "1.013×");
        assert_eq!(
            table(&["a", "b"], &[vec!["1".into(), "2".into()]]),
            "| a | b |\n|---|---|\n| 1 | 2 |\n"
        );
        assert_eq!(verdict(Some(false)), "**missed**");
    }
}
