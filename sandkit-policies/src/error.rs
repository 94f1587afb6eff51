//! [`PolicyError`]: every way building, parsing, storing or compiling a policy can fail.

/// Errors building, parsing, storing or compiling a policy.
///
/// Every message names the offending field or service and says what to do next.
/// No message ever contains a credential value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A default credential was needed but its environment variable is unset or blank.
    #[error(
        "policy service \"{service}\" requires {variable}: set {variable} in the environment, \
         or pass an explicit credential for this run"
    )]
    MissingCredential {
        /// Service id.
        service: String,
        /// Environment variable name.
        variable: String,
    },
    /// A header transform uses the default credential, but no environment variable is
    /// known for this service id (only `codex`, `gemini`, `github` and `aiGateway` have one).
    #[error(
        "policy service \"{service}\" uses a default credential, but no environment variable \
         is known for that service id; give its header transforms an explicit secret \
         (CredentialSource::Secret) for this run"
    )]
    NoDefaultCredential {
        /// Service id.
        service: String,
    },
    /// A redacted credential cannot be applied.
    #[error(
        "policy service \"{service}\" contains a redacted credential and cannot be applied; \
         pass the secret again as an explicit per-run credential, or use the default credential"
    )]
    RedactedCredential {
        /// Service id.
        service: String,
    },
    /// An explicit secret was given where the policy is stored durably.
    #[error(
        "policy service \"{service}\" contains an explicit secret and cannot be stored durably; \
         durable policies must use default (environment) credentials, pass explicit secrets \
         only as per-run overrides"
    )]
    NotDurable {
        /// Service id.
        service: String,
    },
    /// The policy mode is not one of `allow-all`, `deny-all`, `allow-services`.
    #[error(
        "unsupported policy mode \"{mode}\"; use \"allow-all\", \"deny-all\" or \"allow-services\""
    )]
    UnknownMode {
        /// The mode as given.
        mode: String,
    },
    /// An `allow-services` policy was built without any service.
    #[error(
        "an allow-services policy needs at least one service; \
         use a deny-all policy to allow no network access"
    )]
    NoServices,
    /// A service id is empty (after trimming).
    #[error("policy service at index {index} has an empty id; give every service a non-empty id")]
    EmptyServiceId {
        /// Zero-based index of the service in the input list.
        index: usize,
    },
    /// A service name is empty (after trimming).
    #[error("policy service \"{service}\" must have a name; set a non-empty name")]
    MissingName {
        /// Service id.
        service: String,
    },
    /// A service declares no domain (after trimming and dropping empty entries).
    #[error(
        "policy service \"{service}\" must declare at least one domain; \
         add one such as \"api.example.com\" or \"*.example.com\""
    )]
    NoDomains {
        /// Service id.
        service: String,
    },
    /// A domain is not an exact host name or a `*.suffix` pattern.
    #[error("policy service \"{service}\" has an invalid domain \"{domain}\": {reason}")]
    InvalidDomain {
        /// Service id.
        service: String,
        /// The domain as given.
        domain: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A header transform has no header name.
    #[error(
        "policy service \"{service}\" has a header transform without a header name; \
         set a header name such as \"authorization\""
    )]
    EmptyHeaderName {
        /// Service id.
        service: String,
    },
    /// A header name contains characters not allowed in HTTP header names.
    #[error(
        "policy service \"{service}\" has an invalid header name \"{header}\"; header names \
         may only contain ASCII letters, digits and !#$%&'*+-.^_`|~"
    )]
    InvalidHeaderName {
        /// Service id.
        service: String,
        /// The header name as given.
        header: String,
    },
    /// Per-domain headers were given for a domain the service does not declare.
    #[error(
        "policy service \"{service}\" defines domain headers for \"{domain}\" but does not \
         declare that domain; add \"{domain}\" to its domains or remove those domain headers"
    )]
    UndeclaredDomainHeaders {
        /// Service id.
        service: String,
        /// The domain key as given.
        domain: String,
    },
    /// An explicit credential is empty or blank.
    #[error("policy service \"{service}\" has an empty explicit credential: {hint}")]
    EmptyCredential {
        /// Service id.
        service: String,
        /// What to do instead (names the environment variable for presets).
        hint: String,
    },
    /// `.api_key(..)` / `.token(..)` was called on a service with no credential to override.
    #[error(
        "policy service \"{service}\" has no credential to override; \
         remove the .api_key(..)/.token(..) call"
    )]
    NothingToOverride {
        /// Service id.
        service: String,
    },
    /// The text form is empty.
    #[error(
        "policy spec is empty; use \"allow-all\", \"deny-all\" or a comma-separated list of \
         presets (ai-gateway, bun, codex, gemini, github, npm)"
    )]
    EmptySpec,
    /// The text form names an unknown preset.
    #[error(
        "unknown policy preset \"{name}\"; known presets: ai-gateway, bun, codex, gemini, \
         github, npm (\"allow-all\" and \"deny-all\" must stand alone)"
    )]
    UnknownPreset {
        /// The name as given.
        name: String,
    },
    /// The text form has an empty element, as in `npm,,github`.
    #[error(
        "policy preset list has an empty name at position {position}; \
         remove the extra comma or add a preset name"
    )]
    EmptyPresetName {
        /// One-based position of the empty element in the comma-separated list.
        position: usize,
    },
    /// The AI Gateway base URL is unusable.
    #[error(
        "invalid AI Gateway base URL \"{url}\": {reason}; pass an absolute http(s) URL such as \
         https://ai-gateway.vercel.sh/v1 (or fix AI_GATEWAY_BASE_URL)"
    )]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The JSON form is malformed at `path` (syntax, wrong type, missing or unknown field).
    #[error("invalid policy JSON at {path}: {reason}")]
    Json {
        /// Location in the document, e.g. `services[1].domains` (`$` is the root).
        path: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The JSON form is well-formed but describes an invalid policy; `error` says what
    /// is wrong at `path`.
    #[error("invalid policy JSON at {path}: {error}")]
    JsonField {
        /// Location in the document, e.g. `services[1].domains`.
        path: String,
        /// The validation error found there.
        error: Box<PolicyError>,
    },
}

impl PolicyError {
    /// The underlying error: for [`PolicyError::JsonField`] the wrapped validation error,
    /// otherwise `self`.
    pub fn innermost(&self) -> &PolicyError {
        match self {
            PolicyError::JsonField { error, .. } => error.innermost(),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PolicyError;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn is_send_sync_and_an_error() {
        assert_send_sync::<PolicyError>();
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(PolicyError::NoServices);
        assert!(boxed.to_string().contains("at least one service"));
    }

    #[test]
    fn innermost_unwraps_json_field() {
        let err = PolicyError::JsonField {
            path: "services[0].domains".into(),
            error: Box::new(PolicyError::NoDomains {
                service: "x".into(),
            }),
        };
        assert_eq!(
            err.innermost(),
            &PolicyError::NoDomains {
                service: "x".into()
            }
        );
        assert!(
            err.to_string()
                .starts_with("invalid policy JSON at services[0].domains: ")
        );
    }
}
