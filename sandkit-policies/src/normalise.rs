//! Validation and normalisation of service descriptors (the original's `allowServices`).
//!
//! Errors carry a JSON-style path relative to the policy object (`services[1].domains`)
//! so that [`Policy::from_json`](crate::Policy::from_json) can name the location, while
//! [`Policy::allow_services`](crate::Policy::allow_services) drops it.

use std::collections::BTreeMap;

use crate::PolicyError;
use crate::credentials::default_credential_variable;
use crate::model::{CredentialSource, HeaderTransform, RawService, ServiceDescriptor};

/// A validation error and where it was found.
#[derive(Debug)]
pub(crate) struct Located {
    pub(crate) path: String,
    pub(crate) error: PolicyError,
}

impl Located {
    fn new(path: String, error: PolicyError) -> Self {
        Located { path, error }
    }
}

/// Normalises a service list: each service validated, duplicates by id resolved
/// (later wins), result sorted by id and non-empty.
pub(crate) fn normalise_services(
    services: Vec<ServiceDescriptor>,
) -> Result<Vec<ServiceDescriptor>, Located> {
    if services.is_empty() {
        return Err(Located::new("services".into(), PolicyError::NoServices));
    }
    let mut by_id = BTreeMap::new();
    for (index, service) in services.into_iter().enumerate() {
        let service = normalise_service(index, service)?;
        by_id.insert(service.id().to_owned(), service);
    }
    Ok(by_id.into_values().collect())
}

fn normalise_service(
    index: usize,
    mut service: ServiceDescriptor,
) -> Result<ServiceDescriptor, Located> {
    let at = |suffix: &str| format!("services[{index}]{suffix}");
    if let Some(error) = service.take_pending() {
        return Err(Located::new(at(""), error));
    }
    let raw = service.into_parts();

    let id = raw.id.trim().to_owned();
    if id.is_empty() {
        return Err(Located::new(
            at(".id"),
            PolicyError::EmptyServiceId { index },
        ));
    }
    let name = raw.name.trim().to_owned();
    if name.is_empty() {
        return Err(Located::new(
            at(".name"),
            PolicyError::MissingName { service: id },
        ));
    }
    let description = raw
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());

    let mut domains = Vec::with_capacity(raw.domains.len());
    for (position, given) in raw.domains.iter().enumerate() {
        match normalise_domain(given) {
            Ok(Some(domain)) => domains.push(domain),
            Ok(None) => {}
            Err(reason) => {
                return Err(Located::new(
                    at(&format!(".domains[{position}]")),
                    PolicyError::InvalidDomain {
                        service: id,
                        domain: given.clone(),
                        reason,
                    },
                ));
            }
        }
    }
    domains.sort();
    domains.dedup();
    if domains.is_empty() {
        return Err(Located::new(
            at(".domains"),
            PolicyError::NoDomains { service: id },
        ));
    }

    let mut headers = Vec::with_capacity(raw.headers.len());
    for (position, transform) in raw.headers.into_iter().enumerate() {
        let transform = normalise_transform(&id, transform).map_err(|(field, error)| {
            Located::new(at(&format!(".headers[{position}]{field}")), error)
        })?;
        headers.push(transform);
    }

    let mut domain_headers: BTreeMap<String, Vec<HeaderTransform>> = BTreeMap::new();
    for (given, transforms) in raw.domain_headers {
        let key_path = child(".domainHeaders", &given);
        let Some(domain) = normalise_domain_key(&given) else {
            continue;
        };
        if domains.binary_search(&domain).is_err() {
            return Err(Located::new(
                at(&key_path),
                PolicyError::UndeclaredDomainHeaders {
                    service: id,
                    domain: given,
                },
            ));
        }
        let list = domain_headers.entry(domain).or_default();
        for (position, transform) in transforms.into_iter().enumerate() {
            let transform = normalise_transform(&id, transform).map_err(|(field, error)| {
                Located::new(at(&format!("{key_path}[{position}]{field}")), error)
            })?;
            list.push(transform);
        }
    }

    Ok(ServiceDescriptor::from_parts(RawService {
        id,
        name,
        description,
        domains,
        headers,
        domain_headers,
    }))
}

/// `parent.key`, or `parent["odd key"]` when the key is not a plain identifier.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (plain, parent.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{parent}.{key}"),
        (false, _) => format!("{parent}[{}]", serde_json::Value::String(key.to_owned())),
    }
}

