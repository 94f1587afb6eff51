//! Helpers: run the real `sandkit` binary in a temporary home.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

/// A temporary working directory whose `.sandkit` is the embedded default.
pub struct Home {
    pub dir: TempDir,
}

impl Home {
    pub fn new() -> Self {
        Home {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn sandkit_dir(&self) -> PathBuf {
        self.dir.path().join(".sandkit")
    }

    /// `sandkit` with the working directory here and no inherited configuration.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// The same as a plain `std::process::Command`, for spawning in the background.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("sandkit"));
        cmd.current_dir(self.path())
            .env_remove("SANDKIT_HOME")
            .env_remove("SANDKIT_DATABASE_URL")
            .env_remove("SANDKIT_PROVIDER")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs `sandkit args…` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run sandkit")
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}
