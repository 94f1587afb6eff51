//! The fake service's in-memory model: sandboxes, sessions, commands, snapshots.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::checks::{self, CREATE_FIELDS, RUN_FIELDS};
use super::reply::Reply;
use super::shell::{Fs, Process};

/// Working directory of a fresh session.
pub(crate) const CWD: &str = "/vercel/sandbox";
/// Default session timeout (5 minutes).
const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Longest session lifetime (Pro plan).
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Default snapshot expiry (30 days).
const DEFAULT_SNAPSHOT_EXPIRATION_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Longest a `GET …/cmd/{id}?wait=true` is held before answering "still running".
const WAIT_SLICE: Duration = Duration::from_millis(250);

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Session status (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    Stopping,
    Snapshotting,
    Stopped,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Snapshotting => "snapshotting",
            Status::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
struct CommandRec {
    id: String,
    name: String,
    args: Vec<String>,
    cwd: String,
    started_ms: u64,
    process: Process,
}

impl CommandRec {
    fn json(&self, session: &str, finished: bool) -> Value {
        let mut c = json!({
            "id": self.id, "name": self.name, "args": self.args, "cwd": self.cwd,
            "sessionId": session, "exitCode": Value::Null, "startedAt": self.started_ms,
        });
        if let Some(code) = self.process.exit_code().filter(|_| finished) {
            c["exitCode"] = json!(code);
            c["durationMs"] = json!(self.process.duration_ms().unwrap_or(0));
        }
        c
    }

    fn log_lines(&self) -> Vec<Value> {
        self.process
            .output
            .iter()
            .map(|(stderr, data)| {
                json!({"stream": if *stderr { "stderr" } else { "stdout" }, "data": data})
            })
            .collect()
    }
}

#[derive(Debug)]
pub(crate) struct SessionRec {
    id: String,
    sandbox: String,
    pub(crate) status: Status,
    created_ms: u64,
    started_ms: u64,
    updated_ms: u64,
    pub(crate) timeout_ms: u64,
    stopped_ms: Option<u64>,
    snapshotted_ms: Option<u64>,
    vcpus: u64,
    region: String,
    env: BTreeMap<String, String>,
    /// The network policy exactly as the client sent it (request form).
    pub(crate) policy: Value,
    routes: Vec<(u16, String)>,
    pub(crate) fs: Fs,
    commands: Vec<CommandRec>,
    settle_until: Option<Instant>,
    source_snapshot: Option<String>,
}

impl SessionRec {
    /// Brings the session up to `now`: finishes a stop/snapshot in progress, expires it
    /// at its timeout, and runs its processes' due steps.
    fn observe(&mut self, now: Instant, now_ms: u64) {
        if self.settle_until.is_some_and(|until| now >= until) {
            self.settle_until = None;
            self.status = Status::Stopped;
            self.stopped_ms = Some(now_ms);
        }
        if self.status == Status::Running
            && now_ms >= self.started_ms.saturating_add(self.timeout_ms)
        {
            self.halt(now, now_ms);
        }
        if self.status == Status::Running {
            for c in &mut self.commands {
                c.process.advance(Some(now), &mut self.fs);
            }
        }
    }

    /// Ends every process and stops the VM now.
    fn halt(&mut self, now: Instant, now_ms: u64) {
        for c in &mut self.commands {
            c.process.kill(now, 9, &mut self.fs);
        }
        self.status = Status::Stopped;
        self.stopped_ms = Some(now_ms);
    }

    /// 410 when stopped, 422 while stopping or snapshotting.
    fn check_live(&self) -> Result<(), Reply> {
        match self.status {
            Status::Running => Ok(()),
            Status::Stopping => Err(Reply::error(
                422,
                "sandbox_stopping",
                "The sandbox is stopping and cannot accept requests.",
            )),
            Status::Snapshotting => Err(Reply::error(
                422,
                "sandbox_snapshotting",
                "The sandbox is creating a snapshot and will be stopped shortly.",
            )),
            Status::Stopped => Err(Reply::error(410, "sandbox_stopped", "Sandbox is stopped")),
        }
    }

    fn json(&self) -> Value {
        let mut s = json!({
            "id": self.id, "memory": self.vcpus * 2048, "vcpus": self.vcpus, "region": self.region,
            "runtime": "node24", "timeout": self.timeout_ms, "status": self.status.as_str(),
            "requestedAt": self.created_ms, "startedAt": self.started_ms,
            "createdAt": self.created_ms, "updatedAt": self.updated_ms, "cwd": CWD,
            "networkPolicy": checks::response_policy(&self.policy),
            "sourceSandboxName": self.sandbox,
        });
        if let Some(snap) = &self.source_snapshot {
            s["sourceSnapshotId"] = json!(snap);
        }
        if let Some(at) = self.stopped_ms {
            s["stoppedAt"] = json!(at);
            s["duration"] = json!(at.saturating_sub(self.started_ms));
        }
        if let Some(at) = self.snapshotted_ms {
            s["snapshottedAt"] = json!(at);
        }
        s
    }

    fn routes_json(&self) -> Value {
        Value::Array(
            self.routes
                .iter()
                .map(|(port, sub)| {
                    json!({"url": format!("https://{sub}.vercel.run"), "subdomain": sub, "port": port})
                })
                .collect(),
        )
    }

    fn command_mut(&mut self, id: &str) -> Result<&mut CommandRec, Reply> {
        self.commands
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| Reply::not_found(format!("Command not found: {id}")))
    }
}

