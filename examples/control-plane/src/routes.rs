//! The HTTP API: workspaces, their durable runs, and one live session each.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /workspaces?cursor=&limit=` | lists workspaces |
//! | `POST /workspaces` `{"id", "name"?, "ports"?}` | creates a workspace (201) |
//! | `GET /workspaces/{id}/runs?cursor=&limit=` | lists its durable runs, newest first |
//! | `POST /workspaces/{id}/runs` `{"command", "args"?, "cwd"?}` | runs a durable command |
//! | `POST /workspaces/{id}/session` `{"min_remaining_secs"?}` | attach or open, extend, repair |
//! | `DELETE /workspaces/{id}/session` | discards the session (head unchanged) |
//! | `POST /workspaces/{id}/session/exec` `{"command", "args"?, "cwd"?}` | runs a command in the session |
//! | `POST /workspaces/{id}/session/processes` `{"command", "args"?, "cwd"?}` | starts a background process |
//! | `GET /workspaces/{id}/session/url/{port}` | the session's URL for an exposed port |
//! | `POST /workspaces/{id}/session/commit` | snapshots the session as the new head |

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use sandkit_core::{
    CommandResult, CommandSpec, Error, ErrorKind, ListOptions, RunQuery, RunRecord, Sandkit,
    Session, Workspace, WorkspaceRecord, WorkspaceSpec, now,
};
use serde::{Deserialize, Serialize};

use crate::api_error::{ApiError, ApiJson, ApiQuery};
use crate::live::{Action, ensure_session};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The Sandkit instance (cheap to clone).
    pub sandkit: Sandkit,
    /// Lifetime of a newly opened session.
    pub session_timeout: Duration,
    /// Minimum time left `POST …/session` guarantees when the request does not say.
    pub min_remaining: Duration,
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/workspaces", get(list_workspaces).post(create_workspace))
        .route("/workspaces/{id}/runs", get(list_runs).post(run_durable))
        .route(
            "/workspaces/{id}/session",
            post(ensure).delete(discard_session),
        )
        .route("/workspaces/{id}/session/exec", post(exec))
        .route("/workspaces/{id}/session/processes", post(start_process))
        .route("/workspaces/{id}/session/url/{port}", get(session_url))
        .route("/workspaces/{id}/session/commit", post(commit))
        .with_state(state)
}

type ApiResult<T> = Result<Json<T>, ApiError>;

// ---- request bodies --------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWorkspace {
    id: String,
    name: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
}

/// A command, for durable runs and session commands.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    cwd: Option<String>,
}

