//! Service presets with exactly the original's domains, headers and credentials.
//!
//! | preset | id | domains | headers | default credential |
//! |---|---|---|---|---|
//! | [`npm`] | `npm` | `registry.npmjs.org` | none | none |
//! | [`bun`] | `bun` | `bun.com`, `bun.sh` | none | none |
//! | [`github`] | `github` | `github.com`, `api.github.com`, `*.githubusercontent.com` | `github.com`: `authorization: Basic base64("x-access-token:" + token)`; `api.github.com`: `authorization: Bearer <token>`; `*.githubusercontent.com`: none | `GITHUB_TOKEN` |
//! | [`codex`] | `codex` | `api.openai.com`, `*.openai.com`, `openrouter.ai`, `*.openrouter.ai` | `authorization: Bearer <key>` | `CODEX_API_KEY` |
//! | [`gemini`] | `gemini` | `ai.google.dev`, `*.ai.google.dev`, `generativelanguage.googleapis.com` | `x-goog-api-key: <key>` | `GEMINI_API_KEY` |
//! | [`ai_gateway`] | `aiGateway` | `<host>`, `*.<host>` of the base URL | `authorization: Bearer <key>` | `AI_GATEWAY_API_KEY` |
//!
//! Override a default credential for one run with
//! [`ServiceDescriptor::api_key`] (or [`ServiceDescriptor::token`] for GitHub):
//!
//! ```
//! use sandkit_policies::{Policy, Secret, presets::{codex, github}};
//! let one_run = Policy::allow_services([
//!     codex().api_key(Secret::new("test-secret")),
//!     github().token(Secret::new("test-token")),
//! ])?;
//! assert!(one_run.ensure_durable().is_err());
//! // An explicit override is never silently replaced by the environment:
//! assert!(Policy::allow_services([codex().api_key(Secret::new("  "))]).is_err());
//! # Ok::<(), sandkit_policies::PolicyError>(())
//! ```

use url::{Host, Url};

use crate::PolicyError;
use crate::credentials::{CredentialEnv, ProcessEnv};
use crate::model::{HeaderEncoding, HeaderTransform, ServiceDescriptor};

/// Preset names accepted by the text form ([`by_name`]), sorted.
pub const NAMES: [&str; 6] = ["ai-gateway", "bun", "codex", "gemini", "github", "npm"];

/// The AI Gateway base URL used when neither an explicit URL nor
/// [`AI_GATEWAY_BASE_URL`] is given.
pub const AI_GATEWAY_DEFAULT_BASE_URL: &str = "https://ai-gateway.vercel.sh/v1";

/// The environment variable [`ai_gateway`] reads its base URL from.
pub const AI_GATEWAY_BASE_URL: &str = "AI_GATEWAY_BASE_URL";

/// The service id of [`ai_gateway`] (kept from the original so stored descriptions match).
pub const AI_GATEWAY_ID: &str = "aiGateway";

/// The public npm registry (`registry.npmjs.org` only, not `www.npmjs.com`).
pub fn npm() -> ServiceDescriptor {
    ServiceDescriptor::new("npm", "npm")
        .description("Allow outbound access to the public npm package registry.")
        .domain("registry.npmjs.org")
}

/// Bun install and distribution endpoints (`bun.sh`, `bun.com`).
pub fn bun() -> ServiceDescriptor {
    ServiceDescriptor::new("bun", "Bun")
        .description("Allow outbound access to Bun install and distribution endpoints.")
        .domains(["bun.sh", "bun.com"])
}

/// GitHub: git over HTTPS on `github.com` (Basic auth with `x-access-token`), the REST
/// API on `api.github.com` (Bearer), raw content on `*.githubusercontent.com` (no header).
/// Credential: `GITHUB_TOKEN`, or [`ServiceDescriptor::token`].
pub fn github() -> ServiceDescriptor {
    ServiceDescriptor::new("github", "GitHub")
        .description(
            "Allow requests to github.com and api.github.com through Vercel Sandbox firewall header transforms.",
        )
        .domains(["github.com", "api.github.com", "*.githubusercontent.com"])
        .domain_header(
            "github.com",
            HeaderTransform::new("authorization")
                .value_prefix("Basic ")
                .credential_prefix("x-access-token:")
                .encoding(HeaderEncoding::Base64),
        )
        .domain_header("api.github.com", HeaderTransform::bearer())
}

/// OpenAI and OpenRouter hosts used by Codex-style clients, with
/// `authorization: Bearer <key>`. Credential: `CODEX_API_KEY`, or
/// [`ServiceDescriptor::api_key`].
pub fn codex() -> ServiceDescriptor {
    ServiceDescriptor::new("codex", "Codex")
        .description("Allow outbound access commonly needed by Codex-style clients.")
        .domains([
            "api.openai.com",
            "*.openai.com",
            "openrouter.ai",
            "*.openrouter.ai",
        ])
        .header(HeaderTransform::bearer())
}

/// Google Gemini hosts with `x-goog-api-key: <key>`. Credential: `GEMINI_API_KEY`, or
/// [`ServiceDescriptor::api_key`].
pub fn gemini() -> ServiceDescriptor {
    ServiceDescriptor::new("gemini", "Gemini")
        .description("Allow outbound access commonly needed by Gemini clients.")
        .domains([
            "ai.google.dev",
            "*.ai.google.dev",
            "generativelanguage.googleapis.com",
        ])
        .header(HeaderTransform::new("x-goog-api-key"))
}

