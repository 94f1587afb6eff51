//! The policy building blocks: [`ServiceDescriptor`], [`HeaderTransform`],
//! [`HeaderEncoding`] and [`CredentialSource`].
//!
//! These are builders: nothing is validated until the descriptors are handed to
//! [`Policy::allow_services`](crate::Policy::allow_services), which trims, lower-cases,
//! de-duplicates, sorts and rejects malformed input. A descriptor read back from a
//! [`Policy`](crate::Policy) is always normalised.
//!
//! Getters whose plain name is taken by a builder method carry a `get_` prefix
//! (`get_description`, `get_domains`, `get_value_prefix`, ...), as in `clap`.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::{PolicyError, Secret};

/// How the credential part of a header value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HeaderEncoding {
    /// The credential is sent as is.
    #[default]
    Plain,
    /// The credential (with its credential prefix) is sent as standard base64 of its UTF-8 bytes.
    Base64,
}

impl HeaderEncoding {
    /// The JSON spelling: `plain` or `base64`.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderEncoding::Plain => "plain",
            HeaderEncoding::Base64 => "base64",
        }
    }

    /// Encodes `text` with this encoding.
    pub fn encode(self, text: &str) -> String {
        match self {
            HeaderEncoding::Plain => text.to_owned(),
            HeaderEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(text),
        }
    }
}

/// Where the credential of a header transform comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CredentialSource {
    /// Resolved at compile (apply) time from the environment variable of the service id
    /// (see [`default_credential_variable`](crate::default_credential_variable)).
    /// The only kind a durable policy may hold besides `Redacted`.
    #[default]
    Default,
    /// An explicit secret; allowed only in per-run policies (see
    /// [`Policy::ensure_durable`](crate::Policy::ensure_durable)).
    Secret(Secret),
    /// Placeholder left by [`Policy::redacted`](crate::Policy::redacted); cannot be compiled.
    Redacted,
}

impl CredentialSource {
    /// The JSON `kind`: `default`, `value` or `redacted`.
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialSource::Default => "default",
            CredentialSource::Secret(_) => "value",
            CredentialSource::Redacted => "redacted",
        }
    }

    /// True for [`CredentialSource::Secret`].
    pub fn is_secret(&self) -> bool {
        matches!(self, CredentialSource::Secret(_))
    }
}

/// Sets one request header from a credential:
/// value = `value_prefix + encoding(credential_prefix + credential)`.
///
/// ```
/// use sandkit_policies::{HeaderEncoding, HeaderTransform};
/// // GitHub git-over-HTTPS: `authorization: Basic base64("x-access-token:" + token)`
/// let basic = HeaderTransform::new("authorization")
///     .value_prefix("Basic ")
///     .credential_prefix("x-access-token:")
///     .encoding(HeaderEncoding::Base64);
/// assert_eq!(basic.get_encoding(), HeaderEncoding::Base64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTransform {
    header_name: String,
    value_prefix: String,
    credential_prefix: String,
    encoding: HeaderEncoding,
    credential: CredentialSource,
}

impl HeaderTransform {
    /// A transform setting `header_name` to the plain default credential.
    pub fn new(header_name: impl Into<String>) -> Self {
        HeaderTransform {
            header_name: header_name.into(),
            value_prefix: String::new(),
            credential_prefix: String::new(),
            encoding: HeaderEncoding::Plain,
            credential: CredentialSource::Default,
        }
    }

    /// `authorization: Bearer <default credential>`.
    pub fn bearer() -> Self {
        HeaderTransform::new("authorization").value_prefix("Bearer ")
    }

    /// Text put before the encoded credential (e.g. `"Bearer "`); not encoded.
    pub fn value_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.value_prefix = prefix.into();
        self
    }

    /// Text joined to the credential before encoding (e.g. `"x-access-token:"`).
    pub fn credential_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.credential_prefix = prefix.into();
        self
    }

    /// How the credential (with its prefix) is encoded.
    pub fn encoding(mut self, encoding: HeaderEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Where the credential comes from.
    pub fn credential(mut self, credential: CredentialSource) -> Self {
        self.credential = credential;
        self
    }

    /// The header name (lower-case once normalised into a policy).
    pub fn header_name(&self) -> &str {
        &self.header_name
    }

    /// The value prefix (empty when none).
    pub fn get_value_prefix(&self) -> &str {
        &self.value_prefix
    }

    /// The credential prefix (empty when none).
    pub fn get_credential_prefix(&self) -> &str {
        &self.credential_prefix
    }

    /// The credential encoding.
    pub fn get_encoding(&self) -> HeaderEncoding {
        self.encoding
    }

    /// The credential source.
    pub fn get_credential(&self) -> &CredentialSource {
        &self.credential
    }

    /// The header value for `credential`: `value_prefix + encoding(credential_prefix + credential)`.
    pub fn render(&self, credential: &str) -> Secret {
        let mut joined = String::with_capacity(self.credential_prefix.len() + credential.len());
        joined.push_str(&self.credential_prefix);
        joined.push_str(credential);
        let mut value = self.value_prefix.clone();
        value.push_str(&self.encoding.encode(&joined));
        Secret::new(value)
    }

    pub(crate) fn set_header_name(&mut self, name: String) {
        self.header_name = name;
    }

    pub(crate) fn set_credential(&mut self, credential: CredentialSource) {
        self.credential = credential;
    }
}

