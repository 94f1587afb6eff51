//! Drives the `control-plane` binary over real HTTP: sessions are opened, attached,
//! extended, used, exposed, committed, repaired after their sandbox dies, and every
//! failure comes back as a status with a JSON body.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use sandkit_core::{Provider, SessionRef};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The service running as a child process on a free port.
struct Service {
    base: String,
    home: PathBuf,
    http: Client,
    _child: Child,
}

impl Service {
    async fn start(home: &Path) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandkit-example-control-plane"));
        for var in sandkit_example_support::ENV_VARS {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .arg("--home")
            .arg(home)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the service");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return url.to_owned();
                }
            }
            panic!("the service exited before listening");
        })
        .await
        .expect("the service listens within a minute");
        Service {
            base,
            home: home.to_path_buf(),
            http: Client::new(),
            _child: child,
        }
    }

    /// Sends a request; returns the status and the JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {text}"));
        (status, body)
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Asserts an error answer: status and `error.kind`; returns the message.
    async fn fails(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
        kind: &str,
    ) -> String {
        let (got, body) = self.call(method, path, body).await;
        assert_eq!(got.as_u16(), status, "{path}: {body}");
        assert_eq!(body["error"]["kind"], kind, "{path}: {body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    }

    async fn sh(&self, workspace: &str, script: &str) -> Value {
        self.ok(
            Method::POST,
            &format!("/workspaces/{workspace}/session/exec"),
            Some(json!({"command": "sh", "args": ["-c", script]})),
        )
        .await
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_per_workspace_is_opened_extended_exposed_committed_and_repaired() {
    let home = tempfile::tempdir().unwrap();
    let service = Service::start(home.path()).await;
    let port = free_port();

    let created = service
        .call(
            Method::POST,
            "/workspaces",
            Some(json!({"id": "agent-1", "name": "Agent 1", "ports": [port]})),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(created.1["state"], "cold");

    // Attach or open: the first call opens, the next ones attach to the same session.
    let opened = service
        .ok(
            Method::POST,
            "/workspaces/agent-1/session",
            Some(json!({"min_remaining_secs": 60})),
        )
        .await;
    assert_eq!(opened["action"], "opened", "{opened}");
    let first = opened["session_id"].as_str().unwrap().to_owned();
    let attached = service
        .ok(Method::POST, "/workspaces/agent-1/session", None)
        .await;
    assert_eq!(attached["action"], "attached");
    assert_eq!(attached["session_id"], first.as_str());
    assert!(attached["extended_by_ms"].is_null(), "{attached}");

    // Extend to a required minimum: asking for more time than is left extends the lease.
    let extended = service
        .ok(
            Method::POST,
            "/workspaces/agent-1/session",
            Some(json!({"min_remaining_secs": 7200})),
        )
        .await;
    assert_eq!(extended["action"], "attached");
    assert_eq!(extended["session_id"], first.as_str());
    assert!(
        extended["extended_by_ms"].as_u64().unwrap() > 0,
        "{extended}"
    );
    assert!(
        extended["remaining_ms"].as_u64().unwrap() >= 7_200_000,
        "{extended}"
    );

    // Commands run in the live session; a background server answers on the port's URL.
    let wrote = service
        .sh("agent-1", "echo kept > kept.txt && cat kept.txt")
        .await;
    assert_eq!(wrote["exit_code"], 0);
    assert_eq!(wrote["stdout"], "kept\n");
    let started = service
        .call(
            Method::POST,
            "/workspaces/agent-1/session/processes",
            Some(json!({
                "command": "python3",
                "args": ["-m", "http.server", port.to_string(), "--bind", "127.0.0.1"]
            })),
        )
        .await;
    assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    let url = service
        .ok(
            Method::GET,
            &format!("/workspaces/agent-1/session/url/{port}"),
            None,
        )
        .await;
    let url = url["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let served = loop {
        match reqwest::get(format!("{url}/kept.txt")).await {
            Ok(r) if r.status().is_success() => break r.text().await.unwrap(),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("nothing served on {url}: {other:?}"),
        }
    };
    assert_eq!(served, "kept\n");
    service
        .fails(
            Method::GET,
            "/workspaces/agent-1/session/url/1",
            None,
            400,
            "invalid_input",
        )
        .await;

    // Durable commands wait for the session to end: the workspace is busy meanwhile.
    let busy = service
        .fails(
            Method::POST,
            "/workspaces/agent-1/runs",
            Some(json!({"command": "true"})),
            409,
            "busy",
        )
        .await;
    assert!(busy.contains("a live session is open"), "{busy}");

    // Commit: the session's files become the workspace's head; the session is over.
    let committed = service
        .ok(Method::POST, "/workspaces/agent-1/session/commit", None)
        .await;
    assert!(committed["head"].is_string(), "{committed}");
    let none = service
        .fails(
            Method::POST,
            "/workspaces/agent-1/session/exec",
            Some(json!({"command": "true"})),
            409,
            "no_active_session",
        )
        .await;
    assert!(
        none.contains("open one with POST /workspaces/agent-1/session"),
        "{none}"
    );
    let listed = service.ok(Method::GET, "/workspaces", None).await;
    let agent = &listed["items"][0];
    assert_eq!(agent["id"], "agent-1");
    assert_eq!(agent["state"], "committed");
    assert_eq!(agent["head"], committed["head"]);
    assert!(agent["lease"].is_null());

    // A new session starts from the commit; lose its sandbox with uncommitted work.
    let reopened = service
        .ok(Method::POST, "/workspaces/agent-1/session", None)
        .await;
    assert_eq!(reopened["action"], "opened");
    let lost = reopened["session_id"].as_str().unwrap().to_owned();
    assert_ne!(lost, first);
    service.sh("agent-1", "echo uncommitted > lost.txt").await;
    let local = sandkit_local::LocalProvider::new(service.home.join("local")).unwrap();
    let sandbox = local
        .attach(&SessionRef {
            provider: "local".into(),
            id: lost.clone(),
        })
        .await
        .unwrap();
    sandbox.stop().await.unwrap();

    // Repair: the lease still named the lost sandbox; a new session opens from the
    // last commit, without the lost session's uncommitted file.
    let repaired = service
        .ok(Method::POST, "/workspaces/agent-1/session", None)
        .await;
    assert_eq!(repaired["action"], "repaired", "{repaired}");
    assert_ne!(repaired["session_id"], lost.as_str());
    let files = service
        .sh(
            "agent-1",
            "cat kept.txt; test -f lost.txt && echo lost.txt survived",
        )
        .await;
    assert_eq!(files["stdout"], "kept\n", "{files}");

    // Discard ends it without touching the head.
    service
        .ok(Method::DELETE, "/workspaces/agent-1/session", None)
        .await;
    let after = service.ok(Method::GET, "/workspaces", None).await;
    assert_eq!(after["items"][0]["head"], committed["head"]);
    assert_eq!(after["items"][0]["state"], "committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_and_failures_map_to_statuses_with_json_bodies() {
    let home = tempfile::tempdir().unwrap();
    let service = Service::start(home.path()).await;

    // 404: unknown workspaces.
    let message = service
        .fails(Method::GET, "/workspaces/nope/runs", None, 404, "not_found")
        .await;
    assert!(message.contains("Workspace not found: nope"), "{message}");
    service
        .fails(
            Method::POST,
            "/workspaces/nope/session",
            None,
            404,
            "not_found",
        )
        .await;
    service
        .ok(Method::POST, "/workspaces", Some(json!({"id": "w1"})))
        .await;

    // 400: invalid input, malformed bodies and parameters; 409: conflicts, and no
    // session to use.
    let cases = [
        (
            Method::POST,
            "/workspaces",
            Some(json!({"id": "not an id!"})),
            400,
            "invalid_input",
        ),
        (
            Method::POST,
            "/workspaces",
            Some(json!({"id": "w1"})),
            409,
            "already_exists",
        ),
        (
            Method::POST,
            "/workspaces/w1/runs",
            Some(json!({"command": ""})),
            400,
            "invalid_input",
        ),
        (
            Method::POST,
            "/workspaces/w1/runs",
            Some(json!({"cmd": "ls"})),
            400,
            "invalid_input",
        ),
        (
            Method::GET,
            "/workspaces/w1/runs?limit=abc",
            None,
            400,
            "invalid_input",
        ),
        (
            Method::GET,
            "/workspaces/w1/runs?limit=0",
            None,
            400,
            "invalid_input",
        ),
        (
            Method::POST,
            "/workspaces/w1/session",
            Some(json!({"min_remaining_secs": 0})),
            400,
            "invalid_input",
        ),
        (
            Method::GET,
            "/workspaces/w1/session/url/http",
            None,
            400,
            "invalid_input",
        ),
        (
            Method::POST,
            "/workspaces/w1/session/commit",
            None,
            409,
            "no_active_session",
        ),
    ];
    for (method, path, body, status, code) in cases {
        service.fails(method, path, body, status, code).await;
    }

    // Durable runs are journaled and listed newest first, a page at a time.
    for word in ["one", "two", "three"] {
        let out = service
            .ok(
                Method::POST,
                "/workspaces/w1/runs",
                Some(json!({"command": "sh", "args": ["-c", format!("echo {word} >> log.txt; cat log.txt")]})),
            )
            .await;
        assert_eq!(out["exit_code"], 0, "{out}");
        assert!(out["run_id"].is_string());
    }
    let failed = service
        .ok(
            Method::POST,
            "/workspaces/w1/runs",
            Some(json!({"command": "sh", "args": ["-c", "exit 3"]})),
        )
        .await;
    assert_eq!(
        failed["exit_code"], 3,
        "a non-zero exit is a result, not an error"
    );
    let page = service
        .ok(Method::GET, "/workspaces/w1/runs?limit=3", None)
        .await;
    let statuses: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "succeeded", "succeeded"]);
    assert_eq!(page["items"][0]["exit_code"], 3);
    assert_eq!(page["items"][0]["policy"], "allow-all");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let rest = service
        .ok(
            Method::GET,
            &format!("/workspaces/w1/runs?limit=3&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        rest["items"][0]["args"][1],
        "echo one >> log.txt; cat log.txt"
    );
    assert!(rest["next_cursor"].is_null());
}
