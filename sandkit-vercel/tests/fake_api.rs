//! The fake API itself, spoken to over plain HTTP: it enforces what the real service
//! enforces (auth, team, project, strict bodies) and answers in the contract's shapes.

use reqwest::{Client, Response};
use sandkit_vercel::fake::FakeVercel;
use serde_json::{Value, json};

struct Api {
    fake: FakeVercel,
    http: Client,
}

impl Api {
    async fn start() -> Api {
        Api {
            fake: FakeVercel::start().await,
            http: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}?teamId=team_abc", self.fake.uri())
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth("tok")
            .json(&body)
            .send()
            .await
            .expect("send")
    }

    async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth("tok")
            .send()
            .await
            .expect("send")
    }

    async fn create(&self) -> String {
        let answer: Value = self
            .post(
                "/v3/sandboxes",
                json!({"projectId": "prj_123", "ports": [3000], "timeout": 60000}),
            )
            .await
            .json()
            .await
            .expect("json");
        answer["session"]["id"].as_str().expect("id").to_owned()
    }
}

async fn error_code(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn auth_team_and_project_are_enforced() {
    let api = Api::start().await;
    let body = json!({"projectId": "prj_123"});
    let no_token = api
        .http
        .post(api.url("/v3/sandboxes"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(no_token.status(), 401);
    let wrong_team = api
        .http
        .post(format!("{}/v3/sandboxes?teamId=team_x", api.fake.uri()))
        .bearer_auth("tok")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(wrong_team).await, (403, "forbidden".into()));
    let no_project = api.post("/v3/sandboxes", json!({})).await;
    assert_eq!(no_project.status(), 400);
    let other_project = api
        .post("/v3/sandboxes", json!({"projectId": "prj_other"}))
        .await;
    assert_eq!(error_code(other_project).await, (404, "not_found".into()));
    assert_eq!(api.fake.requests().len(), 4);
}

#[tokio::test]
async fn bodies_are_validated_strictly() {
    let api = Api::start().await;
    for body in [
        json!({"projectId": "prj_123", "unknownField": 1}),
        json!({"projectId": "prj_123", "ports": [80]}),
        json!({"projectId": "prj_123", "ports": (3000..3016).collect::<Vec<u16>>()}),
        json!({"projectId": "prj_123", "timeout": 999}),
        json!({"projectId": "prj_123", "resources": {"vcpus": 3}}),
        json!({"projectId": "prj_123", "networkPolicy": {"mode": "open"}}),
        json!({"projectId": "prj_123", "source": {"type": "git", "url": "https://example.com/r.git"}}),
    ] {
        let (status, code) = error_code(api.post("/v3/sandboxes", body.clone()).await).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{body}");
    }
    let session = api.create().await;
    let cmd = format!("/v2/sandboxes/sessions/{session}/cmd");
    for body in [
        json!({"command": "ls", "bogus": true}),
        json!({"args": []}),
        json!({"command": "ls", "timeout": 50}),
    ] {
        assert_eq!(api.post(&cmd, body).await.status(), 400);
    }
    let extend = format!("/v2/sandboxes/sessions/{session}/extend-timeout");
    assert_eq!(
        api.post(&extend, json!({"duration": 10})).await.status(),
        400
    );
    let (status, code) = error_code(api.post(&extend, json!({"duration": 90_000_000})).await).await;
    assert_eq!((status, code.as_str()), (400, "sandbox_timeout_invalid"));
    let missing = api
        .post(
            "/v3/sandboxes",
            json!({"projectId": "prj_123", "source": {"type": "snapshot", "snapshotId": "snap_x"}}),
        )
        .await;
    assert_eq!(
        error_code(missing).await,
        (410, "snapshot_not_found".into())
    );
}

#[tokio::test]
async fn commands_stream_ndjson_and_snapshots_stop_the_session() {
    let api = Api::start().await;
    let session = api.create().await;
    let cmd = format!("/v2/sandboxes/sessions/{session}/cmd");
    let answer = api
        .post(
            &cmd,
            json!({"command": "sh", "args": ["-c", "echo hi; echo oops >&2; exit 3"],
                   "env": {}, "sudo": false, "wait": true, "logs": true}),
        )
        .await;
    assert_eq!(
        answer.headers()["content-type"].to_str().expect("ascii"),
        "application/x-ndjson"
    );
    let text = answer.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0]["command"]["exitCode"], Value::Null);
    assert_eq!(lines[1], json!({"stream": "stdout", "data": "hi\n"}));
    assert_eq!(lines[2], json!({"stream": "stderr", "data": "oops\n"}));
    assert_eq!(lines[3]["command"]["exitCode"], json!(3));
    assert_eq!(lines[3]["command"]["sessionId"], json!(session));

    // Detached: answers at once with exitCode null; logs hold what was produced so far.
    let started: Value = api
        .post(
            &cmd,
            json!({"command": "sh", "args": ["-c", "echo tick; sleep 60"]}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = started["command"]["id"].as_str().expect("id");
    assert_eq!(started["command"]["exitCode"], Value::Null);
    let logs = api
        .get(&format!("{cmd}/{id}/logs"))
        .await
        .text()
        .await
        .expect("logs");
    assert_eq!(logs, "{\"stream\":\"stdout\",\"data\":\"tick\\n\"}\n");
    let killed: Value = api
        .post(&format!("{cmd}/{id}/kill"), json!({"signal": 15}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(killed["command"]["exitCode"], json!(143));

    let snapshot = api
        .post(
            &format!("/v2/sandboxes/sessions/{session}/snapshot"),
            json!({}),
        )
        .await;
    assert_eq!(snapshot.status(), 201);
    let after = api.post(&cmd, json!({"command": "ls"})).await;
    assert_eq!(error_code(after).await, (410, "sandbox_stopped".into()));
    assert_eq!(api.fake.session_status(&session), Some("stopped"));
}
