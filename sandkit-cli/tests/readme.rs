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
    for line in &commands {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{shim}{line}"))
            .current_dir(home.path())
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
    assert_eq!(outputs[0], "hello\n");
    assert_eq!(outputs[1], "hello\nhello\n", "the workspace is durable");
    assert!(home.path().join(".sandkit").join("sandkit.db").exists());
}
