//! [`VercelProvider`]: starts, attaches and deletes snapshots.

use crate::config::BASE_URL_VAR;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use sandkit_core::{
    Capabilities, Error, NetworkCapabilities, PortCapabilities, Provider, ProviderSession, Result,
    SessionRef, SnapshotRef, StartSpec,
};
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use crate::client::{ApiClient, Call, Failure};
use crate::config::{Settings, VercelProviderBuilder};
use crate::credentials::Credentials;
use crate::policy::{describe, network_policy, secret_values};
use crate::session::VercelSession;
use crate::validate;
use crate::wire::{SessionEnvelope, SnapshotEnvelope};

/// Provider id recorded in snapshot and session references.
pub const PROVIDER_ID: &str = "vercel";

/// The tag naming the Sandkit workspace a sandbox was created for.
pub const WORKSPACE_TAG: &str = "sandkit-workspace";

/// The prefix of the sandbox names Sandkit gives (`sandkit-<32 hex digits>`).
const NAME_PREFIX: &str = "sandkit-";

/// Whether `id` is a sandbox name Sandkit gives (not a session id).
fn is_sandbox_name(id: &str) -> bool {
    id.strip_prefix(NAME_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Longest tag value Vercel accepts.
const MAX_TAG_VALUE: usize = 256;

/// What Vercel Sandbox can do (§9 of the API contract).
pub(crate) fn capabilities(settings: &Settings) -> Capabilities {
    Capabilities {
        ports: Some(PortCapabilities {
            min: 1024,
            max: 65535,
            max_count: 15,
        }),
        extend_timeout: true,
        background_processes: true,
        network: NetworkCapabilities {
            allow_all: true,
            deny_all: true,
            allow_services: true,
            header_injection: true,
        },
        snapshot_delete: true,
        fork: true,
        cross_process_attach: true,
        max_timeout: Some(settings.max_timeout),
    }
}

/// The Vercel Sandbox provider (id `vercel`), speaking the REST API directly.
///
/// One durable command costs three API calls: create (from the head snapshot, with the
/// effective network policy), run (wait + logs, streamed) and snapshot.
#[derive(Clone)]
pub struct VercelProvider {
    client: Arc<ApiClient>,
    settings: Arc<Settings>,
    caps: Capabilities,
}

impl fmt::Debug for VercelProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VercelProvider")
            .field("base_url", &self.client.base_url().as_str())
            .field("credentials", &self.client.credentials())
            .field("settings", &self.settings)
            .finish()
    }
}

impl VercelProvider {
    pub(crate) fn new(client: Arc<ApiClient>, settings: Settings, caps: Capabilities) -> Self {
        VercelProvider {
            client,
            settings: Arc::new(settings),
            caps,
        }
    }

    /// A builder with the defaults (credentials from the environment unless given).
    pub fn builder() -> VercelProviderBuilder {
        VercelProviderBuilder::default()
    }

