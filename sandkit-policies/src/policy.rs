//! [`Policy`] and [`PolicyMode`]: construction, inspection, durability and redaction.

use std::fmt;

use crate::PolicyError;
use crate::model::{CredentialSource, ServiceDescriptor};
use crate::normalise::normalise_services;

/// The three policy modes, mirroring the Vercel firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyMode {
    /// Full internet access.
    AllowAll,
    /// No network access.
    DenyAll,
    /// Only the domains of the listed services.
    AllowServices,
}

impl PolicyMode {
    /// The JSON / description spelling: `allow-all`, `deny-all`, `allow-services`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::AllowAll => "allow-all",
            PolicyMode::DenyAll => "deny-all",
            PolicyMode::AllowServices => "allow-services",
        }
    }
}

impl fmt::Display for PolicyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised network egress policy.
///
/// Build one with [`Policy::allow_all`], [`Policy::deny_all`] or
/// [`Policy::allow_services`]; parse the CLI text form with [`str::parse`] or the stored
/// JSON form with [`Policy::from_json`] (or serde). Every constructor validates and
/// normalises, so a `Policy` value is always well-formed: services sorted by id and
/// unique, each with a name and at least one domain.
///
/// `Debug` never prints secrets (a [`Secret`](crate::Secret) prints `[redacted]`), and
/// serialising turns every explicit secret into `{"kind":"redacted"}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Policy {
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inner {
    AllowAll,
    DenyAll,
    AllowServices(Vec<ServiceDescriptor>),
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Policy");
        out.field("mode", &self.mode());
        if let Inner::AllowServices(services) = &self.inner {
            out.field("services", services);
        }
        out.finish()
    }
}

impl Policy {
    /// Full internet access.
    pub fn allow_all() -> Self {
        Policy {
            inner: Inner::AllowAll,
        }
    }

    /// No network access.
    pub fn deny_all() -> Self {
        Policy {
            inner: Inner::DenyAll,
        }
    }

    /// Only the domains of `services`, with their header injections.
    ///
    /// Normalises as the original does: ids, names, descriptions and domains trimmed,
    /// domains lower-cased, de-duplicated and sorted, header names lower-cased,
    /// services de-duplicated by id (the later one wins) and sorted by id.
    ///
    /// # Errors
    /// [`PolicyError::NoServices`] for an empty list; for a service:
    /// [`EmptyServiceId`](PolicyError::EmptyServiceId),
    /// [`MissingName`](PolicyError::MissingName), [`NoDomains`](PolicyError::NoDomains),
    /// [`InvalidDomain`](PolicyError::InvalidDomain),
    /// [`EmptyHeaderName`](PolicyError::EmptyHeaderName),
    /// [`InvalidHeaderName`](PolicyError::InvalidHeaderName),
    /// [`UndeclaredDomainHeaders`](PolicyError::UndeclaredDomainHeaders),
    /// [`EmptyCredential`](PolicyError::EmptyCredential) (an explicit override that is
    /// blank), or an error recorded while building a preset
    /// ([`InvalidBaseUrl`](PolicyError::InvalidBaseUrl),
    /// [`NothingToOverride`](PolicyError::NothingToOverride)).
    pub fn allow_services<I>(services: I) -> Result<Policy, PolicyError>
    where
        I: IntoIterator,
        I::Item: Into<ServiceDescriptor>,
    {
        let services = services.into_iter().map(Into::into).collect();
        normalise_services(services)
            .map(Policy::from_services)
            .map_err(|located| located.error)
    }

    /// `allow_services([service])`.
    ///
    /// # Errors
    /// As [`Policy::allow_services`].
    pub fn allow_service(service: impl Into<ServiceDescriptor>) -> Result<Policy, PolicyError> {
        Policy::allow_services([service.into()])
    }

    /// Wraps already-normalised services.
    pub(crate) fn from_services(services: Vec<ServiceDescriptor>) -> Policy {
        Policy {
            inner: Inner::AllowServices(services),
        }
    }

    /// The mode.
    pub fn mode(&self) -> PolicyMode {
        match self.inner {
            Inner::AllowAll => PolicyMode::AllowAll,
            Inner::DenyAll => PolicyMode::DenyAll,
            Inner::AllowServices(_) => PolicyMode::AllowServices,
        }
    }

    /// The allowed services, sorted by id (empty for allow-all and deny-all).
    pub fn services(&self) -> &[ServiceDescriptor] {
        match &self.inner {
            Inner::AllowServices(services) => services,
            Inner::AllowAll | Inner::DenyAll => &[],
        }
    }