#[derive(Debug)]
struct SandboxRec {
    name: String,
    created_ms: u64,
    current_session: String,
    current_snapshot: Option<String>,
    tags: Map<String, Value>,
    persistent: bool,
}

#[derive(Debug)]
pub(crate) struct SnapshotRec {
    id: String,
    pub(crate) source_session: String,
    region: String,
    created_ms: u64,
    last_used_ms: u64,
    expires_ms: Option<u64>,
    deleted: bool,
    parent: Option<String>,
    pub(crate) fs: Fs,
}

impl SnapshotRec {
    fn usable(&self, now_ms: u64) -> bool {
        !self.deleted && self.expires_ms.is_none_or(|e| e > now_ms)
    }

    fn json(&self, now_ms: u64) -> Value {
        let mut s = json!({
            "id": self.id, "sourceSessionId": self.source_session, "region": self.region,
            "regions": [self.region], "status": if self.usable(now_ms) { "created" } else { "deleted" },
            "sizeBytes": self.fs.size(), "createdAt": self.created_ms, "updatedAt": self.created_ms,
            "lastUsedAt": self.last_used_ms, "creationMethod": "manual",
        });
        if let Some(at) = self.expires_ms {
            s["expiresAt"] = json!(at);
        }
        if let Some(parent) = &self.parent {
            s["parentId"] = json!(parent);
        }
        s
    }
}

/// Service-wide state.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) project_id: String,
    next_id: u64,
    sandboxes: BTreeMap<String, SandboxRec>,
    pub(crate) sessions: BTreeMap<String, SessionRec>,
    pub(crate) snapshots: BTreeMap<String, SnapshotRec>,
    pub(crate) snapshot_delay: Duration,
    pub(crate) stop_delay: Duration,
}

fn bad(message: String) -> Reply {
    Reply::bad_request(message)
}

