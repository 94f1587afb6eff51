//! Compilation of a [`Policy`] to provider-neutral [`FirewallRules`].

use std::collections::{BTreeMap, HashMap};

use crate::credentials::{CredentialEnv, default_credential_variable};
use crate::model::{CredentialSource, HeaderTransform, ServiceDescriptor};
use crate::{Policy, PolicyError, Secret};

/// Provider-neutral compiled firewall rules. `Debug` prints header values as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallRules {
    /// Everything allowed.
    AllowAll,
    /// Nothing allowed.
    DenyAll,
    /// Only these domains (one entry per domain, in first-declared order: services by
    /// id, each service's domains sorted).
    Allow(Vec<DomainRule>),
}

/// One allowed domain with its ordered header-injection rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    /// Exact host or `*.suffix`.
    pub domain: String,
    /// Services that allowed this domain, in id order.
    pub service_ids: Vec<String>,
    /// Header-injection rules, in order (empty = plain allow).
    pub rules: Vec<HeaderRule>,
}

/// Headers set on outgoing requests to a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    /// Header name → value.
    pub headers: BTreeMap<String, Secret>,
}

impl FirewallRules {
    /// True when any domain has header-injection rules.
    pub fn has_header_rules(&self) -> bool {
        match self {
            FirewallRules::Allow(domains) => domains.iter().any(|d| !d.rules.is_empty()),
            FirewallRules::AllowAll | FirewallRules::DenyAll => false,
        }
    }
}

impl Policy {
    /// Compiles to firewall rules, resolving default credentials from `env`.
    ///
    /// For every service (in id order) and each of its domains, the domain's header rule
    /// comes from its domain headers when present (even an empty list), else from the
    /// service-wide headers; all headers of that list form one [`HeaderRule`]. Services
    /// sharing a domain share one [`DomainRule`] (their ids and rules concatenated).
    /// A header value is `value_prefix + encoding(credential_prefix + credential)`.
    ///
    /// ```
    /// use sandkit_policies::{FirewallRules, MapEnv, Policy, presets::github};
    /// let env = MapEnv::new().with("GITHUB_TOKEN", "test-secret");
    /// let FirewallRules::Allow(domains) = Policy::allow_services([github()])?.compile(&env)? else {
    ///     unreachable!()
    /// };
    /// let api = domains.iter().find(|d| d.domain == "api.github.com").unwrap();
    /// assert_eq!(api.rules[0].headers["authorization"].expose(), "Bearer test-secret");
    /// # Ok::<(), sandkit_policies::PolicyError>(())
    /// ```
    ///
    /// # Errors
    /// [`PolicyError::MissingCredential`] when a default credential's variable is unset
    /// or blank, [`PolicyError::NoDefaultCredential`] for a default credential of a
    /// service id without a known variable, [`PolicyError::RedactedCredential`] for a
    /// redacted credential.
    pub fn compile(&self, env: &dyn CredentialEnv) -> Result<FirewallRules, PolicyError> {
        match self.mode() {
            crate::PolicyMode::AllowAll => Ok(FirewallRules::AllowAll),
            crate::PolicyMode::DenyAll => Ok(FirewallRules::DenyAll),
            crate::PolicyMode::AllowServices => compile_services(self.services(), env),
        }
    }
}

fn compile_services(
    services: &[ServiceDescriptor],
    env: &dyn CredentialEnv,
) -> Result<FirewallRules, PolicyError> {
    let mut rules: Vec<DomainRule> = Vec::new();
    let mut by_domain: HashMap<String, usize> = HashMap::new();
    for service in services {
        for domain in service.get_domains() {
            let transforms = service.transforms_for(domain);
            let header_rule = if transforms.is_empty() {
                None
            } else {
                let mut headers = BTreeMap::new();
                for transform in transforms {
                    let credential = resolve(service, transform, env)?;
                    headers.insert(
                        transform.header_name().to_owned(),
                        transform.render(credential.expose()),
                    );
                }
                Some(HeaderRule { headers })
            };
            let index = *by_domain.entry(domain.clone()).or_insert_with(|| {
                rules.push(DomainRule {
                    domain: domain.clone(),
                    service_ids: Vec::new(),
                    rules: Vec::new(),
                });
                rules.len() - 1
            });
            if let Some(entry) = rules.get_mut(index) {
                entry.service_ids.push(service.id().to_owned());
                entry.rules.extend(header_rule);
            }
        }
    }
    Ok(FirewallRules::Allow(rules))
}

fn resolve(
    service: &ServiceDescriptor,
    transform: &HeaderTransform,
    env: &dyn CredentialEnv,
) -> Result<Secret, PolicyError> {
    match transform.get_credential() {
        CredentialSource::Secret(secret) => Ok(secret.clone()),
        CredentialSource::Redacted => Err(PolicyError::RedactedCredential {
            service: service.id().to_owned(),
        }),
        CredentialSource::Default => {
            let variable = default_credential_variable(service.id()).ok_or_else(|| {
                PolicyError::NoDefaultCredential {
                    service: service.id().to_owned(),
                }
            })?;
            match env.var(variable) {
                Some(value) if !value.trim().is_empty() => Ok(Secret::new(value)),
                _ => Err(PolicyError::MissingCredential {
                    service: service.id().to_owned(),
                    variable: variable.to_owned(),
                }),
            }
        }
    }
}
