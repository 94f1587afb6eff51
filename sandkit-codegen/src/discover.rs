//! Finding out which SQL dialect a Rust project uses, from what is in its directory:
//! `Cargo.toml` dependencies and features (sea-orm, sqlx, drivers) — the root's and,
//! for a workspace (virtual or not), every member's (`members` globs such as
//! `crates/*` expanded, `exclude` honoured) — `DATABASE_URL` (in `.env` or the
//! environment) and a sea-orm `migration/` crate.
//!
//! Each finding adds weight to a dialect; the confidence is the winner's share of the
//! two strongest (1.0 when only one dialect has evidence). Below [`CONFIDENT`] the
//! caller should ask, or fail and ask for the dialect.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sandkit_core::{Error, Result};
use toml_edit::{DocumentMut, Item};

use crate::dialect::Dialect;

/// Confidence at and above which a discovered dialect is used without asking.
pub const CONFIDENT: f64 = 0.75;

/// Weight of a `DATABASE_URL` naming a dialect.
const URL_WEIGHT: f64 = 3.0;
/// Weight of a sea-orm / sqlx feature naming a dialect.
const FEATURE_WEIGHT: f64 = 2.0;
/// Weight of a dialect's driver crate.
const DRIVER_WEIGHT: f64 = 1.0;

/// One thing found in the project.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Where (a file, or `environment`).
    pub source: String,
    /// What was found (never a URL: it may hold a password).
    pub finding: String,
    /// The dialect it points to, if any.
    pub dialect: Option<Dialect>,
    /// How much it counts.
    pub weight: f64,
}

/// What discovery found.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// The directory looked at.
    pub dir: PathBuf,
    /// Everything found, in the order looked at.
    pub evidence: Vec<Evidence>,
    /// The most likely dialect, if any evidence names one.
    pub dialect: Option<Dialect>,
    /// The winner's share of the two strongest dialects (0 without evidence).
    pub confidence: f64,
    /// Whether the project depends on sea-orm.
    pub uses_seaorm: bool,
    /// The manifest that showed the project depends on sea-orm (relative to `dir`).
    pub seaorm_source: Option<String>,
    /// The project's sea-orm migration crate directory, if there is one (`migration/`,
    /// or the workspace member that depends on sea-orm-migration).
    pub migration_crate: Option<PathBuf>,
    /// The crate that depends on sea-orm itself (the root's, or a workspace member's):
    /// where entities belong.
    pub entity_crate: Option<PathBuf>,
}

impl Discovery {
    /// Total weight per dialect.
    pub fn scores(&self) -> BTreeMap<Dialect, f64> {
        let mut scores = BTreeMap::new();
        for e in &self.evidence {
            if let Some(d) = e.dialect {
                *scores.entry(d).or_insert(0.0) += e.weight;
            }
        }
        scores
    }

    /// The dialect when the evidence is clear enough ([`CONFIDENT`]).
    pub fn confident_dialect(&self) -> Option<Dialect> {
        self.dialect.filter(|_| self.confidence >= CONFIDENT)
    }

    /// The evidence and the verdict, one finding per line, for people.
    pub fn report(&self) -> String {
        let mut out = String::new();
        if self.evidence.is_empty() {
            let _ = writeln!(out, "no evidence found in {}", self.dir.display());
        }
        for e in &self.evidence {
            let points = match e.dialect {
                Some(d) => format!(" → {d} (+{})", e.weight),
                None => String::new(),
            };
            let _ = writeln!(out, "  {}: {}{points}", e.source, e.finding);
        }
        match &self.seaorm_source {
            Some(source) => {
                let _ = writeln!(out, "adapter: seaorm ({source} depends on sea-orm)");
            }
            None => {
                let _ = writeln!(out, "adapter: sql (no manifest depends on sea-orm)");
            }
        }
        match self.dialect {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "dialect: {d} (confidence {:.0}%, decided by {})",
                    self.confidence * 100.0,
                    self.deciding_sources(d).join(", ")
                );
            }
            None => {
                let _ = writeln!(out, "dialect: unknown");
            }
        }
        out
    }

    /// The sources of the evidence for `dialect`, strongest first, each once.
    pub fn deciding_sources(&self, dialect: Dialect) -> Vec<String> {
        let mut weights: Vec<(String, f64)> = Vec::new();
        for e in self.evidence.iter().filter(|e| e.dialect == Some(dialect)) {
            match weights.iter_mut().find(|(s, _)| *s == e.source) {
                Some((_, w)) => *w += e.weight,
                None => weights.push((e.source.clone(), e.weight)),
            }
        }
        weights.sort_by(|a, b| b.1.total_cmp(&a.1));
        weights.into_iter().map(|(s, _)| s).collect()
    }

    /// The error for when the dialect is unclear and nobody can be asked.
    pub fn unclear_error(&self) -> Error {
        let mut message = match self.dialect {
            None => format!(
                "could not tell the SQL dialect: found no Cargo.toml sea-orm/sqlx features, \
                 DATABASE_URL or database driver in {}",
                self.dir.display()
            ),
            Some(_) => {
                let scores: Vec<String> = self
                    .scores()
                    .iter()
                    .map(|(d, s)| format!("{d} {s}"))
                    .collect();
                format!(
                    "could not tell the SQL dialect with confidence ({:.0}% < {:.0}%; evidence \
                     for {}) in {}",
                    self.confidence * 100.0,
                    CONFIDENT * 100.0,
                    scores.join(", "),
                    self.dir.display()
                )
            }
        };
        message.push_str(
            "; pass it explicitly with --dialect sqlite|postgres|mysql (or --database-url URL), \
             or run in the project directory",
        );
        Error::invalid_input(message)
    }
}

