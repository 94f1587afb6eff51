//! What callers ask for: commands, workspaces, sessions, listings and the setup
//! bootstrap. Every spec is validated before anything is written or started.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use sandkit_policies::Policy;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{EnvMap, RunStatus, WorkspaceStatus};
use crate::provider::ExecSpec;
use crate::store::Order;

/// Prefix of metadata keys Sandkit reserves; callers' keys with it are stripped.
pub const RESERVED_METADATA_PREFIX: &str = "sandkit:";

/// Longest command timeout accepted.
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// A command to run: durably with `run_command`/`spawn_command`, or in a session.
#[derive(Clone, Default)]
pub struct CommandSpec {
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: Option<String>,
    pub(crate) env: EnvMap,
    pub(crate) policy: Option<Policy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) idempotency_key: Option<String>,
}

impl CommandSpec {
    /// A command (an executable; use `sh -c` for shell syntax).
    pub fn new(command: impl Into<String>) -> Self {
        CommandSpec {
            command: command.into(),
            ..CommandSpec::default()
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Working directory (relative to the sandbox's working directory when relative).
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Sets an environment variable. Values are passed to the sandbox and never
    /// stored; only names are journaled.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Policy for this command only (overrides the session and workspace defaults).
    /// It may carry an explicit [`Secret`](sandkit_policies::Secret); what is stored
    /// is redacted.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Kills the command after this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Records the run under this key: a later call with the same key in the same
    /// workspace returns the recorded result instead of running again.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The executable.
    pub fn command(&self) -> &str {
        &self.command
    }
    /// The arguments.
    pub fn get_args(&self) -> &[String] {
        &self.args
    }
    /// The idempotency key, if any.
    pub fn get_idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// Checks the spec; every problem is `InvalidInput` naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.command.trim().is_empty() {
            return Err(Error::invalid_input(
                "command must not be empty; pass an executable such as \"sh\"",
            ));
        }
        no_nul("command", &self.command)?;
        for (i, arg) in self.args.iter().enumerate() {
            no_nul(&format!("args[{i}]"), arg)?;
        }
        if let Some(cwd) = &self.cwd {
            if cwd.trim().is_empty() {
                return Err(Error::invalid_input(
                    "cwd must not be empty; omit it to use the sandbox's working directory",
                ));
            }
            no_nul("cwd", cwd)?;
        }
        for (key, value) in &self.env {
            validate_env_key(key)?;
            no_nul(&format!("env[{key}]"), value)?;
        }
        if let Some(timeout) = self.timeout
            && (timeout.is_zero() || timeout > MAX_COMMAND_TIMEOUT)
        {
            return Err(Error::invalid_input(format!(
                "timeout must be between 1ms and {} days; omit it for no command timeout",
                MAX_COMMAND_TIMEOUT.as_secs() / 86_400
            )));
        }
        if let Some(key) = &self.idempotency_key
            && (key.trim().is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(Error::invalid_input(format!(
                "idempotency key must be 1–{MAX_IDEMPOTENCY_KEY_LEN} bytes of non-blank text"
            )));
        }
        Ok(())
    }

    pub(crate) fn exec_spec(&self) -> ExecSpec {
        ExecSpec {
            command: self.command.clone(),
            args: self.args.clone(),
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            timeout: self.timeout,
        }
    }
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSpec")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("policy", &self.policy.as_ref().map(Policy::describe))
            .field("timeout", &self.timeout)
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid_input(format!(
            "{field} contains a NUL byte, which no process can receive; remove it"
        )));
    }
    Ok(())
}

fn validate_env_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "environment variable name {key:?} is invalid; use letters, digits and '_', not starting with a digit"
        )))
    }
}

/// How to create a workspace.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceSpec {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) policy: Option<Policy>,
    pub(crate) exposed_ports: Vec<u16>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) vcpus: Option<u32>,
    pub(crate) status: Option<WorkspaceStatus>,
}

impl WorkspaceSpec {
    /// Defaults: generated id, name `default`, no policy (allow-all), no ports.
    pub fn new() -> Self {
        Self::default()
    }
    /// A caller-chosen id (letters, digits, `-`, `_`, `.`, `:`; at most 128 bytes).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Human name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Caller metadata (a JSON object); keys starting with `sandkit:` are stripped.
    pub fn metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }
    /// Durable default policy; must not hold explicit secrets.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }
    /// Ports to expose as public URLs in sessions.
    pub fn exposed_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.exposed_ports = ports.into_iter().collect();
        self
    }
    /// Sandbox lifetime for this workspace's sandboxes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Virtual CPUs for this workspace's sandboxes.
    pub fn vcpus(mut self, vcpus: u32) -> Self {
        self.vcpus = Some(vcpus);
        self
    }
    /// Initial status (default active).
    pub fn status(mut self, status: WorkspaceStatus) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return Err(Error::invalid_input(
                "workspace name must not be blank; omit it to use \"default\"",
            ));
        }
        validate_ports(&self.exposed_ports)?;
        if let Some(t) = self.timeout
            && t < Duration::from_secs(1)
        {
            return Err(Error::invalid_input(
                "workspace timeout must be at least 1s",
            ));
        }
        if self.vcpus == Some(0) {
            return Err(Error::invalid_input(
                "vcpus must be at least 1; omit it for the provider default",
            ));
        }
        if let Some(policy) = &self.policy {
            policy.ensure_durable()?;
        }
        Ok(())
    }
}