impl CommandBody {
    fn spec(self) -> CommandSpec {
        let spec = CommandSpec::new(self.command).args(self.args);
        match self.cwd {
            Some(cwd) => spec.cwd(cwd),
            None => spec,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnsureBody {
    min_remaining_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    cursor: Option<String>,
    limit: Option<usize>,
}

// ---- answers ---------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct LeaseView {
    kind: &'static str,
    holder: String,
    session_id: Option<String>,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct WorkspaceView {
    id: String,
    name: String,
    state: &'static str,
    head: Option<String>,
    policy: String,
    ports: Vec<u16>,
    lease: Option<LeaseView>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&WorkspaceRecord> for WorkspaceView {
    fn from(record: &WorkspaceRecord) -> Self {
        WorkspaceView {
            id: record.id.to_string(),
            name: record.name.clone(),
            state: record.state().as_str(),
            head: record.head.as_ref().map(|h| h.id.clone()),
            policy: record
                .policy
                .as_ref()
                .map_or("allow-all".to_owned(), |p| p.describe()),
            ports: record.sandbox_config.exposed_ports.clone(),
            // Only a live lease is worth showing; an expired one is recovered on next use.
            lease: record.live_lease(now()).map(|lease| LeaseView {
                kind: lease.kind.as_str(),
                holder: lease.holder.clone(),
                session_id: lease.session.as_ref().map(|s| s.id.clone()),
                acquired_at: lease.acquired_at,
                expires_at: lease.expires_at,
            }),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct RunView {
    id: String,
    command: String,
    args: Vec<String>,
    status: &'static str,
    exit_code: Option<i32>,
    policy: String,
    holder: String,
    error: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<&RunRecord> for RunView {
    fn from(run: &RunRecord) -> Self {
        RunView {
            id: run.id.to_string(),
            command: run.command.clone(),
            args: run.args.clone(),
            status: run.status.as_str(),
            exit_code: run.exit_code,
            policy: run.policy_description.clone(),
            holder: run.holder.clone(),
            error: run.error.clone(),
            started_at: run.started_at,
            finished_at: run.finished_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct Output {
    run_id: Option<String>,
    exit_code: i32,
    stdout: String,
    stderr: String,
}

impl From<CommandResult> for Output {
    fn from(result: CommandResult) -> Self {
        Output {
            run_id: result.run_id.map(|id| id.to_string()),
            exit_code: result.exit_code,
            stdout: result.stdout,
            stderr: result.stderr,
        }
    }
}

#[derive(Debug, Serialize)]
struct SessionView {
    workspace_id: String,
    session_id: String,
    action: Action,
    extended_by_ms: Option<u128>,
    expires_at: DateTime<Utc>,
    remaining_ms: u128,
}

// ---- handlers --------------------------------------------------------------------

async fn list_workspaces(
    State(app): State<AppState>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Page<WorkspaceView>> {
    let page = app
        .sandkit
        .list_workspaces(ListOptions {
            cursor: paging.cursor,
            limit: paging.limit,
            ..ListOptions::default()
        })
        .await?;
    Ok(Json(Page {
        items: page.items.iter().map(WorkspaceView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn create_workspace(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let mut spec = WorkspaceSpec::new().id(body.id).exposed_ports(body.ports);
    if let Some(name) = body.name {
        spec = spec.name(name);
    }
    let workspace = app.sandkit.create_workspace(spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceView::from(workspace.record())),
    ))
}

async fn list_runs(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Page<RunView>> {
    let workspace = app.sandkit.workspace(&id).await?;
    let page = workspace
        .runs(RunQuery {
            cursor: paging.cursor,
            limit: paging.limit,
            ..RunQuery::default()
        })
        .await?;
    Ok(Json(Page {
        items: page.items.iter().map(RunView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A durable command: `Busy` (409) while the workspace has a live session.
async fn run_durable(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommandBody>,
) -> ApiResult<Output> {
    let workspace = app.sandkit.workspace(&id).await?;
    let result = workspace.run_command(body.spec()).await?;
    Ok(Json(result.into()))
}

/// Attach or open, extend to the required minimum, repair a lost session. The body is
/// optional.
async fn ensure(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<SessionView> {
    let body: EnsureBody = if body.iter().all(u8::is_ascii_whitespace) {
        EnsureBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let min_remaining = match body.min_remaining_secs {
        Some(0) => {
            return Err(ApiError::bad_request(
                "min_remaining_secs must be at least 1; omit it for the server default",
            ));
        }
        Some(secs) => Duration::from_secs(secs),
        None => app.min_remaining,
    };
    let workspace = app.sandkit.workspace(&id).await?;
    let ensured = ensure_session(&workspace, min_remaining, app.session_timeout).await?;
    Ok(Json(SessionView {
        workspace_id: id,
        session_id: ensured.session.id(),
        action: ensured.action,
        extended_by_ms: ensured.extended_by.map(|d| d.as_millis()),
        expires_at: ensured.expires_at,
        remaining_ms: ensured.remaining.as_millis(),
    }))
}

/// The live session, or `NoActiveSession` (409) saying which endpoint opens one.
async fn attach(app: &AppState, id: &str) -> Result<Session, ApiError> {
    let workspace: Workspace = app.sandkit.workspace(id).await?;
    match workspace.attach_session().await {
        Err(e) if e.kind() == &ErrorKind::NoActiveSession => Err(ApiError(
            Error::no_active_session(format!(
                "workspace {id} has no live session; open one with POST /workspaces/{id}/session"
            ))
            .with_source(e),
        )),
        attached => Ok(attached?),
    }
}

async fn exec(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommandBody>,
) -> ApiResult<Output> {
    let session = attach(&app, &id).await?;
    Ok(Json(session.exec(body.spec()).await?.into()))
}

#[derive(Debug, Serialize)]
struct Started {
    process_id: String,
}

async fn start_process(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommandBody>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let session = attach(&app, &id).await?;
    let process = session.start_process(body.spec()).await?;
    // The process keeps running after this request: the session owns it, not us.
    Ok((
        StatusCode::CREATED,
        Json(Started {
            process_id: process.id().to_owned(),
        }),
    ))
}

#[derive(Debug, Serialize)]
struct UrlView {
    port: u16,
    url: String,
}

async fn session_url(
    State(app): State<AppState>,
    Path((id, port)): Path<(String, String)>,
) -> ApiResult<UrlView> {
    let port: u16 = port.parse().map_err(|_| {
        ApiError(Error::invalid_input(format!(
            "port {port:?} is not a number in 1–65535"
        )))
    })?;
    let session = attach(&app, &id).await?;
    let url = session.url(port).await?;
    Ok(Json(UrlView { port, url }))
}

#[derive(Debug, Serialize)]
struct Committed {
    workspace_id: String,
    head: Option<String>,
}

async fn commit(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Committed> {
    let session = attach(&app, &id).await?;
    session.commit().await?;
    let workspace = app.sandkit.workspace(&id).await?;
    Ok(Json(Committed {
        workspace_id: id,
        head: workspace.record().head.as_ref().map(|h| h.id.clone()),
    }))
}

#[derive(Debug, Serialize)]
struct Discarded {
    workspace_id: String,
    discarded: bool,
}

async fn discard_session(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Discarded> {
    let session = attach(&app, &id).await?;
    session.discard().await?;
    Ok(Json(Discarded {
        workspace_id: id,
        discarded: true,
    }))
}
