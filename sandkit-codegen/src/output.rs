//! Generated files: formatting Rust with rustfmt, and writing files without
//! clobbering local edits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sandkit_core::{Error, Result};

/// What a generated file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust source (formatted with rustfmt before it is written).
    Rust,
    /// SQL.
    Sql,
}

/// One generated file: a path relative to the output directory, and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Relative path (`/`-separated).
    pub path: String,
    /// Contents.
    pub contents: String,
    /// What it holds.
    pub language: Language,
}

impl GeneratedFile {
    /// A Rust source file.
    pub fn rust(path: impl Into<String>, contents: String) -> Self {
        GeneratedFile {
            path: path.into(),
            contents,
            language: Language::Rust,
        }
    }

    /// A SQL file.
    pub fn sql(path: impl Into<String>, contents: String) -> Self {
        GeneratedFile {
            path: path.into(),
            contents,
            language: Language::Sql,
        }
    }
}

/// Formats Rust source with `rustfmt` (edition 2024; `$RUSTFMT` overrides the binary).
///
/// # Errors
/// `Unsupported` when rustfmt is not installed, `InvalidInput` when it rejects the
/// source.
pub fn rustfmt(source: &str) -> Result<String> {
    let program = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_owned());
    let mut child = Command::new(&program)
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::unsupported(format!(
                "could not run {program} to format the generated Rust ({e}); install it with \
                 `rustup component add rustfmt` or set RUSTFMT"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(source.as_bytes())
            .map_err(|e| Error::storage(format!("writing to {program} failed: {e}; retry")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::storage(format!("{program} did not finish: {e}; retry")))?;
    if !output.status.success() {
        return Err(Error::invalid_input(format!(
            "{program} rejected the generated Rust: {}; this is a bug in sandkit-codegen",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout)
        .map_err(|e| Error::storage(format!("{program} printed invalid UTF-8: {e}")))
}

/// Formats every Rust file with [`rustfmt`].
///
/// # Errors
/// As [`rustfmt`].
pub fn format_files(files: &mut [GeneratedFile]) -> Result<()> {
    for file in files.iter_mut().filter(|f| f.language == Language::Rust) {
        file.contents = rustfmt(&file.contents)?;
    }
    Ok(())
}

/// What writing one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file did not exist and was written.
    Created(PathBuf),
    /// The file had other contents and was replaced (`force`).
    Replaced(PathBuf),
    /// The file already had these contents.
    UpToDate(PathBuf),
}

impl WriteOutcome {
    /// The file's path.
    pub fn path(&self) -> &Path {
        match self {
            WriteOutcome::Created(p) | WriteOutcome::Replaced(p) | WriteOutcome::UpToDate(p) => p,
        }
    }
}

/// Files under `root` whose contents differ from `files` (missing ones included).
///
/// # Errors
/// `Storage` when an existing file cannot be read.
pub fn differing(root: &Path, files: &[GeneratedFile]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for file in files {
        let path = root.join(&file.path);
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == file.contents => {}
            Ok(_) => out.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(path),
            Err(e) => {
                return Err(Error::storage(format!(
                    "could not read {}: {e}; check its permissions",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

/// Writes `files` under `root`, creating directories. A file that exists with other
/// contents is replaced only with `force`; without it nothing is written and the error
/// names every such file.
///
/// # Errors
/// `AlreadyExists` naming the files that differ (without `force`), `Storage` when a
/// file cannot be written.
pub fn write_files(root: &Path, files: &[GeneratedFile], force: bool) -> Result<Vec<WriteOutcome>> {
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for file in files {
        let path = root.join(&file.path);
        let existing = match std::fs::read_to_string(&path) {
            Ok(existing) => Some(existing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::storage(format!(
                    "could not read {}: {e}; check its permissions",
                    path.display()
                )));
            }
        };
        match existing {
            Some(text) if text == file.contents => plan.push((WriteOutcome::UpToDate(path), file)),
            Some(_) if !force => conflicts.push(path.display().to_string()),
            Some(_) => plan.push((WriteOutcome::Replaced(path), file)),
            None => plan.push((WriteOutcome::Created(path), file)),
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::already_exists(format!(
            "{} already exist{} with other contents: {}; nothing was written. Re-run with \
             --force to replace {}, or --out to write elsewhere",
            if conflicts.len() == 1 {
                "a file"
            } else {
                "files"
            },
            if conflicts.len() == 1 { "s" } else { "" },
            conflicts.join(", "),
            if conflicts.len() == 1 { "it" } else { "them" },
        )));
    }
    let mut outcomes = Vec::new();
    for (outcome, file) in plan {
        if !matches!(outcome, WriteOutcome::UpToDate(_)) {
            let path = outcome.path();
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::storage(format!(
                        "could not create {}: {e}; check the path and its permissions",
                        parent.display()
                    ))
                })?;
            }
            std::fs::write(path, &file.contents).map_err(|e| {
                Error::storage(format!(
                    "could not write {}: {e}; check the path and its permissions",
                    path.display()
                ))
            })?;
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_files_are_kept_unless_forced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = vec![
            GeneratedFile::sql("a.sql", "one".into()),
            GeneratedFile::sql("sub/b.sql", "two".into()),
        ];
        let first = write_files(dir.path(), &files, false).expect("write");
        assert!(matches!(first[1], WriteOutcome::Created(_)));
        let again = write_files(dir.path(), &files, false).expect("write");
        assert!(again.iter().all(|o| matches!(o, WriteOutcome::UpToDate(_))));

        std::fs::write(dir.path().join("a.sql"), "edited").expect("edit");
        let err = write_files(dir.path(), &files, false).expect_err("refused");
        assert_eq!(err.kind(), &sandkit_core::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("a.sql") && err.to_string().contains("--force"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.sql")).expect("read"),
            "edited"
        );
        assert_eq!(
            differing(dir.path(), &files).expect("diff"),
            [dir.path().join("a.sql")]
        );

        let forced = write_files(dir.path(), &files, true).expect("forced");
        assert!(matches!(forced[0], WriteOutcome::Replaced(_)));
        assert!(differing(dir.path(), &files).expect("diff").is_empty());
    }
}