/// Looks at `dir`, with `DATABASE_URL` from the environment as one more source.
///
/// # Errors
/// `Storage` when a file exists but cannot be read.
pub fn discover(dir: &Path) -> Result<Discovery> {
    discover_with_env(dir, std::env::var("DATABASE_URL").ok())
}

/// Like [`discover`], with the environment's `DATABASE_URL` given (tests, or callers
/// that read the environment themselves).
///
/// # Errors
/// `Storage` when a file exists but cannot be read.
pub fn discover_with_env(dir: &Path, env_url: Option<String>) -> Result<Discovery> {
    let mut evidence = Vec::new();
    let mut seaorm_source: Option<String> = None;
    let mut entity_crate: Option<PathBuf> = None;
    let migration_dir = dir.join("migration");
    let mut migration_crate = migration_dir
        .join("Cargo.toml")
        .is_file()
        .then(|| migration_dir.clone());

    // The root manifest, sea-orm-cli's `migration/` crate, then workspace members.
    let root_text = read(&dir.join("Cargo.toml"))?;
    let mut manifests: Vec<String> = vec![String::new(), "migration".to_owned()];
    if let Some(text) = &root_text
        && let Ok(doc) = text.parse::<DocumentMut>()
    {
        let members = workspace_members(dir, &doc)?;
        if !members.is_empty() {
            evidence.push(Evidence {
                source: "Cargo.toml".to_owned(),
                finding: format!(
                    "a {}workspace of {} member{} ({}); their manifests count too",
                    if doc.get("package").is_none() {
                        "virtual "
                    } else {
                        ""
                    },
                    members.len(),
                    if members.len() == 1 { "" } else { "s" },
                    members.join(", ")
                ),
                dialect: None,
                weight: 0.0,
            });
        }
        for member in members {
            if !manifests.contains(&member) {
                manifests.push(member);
            }
        }
    }
    for krate in manifests {
        let label = if krate.is_empty() {
            "Cargo.toml".to_owned()
        } else {
            format!("{krate}/Cargo.toml")
        };
        let text = if krate.is_empty() {
            root_text.clone()
        } else {
            read(&dir.join(&label))?
        };
        let Some(text) = text else {
            continue;
        };
        let uses = cargo_evidence(&label, &text, &mut evidence);
        let crate_dir = if krate.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&krate)
        };
        if uses.seaorm {
            seaorm_source.get_or_insert_with(|| label.clone());
            entity_crate.get_or_insert(crate_dir.clone());
        } else if uses.migration {
            seaorm_source.get_or_insert_with(|| label.clone());
        }
        if uses.migration && migration_crate.is_none() && !krate.is_empty() {
            migration_crate = Some(crate_dir);
        }
    }
    let uses_seaorm = seaorm_source.is_some();
    if let Some(krate) = &migration_crate {
        let shown = krate
            .strip_prefix(dir)
            .unwrap_or(krate)
            .display()
            .to_string();
        evidence.push(Evidence {
            source: format!("{shown}/"),
            finding: format!("a sea-orm migration crate (seaorm output goes to {shown}/src)"),
            dialect: None,
            weight: 0.0,
        });
    }
    for name in [".env", ".env.local"] {
        let path = dir.join(name);
        if path.is_file()
            && let Some(url) = dotenv_database_url(&path)?
        {
            evidence.push(url_evidence(name, &url));
        }
    }
    if let Some(url) = env_url.filter(|u| !u.trim().is_empty()) {
        evidence.push(url_evidence("environment", &url));
    }

    let mut discovery = Discovery {
        dir: dir.to_path_buf(),
        evidence,
        dialect: None,
        confidence: 0.0,
        uses_seaorm,
        seaorm_source,
        migration_crate,
        entity_crate,
    };
    let mut ranked: Vec<(Dialect, f64)> = discovery.scores().into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(&(winner, top)) = ranked.first().filter(|(_, s)| *s > 0.0) {
        let runner_up = ranked.get(1).map_or(0.0, |(_, s)| *s);
        discovery.dialect = Some(winner);
        discovery.confidence = top / (top + runner_up);
    }
    Ok(discovery)
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(format!(
            "could not read {}: {e}; check its permissions",
            path.display()
        ))),
    }
}