/// The AI Gateway host (and its subdomains) with `authorization: Bearer <key>`.
///
/// The host comes from `AI_GATEWAY_BASE_URL` in the process environment, read now, or
/// [`AI_GATEWAY_DEFAULT_BASE_URL`] when unset or blank; its port and path are ignored.
/// An invalid `AI_GATEWAY_BASE_URL` is reported as [`PolicyError::InvalidBaseUrl`] by
/// [`Policy::allow_services`](crate::Policy::allow_services).
/// Credential: `AI_GATEWAY_API_KEY`, or [`ServiceDescriptor::api_key`].
pub fn ai_gateway() -> ServiceDescriptor {
    ai_gateway_from_env(&ProcessEnv)
}

/// [`ai_gateway`] reading `AI_GATEWAY_BASE_URL` from `env` instead of the process
/// environment.
pub fn ai_gateway_from_env(env: &dyn CredentialEnv) -> ServiceDescriptor {
    let url = env
        .var(AI_GATEWAY_BASE_URL)
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| AI_GATEWAY_DEFAULT_BASE_URL.to_owned());
    match ai_gateway_with_base_url(&url) {
        Ok(service) => service,
        Err(error) => ai_gateway_service(Vec::new()).with_pending(error),
    }
}

/// [`ai_gateway`] for an explicit base URL, e.g. `https://api.example.com:8443/v1`
/// (allows `api.example.com` and `*.api.example.com`).
///
/// # Errors
/// [`PolicyError::InvalidBaseUrl`] when the URL is blank, unparsable, not http(s), or has
/// no usable host name.
pub fn ai_gateway_with_base_url(base_url: &str) -> Result<ServiceDescriptor, PolicyError> {
    let host = base_url_host(base_url).map_err(|reason| PolicyError::InvalidBaseUrl {
        url: base_url.to_owned(),
        reason,
    })?;
    let wildcard = format!("*.{host}");
    Ok(ai_gateway_service(vec![host, wildcard]))
}

fn ai_gateway_service(domains: Vec<String>) -> ServiceDescriptor {
    ServiceDescriptor::new(AI_GATEWAY_ID, "AI Gateway")
        .description("Allow outbound access to the configured AI Gateway endpoint host.")
        .domains(domains)
        .header(HeaderTransform::bearer())
}

fn base_url_host(base_url: &str) -> Result<String, String> {
    let trimmed = base_url.trim();
    if trimmed.is_empty() {
        return Err("the base URL is empty".to_owned());
    }
    let url = Url::parse(trimmed).map_err(|e| format!("it is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme \"{}\" is not http or https",
            url.scheme()
        ));
    }
    let host = match url.host() {
        Some(Host::Domain(domain)) => domain.to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(_)) => return Err("IPv6 hosts are not supported".to_owned()),
        None => return Err("it has no host name".to_owned()),
    };
    let host = host.strip_suffix('.').unwrap_or(&host);
    if host.is_empty() {
        return Err("it has no host name".to_owned());
    }
    Ok(host.to_owned())
}

/// The preset for a text-form name: `npm`, `bun`, `github`, `codex`, `gemini`,
/// `ai-gateway` (also `aiGateway`, `ai_gateway`); case-insensitive.
pub fn by_name(name: &str) -> Option<ServiceDescriptor> {
    match name.trim().to_ascii_lowercase().as_str() {
        "npm" => Some(npm()),
        "bun" => Some(bun()),
        "github" => Some(github()),
        "codex" => Some(codex()),
        "gemini" => Some(gemini()),
        "ai-gateway" | "aigateway" | "ai_gateway" => Some(ai_gateway()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapEnv;

    #[test]
    fn base_url_hosts() {
        assert_eq!(
            base_url_host("https://API.Example.com:8443/v1"),
            Ok("api.example.com".into())
        );
        assert_eq!(base_url_host("http://10.1.2.3/v1"), Ok("10.1.2.3".into()));
        assert!(base_url_host("").is_err());
        assert!(base_url_host("   ").is_err());
        assert!(base_url_host("not a url").is_err());
        assert!(base_url_host("ftp://example.com").is_err());
        assert!(base_url_host("https://[::1]/").is_err());
        assert!(base_url_host("mailto:someone@example.com").is_err());
    }

    #[test]
    fn invalid_env_base_url_is_reported_later() {
        let env = MapEnv::new().with(AI_GATEWAY_BASE_URL, "not a url");
        let err = crate::Policy::allow_services([ai_gateway_from_env(&env)]).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidBaseUrl { ref url, .. } if url == "not a url"));
    }

    #[test]
    fn blank_env_base_url_means_default() {
        let env = MapEnv::new().with(AI_GATEWAY_BASE_URL, " ");
        let svc = ai_gateway_from_env(&env);
        assert_eq!(
            svc.get_domains(),
            ["ai-gateway.vercel.sh", "*.ai-gateway.vercel.sh"]
        );
    }

    #[test]
    fn names_resolve() {
        for name in NAMES {
            assert!(by_name(name).is_some(), "{name}");
        }
        assert_eq!(
            by_name(" aiGateway ").map(|s| s.id().to_owned()),
            Some("aiGateway".into())
        );
        assert_eq!(
            by_name("GitHub").map(|s| s.id().to_owned()),
            Some("github".into())
        );
        assert!(by_name("pypi").is_none());
    }
}