    /// The service with this id, if the policy allows it.
    pub fn service(&self, id: &str) -> Option<&ServiceDescriptor> {
        self.services().iter().find(|s| s.id() == id)
    }

    /// `allow-all`, `deny-all` or `allow-services:<ids joined by ",">` (ids sorted).
    /// Stored as the policy id of runs and used in setup fingerprints.
    pub fn describe(&self) -> String {
        match &self.inner {
            Inner::AllowAll | Inner::DenyAll => self.mode().as_str().to_owned(),
            Inner::AllowServices(services) => {
                let ids: Vec<&str> = services.iter().map(ServiceDescriptor::id).collect();
                format!("allow-services:{}", ids.join(","))
            }
        }
    }

    /// True when any header transform holds an explicit [`Secret`](crate::Secret).
    pub fn has_secrets(&self) -> bool {
        self.services()
            .iter()
            .any(|s| s.all_transforms().any(|t| t.get_credential().is_secret()))
    }

    /// True when any service injects any header; a provider that cannot inject headers
    /// must refuse such a policy rather than run with weaker rules.
    pub fn requires_header_injection(&self) -> bool {
        self.services()
            .iter()
            .any(|s| s.all_transforms().next().is_some())
    }

    /// Rejects explicit secrets: durable places (workspace default, setup, session
    /// override) may only hold default or redacted credentials.
    ///
    /// # Errors
    /// [`PolicyError::NotDurable`] naming the first service (by id) holding a secret.
    pub fn ensure_durable(&self) -> Result<(), PolicyError> {
        match self
            .services()
            .iter()
            .find(|s| s.all_transforms().any(|t| t.get_credential().is_secret()))
        {
            Some(service) => Err(PolicyError::NotDurable {
                service: service.id().to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// A copy with every explicit secret replaced by [`CredentialSource::Redacted`]
    /// (default credentials stay default). This is what gets stored for a per-run policy.
    pub fn redacted(&self) -> Policy {
        let mut copy = self.clone();
        if let Inner::AllowServices(services) = &mut copy.inner {
            for service in services {
                for transform in service.transforms_mut() {
                    if transform.get_credential().is_secret() {
                        transform.set_credential(CredentialSource::Redacted);
                    }
                }
            }
        }
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HeaderTransform, Secret};

    fn svc(id: &str) -> ServiceDescriptor {
        ServiceDescriptor::new(id, id.to_uppercase()).domain(format!("{id}.example.com"))
    }

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_sync() {
        assert_send_sync::<Policy>();
        assert_send_sync::<ServiceDescriptor>();
        assert_send_sync::<crate::FirewallRules>();
        assert_send_sync::<crate::Evaluation>();
        assert_send_sync::<crate::MapEnv>();
        assert_send_sync::<crate::ProcessEnv>();
        assert_send_sync::<Box<dyn crate::CredentialEnv>>();
    }

    #[test]
    fn describe_modes() {
        assert_eq!(Policy::allow_all().describe(), "allow-all");
        assert_eq!(Policy::deny_all().describe(), "deny-all");
        let p = Policy::allow_services([svc("b"), svc("a")]).unwrap();
        assert_eq!(p.describe(), "allow-services:a,b");
        assert_eq!(p.mode(), PolicyMode::AllowServices);
        assert_eq!(p.mode().to_string(), "allow-services");
        assert!(Policy::allow_all().services().is_empty());
        assert!(p.service("a").is_some());
        assert!(p.service("c").is_none());
    }

    #[test]
    fn debug_hides_secrets() {
        let p = Policy::allow_services([svc("a")
            .header(HeaderTransform::bearer())
            .api_key(Secret::new("test-secret-value"))])
        .unwrap();
        let debug = format!("{p:?}");
        assert!(!debug.contains("test-secret-value"), "{debug}");
        assert!(debug.contains("[redacted]"));
        assert_eq!(
            format!("{:?}", Policy::deny_all()),
            "Policy { mode: DenyAll }"
        );
    }

    #[test]
    fn header_injection_flag() {
        assert!(
            !Policy::allow_services([svc("a")])
                .unwrap()
                .requires_header_injection()
        );
        assert!(!Policy::allow_all().requires_header_injection());
        let with_header = svc("a").header(HeaderTransform::bearer());
        assert!(
            Policy::allow_services([with_header])
                .unwrap()
                .requires_header_injection()
        );
        let only_empty_domain_list = svc("a").domain_header_list("a.example.com", []);
        assert!(
            !Policy::allow_services([only_empty_domain_list])
                .unwrap()
                .requires_header_injection()
        );
    }
}
