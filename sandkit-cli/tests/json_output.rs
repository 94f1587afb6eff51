//! `--json` output: one parseable document with the documented fields (snapshots with
//! ids and times redacted).

mod common;

use common::{Home, assert_code, stdout};
use serde_json::Value;

fn json(home: &Home, args: &[&str]) -> Value {
    let out = home.run(args);
    assert_code(&out, 0);
    serde_json::from_str(&stdout(&out)).expect("one JSON document")
}

#[test]
fn workspace_documents() {
    let home = Home::new();
    let created = json(
        &home,
        &[
            "--json",
            "workspace",
            "create",
            "--id",
            "agent-1",
            "--name",
            "Agent",
            "--policy",
            "allow-all",
            "--port",
            "3000",
        ],
    );
    insta::assert_json_snapshot!("workspace_create", created, {
        ".createdAt" => "[time]",
        ".updatedAt" => "[time]",
    });
    assert_code(
        &home.run(&["workspace", "set-policy", "agent-1", "allow-all"]),
        0,
    );
    assert_code(&home.run(&["run", "agent-1", "--", "true"]), 0);
    let shown = json(&home, &["--json", "workspace", "show", "agent-1"]);
    insta::assert_json_snapshot!("workspace_show", shown, {
        ".createdAt" => "[time]",
        ".updatedAt" => "[time]",
        ".head" => "[snapshot]",
    });
    let listed = json(&home, &["--json", "workspace", "list"]);
    insta::assert_json_snapshot!("workspace_list", listed, {
        ".workspaces[].createdAt" => "[time]",
        ".workspaces[].updatedAt" => "[time]",
        ".workspaces[].head" => "[snapshot]",
    });
}

#[test]
fn run_and_session_documents() {
    let home = Home::new();
    assert_code(
        &home.run(&["run", "w", "--env", "A=1", "--", "sh", "-c", "echo hi"]),
        0,
    );
    let runs = json(&home, &["--json", "runs", "w"]);
    insta::assert_json_snapshot!("runs", runs, {
        "[].id" => "[run]",
        "[].startedAt" => "[time]",
        "[].finishedAt" => "[time]",
        "[].sessionId" => "[session]",
        "[].snapshot.id" => "[snapshot]",
        "[].policySnapshotId" => "[policy]",
        "[].holder" => "[holder]",
    });
    let opened = json(&home, &["--json", "session", "open", "w"]);
    insta::assert_json_snapshot!("session_open", opened, {
        ".acquiredAt" => "[time]",
        ".expiresAt" => "[time]",
        ".remaining" => "[millis]",
        ".sessionId" => "[session]",
        ".holder" => "[holder]",
    });
    let status = json(&home, &["--json", "session", "status", "w"]);
    assert_eq!(status["lease"]["kind"], "session");
    assert_code(&home.run(&["session", "discard", "w"]), 0);
    let status = json(&home, &["--json", "session", "status", "w"]);
    assert_eq!(status["lease"], Value::Null);
}
