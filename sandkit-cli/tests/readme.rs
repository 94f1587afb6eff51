//! The README quick start, executed verbatim.
//!
//! The commands between the `quickstart` markers of README.md run in `sh` in a fresh
//! directory. `cargo run -p sandkit-cli -- …` resolves to the binary under test (the
//! shim only replaces cargo's build step, which the test harness already did).

mod common;

use std::process::Command;

use common::Home;

fn quick_start_commands() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let begin = readme
        .find("<!-- quickstart:begin -->")
        .expect("README has a quickstart:begin marker");
    let end = readme
        .find("<!-- quickstart:end -->")
        .expect("README has a quickstart:end marker");
    readme[begin..end]
        .lines()
        .filter(|l| !l.starts_with("```") && !l.starts_with("<!--") && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_quick_start_works_verbatim() {
    let commands = quick_start_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(
        commands
            .iter()
            .all(|c| c.starts_with("cargo run -p sandkit-cli -- "))
    );
    let home = Home::new();
    let outputs = run_in(home.path(), &commands, &[]);
    assert_eq!(outputs[0], "hello\n");
    assert_eq!(outputs[1], "hello\nhello\n", "the workspace is durable");
    assert!(home.path().join(".sandkit").join("sandkit.db").exists());
}

/// The quick start as an unprivileged user (uid 65534 when the tests run as root),
/// then a deny-all run in the same workspace: sandboxes need no root.
#[test]
fn the_quick_start_and_deny_all_work_as_a_normal_user() {
    let mut commands = quick_start_commands();
    commands.push(
        "cargo run -p sandkit-cli -- run hello --policy deny-all -- sh -c \
         'cat greetings.txt; test -e /home || echo contained'"
            .to_owned(),
    );
    let home = Home::new();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let setpriv: &[&str] = if root {
        std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).expect("chown");
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else {
        &[]
    };
    let outputs = run_in(home.path(), &commands, setpriv);
    assert_eq!(outputs[1], "hello\nhello\n", "the workspace is durable");
    assert_eq!(outputs[2], "hello\nhello\ncontained\n");
}

/// Runs each quick-start line in `sh` in `dir` (through `wrapper`, e.g. `setpriv …`),
/// with `cargo run -p sandkit-cli --` resolving to the binary under test.
fn run_in(dir: &std::path::Path, commands: &[String], wrapper: &[&str]) -> Vec<String> {
    let binary = assert_cmd::cargo::cargo_bin("sandkit");
    let shim = r#"cargo() {
  if [ "$1" = run ] && [ "$2" = -p ] && [ "$3" = sandkit-cli ] && [ "$4" = -- ]; then
    shift 4; "$SANDKIT_BIN" "$@"
  else
    command cargo "$@"
  fi
}
"#;
    let mut outputs = Vec::new();
    for line in commands {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg("sh");
                cmd
            }
            None => Command::new("sh"),
        };
        let out = cmd
            .arg("-c")
            .arg(format!("{shim}{line}"))
            .current_dir(dir)
            .env("SANDKIT_BIN", &binary)
            .env_remove("SANDKIT_HOME")
            .env_remove("SANDKIT_DATABASE_URL")
            .env_remove("SANDKIT_PROVIDER")
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{line}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    outputs
}