fn url_evidence(source: &str, url: &str) -> Evidence {
    let dialect = Dialect::from_url(url);
    let finding = match dialect {
        Some(d) => format!("DATABASE_URL is a {} URL", d.display_name()),
        None => "DATABASE_URL has a scheme Sandkit does not support".to_owned(),
    };
    Evidence {
        source: source.to_owned(),
        finding,
        dialect,
        weight: if dialect.is_some() { URL_WEIGHT } else { 0.0 },
    }
}

/// `DATABASE_URL` from a dotenv file (quotes and `export` handled by dotenvy).
fn dotenv_database_url(path: &Path) -> Result<Option<String>> {
    let entries = dotenvy::from_path_iter(path).map_err(|e| {
        Error::storage(format!(
            "could not read {}: {e}; check its permissions",
            path.display()
        ))
    })?;
    // A malformed line ends the scan: the file is evidence, not configuration.
    Ok(entries
        .map_while(|entry| entry.ok())
        .find(|(key, _)| key == "DATABASE_URL")
        .map(|(_, value)| value))
}

/// Feature names that point to a dialect, per crate.
fn feature_dialect(krate: &str, feature: &str) -> Vec<Dialect> {
    match (krate, feature) {
        ("sea-orm" | "sea-orm-migration", "sqlx-sqlite" | "rusqlite") => vec![Dialect::Sqlite],
        ("sea-orm" | "sea-orm-migration", "sqlx-postgres") => vec![Dialect::Postgres],
        ("sea-orm" | "sea-orm-migration", "sqlx-mysql") => vec![Dialect::MySql],
        ("sea-orm" | "sea-orm-migration", "sqlx-all") => Dialect::ALL.to_vec(),
        ("sqlx", "sqlite" | "sqlite-unbundled") => vec![Dialect::Sqlite],
        ("sqlx", "postgres") => vec![Dialect::Postgres],
        ("sqlx", "mysql") => vec![Dialect::MySql],
        _ => Vec::new(),
    }
}

/// Driver crates that point to a dialect.
fn driver_dialect(krate: &str) -> Option<Dialect> {
    match krate {
        "rusqlite" | "libsqlite3-sys" => Some(Dialect::Sqlite),
        "tokio-postgres" | "postgres" | "deadpool-postgres" => Some(Dialect::Postgres),
        "mysql" | "mysql_async" => Some(Dialect::MySql),
        _ => None,
    }
}