impl Model {
    /// An empty service for `project_id`.
    pub(crate) fn new(project_id: &str) -> Self {
        Model {
            project_id: project_id.to_owned(),
            ..Model::default()
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    /// The session `id`, brought up to now.
    fn session(&mut self, id: &str) -> Result<&mut SessionRec, Reply> {
        let session = self
            .sessions
            .get_mut(id)
            .ok_or_else(|| Reply::not_found(format!("Sandbox session not found: {id}")))?;
        session.observe(Instant::now(), now_ms());
        Ok(session)
    }

    /// A session that must be running.
    fn live_session(&mut self, id: &str) -> Result<&mut SessionRec, Reply> {
        let session = self.session(id)?;
        session.check_live()?;
        Ok(session)
    }

    /// `POST /v3/sandboxes`.
    pub(crate) fn create(&mut self, body: Option<&Value>) -> Result<Reply, Reply> {
        let body = checks::object(body).map_err(bad)?;
        checks::known_fields(&body, CREATE_FIELDS, true).map_err(bad)?;
        match checks::string(&body, "projectId").map_err(bad)? {
            None => return Err(bad("Invalid request: `projectId` is required.".into())),
            Some(p) if p != self.project_id => {
                return Err(Reply::not_found(format!("Project not found: {p}")));
            }
            Some(_) => {}
        }
        let ports = checks::ports(&body).map_err(bad)?;
        let timeout_ms = checks::uint(&body, "timeout")
            .map_err(bad)?
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1000..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(bad(
                "Invalid request: `timeout` should be from 1000 to 86400000.".into(),
            ));
        }
        let vcpus = match body.get("resources") {
            None => 2,
            Some(r) => {
                let r = r.as_object().ok_or_else(|| {
                    bad("Invalid request: `resources` should be an object.".into())
                })?;
                checks::known_fields(r, &["vcpus", "memory"], false).map_err(bad)?;
                let n = checks::uint(r, "vcpus").map_err(bad)?.unwrap_or(2);
                if n == 0 || n > 32 || (n != 1 && n % 2 != 0) {
                    return Err(bad(
                        "Invalid request: `resources.vcpus` should be 1 or an even number up to 32."
                            .into(),
                    ));
                }
                n
            }
        };
        let persistent = checks::boolean(&body, "persistent")
            .map_err(bad)?
            .unwrap_or(true);
        let policy = body
            .get("networkPolicy")
            .cloned()
            .unwrap_or_else(|| json!({"mode": "allow-all"}));
        checks::network_policy(&policy).map_err(bad)?;
        let env: BTreeMap<String, String> = checks::string_map(&body, "env")
            .map_err(bad)?
            .into_iter()
            .collect();
        let tags = match body.get("tags") {
            None => Map::new(),
            Some(Value::Object(t)) if t.len() <= 5 => {
                if t.values().any(|v| v.as_str().is_none_or(|s| s.len() > 256)) {
                    return Err(bad(
                        "Invalid request: tag values should be strings of at most 256 characters."
                            .into(),
                    ));
                }
                t.clone()
            }
            Some(_) => {
                return Err(bad(
                    "Invalid request: `tags` should be an object with at most 5 entries.".into(),
                ));
            }
        };
        let region = checks::string(&body, "region")
            .map_err(bad)?
            .unwrap_or("iad1")
            .to_owned();
        if checks::strings(&body, "failoverRegions")
            .map_err(bad)?
            .contains(&region)
        {
            return Err(bad(format!(
                "failoverRegions must not include the sandbox region: {region}"
            )));
        }
        let now_ms = now_ms();
        let (fs, source_snapshot) = match body.get("source") {
            None => (Fs::default(), None),
            Some(source) => {
                let snap_id = match (source["type"].as_str(), source["snapshotId"].as_str()) {
                    (Some("snapshot"), Some(id)) => id,
                    (Some("git" | "tarball"), _) => {
                        return Err(bad(
                            "the fake Vercel API supports only snapshot sources".into()
                        ));
                    }
                    _ => return Err(bad("Invalid request: `source` is malformed.".into())),
                };
                match self.snapshots.get_mut(snap_id) {
                    Some(snap) if snap.usable(now_ms) => {
                        snap.last_used_ms = now_ms;
                        (snap.fs.clone(), Some(snap_id.to_owned()))
                    }
                    _ => {
                        return Err(Reply::error(
                            410,
                            "snapshot_not_found",
                            format!("Snapshot not found: {snap_id}"),
                        ));
                    }
                }
            }
        };
        let name = match checks::string(&body, "name").map_err(bad)? {
            Some(n) => {
                if self.sandboxes.contains_key(n) {
                    return Err(bad(format!(
                        "A sandbox with the name '{n}' already exists for this project."
                    )));
                }
                n.to_owned()
            }
            None => self.id("sandbox").replace('_', "-"),
        };
        let session_id = self.id("sbx");
        let routes = ports
            .iter()
            .map(|p| (*p, format!("{}-{p}", session_id.replace('_', "-"))))
            .collect();
        let mut fs = fs;
        fs.dirs.insert(CWD.to_owned());
        let session = SessionRec {
            id: session_id.clone(),
            sandbox: name.clone(),
            status: Status::Running,
            created_ms: now_ms,
            started_ms: now_ms,
            updated_ms: now_ms,
            timeout_ms,
            stopped_ms: None,
            snapshotted_ms: None,
            vcpus,
            region: region.clone(),
            env,
            policy,
            routes,
            fs,
            commands: Vec::new(),
            settle_until: None,
            source_snapshot: source_snapshot.clone(),
        };
        let sandbox = SandboxRec {
            name: name.clone(),
            created_ms: now_ms,
            current_session: session_id.clone(),
            current_snapshot: source_snapshot,
            tags,
            persistent,
        };
        let reply = json!({
            "sandbox": self.sandbox_json(&sandbox, &session),
            "session": session.json(),
            "routes": session.routes_json(),
            "resumed": false,
        });
        self.sandboxes.insert(name, sandbox);
        self.sessions.insert(session_id, session);
        Ok(Reply::ok(reply))
    }

    fn sandbox_json(&self, sandbox: &SandboxRec, session: &SessionRec) -> Value {
        let mut s = json!({
            "name": sandbox.name, "persistent": sandbox.persistent, "region": session.region,
            "vcpus": session.vcpus, "memory": session.vcpus * 2048, "timeout": session.timeout_ms,
            "networkPolicy": checks::response_policy(&session.policy),
            "createdAt": sandbox.created_ms, "updatedAt": session.updated_ms,
            "statusUpdatedAt": session.updated_ms, "currentSessionId": sandbox.current_session,
            "status": session.status.as_str(), "cwd": CWD, "tags": sandbox.tags,
            "snapshotExpiration": DEFAULT_SNAPSHOT_EXPIRATION_MS,
        });
        if let Some(snap) = &sandbox.current_snapshot {
            s["currentSnapshotId"] = json!(snap);
        }
        if session.status == Status::Running {
            s["expiresAt"] = json!(session.started_ms + session.timeout_ms);
        }
        s
    }

    /// `GET /v2/sandboxes/{name}` (§5.2, without `resume`): the sandbox and its
    /// current session.
    pub(crate) fn get_sandbox(
        &mut self,
        name: &str,
        query: &[(String, String)],
    ) -> Result<Reply, Reply> {
        let project = query
            .iter()
            .find(|(k, _)| k == "projectId")
            .map(|(_, v)| v.as_str());
        if project != Some(self.project_id.as_str()) {
            return Err(bad(format!(
                "Invalid request: query `projectId` must be the project id {}.",
                self.project_id
            )));
        }
        let Some(current) = self.sandboxes.get(name).map(|s| s.current_session.clone()) else {
            return Err(Reply::not_found(format!("Sandbox not found: {name}")));
        };
        let session = self.session(&current)?;
        let session_json = session.json();
        let routes = session.routes_json();
        let sandbox = &self.sandboxes[name];
        let session = &self.sessions[&current];
        Ok(Reply::ok(json!({
            "sandbox": self.sandbox_json(sandbox, session),
            "session": session_json,
            "routes": routes,
            "resumed": false,
        })))
    }

    /// `GET /v2/sandboxes/sessions/{id}`.
    pub(crate) fn get_session(&mut self, id: &str) -> Result<Reply, Reply> {
        let session = self.session(id)?;
        Ok(Reply::ok(
            json!({"session": session.json(), "routes": session.routes_json()}),
        ))
    }

    /// `POST /v2/sandboxes/sessions/{id}/cmd`.
    pub(crate) fn run_command(&mut self, id: &str, body: Option<&Value>) -> Result<Reply, Reply> {
        let body = checks::object(body).map_err(bad)?;
        checks::known_fields(&body, RUN_FIELDS, false).map_err(bad)?;
        let command = match checks::string(&body, "command").map_err(bad)? {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => return Err(bad("Invalid request: `command` is required.".into())),
        };
        let args = checks::strings(&body, "args").map_err(bad)?;
        let cwd = checks::string(&body, "cwd")
            .map_err(bad)?
            .map(str::to_owned);
        let env = checks::string_map(&body, "env").map_err(bad)?;
        checks::boolean(&body, "sudo").map_err(bad)?;
        let wait = checks::boolean(&body, "wait")
            .map_err(bad)?
            .unwrap_or(false);
        let logs = checks::boolean(&body, "logs")
            .map_err(bad)?
            .unwrap_or(false);
        let timeout = checks::uint(&body, "timeout").map_err(bad)?;
        if timeout.is_some_and(|t| t < 100) {
            return Err(bad(
                "Invalid request: `timeout` should be at least 100.".into()
            ));
        }
        let cmd_id = self.id("cmd");
        let session = self.live_session(id)?;
        let cwd = super::shell::resolve(CWD, cwd.as_deref().unwrap_or(CWD));
        let mut full_env = session.env.clone();
        full_env.extend(env);
        let now = Instant::now();
        let mut process = Process::new(
            &command,
            &args,
            cwd.clone(),
            full_env,
            now,
            timeout.map(Duration::from_millis),
        );
        process.advance(if wait { None } else { Some(now) }, &mut session.fs);
        let rec = CommandRec {
            id: cmd_id,
            name: command,
            args,
            cwd,
            started_ms: now_ms(),
            process,
        };
        let reply = if wait {
            let mut lines = vec![json!({"command": rec.json(id, false)})];
            if logs {
                lines.extend(rec.log_lines());
            }
            lines.push(json!({"command": rec.json(id, true)}));
            let end = rec.process.finished_at().unwrap_or(now);
            Reply::ndjson(lines).delayed(end.saturating_duration_since(now))
        } else {
            Reply::ok(json!({"command": rec.json(id, false)}))
        };
        session.commands.push(rec);
        Ok(reply)
    }

    /// `GET /v2/sandboxes/sessions/{id}/cmd`, newest first.
    pub(crate) fn list_commands(&mut self, id: &str) -> Result<Reply, Reply> {
        let session = self.live_session(id)?;
        let commands: Vec<Value> = session
            .commands
            .iter()
            .rev()
            .map(|c| c.json(id, true))
            .collect();
        Ok(Reply::ok(json!({ "commands": commands })))
    }

    /// `GET /v2/sandboxes/sessions/{id}/cmd/{cmd}` (`wait=true` holds while it runs).
    pub(crate) fn get_command(&mut self, id: &str, cmd: &str, wait: bool) -> Result<Reply, Reply> {
        let session = self.live_session(id)?;
        let rec = session.command_mut(cmd)?;
        let reply = Reply::ok(json!({"command": rec.json(id, true)}));
        if !wait || rec.process.exit_code().is_some() {
            return Ok(reply);
        }
        // Hold the long poll for a slice; the client asks again while it still runs.
        Ok(reply.delayed(WAIT_SLICE))
    }

    /// `GET /v2/sandboxes/sessions/{id}/cmd/{cmd}/logs`: the output so far.
    pub(crate) fn command_logs(&mut self, id: &str, cmd: &str) -> Result<Reply, Reply> {
        let session = self.live_session(id)?;
        let rec = session.command_mut(cmd)?;
        Ok(Reply::ndjson(rec.log_lines()))
    }

    /// `POST /v2/sandboxes/sessions/{id}/cmd/{cmd}/kill`.
    pub(crate) fn kill(
        &mut self,
        id: &str,
        cmd: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Reply> {
        let body = checks::object(body).map_err(bad)?;
        checks::known_fields(&body, &["signal"], false).map_err(bad)?;
        let signal = checks::uint(&body, "signal")
            .map_err(bad)?
            .filter(|s| (1..=64).contains(s))
            .ok_or_else(|| {
                bad("Invalid request: `signal` should be an integer from 1 to 64.".into())
            })?;
        let session = self.live_session(id)?;
        let SessionRec { commands, fs, .. } = session;
        let rec = commands
            .iter_mut()
            .find(|c| c.id == cmd)
            .ok_or_else(|| Reply::not_found(format!("Command not found: {cmd}")))?;
        let signal = i32::try_from(signal).unwrap_or(15);
        if signal != 18 {
            rec.process.kill(Instant::now(), signal, fs);
        }
        Ok(Reply::ok(json!({"command": rec.json(id, true)})))
    }

    /// `POST /v2/sandboxes/sessions/{id}/network-policy` (full replacement).
    pub(crate) fn set_policy(&mut self, id: &str, body: Option<&Value>) -> Result<Reply, Reply> {
        let policy = body.cloned().unwrap_or(Value::Null);
        checks::network_policy(&policy).map_err(bad)?;
        let session = self.live_session(id)?;
        session.policy = policy;
        session.updated_ms = now_ms();
        Ok(Reply::ok(json!({"session": session.json()})))
    }

    /// `POST /v2/sandboxes/sessions/{id}/extend-timeout`.
    pub(crate) fn extend(&mut self, id: &str, body: Option<&Value>) -> Result<Reply, Reply> {
        let body = checks::object(body).map_err(bad)?;
        checks::known_fields(&body, &["duration"], false).map_err(bad)?;
        let duration = checks::uint(&body, "duration")
            .map_err(bad)?
            .filter(|d| *d >= 1000)
            .ok_or_else(|| bad("Invalid request: `duration` should be at least 1000.".into()))?;
        let session = self.live_session(id)?;
        let timeout = session.timeout_ms.saturating_add(duration);
        if timeout > MAX_TIMEOUT_MS {
            return Err(Reply::error(
                400,
                "sandbox_timeout_invalid",
                "The requested timeout exceeds the maximum allowed.",
            ));
        }
        session.timeout_ms = timeout;
        session.updated_ms = now_ms();
        Ok(Reply::ok(json!({"session": session.json()})))
    }

    /// `POST /v2/sandboxes/sessions/{id}/stop` (blocking; unchanged when stopped).
    pub(crate) fn stop(&mut self, id: &str, body: Option<&Value>) -> Result<Reply, Reply> {
        let body = checks::object(body).map_err(bad)?;
        checks::known_fields(&body, &[], false).map_err(bad)?;
        let delay = self.stop_delay;
        let session = self.session(id)?;
        if session.status == Status::Running {
            let now = Instant::now();
            session.halt(now, now_ms());
            if !delay.is_zero() {
                session.status = Status::Stopping;
                session.stopped_ms = None;
                session.settle_until = Some(now + delay);
            }
        }
        let mut shown = session.json();
        shown["status"] = json!("stopped");
        let sandbox_name = session.sandbox.clone();
        let mut reply = json!({ "session": shown });
        if let (Some(sandbox), Some(session)) =
            (self.sandboxes.get(&sandbox_name), self.sessions.get(id))
        {
            reply["sandbox"] = self.sandbox_json(sandbox, session);
        }
        Ok(Reply::ok(reply).delayed(delay))
    }

    /// `POST /v2/sandboxes/sessions/{id}/snapshot`: 201, and the session stops.
    pub(crate) fn snapshot(&mut self, id: &str, body: Option<&Value>) -> Result<Reply, Reply> {
        let body = checks::object(body).map_err(bad)?;
        checks::known_fields(&body, &["expiration"], false).map_err(bad)?;
        let expiration = checks::uint(&body, "expiration")
            .map_err(bad)?
            .unwrap_or(DEFAULT_SNAPSHOT_EXPIRATION_MS);
        let snap_id = self.id("snap");
        let delay = self.snapshot_delay;
        let session = self.live_session(id)?;
        let now = Instant::now();
        let at = now_ms();
        session.halt(now, at);
        session.snapshotted_ms = Some(at);
        if !delay.is_zero() {
            session.status = Status::Snapshotting;
            session.stopped_ms = None;
            session.settle_until = Some(now + delay);
        }
        let snapshot = SnapshotRec {
            id: snap_id.clone(),
            source_session: id.to_owned(),
            region: session.region.clone(),
            created_ms: at,
            last_used_ms: at,
            expires_ms: (expiration > 0).then(|| at.saturating_add(expiration)),
            deleted: false,
            parent: session.source_snapshot.clone(),
            fs: session.fs.clone(),
        };
        let mut shown = session.json();
        shown["status"] = json!("stopped");
        shown["stoppedAt"] = json!(at);
        let sandbox_name = session.sandbox.clone();
        if let Some(sandbox) = self.sandboxes.get_mut(&sandbox_name) {
            sandbox.current_snapshot = Some(snap_id.clone());
        }
        let reply = json!({"snapshot": snapshot.json(at), "session": shown});
        self.snapshots.insert(snap_id, snapshot);
        Ok(Reply::json(201, reply).delayed(delay))
    }

    /// `GET /v2/sandboxes/snapshots` (§5.22): the project's snapshots, deleted ones
    /// included, by creation (`sortOrder`, default `desc`), `limit` (1–50, default 20)
    /// per page; `cursor` is the `next` of the previous page.
    pub(crate) fn list_snapshots(&self, query: &[(String, String)]) -> Result<Reply, Reply> {
        let param = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if param("project") != Some(self.project_id.as_str()) {
            return Err(bad(format!(
                "Invalid request: query `project` must be the project id {}.",
                self.project_id
            )));
        }
        let limit = match param("limit").map(str::parse::<usize>) {
            None => 20,
            Some(Ok(n)) if (1..=50).contains(&n) => n,
            Some(_) => return Err(bad("Invalid request: `limit` must be 1–50.".to_owned())),
        };
        let start = match param("cursor").map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => return Err(bad("Invalid request: unknown `cursor`.".to_owned())),
        };
        let mut all: Vec<&SnapshotRec> = self.snapshots.values().collect();
        all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        if param("sortOrder") != Some("asc") {
            all.reverse();
        }
        let now = now_ms();
        let page: Vec<Value> = all
            .iter()
            .skip(start)
            .take(limit)
            .map(|s| s.json(now))
            .collect();
        let next = (start + limit < all.len()).then(|| (start + limit).to_string());
        Ok(Reply::ok(json!({
            "snapshots": page,
            "pagination": {"count": page.len(), "next": next},
        })))
    }

    /// `GET /v2/sandboxes/snapshots/{id}`.
    pub(crate) fn get_snapshot(&self, id: &str) -> Result<Reply, Reply> {
        match self.snapshots.get(id) {
            Some(snap) => Ok(Reply::ok(json!({"snapshot": snap.json(now_ms())}))),
            None => Err(Reply::not_found(format!("Snapshot not found: {id}"))),
        }
    }

    /// `DELETE /v2/sandboxes/snapshots/{id}`: 404 when unknown or already deleted.
    pub(crate) fn delete_snapshot(&mut self, id: &str) -> Result<Reply, Reply> {
        match self.snapshots.get_mut(id) {
            Some(snap) if !snap.deleted => {
                snap.deleted = true;
                snap.fs = Fs::default();
                Ok(Reply::ok(json!({"snapshot": snap.json(now_ms())})))
            }
            _ => Err(Reply::not_found(format!("Snapshot not found: {id}"))),
        }
    }

    /// Makes a snapshot unusable as if it expired now. Returns whether it existed.
    pub(crate) fn expire_snapshot(&mut self, id: &str) -> bool {
        let at = now_ms();
        match self.snapshots.get_mut(id) {
            Some(snap) => {
                snap.expires_ms = Some(at.saturating_sub(1));
                true
            }
            None => false,
        }
    }

    /// A session's status after bringing it up to now.
    pub(crate) fn session_status(&mut self, id: &str) -> Option<Status> {
        self.session(id).ok().map(|s| s.status)
    }
}