/// Normalises one transform; the error carries the field suffix (`.headerName`, ...).
fn normalise_transform(
    service: &str,
    mut transform: HeaderTransform,
) -> Result<HeaderTransform, (&'static str, PolicyError)> {
    let given = transform.header_name().trim();
    if given.is_empty() {
        return Err((
            ".headerName",
            PolicyError::EmptyHeaderName {
                service: service.to_owned(),
            },
        ));
    }
    if !given.bytes().all(is_header_name_byte) {
        return Err((
            ".headerName",
            PolicyError::InvalidHeaderName {
                service: service.to_owned(),
                header: transform.header_name().to_owned(),
            },
        ));
    }
    let name = given.to_ascii_lowercase();
    transform.set_header_name(name);
    if let CredentialSource::Secret(secret) = transform.get_credential()
        && secret.is_blank()
    {
        return Err((
            ".credential.value",
            PolicyError::EmptyCredential {
                service: service.to_owned(),
                hint: override_hint(service),
            },
        ));
    }
    Ok(transform)
}

/// RFC 9110 `tchar`.
fn is_header_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// What to do about an empty explicit credential, per service id.
pub(crate) fn override_hint(service: &str) -> String {
    match (service, default_credential_variable(service)) {
        ("github", Some(var)) => format!(
            "github().token(..) needs a non-empty token; omit .token(..) to use {var} from the environment"
        ),
        ("aiGateway", Some(var)) => format!(
            "ai_gateway().api_key(..) needs a non-empty API key; omit .api_key(..) to use {var} from the environment"
        ),
        (_, Some(var)) => format!(
            "{service}().api_key(..) needs a non-empty API key; omit .api_key(..) to use {var} from the environment"
        ),
        (_, None) => "pass a non-empty secret, or remove the header transform".to_owned(),
    }
}

/// Trims, lower-cases and strips one trailing dot. `None` for an empty entry (dropped).
fn normalise_domain_key(given: &str) -> Option<String> {
    let trimmed = given.trim().to_ascii_lowercase();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(&trimmed);
    if trimmed.is_empty() {
        None
    } else {
        Some(trimmed.to_owned())
    }
}

/// Normalises and validates a domain pattern. `Ok(None)` for an empty entry (dropped).
pub(crate) fn normalise_domain(given: &str) -> Result<Option<String>, String> {
    let Some(domain) = normalise_domain_key(given) else {
        return Ok(None);
    };
    if domain.contains("://") {
        return Err("use a bare host name without a scheme, such as \"api.example.com\"".into());
    }
    if domain.contains('/') {
        return Err("remove the path; a domain is a host name only".into());
    }
    if domain.contains(':') {
        return Err("remove the port; domain rules apply to every port".into());
    }
    if domain == "*" {
        return Err(
            "a lone \"*\" is not supported; use an allow-all policy to allow every domain".into(),
        );
    }
    let host = domain.strip_prefix("*.").unwrap_or(&domain);
    if host.contains('*') {
        return Err("only a leading \"*.\" wildcard is supported, as in \"*.example.com\"".into());
    }
    if host.len() > 253 {
        return Err("a host name is at most 253 characters long".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err("a host name has no empty labels (no leading or doubled dots)".into());
        }
        if label.len() > 63 {
            return Err("each dot-separated label is at most 63 characters long".into());
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(if bad.is_ascii() {
                format!("the character {bad:?} is not allowed; use letters, digits, '-' and '_'")
            } else {
                "use the ASCII (punycode) form of internationalised host names".to_owned()
            });
        }
    }
    Ok(Some(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_normalisation() {
        assert_eq!(
            normalise_domain("  API.Example.COM. "),
            Ok(Some("api.example.com".into()))
        );
        assert_eq!(
            normalise_domain("*.Example.com"),
            Ok(Some("*.example.com".into()))
        );
        assert_eq!(normalise_domain("   "), Ok(None));
        assert_eq!(normalise_domain("10.0.0.1"), Ok(Some("10.0.0.1".into())));
        for bad in [
            "https://example.com",
            "example.com/path",
            "example.com:443",
            "*",
            "*.",
            "a.*.com",
            "**.com",
            "a..com",
            ".a.com",
            "exa mple.com",
            "bücher.de",
        ] {
            assert!(normalise_domain(bad).is_err(), "{bad} should be rejected");
        }
        let long_label = "a".repeat(64);
        assert!(normalise_domain(&format!("{long_label}.com")).is_err());
    }

    #[test]
    fn hints_name_the_variable() {
        assert!(override_hint("codex").contains("CODEX_API_KEY"));
        assert!(override_hint("gemini").contains("GEMINI_API_KEY"));
        assert!(override_hint("github").contains("GITHUB_TOKEN"));
        assert!(override_hint("github").contains(".token("));
        assert!(override_hint("aiGateway").contains("AI_GATEWAY_API_KEY"));
        assert!(override_hint("custom").contains("non-empty secret"));
    }
}