/// The members of the workspace `doc` declares (directories relative to `dir` that hold
/// a `Cargo.toml`, `/`-separated, sorted): `members` with `*` and `?` globs expanded,
/// less `exclude`. None when `doc` declares no workspace.
///
/// # Errors
/// `Storage` when a directory a glob names cannot be listed.
pub fn workspace_members(dir: &Path, doc: &DocumentMut) -> Result<Vec<String>> {
    let strings = |key: &str| -> Vec<String> {
        doc.get("workspace")
            .and_then(|w| w.get(key))
            .and_then(Item::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let exclude = strings("exclude");
    let mut members = Vec::new();
    for pattern in strings("members") {
        for member in expand(dir, &pattern)? {
            let excluded = exclude
                .iter()
                .any(|e| member == *e || member.starts_with(&format!("{e}/")));
            if !member.is_empty()
                && !excluded
                && dir.join(&member).join("Cargo.toml").is_file()
                && !members.contains(&member)
            {
                members.push(member);
            }
        }
    }
    members.sort();
    Ok(members)
}

/// The relative paths under `dir` that `pattern` (`/`-separated, `*` and `?` within a
/// component) names.
fn expand(dir: &Path, pattern: &str) -> Result<Vec<String>> {
    let mut found = vec![String::new()];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for base in &found {
            let joined = |name: &str| {
                if base.is_empty() {
                    name.to_owned()
                } else {
                    format!("{base}/{name}")
                }
            };
            if !component.contains(['*', '?']) {
                next.push(joined(component));
                continue;
            }
            let listing = dir.join(base);
            let entries = match std::fs::read_dir(&listing) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::storage(format!(
                        "could not list {}: {e}; check its permissions",
                        listing.display()
                    )));
                }
            };
            let mut names: Vec<String> = entries
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.path().is_dir())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| wildcard(component, name))
                .collect();
            names.sort();
            next.extend(names.iter().map(|name| joined(name)));
        }
        found = next;
    }
    Ok(found)
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one).
fn wildcard(pattern: &str, name: &str) -> bool {
    fn matches(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => matches(&p[1..], n) || (!n.is_empty() && matches(p, &n[1..])),
            (Some('?'), Some(_)) => matches(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

/// What one manifest depends on.
#[derive(Debug, Clone, Copy, Default)]
struct Uses {
    /// sea-orm itself.
    seaorm: bool,
    /// sea-orm-migration.
    migration: bool,
}

/// Adds the evidence of one manifest; returns what of sea-orm it depends on.
fn cargo_evidence(label: &str, text: &str, evidence: &mut Vec<Evidence>) -> Uses {
    let Ok(doc) = text.parse::<DocumentMut>() else {
        evidence.push(Evidence {
            source: label.to_owned(),
            finding: "does not parse as TOML; ignored".to_owned(),
            dialect: None,
            weight: 0.0,
        });
        return Uses::default();
    };
    let mut uses = Uses::default();
    let mut tables: Vec<&Item> = ["dependencies", "dev-dependencies"]
        .iter()
        .filter_map(|key| doc.get(key))
        .collect();
    if let Some(deps) = doc.get("workspace").and_then(|w| w.get("dependencies")) {
        tables.push(deps);
    }
    for deps in tables {
        let Some(deps) = deps.as_table_like() else {
            continue;
        };
        for (name, spec) in deps.iter() {
            let krate = spec.get("package").and_then(Item::as_str).unwrap_or(name);
            if matches!(krate, "sea-orm" | "sea-orm-migration") {
                if krate == "sea-orm" {
                    uses.seaorm = true;
                } else {
                    uses.migration = true;
                }
                evidence.push(Evidence {
                    source: label.to_owned(),
                    finding: format!("depends on {krate}"),
                    dialect: None,
                    weight: 0.0,
                });
            }
            let features: Vec<&str> = spec
                .get("features")
                .and_then(Item::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            for feature in features {
                for dialect in feature_dialect(krate, feature) {
                    evidence.push(Evidence {
                        source: label.to_owned(),
                        finding: format!("{krate} feature {feature:?}"),
                        dialect: Some(dialect),
                        weight: FEATURE_WEIGHT,
                    });
                }
            }
            if let Some(dialect) = driver_dialect(krate) {
                evidence.push(Evidence {
                    source: label.to_owned(),
                    finding: format!("depends on {krate}"),
                    dialect: Some(dialect),
                    weight: DRIVER_WEIGHT,
                });
            }
        }
    }
    uses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_in_inline_and_dotted_tables_count() {
        let mut evidence = Vec::new();
        let uses = cargo_evidence(
            "Cargo.toml",
            r#"
[dependencies]
sea-orm = { version = "2", features = ["sqlx-postgres", "runtime-tokio-rustls"] }

[dependencies.db]
package = "sqlx"
features = ["postgres"]
"#,
            &mut evidence,
        );
        assert!(uses.seaorm && !uses.migration);
        let pointing: Vec<_> = evidence.iter().filter_map(|e| e.dialect).collect();
        assert_eq!(pointing, [Dialect::Postgres, Dialect::Postgres]);
    }

    #[test]
    fn wildcards_match_within_a_component() {
        assert!(wildcard("*", "app"));
        assert!(wildcard("db-*", "db-core"));
        assert!(!wildcard("db-*", "app"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
    }
}