/// One service a policy allows: its domains and the headers injected on requests to them.
///
/// ```
/// use sandkit_policies::{HeaderTransform, CredentialSource, Policy, Secret, ServiceDescriptor};
/// let internal = ServiceDescriptor::new("internal-api", "Internal API")
///     .description("Our staging API")
///     .domains(["api.staging.example.com", "*.cdn.example.com"])
///     .domain_header(
///         "api.staging.example.com",
///         HeaderTransform::new("x-api-key")
///             .credential(CredentialSource::Secret(Secret::new("test-secret"))),
///     );
/// let policy = Policy::allow_services([internal])?;
/// assert_eq!(policy.describe(), "allow-services:internal-api");
/// # Ok::<(), sandkit_policies::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDescriptor {
    id: String,
    name: String,
    description: Option<String>,
    domains: Vec<String>,
    headers: Vec<HeaderTransform>,
    domain_headers: BTreeMap<String, Vec<HeaderTransform>>,
    /// A construction error reported by `Policy::allow_services` (builder-style).
    pending: Option<Box<PolicyError>>,
}

impl ServiceDescriptor {
    /// A service with an id (used in descriptions and credential lookup) and a display name.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceDescriptor {
            id: id.into(),
            name: name.into(),
            description: None,
            domains: Vec::new(),
            headers: Vec::new(),
            domain_headers: BTreeMap::new(),
            pending: None,
        }
    }

    /// Sets the informational description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds an allowed domain: an exact host (`api.example.com`) or `*.example.com`
    /// (strict subdomains only, never `example.com` itself).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domains.push(domain.into());
        self
    }

    /// Adds several allowed domains.
    pub fn domains<I>(mut self, domains: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.domains.extend(domains.into_iter().map(Into::into));
        self
    }

    /// Adds a header transform applied to every domain without its own domain headers.
    pub fn header(mut self, transform: HeaderTransform) -> Self {
        self.headers.push(transform);
        self
    }

    /// Adds a header transform applied only to `domain` (which must also be declared
    /// with [`domain`](Self::domain)). A domain with domain headers ignores the
    /// service-wide [`header`](Self::header)s.
    pub fn domain_header(mut self, domain: impl Into<String>, transform: HeaderTransform) -> Self {
        self.domain_headers
            .entry(domain.into())
            .or_default()
            .push(transform);
        self
    }

    /// Replaces the header transforms of `domain`. An empty list means "plain allow, no
    /// headers", even when the service has service-wide headers.
    pub fn domain_header_list<I>(mut self, domain: impl Into<String>, transforms: I) -> Self
    where
        I: IntoIterator<Item = HeaderTransform>,
    {
        self.domain_headers
            .insert(domain.into(), transforms.into_iter().collect());
        self
    }

    /// Uses `secret` for every header transform of this service that resolves a
    /// credential (default or explicit), instead of the environment variable.
    ///
    /// An empty or blank secret makes [`Policy::allow_services`](crate::Policy::allow_services)
    /// fail; it never falls back to the environment. A service without any credential
    /// to override (`npm`, `bun`) fails the same way.
    pub fn api_key(self, secret: Secret) -> Self {
        self.override_credentials(secret)
    }

    /// The GitHub spelling of [`api_key`](Self::api_key); identical behaviour.
    pub fn token(self, secret: Secret) -> Self {
        self.override_credentials(secret)
    }

    fn override_credentials(mut self, secret: Secret) -> Self {
        let mut overridden = false;
        for transform in self.transforms_mut() {
            if matches!(
                transform.get_credential(),
                CredentialSource::Default | CredentialSource::Secret(_)
            ) {
                transform.set_credential(CredentialSource::Secret(secret.clone()));
                overridden = true;
            }
        }
        if !overridden && self.pending.is_none() {
            self.pending = Some(Box::new(PolicyError::NothingToOverride {
                service: self.id.trim().to_owned(),
            }));
        }
        self
    }

    /// The service id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The description, if any.
    pub fn get_description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The allowed domains (sorted and de-duplicated once normalised).
    pub fn get_domains(&self) -> &[String] {
        &self.domains
    }

    /// Service-wide header transforms.
    pub fn headers(&self) -> &[HeaderTransform] {
        &self.headers
    }

    /// Per-domain header transforms.
    pub fn domain_headers(&self) -> &BTreeMap<String, Vec<HeaderTransform>> {
        &self.domain_headers
    }

    /// The transforms applied to requests to `domain`: its domain headers when present
    /// (even an empty list), else the service-wide headers.
    pub fn transforms_for(&self, domain: &str) -> &[HeaderTransform] {
        match self.domain_headers.get(domain) {
            Some(list) => list,
            None => &self.headers,
        }
    }

    /// Every header transform, service-wide first.
    pub fn all_transforms(&self) -> impl Iterator<Item = &HeaderTransform> {
        self.headers
            .iter()
            .chain(self.domain_headers.values().flatten())
    }

    pub(crate) fn transforms_mut(&mut self) -> impl Iterator<Item = &mut HeaderTransform> {
        self.headers
            .iter_mut()
            .chain(self.domain_headers.values_mut().flatten())
    }

    pub(crate) fn with_pending(mut self, error: PolicyError) -> Self {
        self.pending = Some(Box::new(error));
        self
    }

    pub(crate) fn take_pending(&mut self) -> Option<PolicyError> {
        self.pending.take().map(|boxed| *boxed)
    }

    /// Splits into raw parts for normalisation.
    pub(crate) fn into_parts(self) -> RawService {
        RawService {
            id: self.id,
            name: self.name,
            description: self.description,
            domains: self.domains,
            headers: self.headers,
            domain_headers: self.domain_headers,
        }
    }

    /// Builds from normalised parts.
    pub(crate) fn from_parts(parts: RawService) -> Self {
        ServiceDescriptor {
            id: parts.id,
            name: parts.name,
            description: parts.description,
            domains: parts.domains,
            headers: parts.headers,
            domain_headers: parts.domain_headers,
            pending: None,
        }
    }
}