/// Validates exposed ports: each in 1–65535, no duplicates.
pub(crate) fn validate_ports(ports: &[u16]) -> Result<()> {
    for (i, port) in ports.iter().enumerate() {
        if *port == 0 {
            return Err(Error::invalid_input(format!(
                "exposed_ports[{i}] is 0; ports must be in 1–65535"
            )));
        }
        if ports[..i].contains(port) {
            return Err(Error::invalid_input(format!(
                "exposed_ports lists port {port} twice"
            )));
        }
    }
    Ok(())
}

/// Strips reserved (`sandkit:`) keys from caller metadata.
pub(crate) fn strip_reserved(metadata: Map<String, Value>) -> Map<String, Value> {
    metadata
        .into_iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_METADATA_PREFIX))
        .collect()
}

/// How to open a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) policy: Option<Policy>,
}

impl SessionOptions {
    /// Defaults: the workspace's (or provider's) timeout and the workspace policy.
    pub fn new() -> Self {
        Self::default()
    }
    /// Session lifetime (the session lease lasts as long).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Session policy override (durable form: no explicit secrets).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }
}

/// Filters and paging for [`Sandkit::list_workspaces`](crate::Sandkit::list_workspaces).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only this status.
    pub status: Option<WorkspaceStatus>,
    /// Only names starting with this.
    pub name_prefix: Option<String>,
    /// Only forks of this workspace.
    pub parent: Option<String>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// Filters and paging for [`Workspace::runs`](crate::Workspace::runs).
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Newest first (default) or oldest first.
    pub order: Order,
    /// Page size (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// Default page size for listings.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size for listings.
pub const MAX_PAGE_SIZE: usize = 1000;

pub(crate) fn page_size(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(0) => Err(Error::invalid_input("limit must be at least 1")),
        Some(n) => Ok(n.min(MAX_PAGE_SIZE)),
    }
}

/// The shared setup bootstrap: a command run once per definition whose snapshot seeds
/// every cold workspace.
#[derive(Debug, Clone)]
pub struct SetupSpec {
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) policy: Option<Policy>,
}

impl SetupSpec {
    /// A setup command.
    pub fn new(command: impl Into<String>) -> Self {
        SetupSpec {
            command: command.into(),
            args: Vec::new(),
            policy: None,
        }
    }
    /// Its arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// The policy in force while setup runs (required; no explicit secrets).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    pub(crate) fn validate(&self) -> Result<Policy> {
        CommandSpec::new(self.command.clone())
            .args(self.args.clone())
            .validate()
            .map_err(|e| e.context("setup"))?;
        let policy = self.policy.clone().ok_or_else(|| {
            Error::invalid_input(
                "setup policy is required: add .policy(Policy::allow_all()) or a narrower policy to SetupSpec",
            )
        })?;
        policy
            .ensure_durable()
            .map_err(|e| Error::from(e).context("setup policy"))?;
        Ok(policy)
    }
}

/// Builds an env map from pairs.
pub fn env_map<I, K, V>(pairs: I) -> EnvMap
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect::<BTreeMap<_, _>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_validation_names_the_field() {
        assert!(CommandSpec::new("  ").validate().is_err());
        let e = CommandSpec::new("sh").arg("a\0b").validate().unwrap_err();
        assert!(e.to_string().contains("args[0]"));
        let e = CommandSpec::new("sh")
            .env("1BAD", "x")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("1BAD"));
        let e = CommandSpec::new("sh")
            .timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("timeout"));
        assert!(
            CommandSpec::new("sh")
                .idempotency_key(" ")
                .validate()
                .is_err()
        );
        assert!(
            CommandSpec::new("sh")
                .args(["-c", "true"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn debug_hides_env_values() {
        let spec = CommandSpec::new("sh").env("TOKEN", "very-secret-value");
        assert!(!format!("{spec:?}").contains("very-secret-value"));
        assert!(!format!("{:?}", spec.exec_spec()).contains("very-secret-value"));
    }

    #[test]
    fn ports_are_checked() {
        assert!(validate_ports(&[3000, 3001]).is_ok());
        assert!(validate_ports(&[0]).is_err());
        assert!(validate_ports(&[3000, 3000]).is_err());
    }

    #[test]
    fn reserved_metadata_is_stripped() {
        let mut m = Map::new();
        m.insert("sandkit:sandbox".into(), Value::Bool(true));
        m.insert("team".into(), Value::String("a".into()));
        let out = strip_reserved(m);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key("team"));
    }
}
