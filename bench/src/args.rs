//! Command-line options: `--quick` and `--name value` pairs.

use std::collections::BTreeMap;
use std::str::FromStr;

/// Parsed options of one task.
#[derive(Debug, Default)]
pub struct Args {
    /// A fast pass with fewer repetitions.
    pub quick: bool,
    values: BTreeMap<String, String>,
}

impl Args {
    /// Parses `--quick` and `--name value` pairs.
    pub fn parse(raw: &[String]) -> Result<Args, String> {
        let mut args = Args::default();
        let mut it = raw.iter();
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            if name == "quick" {
                args.quick = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            args.values.insert(name.to_owned(), value.clone());
        }
        Ok(args)
    }

    /// A required option.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.values
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    /// An option, if given.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// An option parsed as `T`, or `default` when absent.
    pub fn parsed_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v:?} is not a valid value")),
        }
    }

    /// `full` or `quick` depending on the mode.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_are_parsed_and_checked() {
        let args = Args::parse(&strings(&["--quick", "--rounds", "7"])).expect("valid");
        assert!(args.quick);
        assert_eq!(args.parsed_or("rounds", 1usize), Ok(7));
        assert_eq!(args.parsed_or("other", 3usize), Ok(3));
        assert!(args.required("url").is_err());
        assert_eq!(args.pick(10, 2), 2);
        assert!(Args::parse(&strings(&["--url"])).is_err());
        assert!(Args::parse(&strings(&["stray"])).is_err());
        let bad = Args::parse(&strings(&["--rounds", "x"])).expect("parsed");
        assert!(bad.parsed_or("rounds", 1usize).is_err());
    }
}