    /// A provider with default settings and credentials from the environment
    /// (`VERCEL_OIDC_TOKEN`, or `VERCEL_TOKEN` + `VERCEL_TEAM_ID` + `VERCEL_PROJECT_ID`);
    /// `SANDKIT_VERCEL_BASE_URL`, when set, replaces the API base URL.
    ///
    /// # Errors
    /// `Credentials` naming the variables to set.
    pub fn from_env() -> Result<Self> {
        let mut builder = Self::builder();
        if let Some(url) = std::env::var(BASE_URL_VAR)
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            builder = builder.base_url(url);
        }
        builder.build()
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        self.client.base_url().as_str()
    }

    /// The credentials in use now (`Debug` redacts the token); a
    /// [credentials source](crate::VercelProviderBuilder::credentials_source) may
    /// replace them later.
    pub fn credentials(&self) -> Credentials {
        self.client.credentials()
    }

    fn check_provider(&self, provider: &str, what: &str) -> Result<()> {
        if provider == PROVIDER_ID {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "{what} belongs to provider {provider:?}, not {PROVIDER_ID:?}; use the provider that created it"
            )))
        }
    }

    /// After a create that failed but may have worked: the sandbox `name`'s running
    /// session, if the create did happen (`None` otherwise, or when it cannot be told).
    async fn created_anyway(&self, name: &str) -> Option<SessionEnvelope> {
        match self.live_sandbox(name).await {
            Ok(found) => found,
            Err(failure) => {
                debug!(sandbox = %name, failure = ?failure.status(), "cannot tell whether the sandbox was created");
                None
            }
        }
    }

    /// The running session of the sandbox Sandkit named `name`: `None` when there is
    /// no such sandbox or it is not running.
    async fn live_sandbox(
        &self,
        name: &str,
    ) -> std::result::Result<Option<SessionEnvelope>, Failure> {
        let call = Call::get("get sandbox", &["v2", "sandboxes", name])
            .query("projectId", self.credentials().project_id());
        match self.client.json::<SessionEnvelope>(&call).await {
            Ok(found) if found.session.status.is_live() => Ok(Some(found)),
            Ok(_) => Ok(None),
            Err(failure) if matches!(failure.status(), Some((404 | 410, _))) => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    /// The error for a failed create: a snapshot source that is gone is
    /// `SnapshotUnavailable`.
    fn start_error(&self, spec: &StartSpec, call: &Call, failure: Failure) -> Error {
        let status = failure.status().map(|(s, _)| s);
        let snapshot_gone = spec.from.is_some()
            && (status == Some(410) || (status == Some(404) && mentions_snapshot(&failure)));
        let error = self.client.error(call, failure);
        match (&spec.from, snapshot_gone) {
            (Some(from), true) => Error::snapshot_unavailable(format!(
                "snapshot {} is no longer available at Vercel (expired or deleted); \
                 start fresh or from another snapshot",
                from.id
            ))
            .with_source(error),
            _ => error,
        }
    }

    /// Checks a start request and builds the create body (`POST /v3/sandboxes`) for a
    /// sandbox called `name`.
    fn create_body(&self, spec: &StartSpec, name: &str) -> Result<Value> {
        let timeout = if spec.timeout.is_zero() {
            self.settings.default_timeout
        } else {
            spec.timeout
        };
        validate::session_timeout(timeout, self.settings.max_timeout)?;
        self.caps.check_ports(PROVIDER_ID, &spec.ports)?;
        validate::distinct_ports(&spec.ports)?;
        let vcpus = spec.vcpus.or(self.settings.vcpus);
        validate::vcpus(vcpus)?;
        self.caps.check_rules(PROVIDER_ID, &spec.rules)?;
        validate::rules(&spec.rules)?;
        let workspace = spec.workspace_id.as_str();
        if workspace.len() > MAX_TAG_VALUE {
            return Err(Error::invalid_input(format!(
                "workspace id is {} bytes; Vercel tags hold at most {MAX_TAG_VALUE}",
                workspace.len()
            )));
        }
        if let Some(from) = &spec.from {
            self.check_provider(&from.provider, "the snapshot to start from")?;
        }

        let mut body = Map::new();
        body.insert("projectId".into(), json!(self.credentials().project_id()));
        body.insert("name".into(), json!(name));
        if let Some(from) = &spec.from {
            body.insert(
                "source".into(),
                json!({"type": "snapshot", "snapshotId": from.id}),
            );
        }
        body.insert("ports".into(), json!(spec.ports));
        body.insert("timeout".into(), json!(validate::ms(timeout)));
        if let Some(n) = vcpus {
            body.insert("resources".into(), json!({ "vcpus": n }));
        }
        body.insert("persistent".into(), json!(false));
        body.insert("networkPolicy".into(), network_policy(&spec.rules));
        body.insert("tags".into(), json!({ WORKSPACE_TAG: workspace }));
        if let Some(region) = &self.settings.region {
            body.insert("region".into(), json!(region));
        }
        Ok(Value::Object(body))
    }
}

fn mentions_snapshot(failure: &Failure) -> bool {
    match failure {
        Failure::Status { code, message, .. } => [code, message]
            .into_iter()
            .flatten()
            .any(|t| t.to_ascii_lowercase().contains("snapshot")),
        _ => false,
    }
}

#[async_trait]
impl Provider for VercelProvider {
    fn id(&self) -> &str {
        PROVIDER_ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn secrets(&self) -> sandkit_core::policies::Redactor {
        self.client.redactor(&[])
    }

    async fn start(&self, spec: StartSpec) -> Result<Box<dyn ProviderSession>> {
        // A name of our own lets a create whose answer was lost be found again.
        let name = match &spec.name {
            Some(name) if is_sandbox_name(name) => name.clone(),
            Some(name) => {
                return Err(Error::invalid_input(format!(
                    "sandbox name {name:?} is not one Sandkit gives (sandkit-<32 hex digits>)"
                )));
            }
            None => format!("{NAME_PREFIX}{}", uuid::Uuid::new_v4().simple()),
        };
        let body = self.create_body(&spec, &name)?;
        let call = Call::post("create sandbox", &["v3", "sandboxes"])
            .body(body)
            .secrets(secret_values(&spec.rules));
        let created: SessionEnvelope = match self.client.json(&call).await {
            Ok(created) => created,
            Err(failure) => {
                let adopted = if failure.maybe_acted() {
                    self.created_anyway(&name).await
                } else {
                    None
                };
                match adopted {
                    Some(found) => {
                        warn!(sandbox = %name, session = %found.session.id, "the create request failed, but the sandbox was created; using it");
                        found
                    }
                    None => return Err(self.start_error(&spec, &call, failure)),
                }
            }
        };
        info!(
            session = %created.session.id,
            workspace = %spec.workspace_id,
            from = ?spec.from.as_ref().map(|s| &s.id),
            policy = %describe(&spec.rules),
            "vercel sandbox started"
        );
        Ok(Box::new(VercelSession::new(
            self.client.clone(),
            self.settings.clone(),
            created,
        )))
    }

    /// The sandbox name a start with this name creates: recorded before the create, it
    /// finds the sandbox even when the create's answer was lost.
    fn planned_session(&self, name: &str) -> Option<SessionRef> {
        is_sandbox_name(name).then(|| SessionRef {
            provider: PROVIDER_ID.to_owned(),
            id: name.to_owned(),
        })
    }

    /// Stops the session: by sandbox name for a session planned but maybe never
    /// started (nothing to do when no such sandbox runs), else by session id.
    async fn snapshot_exists(&self, snapshot: &SnapshotRef) -> Result<bool> {
        if snapshot.provider != PROVIDER_ID {
            return Ok(false);
        }
        crate::validate::api_id("snapshot", &snapshot.id)?;
        let call = Call::get(
            "get snapshot",
            &["v2", "sandboxes", "snapshots", &snapshot.id],
        );
        match self.client.json::<SnapshotEnvelope>(&call).await {
            Ok(found) => Ok(found.snapshot.is_usable()),
            Err(failure) => match failure.status() {
                Some((404 | 410, _)) => Ok(false),
                _ => Err(self.client.error(&call, failure)),
            },
        }
    }

    async fn find_session_snapshot(&self, session: &SessionRef) -> Result<Option<SnapshotRef>> {
        self.check_provider(&session.provider, "the session")?;
        // A planned sandbox name never got as far as a session, let alone a snapshot.
        if is_sandbox_name(&session.id) {
            return Ok(None);
        }
        crate::validate::api_id("session", &session.id)?;
        let call = Call::get("get session", &["v2", "sandboxes", "sessions", &session.id]);
        match self.client.json::<SessionEnvelope>(&call).await {
            Ok(found) if found.session.snapshotted_at.is_none() => return Ok(None),
            Ok(_) => {}
            Err(failure) => {
                return match failure.status() {
                    Some((404 | 410, _)) => Ok(None),
                    _ => Err(self.client.error(&call, failure)),
                };
            }
        }
        let list = Call::get("list snapshots", &["v2", "sandboxes", "snapshots"]);
        match crate::session::snapshot_of_session(&self.client, &session.id).await {
            Ok(found) => Ok(found.map(|id| SnapshotRef {
                provider: PROVIDER_ID.to_owned(),
                id,
            })),
            Err(failure) => Err(self.client.error(&list, failure)),
        }
    }

    async fn discard_session(&self, session: &SessionRef) -> Result<()> {
        self.check_provider(&session.provider, "the session")?;
        let live: Box<dyn ProviderSession> = if is_sandbox_name(&session.id) {
            let call = Call::get("get sandbox", &["v2", "sandboxes", &session.id]);
            match self.live_sandbox(&session.id).await {
                Ok(Some(found)) => Box::new(VercelSession::new(
                    self.client.clone(),
                    self.settings.clone(),
                    found,
                )),
                Ok(None) => return Ok(()),
                Err(failure) => return Err(self.client.error(&call, failure)),
            }
        } else {
            match self.attach(session).await {
                Ok(live) => live,
                Err(e) if e.kind() == &sandkit_core::ErrorKind::SessionUnavailable => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        live.stop().await
    }

    async fn attach(&self, session: &SessionRef) -> Result<Box<dyn ProviderSession>> {
        self.check_provider(&session.provider, "the session")?;
        crate::validate::api_id("session", &session.id)?;
        let call = Call::get("get session", &["v2", "sandboxes", "sessions", &session.id]);
        let unavailable = |why: String| {
            Error::session_unavailable(format!(
                "Vercel session {} {why}; start a new session",
                session.id
            ))
        };
        let found: SessionEnvelope = match self.client.json(&call).await {
            Ok(found) => found,
            Err(failure) => {
                return Err(match failure.status() {
                    Some((404, _)) => unavailable("does not exist".to_owned()),
                    Some((410, _)) => unavailable("is stopped".to_owned()),
                    _ => self.client.error(&call, failure),
                });
            }
        };
        let status = found.session.status;
        if !status.is_live() {
            return Err(unavailable(format!("is {}", status.as_str())));
        }
        Ok(Box::new(VercelSession::new(
            self.client.clone(),
            self.settings.clone(),
            found,
        )))
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        self.check_provider(&snapshot.provider, "the snapshot")?;
        crate::validate::api_id("snapshot", &snapshot.id)?;
        let call = Call::delete(
            "delete snapshot",
            &["v2", "sandboxes", "snapshots", &snapshot.id],
        );
        match self.client.json::<Value>(&call).await {
            Ok(_) => {
                info!(snapshot = %snapshot.id, "vercel snapshot deleted");
                Ok(())
            }
            Err(failure) if matches!(failure.status(), Some((404 | 410, _))) => Ok(()),
            Err(failure) => Err(self.client.error(&call, failure)),
        }
    }
}