impl From<&ServiceDescriptor> for ServiceDescriptor {
    fn from(value: &ServiceDescriptor) -> Self {
        value.clone()
    }
}

/// The fields of a [`ServiceDescriptor`], for normalisation.
pub(crate) struct RawService {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) domains: Vec<String>,
    pub(crate) headers: Vec<HeaderTransform>,
    pub(crate) domain_headers: BTreeMap<String, Vec<HeaderTransform>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_plain_and_base64() {
        let bearer = HeaderTransform::bearer();
        assert_eq!(bearer.render("tok").expose(), "Bearer tok");
        let basic = HeaderTransform::new("authorization")
            .value_prefix("Basic ")
            .credential_prefix("x-access-token:")
            .encoding(HeaderEncoding::Base64);
        // base64("x-access-token:tok")
        assert_eq!(
            basic.render("tok").expose(),
            "Basic eC1hY2Nlc3MtdG9rZW46dG9r"
        );
    }

    #[test]
    fn override_replaces_default_and_previous_secret_only() {
        let svc = ServiceDescriptor::new("s", "S")
            .domain("a.example.com")
            .header(HeaderTransform::new("x-a"))
            .header(HeaderTransform::new("x-b").credential(CredentialSource::Redacted))
            .api_key(Secret::new("one"))
            .api_key(Secret::new("two"));
        let kinds: Vec<_> = svc
            .all_transforms()
            .map(|t| t.get_credential().clone())
            .collect();
        assert_eq!(
            kinds,
            vec![
                CredentialSource::Secret(Secret::new("two")),
                CredentialSource::Redacted
            ]
        );
    }

    #[test]
    fn override_without_credentials_is_recorded() {
        let mut svc = ServiceDescriptor::new("plain", "Plain")
            .domain("a.example.com")
            .token(Secret::new("x"));
        assert_eq!(
            svc.take_pending(),
            Some(PolicyError::NothingToOverride {
                service: "plain".into()
            })
        );
    }

    #[test]
    fn transforms_for_prefers_domain_headers_even_empty() {
        let svc = ServiceDescriptor::new("s", "S")
            .domains(["a.example.com", "b.example.com"])
            .header(HeaderTransform::bearer())
            .domain_header_list("b.example.com", []);
        assert_eq!(svc.transforms_for("a.example.com").len(), 1);
        assert!(svc.transforms_for("b.example.com").is_empty());
    }
}
