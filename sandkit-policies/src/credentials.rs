//! Where default credentials come from: [`CredentialEnv`], [`ProcessEnv`], [`MapEnv`].

use std::collections::HashMap;
use std::fmt;

/// The environment variable holding the default credential of a service id:
/// `codex` → `CODEX_API_KEY`, `gemini` → `GEMINI_API_KEY`, `github` → `GITHUB_TOKEN`,
/// `aiGateway` → `AI_GATEWAY_API_KEY`; any other id has none.
pub fn default_credential_variable(service_id: &str) -> Option<&'static str> {
    match service_id {
        "codex" => Some("CODEX_API_KEY"),
        "gemini" => Some("GEMINI_API_KEY"),
        "github" => Some("GITHUB_TOKEN"),
        "aiGateway" => Some("AI_GATEWAY_API_KEY"),
        _ => None,
    }
}

/// Source of default credentials (the process environment is one implementation).
pub trait CredentialEnv: Send + Sync {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// Reads default credentials from the process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl CredentialEnv for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A map of variables, for tests and for injecting credentials without touching the
/// process environment. `Debug` lists the variable names only.
///
/// ```
/// use sandkit_policies::{CredentialEnv, MapEnv};
/// let env = MapEnv::new().with("GITHUB_TOKEN", "test-secret");
/// assert_eq!(env.var("GITHUB_TOKEN").as_deref(), Some("test-secret"));
/// assert_eq!(format!("{env:?}"), r#"MapEnv { variables: ["GITHUB_TOKEN"] }"#);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MapEnv {
    vars: HashMap<String, String>,
}

impl MapEnv {
    /// An empty environment.
    pub fn new() -> Self {
        MapEnv::default()
    }

    /// Adds (or replaces) a variable, builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// Adds (or replaces) a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Removes a variable; returns whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        self.vars.remove(name).is_some()
    }
}

impl CredentialEnv for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

impl fmt::Debug for MapEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("MapEnv").field("variables", &names).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        MapEnv {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl From<HashMap<String, String>> for MapEnv {
    fn from(vars: HashMap<String, String>) -> Self {
        MapEnv { vars }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_env_basics() {
        let mut env: MapEnv = [("A", "1"), ("B", "2")].into_iter().collect();
        assert_eq!(env.var("A").as_deref(), Some("1"));
        assert!(env.remove("A"));
        assert!(!env.remove("A"));
        assert_eq!(env.var("A"), None);
        env.set("C", "3");
        assert_eq!(format!("{env:?}"), r#"MapEnv { variables: ["B", "C"] }"#);
    }

    #[test]
    fn default_variables() {
        assert_eq!(default_credential_variable("codex"), Some("CODEX_API_KEY"));
        assert_eq!(
            default_credential_variable("gemini"),
            Some("GEMINI_API_KEY")
        );
        assert_eq!(default_credential_variable("github"), Some("GITHUB_TOKEN"));
        assert_eq!(
            default_credential_variable("aiGateway"),
            Some("AI_GATEWAY_API_KEY")
        );
        assert_eq!(default_credential_variable("npm"), None);
        assert_eq!(default_credential_variable("ai-gateway"), None);
    }
}
