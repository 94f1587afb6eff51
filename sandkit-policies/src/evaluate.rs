//! The evaluator: would a request to a target be allowed, by which service and domain?
//!
//! Used by tests and by providers that enforce rules themselves (the local provider);
//! enforcement on Vercel is the firewall's job.

use url::Url;

use crate::compile::FirewallRules;
use crate::{Policy, PolicyMode};

/// The outcome of evaluating a target against a policy or compiled rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Evaluation {
    /// Whether the request would be allowed.
    pub allowed: bool,
    /// The service that allowed it (the first, by id), if any.
    pub service_id: Option<String>,
    /// The matching domain pattern, if any.
    pub domain: Option<String>,
    /// Human-readable explanation.
    pub reason: String,
}

impl Evaluation {
    fn allowed_everything() -> Self {
        Evaluation {
            allowed: true,
            service_id: None,
            domain: None,
            reason: "policy allows all outbound traffic".to_owned(),
        }
    }

    fn denied(reason: String) -> Self {
        Evaluation {
            allowed: false,
            service_id: None,
            domain: None,
            reason,
        }
    }

    fn matched(service_id: &str, domain: &str) -> Self {
        Evaluation {
            allowed: true,
            service_id: Some(service_id.to_owned()),
            domain: Some(domain.to_owned()),
            reason: format!("allowed by service \"{service_id}\" through domain \"{domain}\""),
        }
    }
}

impl FirewallRules {
    /// Evaluates `target`: a URL (`https://api.github.com/repos`) or a scheme-less host
    /// with optional port and path (`api.github.com/repos`, read as `https://...`).
    ///
    /// Hosts match exactly (case-insensitive, a trailing dot ignored) or by `*.suffix`,
    /// which matches strict subdomains only. Ports and paths are ignored. An unparsable
    /// target is not allowed.
    ///
    /// ```
    /// use sandkit_policies::{MapEnv, Policy, ServiceDescriptor};
    /// let rules = Policy::allow_services([
    ///     ServiceDescriptor::new("example", "Example").domain("*.example.com"),
    /// ])?
    /// .compile(&MapEnv::new())?;
    /// assert!(rules.evaluate("https://api.example.com/v1").allowed);
    /// assert!(!rules.evaluate("https://example.com").allowed);
    /// # Ok::<(), sandkit_policies::PolicyError>(())
    /// ```
    pub fn evaluate(&self, target: &str) -> Evaluation {
        match self {
            FirewallRules::AllowAll => Evaluation::allowed_everything(),
            FirewallRules::DenyAll => Evaluation::denied(DENY_ALL.to_owned()),
            FirewallRules::Allow(rules) => {
                let host = match target_host(target) {
                    Ok(host) => host,
                    Err(reason) => return Evaluation::denied(reason),
                };
                rules
                    .iter()
                    .find(|rule| domain_matches(&rule.domain, &host))
                    .and_then(|rule| {
                        rule.service_ids
                            .first()
                            .map(|id| Evaluation::matched(id, &rule.domain))
                    })
                    .unwrap_or_else(|| no_match(&host))
            }
        }
    }
}

impl Policy {
    /// Evaluates `target` without resolving credentials; same result as
    /// `compile(..)?.evaluate(target)`. See [`FirewallRules::evaluate`].
    pub fn evaluate(&self, target: &str) -> Evaluation {
        match self.mode() {
            PolicyMode::AllowAll => Evaluation::allowed_everything(),
            PolicyMode::DenyAll => Evaluation::denied(DENY_ALL.to_owned()),
            PolicyMode::AllowServices => {
                let host = match target_host(target) {
                    Ok(host) => host,
                    Err(reason) => return Evaluation::denied(reason),
                };
                self.services()
                    .iter()
                    .find_map(|service| {
                        service
                            .get_domains()
                            .iter()
                            .find(|domain| domain_matches(domain, &host))
                            .map(|domain| Evaluation::matched(service.id(), domain))
                    })
                    .unwrap_or_else(|| no_match(&host))
            }
        }
    }
}

const DENY_ALL: &str = "policy denies all outbound traffic";

fn no_match(host: &str) -> Evaluation {
    Evaluation::denied(format!("no allowed domain matches host \"{host}\""))
}

/// The lower-case host of `target` without a trailing dot.
fn target_host(target: &str) -> Result<String, String> {
    let trimmed = target.trim();
    if trimmed.is_empty() {
        return Err("invalid target URL: the target is empty".to_owned());
    }
    let parsed = if trimmed.contains("://") {
        Url::parse(trimmed)
    } else {
        Url::parse(&format!("https://{trimmed}"))
    };
    let url = parsed.map_err(|e| format!("invalid target URL \"{trimmed}\": {e}"))?;
    let host = url
        .host_str()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("invalid target URL \"{trimmed}\": it has no host"))?;
    Ok(host)
}

/// Exact match, or `*.suffix` matching strict subdomains of `suffix`.
pub(crate) fn domain_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    match pattern.strip_prefix('*') {
        // `.suffix`: the host must end with it and have at least one more character.
        Some(dot_suffix) if dot_suffix.starts_with('.') => {
            host.len() > dot_suffix.len() && ends_with_ignore_case(host, dot_suffix)
        }
        _ => pattern.eq_ignore_ascii_case(host),
    }
}

fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text
            .get(text.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_is_strict() {
        assert!(domain_matches("*.example.com", "api.example.com"));
        assert!(domain_matches("*.example.com", "a.b.example.com"));
        assert!(!domain_matches("*.example.com", "example.com"));
        assert!(!domain_matches("*.example.com", "badexample.com"));
        assert!(!domain_matches("*.example.com", ".example.com.evil"));
        assert!(domain_matches("example.com", "EXAMPLE.com"));
        assert!(!domain_matches("example.com", "api.example.com"));
    }

    #[test]
    fn hosts() {
        assert_eq!(
            target_host("https://API.GitHub.com./x"),
            Ok("api.github.com".into())
        );
        assert_eq!(
            target_host("api.github.com:8443/repos"),
            Ok("api.github.com".into())
        );
        assert_eq!(target_host("localhost:8080"), Ok("localhost".into()));
        assert!(target_host("").is_err());
        assert!(target_host("https://").is_err());
        assert!(target_host("file:///etc/passwd").is_err());
        assert!(target_host("exa mple.com").is_err());
    }
}
