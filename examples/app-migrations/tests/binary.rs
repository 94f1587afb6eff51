//! The app's migration command migrates a fresh database and reports every migration
//! applied, Sandkit's generated one first.

use std::process::Command;

fn app(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sandkit-example-app-migrations"))
        .arg("--database")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run the app's migrations");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn up_applies_sandkits_migration_and_the_apps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let before = app(&url, &["status"]);
    assert_eq!(before.matches("Pending").count(), 3, "{before}");
    app(&url, &["up"]);
    let after = app(&url, &["status"]);
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(
        lines,
        [
            "m20260801_000001_sandkit_schema_v2 Applied",
            "m20270101_000001_create_projects Applied",
            "m20270201_000001_add_project_title Applied",
        ]
    );
}
